import Dataset
import Foundation
import GRDB
import PipelineKit

/// An open artifact file. Only `Artifacts` runs SQL on one; the stages hold it and pass it back.
public typealias ArtifactFile = DatabaseQueue

extension FeaturesStore {
    /// One row of `features`, as stored.
    public struct FeatureRow: Sendable {
        public var id: Int, split: String, label: Int, layer: String
        /// float32 little-endian.
        public var vector: Data

        public init(id: Int, split: String, label: Int, layer: String, vector: Data) {
            (self.id, self.split, self.label, self.layer, self.vector) = (id, split, label, layer, vector)
        }
    }

    /// One row of `maps`, as stored.
    public struct MapRow: Sendable {
        public var id: Int, layer: String, height: Int, width: Int, channels: Int
        /// float16 little-endian, NHWC.
        public var data: Data

        public init(id: Int, layer: String, height: Int, width: Int, channels: Int, data: Data) {
            (self.id, self.layer, self.height, self.width, self.channels, self.data) = (id, layer, height, width, channels, data)
        }
    }

    /// The image ids a file (a features file or a shard) holds, each once, ascending.
    public static func imageIDs(_ file: ArtifactFile) throws -> [Int] {
        try file.read { try Int.fetchAll($0, sql: "SELECT DISTINCT id FROM features ORDER BY id") }
    }

    /// The rows and kept maps of the images with ids in `ids`, in (id, layer) order.
    public static func rows(_ file: ArtifactFile, ids: ClosedRange<Int>) throws -> (features: [FeatureRow], maps: [MapRow]) {
        try file.read { db in
            let features = try Row.fetchAll(db, sql: "SELECT id, split, label, layer, vector FROM features WHERE id BETWEEN ? AND ? ORDER BY id, layer",
                                                 arguments: [ids.lowerBound, ids.upperBound]).map { row in
                try RecordColumns.checked(row, file: file.path, table: "features") { row in
                    FeatureRow(id: try RecordColumns.integer(row, "id"), split: try RecordColumns.split(row), label: try RecordColumns.integer(row, "label"),
                        layer: try RecordColumns.text(row, "layer"), vector: try RecordColumns.blob(row, "vector", multipleOf: 4))
                }
            }
            let maps = try Row.fetchAll(db, sql: "SELECT id, layer, height, width, channels, data FROM maps WHERE id BETWEEN ? AND ? ORDER BY id, layer",
                                             arguments: [ids.lowerBound, ids.upperBound]).map { row in
                try RecordColumns.checked(row, file: file.path, table: "maps") { row in
                    MapRow(id: try RecordColumns.integer(row, "id"), layer: try RecordColumns.text(row, "layer"), height: try RecordColumns.integer(row, "height"),
                           width: try RecordColumns.integer(row, "width"), channels: try RecordColumns.integer(row, "channels"),
                           data: try RecordColumns.blob(row, "data", multipleOf: 2))
                }
            }
            return (features, maps)
        }
    }

    /// The maps of `layer` for the images `ids` (float16 on disk, float32 into `out`, one
    /// `side x side x channels` map after another), each row checked: present, the expected shape,
    /// the expected length, finite values.
    public static func readMaps(_ file: ArtifactFile, layer: String, ids: [Int], side: Int, channels: Int, into out: UnsafeMutablePointer<Float>) throws {
        let floats = side * side * channels
        let path = file.path
        try file.read { db in
            let statement = try db.cachedStatement(sql: "SELECT height, width, channels, data FROM maps WHERE id = ? AND layer = ?")
            for (index, id) in ids.enumerated() {
                guard let found = try Row.fetchOne(statement, arguments: [id, layer]) else {
                    throw StageError("\(path): table maps has no row for image \(id), layer \(layer): run extract with --keep \(layer) again")
                }
                // Read by stored type (GRDB's `as Int?` stops the process on text); the message says
                // what is wrong: the shape, or the bytes of a map whose shape is right.
                func integer(_ column: String) -> Int? {
                    if case let .int64(value) = (found[column] as DatabaseValue).storage { return Int(value) }
                    return nil
                }
                let shape = [integer("height"), integer("width"), integer("channels")]
                let expected = "\(path): table maps, image \(id), layer \(layer): expected \(side)x\(side)x\(channels) float16 values (\(floats * 2) bytes)"
                guard shape == [side, side, channels] else {
                    throw StageError("\(expected), found shape \(shape.map { $0.map(String.init) ?? "?" }.joined(separator: "x")): run extract with --keep \(layer) again")
                }
                guard case let .blob(data) = (found["data"] as DatabaseValue).storage, data.count == floats * 2 else {
                    let stored: DatabaseValue = found["data"]
                    let what = if case let .blob(data) = stored.storage { "\(data.count) bytes" } else { "no blob" }
                    throw StageError("\(expected), found \(what) (truncated?): run extract with --keep \(layer) again")
                }
                let map = out + index * floats
                decodeHalf(data, into: map, count: floats)
                if let bad = (0 ..< floats).first(where: { !map[$0].isFinite }) {
                    throw StageError("\(path): table maps, image \(id), layer \(layer): value \(bad) is \(map[bad]); the maps must be finite numbers")
                }
            }
        }
    }

