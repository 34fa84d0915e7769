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
    public let spec: ConvolutionSpec
    public var kernel: [Float]
    public var bias: [Float]
    /// Its BatchNorm, frozen: the fold is the network's own (`FrozenBatchNorm`).
    let norm: FrozenBatchNorm
    /// This step's folded weights and bias.
    var folded: [Float], foldedBias: [Float]
    /// What its products multiply: float, or bf16 while fine-tuning asks for it.
    var precision = FineTunePrecision.fp32

    public init(_ spec: ConvolutionSpec, conv: ConvWeights, norm: FrozenBatchNorm) {
        self.spec = spec
        self.norm = norm
        kernel = conv.kernel
        bias = conv.bias
        (folded, foldedBias) = norm.fold(kernel: kernel, bias: bias)
    }

    /// The Keras name of its weights (`conv5_block1_1_conv`).
    public var name: String { spec.name + "_conv" }
    var size: Int { spec.size }
    var stride: Int { spec.stride }
    var pad: Int { spec.pad }
    var input: Int { spec.input }
    var output: Int { spec.output }
    public var rows: Int { size * size * input }

    /// Adam on the raw kernel and bias, from the folded-space gradients `g'` (the raw gradient is
    /// `scale * g'` per output channel), as Keras's Adam updates them; the folded weights are
    /// rewritten in the same pass, so a step reads and writes each weight once.
    mutating func adam(_ weightGradient: [Float], _ biasGradient: [Float], moments: inout Moments, alpha: Float,
                       beta1: Float, beta2: Float, epsilon: Float) {
        let (rows, output, scale) = (self.rows, self.output, norm.scale)
        let scale32 = scale.map(Float.init)
        func step(_ g: Float, _ m: inout Float, _ v: inout Float, _ w: inout Float) {
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            w -= alpha * m / (v.squareRoot() + epsilon)
        }
        kernel.withUnsafeMutableBufferPointer { w in
            folded.withUnsafeMutableBufferPointer { f in
                moments.kernel.m.withUnsafeMutableBufferPointer { m in
                    moments.kernel.v.withUnsafeMutableBufferPointer { v in
                        weightGradient.withUnsafeBufferPointer { g in
                            scale.withUnsafeBufferPointer { scale in
                                scale32.withUnsafeBufferPointer { scale32 in
                                    let (w, f, m, v, g, scale, scale32) = (UncheckedSendable(w), UncheckedSendable(f), UncheckedSendable(m),
                                                                           UncheckedSendable(v), UncheckedSendable(g), UncheckedSendable(scale),
                                                                           UncheckedSendable(scale32))
                                    let lanes = 8, parts = rows * output >= 1 << 16 ? coreCount : 1
                                    parallelFor(parts) { part in
                                        let (w, f, m, v, g, scale, scale32) = (w.value, f.value, m.value, v.value, g.value, scale.value, scale32.value)
                                        let (b1, b2, c1, c2) = (SIMD8<Float>(repeating: beta1), SIMD8<Float>(repeating: beta2),
                                                                SIMD8<Float>(repeating: 1 - beta1), SIMD8<Float>(repeating: 1 - beta2))
                                        let (a, e) = (SIMD8<Float>(repeating: alpha), SIMD8<Float>(repeating: epsilon))
                                        for row in rows * part / parts ..< rows * (part + 1) / parts {
                                            let base = row * output
                                            var o = 0
                                            // Eight output channels at a time (the buffers cannot be proven apart, so the
                                            // compiler would not vectorise the plain loop); the fold in double, as at load.
                                            while o + lanes <= output {
                                                let i = base + o
                                                func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) }
                                                func store(_ x: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p + i).storeBytes(of: x, as: SIMD8<Float>.self) }
                                                let s32 = UnsafeRawPointer(scale32.baseAddress! + o).loadUnaligned(as: SIMD8<Float>.self)
                                                let gi = UnsafeRawPointer(g.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self) * s32
                                                let mi = b1 * load(m.baseAddress!) + c1 * gi
                                                let vi = b2 * load(v.baseAddress!) + c2 * gi * gi
                                                let wi = load(w.baseAddress!) - a * mi / (vi.squareRoot() + e)
                                                let fi = SIMD8<Double>(wi) * UnsafeRawPointer(scale.baseAddress! + o).loadUnaligned(as: SIMD8<Double>.self)
                                                store(mi, m.baseAddress!)
                                                store(vi, v.baseAddress!)
                                                store(wi, w.baseAddress!)
                                                store(SIMD8<Float>(fi), f.baseAddress!)
                                                o += lanes
                                            }
                                            while o < output {
                                                let i = base + o
                                                step(g[i] * scale32[o], &m[i], &v[i], &w[i])
                                                f[i] = Float(Double(w[i]) * scale[o])
                                                o += 1
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for o in 0 ..< output {
            step(biasGradient[o] * scale32[o], &moments.bias.m[o], &moments.bias.v[o], &bias[o])
            foldedBias[o] = norm.foldedBias(bias[o], channel: o)
        }
    }

    /// Adam's moving averages for one convolution's kernel and bias.
    struct Moments {
        var kernel: (m: [Float], v: [Float]), bias: (m: [Float], v: [Float])

        init(_ conv: TrainableConv) {
            kernel = ([Float](repeating: 0, count: conv.kernel.count), [Float](repeating: 0, count: conv.kernel.count))
            bias = ([Float](repeating: 0, count: conv.output), [Float](repeating: 0, count: conv.output))
        }
    }

    /// The folded weights for the current raw ones (after every update).
    mutating func refold() {
        (folded, foldedBias) = norm.fold(kernel: kernel, bias: bias)
    }

    /// `out[rows x output] = a[rows x self.rows] * folded + foldedBias`.
    func affine(_ a: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        foldedBias.withUnsafeBufferPointer { b in
            for row in 0 ..< m { (out + row * output).update(from: b.baseAddress!, count: output) }
        }
        folded.withUnsafeBufferPointer { w in
            precision.gemm(transposeA: false, transposeB: false, m: m, n: output, k: rows, a: a, lda: rows, b: w.baseAddress!, ldb: output,
                      beta: 1, c: out, ldc: output)
        }
    }

    /// For `delta[m x output]` (the loss's gradient at this 1x1 convolution's pre-activation output)
    /// and its input `a[m x rows]`: the folded weights' and bias's gradients into `foldedWeights` and
    /// `foldedBias`, and, when `inputGradient` is given, `delta * folded^T` into it (`[m x rows]`).
    func backward(_ delta: UnsafePointer<Float>, input a: UnsafePointer<Float>, rows m: Int, foldedWeights: inout [Float], foldedBias: inout [Float],
                  inputGradient: UnsafeMutablePointer<Float>?, accumulate: Bool = false) {
        foldedWeights.withUnsafeMutableBufferPointer { g in
            precision.gemm(transposeA: true, transposeB: false, m: rows, n: output, k: m, a: a, lda: rows, b: delta, ldb: output,
                      beta: 0, c: g.baseAddress!, ldc: output)
        }
        Self.sumRows(delta, rows: m, width: output, into: &foldedBias)
        if let inputGradient {
            folded.withUnsafeBufferPointer { w in
                precision.gemm(transposeA: false, transposeB: true, m: m, n: rows, k: output, a: delta, lda: output, b: w.baseAddress!, ldb: output,
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
}

/// Which input pixel each of a 3x3 (stride 1, padding 1) convolution's taps reads for each output
/// pixel, over `count` images of `side x side`, keeping only the pairs inside the image. On the small
/// maps of the top stage most of a full im2col is padding (8 of 9 taps at side 1, 20 of 36 at side 2),
/// so the convolution runs tap by tap on the pairs that exist: the centre tap on every pixel in
/// place, each other tap on its gathered rows.
struct TapPlan {
    /// For taps 0..<9 ((ky, kx) row-major, as HWIO kernels): the output rows and the input rows they read.
    let outputs: [[Int]], inputs: [[Int]]
    /// The images and their side the pairs are for.
    let count: Int, side: Int
    static let centre = 4

    init(count: Int, side: Int) {
        self.count = count
        self.side = side
        var outputs = [[Int]](repeating: [], count: 9), inputs = outputs
        for tap in 0 ..< 9 where tap != Self.centre {
            let (dy, dx) = (tap / 3 - 1, tap % 3 - 1)
            for image in 0 ..< count {
                for y in 0 ..< side where (0 ..< side).contains(y + dy) {
                    for x in 0 ..< side where (0 ..< side).contains(x + dx) {
                        outputs[tap].append((image * side + y) * side + x)
                        inputs[tap].append((image * side + y + dy) * side + x + dx)
                    }
                }
            }
        }
        self.outputs = outputs
        self.inputs = inputs
    }

    /// `rows` rows of `width` floats from `source` into consecutive rows of `destination`.
    static func gather(_ source: UnsafePointer<Float>, rows: [Int], width: Int, into destination: UnsafeMutablePointer<Float>) {
        for (index, row) in rows.enumerated() { (destination + index * width).update(from: source + row * width, count: width) }
    }

    /// Consecutive rows of `source` added to rows `rows` of `destination`.
    static func scatterAdd(_ source: UnsafePointer<Float>, rows: [Int], width: Int, into destination: UnsafeMutablePointer<Float>) {
        for (index, row) in rows.enumerated() {
            let from = source + index * width, to = destination + row * width
            for c in 0 ..< width { to[c] += from[c] }
        }
    }
}

extension TrainableConv {
    /// The 3x3 convolution of `x[count*side*side x input]` into `out[... x output]`, with bias,
    /// tap by tap (`TapPlan`). `gathered` and `product` hold `count*side*side x max(input, output)`.
    func spatialForward(_ x: UnsafePointer<Float>, plan: TapPlan, rows m: Int, into out: UnsafeMutablePointer<Float>,
                        gathered: UnsafeMutablePointer<Float>, product: UnsafeMutablePointer<Float>) {
        precondition(size == 3 && stride == 1 && pad == 1)
        foldedBias.withUnsafeBufferPointer { b in
            for row in 0 ..< m { (out + row * output).update(from: b.baseAddress!, count: output) }
        }
        folded.withUnsafeBufferPointer { w in
            let centre = w.baseAddress! + TapPlan.centre * input * output
            precision.gemm(transposeA: false, transposeB: false, m: m, n: output, k: input, a: x, lda: input, b: centre, ldb: output, beta: 1, c: out, ldc: output)
            for tap in 0 ..< 9 where !plan.outputs[tap].isEmpty {
                let count = plan.outputs[tap].count
                TapPlan.gather(x, rows: plan.inputs[tap], width: input, into: gathered)
                precision.gemm(transposeA: false, transposeB: false, m: count, n: output, k: input, a: gathered, lda: input,
                          b: w.baseAddress! + tap * input * output, ldb: output, beta: 0, c: product, ldc: output)
                TapPlan.scatterAdd(product, rows: plan.outputs[tap], width: output, into: out)
            }
        }
    }

    /// Backward of `spatialForward`: the folded weights' and bias's gradients (`foldedWeights`,
    /// `foldedBias`) and the input's (`inputGradient[m x input]`, overwritten).
    func spatialBackward(_ delta: UnsafePointer<Float>, input x: UnsafePointer<Float>, plan: TapPlan, rows m: Int,
                         foldedWeights: inout [Float], foldedBias: inout [Float], inputGradient: UnsafeMutablePointer<Float>,
                         gathered: UnsafeMutablePointer<Float>, product: UnsafeMutablePointer<Float>) {
        precondition(size == 3 && stride == 1 && pad == 1)
        Self.sumRows(delta, rows: m, width: output, into: &foldedBias)
        foldedWeights.withUnsafeMutableBufferPointer { g in
            folded.withUnsafeBufferPointer { w in
                // The centre tap reads every pixel in place: straight from x and delta.
                let centre = TapPlan.centre * input * output
                precision.gemm(transposeA: true, transposeB: false, m: input, n: output, k: m, a: x, lda: input, b: delta, ldb: output,
                          beta: 0, c: g.baseAddress! + centre, ldc: output)
                precision.gemm(transposeA: false, transposeB: true, m: m, n: input, k: output, a: delta, lda: output, b: w.baseAddress! + centre, ldb: output,
                          beta: 0, c: inputGradient, ldc: input)
                for tap in 0 ..< 9 where tap != TapPlan.centre {
                    let block = g.baseAddress! + tap * input * output
                    let count = plan.outputs[tap].count
                    guard count > 0 else {
                        block.update(repeating: 0, count: input * output)
                        continue
                    }
                    // dW_tap = x[inputs]^T * delta[outputs]; d x[inputs] += delta[outputs] * W_tap^T.
                    TapPlan.gather(delta, rows: plan.outputs[tap], width: output, into: product)
                    TapPlan.gather(x, rows: plan.inputs[tap], width: input, into: gathered)
                    precision.gemm(transposeA: true, transposeB: false, m: input, n: output, k: count, a: gathered, lda: input, b: product, ldb: output,
                              beta: 0, c: block, ldc: output)
                    precision.gemm(transposeA: false, transposeB: true, m: count, n: input, k: output, a: product, lda: output,
                              b: w.baseAddress! + tap * input * output, ldb: output, beta: 0, c: gathered, ldc: input)
                    TapPlan.scatterAdd(gathered, rows: plan.inputs[tap], width: input, into: inputGradient)
                }
            }
        }
    }

    static func sumRows(_ x: UnsafePointer<Float>, rows: Int, width: Int, into sums: inout [Float]) {
        sums.withUnsafeMutableBufferPointer { b in
            for o in 0 ..< width { b[o] = 0 }
            for row in 0 ..< rows {
                for o in 0 ..< width { b[o] += x[row * width + o] }
            }
        }
    }
}
