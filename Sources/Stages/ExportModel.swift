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
        public var classes: [String]
    }

    /// Writes `output` (atomically: an unwritable or interrupted output leaves nothing behind).
    public static func run(head: URL, output: URL, weights: WeightsSpec? = nil) throws -> Report {
        let model = try HeadModel(head)
        let backbone = try model.backbone(file: head.path, weights: weights)
        // The graph is ResNet50's bottleneck blocks (ClassifierGraph) on square grey originals.
        guard backbone.architecture.name == ResNet50.architecture.name else {
            throw StageError("\(head.path): export writes ResNet50 graphs; this head's backbone is \(backbone.architecture.name)")
        }
        guard let geometry = model.sourceGeometry, geometry.channels == 1, geometry.width == geometry.height else {
            throw StageError("\(head.path): export takes square grey originals (Sign MNIST's 28x28); this head was trained on \(model.sourceGeometry.map { "\($0.width)x\($0.height)x\($0.channels)" } ?? "images of several sizes")")
        }
        let side = geometry.width
        let (stem, blocks) = try ResNet50.folded(backbone.weights, through: backbone.cut.deepest)
        let classes = model.names
        let params = model.params
        let metadata: [(String, String)] = [
            ("classes", classes.joined(separator: ",")),
            ("labels", model.labels.map(String.init).joined(separator: ",")),
            ("input", "images: float32 N x \(side) x \(side) x 1, grey levels 0-255 (the originals' pixels, row-major)"),
            ("output", "probabilities: float32 N x \(classes.count), in the order of 'classes'"),
            ("input_size", String(backbone.size)),
            ("layers", backbone.cut.description),
            ("fine_tune", params["fine_tune"] ?? "none"),
            ("weights", backbone.source),
            ("weights_md5", backbone.md5),
            ("random_backbone", params["backbone_random"] ?? "0"),
            ("signtransfer_version", toolVersion),
        ]
        let resize = BilinearResize(from: (side, side), to: (backbone.size, backbone.size)).matrices
        let graph = ClassifierGraph(size: backbone.size, source: side, resize: resize, stem: stem, blocks: blocks, cut: backbone.cut,
                                    standardization: model.classifier.standardization, network: model.network, metadata: metadata)
        let proto = graph.model()
        let data = try proto.serializedData()
        try AtomicOutput.write(to: output, inputs: [head]) { try data.write(to: $0) }
        let parameters = proto.graph.initializer.reduce(0) { $0 + Int($1.dims.reduce(1, *)) }
        return Report(bytes: data.count, nodes: proto.graph.node.count, parameters: parameters, size: backbone.size, classes: classes)
    }
}