    /// How many rows `layer` has.
    public static func count(_ file: ArtifactFile, layer: String) throws -> Int {
        try file.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM features WHERE layer = ?", arguments: [layer]) } ?? 0
    }

    /// The views table the file carries (which image each row is a view of), checked.
    public static func views(_ file: ArtifactFile) throws -> [Int: (source: Int, view: Int)] {
        try file.read { try PreprocessedStore.views($0, file: file.path) }
    }

    /// The content hash of a features file: its rows in (id, layer) order, its maps, its classes,
    /// and which rows are views of which image.
    public static func contentHash(_ file: ArtifactFile) throws -> String {
        var hasher = ContentHasher()
        try file.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT id, split, label, layer, vector FROM features ORDER BY id, layer")
            while let row = try rows.next() {
                hasher.update(integer: Int64(row["id"] as Int))
                hasher.update(row["split"] as String)
                hasher.update(integer: Int64(row["label"] as Int))
                hasher.update(row["layer"] as String)
                (row["vector"] as Data).withUnsafeBytes { hasher.update($0) }
            }
            let maps = try Row.fetchCursor(db, sql: "SELECT id, layer, height, width, channels, data FROM maps ORDER BY id, layer")
            while let row = try maps.next() {
                hasher.update(integer: Int64(row["id"] as Int))
                hasher.update(row["layer"] as String)
                for key in ["height", "width", "channels"] { hasher.update(integer: Int64(row[key] as Int)) }
                (row["data"] as Data).withUnsafeBytes { hasher.update($0) }
            }
            // The class names decide train's report and predict's answers.
            if let classes = try ClassesTable.read(db, file: file.path) {
                for (label, name) in classes.entries {
                    hasher.update(integer: Int64(label))
                    hasher.update(name)
                }
            }
            // Which rows are views of which image decides what train does with them.
            if try db.tableExists("views") {
                for row in try Row.fetchAll(db, sql: "SELECT id, source, view FROM views ORDER BY id") {
                    for key in ["id", "source", "view"] { hasher.update(integer: Int64(row[key] as Int? ?? -1)) }
                }
            }
        }
        return hasher.finalize()
    }
}

/// The partial file of one extract job: rows go in one transaction per batch, so a killed run leaves
/// the committed batches for the next run with the same job key, which continues after them. The
/// finished file is written by `VACUUM INTO`, so its bytes do not depend on how many runs (or
/// shards) made it.
public final class FeaturesPartial {
    let file: ArtifactFile
    public let url: URL

    /// The partial file at `url` when it belongs to `jobKey`, else a fresh one.
    public init(_ url: URL, jobKey: String) throws {
        self.url = url
        if FileManager.default.fileExists(atPath: url.path) {
            let existing = try? DatabaseQueue(path: url.path, configuration: Artifact.writing)
            let key = try? existing?.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'job_key'") }
            if let existing, key == jobKey {
                file = existing
                return
            }
            try? existing?.close()
            removeDatabaseFiles(at: url)
        }
        file = try Artifact.create(at: url, durable: true)
        try file.write { db in
            try FeaturesStore.createTables(db)
            try Artifact.writeMeta(db, ["job_key": jobKey])
        }
    }

