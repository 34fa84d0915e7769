import Foundation
import Numerical

/// A convolution's kernel, HWIO as Keras stores it (`[kh, kw, in, out]` flattened), and its bias.
public struct ConvWeights: Sendable {
    public var kernel: [Float]
    public var bias: [Float]

    public init(kernel: [Float], bias: [Float]) {
        self.kernel = kernel
        self.bias = bias
    }
}

/// BatchNorm's four vectors, one value per channel.
public struct BatchNormWeights: Sendable {
    public var gamma: [Float]
    public var beta: [Float]
    public var mean: [Float]
    public var variance: [Float]

    public init(gamma: [Float], beta: [Float], mean: [Float], variance: [Float]) {
        self.gamma = gamma
        self.beta = beta
        self.mean = mean
        self.variance = variance
    }
}

/// Where a backbone's weights come from: a Keras file or a seeded random initialisation.
public protocol BackboneWeights {
    /// Conv layer `name` with a `size x size x input x output` kernel.
    func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights
    func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights
    /// Depthwise layer `name` with a `size x size x channels x 1` kernel (Keras's `depthwise_kernel`).
    func depthwise(_ name: String, size: Int, channels: Int) throws -> ConvWeights
    /// Keras's Normalization layer `name`: its per-channel `mean` and `variance`.
    func normalization(_ name: String, channels: Int) throws -> (mean: [Float], variance: [Float])
}

extension BackboneWeights {
    /// ResNet50 has neither, so weights made for it alone need not say so.
    public func depthwise(_ name: String, size: Int, channels: Int) throws -> ConvWeights {
        throw WeightsError("\(type(of: self)) has no depthwise layer '\(name)'")
    }

    public func normalization(_ name: String, channels: Int) throws -> (mean: [Float], variance: [Float]) {
        throw WeightsError("\(type(of: self)) has no normalization layer '\(name)'")
    }
}

/// Weights from a Keras HDF5 weights file, in the Keras 2 layout (fixed-length byte-string
/// attributes, weight names ending in `:0`, as the official ResNet50 file) or the Keras 3 one
/// (variable-length strings, no suffix): `/<layer>` carries `weight_names`, and each weight is the
/// dataset `/<layer>/<weight name>`.
public final class KerasWeightsFile: BackboneWeights {
    let file: HDF5File
    public var path: String { file.path }

    public init(_ url: URL) throws {
        file = try HDF5File(url)
    }

    /// The layer's weights by short name (`kernel`, `bias`, `gamma`, ...), with their shapes.
    func weights(of layer: String) throws -> [String: (shape: [Int], values: [Float])] {
        guard file.exists("/" + layer) else {
            throw WeightsError("\(path): layer '\(layer)' is missing (are these the notop weights of the backbone asked for?)")
        }
        guard let names = try file.strings(attribute: "weight_names", of: "/" + layer) else {
            throw WeightsError("\(path): layer '\(layer)' has no 'weight_names' attribute (not a Keras weights file?)")
        }
        var result: [String: (shape: [Int], values: [Float])] = [:]
        for name in names {
            var short = String(name.split(separator: "/").last ?? "")
            if short.hasSuffix(":0") { short.removeLast(2) }
            let datasetPath = "/\(layer)/\(name)"
            guard file.exists(datasetPath) else {
                throw WeightsError("\(path): layer '\(layer)' names weight '\(name)' but \(datasetPath) is missing")
            }
            result[short] = try file.floats(dataset: datasetPath)
        }
        return result
    }

    func take(_ weights: [String: (shape: [Int], values: [Float])], _ key: String, layer: String, shape: [Int]) throws -> [Float] {
        guard let found = weights[key] else {
            throw WeightsError("\(path): layer '\(layer)' has no '\(key)' weight (found: \(weights.keys.sorted().joined(separator: ", ")))")
        }
        guard found.shape == shape else {
            throw WeightsError("\(path): layer '\(layer)' weight '\(key)': expected shape \(shape), found \(found.shape)")
        }
        return found.values
    }

    public func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights {
        let weights = try self.weights(of: name)
        let kernel = try take(weights, "kernel", layer: name, shape: [size, size, input, output])
        let bias = weights["bias"] == nil ? [Float](repeating: 0, count: output)
            : try take(weights, "bias", layer: name, shape: [output])
        return ConvWeights(kernel: kernel, bias: bias)
    }

    public func depthwise(_ name: String, size: Int, channels: Int) throws -> ConvWeights {
        let weights = try self.weights(of: name)
        // Keras 2 (the published files) calls it `depthwise_kernel`, Keras 3 `kernel`.
        let key = weights["depthwise_kernel"] == nil && weights["kernel"] != nil ? "kernel" : "depthwise_kernel"
        let kernel = try take(weights, key, layer: name, shape: [size, size, channels, 1])
        let bias = weights["bias"] == nil ? [Float](repeating: 0, count: channels)
            : try take(weights, "bias", layer: name, shape: [channels])
        return ConvWeights(kernel: kernel, bias: bias)
    }

