import Backbone
import Foundation
import Head
import Imaging
import PipelineKit
import WeightsFetch

/// Classifies new images with a trained head, through exactly the training path: 28x28 grey, the
/// stored size and resize, replication to RGB, the same backbone weights, the head.
public final class Predictor {
    public struct Prediction: Sendable {
        /// (label, probability), most probable first.
        public var top: [(label: Int, probability: Float)]
        public var probabilities: [Float]
    }

    public let model: HeadModel
    public let size: Int
    public let weightsSource: String
    let network: ResNet50
    let input: NetworkInput
    /// Where the head reads the backbone: the network runs this far and no further.
    public let cut: Cut

    /// Loads the head and the backbone its provenance names. `weights` and `size`, when given, must
    /// be those the head was trained with: a head used with other ones is refused.
    public init(head: URL, weights: WeightsSpec? = nil, size: Int? = nil) throws {
        try GEMMKernel.checkSelection()
        model = try HeadModel(head)
        let backbone = try model.backbone(file: head.path, weights: weights, size: size)
        cut = backbone.cut
        self.size = backbone.size
        weightsSource = backbone.source
        network = try ResNet50(weights: backbone.weights, size: backbone.size)
        input = NetworkInput(size: backbone.size)
    }

    /// The head's input for the `count` images in `workspace.input`: each layer of the cut pooled,
    /// concatenated per image in depth order, as train read them.
    func features(_ workspace: ResNet50.Workspace, count: Int) -> [Float] {
        let parts = cut.channels.map { UnsafeMutablePointer<Float>.allocate(capacity: count * $0) }
        defer { parts.forEach { $0.deallocate() } }
        network.forward(workspace, count: count, taps: cut.blocks, into: parts)
        var out = [Float](repeating: 0, count: count * cut.dimension)
        out.withUnsafeMutableBufferPointer { out in
            var offset = 0
            for (part, channels) in cut.channels.enumerated() {
                for row in 0 ..< count {
                    (out.baseAddress! + row * cut.dimension + offset).update(from: parts[part] + row * channels, count: channels)
                }
                offset += channels
            }
        }
        return out
    }

    /// A picture as the training data were: 8-bit grey, 28x28 (area-averaged down or up to it).
    public static func greyscale28(png data: Data) throws -> [UInt8] {
        let bitmap = try PNG.decode(data, channels: 1)
        return areaResize(bitmap.pixels, width: bitmap.width, height: bitmap.height, to: 28)
    }

    /// Predicts 28x28 grey images (784 bytes each), in batches of `batch`.
    public func predict(_ images: [[UInt8]], top: Int = 3, batch: Int = 32) -> [Prediction] {
        var predictions: [Prediction] = []
        let workspace = network.makeWorkspace(count: min(batch, max(images.count, 1)), size: size)
        let pixels = input.rgbCount
        for start in stride(from: 0, to: images.count, by: workspace.count) {
            let chunk = images[start ..< min(start + workspace.count, images.count)]
            var rgb = [UInt8](repeating: 0, count: pixels)
            for (index, image) in chunk.enumerated() {
                image.withUnsafeBufferPointer { grey in
                    rgb.withUnsafeMutableBufferPointer { input.tensor(grey: grey, scratch: $0, into: workspace.input + index * pixels) }
                }
            }
            var features = features(workspace, count: chunk.count)
            let probabilities = features.withUnsafeMutableBufferPointer { model.classifier.probabilities(overwriting: $0, count: chunk.count) }
            let classes = model.labels.count
            for row in 0 ..< chunk.count {
                let p: [Float] = Array(probabilities[row * classes ..< (row + 1) * classes])
                let order: [Int] = p.indices.sorted { (a: Int, b: Int) -> Bool in p[a] > p[b] || (p[a] == p[b] && a < b) }
                let best: [(label: Int, probability: Float)] = order.prefix(top).map { (model.labels[$0], p[$0]) }
                predictions.append(Prediction(top: best, probabilities: p))
            }
        }
        return predictions
    }
}
