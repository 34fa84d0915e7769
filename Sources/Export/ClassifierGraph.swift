import Backbone
import Foundation
import Head
import ONNXProto

/// The whole classifier as one ONNX model: images in, the classes' probabilities out, by exactly
/// the steps `predict` takes. Two kinds of input (`Input`):
///
/// Square grey originals (Sign MNIST: 28x28), resized in the graph:
///   images         [N, 28, 28, 1] float32, grey levels 0-255 (the Kaggle CSV's pixels, NHWC)
///   Transpose      [N, 1, 28, 28]
///   Gather, Sub, Mul, Add x2      [N, 1, S, S]   tf.image.resize's bilinear (half-pixel centres) by
///                                 preprocess's own operations: l + (r - l) * lerp across each row,
///                                 then t + (b - t) * lerp down, with its taps
///   Clip, Round    0 ... 255, half to even (preprocess's rounding to 8 bits)
///   Concat x3      [N, 3, S, S]   grey replicated; BGR = RGB for grey
/// Colour (or grey of any other geometry), already at the network's size:
///   images         [N, S, S, 3] float32, RGB 0-255: decoded as TensorFlow's decode_image, resized
///                                 to S x S by tf.image.resize (bilinear) and rounded, as preprocess
///                                 stores them (a resize from any size is the caller's: no ONNX
///                                 resize reproduces tf.image.resize's rounding exactly)
///   Transpose      [N, 3, S, S]
///   Gather         channels 2, 1, 0: RGB to BGR, as Keras's caffe preprocessing does
/// Then, for both, the backbone's preprocessing and the backbone, as far as the deepest layer the head reads:
///   ResNet50       Sub caffe means [103.939, 116.779, 123.68] per channel (BGR; colour goes through
///                  the Gather above), then BatchNorm folded into every Conv (`ResNet50.folded`)
///   MobileNetV2    Div 127.5, Sub 1 (Keras's tf mode), then Conv (BatchNorm folded), Clip 0-6 for
///                  ReLU6, depthwise Conv (group = channels), Add (`FoldedMobile`)
///   EfficientNetB0 Mul 1/255, Sub mean, Div deviation, Mul rescale (the model's own input layers),
///                  then Conv, x * Sigmoid(x) for swish, depthwise Conv, squeeze-excitation
///                  (GlobalAveragePool, Conv, swish, Conv, Sigmoid, Mul), Add
///                  (stride-2 layers padded as TensorFlow's "same": at an even side the odd row after)
///   GlobalAveragePool, Flatten per layer read; Concat in depth order
///   Sub, Div       the head's standardization (when it has one)
///   Gemm, Relu ... Gemm, Softmax
///   probabilities  [N, classes]
public struct ClassifierGraph {
    public typealias Taps = (lower: [Int], upper: [Int], lerp: [Float])

    /// What the model takes.
    public enum Input {
        /// Square grey originals of `side` pixels, resized in the graph with the taps of
        /// `BilinearResize.taps` (each output row's or column's two input coordinates and the upper's weight).
        case greyOriginals(side: Int, rows: Taps, columns: Taps)
        /// RGB images already at the network's size, resized as preprocess resizes.
        case resizedRGB
    }

    /// The backbone's layers, folded, as far as the deepest layer the head reads.
    public enum Layers {
        /// ResNet50's stem and each block's convolutions: projection (if any), reduce, 3x3, expand.
        case resnet(stem: FoldedConvolution, blocks: [[FoldedConvolution]])
        case mobile(FoldedMobile)
    }

    public var size: Int
    public var input: Input
    public var layers: Layers
    public var cut: Cut
    public var standardization: Standardization?
    public var network: DenseNetwork
    /// name -> value pairs for the model's metadata_props.
    public var metadata: [(String, String)]

    public init(size: Int, input: Input, layers: Layers, cut: Cut, standardization: Standardization?, network: DenseNetwork, metadata: [(String, String)]) {
        self.size = size
        self.input = input
        self.layers = layers
        self.cut = cut
        self.standardization = standardization
        self.network = network
        self.metadata = metadata
    }

    /// The input tensor's shape, N first (nil: any batch).
    public var inputDims: [Int?] {
        switch input {
        case let .greyOriginals(side, _, _): [nil, side, side, 1]
        case .resizedRGB: [nil, size, size, 3]
        }
    }

    /// The input in words, for the model's doc string and metadata.
    public var inputDescription: String {
        switch input {
        case let .greyOriginals(side, _, _):
            "images: float32 N x \(side) x \(side) x 1, grey levels 0-255 (the originals' pixels, row-major)"
        case .resizedRGB:
            "images: float32 N x \(size) x \(size) x 3, RGB 0-255, resized to \(size)x\(size) as tf.image.resize (bilinear) does and rounded to integers (preprocess's pixels)"
        }
    }

