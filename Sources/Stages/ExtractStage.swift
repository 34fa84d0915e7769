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
        ParameterSpec("layers", .choiceList(ResNet50.blockNames, count: 1 ... ResNet50.blockNames.count), default: Cut.last.description,
                      help: "Where to cut the backbone: block outputs by their Keras names (\(Cut.choices)), comma-separated; each image gets one pooled vector per layer, and the network stops after the deepest."),
        ParameterSpec("keep", .choiceList(ResNet50.blockNames, count: 0 ... 1), default: "",
                      help: "A block output whose whole feature maps are stored too (float16), for fine-tuning the blocks above it: conv4_block6_out for `train --fine-tune conv5`. Empty for none.", value: "layer"),
        ParameterSpec("precision", .choice(["fp32", "bf16"]), default: "fp32",
                      help: "bf16: every convolution's products are of bf16 values (vdpbf16ps, AVX512_BF16), summed in float (the 3x3s' Winograd transforms stay float). Refused on a CPU without AVX512_BF16.",
                      addedLater: true),
    ]

    /// The GEMM kernel checked parameters ask for: the preferred float one, or the bf16 one when
    /// this CPU has it (otherwise an error saying so: no silent fallback).
    public static func kernel(_ parameters: StageParameters) throws -> GEMMKernel {
        try GEMMKernel.checkSelection()
        guard parameters.values["precision"] == "bf16" else { return .preferred }
        guard GEMMKernel.available.contains(.avx512bf16) else {
            throw StageError("--precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps), which bf16 extraction needs; use --precision fp32")
        }
        return .avx512bf16
    }

    /// The cut and the kept layer a stage's checked parameters name.
    public static func cut(_ parameters: StageParameters) throws -> (cut: Cut, keep: Int?) {
        let cut = try Cut(list: parameters.values["layers"] ?? Cut.last.description)
        let keep = parameters.values["keep"].flatMap { ResNet50.blockNames.firstIndex(of: $0) }
        return (cut, keep)
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
        version: 3,
        parameters: parameters,
        output: "features.sqlite",
        reads: ["preprocessed.sqlite"],
        // The GEMM kernel decides the features' last bits: a run on another kernel (another CPU, or
        // SIGNTRANSFER_GEMM) does not count as the same computation.
        environment: { parameters in ["weights used": effectiveWeights(parameters), "gemm": (try? kernel(parameters))?.rawValue ?? "unavailable"] },
        run: { context in
            let requested = try WeightsSpec(context.parameters.values["weights"]!)
            let fallback = context.parameters.values["fallback"].flatMap { $0.isEmpty ? nil : $0 }
            let batch = Int(context.parameters.values["batch"]!)!
            var notes: [String: String] = [:]
            var used = requested
            if requested == .imagenet, !ImageNetWeights.isCached, let fallback {
                do {
                    _ = try ImageNetWeights.locate(showProgress: true)
                } catch {
                    used = try WeightsSpec(fallback)
                    let message = "the ImageNet weights cannot be had (\(error.userMessage)); using the fallback \(fallback): the features are NOT ImageNet features"
                    context.log("extract: warning: \(message)")
                    notes["weights_fallback"] = message
                }
            }
            let (cut, keep) = try cut(context.parameters)
            let report = try Extract.run(.init(input: context.input!, output: context.output, weights: used, batch: batch,
                                               fallbackReason: notes["weights_fallback"], kernel: try kernel(context.parameters), cut: cut, keep: keep))
            if report.randomWeights { context.log("extract: warning: the features come from a RANDOM backbone (\(report.weightsSource))") }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images, environment: ["weights used": used.description], notes: notes)
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
        let parameters = try runner.file.parameters(of: definition.name, specs: definition.parameters)
        guard let upstream = runner.upstream(of: definition), let record = runner.manifest.stages[upstream] else {
            throw StageError("extract needs the output of preprocess, which the manifest does not record: run preprocess first")
        }
        let weights = try WeightsSpec(effectiveWeights(parameters))
        let (cut, keep) = try cut(parameters)
        let report = try Extract.run(.init(input: URL(fileURLWithPath: record.output.path), output: runner.output(of: definition),
                                           weights: weights, batch: Int(parameters.values["batch"]!)!, kernel: try kernel(parameters), cut: cut, keep: keep),
                                     shard: shard)
        print("extract \(shard): \(report.images) images, content \(report.contentSHA256.prefix(12))")
    }

    /// The weights a run would use now: ImageNet when its file is cached (or there is no fallback, so
    /// the run will try to download it), else the fallback.
    public static func effectiveWeights(_ parameters: StageParameters) -> String {
        let weights = parameters.values["weights"] ?? "imagenet"
        let fallback = parameters.values["fallback"] ?? ""
        if weights == "imagenet", !fallback.isEmpty, !ImageNetWeights.isCached { return fallback }
        return weights
    }
}