    public func normalization(_ name: String, channels: Int) throws -> (mean: [Float], variance: [Float]) {
        let weights = try self.weights(of: name)
        return (try take(weights, "mean", layer: name, shape: [channels]), try take(weights, "variance", layer: name, shape: [channels]))
    }

    public func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights {
        let weights = try self.weights(of: name)
        return BatchNormWeights(gamma: try take(weights, "gamma", layer: name, shape: [channels]),
                                beta: try take(weights, "beta", layer: name, shape: [channels]),
                                mean: try take(weights, "moving_mean", layer: name, shape: [channels]),
                                variance: try take(weights, "moving_variance", layer: name, shape: [channels]))
    }
}

/// A seeded He-initialised backbone (normal kernels with variance 2/fan-in, zero biases, identity
/// BatchNorm) for demonstrations without the ImageNet weights. Its features carry no ImageNet
/// knowledge, and everything downstream says so.
///
/// Two scalings keep its features near unit size, as trained ones are (plain He init gives features
/// around 1e4, on which a head's ReLUs all die at Adam's first step): the stem's kernel is divided by
/// 64, the spread of caffe-preprocessed pixels that He init assumes to be 1, and the last BatchNorm of
/// each residual branch has gamma 0.2, so that sixteen residual additions do not compound.
public struct RandomWeights: BackboneWeights {
    public let seed: UInt64
    /// The convolution that sees the preprocessed pixels (its kernel divided by 64).
    public let inputLayer: String
    /// Whether a BatchNorm ends a residual branch (its gamma 0.2).
    public let branchEnd: @Sendable (String) -> Bool
    /// The spread of the input pixels: 64 for caffe's (0-255 less the means), 1 for inputs in [-1, 1].
    public let inputSpread: Double
    /// A convolution's bias (0 but where a backbone says otherwise: EfficientNet's excitations).
    public let bias: @Sendable (String) -> Float

    public init(seed: UInt64, inputLayer: String, inputSpread: Double = 64, bias: @escaping @Sendable (String) -> Float = { _ in 0 },
                branchEnd: @escaping @Sendable (String) -> Bool) {
        self.seed = seed
        self.inputLayer = inputLayer
        self.inputSpread = inputSpread
        self.bias = bias
        self.branchEnd = branchEnd
    }

    public func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights {
        // One stream per layer, keyed by its name, so that layers do not depend on each other's order.
        var generator = SplitMix64(seed: seed ^ fnv1a(name))
        let deviation = (2.0 / Double(size * size * input)).squareRoot() / (name == inputLayer ? inputSpread : 1)
        let kernel = (0 ..< size * size * input * output).map { _ in Float(generator.nextNormal() * deviation) }
        return ConvWeights(kernel: kernel, bias: [Float](repeating: bias(name), count: output))
    }

    public func depthwise(_ name: String, size: Int, channels: Int) throws -> ConvWeights {
        // Each channel has its own size x size filter: its fan-in is size * size.
        var generator = SplitMix64(seed: seed ^ fnv1a(name))
        let deviation = (2.0 / Double(size * size)).squareRoot()
        let kernel = (0 ..< size * size * channels).map { _ in Float(generator.nextNormal() * deviation) }
        return ConvWeights(kernel: kernel, bias: [Float](repeating: 0, count: channels))
    }

    /// ImageNet's statistics as EfficientNet's published weights store them (the standard deviation
    /// in the variance's place, which Keras's model corrects), so that a random backbone sees inputs
    /// of the same spread as the real one.
    public func normalization(_ name: String, channels: Int) throws -> (mean: [Float], variance: [Float]) {
        guard channels == 3 else { throw WeightsError("random weights: normalization '\(name)' of \(channels) channels, expected 3") }
        return ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    }

    public func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights {
        BatchNormWeights(gamma: .init(repeating: branchEnd(name) ? 0.2 : 1, count: channels), beta: .init(repeating: 0, count: channels),
                         mean: .init(repeating: 0, count: channels), variance: .init(repeating: 1, count: channels))
    }

    func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }
}

/// A backbone's weights with some convolutions replaced (a fine-tuned conv5): the rest, and every
/// BatchNorm, come from `base`.
public struct ReplacedWeights: BackboneWeights {
    public let base: any BackboneWeights
    public let replaced: [String: ConvWeights]

    public init(base: any BackboneWeights, replaced: [String: ConvWeights]) {
        self.base = base
        self.replaced = replaced
    }

    public func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights {
        guard let conv = replaced[name] else { return try base.conv(name, size: size, input: input, output: output) }
        guard conv.kernel.count == size * size * input * output, conv.bias.count == output else {
            throw WeightsError("fine-tuned \(name): \(conv.kernel.count) kernel values and \(conv.bias.count) biases, expected \(size * size * input * output) and \(output)")
        }
        return conv
    }

    public func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights { try base.batchNorm(name, channels: channels) }
    public func depthwise(_ name: String, size: Int, channels: Int) throws -> ConvWeights { try base.depthwise(name, size: size, channels: channels) }
    public func normalization(_ name: String, channels: Int) throws -> (mean: [Float], variance: [Float]) {
        try base.normalization(name, channels: channels)
    }
}
