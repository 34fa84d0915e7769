import Backbone
import Numerical

/// The multiplications of fine-tuning's GEMMs (forward, and both products of the backward pass):
/// float (`fixedOrderGEMM`: the same bits on every CPU), or bf16 values summed in float (`train --fine-tune-precision bf16`, AVX512_BF16).
/// Everything around them (BatchNorm's fold, ReLU, pooling, the head, Adam, the weights themselves)
/// stays float; evaluation after training runs in float, as predict does.
public enum FineTunePrecision: String, Sendable, CaseIterable {
    case fp32, bf16

    /// `c = op(a) op(b) + beta c`, beta 0 or 1 (`fixedOrderGEMM`'s contract).
    func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
              b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        switch self {
        case .fp32:
            fixedOrderGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        case .bf16:
            precondition(beta == 0 || beta == 1)
            bf16GEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                     accumulate: beta == 1, c: c, ldc: ldc)
        }
    }
}