    public static let opset = 17
    public static let inputName = "images", outputName = "probabilities"

    /// HWIO `[kh*kw*in x out]` to ONNX's OIHW.
    static func oihw(_ conv: FoldedConvolution) -> [Float] {
        oihw(conv.kernel, size: conv.spec.size, input: conv.spec.input, output: conv.spec.output)
    }

    static func oihw(_ kernel: [Float], size k: Int, input: Int, output: Int) -> [Float] {
        var out = [Float](repeating: 0, count: kernel.count)
        for y in 0 ..< k {
            for x in 0 ..< k {
                for i in 0 ..< input {
                    for o in 0 ..< output { out[((o * input + i) * k + y) * k + x] = kernel[((y * k + x) * input + i) * output + o] }
                }
            }
        }
        return out
    }

    static func conv(_ graph: inout GraphBuilder, _ x: String, _ conv: FoldedConvolution, relu: Bool) -> String {
        let spec = conv.spec
        let weights = graph.constant(spec.name + "_W", oihw(conv), dims: [spec.output, spec.input, spec.size, spec.size])
        let bias = graph.constant(spec.name + "_B", conv.bias, dims: [spec.output])
        let out = graph.node("Conv", [x, weights, bias], [Attribute.ints("kernel_shape", [spec.size, spec.size]),
                                                           Attribute.ints("strides", [spec.stride, spec.stride]),
                                                           Attribute.ints("pads", Array(repeating: spec.pad, count: 4))], name: spec.name)
        return relu ? graph.node("Relu", [out], name: spec.name + "_relu") : out
    }

    /// ResNet50 on `bgr` (the caffe means subtracted here); returns the pooled vectors of the layers read.
    func resnet(_ graph: inout GraphBuilder, _ bgr: String, stem: FoldedConvolution, blocks: [[FoldedConvolution]]) -> [String] {
        let caffe = graph.node("Sub", [bgr, graph.constant("caffe_means", InputPreprocessing.caffeMeans, dims: [1, 3, 1, 1])], name: "caffe")
        var x = Self.conv(&graph, caffe, stem, relu: true)
        x = graph.node("MaxPool", [x], [Attribute.ints("kernel_shape", [3, 3]), Attribute.ints("strides", [2, 2]),
                                        Attribute.ints("pads", [1, 1, 1, 1])], name: "pool1")
        var pooled: [String] = []
        for (index, block) in blocks.enumerated() {
            let convs = block.count == 4 ? Array(block[1...]) : block
            let shortcut = block.count == 4 ? Self.conv(&graph, x, block[0], relu: false) : x
            let reduced = Self.conv(&graph, x, convs[0], relu: true)
            let spatial = Self.conv(&graph, reduced, convs[1], relu: true)
            let expanded = Self.conv(&graph, spatial, convs[2], relu: false)
            let name = cut.architecture.nodes[index].name
            x = graph.node("Relu", [graph.node("Add", [expanded, shortcut], name: name + "_add")], name: name)
            if cut.blocks.contains(index) {
                pooled.append(graph.node("Flatten", [graph.node("GlobalAveragePool", [x], name: name + "_pool")], [Attribute.int("axis", 1)],
                                         name: name + "_vector"))
            }
        }
        return pooled
    }

    /// The activation after a node: ReLU6 as Clip, swish as x * Sigmoid(x).
    static func activate(_ graph: inout GraphBuilder, _ x: String, _ activation: Activation, name: String) -> String {
        switch activation {
        case .none: return x
        case .relu: return graph.node("Relu", [x], name: name)
        case .relu6: return graph.node("Clip", [x, graph.constant("zero", [0], dims: []), graph.constant("six", [6], dims: [])], name: name)
        case .sigmoid: return graph.node("Sigmoid", [x], name: name)
        case .swish: return graph.node("Mul", [x, graph.node("Sigmoid", [x], name: name + "_sigmoid")], name: name)
        }
    }

    /// A convolution in ONNX's layout (`oihw`) with TensorFlow's "same" padding for an input of side
    /// `side` (ONNX's pads: top, left, bottom, right); `group` for a depthwise one.
    static func sameConv(_ graph: inout GraphBuilder, _ x: String, name: String, oihw: [Float], bias: [Float], output: Int, input: Int, size: Int,
                         stride: Int, side: Int, group: Int = 1) -> String {
        let before = MobilePlan.samePadding(side, size: size, stride: stride)
        let total = max((MobilePlan.sameOutput(side, stride: stride) - 1) * stride + size - side, 0)
        let weights = graph.constant(name + "_W", oihw, dims: [output, input / group, size, size])
        return graph.node("Conv", [x, weights, graph.constant(name + "_B", bias, dims: [output])],
                          [Attribute.ints("kernel_shape", [size, size]), Attribute.ints("strides", [stride, stride]),
                           Attribute.ints("pads", [before, before, total - before, total - before]), Attribute.int("group", group)], name: name)
    }

