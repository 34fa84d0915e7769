import CKernels

/// The activations of the mobile backbones, as the C kernels take them (`ST_ACT_*`).
public enum Activation: Int32, Sendable {
    case none = 0, relu = 1, relu6 = 2, swish = 3, sigmoid = 4
}

/// A convolution and the BatchNorm after it, by Keras's layer names: `size x size`, `stride`,
/// TensorFlow's "same" padding (Keras's ZeroPadding2D(correct_pad) then "valid" is the same for
/// every stride-2 layer of these networks), then the activation.
public struct NormedConvSpec: Sendable, Equatable {
    public let conv: String, norm: String
    public let size: Int, stride: Int, input: Int, output: Int
    public let activation: Activation
}

/// A depthwise convolution (a `size x size` filter per channel) and its BatchNorm, then the activation.
public struct DepthwiseSpec: Sendable, Equatable {
    public let conv: String, norm: String
    public let size: Int, stride: Int, channels: Int
    public let activation: Activation
}

/// Squeeze-excitation (EfficientNet): the depthwise output's global average, a 1x1 convolution down
/// to `squeezed` channels (with bias, then the block's activation), one back up (with bias, then a
/// sigmoid), and the depthwise output scaled by the result, channel by channel.
public struct SqueezeSpec: Sendable, Equatable {
    public let reduce: String, expand: String
    public let channels: Int, squeezed: Int
    public let activation: Activation
}

/// An inverted residual block (MobileNetV2's, EfficientNet's MBConv): 1x1 expansion (none where the
/// ratio is 1), depthwise, squeeze-excitation (EfficientNet), 1x1 projection without activation, and
/// the block's input added where the shapes allow.
public struct InvertedResidualSpec: Sendable, Equatable {
    /// Keras's name of the block's output layer (`block_2_add`, `block3a_project_bn`): where a cut may take it.
    public let node: String
    public let expand: NormedConvSpec?
    public let depthwise: DepthwiseSpec
    public let squeeze: SqueezeSpec?
    public let project: NormedConvSpec
    public let residual: Bool

    public var input: Int { expand?.input ?? depthwise.channels }
    public var output: Int { project.output }
}

/// A mobile backbone's layers in order: stem, inverted residual blocks, top 1x1 convolution.
public struct MobilePlan: Sendable {
    /// Keras's Normalization layer inside the model (EfficientNet), with what Keras does around it
    /// for the ImageNet weights (see `MobileNetwork`), or nil where the input is preprocessed outside.
    public let normalization: String?
    public let stem: NormedConvSpec
    public let blocks: [InvertedResidualSpec]
    public let top: NormedConvSpec
    /// Keras's name of the top's output layer (`out_relu`, `top_activation`).
    public let topNode: String
    /// Every BatchNorm's epsilon (Keras's default 1e-3 in both networks, ResNet50's is 1.001e-5).
    public let epsilon: Double

    /// The BatchNorms that end a branch added to its input (the projections' of residual blocks):
    /// what random weights damp.
    public var residualEnds: Set<String> { Set(blocks.filter(\.residual).map(\.project.norm)) }

    /// The outputs a cut may take, in depth order.
    public var nodeNames: [String] { blocks.map(\.node) + [topNode] }
    public var nodeChannels: [Int] { blocks.map(\.output) + [top.output] }

    /// The side of node `node`'s output for an input of side `size`.
    public func side(ofNode node: Int, size: Int) -> Int {
        var side = Self.sameOutput(size, stride: stem.stride)
        for block in blocks[..<min(node + 1, blocks.count)] { side = Self.sameOutput(side, stride: block.depthwise.stride) }
        return side
    }

    /// TensorFlow's "same": the output side, and the padding before the input (the odd one goes after).
    public static func sameOutput(_ side: Int, stride: Int) -> Int { (side + stride - 1) / stride }
    public static func samePadding(_ side: Int, size: Int, stride: Int) -> Int {
        max((sameOutput(side, stride: stride) - 1) * stride + size - side, 0) / 2
    }
}
