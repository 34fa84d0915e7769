import CBLAS
import CKernels
import Foundation
import Numerical

/// Which matrix multiplication the backbone's convolutions use.
public enum GEMMKernel: String, Sendable, CaseIterable {
    /// Our AVX-512 kernel (Sources/CKernels): weights packed once at load, activations read in place,
    /// bias, residual and ReLU applied as each tile leaves the registers.
    case avx512
    /// Its AVX2 + FMA twin, for x86-64 CPUs without AVX-512: the same packed weights, the same order
    /// of every sum, so the same bits.
    case avx2
    /// OpenBLAS sgemm, then a pass for the bias and ReLU: for CPUs without either (other
    /// architectures). Its last bits depend on the kernel OpenBLAS picks for the CPU, and on how the
    /// rows are batched.
    case blas
    /// Our AVX-512 kernel's bf16 twin (`extract --precision bf16`): weights rounded to bf16 once,
    /// activations as they are read, products summed in float by vdpbf16ps (AVX512_BF16).
    case avx512bf16 = "avx512-bf16"

    /// The float kernels of this CPU, best first, as SIGNTRANSFER_GEMM narrows them: `avx2` stands
    /// for a CPU with AVX2 and FMA but no AVX-512, `blas` for one that runs neither of our kernels
    /// (and so neither has the bf16 one). Another value, or one this CPU cannot run, is an error (`selection`).
    static let cpuFloat: [GEMMKernel] = (st_gemm_available() != 0 ? [.avx512] : []) + (st_gemm_avx2_available() != 0 ? [.avx2] : []) + [.blas]

    /// SIGNTRANSFER_GEMM's kernel and what it leaves runnable, or why it cannot be.
    /// The bf16 kernel, where the CPU has it.
    static let cpuBF16: [GEMMKernel] = st_gemm_bf16_available() != 0 ? [.avx512bf16] : []

    static let selection: Result<(preferred: GEMMKernel, available: [GEMMKernel]), GEMMSelectionError> = {
        guard let asked = ProcessInfo.processInfo.environment["SIGNTRANSFER_GEMM"], !asked.isEmpty else {
            return .success((cpuFloat[0], cpuFloat + cpuBF16))
        }
        guard let kernel = GEMMKernel(rawValue: asked), kernel != .avx512bf16 else {
            return .failure(GEMMSelectionError(text: "SIGNTRANSFER_GEMM=\(asked): expected avx512, avx2 or blas (or unset for this CPU's best)"))
        }
        guard let position = cpuFloat.firstIndex(of: kernel) else {
            return .failure(GEMMSelectionError(text: "SIGNTRANSFER_GEMM=\(asked): this CPU cannot run it (it runs \(cpuFloat.map(\.rawValue).joined(separator: ", ")))"))
        }
        return .success((kernel, Array(cpuFloat[position...]) + (kernel == .avx512 ? cpuBF16 : [])))
    }()

    /// The kernels this CPU can run (as SIGNTRANSFER_GEMM narrows them; all of the CPU's when its
    /// value is wrong, which `checkSelection` reports).
    public static var available: [GEMMKernel] {
        (try? selection.get().available) ?? cpuFloat + cpuBF16
    }

    /// The float kernels this CPU can run (what the Keras parity bar applies to).
    public static var availableFloat: [GEMMKernel] { available.filter { $0 != .avx512bf16 } }

    /// Whether products are of bf16 values (else float).
    public var precision: String { self == .avx512bf16 ? "bf16" : "fp32" }

    /// This CPU's best float kernel, or the one SIGNTRANSFER_GEMM names.
    public static var preferred: GEMMKernel { (try? selection.get().preferred) ?? cpuFloat[0] }

    /// Throws when SIGNTRANSFER_GEMM names no kernel, or one this CPU cannot run: what a stage checks
    /// before it computes anything.
    public static func checkSelection() throws { _ = try selection.get() }

    /// The instruction set of the Winograd transforms that go with this kernel: the kernel's own;
    /// for OpenBLAS the CPU's best, or AVX2 at most where SIGNTRANSFER_GEMM=blas stands for a CPU
    /// without AVX-512 (so that OpenBLAS is measured here as it runs on one).
    var isa: Int32 {
        switch self {
        case .avx512, .avx512bf16: Int32(ST_ISA_AVX512)
        case .avx2: Int32(ST_ISA_AVX2)
        case .blas: Self.blasTransforms
        }
    }

