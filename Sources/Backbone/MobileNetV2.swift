/// Keras's MobileNetV2 (alpha 1.0) with `include_top=False` and global average pooling: "tf"
/// preprocessing ([-1, 1]), a 3x3/2 stem, 17 inverted residual blocks with ReLU6, a 1x1 top to 1280
/// features. Layer names, strides and widths as `keras/src/applications/mobilenet_v2.py` builds them.
public enum MobileNetV2 {
    public static let featureCount = 1280

    /// The layers in order; block outputs are named as Keras names the layer that ends them
    /// (`block_N_add` where the input is added, else `block_N_project_BN`).
    public static let plan: MobilePlan = {
        // (filters, stride, expansion) of blocks 0 ... 16.
        let settings: [(Int, Int, Int)] = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6), (64, 1, 6),
                                           (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6)]
        var blocks: [InvertedResidualSpec] = []
        var channels = 32
        for (id, (filters, stride, expansion)) in settings.enumerated() {
            let prefix = id == 0 ? "expanded_conv_" : "block_\(id)_"
            let expanded = channels * expansion
            let residual = channels == filters && stride == 1
            blocks.append(InvertedResidualSpec(
                node: prefix + (residual ? "add" : "project_BN"),
                expand: id == 0 ? nil : NormedConvSpec(conv: prefix + "expand", norm: prefix + "expand_BN", size: 1, stride: 1, input: channels,
                                                       output: expanded, activation: .relu6),
                depthwise: DepthwiseSpec(conv: prefix + "depthwise", norm: prefix + "depthwise_BN", size: 3, stride: stride, channels: expanded,
                                         activation: .relu6),
                squeeze: nil,
                project: NormedConvSpec(conv: prefix + "project", norm: prefix + "project_BN", size: 1, stride: 1, input: expanded, output: filters,
                                        activation: .none),
                residual: residual))
            channels = filters
        }
        return MobilePlan(
            normalization: nil,
            stem: NormedConvSpec(conv: "Conv1", norm: "bn_Conv1", size: 3, stride: 2, input: 3, output: 32, activation: .relu6),
            blocks: blocks,
            top: NormedConvSpec(conv: "Conv_1", norm: "Conv_1_bn", size: 1, stride: 1, input: 320, output: featureCount, activation: .relu6),
            topNode: "out_relu", epsilon: 1e-3)
    }()

    /// How the rest of the tool sees it (`Backbones`).
    public static let architecture: Architecture = Architecture(
        name: "mobilenetv2", title: "MobileNetV2 1.0 (Keras), include_top=False, global average pooling", preprocessing: .tf,
        // Keras loads the 224 file for any input size other than 96, 128, 160 and 192, and publishes no MD5 for it.
        weights: PublishedWeights(fileName: "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", md5: nil,
                                  folder: "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"),
        // bf16 measured slower than float (0.86x for MobileNetV2): its products are short.
        nodes: plan.nodes, minimumSize: 32, fineTunable: nil, bf16: false,
        build: { weights, kernel, _ in try MobileNetwork(architecture: architecture, plan: plan, weights: weights, kernel: kernel) },
        randomWeights: { seed in
            // Inputs in [-1, 1]: the stem needs no scaling; the last BatchNorm of each branch that is
            // added to its input damped (only those: damping every block's shrank the features to 1e-3).
            RandomWeights(seed: seed, inputLayer: "Conv1", inputSpread: 1) { [ends = plan.residualEnds] in ends.contains($0) }
        })
}

extension MobilePlan {
    /// The outputs a cut may take, as `Architecture` lists them.
    var nodes: [BackboneNode] {
        let plan = self
        return nodeNames.indices.map { node in
            BackboneNode(name: nodeNames[node], channels: nodeChannels[node]) { plan.side(ofNode: node, size: $0) }
        }
    }
}
