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
///   MatMul x2      [N, 1, S, S]   tf.image.resize's bilinear (half-pixel centres) as preprocess does
///                                 it: image * columns^T, then rows * that, with preprocess's weights
///   Round, Clip    0 ... 255, half to even (preprocess's rounding to 8 bits)
///   Concat x3      [N, 3, S, S]   grey replicated; BGR = RGB for grey
/// Colour (or grey of any other geometry), already at the network's size:
///   images         [N, S, S, 3] float32, RGB 0-255: decoded as TensorFlow's decode_image, resized
///                                 to S x S by tf.image.resize (bilinear) and rounded, as preprocess
///                                 stores them (a resize from any size is the caller's: no ONNX
///                                 resize reproduces tf.image.resize's rounding exactly)
///   Transpose      [N, 3, S, S]
///   Gather         channels 2, 1, 0: RGB to BGR, as Keras's caffe preprocessing does
/// Then, for both:
///   Sub            caffe means    [103.939, 116.779, 123.68] per channel (BGR)
///   ResNet50       BatchNorm folded into every Conv, as far as the deepest layer the head reads
///                  (ResNet-only: the graph is built of bottleneck blocks, `ResNet50.folded`)
///   GlobalAveragePool, Flatten per layer read; Concat in depth order
///   Sub, Div       the head's standardization (when it has one)
///   Gemm, Relu ... Gemm, Softmax
///   probabilities  [N, classes]
public struct ClassifierGraph {
    /// What the model takes.
    public enum Input {
        /// Square grey originals of `side` pixels, resized in the graph by the matrices of
        /// `BilinearResize.matrices`: `rows[S x side]`, `columns[S x side]`.
        case greyOriginals(side: Int, resize: (rows: [Float], columns: [Float]))
        /// RGB images already at the network's size, resized as preprocess resizes.
        case resizedRGB
    }

    public var size: Int
    public var input: Input
    public var stem: FoldedConvolution
    /// Each block's convolutions through the deepest layer read: projection (if any), reduce, 3x3, expand.
    public var blocks: [[FoldedConvolution]]
    public var cut: Cut
    public var standardization: Standardization?
    public var network: DenseNetwork
    /// name -> value pairs for the model's metadata_props.
    public var metadata: [(String, String)]

    public init(size: Int, input: Input, stem: FoldedConvolution, blocks: [[FoldedConvolution]], cut: Cut, standardization: Standardization?,
                network: DenseNetwork, metadata: [(String, String)]) {
        self.size = size
        self.input = input
        self.stem = stem
        self.blocks = blocks
        self.cut = cut
        self.standardization = standardization
        self.network = network
        self.metadata = metadata
    }

    /// The input tensor's shape, N first (nil: any batch).
    public var inputDims: [Int?] {
        switch input {
        case let .greyOriginals(side, _): [nil, side, side, 1]
        case .resizedRGB: [nil, size, size, 3]
        }
    }

    /// The input in words, for the model's doc string and metadata.
    public var inputDescription: String {
        switch input {
        case let .greyOriginals(side, _):
            "images: float32 N x \(side) x \(side) x 1, grey levels 0-255 (the originals' pixels, row-major)"
        case .resizedRGB:
            "images: float32 N x \(size) x \(size) x 3, RGB 0-255, resized to \(size)x\(size) as tf.image.resize (bilinear) does and rounded to integers (preprocess's pixels)"
        }
    }

    public static let opset = 17
    public static let inputName = "images", outputName = "probabilities"

    /// HWIO `[kh*kw*in x out]` to ONNX's OIHW.
    static func oihw(_ conv: FoldedConvolution) -> [Float] {
        let (k, input, output) = (conv.spec.size, conv.spec.input, conv.spec.output)
        var out = [Float](repeating: 0, count: conv.kernel.count)
        for y in 0 ..< k {
            for x in 0 ..< k {
                for i in 0 ..< input {
                    for o in 0 ..< output { out[((o * input + i) * k + y) * k + x] = conv.kernel[((y * k + x) * input + i) * output + o] }
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

    public func model() -> Onnx_ModelProto {
        var graph = GraphBuilder()
        let nchw = graph.node("Transpose", [Self.inputName], [Attribute.ints("perm", [0, 3, 1, 2])], name: "to_nchw")
        let bgr: String
        switch input {
        case let .greyOriginals(source, resize):
            // Grey originals to the backbone's input, as preprocess and NetworkInput do it.
            // Not ONNX's Resize: ONNX Runtime derives its coordinates from the scale S/28 (inexact in
            // float), so at the many exact .5 values of this resize it rounds a few pixels an image the
            // other way (measured: 1-3 pixels off by one level, probabilities off by up to 4e-3). Two
            // products with preprocess's own weights are exact, in any runtime.
            var columnsT = [Float](repeating: 0, count: source * size)
            for x in 0 ..< size {
                for j in 0 ..< source { columnsT[j * size + x] = resize.columns[x * source + j] }
            }
            let across = graph.node("MatMul", [nchw, graph.constant("resize_columns", columnsT, dims: [source, size])], name: "resize_x")
            let resized = graph.node("MatMul", [graph.constant("resize_rows", resize.rows, dims: [size, source]), across], name: "resize")
            let rounded = graph.node("Round", [resized])
            let clipped = graph.node("Clip", [rounded, graph.constant("zero_f", [0], dims: []), graph.constant("max_f", [255], dims: [])])
            bgr = graph.node("Concat", [clipped, clipped, clipped], [Attribute.int("axis", 1)], name: "replicate")
        case .resizedRGB:
            // Keras's caffe mode reverses the channels (RGB to BGR) before subtracting the means.
            bgr = graph.node("Gather", [nchw, graph.constant("bgr_order", int64: [2, 1, 0])], [Attribute.int("axis", 1)], name: "to_bgr")
        }
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
