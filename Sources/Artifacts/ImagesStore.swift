import Dataset
import Foundation
import GRDB
import PipelineKit

/// `images.sqlite`, the ingest stage's output:
/// - `classes(label, name)`: the dataset's vocabulary (Sign MNIST's letters for its CSVs);
/// - `images(id, split, source_row, path, label, width, height, channels, encoding, pixels)`: one
///   image a row. `encoding` `raw`: `pixels` 8-bit, row-major, channels interleaved (`width x height x
///   channels` bytes), from a CSV, `source_row` its 0-based data row (pandas' index), `path` empty;
///   `jpeg` or `png`: `pixels` the file's bytes as found (decoded by preprocess), `path` relative to
///   the ingested folder, `source_row` its place in the folder's listing.
/// - `sources(split, path, sha256, rows)`: the CSV (or folder) each split came from;
/// - `skipped(path, reason)`: files `ingest --folder --skip-bad` left out (empty otherwise).
/// - `meta`: kind `signtransfer.images`, `content_sha256` over the classes and the rows in id order.
public enum ImagesStore {
    public static let kind = "signtransfer.images"
    /// 2: the classes table, each image's geometry (no letter column).
    public static let schemaVersion = "2"

    public struct Split: Sendable {
        public var name: String
        public var path: String
        public var sha256: String
        public var images: KaggleImages

        public init(name: String, path: String, sha256: String, images: KaggleImages) {
            self.name = name
            self.path = path
            self.sha256 = sha256
            self.images = images
        }
    }

    /// Writes all splits to `url` (a fresh file) and returns the content hash.
    public static func write(_ splits: [Split], classes: ClassNames, to url: URL) throws -> String {
        let queue = try Artifact.create(at: url)
        var hasher = ContentHasher()
        try queue.write { db in
            try ClassesTable.write(db, classes, into: &hasher)
            try createTables(db)
            let insert = try db.makeStatement(sql: "INSERT INTO images VALUES (?, ?, ?, '', ?, ?, ?, ?, 'raw', ?)")
            let side = KaggleImages.side
            var id = 0
            for split in splits {
                let images = split.images
                for row in 0 ..< images.count {
                    id += 1
                    let label = Int(images.labels[row])
                    let pixels = images.image(row)
                    try insert.execute(arguments: [id, split.name, row, label, side, side, 1, Data(pixels)])
                    hasher.update(integer: Int64(id))
                    hasher.update(split.name)
                    hasher.update(integer: Int64(row))
                    hasher.update(integer: UInt8(label))
                    for size in [side, side, 1] { hasher.update(integer: Int64(size)) }
                    pixels.withUnsafeBytes { hasher.update($0) }
                }
                try db.execute(sql: "INSERT INTO sources VALUES (?, ?, ?, ?)",
                               arguments: [split.name, split.path, split.sha256, images.count])
            }
            try db.execute(sql: "CREATE INDEX images_split ON images(split, id)")
            try Artifact.writeMeta(db, [Artifact.kindKey: kind, Artifact.schemaKey: schemaVersion,
                                        Artifact.contentKey: hasher.finalize(), Artifact.toolKey: toolVersion])
        }
        try queue.close()
        return hasher.finalize()
    }

