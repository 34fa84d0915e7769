import Dataset
import Foundation
import GRDB
import Imaging
import PipelineKit

/// The extract stage: preprocessed PNGs through the frozen ResNet50 to one 2048-vector per image.
///
/// Work goes into `.NAME.partial` beside the output, one transaction per batch, under `.NAME.lock`.
/// A run killed at any point leaves the committed batches there; the next run with the same input,
/// weights and batch size continues after them. The finished file is written by `VACUUM INTO`, so
/// its bytes do not depend on how many runs it took.
public enum Extract {
    public static let architecture = "ResNet50 v1 (Keras), include_top=False, global average pooling"
    public static let preprocessing = "caffe: RGB to BGR, minus [103.939, 116.779, 123.68], no scaling"

    public struct Options {
        public var input: URL
        public var output: URL
        public var weights: WeightsSpec
        public var batch: Int
        public var showProgress: Bool
        /// Why `weights` stands in for other, requested weights (a pipeline's fallback); kept in the
        /// output's provenance.
        public var fallbackReason: String?

        public init(input: URL, output: URL, weights: WeightsSpec = .imagenet, batch: Int = 32, showProgress: Bool = true,
                    fallbackReason: String? = nil) {
            self.fallbackReason = fallbackReason
            self.input = input
            self.output = output
            self.weights = weights
            self.batch = batch
            self.showProgress = showProgress
        }
    }

    public struct Report: Sendable {
        public var images: Int
        /// Images already done by an earlier, interrupted run.
        public var resumed: Int
        public var contentSHA256: String
        public var weightsSource: String
        public var randomWeights: Bool
        public var size: Int
    }

    public static func run(_ options: Options) throws -> Report {
        guard (1 ... 1024).contains(options.batch) else { throw StageError("--batch \(options.batch): choose 1 to 1024") }
        let (input, inputMeta) = try PreprocessedStore.open(options.input)
        let params = try PreprocessedStore.params(input)
        guard let size = params["size"].flatMap(Int.init), size >= ResNet50.minimumSize else {
            throw StageError("\(options.input.path): its params table has no usable size (found \(params["size"] ?? "none"))")
        }
        let total = try input.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM images") ?? 0 }
        guard total > 0 else { throw StageError("\(options.input.path): the input holds no images") }

        let final = try AtomicOutput(options.output)
        let folder = final.finalURL.deletingLastPathComponent()
        let name = final.finalURL.lastPathComponent
        let lock = try FileLock(folder.appendingPathComponent(".\(name).lock"), what: final.finalURL.path)
        defer { lock.release() }

        let weights = try options.weights.resolve(showProgress: options.showProgress)
        let network = try ResNet50(weights: weights.provider)
        let jobKey = Array("\(inputMeta[Artifact.contentKey] ?? "")|\(weights.md5)|\(size)|\(options.batch)|\(toolVersion)".utf8)
            .withUnsafeBytes { sha256(of: $0) }

        let partialURL = folder.appendingPathComponent(".\(name).partial")
        let partial = try openPartial(partialURL, jobKey: jobKey)
        let (resumed, lastID) = try partial.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM features") ?? 0, try Int.fetchOne(db, sql: "SELECT max(id) FROM features") ?? 0)
        }
        let progress = options.showProgress ? ProgressBar("extract", total: total) : nil
        if resumed > 0 {
            if options.showProgress { FileHandle.standardError.write(Data("extract: resuming after \(resumed) images done by an earlier run\n".utf8)) }
            progress?.advance(by: resumed)
        }

