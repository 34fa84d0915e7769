import CBLAS
import Foundation
import Numerical

/// The shape of an NHWC activation: `count x height x width x channels` floats.
public struct Shape: Equatable, Sendable {
    public var count: Int, height: Int, width: Int, channels: Int

    public init(count: Int, height: Int, width: Int, channels: Int) {
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
    }

    public var elements: Int { count * height * width * channels }

    /// The output of a `size x size` window (convolution or pooling) moved by `stride` over this
    /// shape padded by `pad`, with `channels` channels.
    public func convolved(size: Int, stride: Int, pad: Int, channels: Int) -> Shape {
        Shape(count: count, height: (height + 2 * pad - size) / stride + 1, width: (width + 2 * pad - size) / stride + 1, channels: channels)
    }
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
        im2col(input, shape, size: size, stride: stride, top: pad, left: pad, output: output, rows: rows, into: columns)
    }

    /// The same with `top` rows and `left` columns of padding before the image, and as many after it
    /// as `output` needs (TensorFlow's "same" padding puts the odd one after).
    static func im2col(_ input: UnsafePointer<Float>, _ shape: Shape, size: Int, stride: Int, top: Int, left: Int,
                       output: Shape, rows: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        let channels = shape.channels
        let rowLength = size * size * channels
        for row in rows {
            let n = row / (output.height * output.width)
            let oy = (row / output.width) % output.height
            let ox = row % output.width
            var destination = columns + (row - rows.lowerBound) * rowLength
            let x0 = ox * stride - left
            for ky in 0 ..< size {
                let iy = oy * stride - top + ky
                // A row of the patch wholly inside the image is one run of size*channels floats (the
                // stem's 21, where one copy per pixel would be 3).
                if iy >= 0, iy < shape.height, x0 >= 0, x0 + size <= shape.width {
                    destination.update(from: input + ((n * shape.height + iy) * shape.width + x0) * channels, count: size * channels)
                    destination += size * channels
                    continue
                }
                for kx in 0 ..< size {
                    let ix = x0 + kx
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
