import Backbone
import Dataset
import Export
import Foundation
import Imaging
import PipelineKit
import WeightsFetch

/// The export stage's work: a trained head and the backbone it needs as one ONNX model.
public enum ExportModel {
    public struct Report: Sendable {
        public var bytes: Int
        public var nodes: Int
        public var parameters: Int
        public var size: Int
        public var letters: [String]
    }

    /// Writes `output` (atomically: an unwritable or interrupted output leaves nothing behind).
    public static func run(head: URL, output: URL, weights: WeightsSpec? = nil) throws -> Report {
        let model = try HeadModel(head)
        let backbone = try model.backbone(file: head.path, weights: weights)
        let (stem, blocks) = try ResNet50.folded(backbone.weights, through: backbone.cut.deepest)
        let letters = model.labels.map(SignLetters.letter)
        let params = model.params
        let metadata: [(String, String)] = [
            ("letters", letters.joined(separator: ",")),
            ("labels", model.labels.map(String.init).joined(separator: ",")),
            ("input", "images: float32 N x 28 x 28 x 1, grey levels 0-255 (the Kaggle CSV's pixel columns, row-major)"),
            ("output", "probabilities: float32 N x \(letters.count), in the order of 'letters'"),
            ("input_size", String(backbone.size)),
            ("layers", backbone.cut.description),
            ("fine_tune", params["fine_tune"] ?? "none"),
            ("weights", backbone.source),
            ("weights_md5", backbone.md5),
            ("random_backbone", params["backbone_random"] ?? "0"),
            ("signtransfer_version", toolVersion),
        ]
        let resize = BilinearResize(from: (28, 28), to: (backbone.size, backbone.size)).matrices
        let graph = ClassifierGraph(size: backbone.size, resize: resize, stem: stem, blocks: blocks, cut: backbone.cut,
                                    standardization: model.classifier.standardization, network: model.network, metadata: metadata)
        let proto = graph.model()
        let data = try proto.serializedData()
        try AtomicOutput.write(to: output, inputs: [head]) { try data.write(to: $0) }
        let parameters = proto.graph.initializer.reduce(0) { $0 + Int($1.dims.reduce(1, *)) }
        return Report(bytes: data.count, nodes: proto.graph.node.count, parameters: parameters, size: backbone.size, letters: letters)
    }
}