        let workspace = network.makeWorkspace(count: options.batch, size: size)
        var features = [Float](repeating: 0, count: options.batch * ResNet50.featureCount)
        try PreprocessedStore.forEachBatch(input, after: lastID, batch: options.batch) { images in
            try decode(images, size: size, into: workspace.activations[0])
            features.withUnsafeMutableBufferPointer { network.forward(workspace, count: images.count, into: $0.baseAddress!) }
            try partial.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO features VALUES (?, ?, ?, ?)")
                try features.withUnsafeBufferPointer { all in
                    for (row, image) in images.enumerated() {
                        let vector = UnsafeBufferPointer(rebasing: all[row * ResNet50.featureCount ..< (row + 1) * ResNet50.featureCount])
                        try insert.execute(arguments: [image.id, image.split, image.label, FeaturesStore.encode(vector)])
                    }
                }
            }
            progress?.advance(by: images.count)
        }
        progress?.finish()

        let content = try contentHash(partial)
        try partial.write { db in
            let provenance = ["weights": weights.source, "weights_md5": weights.md5, "random": weights.isRandom ? "1" : "0",
                              "input_size": String(size), "architecture": architecture, "preprocessing": preprocessing,
                              "input_content_sha256": inputMeta[Artifact.contentKey] ?? "", "weights_fallback": options.fallbackReason ?? ""]
            for (key, value) in provenance.sorted(by: { $0.key < $1.key }) where !value.isEmpty {
                try db.execute(sql: "INSERT OR REPLACE INTO backbone VALUES (?, ?)", arguments: [key, value])
            }
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS features_split ON features(split, id)")
            try Artifact.writeMeta(db, [Artifact.kindKey: FeaturesStore.kind, "schema_version": "1",
                                        Artifact.contentKey: content, "tool_version": toolVersion])
        }
        do {
            try partial.writeWithoutTransaction { db in
                try db.execute(sql: "DELETE FROM meta WHERE key = 'job_key'")
                try db.execute(sql: "VACUUM INTO ?", arguments: [final.temporaryURL.path])
            }
            try partial.close()
            try final.commit()
        } catch {
            final.discard()
            throw error
        }
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(partialURL.path + suffix) }
        return Report(images: total, resumed: resumed, contentSHA256: content, weightsSource: weights.source,
                      randomWeights: weights.isRandom, size: size)
    }

    /// The partial file of this job, or a fresh one when there is none or it belongs to another job.
    static func openPartial(_ url: URL, jobKey: String) throws -> DatabaseQueue {
        if FileManager.default.fileExists(atPath: url.path) {
            let existing = try? DatabaseQueue(path: url.path)
            let key = try? existing?.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'job_key'") }
            if let existing, key == jobKey { return existing }
            try? existing?.close()
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(url.path + suffix) }
        }
        let queue = try Artifact.create(at: url, durable: true)
        try queue.write { db in
            try FeaturesStore.createTables(db)
            try Artifact.writeMeta(db, ["job_key": jobKey])
        }
        return queue
    }

    /// Decodes PNGs on all cores straight into the network's input buffer, caffe-preprocessed.
    static func decode(_ images: [PreprocessedStore.Image], size: Int, into input: UnsafeMutablePointer<Float>) throws {
        var failures = [String?](repeating: nil, count: images.count)
        failures.withUnsafeMutableBufferPointer { failures in
            parallelFor(images.count) { index in
                do {
                    let bitmap = try PNG.decode(images[index].png, channels: 3)
                    guard bitmap.width == size, bitmap.height == size else {
                        failures[index] = "image \(images[index].id) is \(bitmap.width)x\(bitmap.height), expected \(size)x\(size)"
                        return
                    }
                    bitmap.pixels.withUnsafeBufferPointer { ResNet50.preprocess(rgb: $0, into: input + index * size * size * 3) }
                } catch {
                    failures[index] = "image \(images[index].id): \(error.userMessage)"
                }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw StageError("preprocessed input: \(failure)") }
    }

    static func contentHash(_ queue: DatabaseQueue) throws -> String {
        var hasher = ContentHasher()
        try queue.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT id, split, label, vector FROM features ORDER BY id")
            while let row = try rows.next() {
                hasher.update(integer: Int64(row["id"] as Int))
                hasher.update(row["split"] as String)
                hasher.update(integer: Int64(row["label"] as Int))
                (row["vector"] as Data).withUnsafeBytes { hasher.update($0) }
            }
        }
        return hasher.finalize()
    }
}
