import Foundation
import GRDB
import PipelineKit

/// `preprocessed.sqlite`, the preprocess stage's output:
/// - `images(id, split, label, width, height, channels, png)`: ids as in images.sqlite, `png` an
///   8-bit RGB PNG of the resized image;
/// - `params(key, value)`: how the images were made (size, method, rounding, input content hash);
/// - `meta`: kind `signtransfer.preprocessed`, `content_sha256` over the rows in id order.
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

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        try Artifact.open(url, kind: kind, role: "a preprocess output (preprocessed.sqlite)", versions: [schemaVersion])
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
            try RecordColumns.fetch(db, file: queue.path, table: "images", sql: "SELECT id, split, label, png FROM images WHERE id BETWEEN ? AND ? ORDER BY id",
                                    arguments: [ids.lowerBound, ids.upperBound]) { row in
                Image(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), label: try RecordColumns.label(row),
                      png: try RecordColumns.blob(row, "png"))
            }
        }
    }
}
