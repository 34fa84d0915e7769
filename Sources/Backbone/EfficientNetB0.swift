/// Keras's EfficientNetB0 with `include_top=False` and global average pooling: the model's own
/// Rescaling and Normalization layers on 0-255 input (and the rescaling Keras adds for the ImageNet
/// weights), a 3x3/2 stem, 16 MBConv blocks with swish and squeeze-excitation, a 1x1 top to 1280
/// features. Layer names, kernel sizes and widths as `keras/src/applications/efficientnet.py`
/// builds them for width and depth 1.0.
public enum EfficientNetB0 {
    public static let featureCount = 1280

    public static let plan: MobilePlan = {
        // (kernel, repeats, filters in, filters out, expansion, stride) of each stage; SE ratio 0.25 throughout.
        let stages: [(Int, Int, Int, Int, Int, Int)] = [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
                                                        (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1)]
        var blocks: [InvertedResidualSpec] = []
        for (stage, (size, repeats, filtersIn, filtersOut, expansion, firstStride)) in stages.enumerated() {
            for repeat_ in 0 ..< repeats {
                let prefix = "block\(stage + 1)\(Character(UnicodeScalar(UInt8(97 + repeat_))))_"
                let input = repeat_ == 0 ? filtersIn : filtersOut, stride = repeat_ == 0 ? firstStride : 1
                let expanded = input * expansion
                let residual = stride == 1 && input == filtersOut
                blocks.append(InvertedResidualSpec(
                    node: prefix + (residual ? "add" : "project_bn"),
                    expand: expansion == 1 ? nil : NormedConvSpec(conv: prefix + "expand_conv", norm: prefix + "expand_bn", size: 1, stride: 1,
                                                                  input: input, output: expanded, activation: .swish),
                    depthwise: DepthwiseSpec(conv: prefix + "dwconv", norm: prefix + "bn", size: size, stride: stride, channels: expanded, activation: .swish),
                    squeeze: SqueezeSpec(reduce: prefix + "se_reduce", expand: prefix + "se_expand", channels: expanded,
                                         squeezed: max(1, input / 4), activation: .swish),
                    project: NormedConvSpec(conv: prefix + "project_conv", norm: prefix + "project_bn", size: 1, stride: 1, input: expanded,
                                            output: filtersOut, activation: .none),
                    residual: residual))
            }
        }
        return MobilePlan(
            normalization: "normalization",
            stem: NormedConvSpec(conv: "stem_conv", norm: "stem_bn", size: 3, stride: 2, input: 3, output: 32, activation: .swish),
            blocks: blocks,
            top: NormedConvSpec(conv: "top_conv", norm: "top_bn", size: 1, stride: 1, input: 320, output: featureCount, activation: .swish),
            topNode: "top_activation", epsilon: 1e-3)
    }()

    public static let architecture: Architecture = Architecture(
        name: "efficientnetb0", title: "EfficientNetB0 (Keras), include_top=False, global average pooling", preprocessing: .none,
        weights: PublishedWeights(fileName: "efficientnetb0_notop.h5", md5: "50bc09e76180e00e4465e1a485ddc09d",
                                  folder: "https://storage.googleapis.com/keras-applications/"),
        // bf16 measured slower than float (0.86x for MobileNetV2): its products are short.
        nodes: plan.nodes, minimumSize: 32, fineTunable: nil, bf16: false,
        build: { weights, kernel, _ in try MobileNetwork(architecture: architecture, plan: plan, weights: weights, kernel: kernel) },
        randomWeights: { seed in
            // The normalized input has unit spread: the stem needs no scaling. Each excitation's bias
            // is 3 (sigmoid 0.95), so that it passes the signal where zero would halve it at each of
            // 16 blocks; the last BatchNorm of each branch added to its input is damped.
            RandomWeights(seed: seed, inputLayer: "stem_conv", inputSpread: 1, bias: { $0.hasSuffix("se_expand") ? 3 : 0 }) { [ends = plan.residualEnds] in ends.contains($0) }
        })
}
