import Foundation
import GRDB
import PipelineKit

/// `features.sqlite`, the extract stage's output:
/// - `features(id, split, label, vector)`: ids as in images.sqlite, `vector` 2048 float32 little-endian;
/// - `backbone(key, value)`: the weights' source and MD5, the input size, the architecture;
/// - `meta`: kind `signtransfer.features`, `content_sha256` over the rows in id order.
public enum FeaturesStore {
    public static let kind = "signtransfer.features"
    public static let schemaVersion = "1"

    public static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS features (
                id INTEGER PRIMARY KEY NOT NULL,
                split TEXT NOT NULL,
                label INTEGER NOT NULL,
                vector BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS backbone (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            """)
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        try Artifact.open(url, kind: kind, role: "an extract output (features.sqlite)", versions: [schemaVersion])
    }

    public static func backbone(_ queue: DatabaseQueue) throws -> [String: String] {
        try queue.read { try Artifact.keyValues($0, table: "backbone") }
    }

    public struct Feature: Sendable {
        public var id: Int
        public var split: String
        public var label: Int
        public var vector: [Float]
    }

    /// float32 little-endian bytes to floats, the form every vector and weight matrix is stored in.
    public static func decode(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in
            (0 ..< raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    public static func encode(_ vector: UnsafeBufferPointer<Float>) -> Data {
        var data = Data(count: vector.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (index, value) in vector.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
        }
        return data
    }

    /// Every feature of `split` (or all), in id order.
    public static func all(_ queue: DatabaseQueue, split: String? = nil) throws -> [Feature] {
        var features: [Feature] = []
        try forEach(queue, split: split) { features.append($0) }
        return features
    }

    /// Every feature of `split` (or all) in id order, handed to `body` one at a time (a full-size file
    /// is 280 MB of vectors), each row checked (`RecordColumns`); the vector's length is the reader's
    /// to check.
    public static func forEach(_ queue: DatabaseQueue, split: String? = nil, _ body: (Feature) throws -> Void) throws {
        try queue.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT id, split, label, vector FROM features WHERE ? IS NULL OR split = ? ORDER BY id",
                                           arguments: [split, split])
            while let row = try rows.next() {
                try body(try RecordColumns.checked(row, file: queue.path, table: "features") { row in
                    Feature(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), label: try RecordColumns.label(row),
                            vector: decode(try RecordColumns.blob(row, "vector", multipleOf: 4)))
                })
            }
        }
    }
}
