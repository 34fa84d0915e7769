import Foundation
import Numerical

/// A backbone as the rest of the tool sees it, described once by the backbone's own file: its
/// name, how 8-bit RGB becomes its input, its published ImageNet weights, the named outputs a cut may
/// take, the part `train --fine-tune` may train, and how to build it. Extract, train, predict,
/// export and the weights cache read this; only `Sources/Backbone` knows a network's insides.
public struct Architecture: Sendable, CustomStringConvertible {
    /// What the `backbone` parameter says: `resnet50`.
    public let name: String
    /// What provenance records of the network: "ResNet50 v1 (Keras), include_top=False, ...".
    public let title: String
    public let preprocessing: InputPreprocessing
    public let weights: PublishedWeights
    /// The outputs a cut may take, in depth order (Keras's layer names).
    public let nodes: [BackboneNode]
    /// The smallest input side the network takes.
    public let minimumSize: Int
    /// The top part `train --fine-tune` trains, or nil where the backbone offers none.
    public let fineTunable: FineTunablePart?
    /// Whether `--precision bf16` pays for it (measured); the others refuse it, saying so.
    public let bf16: Bool
    /// Builds the network from `weights` for the GEMM `kernel`, tuned for inputs of side `size`.
    public let build: @Sendable (_ weights: any BackboneWeights, _ kernel: GEMMKernel, _ size: Int) throws -> any FeatureNetwork
    /// A seeded random initialisation for runs without the ImageNet weights (`random:SEED`).
    public let randomWeights: @Sendable (_ seed: UInt64) -> any BackboneWeights

    public init(name: String, title: String, preprocessing: InputPreprocessing, weights: PublishedWeights, nodes: [BackboneNode],
                minimumSize: Int, fineTunable: FineTunablePart?, bf16: Bool,
                build: @escaping @Sendable (any BackboneWeights, GEMMKernel, Int) throws -> any FeatureNetwork,
                randomWeights: @escaping @Sendable (UInt64) -> any BackboneWeights) {
        self.name = name
        self.title = title
        self.preprocessing = preprocessing
        self.weights = weights
        self.nodes = nodes
        self.minimumSize = minimumSize
        self.fineTunable = fineTunable
        self.bf16 = bf16
        self.build = build
        self.randomWeights = randomWeights
    }

    public var description: String { name }
    public var nodeNames: [String] { nodes.map(\.name) }
    public func nodeIndex(_ name: String) -> Int? { nodes.firstIndex { $0.name == name } }
    /// The network's end: what a cut takes by default.
    public var lastCut: Cut { Cut(architecture: self, checkedBlocks: [nodes.count - 1]) }
}

/// A named output of a backbone: its Keras layer name, its channels, and its side for an input side.
public struct BackboneNode: Sendable {
    public let name: String
    public let channels: Int
    public let side: @Sendable (_ inputSide: Int) -> Int

    public init(name: String, channels: Int, side: @escaping @Sendable (Int) -> Int) {
        self.name = name
        self.channels = channels
        self.side = side
    }
}

/// A backbone's ImageNet weights as Keras publishes them (the notop file).
public struct PublishedWeights: Sendable {
    public let fileName: String
    /// The MD5 Keras checks the download against, or nil where Keras publishes none.
    public let md5: String?
    /// Where Keras publishes them, the folder the file name is appended to.
    public let folder: String

    public init(fileName: String, md5: String?, folder: String) {
        self.fileName = fileName
        self.md5 = md5
        self.folder = folder
    }

    public var url: String { folder + fileName }
}

/// The part of a backbone that fine-tuning trains, on the maps of `input` that extract keeps.
public struct FineTunablePart: Sendable {
    /// What `train --fine-tune` says: `conv5`.
    public let name: String
    /// The node whose maps it reads (`extract --keep`).
    public let input: String

    public init(name: String, input: String) {
        self.name = name
        self.input = input
    }
}

