import Backbone
import Foundation
import Numerical
import PipelineKit
import WeightsFetch

/// The extract stage as a pipeline runs it. `fallback` (e.g. random:0) is used only when the
/// `weights` cannot be had (no network, no cached file): announced as a warning, recorded in the
/// manifest as the weights actually used, and shown by the report.
public enum ExtractStage {
    /// Declared once for the pipeline file, the `extract` command line and the fingerprint.
    public static let parameters = [
        ParameterSpec("weights", .checkedText(weightsProblem), default: "imagenet", help: "imagenet, a Keras .h5 weights file, or random:SEED."),
        ParameterSpec("fallback", .checkedText { $0.isEmpty ? nil : weightsProblem($0) }, default: "", help: "Weights to use only when the ImageNet weights cannot be had (no network, nothing cached), e.g. random:0; said loudly and recorded."),
        ParameterSpec("batch", .integer(Extract.batchSizes), default: "32",
                      help: "Images per forward pass, \(Extract.batchSizes.lowerBound) to \(Extract.batchSizes.upperBound)."),
        ParameterSpec("backbone", .choice(Backbones.names), default: Backbones.defaultName,
                      help: "The ImageNet network the features come from: \(Backbones.names.joined(separator: ", ")).", addedLater: true),
        ParameterSpec("layers", .choiceList(Backbones.allNodeNames, count: 0 ... Backbones.allNodeNames.count, summary: Backbones.nodeSummary), default: "",
                      help: "Where to cut the backbone: block outputs by their Keras layer names (\(Backbones.nodeSummary)), comma-separated; each image gets one pooled vector per layer, and the network stops after the deepest. Empty: the backbone's end (resnet50: conv5_block3_out)."),
        ParameterSpec("keep", .choiceList(Backbones.allNodeNames, count: 0 ... 1, summary: Backbones.nodeSummary), default: "",
                      help: "A block output whose whole feature maps are stored too (float16), for fine-tuning the blocks above it: conv4_block6_out for `train --fine-tune conv5` on resnet50. Empty for none.", value: "layer"),
        ParameterSpec("precision", .choice(["fp32", "bf16"]), default: "fp32",
                      help: "bf16: every convolution's products are of bf16 values (vdpbf16ps, AVX512_BF16), summed in float (the 3x3s run Winograd with bf16 products too; its transforms stay float). Refused on a CPU without AVX512_BF16.",
                      addedLater: true),
    ]

    /// The stage's checked parameters, typed: built once from canonical values, the one way to the
    /// stage's options (pipeline, command line, shards and Slurm alike).
    public struct Params: Sendable {
        public var architecture: Architecture
        public var weights: WeightsSpec
        /// nil: no fallback.
        public var fallback: WeightsSpec?
        public var batch: Int
        public var cut: Cut
        /// Index of the node whose whole maps are stored, or nil.
        public var keep: Int?
        public var bf16: Bool
        /// The weights and fallback values as written (what the fingerprint's environment records).
        let weightsText: String, fallbackText: String

        public init(_ parameters: StageParameters) throws {
            architecture = try Backbones.named(try parameters.text("backbone", default: Backbones.defaultName))
            weightsText = try parameters.text("weights")
            weights = try WeightsSpec(weightsText)
            fallbackText = try parameters.text("fallback", default: "")
            fallback = fallbackText.isEmpty ? nil : try WeightsSpec(fallbackText)
            batch = try parameters.integer("batch")
            let layers = try parameters.text("layers", default: "")
            cut = layers.isEmpty ? architecture.lastCut : try Cut(list: layers, of: architecture)
            let keep = try parameters.text("keep", default: "")
            if keep.isEmpty {
                self.keep = nil
            } else {
                guard let index = architecture.nodeIndex(keep) else {
                    throw StageError("keep: \(keep) is not a block output of \(architecture.name); choose from \(Cut.choices(architecture))")
                }
                self.keep = index
            }
            bf16 = try parameters.text("precision", default: "fp32") == "bf16"
            if bf16, !architecture.bf16 {
                throw StageError("precision bf16: it does not pay for \(architecture.name) (measured slower than fp32: its products are too short for the conversion to bf16 to pay); use fp32")
            }
        }

        /// The GEMM kernel they ask for: the preferred float one, or the bf16 one when this CPU has
        /// it (otherwise an error saying so: no silent fallback).
        public func kernel() throws -> GEMMKernel {
            try GEMMKernel.checkSelection()
            guard bf16 else { return .preferred }
            guard GEMMKernel.available.contains(.avx512bf16) else {
                throw StageError("--precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps), which bf16 extraction needs; use --precision fp32")
            }
            return .avx512bf16
        }

