import Backbone
import Foundation
import Head
import Imaging
import PipelineKit
import WeightsFetch

/// Classifies new images with a trained head, through exactly the training path: the dataset's
/// geometry (Sign MNIST: 28x28 grey), the stored size and resize, grey replicated to RGB, the same
/// backbone and weights, the head. Answers are the dataset's class names.
public final class Predictor {
    /// An 8-bit image: `height x width x channels` bytes (1 or 3 channels).
    public struct Picture: Sendable {
        public var pixels: [UInt8]
        public var width: Int, height: Int, channels: Int

        public init(pixels: [UInt8], width: Int, height: Int, channels: Int) {
            precondition(pixels.count == width * height * channels)
            (self.pixels, self.width, self.height, self.channels) = (pixels, width, height, channels)
        }
    }

    public struct Prediction: Sendable {
        /// (label, probability), most probable first.
        public var top: [(label: Int, probability: Float)]
        public var probabilities: [Float]
    }

    public let model: HeadModel
    public let size: Int
    public let weightsSource: String
    let network: any FeatureNetwork
    let input: NetworkInput
    let preprocessing: InputPreprocessing
    /// The geometry every training original had (what a new picture is reduced to first), or nil
    /// when they varied (a new picture goes straight to the network's size, as they did).
    public let sourceGeometry: (width: Int, height: Int, channels: Int)?
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
        network = try backbone.architecture.build(backbone.weights, .preferred, backbone.size)
        preprocessing = backbone.architecture.preprocessing
        sourceGeometry = model.sourceGeometry
        input = NetworkInput(size: backbone.size, from: sourceGeometry.map { ($0.width, $0.height) } ?? (backbone.size, backbone.size),
                             crop: model.params["backbone_crop_to_aspect_ratio"] == "on")
    }

    /// The class name of output label `label`.
    public func name(_ label: Int) -> String {
        model.labels.firstIndex(of: label).map { model.names[$0] } ?? String(label)
    }

    /// The head's input for the `count` images in `workspace.input`: each layer of the cut pooled,
    /// concatenated per image in depth order, as train read them.
    func features(_ workspace: any NetworkWorkspace, count: Int) -> [Float] {
        let parts = cut.channels.map { UnsafeMutablePointer<Float>.allocate(capacity: count * $0) }
        defer { parts.forEach { $0.deallocate() } }
        network.forward(workspace, count: count, taps: cut.blocks, into: parts, keep: nil)
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

    /// A JPEG or PNG as the training originals were: converted to grey and reduced (area-averaged)
    /// to their one geometry when they had one of a single channel (Sign MNIST's 28x28 grey), else
    /// decoded as ingest's files are (TensorFlow's decode_image) and left at its size for the resize.
    public func picture(_ data: Data) throws -> Picture {
        if let geometry = sourceGeometry, geometry.channels == 1, geometry.width == geometry.height {
            let bitmap = try ImageFile.decode(data, channels: 1)
            return Picture(pixels: areaResize(bitmap.pixels, width: bitmap.width, height: bitmap.height, to: geometry.width),
                           width: geometry.width, height: geometry.height, channels: 1)
        }
        let bitmap = try ImageFile.decode(data)
        return Picture(pixels: bitmap.pixels, width: bitmap.width, height: bitmap.height, channels: bitmap.channels)
    }

    /// Predicts pictures, in batches of `batch`.
    public func predict(_ images: [Picture], top: Int = 3, batch: Int = 32) -> [Prediction] {
        var predictions: [Prediction] = []
        let workspace = network.makeWorkspace(count: min(batch, max(images.count, 1)), size: size)
        let pixels = input.rgbCount
        for start in stride(from: 0, to: images.count, by: workspace.count) {
            let chunk = images[start ..< min(start + workspace.count, images.count)]
            var rgb = [UInt8](repeating: 0, count: pixels)
            for (index, image) in chunk.enumerated() {
                image.pixels.withUnsafeBufferPointer { source in
                    rgb.withUnsafeMutableBufferPointer {
                        input.tensor(source, width: image.width, height: image.height, channels: image.channels, preprocessing: preprocessing,
                                     scratch: $0, into: workspace.input + index * pixels)
                    }
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