/// How 8-bit RGB becomes a backbone's input floats, exactly as Keras's `preprocess_input` for it.
public enum InputPreprocessing: String, Sendable {
    /// Keras "caffe" mode (ResNet50): channels reordered to BGR, then the ImageNet means subtracted, no scaling.
    case caffe
    /// Keras "tf" mode (MobileNetV2): each value divided by 127.5, less 1, so in [-1, 1].
    case tf
    /// None outside the model (EfficientNet): the pixels as floats, 0-255; the network's own
    /// rescaling and normalization layers do the rest.
    case none

    /// Caffe's per-channel means, in BGR order.
    public static let caffeMeans: [Float] = [103.939, 116.779, 123.68]

    public var description: String {
        switch self {
        case .caffe: "caffe: RGB to BGR, minus [103.939, 116.779, 123.68], no scaling"
        case .tf: "tf: x / 127.5 - 1"
        case .none: "none: pixels 0-255; the model rescales and normalizes"
        }
    }

    /// `rgb[pixels x 3]` in, `input[pixels x 3]` out.
    public func apply(rgb: UnsafeBufferPointer<UInt8>, into input: UnsafeMutablePointer<Float>) {
        switch self {
        case .caffe:
            let means = Self.caffeMeans
            for pixel in 0 ..< rgb.count / 3 {
                input[pixel * 3] = Float(rgb[pixel * 3 + 2]) - means[0]
                input[pixel * 3 + 1] = Float(rgb[pixel * 3 + 1]) - means[1]
                input[pixel * 3 + 2] = Float(rgb[pixel * 3]) - means[2]
            }
        case .tf:
            // NumPy's `x /= 127.5; x -= 1.0` in float32: a division, then a subtraction.
            for index in 0 ..< rgb.count { input[index] = Float(rgb[index]) / 127.5 - 1 }
        case .none:
            for index in 0 ..< rgb.count { input[index] = Float(rgb[index]) }
        }
    }
}

/// A built backbone: runs batches of preprocessed images to the pooled outputs of some nodes.
public protocol FeatureNetwork: AnyObject, Sendable {
    var architecture: Architecture { get }
    /// The GEMM its convolutions run on.
    var kernel: GEMMKernel { get }
    /// Buffers for up to `count` images of side `size`, reused across batches.
    func makeWorkspace(count: Int, size: Int) -> any NetworkWorkspace
    /// The globally average-pooled output of each node in `taps` (indices into `architecture.nodes`,
    /// ascending) into `pooled[t][count x channels]`, for the `count` images in `workspace.input`;
    /// the network stops after the deepest. With `keep`, that node's whole output `[count, h, w, c]`
    /// is copied out too.
    func forward(_ workspace: any NetworkWorkspace, count: Int, taps: [Int], into pooled: [UnsafeMutablePointer<Float>],
                 keep: (block: Int, into: UnsafeMutablePointer<Float>)?)
}

/// A network's buffers: `input` holds `count x size x size x 3` preprocessed floats.
public protocol NetworkWorkspace: AnyObject {
    var count: Int { get }
    var size: Int { get }
    var input: UnsafeMutablePointer<Float> { get }
}

/// Every backbone this tool has. Adding one: a file in `Sources/Backbone` that describes it as an
/// `Architecture`, and its line here.
public enum Backbones {
    public static let all: [Architecture] = [ResNet50.architecture, MobileNetV2.architecture, EfficientNetB0.architecture]
    public static let defaultName = "resnet50"
    public static var names: [String] { all.map(\.name) }
    public static var standard: Architecture { all[0] }

    /// The backbone called `name`, or an error listing those there are.
    public static func named(_ name: String) throws(CutError) -> Architecture {
        guard let found = all.first(where: { $0.name == name }) else {
            throw CutError(message: "'\(name)' is not a backbone this tool has; choose from \(names.joined(separator: ", "))")
        }
        return found
    }

    /// What the node names are, backbone by backbone: "conv2_block1_out ... conv5_block3_out (resnet50), ...".
    public static var nodeSummary: String {
        all.map { "\($0.nodeNames.first ?? "") ... \($0.nodeNames.last ?? "") (\($0.name))" }.joined(separator: ", ")
    }

    /// Every node name of every backbone, once: what a `layers` value may name before the backbone is known.
    public static var allNodeNames: [String] {
        var seen = Set<String>()
        return all.flatMap(\.nodeNames).filter { seen.insert($0).inserted }
    }
}
