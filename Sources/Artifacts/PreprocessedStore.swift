import Dataset
import Foundation
import GRDB
import PipelineKit

/// `preprocessed.sqlite`, the preprocess stage's output:
/// - `images(id, split, label, width, height, channels, png)`: ids as in images.sqlite, `png` an
///   8-bit PNG of the resized RGB image (channels 3), stored grey when its three channels are equal
///   everywhere (decoded to RGB, the same pixels);
/// - `classes(label, name)`: the dataset's vocabulary, copied from images.sqlite;
/// - `params(key, value)`: how the images were made (size, method, rounding, the originals' geometry,
///   input content hash);
/// - `meta`: kind `signtransfer.preprocessed`, `content_sha256` over the classes and the rows in id
///   order (each image by the SHA-256 of its RGB pixels, not its PNG bytes).
public enum PreprocessedStore {
    public static let kind = "signtransfer.preprocessed"
    public static let schemaVersion = "1"

    public static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE images (
                id INTEGER PRIMARY KEY NOT NULL,
                split TEXT NOT NULL,
                label INTEGER NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                channels INTEGER NOT NULL,
                png BLOB NOT NULL
            );
            CREATE TABLE params (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            """)
    }

    /// The dataset's vocabulary the file carries (from ingest); nil for a file made before it.
    public static func classes(_ queue: DatabaseQueue) throws -> ClassNames? {
        try queue.read { try ClassesTable.read($0, file: queue.path) }
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        try Artifact.open(url, kind: kind, role: "a preprocess output (preprocessed.sqlite)", versions: [schemaVersion])
    }

    /// With `--augment K`: a row per training image and view (0 the original, its own source), saying
    /// which image a row is a view of and the transform that made it. Absent without views; the
    /// features file carries the same table.
    public static let viewsTable = """
        CREATE TABLE views (id INTEGER PRIMARY KEY NOT NULL, source INTEGER NOT NULL, view INTEGER NOT NULL,
                            rotation REAL NOT NULL, dx REAL NOT NULL, dy REAL NOT NULL, scale REAL NOT NULL,
                            brightness REAL NOT NULL, contrast REAL NOT NULL, flip INTEGER NOT NULL)
        """

    public static func createViewsTable(_ db: Database) throws { try db.execute(sql: viewsTable) }

    /// Each view's source image: id to (source id, view number); empty when the file has no views.
    /// A row that is not as written is an error naming the file, table and row.
    public static func views(_ db: Database, file: String) throws -> [Int: (source: Int, view: Int)] {
        guard try db.tableExists("views") else { return [:] }
        var views: [Int: (source: Int, view: Int)] = [:]
        // Every column read by its stored type: GRDB's `row[...] as Int?` stops the process on text.
        for row in try Row.fetchAll(db, sql: "SELECT id, source, view FROM views ORDER BY id") {
            let entry = try RecordColumns.checked(row, file: file, table: "views") { row -> (id: Int, source: Int, view: Int) in
                let (id, source, view) = (try RecordColumns.integer(row, "id"), try RecordColumns.integer(row, "source"), try RecordColumns.integer(row, "view"))
                guard view >= 0, (view == 0) == (id == source) else {
                    throw ColumnProblem(message: "expected a source id and a view number (0 exactly for the source itself), found source \(source), view \(view)")
                }
                return (id, source, view)
            }
            views[entry.id] = (entry.source, entry.view)
        }
        for (id, entry) in views where views[entry.source]?.view != 0 {
            throw StageError("\(file): table views, row id \(id): its source \(entry.source) is not a training image with view 0")
        }
        return views
    }

    public static func params(_ queue: DatabaseQueue) throws -> [String: String] {
        try queue.read { try Artifact.keyValues($0, table: "params") }
    }

    public struct Image: Sendable {
        public var id: Int
        public var split: String
        public var label: Int
        public var png: Data
    }

    /// The images whose ids fall in `ids`, in id order.
    public static func images(_ queue: DatabaseQueue, ids: ClosedRange<Int>) throws -> [Image] {
        try queue.read { db in
            let classes = try ClassesTable.read(db, file: queue.path)
            return try RecordColumns.fetch(db, file: queue.path, table: "images", sql: "SELECT id, split, label, png FROM images WHERE id BETWEEN ? AND ? ORDER BY id",
                                    arguments: [ids.lowerBound, ids.upperBound]) { row in
                Image(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), label: try RecordColumns.label(row, classes: classes),
                      png: try RecordColumns.blob(row, "png"))
            }
        }
    }
}