    /// Images done by earlier runs of this job, and the last id among them (0 for none).
    public func progress() throws -> (done: Int, lastID: Int) {
        try file.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(DISTINCT id) FROM features") ?? 0, try Int.fetchOne(db, sql: "SELECT max(id) FROM features") ?? 0)
        }
    }

    /// Appends a batch's rows and maps in one transaction.
    public func append(_ rows: [FeaturesStore.FeatureRow], maps: [FeaturesStore.MapRow]) throws {
        try file.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO features VALUES (?, ?, ?, ?, ?)")
            let insertMap = try db.cachedStatement(sql: "INSERT INTO maps VALUES (?, ?, ?, ?, ?, ?)")
            for row in rows { try insert.execute(arguments: [row.id, row.split, row.label, row.layer, row.vector]) }
            for map in maps { try insertMap.execute(arguments: [map.id, map.layer, map.height, map.width, map.channels, map.data]) }
        }
    }

    /// Empties the rows (a merge starts over).
    public func clear() throws {
        try file.write { db in
            try db.execute(sql: "DELETE FROM features")
            try db.execute(sql: "DELETE FROM maps")
        }
    }

    /// Carries the preprocessed file's `classes` (the vocabulary) and `views` (augmented views: which
    /// image each is a view of, and how it was made) into this one, for train.
    public func carry(from input: ArtifactFile) throws {
        let rows = try input.read { db in try db.tableExists("views") ? try Row.fetchAll(db, sql: "SELECT * FROM views ORDER BY id") : nil }
        try file.write { db in
            try db.execute(sql: "DROP TABLE IF EXISTS classes")
            _ = try ClassesTable.copy(from: input, file: input.path, into: db)
            guard let rows else { return }
            try db.execute(sql: "DROP TABLE IF EXISTS views")
            try PreprocessedStore.createViewsTable(db)
            let insert = try db.cachedStatement(sql: "INSERT INTO views VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            for row in rows {
                try insert.execute(arguments: [row["id"], row["source"], row["view"], row["rotation"], row["dx"], row["dy"], row["scale"],
                                               row["brightness"], row["contrast"], row["flip"]])
            }
        }
    }

    /// Completes the file: content hash, provenance (the `backbone` table), meta, then `VACUUM INTO`
    /// the output, which is committed; the partial file is removed. Returns the content hash.
    public func finish(into final: AtomicOutput, provenance: [String: String], meta extra: [String: String] = [:]) throws -> String {
        let content = try FeaturesStore.contentHash(file)
        try file.write { db in
            for (key, value) in provenance.sorted(by: { $0.key < $1.key }) where !value.isEmpty {
                try db.execute(sql: "INSERT OR REPLACE INTO backbone VALUES (?, ?)", arguments: [key, value])
            }
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS features_split ON features(split, id)")
            let meta = [Artifact.kindKey: FeaturesStore.kind, Artifact.schemaKey: FeaturesStore.schemaVersion, Artifact.contentKey: content,
                        Artifact.toolKey: toolVersion]
            try Artifact.writeMeta(db, meta.merging(extra) { $1 })
        }
        do {
            try file.writeWithoutTransaction { db in
                try db.execute(sql: "DELETE FROM meta WHERE key = 'job_key'")
                try db.execute(sql: "VACUUM INTO ?", arguments: [final.temporaryURL.path])
            }
            try file.close()
            try final.commit()
        } catch {
            final.discard()
            throw error
        }
        removeDatabaseFiles(at: url)
        return content
    }
}

extension PreprocessedStore {
    /// Every image id, ascending.
    public static func imageIDs(_ file: ArtifactFile) throws -> [Int] {
        try file.read { try Int.fetchAll($0, sql: "SELECT id FROM images ORDER BY id") }
    }

    /// The PNGs of the images `ids` that exist.
    public static func pngs(_ file: ArtifactFile, ids: [Int]) throws -> [Int: Data] {
        try file.read { db in
            var pictures: [Int: Data] = [:]
            for id in ids {
                if let png = try Data.fetchOne(db, sql: "SELECT png FROM images WHERE id = ?", arguments: [id]) { pictures[id] = png }
            }
            return pictures
        }
    }
}

extension ImagesStore {
    /// The `sources` table: where each split came from.
    public static func sources(_ file: ArtifactFile) throws -> [(split: String, path: String, sha256: String, rows: Int)] {
        try file.read { db in
            try RecordColumns.fetch(db, file: file.path, table: "sources", sql: "SELECT split, path, sha256, rows FROM sources ORDER BY split") { row in
                (try RecordColumns.text(row, "split"), try RecordColumns.text(row, "path"), try RecordColumns.text(row, "sha256"), try RecordColumns.integer(row, "rows"))
            }
        }
    }

    /// How many images there are (in `split`, when given), and the largest id.
    public static func count(_ file: ArtifactFile, split: String? = nil) throws -> (images: Int, lastID: Int) {
        try file.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM images WHERE ? IS NULL OR split = ?", arguments: [split, split]) ?? 0,
             try Int.fetchOne(db, sql: "SELECT max(id) FROM images") ?? 0)
        }
    }
}
