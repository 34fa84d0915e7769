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
        /// The model's input in words.
        public var input: String
    }

    /// Writes `output` (atomically: an unwritable or interrupted output leaves nothing behind).
    public static func run(head: URL, output: URL, weights: WeightsSpec? = nil) throws -> Report {
        let model = try HeadModel(head)
        let backbone = try model.backbone(file: head.path, weights: weights)
        // Square grey originals of one size (Sign MNIST) go in as they are and are resized in the
        // graph, as predict takes them; anything else (colour, photos of many sizes) goes in at the
        // network's size, resized as preprocess resizes, which is then the caller's part.
        let input: ClassifierGraph.Input
        if let geometry = model.sourceGeometry, geometry.channels == 1, geometry.width == geometry.height {
            let taps = BilinearResize(from: (geometry.width, geometry.width), to: (backbone.size, backbone.size)).taps
            input = .greyOriginals(side: geometry.width, rows: taps.rows, columns: taps.columns)
        } else {
            input = .resizedRGB
        }
        let layers: ClassifierGraph.Layers
        if let plan = MobilePlan.byName[backbone.architecture.name] {
            layers = .mobile(try FoldedMobile(plan: plan, weights: backbone.weights, through: backbone.cut.deepest))
        } else if backbone.architecture.name == ResNet50.architecture.name {
            let (stem, blocks) = try ResNet50.folded(backbone.weights, through: backbone.cut.deepest)
            layers = .resnet(stem: stem, blocks: blocks)
        } else {
            throw StageError("\(head.path): export has no graph for the backbone \(backbone.architecture.name)")
        }
        let classes = model.names
        let params = model.params
        var graph = ClassifierGraph(size: backbone.size, input: input, layers: layers, cut: backbone.cut,
                                    standardization: model.classifier.standardization, network: model.network, metadata: [])
        graph.metadata = [
            ("classes", classes.joined(separator: ",")),
            ("labels", model.labels.map(String.init).joined(separator: ",")),
            ("input", graph.inputDescription),
            ("output", "probabilities: float32 N x \(classes.count), in the order of 'classes'"),
            ("input_size", String(backbone.size)),
            ("layers", backbone.cut.description),
            ("fine_tune", params["fine_tune"] ?? "none"),
            ("weights", backbone.source),
            ("weights_md5", backbone.md5),
            ("random_backbone", params["backbone_random"] ?? "0"),
            ("signtransfer_version", toolVersion),
        ]
        if case .resizedRGB = input {
            // What the training images were before the resize, and whether their centre squares were
            // what was resized: what a caller's own resize must do.
            graph.metadata.append(("source_geometry", model.sourceGeometry.map { "\($0.width)x\($0.height)x\($0.channels)" } ?? "varied"))
            graph.metadata.append(("crop_to_aspect_ratio", params["backbone_crop_to_aspect_ratio"] ?? "off"))
        }
        let proto = graph.model()
        let data = try proto.serializedData()
        try AtomicOutput.write(to: output, inputs: [head]) { try data.write(to: $0) }
        let parameters = proto.graph.initializer.reduce(0) { $0 + Int($1.dims.reduce(1, *)) }
        return Report(bytes: data.count, nodes: proto.graph.node.count, parameters: parameters, size: backbone.size, classes: classes, input: graph.inputDescription)
    }
}
