import Backbone
import Foundation
import Numerical
import Testing

/// The plain, slow convolution the fast paths are checked against: direct loops over NHWC input and
/// an HWIO kernel, zeros outside the image, sums in double; then bias, residual and ReLU.
/// x[n][y][x][c], kernel[ky][kx][c][o] -> out[n][oy][ox][o].
func referenceConvolution(_ x: [Float], _ shape: Shape, kernel: [Float], bias: [Float], size: Int, stride: Int, pad: Int, output: Int,
                          residual: [Float]? = nil, relu: Bool) -> [Float] {
    let outHeight = (shape.height + 2 * pad - size) / stride + 1, outWidth = (shape.width + 2 * pad - size) / stride + 1
    var out = [Float](repeating: 0, count: shape.count * outHeight * outWidth * output)
    for n in 0 ..< shape.count {
        for oy in 0 ..< outHeight {
            for ox in 0 ..< outWidth {
                for o in 0 ..< output {
                    var sum = Double(bias[o])
                    for ky in 0 ..< size {
                        let iy = oy * stride - pad + ky
                        guard iy >= 0 && iy < shape.height else { continue }
                        for kx in 0 ..< size {
                            let ix = ox * stride - pad + kx
                            guard ix >= 0 && ix < shape.width else { continue }
                            for c in 0 ..< shape.channels {
                                let value = x[((n * shape.height + iy) * shape.width + ix) * shape.channels + c]
                                sum += Double(value) * Double(kernel[((ky * size + kx) * shape.channels + c) * output + o])
                            }
                        }
                    }
                    let index = ((n * outHeight + oy) * outWidth + ox) * output + o
                    if let residual { sum += Double(residual[index]) }
                    out[index] = Float(relu ? max(sum, 0) : sum)
                }
            }
        }
    }
    return out
}

func randomValues(_ count: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    var generator = SplitMix64(seed: seed)
    return (0 ..< count).map { _ in Float((generator.nextUniform() * 2 - 1) * scale) }
}

/// Largest |fast - reference| relative to the largest |reference|.
func relativeError(_ fast: [Float], _ reference: [Float]) -> Float {
    let largest = reference.map(abs).max() ?? 0
    return zip(fast, reference).map { abs($0 - $1) }.max()! / max(largest, 1e-30)
}

@Suite struct ReferenceConvolution {
    struct Case: CustomStringConvertible, Sendable {
        var size: Int, stride: Int, pad: Int, input: Int, output: Int, height: Int, width: Int
        var winograd: Int? = nil
        var residual = false
        var description: String {
            "\(size)x\(size)/\(stride) pad \(pad), \(input)->\(output) on \(height)x\(width)" + (winograd.map { ", Winograd F(\($0)x\($0))" } ?? "") + (residual ? ", residual" : "")
        }
    }

    /// Every path the network takes, with odd sizes so that tiles and chunks have ragged edges.
    static let cases: [Case] = [
        Case(size: 1, stride: 1, pad: 0, input: 64, output: 96, height: 7, width: 9),                     // one GEMM
        Case(size: 1, stride: 1, pad: 0, input: 48, output: 80, height: 5, width: 5, residual: true),     // GEMM with the residual in its epilogue
        Case(size: 1, stride: 2, pad: 0, input: 32, output: 64, height: 9, width: 7),                     // strided 1x1: im2col
        Case(size: 7, stride: 2, pad: 3, input: 3, output: 64, height: 21, width: 17),                    // the stem: im2col
        Case(size: 3, stride: 1, pad: 1, input: 16, output: 24, height: 11, width: 9),                    // 3x3 through im2col
        Case(size: 3, stride: 1, pad: 1, input: 32, output: 48, height: 9, width: 11, winograd: 2),
        Case(size: 3, stride: 1, pad: 1, input: 32, output: 48, height: 13, width: 10, winograd: 4),
        Case(size: 3, stride: 1, pad: 1, input: 64, output: 64, height: 3, width: 3, winograd: 4),       // one tile, mostly padding
    ]

