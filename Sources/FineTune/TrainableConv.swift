import Backbone
import Foundation
import Numerical

/// A convolution of ResNet50's top stage as it trains: Keras's own kernel `[size*size*input x
/// output]` (HWIO flattened) and bias are the parameters; its BatchNorm is frozen in inference mode
/// (Keras's fine-tuning advice), so it is a fixed per-channel `scale` and `shift`. Each step runs on
/// the folded form `kernel * scale`, `(bias - mean) * scale + beta`, as inference does, and the
/// gradients are taken back to the raw parameters (`d/dkernel = scale * d/dfolded`), so that SGD and
/// Adam move the same numbers Keras's optimizers move.
public struct TrainableConv: Sendable {
    public let name: String
    public let size: Int, stride: Int, pad: Int, input: Int, output: Int
    public var kernel: [Float]
    public var bias: [Float]
    /// gamma / sqrt(variance + epsilon), and the BatchNorm's mean and beta, in double (as ResNet50 folds).
    let scale: [Double], mean: [Double], beta: [Double]
    /// This step's folded weights and bias.
    var folded: [Float], foldedBias: [Float]

    public init(name: String, size: Int, stride: Int, pad: Int, input: Int, output: Int, conv: ConvWeights, norm: BatchNormWeights, epsilon: Double) {
        self.name = name
        self.size = size
        self.stride = stride
        self.pad = pad
        self.input = input
        self.output = output
        kernel = conv.kernel
        bias = conv.bias
        scale = (0 ..< output).map { Double(norm.gamma[$0]) / (Double(norm.variance[$0]) + epsilon).squareRoot() }
        mean = norm.mean.map(Double.init)
        beta = norm.beta.map(Double.init)
        folded = kernel
        foldedBias = bias
        refold()
    }

    public var rows: Int { size * size * input }

    /// The folded weights for the current raw ones (after every update).
    mutating func refold() {
        let (rows, output) = (self.rows, self.output)
        kernel.withUnsafeBufferPointer { raw in
            folded.withUnsafeMutableBufferPointer { out in
                scale.withUnsafeBufferPointer { scale in
                    for row in 0 ..< rows {
                        for o in 0 ..< output { out[row * output + o] = Float(Double(raw[row * output + o]) * scale[o]) }
                    }
                }
            }
        }
        for o in 0 ..< output { foldedBias[o] = Float((Double(bias[o]) - mean[o]) * scale[o] + beta[o]) }
    }

    /// Gradients of the folded weights and bias to those of the raw ones, in place.
    func unfold(weights: inout [Float], bias: inout [Float]) {
        let output = self.output
        let scale = self.scale.map(Float.init)
        weights.withUnsafeMutableBufferPointer { w in
            for row in 0 ..< rows {
                for o in 0 ..< output { w[row * output + o] *= scale[o] }
            }
        }
        for o in 0 ..< output { bias[o] *= scale[o] }
    }

    /// `out[rows x output] = a[rows x self.rows] * folded + foldedBias`.
    func affine(_ a: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        foldedBias.withUnsafeBufferPointer { b in
            for row in 0 ..< m { (out + row * output).update(from: b.baseAddress!, count: output) }
        }
        folded.withUnsafeBufferPointer { w in
            splitGEMM(transposeA: false, transposeB: false, m: m, n: output, k: rows, a: a, lda: rows, b: w.baseAddress!, ldb: output,
                      beta: 1, c: out, ldc: output)
        }
    }

    /// For `delta[m x output]` (the loss's gradient at this convolution's pre-activation output) and
    /// its input `a[m x rows]`: the raw parameters' gradients into `weights` and `bias`, and, when
    /// `inputGradient` is given, `delta * folded^T` into it (`[m x rows]`, overwritten or added to).
    func backward(_ delta: UnsafePointer<Float>, input a: UnsafePointer<Float>, rows m: Int, weights: inout [Float], bias: inout [Float],
                  inputGradient: UnsafeMutablePointer<Float>?, accumulate: Bool = false) {
        weights.withUnsafeMutableBufferPointer { g in
            splitGEMM(transposeA: true, transposeB: false, m: rows, n: output, k: m, a: a, lda: rows, b: delta, ldb: output,
                      beta: 0, c: g.baseAddress!, ldc: output)
        }
        bias.withUnsafeMutableBufferPointer { b in
            for o in 0 ..< output { b[o] = 0 }
            for row in 0 ..< m {
                for o in 0 ..< output { b[o] += delta[row * output + o] }
            }
        }
        unfold(weights: &weights, bias: &bias)
        if let inputGradient {
            folded.withUnsafeBufferPointer { w in
                splitGEMM(transposeA: false, transposeB: true, m: m, n: rows, k: output, a: delta, lda: output, b: w.baseAddress!, ldb: output,
                          beta: accumulate ? 1 : 0, c: inputGradient, ldc: rows)
            }
        }
    }
}

/// The spatial rearrangements the top stage's convolutions need, as plain loops over NHWC.
enum Spatial {
    /// `[n, h, w, c]` to `[n, (h-1)/s+1, (w-1)/s+1, c]`: the pixels a 1x1 convolution of stride `s`
    /// ('valid', as Keras's) reads.
    static func subsample(_ x: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, stride s: Int, into out: UnsafeMutablePointer<Float>) {
        let (oh, ow) = ((h - 1) / s + 1, (w - 1) / s + 1)
        for image in 0 ..< n {
            for y in 0 ..< oh {
                for x0 in 0 ..< ow {
                    (out + ((image * oh + y) * ow + x0) * c).update(from: x + ((image * h + y * s) * w + x0 * s) * c, count: c)
                }
            }
        }
    }

    /// 3x3, stride 1, padding 1: `[n, h, w, c]` to patches `[n*h*w, 9*c]`, (ky, kx, c) order as HWIO kernels.
    static func im2col3x3(_ x: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, into out: UnsafeMutablePointer<Float>) {
        let rowLength = 9 * c
        for image in 0 ..< n {
            for y in 0 ..< h {
                for x0 in 0 ..< w {
                    let row = out + ((image * h + y) * w + x0) * rowLength
                    for ky in 0 ..< 3 {
                        for kx in 0 ..< 3 {
                            let (sy, sx) = (y + ky - 1, x0 + kx - 1)
                            let destination = row + (ky * 3 + kx) * c
                            if sy < 0 || sy >= h || sx < 0 || sx >= w {
                                destination.update(repeating: 0, count: c)
                            } else {
                                destination.update(from: x + ((image * h + sy) * w + sx) * c, count: c)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col3x3`: patch gradients `[n*h*w, 9*c]` summed back into `[n, h, w, c]`.
    static func col2im3x3(_ columns: UnsafePointer<Float>, n: Int, h: Int, w: Int, c: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: n * h * w * c)
        let rowLength = 9 * c
        for image in 0 ..< n {
            for y in 0 ..< h {
                for x0 in 0 ..< w {
                    let row = columns + ((image * h + y) * w + x0) * rowLength
                    for ky in 0 ..< 3 {
                        for kx in 0 ..< 3 {
                            let (sy, sx) = (y + ky - 1, x0 + kx - 1)
                            guard sy >= 0, sy < h, sx >= 0, sx < w else { continue }
                            let source = row + (ky * 3 + kx) * c, destination = out + ((image * h + sy) * w + sx) * c
                            for channel in 0 ..< c { destination[channel] += source[channel] }
                        }
                    }
                }
            }
        }
    }
}
