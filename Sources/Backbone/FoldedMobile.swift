/// A mobile backbone's layers as inference runs them, BatchNorm folded, in Keras's layouts: what the
/// network is built from (`MobileNetwork`) and what an exporter writes (the ONNX graph). Read once,
/// folded once, so the two cannot disagree.
public struct FoldedMobile: Sendable {
    /// A convolution, `kernel[size*size*input x output]` (HWIO) and `bias[output]`.
    public struct Conv: Sendable {
        public let spec: NormedConvSpec
        public let kernel: [Float], bias: [Float]
    }

    /// A depthwise convolution, `kernel[size*size*channels]` (Keras's `[kh, kw, C, 1]`).
    public struct Depthwise: Sendable {
        public let spec: DepthwiseSpec
        public let kernel: [Float], bias: [Float]
    }

    /// Squeeze-excitation's 1x1 convolutions: `reduce[channels x squeezed]`, `expand[squeezed x channels]`.
    public struct Squeeze: Sendable {
        public let spec: SqueezeSpec
        public let reduce: [Float], reduceBias: [Float], expand: [Float], expandBias: [Float]
    }

    public struct Block: Sendable {
        public let spec: InvertedResidualSpec
        public let expand: Conv?
        public let depthwise: Depthwise
        public let squeeze: Squeeze?
        public let project: Conv
    }

    /// EfficientNet's input layers as one affine map per channel, in Keras's order:
    /// `((x * (1/255)) - mean) / deviation * rescale`.
    public struct InputNormalization: Sendable {
        public let mean: [Float], deviation: [Float], rescale: [Float]
    }

    public let plan: MobilePlan
    public let normalization: InputNormalization?
    public let stem: Conv
    /// The blocks through the deepest asked for.
    public let blocks: [Block]
    /// The top convolution, when the network is wanted to its end.
    public let top: Conv?

    /// Keras's IMAGENET_STDDEV_RGB (efficientnet.py).
    static let imagenetDeviation: [Double] = [0.229, 0.224, 0.225]

    /// Reads and folds the layers of `plan` from `weights` through node `deepest` (all of them by
    /// default), checking every layer's presence and shape.
    public init(plan: MobilePlan, weights: any BackboneWeights, through deepest: Int? = nil) throws {
        self.plan = plan
        let deepest = deepest ?? plan.blocks.count
        let epsilon = plan.epsilon
        func conv(_ spec: NormedConvSpec) throws -> Conv {
            let raw = try weights.conv(spec.conv, size: spec.size, input: spec.input, output: spec.output)
            let norm = FrozenBatchNorm(try weights.batchNorm(spec.norm, channels: spec.output), epsilon: epsilon)
            let (folded, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
            return Conv(spec: spec, kernel: folded, bias: bias)
        }
        if let layer = plan.normalization {
            let (mean, variance) = try weights.normalization(layer, channels: 3)
            // Keras's Normalization divides by max(sqrt(variance), epsilon) in float. The published
            // ImageNet weights hold the standard deviations where the variances belong, so Keras
            // (`EfficientNet(weights="imagenet")`) rescales by 1 / sqrt(stddev) after it: the input
            // ends up divided by the deviation, as meant. The factors are Keras's, computed in double.
            normalization = InputNormalization(mean: mean, deviation: variance.map { max($0.squareRoot(), 1e-7) },
                                               rescale: Self.imagenetDeviation.map { Float(1 / $0.squareRoot()) })
        } else {
            normalization = nil
        }
        stem = try conv(plan.stem)
        blocks = try plan.blocks[..<min(deepest + 1, plan.blocks.count)].map { spec in
            let d = spec.depthwise
            let raw = try weights.depthwise(d.conv, size: d.size, channels: d.channels)
            let norm = FrozenBatchNorm(try weights.batchNorm(d.norm, channels: d.channels), epsilon: epsilon)
            let (kernel, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
            let squeeze: Squeeze? = try spec.squeeze.map { s in
                let reduce = try weights.conv(s.reduce, size: 1, input: s.channels, output: s.squeezed)
                let expand = try weights.conv(s.expand, size: 1, input: s.squeezed, output: s.channels)
                return Squeeze(spec: s, reduce: reduce.kernel, reduceBias: reduce.bias, expand: expand.kernel, expandBias: expand.bias)
            }
            return Block(spec: spec, expand: try spec.expand.map(conv), depthwise: Depthwise(spec: d, kernel: kernel, bias: bias),
                         squeeze: squeeze, project: try conv(spec.project))
        }
        top = deepest >= plan.blocks.count ? try conv(plan.top) : nil
    }
}

extension MobilePlan {
    /// The plans of the mobile backbones, by backbone name.
    public static let byName: [String: MobilePlan] = [MobileNetV2.architecture.name: MobileNetV2.plan,
                                                      EfficientNetB0.architecture.name: EfficientNetB0.plan]
}
