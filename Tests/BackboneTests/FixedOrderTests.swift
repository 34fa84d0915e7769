import Backbone
import Foundation
import Numerical
import Testing

/// The plain, slow reference of our kernels' arithmetic: each output one chain of fused multiply-adds
/// over the inner dimension in order, from `start` (or zero). The kernels promise exactly these bits.
func fusedChain(m: Int, n: Int, k: Int, a: (Int, Int) -> Float, b: (Int, Int) -> Float, start: ((Int, Int) -> Float)?) -> [Float] {
    var out = [Float](repeating: 0, count: m * n)
    for r in 0 ..< m {
        for j in 0 ..< n {
            var sum = start?(r, j) ?? 0
            for i in 0 ..< k { sum = sum.addingProduct(a(r, i), b(i, j)) }
            out[r * n + j] = sum
        }
    }
    return out
}

/// `fixedOrderGEMM`, the head's and fine-tuning's product: the same bits as the plain chain of fused
/// multiply-adds on every instruction set, for every transpose, with and without accumulation, and
/// whether one call makes the product or many calls make it a row at a time.
@Suite struct FixedOrderProducts {
    static let transposes = [(false, false), (true, false), (false, true), (true, true)]

    func product(_ transposeA: Bool, _ transposeB: Bool, m: Int, n: Int, k: Int, accumulate: Bool, isa: ProductISA,
                 rowAtATime: Bool = false) -> (result: [Float], reference: [Float]) {
        let a = randomValues(m * k, seed: 21), b = randomValues(k * n, seed: 22), start = randomValues(m * n, seed: 23)
        let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
        var c = start
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    let beta: Float = accumulate ? 1 : 0
                    if rowAtATime {
                        for r in 0 ..< m {
                            fixedOrderGEMM(transposeA: transposeA, transposeB: transposeB, m: 1, n: n, k: k, a: transposeA ? a.baseAddress! + r : a.baseAddress! + r * lda,
                                           lda: lda, b: b.baseAddress!, ldb: ldb, beta: beta, c: c.baseAddress! + r * n, ldc: n, isa: isa)
                        }
                    } else {
                        fixedOrderGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a.baseAddress!, lda: lda,
                                       b: b.baseAddress!, ldb: ldb, beta: beta, c: c.baseAddress!, ldc: n, isa: isa)
                    }
                }
            }
        }
        let reference = fusedChain(m: m, n: n, k: k, a: { r, i in transposeA ? a[i * lda + r] : a[r * lda + i] },
                                   b: { i, j in transposeB ? b[j * ldb + i] : b[i * ldb + j] },
                                   start: accumulate ? { r, j in start[r * n + j] } : nil)
        return (c, reference)
    }

    /// Ragged m, n and k (partial strips, panels and inner blocks; k over two blocks of 256).
    @Test(arguments: ProductISA.available, [false, true])
    func everyInstructionSetGivesTheChainsBits(isa: ProductISA, accumulate: Bool) {
        for (transposeA, transposeB) in Self.transposes {
            let (result, reference) = product(transposeA, transposeB, m: 45, n: 70, k: 301, accumulate: accumulate, isa: isa)
            #expect(result == reference, "\(isa), transposeA \(transposeA), transposeB \(transposeB), accumulate \(accumulate)")
        }
    }

    /// Big enough to be shared among the cores (by rows, then by panels): the same bits as a row at a
    /// time on one core. So the head does not depend on the core count or on the batch.
    @Test(arguments: ProductISA.available)
    func sharingOutTheWorkChangesNoBit(isa: ProductISA) {
        for (m, n) in [(160, 70), (40, 300)] {
            let whole = product(false, true, m: m, n: n, k: 200, accumulate: true, isa: isa)
            let rows = product(false, true, m: m, n: n, k: 200, accumulate: true, isa: isa, rowAtATime: true)
            #expect(whole.result == rows.result && whole.result == whole.reference, "\(isa), \(m) x \(n)")
        }
    }

    /// The reference is a float chain, not a sum in double: it does differ from one (so the equality
    /// above says something about the order of the sums).
    @Test func theChainIsNotTheDoubleSum() {
        let (result, _) = product(false, false, m: 8, n: 8, k: 301, accumulate: false, isa: .portable)
        let a = randomValues(8 * 301, seed: 21), b = randomValues(301 * 8, seed: 22)
        var differs = false
        for r in 0 ..< 8 {
            for j in 0 ..< 8 {
                let double = (0 ..< 301).reduce(0.0) { $0 + Double(a[r * 301 + $1]) * Double(b[$1 * 8 + j]) }
                differs = differs || Float(double) != result[r * 8 + j]
            }
        }
        #expect(differs)
    }
}

/// Our convolution kernels (AVX-512 and its AVX2 twin) against the plain chain, bit for bit: a 1x1
/// convolution is one GEMM, its residual the chain's start, then the bias and ReLU.
@Suite struct FixedOrderConvolutions {
    static let ours = GEMMKernel.availableFloat.filter { $0 != .blas }

    @Test(arguments: ours)
    func aGEMMIsTheChainThenBiasAndReLU(kernel: GEMMKernel) {
        // 47 rows (ragged strips), 70 outputs (a partial half-panel), 600 inputs (three inner blocks).
        let shape = Shape(count: 1, height: 1, width: 47, channels: 600)
        let (input, output) = (600, 70)
        let weights = randomValues(input * output, seed: 31, scale: 0.05), bias = randomValues(output, seed: 32, scale: 0.1)
        let x = randomValues(shape.elements, seed: 33), residual = randomValues(47 * output, seed: 34)
        let layer = ConvolutionLayer(kernel: weights, bias: bias, size: 1, stride: 1, pad: 0, input: input, output: output, gemm: kernel)
        for (withResidual, relu) in [(false, false), (true, false), (true, true)] {
            let fast = layer.apply(x, shape, residual: withResidual ? residual : nil, relu: relu)
            let chain = fusedChain(m: 47, n: output, k: input, a: { x[$0 * input + $1] }, b: { weights[$0 * output + $1] },
                                   start: withResidual ? { residual[$0 * output + $1] } : nil)
            let expected = chain.enumerated().map { index, sum in relu ? max(sum + bias[index % output], 0) : sum + bias[index % output] }
            #expect(fast == expected, "\(kernel), residual \(withResidual), relu \(relu)")
        }
    }

    /// Every path of the network (im2col, the stem, Winograd F(2x2) and F(4x4) with their transforms)
    /// gives the same bits on both of our kernels, where the CPU runs both.
    @Test(.enabled(if: ours.count == 2, "needs a CPU with AVX-512 (both of our kernels)"), arguments: ReferenceConvolution.cases)
    func bothKernelsGiveTheSameBits(case c: ReferenceConvolution.Case) {
        let shape = Shape(count: 2, height: c.height, width: c.width, channels: c.input)
        let kernel = randomValues(c.size * c.size * c.input * c.output, seed: 1, scale: (3 / Double(c.size * c.size * c.input)).squareRoot())
        let bias = randomValues(c.output, seed: 2, scale: 0.1), x = randomValues(shape.elements, seed: 3)
        let outputs = [GEMMKernel.avx512, .avx2].map { gemm in
            let layer = ConvolutionLayer(kernel: kernel, bias: bias, size: c.size, stride: c.stride, pad: c.pad, input: c.input, output: c.output,
                                         gemm: gemm, winogradTile: c.winograd)
            return layer.apply(x, shape, residual: c.residual ? randomValues(layer.outputShape(shape).elements, seed: 4) : nil, relu: true)
        }
        #expect(outputs[0] == outputs[1], "\(c)")
    }
}