    static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE images (
                id INTEGER PRIMARY KEY NOT NULL,
                split TEXT NOT NULL,
                source_row INTEGER NOT NULL,
                path TEXT NOT NULL,
                label INTEGER NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                channels INTEGER NOT NULL,
                encoding TEXT NOT NULL,
                pixels BLOB NOT NULL
            );
            CREATE TABLE skipped (path TEXT PRIMARY KEY NOT NULL, reason TEXT NOT NULL);
            CREATE TABLE sources (
                split TEXT PRIMARY KEY NOT NULL,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                rows INTEGER NOT NULL
            );
            """)
    }

    /// Writes an image folder's files to `url` (a fresh file), their bytes as found, and returns
    /// the content hash: over the classes, then each row (id, split, path, label, geometry,
    /// encoding, bytes) in id order, then the skipped files.
    public static func write(folder: ImageFolder, source: String, to url: URL) throws -> String {
        let queue = try Artifact.create(at: url)
        var hasher = ContentHasher()
        try queue.write { db in
            try ClassesTable.write(db, folder.classes, into: &hasher)
            try createTables(db)
            let insert = try db.makeStatement(sql: "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            var perSplit: [String: (rows: Int, hasher: ContentHasher)] = [:]
            for (index, entry) in folder.entries.enumerated() {
                let id = index + 1
                let info = entry.info
                try insert.execute(arguments: [id, entry.split, index, entry.path, entry.label, info.width, info.height, info.channels,
                                               info.format.rawValue, entry.bytes])
                hasher.update(integer: Int64(id))
                hasher.update(entry.split)
                hasher.update(entry.path)
                hasher.update(integer: Int64(entry.label))
                for size in [info.width, info.height, info.channels] { hasher.update(integer: Int64(size)) }
                hasher.update(info.format.rawValue)
                hasher.update(entry.bytes)
                var split = perSplit[entry.split] ?? (0, ContentHasher())
                split.rows += 1
                split.hasher.update(entry.path)
                split.hasher.update(entry.bytes)
                perSplit[entry.split] = split
            }
            for (split, found) in perSplit.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO sources VALUES (?, ?, ?, ?)", arguments: [split, source, found.hasher.finalize(), found.rows])
            }
            for (path, reason) in folder.skipped {
                try db.execute(sql: "INSERT INTO skipped VALUES (?, ?)", arguments: [path, reason])
                hasher.update(path)
            }
            try db.execute(sql: "CREATE INDEX images_split ON images(split, id)")
            try Artifact.writeMeta(db, [Artifact.kindKey: kind, Artifact.schemaKey: schemaVersion,
                                        Artifact.contentKey: hasher.finalize(), Artifact.toolKey: toolVersion])
        }
        try queue.close()
        return hasher.finalize()
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        let (queue, meta) = try Artifact.open(url, kind: kind, role: "an ingest output (images.sqlite)", versions: [schemaVersion])
        // Every column the readers select, checked once here: a file whose table lacks one is named
        // as the input it is, not as a failed write of whatever the stage was making.
        let columns = Set(try queue.read { try $0.columns(in: "images") }.map(\.name))
        let missing = ["id", "split", "source_row", "path", "label", "width", "height", "channels", "encoding", "pixels"].filter { !columns.contains($0) }
        guard missing.isEmpty else {
            throw StageError("\(url.path): table images lacks the column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")): made by an older ingest; run ingest again (pipeline run FILE --force ingest)")
        }
        return (queue, meta)
    }

    /// The file's vocabulary (checked: every label named once, names distinct).
    public static func classes(_ queue: DatabaseQueue) throws -> ClassNames {
        guard let classes = try queue.read({ try ClassesTable.read($0, file: queue.path) }) else {
            throw StageError("\(queue.path): no classes table: made by an older version of ingest; run ingest again")
        }
        return classes
    }

    /// The one geometry every image has, or nil when they differ (or there are none).
    public static func geometry(_ queue: DatabaseQueue) throws -> (width: Int, height: Int, channels: Int)? {
        let rows = try queue.read { db in
            try RecordColumns.fetch(db, file: queue.path, table: "images", sql: "SELECT DISTINCT width, height, channels FROM images LIMIT 2") { row in
                (width: try RecordColumns.integer(row, "width"), height: try RecordColumns.integer(row, "height"), channels: try RecordColumns.integer(row, "channels"))
            }
        }
        return rows.count == 1 ? rows[0] : nil
    }

    /// One stored image.
    public struct Image: Sendable, Equatable {
        public var id: Int
        public var split: String
        public var sourceRow: Int
        /// Relative to the ingested folder; empty for a CSV row.
        public var path: String
        public var label: Int
        public var width: Int, height: Int, channels: Int
        /// `raw`: `pixels` are `height x width x channels` bytes; `jpeg` or `png`: the file's bytes.
        public var encoding: String
        public var pixels: [UInt8]
    }

    /// The encodings a row may have.
    public static let encodings: Set<String> = ["raw", "jpeg", "png"]

    /// The largest side an image may have (checked on reading, so an edited row cannot ask for a
    /// huge buffer).
    public static let maximumSide = 1 << 15

    /// Reads images in id order, `batch` at a time, so that memory stays flat on large inputs; each
    /// row's label is checked against the file's classes and its pixels against its geometry.
    public static func forEachBatch(_ queue: DatabaseQueue, split: String? = nil, batch: Int = 1024,
                                    _ body: ([Image]) throws -> Void) throws {
        let classes = try classes(queue)
        var after = 0
        while true {
            let images = try queue.read { db in
                try RecordColumns.fetch(db, file: queue.path, table: "images", sql: """
                    SELECT id, split, source_row, path, label, width, height, channels, encoding, pixels FROM images
                    WHERE id > ? AND (? IS NULL OR split = ?) ORDER BY id LIMIT ?
                    """, arguments: [after, split, split, batch]) { row in
                    let width = try RecordColumns.integer(row, "width"), height = try RecordColumns.integer(row, "height")
                    let channels = try RecordColumns.integer(row, "channels")
                    guard (1 ... maximumSide).contains(width), (1 ... maximumSide).contains(height), [1, 3].contains(channels) else {
                        throw ColumnProblem(message: "width, height, channels: expected sides from 1 to \(maximumSide) and 1 or 3 channels, found \(width), \(height), \(channels)")
                    }
                    let encoding = try RecordColumns.text(row, "encoding")
                    guard encodings.contains(encoding) else {
                        throw ColumnProblem(message: "encoding: expected raw, jpeg or png, found '\(encoding.prefix(40))'")
                    }
                    let pixels = try RecordColumns.blob(row, "pixels", bytes: encoding == "raw" ? width * height * channels : nil)
                    guard !pixels.isEmpty else { throw ColumnProblem(message: "pixels: an empty blob") }
                    return Image(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), sourceRow: try RecordColumns.integer(row, "source_row"),
                                 path: try RecordColumns.text(row, "path"), label: try RecordColumns.label(row, classes: classes),
                                 width: width, height: height, channels: channels, encoding: encoding, pixels: [UInt8](pixels))
                }
            }
            if images.isEmpty { return }
            after = images.last!.id
            try body(images)
        }
    }
}