    /// Read once: `isa` is asked for every Winograd layer of every batch.
    private static let blasTransforms: Int32 =
        ProcessInfo.processInfo.environment["SIGNTRANSFER_GEMM"] == "blas" ? min(st_isa_best(), Int32(ST_ISA_AVX2)) : st_isa_best()

    /// Whether two kernels give the same bits for the same input: ours compute every output as the
    /// same chain of fused multiply-adds; OpenBLAS's last bits are its own (and its CPU's).
    public func sameBits(as other: GEMMKernel) -> Bool {
        self == other || (self.isFixedOrderFloat && other.isFixedOrderFloat)
    }

    private var isFixedOrderFloat: Bool { self == .avx512 || self == .avx2 }
}

/// SIGNTRANSFER_GEMM names no kernel this CPU runs.
public struct GEMMSelectionError: UserFacingError {
    public var text: String
    public var description: String { text }
}

/// The right-hand side `[k x n]` of a convolution's GEMM (its weights), laid out once for `kernel`:
/// packed in panels for our kernels (32 columns for AVX-512, as bf16 pairs for its bf16 twin; 16 for
/// AVX2), row-major for OpenBLAS.
final class WeightMatrix: @unchecked Sendable {
    let k: Int, n: Int
    let kernel: GEMMKernel
    private let storage: UnsafeMutablePointer<Float>
    private let words: UnsafeMutablePointer<UInt16>?

    /// From the row-major `weights[k x n]`.
    init(_ weights: ArraySlice<Float>, k: Int, n: Int, kernel: GEMMKernel) {
        precondition(weights.count == k * n)
        self.k = k
        self.n = n
        self.kernel = kernel
        let count = switch kernel {
        case .avx512: st_gemm_packed_count(Int32(k), Int32(n))
        case .avx2: st_gemm_avx2_packed_count(Int32(k), Int32(n))
        case .blas: k * n
        case .avx512bf16: 0
        }
        let storage = allocateAligned(floats: count)
        var words: UnsafeMutablePointer<UInt16>?
        weights.withUnsafeBufferPointer { w in
            switch kernel {
            case .avx512: st_gemm_pack(w.baseAddress!, Int32(n), Int32(k), Int32(n), storage)
            case .avx2: st_gemm_avx2_pack(w.baseAddress!, Int32(n), Int32(k), Int32(n), storage)
            case .blas: storage.initialize(from: w.baseAddress!, count: k * n)
            case .avx512bf16:
                let packed = UnsafeMutablePointer<UInt16>.allocate(capacity: st_gemm_bf16_packed_count(Int32(k), Int32(n)))
                st_gemm_bf16_pack(w.baseAddress!, Int32(n), Int32(k), Int32(n), packed)
                words = packed
            }
        }
        self.storage = storage
        self.words = words
    }

    deinit {
        deallocateAligned(storage)
        words?.deallocate()
    }

    /// `c[m x n] = relu?(a[m x k] * self + bias + residual)`, all rows contiguous (`lda = k`,
    /// `ldc = n`; `residual` like `c`, and may be `c`), split across the cores by rows when the
    /// product is big enough.
    func multiply(m: Int, a: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>? = nil,
                  into c: UnsafeMutablePointer<Float>, relu: Bool = false) {
        let parts = m * n * k >= 1 << 20 && m >= 64 ? coreCount : 1
        switch kernel {
        case .avx512, .avx2, .avx512bf16:
            parallelFor(parts) { part in
                let start = m * part / parts, end = m * (part + 1) / parts
                multiplyOneThread(m: end - start, a: a + start * k, bias: bias, residual: residual.map { $0 + start * n },
                                  into: c + start * n, relu: relu)
            }
        case .blas:
            if let residual, residual != UnsafePointer(c) { c.update(from: residual, count: m * n) }
            // OpenBLAS splits best by the longer side (see splitGEMM), then the epilogue by rows.
            splitGEMM(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a, lda: k, b: storage, ldb: n,
                      beta: residual == nil ? 0 : 1, c: c, ldc: n)
            parallelFor(parts) { part in
                let start = m * part / parts, end = m * (part + 1) / parts
                Self.epilogue(c + start * n, rows: end - start, channels: n, bias: bias, relu: relu)
            }
        }
    }

    /// The same on the calling thread alone (for GEMMs run several at a time, or on per-core chunks).
    func multiplyOneThread(m: Int, a: UnsafePointer<Float>, bias: UnsafePointer<Float>? = nil, residual: UnsafePointer<Float>? = nil,
                           into c: UnsafeMutablePointer<Float>, relu: Bool = false) {
        multiplyOneThread(m: m, a: a, bias: bias, residual: residual, into: c, activation: relu ? .relu : Activation.none)
    }