    static func conv(_ graph: inout GraphBuilder, _ x: String, _ conv: FoldedMobile.Conv, side: Int) -> String {
        let spec = conv.spec
        let out = sameConv(&graph, x, name: spec.conv, oihw: oihw(conv.kernel, size: spec.size, input: spec.input, output: spec.output), bias: conv.bias, output: spec.output, input: spec.input, size: spec.size,
                           stride: spec.stride, side: side)
        return activate(&graph, out, spec.activation, name: spec.conv + "_act")
    }

    /// MobileNetV2 or EfficientNetB0 on the RGB pixels (0-255); returns the pooled vectors of the layers read.
    func mobile(_ graph: inout GraphBuilder, _ rgb: String, _ folded: FoldedMobile) -> [String] {
        var x = rgb
        if cut.architecture.preprocessing == .tf {
            x = graph.node("Div", [x, graph.constant("tf_scale", [127.5], dims: [])], name: "tf_divide")
            x = graph.node("Sub", [x, graph.constant("one", [1], dims: [])], name: "tf_mode")
        }
        if let n = folded.normalization {
            x = graph.node("Mul", [x, graph.constant("rescaling", [Float(1.0 / 255.0)], dims: [])], name: "rescaling")
            x = graph.node("Sub", [x, graph.constant("normalization_mean", n.mean, dims: [1, 3, 1, 1])], name: "normalization_centred")
            x = graph.node("Div", [x, graph.constant("normalization_deviation", n.deviation, dims: [1, 3, 1, 1])], name: "normalization")
            x = graph.node("Mul", [x, graph.constant("imagenet_rescaling", n.rescale, dims: [1, 3, 1, 1])], name: "imagenet_rescaling")
        }
        var side = size
        x = Self.conv(&graph, x, folded.stem, side: side)
        side = MobilePlan.sameOutput(side, stride: folded.stem.spec.stride)
        var pooled: [String] = []
        func tap(_ node: Int, _ value: String) {
            guard cut.blocks.contains(node) else { return }
            let name = cut.architecture.nodes[node].name
            pooled.append(graph.node("Flatten", [graph.node("GlobalAveragePool", [value], name: name + "_pool")], [Attribute.int("axis", 1)],
                                     name: name + "_vector"))
        }
        for (index, block) in folded.blocks.enumerated() {
            let input = x
            var y = block.expand.map { Self.conv(&graph, x, $0, side: side) } ?? x
            let d = block.depthwise.spec
            // Keras's [kh, kw, C, 1] to ONNX's [C, 1, kh, kw].
            var depthwise = [Float](repeating: 0, count: block.depthwise.kernel.count)
            for c in 0 ..< d.channels {
                for tap in 0 ..< d.size * d.size { depthwise[c * d.size * d.size + tap] = block.depthwise.kernel[tap * d.channels + c] }
            }
            y = Self.sameConv(&graph, y, name: d.conv, oihw: depthwise, bias: block.depthwise.bias, output: d.channels, input: d.channels, size: d.size,
                              stride: d.stride, side: side, group: d.channels)
            y = Self.activate(&graph, y, d.activation, name: d.conv + "_act")
            side = MobilePlan.sameOutput(side, stride: d.stride)
            if let squeeze = block.squeeze {
                // Keras's [1, 1, in, out] kernels to ONNX's [out, in, 1, 1].
                let s = squeeze.spec
                var reduce = [Float](repeating: 0, count: squeeze.reduce.count), expand = [Float](repeating: 0, count: squeeze.expand.count)
                for c in 0 ..< s.channels {
                    for j in 0 ..< s.squeezed {
                        reduce[j * s.channels + c] = squeeze.reduce[c * s.squeezed + j]
                        expand[c * s.squeezed + j] = squeeze.expand[j * s.channels + c]
                    }
                }
                var e = graph.node("GlobalAveragePool", [y], name: s.reduce + "_squeeze")
                e = graph.node("Conv", [e, graph.constant(s.reduce + "_W", reduce, dims: [s.squeezed, s.channels, 1, 1]),
                                        graph.constant(s.reduce + "_B", squeeze.reduceBias, dims: [s.squeezed])], name: s.reduce)
                e = Self.activate(&graph, e, s.activation, name: s.reduce + "_act")
                e = graph.node("Conv", [e, graph.constant(s.expand + "_W", expand, dims: [s.channels, s.squeezed, 1, 1]),
                                        graph.constant(s.expand + "_B", squeeze.expandBias, dims: [s.channels])], name: s.expand)
                e = graph.node("Sigmoid", [e], name: s.expand + "_sigmoid")
                y = graph.node("Mul", [y, e], name: s.expand + "_excite")
            }
            y = Self.conv(&graph, y, block.project, side: side)
            x = block.spec.residual ? graph.node("Add", [y, input], name: block.spec.node) : y
            tap(index, x)
        }
        if let top = folded.top {
            x = Self.conv(&graph, x, top, side: side)
            tap(folded.blocks.count, x)
        }
        return pooled
    }

