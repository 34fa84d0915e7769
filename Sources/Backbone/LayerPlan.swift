/// One convolution of ResNet50 as Keras names and shapes it (its BatchNorm is `name_bn`, its
/// weights `name_conv`): `size x size`, `stride`, zero padding `pad` on each side.
public struct ConvolutionSpec: Sendable, Equatable {
    public let name: String
    public let size: Int, stride: Int, pad: Int, input: Int, output: Int

    public init(name: String, size: Int, stride: Int, pad: Int, input: Int, output: Int) {
        self.name = name
        self.size = size
        self.stride = stride
        self.pad = pad
        self.input = input
        self.output = output
    }
}

extension ConvolutionSpec {
    /// Its raw kernel and bias and its BatchNorm, frozen, read from `weights` with their shapes checked.
    public func read(_ weights: any BackboneWeights) throws -> (conv: ConvWeights, norm: FrozenBatchNorm) {
        let conv = try weights.conv(name + "_conv", size: size, input: input, output: output)
        return (conv, FrozenBatchNorm(try weights.batchNorm(name + "_bn", channels: output)))
    }
}

/// The order and shapes of ResNet50's convolutions: the one description the network, its folded
/// export and the fine-tuned stage's names agree on.
public struct LayerPlan: Sendable {
    public struct Block: Sendable {
        /// The 1x1 projection on the first block of a stage (stride 2 from conv3 on), else nil:
        /// the block's input is its shortcut.
        public let shortcut: ConvolutionSpec?
        public let reduce: ConvolutionSpec, spatial: ConvolutionSpec, expand: ConvolutionSpec

        /// In Keras's order: the projection (if any), then reduce, 3x3, expand.
        public var convolutions: [ConvolutionSpec] { [shortcut].compactMap { $0 } + [reduce, spatial, expand] }
    }

    /// 7x7/2 on the zero-padded image (Keras's ZeroPadding2D(3)), then BatchNorm and ReLU; a 3x3/2 max
    /// pool on the result padded by 1 follows.
    public let stem: ConvolutionSpec
    /// Bottleneck blocks in `ResNet50.blockNames` order: stages of 3, 4, 6 and 3 with 64, 128, 256
    /// and 512 filters (4x out); the stride on the first block's 1x1s of stages 3-5.
    public let blocks: [Block]

    static let resnet50: LayerPlan = {
        var blocks: [Block] = []
        var channels = 64
        for (stage, (filters, count)) in [(64, 3), (128, 4), (256, 6), (512, 3)].enumerated() {
            for index in 1 ... count {
                let name = "conv\(stage + 2)_block\(index)"
                let stride = index == 1 && stage > 0 ? 2 : 1
                blocks.append(Block(
                    shortcut: index == 1 ? ConvolutionSpec(name: name + "_0", size: 1, stride: stride, pad: 0, input: channels, output: filters * 4) : nil,
                    reduce: ConvolutionSpec(name: name + "_1", size: 1, stride: stride, pad: 0, input: channels, output: filters),
                    spatial: ConvolutionSpec(name: name + "_2", size: 3, stride: 1, pad: 1, input: filters, output: filters),
                    expand: ConvolutionSpec(name: name + "_3", size: 1, stride: 1, pad: 0, input: filters, output: filters * 4)))
                channels = filters * 4
            }
        }
        return LayerPlan(stem: ConvolutionSpec(name: "conv1", size: 7, stride: 2, pad: 3, input: 3, output: 64), blocks: blocks)
    }()
}

/// A convolution with its BatchNorm folded in, as plain arrays: `kernel[size*size*input x output]`
/// (HWIO, row-major) and `bias[output]`, what inference runs and an exporter writes.
public struct FoldedConvolution: Sendable {
    public let spec: ConvolutionSpec
    public let kernel: [Float]
    public let bias: [Float]
}

extension ResNet50 {
    public static let plan = LayerPlan.resnet50

    /// The stem and the blocks up to `deepest` (an index into `blockNames`), each convolution folded
    /// exactly as the network folds it at load.
    public static func folded(_ weights: any BackboneWeights, through deepest: Int) throws -> (stem: FoldedConvolution, blocks: [[FoldedConvolution]]) {
        func fold(_ spec: ConvolutionSpec) throws -> FoldedConvolution {
            let (raw, norm) = try spec.read(weights)
            let (kernel, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
            return FoldedConvolution(spec: spec, kernel: kernel, bias: bias)
        }
        // Each block's convolutions in Keras's order: the projection (if any), then reduce, 3x3, expand.
        let blocks = try plan.blocks[...deepest].map { try $0.convolutions.map(fold) }
        return (try fold(plan.stem), blocks)
    }
}
