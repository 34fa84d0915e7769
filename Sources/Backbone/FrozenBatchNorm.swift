/// A BatchNorm in inference mode, as a per-channel affine map in double: `(x - mean) * scale + beta`
/// with `scale = gamma / sqrt(variance + epsilon)`. Folding it into the convolution before it is the
/// one fold of the project: the network at load, its ONNX export, and fine-tuning at every step.
public struct FrozenBatchNorm: Sendable {
    public let scale: [Double], mean: [Double], beta: [Double]

    public init(_ norm: BatchNormWeights, epsilon: Double = ResNet50.batchNormEpsilon) {
        scale = zip(norm.gamma, norm.variance).map { Double($0) / (Double($1) + epsilon).squareRoot() }
        mean = norm.mean.map(Double.init)
        beta = norm.beta.map(Double.init)
    }

    public var channels: Int { scale.count }

    /// BN(conv(x) + b) = conv(x) * s + (b - mean) * s + beta: `kernel[rows x channels]` with each
    /// column scaled, and the bias, computed in double so that folding adds no error of its own.
    public func fold(kernel: [Float], bias: [Float]) -> (weights: [Float], bias: [Float]) {
        let output = channels
        var weights = kernel
        weights.withUnsafeMutableBufferPointer { w in
            scale.withUnsafeBufferPointer { scale in
                for row in 0 ..< w.count / output {
                    let line = w.baseAddress! + row * output
                    for o in 0 ..< output { line[o] = Float(Double(line[o]) * scale[o]) }
                }
            }
        }
        return (weights, (0 ..< output).map { foldedBias(bias[$0], channel: $0) })
    }

    /// One channel's folded bias.
    @inline(__always) public func foldedBias(_ bias: Float, channel o: Int) -> Float {
        Float((Double(bias) - mean[o]) * scale[o] + beta[o])
    }
}