    public func model() -> Onnx_ModelProto {
        var graph = GraphBuilder()
        let nchw = graph.node("Transpose", [Self.inputName], [Attribute.ints("perm", [0, 3, 1, 2])], name: "to_nchw")
        let bgr: String
        switch input {
        case let .greyOriginals(source, rows, columns):
            // Grey originals to the backbone's input, as preprocess and NetworkInput do it, by the
            // very operations of its resize (each rounded to float as ONNX's elementwise operators
            // round them), so the same floats at any size. Two products with its bilinear weights
            // were exact only where every weight and product is (28 to 32, 64, 224): at 48 ONNX
            // Runtime's sums rounded a few pixels the other way (probabilities off by 8e-4). ONNX's
            // Resize was tried before that: it derives its coordinates from the scale S/28, inexact
            // in float, and rounded 1-3 pixels an image the other way.
            precondition(columns.lower.allSatisfy { $0 < source } && rows.lower.count == size && columns.lower.count == size)
            func blend(_ x: String, axis: Int, _ taps: (lower: [Int], upper: [Int], lerp: [Float]), name: String) -> String {
                let low = graph.node("Gather", [x, graph.constant(name + "_lower", int64: taps.lower)], [Attribute.int("axis", axis)], name: name + "_l")
                let high = graph.node("Gather", [x, graph.constant(name + "_upper", int64: taps.upper)], [Attribute.int("axis", axis)], name: name + "_r")
                let lerp = graph.constant(name + "_lerp", taps.lerp, dims: axis == 3 ? [taps.lerp.count] : [taps.lerp.count, 1])
                let step = graph.node("Mul", [graph.node("Sub", [high, low], name: name + "_difference"), lerp], name: name + "_step")
                return graph.node("Add", [low, step], name: name)
            }
            let resized = blend(blend(nchw, axis: 3, columns, name: "resize_x"), axis: 2, rows, name: "resize")
            let clipped = graph.node("Round", [graph.node("Clip", [resized, graph.constant("zero_f", [0], dims: []),
                                                                   graph.constant("max_f", [255], dims: [])])], name: "rounded")
            bgr = graph.node("Concat", [clipped, clipped, clipped], [Attribute.int("axis", 1)], name: "replicate")
        case .resizedRGB:
            // Keras's caffe mode reverses the channels (RGB to BGR) before subtracting the means.
            bgr = cut.architecture.preprocessing == .caffe
                ? graph.node("Gather", [nchw, graph.constant("bgr_order", int64: [2, 1, 0])], [Attribute.int("axis", 1)], name: "to_bgr") : nchw
        }
        let pooled: [String]
        switch layers {
        case let .resnet(stem, blocks): pooled = resnet(&graph, bgr, stem: stem, blocks: blocks)
        case let .mobile(folded): pooled = mobile(&graph, bgr, folded)
        }

        var features = pooled.count == 1 ? pooled[0] : graph.node("Concat", pooled, [Attribute.int("axis", 1)], name: "features")
        if let standardization {
            let d = standardization.dimension
            features = graph.node("Sub", [features, graph.constant("mean", standardization.mean, dims: [d])], name: "centred")
            features = graph.node("Div", [features, graph.constant("deviation", standardization.deviation, dims: [d])], name: "standardized")
        }
        for (index, layer) in network.layers.enumerated() {
            let weights = graph.constant("dense\(index)_W", layer.weights, dims: [layer.inputs, layer.outputs])
            let bias = graph.constant("dense\(index)_B", layer.bias, dims: [layer.outputs])
            features = graph.node("Gemm", [features, weights, bias], name: "dense\(index)")
            if index < network.layers.count - 1 { features = graph.node("Relu", [features], name: "dense\(index)_relu") }
        }
        let softmax = graph.node("Softmax", [features], [Attribute.int("axis", 1)], name: "softmax")
        graph.node("Identity", [softmax], name: Self.outputName)

        var proto = Onnx_GraphProto()
        proto.name = "signtransfer"
        proto.node = graph.nodes
        proto.initializer = graph.initializers
        proto.input = [tensorValue(Self.inputName, dims: inputDims)]
        proto.output = [tensorValue(Self.outputName, dims: [nil, network.classCount])]
        var model = Onnx_ModelProto()
        model.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(Self.opset)
        model.opsetImport = [opset]
        model.producerName = "signtransfer"
        model.graph = proto
        model.docString = "\(inputDescription); out: the probabilities of the classes in metadata 'classes'."
        model.metadataProps = metadata.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        return model
    }
}
