import Dataset
import Foundation
import GRDB
import PipelineKit

/// `images.sqlite`, the ingest stage's output:
/// - `images(id, split, source_row, label, letter, pixels)`: one 28x28 grey image a row, `pixels` 784
///   bytes row-major; `source_row` is the 0-based data row in the source CSV (pandas' index).
/// - `sources(split, path, sha256, rows)`: the CSV each split came from.
/// - `meta`: kind `signtransfer.images`, `content_sha256` over the rows in id order.
public enum ImagesStore {
    public static let kind = "signtransfer.images"
    public static let schemaVersion = "1"

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
    public static func write(_ splits: [Split], to url: URL) throws -> String {
        let queue = try Artifact.create(at: url)
        var hasher = ContentHasher()
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE images (
                    id INTEGER PRIMARY KEY NOT NULL,
                    split TEXT NOT NULL,
                    source_row INTEGER NOT NULL,
                    label INTEGER NOT NULL,
                    letter TEXT NOT NULL,
                    pixels BLOB NOT NULL
                );
                CREATE TABLE sources (
                    split TEXT PRIMARY KEY NOT NULL,
                    path TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    rows INTEGER NOT NULL
                );
                """)
            let insert = try db.makeStatement(sql: "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)")
            var id = 0
            for split in splits {
                let images = split.images
                for row in 0 ..< images.count {
                    id += 1
                    let label = Int(images.labels[row])
                    let pixels = images.image(row)
                    try insert.execute(arguments: [id, split.name, row, label, SignLetters.letter(label), Data(pixels)])
                    hasher.update(integer: Int64(id))
                    hasher.update(split.name)
                    hasher.update(integer: Int64(row))
                    hasher.update(integer: UInt8(label))
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

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        try Artifact.open(url, kind: kind, role: "an ingest output (images.sqlite)", versions: [schemaVersion])
    }

    /// One stored image.
    public struct Image: Sendable, Equatable {
        public var id: Int
        public var split: String
        public var sourceRow: Int
        public var label: Int
        public var pixels: [UInt8]
    }

    /// Reads images in id order, `batch` at a time, so that memory stays flat on large inputs.
    public static func forEachBatch(_ queue: DatabaseQueue, split: String? = nil, batch: Int = 1024,
                                    _ body: ([Image]) throws -> Void) throws {
        var after = 0
        while true {
            let images = try queue.read { db in
                try RecordColumns.fetch(db, file: queue.path, table: "images", sql: """
                    SELECT id, split, source_row, label, pixels FROM images
                    WHERE id > ? AND (? IS NULL OR split = ?) ORDER BY id LIMIT ?
                    """, arguments: [after, split, split, batch]) { row in
                    Image(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), sourceRow: try RecordColumns.integer(row, "source_row"),
                          label: try RecordColumns.label(row), pixels: [UInt8](try RecordColumns.blob(row, "pixels", bytes: 28 * 28)))
                }
            }
            if images.isEmpty { return }
            after = images.last!.id
            try body(images)
        }
    }
}
