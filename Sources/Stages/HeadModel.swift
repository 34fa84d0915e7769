import Artifacts
import Backbone
import FineTune
import Foundation
import Head
import PipelineKit
import WeightsFetch

/// A trained head as predict needs it: the classifier (standardization and network), its classes
/// and the provenance it was trained with, from `head.sqlite`.
public struct HeadModel: Sendable {
    public var classifier: Classifier
    public var network: DenseNetwork { classifier.network }
    /// The label of each output unit, and its class name.
    public var labels: [Int]
    public var names: [String]
    public var params: [String: String]
    /// The fine-tuned convolutions (Keras layer name to raw kernel and bias); empty for a head on frozen features.
    public var backboneWeights: [String: ConvWeights]

    public init(_ url: URL) throws {
        let stored = try HeadStore.load(url)
        let layers = stored.layers.map { DenseNetwork.Layer(inputs: $0.inputs, outputs: $0.outputs, weights: $0.weights, bias: $0.bias) }
        classifier = Classifier(standardization: stored.standardization.map { Standardization(mean: $0.mean, deviation: $0.deviation) },
                                network: DenseNetwork(layers: layers, dropout: 0))
        labels = stored.labels
        names = stored.names
        params = stored.params
        backboneWeights = stored.backboneWeights.mapValues { ConvWeights(kernel: $0.kernel, bias: $0.bias) }
    }
}

extension HeadModel {
    /// The geometry every training original had, or nil when they varied. Heads from before
    /// geometry was recorded were trained on Sign MNIST's 28x28 grey.
    public var sourceGeometry: (width: Int, height: Int, channels: Int)? {
        let geometry = params["backbone_source_geometry"].flatMap { $0.isEmpty ? nil : $0 } ?? "28x28x1"
        let parts = geometry.split(separator: "x").compactMap { Int($0) }
        return parts.count == 3 ? (parts[0], parts[1], parts[2]) : nil
    }

    /// The backbone a head needs, as its provenance names it: the input size, the weights (MD5
    /// checked: a head used with other weights is refused, saying which), with a fine-tuned head's
    /// conv5 in place of the file's, and the layers it reads. `weights` and `size`, when given, must be
    /// those it was trained with.
    public struct Backbone {
        public var architecture: Architecture
        public var size: Int
        public var weights: any BackboneWeights
        public var source: String
        public var md5: String
        public var cut: Cut
    }

    public func backbone(file: String, weights: WeightsSpec? = nil, size: Int? = nil) throws -> Backbone {
        guard let trainedSize = params["backbone_input_size"].flatMap(Int.init), let trainedWeights = params["backbone_weights"],
              let trainedMD5 = params["backbone_weights_md5"] else {
            throw StageError("\(file): the head does not record the backbone it was trained on (backbone_input_size, backbone_weights)")
        }
        if let size, size != trainedSize {
            throw StageError("\(file): the head was trained on \(trainedSize)x\(trainedSize) images, not \(size)x\(size)")
        }
        let architecture = try BackboneProvenance.architecture(params, file: file, table: "params", key: "backbone_backbone")
        let spec = try weights ?? WeightsSpec(trainedWeights)
        let resolved = try spec.resolve(for: architecture, showProgress: false)
        guard try resolved.md5 == trainedMD5 else {
            throw StageError("\(file): the head was trained on features of the weights \(trainedWeights) (MD5 \(trainedMD5)), but \(resolved.source) has MD5 \(try resolved.md5): refusing to mix them")
        }
        // Heads from before cuts were trained on the last layer.
        let cut = try BackboneProvenance.cut(params["layers"], of: architecture, file: file, table: "params")
        guard cut.dimension == network.inputCount else {
            throw StageError("\(file): the head takes \(network.inputCount) inputs, but its layers (\(cut)) give \(cut.dimension)")
        }
        // The params say whether conv5 was fine-tuned; the table must then hold it, whole (a head
        // whose rows were deleted would otherwise run the frozen conv5 under the fine-tuned head).
        // (fine_tuned is "1" when an epoch beat the frozen head, which the head then kept.)
        let fineTuned = params["fine_tuned"] == "1"
        if fineTuned || !backboneWeights.isEmpty, architecture.fineTunable?.name != TopStage.name {
            throw StageError("\(file): the head holds fine-tuned convolutions, but its backbone \(architecture.name) has no \(TopStage.name) to put them in")
        }
        if (fineTuned || !backboneWeights.isEmpty), Set(backboneWeights.keys) != Set(TopStage.convolutionNames) {
            let held = backboneWeights.isEmpty ? "nothing" : backboneWeights.keys.sorted().joined(separator: ", ")
            throw StageError("\(file): table backbone_weights holds \(held); \(fineTuned ? "the head's params say conv5 was fine-tuned, and " : "")a fine-tuned head holds exactly conv5's convolutions (\(TopStage.convolutionNames.joined(separator: ", "))): train it again")
        }
        // A fine-tuned head brings its own conv5: the rest, and every BatchNorm, from the weights file.
        let provider = backboneWeights.isEmpty ? resolved.provider : ReplacedWeights(base: resolved.provider, replaced: backboneWeights)
        return Backbone(architecture: architecture, size: trainedSize, weights: provider, source: resolved.source, md5: trainedMD5, cut: cut)
    }
}
