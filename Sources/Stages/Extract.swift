import Artifacts
import Backbone
import Foundation
import Imaging
import Numerical
import PipelineKit
import WeightsFetch

/// The extract stage: preprocessed PNGs through a frozen backbone, cut at one or more block
/// outputs, to one pooled vector per image and layer (and, with `keep`, one layer's whole maps).
///
/// Work goes into `.NAME.partial` beside the output, one transaction per batch, under `.NAME.lock`.
/// A run killed at any point leaves the committed batches there; the next run with the same input,
/// weights and batch size continues after them. The finished file is written by `VACUUM INTO`, so
/// its bytes do not depend on how many runs it took.
public enum Extract {
    /// Images per forward pass.
    public static let batchSizes = 1 ... 1024

    public struct Options {
        public var input: URL
        public var output: URL
        public var weights: WeightsSpec
        public var batch: Int
        public var showProgress: Bool
        /// Why `weights` stands in for other, requested weights (a pipeline's fallback); kept in the
        /// output's provenance.
        public var fallbackReason: String?
        /// The GEMM path (the CPU's best unless SIGNTRANSFER_GEMM=blas).
        public var kernel: GEMMKernel
        /// The backbone and the block outputs whose pooled vectors are stored; the network stops
        /// after the deepest.
        public var cut: Cut
        /// A block output (index into the backbone's nodes) whose whole maps are stored too.
        public var keep: Int?

        public init(input: URL, output: URL, weights: WeightsSpec = .imagenet, batch: Int = 32, showProgress: Bool = true,
                    fallbackReason: String? = nil, kernel: GEMMKernel = .preferred, cut: Cut = Backbones.standard.lastCut, keep: Int? = nil) {
            self.cut = cut
            self.keep = keep
            self.fallbackReason = fallbackReason
            self.kernel = kernel
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
        public var cut: Cut
        /// Seconds spent running images through the network (what the progress bar's rate counts),
        /// without loading the weights; nil for a merge.
        public var extractSeconds: Double? = nil
    }

    /// One shard of N: a deterministic share of the input's batches, so that scheduler array tasks
    /// can each take one.
    public struct Shard: Equatable, Sendable, CustomStringConvertible {
        public var index: Int
        public var count: Int

        public init(index: Int, count: Int) throws {
            guard count >= 1, (0 ..< count).contains(index) else {
                throw StageError("shard \(index)/\(count): expected K/N with 0 <= K < N")
            }
            self.index = index
            self.count = count
        }

        /// "K/N".
        public init(_ text: String) throws {
            let parts = text.split(separator: "/")
            guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
                throw StageError("--shard \(text): expected K/N, e.g. 0/4 for the first of four shards")
            }
            try self.init(index: index, count: count)
        }

        public var description: String { "\(index)/\(count)" }

        /// The shard file for the output `features.sqlite`: `features.shard-K-of-N.sqlite` beside it.
        public func file(for output: URL) -> URL {
            let stem = output.deletingPathExtension().lastPathComponent
            return output.deletingLastPathComponent().appendingPathComponent("\(stem).shard-\(index)-of-\(count).\(output.pathExtension)")
        }
    }

    public static let shardKind = "signtransfer.features-shard"

    /// The input's batches as id ranges, `batch` images each in id order: the very batches a
    /// one-process run makes. A shard takes batches b with b % N == K, so every image goes through
    /// the network in the same company as in one process, and the merged features are identical.
    static func batches(_ input: ArtifactFile, batch: Int) throws -> [(ids: ClosedRange<Int>, count: Int)] {
        let ids = try PreprocessedStore.imageIDs(input)
        return stride(from: 0, to: ids.count, by: batch).map { start in
            let end = min(start + batch, ids.count)
            return (ids[start] ... ids[end - 1], end - start)
        }
    }