    /// The same with any of the activations (ReLU6 and swish for the mobile backbones), applied in the
    /// tiles' epilogue on our kernels, in a pass after OpenBLAS.
    func multiplyOneThread(m: Int, a: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
                           into c: UnsafeMutablePointer<Float>, activation: Activation) {
        guard m > 0 else { return }
        let code = activation.rawValue
        switch kernel {
        case .avx512:
            st_gemm(Int32(m), Int32(n), Int32(k), a, Int32(k), storage, bias, residual, c, Int32(n), code)
        case .avx2:
            st_gemm_avx2(Int32(m), Int32(n), Int32(k), a, Int32(k), storage, bias, residual, c, Int32(n), code)
        case .avx512bf16:
            st_gemm_bf16(Int32(m), Int32(n), Int32(k), a, Int32(k), words!, bias, residual, c, Int32(n), code)
        case .blas:
            if let residual, residual != UnsafePointer(c) { c.update(from: residual, count: m * n) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), storage, Int32(n),
                        residual == nil ? 0 : 1, c, Int32(n))
            Self.epilogue(c, rows: m, channels: n, bias: bias, relu: activation == .relu)
            if activation != .relu { st_activate(kernel.isa, c, m * n, code) }
        }
    }

    /// `x[rows x channels] += bias` (when given), then ReLU if asked: the OpenBLAS path's extra pass.
    private static func epilogue(_ x: UnsafeMutablePointer<Float>, rows: Int, channels: Int, bias: UnsafePointer<Float>?, relu: Bool) {
        for row in 0 ..< rows {
            let line = x + row * channels
            switch (bias, relu) {
            case (let bias?, true): for c in 0 ..< channels { line[c] = max(line[c] + bias[c], 0) }
            case (let bias?, false): for c in 0 ..< channels { line[c] += bias[c] }
            case (nil, true): for c in 0 ..< channels { line[c] = max(line[c], 0) }
            case (nil, false): break
            }
        }
    }
}

extension GEMMKernel {
    /// `value` as the bf16 kernel multiplies it: rounded to bf16 (nearest, ties to even), back in a
    /// float. For references: a product of two such values is exact in float.
    public static func bf16Rounded(_ value: Float) -> Float { st_bf16_round(value) }
}

/// `c[m x n] = op(a) op(b)`, plus `c` when `accumulate`, with the products of bf16-rounded values
/// summed in float (AVX512_BF16): splitGEMM's bf16 counterpart, for fine-tuning's products. `op(a)`
/// is `a[m x k]` (row stride `lda`) or, with `transposeA`, the transpose of `a[k x m]`; `op(b)` is
/// `b[k x n]` or the transpose of `b[n x k]`. `b` is rounded and packed once per call; the rows of
/// `c` are shared out among the cores. Only where `GEMMKernel.available` has `.avx512bf16`.
public func bf16GEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    let packed = UnsafeMutablePointer<UInt16>.allocate(capacity: st_gemm_bf16_packed_count(Int32(k), Int32(n)))
    defer { packed.deallocate() }
    // Packed on all cores, a run of 32-column panels each (a panel's place depends only on its first
    // column): repacking conv5's weights twice a step was 9% of a fine-tuning step on one core.
    let panels = (n + 31) / 32, pairs = (k + 1) / 2
    let packers = k * n >= 1 << 16 ? min(coreCount, panels) : 1
    parallelFor(packers) { part in
        let first = panels * part / packers * 32, last = min(n, panels * (part + 1) / packers * 32)
        guard last > first else { return }
        let into = packed + first * pairs * 2
        if transposeB {
            st_gemm_bf16_pack_transposed(b + first * ldb, Int32(ldb), Int32(k), Int32(last - first), into)
        } else {
            st_gemm_bf16_pack(b + first, Int32(ldb), Int32(k), Int32(last - first), into)
        }
    }
    let parts = m * n * k >= 1 << 20 && m >= 32 ? min(coreCount, m / 16) : 1
    parallelFor(parts) { part in
        let start = m * part / parts, end = m * (part + 1) / parts
        guard end > start else { return }
        let out = c + start * ldc
        if transposeA {
            st_gemm_bf16_at(Int32(end - start), Int32(n), Int32(k), a + start, Int32(lda), packed, nil, accumulate ? out : nil, out, Int32(ldc), 0)
        } else {
            st_gemm_bf16(Int32(end - start), Int32(n), Int32(k), a + start * lda, Int32(lda), packed, nil, accumulate ? out : nil, out, Int32(ldc), 0)
        }
    }
}
