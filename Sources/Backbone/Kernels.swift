import CBLAS
import Foundation
import PipelineKit

/// The shape of an NHWC activation: `count x height x width x channels` floats.
public struct Shape: Equatable, Sendable {
    public var count: Int, height: Int, width: Int, channels: Int
    public var elements: Int { count * height * width * channels }
    public var rows: Int { count * height * width }
}

/// Splits `rows` into one contiguous range per core and runs `body` on each in parallel.
@inline(__always)
func forEachRowRange(_ rows: Int, minimumRows: Int = 64, _ body: (Range<Int>) -> Void) {
    let parts = max(1, min(coreCount, rows / minimumRows))
    parallelFor(parts) { part in
        body(rows * part / parts ..< rows * (part + 1) / parts)
    }
}

enum Kernels {
    /// im2col for NHWC, for the output rows in `rows`: row `(n, oy, ox)` of `columns[rows x
    /// (size*size*channels)]` (counted from the range's start) holds the input patch in (ky, kx, c)
    /// order, zeros where the patch leaves the padded image. Matches Keras's HWIO kernel flattened to
    /// `[size*size*in, out]`.
    static func im2col(_ input: UnsafePointer<Float>, _ shape: Shape, size: Int, stride: Int, pad: Int,
                       output: Shape, rows: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        let channels = shape.channels
        let rowLength = size * size * channels
        for row in rows {
            let n = row / (output.height * output.width)
            let oy = (row / output.width) % output.height
            let ox = row % output.width
            var destination = columns + (row - rows.lowerBound) * rowLength
            let x0 = ox * stride - pad
            for ky in 0 ..< size {
                let iy = oy * stride - pad + ky
                // A row of the patch wholly inside the image is one run of size*channels floats (the
                // stem's 21, where one copy per pixel would be 3).
                if iy >= 0, iy < shape.height, x0 >= 0, x0 + size <= shape.width {
                    destination.update(from: input + ((n * shape.height + iy) * shape.width + x0) * channels, count: size * channels)
                    destination += size * channels
                    continue
                }
                for kx in 0 ..< size {
                    let ix = ox * stride - pad + kx
                    if iy >= 0, iy < shape.height, ix >= 0, ix < shape.width {
                        destination.update(from: input + ((n * shape.height + iy) * shape.width + ix) * channels, count: channels)
                    } else {
                        destination.update(repeating: 0, count: channels)
                    }
                    destination += channels
                }
            }
        }
    }

    /// 3x3 max pooling, stride 2, one pixel of padding on each side (Keras's ZeroPadding2D(1) then
    /// MaxPooling2D(3, 2)). The input is post-ReLU, so zero padding never wins and is skipped.
    static func maxPool3x3s2(_ input: UnsafePointer<Float>, _ shape: Shape, output: Shape, into out: UnsafeMutablePointer<Float>) {
        let channels = shape.channels
        forEachRowRange(output.rows) { rows in
            for row in rows {
                let n = row / (output.height * output.width)
                let oy = (row / output.width) % output.height
                let ox = row % output.width
                let destination = out + row * channels
                destination.update(repeating: 0, count: channels)
                for ky in 0 ..< 3 {
                    let iy = oy * 2 - 1 + ky
                    guard iy >= 0, iy < shape.height else { continue }
                    for kx in 0 ..< 3 {
                        let ix = ox * 2 - 1 + kx
                        guard ix >= 0, ix < shape.width else { continue }
                        let source = input + ((n * shape.height + iy) * shape.width + ix) * channels
                        for c in 0 ..< channels { destination[c] = max(destination[c], source[c]) }
                    }
                }
            }
        }
    }

    /// Global average pooling: `out[n x channels]` is the mean over each image's pixels.
    static func globalAveragePool(_ input: UnsafePointer<Float>, _ shape: Shape, into out: UnsafeMutablePointer<Float>) {
        let pixels = shape.height * shape.width
        for n in 0 ..< shape.count {
            let destination = out + n * shape.channels
            destination.update(repeating: 0, count: shape.channels)
            for p in 0 ..< pixels {
                let source = input + (n * pixels + p) * shape.channels
                for c in 0 ..< shape.channels { destination[c] += source[c] }
            }
            let scale = 1 / Float(pixels)
            for c in 0 ..< shape.channels { destination[c] *= scale }
        }
    }
}

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
