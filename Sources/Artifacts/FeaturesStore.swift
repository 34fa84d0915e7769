import Dataset
import Foundation
import GRDB
import PipelineKit

/// `features.sqlite`, the extract stage's output:
/// - `features(id, split, label, layer, vector)`: one row per image and layer cut at; ids as in
///   images.sqlite, `layer` a Keras block-output name, `vector` its channels' global averages,
///   float32 little-endian;
/// - `maps(id, layer, height, width, channels, data)`: with `--keep`, one layer's whole output per
///   image, NHWC, float16 little-endian (what fine-tuning the layers above it trains on);
/// - `classes(label, name)`: the dataset's vocabulary, copied from preprocessed.sqlite;
/// - `backbone(key, value)`: the backbone (absent: resnet50), the weights' source and MD5, the input
///   size, the layers, the architecture, the originals' geometry;
/// - `meta`: kind `signtransfer.features`, `content_sha256` over the rows in (id, layer) order.
public enum FeaturesStore {
    public static let kind = "signtransfer.features"
    /// 2: a row per image and layer (`layer` column), the `maps` table. Version 1 files are rebuilt
    /// by running extract again (its stage version makes a pipeline do so).
    public static let schemaVersion = "2"

    public static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS features (
                id INTEGER NOT NULL,
                split TEXT NOT NULL,
                label INTEGER NOT NULL,
                layer TEXT NOT NULL,
                vector BLOB NOT NULL,
                PRIMARY KEY (id, layer)
            );
            CREATE TABLE IF NOT EXISTS maps (
                id INTEGER NOT NULL,
                layer TEXT NOT NULL,
                height INTEGER NOT NULL,
                width INTEGER NOT NULL,
                channels INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (id, layer)
            );
            CREATE TABLE IF NOT EXISTS backbone (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            """)
    }

    /// The dataset's vocabulary the file carries (from ingest); nil for a file made before it.
    public static func classes(_ queue: DatabaseQueue) throws -> ClassNames? {
        try queue.read { try ClassesTable.read($0, file: queue.path) }
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        try Artifact.open(url, kind: kind, role: "an extract output (features.sqlite)", versions: [schemaVersion])
    }

    /// The layers a features file holds vectors of, and the one it keeps whole maps of, from its
    /// `backbone` table (comma-separated Keras names, depth order).
    public static func layers(_ backbone: [String: String]) -> (pooled: [String], kept: String?) {
        let pooled = (backbone["layers"] ?? "").split(separator: ",").map(String.init)
        let kept = backbone["keep"].flatMap { $0.isEmpty ? nil : $0 }
        return (pooled, kept)
    }

    public static func backbone(_ queue: DatabaseQueue) throws -> [String: String] {
        try queue.read { try Artifact.keyValues($0, table: "backbone") }
    }

    public struct Feature: Sendable {
        public var id: Int
        public var split: String
        public var label: Int
        public var layer: String
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

    /// Every feature of `layer` (and of `split`, or all), in id order.
    public static func all(_ queue: DatabaseQueue, layer: String, split: String? = nil) throws -> [Feature] {
        var features: [Feature] = []
        try forEach(queue, layer: layer, split: split) { features.append($0) }
        return features
    }

    /// Every feature of `layer` (and of `split`, or all) in id order, handed to `body` one at a time
    /// (a full-size file is 280 MB of vectors), each row checked (`RecordColumns`); the vector's
    /// length is the reader's to check.
    public static func forEach(_ queue: DatabaseQueue, layer: String, split: String? = nil, _ body: (Feature) throws -> Void) throws {
        try queue.read { db in
            let classes = try ClassesTable.read(db, file: queue.path)
            let rows = try Row.fetchCursor(db, sql: "SELECT id, split, label, layer, vector FROM features WHERE layer = ? AND (? IS NULL OR split = ?) ORDER BY id",
                                           arguments: [layer, split, split])
            while let row = try rows.next() {
                try body(try RecordColumns.checked(row, file: queue.path, table: "features") { row in
                    Feature(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), label: try RecordColumns.label(row, classes: classes),
                            layer: layer, vector: decode(try RecordColumns.blob(row, "vector", multipleOf: 4)))
                })
            }
        }
    }

    /// float32 to IEEE half, little-endian (round to nearest even): the kept maps' storage.
    public static func encodeHalf(_ values: UnsafeBufferPointer<Float>) -> Data {
        var data = Data(count: values.count * 2)
        data.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: index * 2, as: UInt16.self)
            }
        }
        return data
    }

    /// IEEE half little-endian bytes into `count` floats at `out`.
    public static func decodeHalf(_ data: Data, into out: UnsafeMutablePointer<Float>, count: Int) {
        halfToFloat.withUnsafeBufferPointer { table in
            data.withUnsafeBytes { raw in
                for index in 0 ..< count {
                    out[index] = table[Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))]
                }
            }
        }
    }

    /// Every half's float, by its bits: without F16C in the build, each conversion is a library call
    /// (measured: 2% of a fine-tuning epoch at 64x64); a lookup in this 256 KB table is not.
    static let halfToFloat: [Float] = (0 ... 0xFFFF).map { Float(Float16(bitPattern: UInt16($0))) }
}