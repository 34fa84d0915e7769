import Artifacts
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

    public init(_ url: URL) throws {
        let stored = try HeadStore.load(url)
        let layers = stored.layers.map { DenseNetwork.Layer(inputs: $0.inputs, outputs: $0.outputs, weights: $0.weights, bias: $0.bias) }
        classifier = Classifier(standardization: stored.standardization.map { Standardization(mean: $0.mean, deviation: $0.deviation) },
                                network: DenseNetwork(layers: layers, dropout: 0))
        labels = stored.labels
        params = stored.params
    }
}