    public static func run(_ options: Options, shard: Shard? = nil) throws -> Report {
        guard batchSizes.contains(options.batch) else {
            throw StageError("--batch \(options.batch): choose \(batchSizes.lowerBound) to \(batchSizes.upperBound)")
        }
        let cut = options.cut, architecture = cut.architecture
        if let keep = options.keep, !architecture.nodes.indices.contains(keep) {
            throw StageError("--keep: block \(keep) is not one of \(architecture.name)'s \(architecture.nodes.count) block outputs")
        }
        let keptName = options.keep.map { architecture.nodes[$0].name } ?? ""
        let (input, inputMeta) = try PreprocessedStore.open(options.input)
        let params = try PreprocessedStore.params(input)
        guard let size = params["size"].flatMap(Int.init), size >= architecture.minimumSize else {
            throw StageError("\(options.input.path): its params table has no usable size (found \(params["size"] ?? "none"))")
        }
        // The views table is carried into the output: checked now, not after every image has run.
        _ = try FeaturesStore.views(input)
        var batches = try self.batches(input, batch: options.batch)
        guard !batches.isEmpty else { throw StageError("\(options.input.path): the input holds no images") }
        if let shard { batches = batches.enumerated().filter { $0.offset % shard.count == shard.index }.map(\.element) }
        let total = batches.reduce(0) { $0 + $1.count }

        let final = try AtomicOutput(shard?.file(for: options.output) ?? options.output, inputs: [options.input])
        let folder = final.finalURL.deletingLastPathComponent()
        let name = final.finalURL.lastPathComponent
        let lock = try FileLock(folder.appendingPathComponent(".\(name).lock"), what: final.finalURL.path)
        defer { lock.release() }

        let weights = try options.weights.resolve(for: architecture, showProgress: options.showProgress)
        let network = try architecture.build(weights.provider, options.kernel, size)
        let weightsMD5 = try weights.md5
        // The kernel is part of the key: ours and OpenBLAS's differ in the last bits.
        let jobKey = Array("\(inputMeta[Artifact.contentKey] ?? "")|\(weightsMD5)|\(size)|\(options.batch)|\(shard?.description ?? "")|\(network.kernel.rawValue)|\(toolVersion)|\(cut)|\(keptName)".utf8)
            .withUnsafeBytes { sha256(of: $0) }

        let partialURL = folder.appendingPathComponent(".\(name).partial")
        let partial = try FeaturesPartial(partialURL, jobKey: jobKey)
        let (resumed, lastID) = try partial.progress()
        let progress = options.showProgress ? ProgressBar(shard.map { "extract \($0)" } ?? "extract", total: total) : nil
        if resumed > 0 {
            if options.showProgress { FileHandle.standardError.write(Data("extract: resuming after \(resumed) images done by an earlier run\n".utf8)) }
            progress?.advance(by: resumed)
        }

        let workspace = network.makeWorkspace(count: options.batch, size: size)
        // One buffer per layer cut at, [batch x channels]; the kept maps [batch x side x side x channels].
        let pooled = cut.channels.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: options.batch * $0) }
        let mapShape = options.keep.map { (side: architecture.nodes[$0].side(size), channels: architecture.nodes[$0].channels) }
        let mapFloats = mapShape.map { $0.side * $0.side * $0.channels } ?? 0
        let maps = UnsafeMutableBufferPointer<Float>.allocate(capacity: options.batch * mapFloats)
        defer {
            pooled.forEach { $0.deallocate() }
            maps.deallocate()
        }
        let extractStarted = Date()
        for (range, _) in batches where range.upperBound > lastID {
            let images = try PreprocessedStore.images(input, ids: range)
            try decode(images, size: size, preprocessing: architecture.preprocessing, into: workspace.input)
            network.forward(workspace, count: images.count, taps: cut.blocks, into: pooled.map { $0.baseAddress! },
                            keep: options.keep.map { ($0, maps.baseAddress!) })
            var rows: [FeaturesStore.FeatureRow] = [], mapRows: [FeaturesStore.MapRow] = []
            for (row, image) in images.enumerated() {
                for (tap, name) in cut.names.enumerated() {
                    let channels = cut.channels[tap]
                    let vector = UnsafeBufferPointer(rebasing: pooled[tap][row * channels ..< (row + 1) * channels])
                    rows.append(.init(id: image.id, split: image.split, label: image.label, layer: name, vector: FeaturesStore.encode(vector)))
                }
                if let mapShape {
                    let map = UnsafeBufferPointer(rebasing: maps[row * mapFloats ..< (row + 1) * mapFloats])
                    mapRows.append(.init(id: image.id, layer: keptName, height: mapShape.side, width: mapShape.side, channels: mapShape.channels,
                                         data: FeaturesStore.encodeHalf(map)))
                }
            }
            try partial.append(rows, maps: mapRows)
            progress?.advance(by: images.count)
        }
        progress?.finish()
        let extractSeconds = Date().timeIntervalSince(extractStarted)

        let provenance = ["weights": weights.source, "weights_md5": weightsMD5, "random": weights.isRandom ? "1" : "0",
                          "input_size": String(size), "architecture": architecture.title, "preprocessing": architecture.preprocessing.description,
                          // Only for another backbone than ResNet50: its files are exactly as before.
                          "backbone": architecture.name == Backbones.defaultName ? "" : architecture.name,
                          "input_content_sha256": inputMeta[Artifact.contentKey] ?? "", "weights_fallback": options.fallbackReason ?? "",
                          "gemm": network.kernel.rawValue, "layers": cut.description, "keep": keptName,
                          "source_geometry": params["source_geometry"] ?? "", "crop_to_aspect_ratio": params["crop_to_aspect_ratio"] ?? "",
                          // Only for bf16: a float extraction's file is exactly as before the option.
                          "precision": network.kernel == .avx512bf16 ? "bf16" : ""]
        var meta: [String: String] = [:]
        if let shard {
            meta = [Artifact.kindKey: shardKind, "shard_index": String(shard.index), "shard_count": String(shard.count),
                    "batch": String(options.batch)]
        }
        if shard == nil { try partial.carry(from: input) }
        let content = try partial.finish(into: final, provenance: provenance, meta: meta)
        return Report(images: total, resumed: resumed, contentSHA256: content, weightsSource: weights.source,
                      randomWeights: weights.isRandom, size: size, cut: cut, extractSeconds: extractSeconds)
    }

    /// Combines the shard files of `output` into it: every image of the input present exactly once,
    /// every shard made from the same input, weights and size; the result is the file one process
    /// would have written. Names what is missing or inconsistent.
    public static func merge(input: URL, output: URL, shards count: Int) throws -> Report {
        guard count >= 1 else { throw StageError("--shards \(count): there is at least one shard") }
        let (inputQueue, inputMeta) = try PreprocessedStore.open(input)
        let inputContent = inputMeta[Artifact.contentKey] ?? ""
        var missing: [Int] = []
        var shards: [(index: Int, queue: ArtifactFile, meta: [String: String], provenance: [String: String])] = []
        for index in 0 ..< count {
            let file = try Shard(index: index, count: count).file(for: output)
            guard FileManager.default.fileExists(atPath: file.path) else {
                missing.append(index)
                continue
            }
            let (queue, meta) = try Artifact.open(file, kind: shardKind, role: "a shard of extract (\(file.lastPathComponent))", versions: [FeaturesStore.schemaVersion])
            shards.append((index, queue, meta, try FeaturesStore.backbone(queue)))
        }
        guard missing.isEmpty else {
            throw StageError("cannot merge \(output.lastPathComponent): shard\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) of \(count) \(missing.count == 1 ? "is" : "are") missing or unfinished; run \(missing.count == 1 ? "it" : "them") again")
        }
        let first = shards[0]
        for shard in shards {
            for key in ["input_content_sha256", "weights_md5", "input_size", "layers", "keep", "backbone"] where shard.provenance[key] != first.provenance[key] {
                throw StageError("cannot merge: shard \(shard.index) has \(key) \(shard.provenance[key] ?? "none"), shard \(first.index) has \(first.provenance[key] ?? "none")")
            }
            guard shard.meta["shard_count"] == String(count), shard.meta["batch"] == first.meta["batch"] else {
                throw StageError("cannot merge: shard \(shard.index) was made as one of \(shard.meta["shard_count"] ?? "?") with batch \(shard.meta["batch"] ?? "?")")
            }
        }
        // Checked before anything is written. bf16 is another precision: no mix. Our AVX-512 and AVX2
        // kernels give the same bits, so their shards merge (the file names both); OpenBLAS's last
        // bits are its own, so a mix with it would make the features depend on which machine made
        // which shard.
        let precisions = Set(shards.map { $0.provenance["precision"] ?? "fp32" })
        if precisions.count > 1 {
            let named = shards.map { "shard \($0.index) \($0.provenance["precision"] ?? "fp32")" }.joined(separator: ", ")
            throw StageError("cannot merge shards of different precisions (\(named)): extract the others again with the same --precision")
        }
        let kernels = Set(shards.map { $0.provenance["gemm"] ?? "" })
        if kernels.count > 1 {
            let known = kernels.compactMap(GEMMKernel.init(rawValue:))
            guard known.count == kernels.count, known.allSatisfy({ $0.sameBits(as: known[0]) }) else {
                let named = shards.map { "shard \($0.index) \($0.provenance["gemm"] ?? "unknown")" }.joined(separator: ", ")
                throw StageError("cannot merge shards made with GEMM kernels that give different bits (\(named)): extract those shards again "
                                 + "on one kind of CPU, or with the same SIGNTRANSFER_GEMM (avx512 and avx2 mix; blas mixes with nothing)")
            }
        }
        guard first.provenance["input_content_sha256"] == inputContent else {
            throw StageError("cannot merge: the shards were made from another input (content \(first.provenance["input_content_sha256"]?.prefix(12) ?? "none"), \(input.lastPathComponent) has \(inputContent.prefix(12)))")
        }
        let expected = try PreprocessedStore.imageIDs(inputQueue)
        var owner: [Int: Int] = [:]
        for shard in shards {
            for id in try FeaturesStore.imageIDs(shard.queue) {
                if let other = owner[id] { throw StageError("cannot merge: image \(id) is in shard \(other) and in shard \(shard.index)") }
                owner[id] = shard.index
            }
        }
        let absent = expected.filter { owner[$0] == nil }
        guard absent.isEmpty else {
            throw StageError("cannot merge: \(absent.count) image(s) are in no shard (ids \(absent.prefix(5).map(String.init).joined(separator: ", "))\(absent.count > 5 ? ", ..." : ""))")
        }
        guard owner.count == expected.count else { throw StageError("cannot merge: the shards hold images the input does not") }

        let final = try AtomicOutput(output, inputs: [input])
        let folder = final.finalURL.deletingLastPathComponent()
        let lock = try FileLock(folder.appendingPathComponent(".\(final.finalURL.lastPathComponent).lock"), what: final.finalURL.path)
        defer { lock.release() }
        let partialURL = folder.appendingPathComponent(".\(final.finalURL.lastPathComponent).partial")
        let partial = try FeaturesPartial(partialURL, jobKey: "merge")
        // Rows in id order, as one process inserts them.
        try partial.clear()
        for range in stride(from: 0, to: expected.count, by: 256).map({ expected[$0] ... expected[min($0 + 256, expected.count) - 1] }) {
            var rows: [FeaturesStore.FeatureRow] = [], mapRows: [FeaturesStore.MapRow] = []
            for shard in shards {
                let found = try FeaturesStore.rows(shard.queue, ids: range)
                rows += found.features
                mapRows += found.maps
            }
            try partial.append(rows.sorted { ($0.id, $0.layer) < ($1.id, $1.layer) }, maps: mapRows.sorted { ($0.id, $0.layer) < ($1.id, $1.layer) })
        }
        for shard in shards { try shard.queue.close() }
        var provenance = first.provenance
        if kernels.count > 1 { provenance["gemm"] = kernels.sorted().joined(separator: ", ") }
        try partial.carry(from: inputQueue)
        let content = try partial.finish(into: final, provenance: provenance)
        return Report(images: expected.count, resumed: 0, contentSHA256: content, weightsSource: first.provenance["weights"] ?? "",
                      randomWeights: first.provenance["random"] == "1", size: Int(first.provenance["input_size"] ?? "") ?? 0,
                      cut: try BackboneProvenance.cut(first.provenance["layers"], of: try BackboneProvenance.architecture(first.provenance, file: output.path), file: output.path, table: "backbone"))
    }

    /// Decodes PNGs on all cores straight into the network's input buffer, caffe-preprocessed.
    static func decode(_ images: [PreprocessedStore.Image], size: Int, preprocessing: InputPreprocessing, into input: UnsafeMutablePointer<Float>) throws {
        var failures = [String?](repeating: nil, count: images.count)
        failures.withUnsafeMutableBufferPointer { failures in
            parallelFor(images.count) { index in
                do {
                    let bitmap = try PNG.decode(images[index].png, channels: 3)
                    guard bitmap.width == size, bitmap.height == size else {
                        failures[index] = "image \(images[index].id) is \(bitmap.width)x\(bitmap.height), expected \(size)x\(size)"
                        return
                    }
                    bitmap.pixels.withUnsafeBufferPointer { preprocessing.apply(rgb: $0, into: input + index * size * size * 3) }
                } catch {
                    failures[index] = "image \(images[index].id): \(error.userMessage)"
                }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw StageError("preprocessed input: \(failure)") }
    }
}