        /// The weights a run would use now: ImageNet when its file is cached (or there is no
        /// fallback, so the run will try to download it), else the fallback.
        public var effectiveWeights: WeightsSpec {
            if weights == .imagenet, let fallback, !ImageNetWeights(architecture).isCached { return fallback }
            return weights
        }

        /// `effectiveWeights` as written.
        public var effectiveWeightsText: String { effectiveWeights == weights ? weightsText : fallbackText }

        /// Extract's options for these parameters.
        public func options(input: URL, output: URL, weights: WeightsSpec? = nil, fallbackReason: String? = nil, showProgress: Bool = true) throws -> Extract.Options {
            Extract.Options(input: input, output: output, weights: weights ?? self.weights, batch: batch, showProgress: showProgress,
                            fallbackReason: fallbackReason, kernel: try kernel(), cut: cut, keep: keep)
        }
    }

    /// What is wrong with a weights value, or nil: the same rule as `WeightsSpec`'s.
    @Sendable static func weightsProblem(_ text: String) -> String? {
        guard text.hasPrefix("random:"), UInt64(text.dropFirst("random:".count)) == nil else { return text.isEmpty ? "expected imagenet, a Keras .h5 file or random:SEED, found nothing" : nil }
        return "expected random:SEED with SEED a whole number, e.g. random:0, found '\(excerpt(text))'"
    }

    /// What the `extract` command line takes of them (the fallback is a pipeline's decision).
    public static var commandLineParameters: [ParameterSpec] { parameters.filter { $0.name != "fallback" } }

    public static let definition = StageDefinition(
        name: "extract",
        // 2: Winograd and our own GEMM changed the features' last bits. 3: a row per layer (cut anywhere).
        // 4: the classes table, in the content hash (the vectors are the same bytes).
        version: 4,
        parameters: parameters,
        output: "features.sqlite",
        reads: ["preprocessed.sqlite"],
        // The GEMM kernel decides the features' last bits: a run on another kernel (another CPU, or
        // SIGNTRANSFER_GEMM) does not count as the same computation.
        environment: { parameters in
            let params = try? Params(parameters)
            return ["weights used": params?.effectiveWeightsText ?? "unavailable", "gemm": (try? params?.kernel())??.rawValue ?? "unavailable"]
        },
        check: { parameters in
            do { _ = try Params(parameters) } catch { return error.userMessage }
            return nil
        },
        run: { context in
            let params = try Params(context.parameters)
            var notes: [String: String] = [:]
            var used = params.weights
            let published = ImageNetWeights(params.architecture)
            if params.weights == .imagenet, !published.isCached, let fallback = params.fallback {
                do {
                    _ = try published.locate(showProgress: true)
                } catch {
                    used = fallback
                    let message = "the ImageNet weights cannot be had (\(error.userMessage)); using the fallback \(fallback): the features are NOT ImageNet features"
                    context.log("extract: warning: \(message)")
                    notes["weights_fallback"] = message
                }
            }
            let report = try Extract.run(try params.options(input: context.input!, output: context.output, weights: used, fallbackReason: notes["weights_fallback"]))
            if report.randomWeights { context.log("extract: warning: the features come from a RANDOM backbone (\(report.weightsSource))") }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images, environment: ["weights used": used == params.weights ? params.weightsText : params.fallbackText], notes: notes)
        })

    /// One shard of the pipeline's extract stage (`extract --pipeline FILE --shard K/N`, or a
    /// scheduler array task): the input from the manifest, the parameters from the file, the shard
    /// file in the artifacts folder. The merge records the stage.
    /// No pipeline lock is taken: the tasks run at once, while the pipeline that submitted them holds it.
    /// `settings` and `workspace`: a sweep's variant (its `--set` values, its own folder).
    public static func runShard(_ shard: Extract.Shard, pipeline path: String, settings: [String] = [], workspace: String? = nil) throws {
        var file = try PipelineFile(URL(fileURLWithPath: path), knownStages: PipelineStages.names)
            .applying(settings.map { try ParameterSetting(parsing: $0) }, knownStages: PipelineStages.names)
        if let workspace { file.artifacts = URL(fileURLWithPath: workspace).standardizedFileURL }
        let runner = try PipelineRunner(file: file, stages: PipelineStages.all)
        let params = try Params(try runner.file.parameters(of: definition.name, specs: definition.parameters))
        guard let upstream = runner.upstream(of: definition), let record = runner.manifest.stages[upstream] else {
            throw StageError("extract needs the output of preprocess, which the manifest does not record: run preprocess first")
        }
        let report = try Extract.run(try params.options(input: URL(fileURLWithPath: record.output.path), output: runner.output(of: definition),
                                                        weights: params.effectiveWeights), shard: shard)
        print("extract \(shard): \(report.images) images, content \(report.contentSHA256.prefix(12))")
    }
}
