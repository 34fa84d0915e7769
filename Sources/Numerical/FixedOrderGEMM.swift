import CKernels
import Foundation

/// The instruction set of our own products (`fixedOrderGEMM`, and the Winograd transforms): all of
/// them give the same bits, so this decides speed only.
public enum ProductISA: Int32, Sendable, CaseIterable, Comparable {
    case portable = 0, avx2 = 1, avx512 = 2

    /// The best this CPU runs.
    public static let best = ProductISA(rawValue: st_isa_best()) ?? .portable

    /// The best this CPU runs, or below it where SIGNTRANSFER_GEMM stands for a lesser CPU (`avx2`,
    /// or `blas`: one without AVX-512, whose head then runs on the AVX2 tiles). The head's products
    /// never go to OpenBLAS, whose sums depend on its kernel and threads.
    public static let preferred: ProductISA = {
        switch ProcessInfo.processInfo.environment["SIGNTRANSFER_GEMM"] {
        case "avx2", "blas": min(best, .avx2)
        default: best
        }
    }()

    /// The instruction sets this CPU runs.
    public static var available: [ProductISA] { allCases.filter { $0 <= best } }

    public static func < (a: ProductISA, b: ProductISA) -> Bool { a.rawValue < b.rawValue }
}

/// `c = op(a) * op(b) + beta * c` (beta 0 or 1), row-major, where every output is one chain of fused
/// multiply-adds over the inner dimension in order (from `c` or zero): the same bits on every
/// instruction set, however many cores share the work and however the rows are batched. The head's
/// and fine-tuning's products go through this, so a seed gives one head on every machine; OpenBLAS
/// gave a head that depended on which of its kernels the CPU got (and, under some, on the run).
///
/// `op(a)` is `a[m x k]` (row stride `lda`) or, with `transposeA`, the transpose of `a[k x m]`;
/// `op(b)` is `b[k x n]` or the transpose of `b[n x k]`. `b` is packed once per call (on all cores
/// when big) in panels as wide as the instruction set's tile; the output is shared out among the
/// cores by rows or by panels, whichever side is longer.
public func fixedOrderGEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                           b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                           isa: ProductISA = .preferred) {
    precondition(beta == 0 || beta == 1, "fixedOrderGEMM: beta is 0 or 1")
    guard m > 0, n > 0 else { return }
    // Panels as wide as the instruction set's tile: 32 columns, or 16 for AVX2.
    let width = Int(st_panel_width(isa.rawValue))
    let panels = (n + width - 1) / width
    let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, panels * width * k))
    defer { packed.deallocate() }
    // A panel's place depends only on its first column, so panels pack independently.
    let packers = k * n >= 1 << 16 ? min(coreCount, panels) : 1
    parallelFor(packers) { part in
        let first = panels * part / packers * width, last = min(n, panels * (part + 1) / packers * width)
        guard last > first else { return }
        let into = packed + first * k
        switch (width, transposeB) {
        case (16, false): st_gemm_avx2_pack(b + first, Int32(ldb), Int32(k), Int32(last - first), into)
        case (16, true): st_gemm_avx2_pack_transposed(b + first * ldb, Int32(ldb), Int32(k), Int32(last - first), into)
        case (_, false): st_gemm_pack(b + first, Int32(ldb), Int32(k), Int32(last - first), into)
        case (_, true): st_gemm_pack_transposed(b + first * ldb, Int32(ldb), Int32(k), Int32(last - first), into)
        }
    }
    let big = m * n * k >= 1 << 20
    let byRows = m >= n
    let parts = big ? min(coreCount, byRows ? max(1, m / 16) : panels) : 1
    let accumulate: Int32 = beta == 1 ? 1 : 0
    parallelFor(parts) { part in
        if byRows {
            let start = m * part / parts, end = m * (part + 1) / parts
            guard end > start else { return }
            st_gemm_general(isa.rawValue, transposeA ? 1 : 0, Int32(end - start), Int32(n), Int32(k), transposeA ? a + start : a + start * lda,
                            Int32(lda), packed, accumulate, c + start * ldc, Int32(ldc))
        } else {
            let first = panels * part / parts * width, last = min(n, panels * (part + 1) / parts * width)
            guard last > first else { return }
            st_gemm_general(isa.rawValue, transposeA ? 1 : 0, Int32(m), Int32(last - first), Int32(k), a, Int32(lda), packed + first * k,
                            accumulate, c + first, Int32(ldc))
        }
    }
}
