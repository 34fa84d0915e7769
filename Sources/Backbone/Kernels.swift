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
    let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, rows / minimumRows))
    parallelFor(parts) { part in
        body(rows * part / parts ..< rows * (part + 1) / parts)
    }
}

enum Kernels {
    /// `c[m x n] = a[m x k] * b[k x n] + beta * c`, row-major, through OpenBLAS.
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, beta: Float) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), beta, c, Int32(n))
    }

    /// im2col for NHWC: row `(n, oy, ox)` of `columns[rows x (size*size*channels)]` holds the input
    /// patch in (ky, kx, c) order, zeros where the patch leaves the padded image. Matches Keras's
    /// HWIO kernel flattened to `[size*size*in, out]`.
    static func im2col(_ input: UnsafePointer<Float>, _ shape: Shape, size: Int, stride: Int, pad: Int,
                       output: Shape, into columns: UnsafeMutablePointer<Float>) {
        let channels = shape.channels
        let rowLength = size * size * channels
        forEachRowRange(output.rows) { rows in
            for row in rows {
                let n = row / (output.height * output.width)
                let oy = (row / output.width) % output.height
                let ox = row % output.width
                var destination = columns + row * rowLength
                for ky in 0 ..< size {
                    let iy = oy * stride - pad + ky
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
    }

    /// `x[rows x channels] += bias` per channel, then ReLU if asked: the epilogue of every conv.
    static func biasActivation(_ x: UnsafeMutablePointer<Float>, rows: Int, channels: Int, bias: UnsafePointer<Float>, relu: Bool) {
        forEachRowRange(rows) { range in
            for row in range {
                let line = x + row * channels
                if relu {
                    for c in 0 ..< channels { line[c] = max(line[c] + bias[c], 0) }
                } else {
                    for c in 0 ..< channels { line[c] += bias[c] }
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
