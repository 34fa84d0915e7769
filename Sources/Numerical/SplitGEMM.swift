import CBLAS

/// `c = op(a) * op(b) + beta * c`, row-major, with the output split across the cores (by rows or
/// columns, whichever is longer) and one OpenBLAS call per part, for use while OpenBLAS runs on one thread (`withSingleThreadedBLAS`):
/// both cores stay busy without OpenBLAS's workers spinning between calls, which would fight our own
/// threads for the two cores in the passes between GEMMs.
/// The split is fixed for a shape, so results repeat exactly from run to run.
public func splitGEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let parts = m * n * k >= 1 << 20 && max(m, n) >= 64 ? coreCount : 1
    // Split the longer side: each part packs only its own share of that operand (split by columns,
    // every part would pack all of a tall activation matrix).
    let byRows = m >= n
    parallelFor(parts) { part in
        let length = byRows ? m : n
        let start = length * part / parts / 16 * 16, end = part == parts - 1 ? length : length * (part + 1) / parts / 16 * 16
        guard end > start else { return }
        if byRows {
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(end - start), Int32(n), Int32(k), 1, transposeA ? a + start : a + start * lda, Int32(lda),
                        b, Int32(ldb), beta, c + start * ldc, Int32(ldc))
        } else {
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(end - start), Int32(k), 1, a, Int32(lda),
                        transposeB ? b + start * ldb : b + start, Int32(ldb), beta, c + start, Int32(ldc))
        }
    }
}

/// Runs `body` with OpenBLAS on one thread, restoring its setting after.
public func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
    let threads = openblas_get_num_threads()
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(threads) }
    return try body()
}
