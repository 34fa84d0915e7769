import Artifacts
import Backbone
import Foundation
import Head

/// A trained head as predict needs it: the classifier (standardization and network), its classes
/// and the provenance it was trained with, from `head.sqlite`.
public struct HeadModel: Sendable {
    public var classifier: Classifier
    public var network: DenseNetwork { classifier.network }
    /// The label of each output unit.
    public var labels: [Int]
    public var params: [String: String]
    /// The fine-tuned convolutions (Keras layer name to raw kernel and bias); empty for a head on frozen features.
    public var backboneWeights: [String: ConvWeights]

    public init(_ url: URL) throws {
        let stored = try HeadStore.load(url)
        let layers = stored.layers.map { DenseNetwork.Layer(inputs: $0.inputs, outputs: $0.outputs, weights: $0.weights, bias: $0.bias) }
        classifier = Classifier(standardization: stored.standardization.map { Standardization(mean: $0.mean, deviation: $0.deviation) },
                                network: DenseNetwork(layers: layers, dropout: 0))
        labels = stored.labels
        params = stored.params
        backboneWeights = stored.backboneWeights.mapValues { ConvWeights(kernel: $0.kernel, bias: $0.bias) }
    }
}