    @Test(arguments: cases, GEMMKernel.available)
    func fastPathMatchesTheLoops(case c: Case, gemm: GEMMKernel) {
        let shape = Shape(count: 2, height: c.height, width: c.width, channels: c.input)
        let fanIn = Double(c.size * c.size * c.input)
        let kernel = randomValues(c.size * c.size * c.input * c.output, seed: 1, scale: (3 / fanIn).squareRoot())
        let bias = randomValues(c.output, seed: 2, scale: 0.1)
        let x = randomValues(shape.elements, seed: 3)
        let layer = ConvolutionLayer(kernel: kernel, bias: bias, size: c.size, stride: c.stride, pad: c.pad, input: c.input, output: c.output,
                                     gemm: gemm, winogradTile: c.winograd)
        let out = layer.outputShape(shape)
        let residual = c.residual ? randomValues(out.elements, seed: 4) : nil
        let fast = layer.apply(x, shape, residual: residual, relu: true)
        // The bf16 kernel multiplies the input and the weights rounded to bf16: on the GEMM paths the
        // reference does the same and the products are then exact; through Winograd the transformed
        // values are rounded, so there it is held to bf16's own precision against the float reference.
        let bf16 = gemm == .avx512bf16
        let (referenceX, referenceKernel) = bf16 && c.winograd == nil ? (x.map(GEMMKernel.bf16Rounded), kernel.map(GEMMKernel.bf16Rounded)) : (x, kernel)
        let reference = referenceConvolution(referenceX, shape, kernel: referenceKernel, bias: bias, size: c.size, stride: c.stride, pad: c.pad,
                                             output: c.output, residual: residual, relu: true)
        #expect(fast.count == reference.count)
        let error = relativeError(fast, reference)
        // bf16 Winograd on random data: F(2x2) stays within 1% of the largest value, F(4x4) within
        // 6% (its output transform cancels large terms); the network's features are held to the
        // fidelity gate instead (PrecisionGate).
        let bound: Float = bf16 && c.winograd != nil ? (c.winograd == 2 ? 1e-2 : 0.08) : 1e-5
        #expect(error < bound, "\(c), \(gemm): largest difference \(error) of the largest value")
        // Without the ReLU too (GEMM paths), so that negative outputs are compared as well.
        if c.winograd == nil {
            let linear = layer.apply(x, shape, residual: residual, relu: false)
            let linearReference = referenceConvolution(referenceX, shape, kernel: referenceKernel, bias: bias, size: c.size, stride: c.stride, pad: c.pad,
                                                       output: c.output, residual: residual, relu: false)
            #expect(relativeError(linear, linearReference) < 1e-5, "\(c), \(gemm), no ReLU")
            // And the bf16 result is not the float one: the rounding is real.
            if bf16 {
                let float = referenceConvolution(x, shape, kernel: kernel, bias: bias, size: c.size, stride: c.stride, pad: c.pad, output: c.output,
                                                 residual: residual, relu: false)
                let gap = relativeError(linear, float)
                #expect(gap > 1e-5 && gap < 1e-2, "\(c): bf16 against float \(gap)")
            }
        }
    }

    /// The reference itself, on a case worked by hand: a 2x2 image, a 3x3 kernel of ones, pad 1.
    @Test func referenceByHand() {
        let x: [Float] = [1, 2, 3, 4]
        let out = referenceConvolution(x, Shape(count: 1, height: 2, width: 2, channels: 1), kernel: [Float](repeating: 1, count: 9),
                                       bias: [0.5], size: 3, stride: 1, pad: 1, output: 1, relu: false)
        #expect(out == [10.5, 10.5, 10.5, 10.5])
    }
}

/// `bf16GEMM` (fine-tuning's products in bf16) against a plain loop on bf16-rounded operands, for
/// each transpose fine-tuning uses and with accumulation into C; the products of rounded values are
/// exact in float, so only the order of the sums differs.
@Suite(.enabled(if: GEMMKernel.available.contains(.avx512bf16), "needs a CPU with AVX512_BF16"))
struct BF16Products {
    @Test(arguments: [(false, false), (true, false), (false, true)], [false, true])
    func productsMatchTheLoops(transposes: (Bool, Bool), accumulate: Bool) {
        let (transposeA, transposeB) = transposes
        // Odd k and ragged m, n: the padded pair, partial strips and partial panels.
        let m = 45, n = 70, k = 301
        let a = randomValues(m * k, seed: 11), b = randomValues(k * n, seed: 12), start = randomValues(m * n, seed: 13)
        let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
        var c = start
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer {
                    bf16GEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                             accumulate: accumulate, c: $0.baseAddress!, ldc: n)
                }
            }
        }
        var reference = [Float](repeating: 0, count: m * n)
        for r in 0 ..< m {
            for j in 0 ..< n {
                var sum = accumulate ? Double(start[r * n + j]) : 0
                for i in 0 ..< k {
                    let x = GEMMKernel.bf16Rounded(transposeA ? a[i * lda + r] : a[r * lda + i])
                    let y = GEMMKernel.bf16Rounded(transposeB ? b[j * ldb + i] : b[i * ldb + j])
                    sum += Double(x) * Double(y)
                }
                reference[r * n + j] = Float(sum)
            }
        }
        #expect(relativeError(c, reference) < 1e-5, "transposeA \(transposeA), transposeB \(transposeB), accumulate \(accumulate)")
    }
}
