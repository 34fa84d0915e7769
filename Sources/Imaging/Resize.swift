

/// Bilinear resizing with the semantics of TensorFlow's `tf.image.resize(method="bilinear")`:
/// half-pixel centres, no antialiasing, float32 arithmetic in TensorFlow's order, so that results
/// agree to float rounding.
public struct BilinearResize: Sendable {
    public let inputWidth: Int, inputHeight: Int, outputWidth: Int, outputHeight: Int

    /// For one output coordinate: the two input coordinates it blends and the weight of the upper.
    struct Tap: Sendable {
        var lower: Int
        var upper: Int
        var lerp: Float
    }

    let xTaps: [Tap]
    let yTaps: [Tap]

    public init(from input: (width: Int, height: Int), to output: (width: Int, height: Int)) {
        inputWidth = input.width
        inputHeight = input.height
        outputWidth = output.width
        outputHeight = output.height
        xTaps = Self.taps(input: input.width, output: output.width)
        yTaps = Self.taps(input: input.height, output: output.height)
    }

    /// TensorFlow's `compute_interpolation_weights` with half-pixel centres: the lerp is taken from
    /// the unclamped floor, the indices are clamped to the image.
    static func taps(input: Int, output: Int) -> [Tap] {
        let scale = Float(input) / Float(output)
        return (0 ..< output).map { index in
            let position = (Float(index) + 0.5) * scale - 0.5
            let floor = position.rounded(.down)
            return Tap(lower: max(Int(floor), 0), upper: min(Int(position.rounded(.up)), input - 1), lerp: position - floor)
        }
    }

    /// The resize as two matrices, `output = rows * input * columns^T`: `rows[outputHeight x
    /// inputHeight]` and `columns[outputWidth x inputWidth]`, each row the two taps' weights (1 - lerp,
    /// lerp; summed where the taps coincide at the border). For an exporter: with the sizes used here
    /// (28 to 32, 64, 224) every weight and product is exact in float32, so the products give this
    /// resize's values bit for bit.
    public var matrices: (rows: [Float], columns: [Float]) {
        func matrix(_ taps: [Tap], input: Int) -> [Float] {
            var weights = [Float](repeating: 0, count: taps.count * input)
            for (index, tap) in taps.enumerated() {
                weights[index * input + tap.lower] += 1 - tap.lerp
                weights[index * input + tap.upper] += tap.lerp
            }
            return weights
        }
        return (matrix(yTaps, input: inputHeight), matrix(xTaps, input: inputWidth))
    }

    /// Resizes one grey image (`inputHeight x inputWidth` bytes, row-major) to floats
    /// (`outputHeight x outputWidth`, row-major), before any rounding.
    public func resize(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(input.count == inputWidth * inputHeight && output.count == outputWidth * outputHeight)
        for y in 0 ..< outputHeight {
            let yTap = yTaps[y]
            let top = yTap.lower * inputWidth, bottom = yTap.upper * inputWidth
            for x in 0 ..< outputWidth {
                let xTap = xTaps[x]
                let topLeft = Float(input[top + xTap.lower]), topRight = Float(input[top + xTap.upper])
                let bottomLeft = Float(input[bottom + xTap.lower]), bottomRight = Float(input[bottom + xTap.upper])
                let upper = topLeft + (topRight - topLeft) * xTap.lerp
                let lower = bottomLeft + (bottomRight - bottomLeft) * xTap.lerp
                output[y * outputWidth + x] = upper + (lower - upper) * yTap.lerp
            }
        }
    }

    /// Resizes, rounds half to even, clips to 0-255 and writes each pixel `channels` times
    /// (grey replicated to RGB when `channels` is 3).
    public func resizeToBytes(_ input: UnsafeBufferPointer<UInt8>, channels: Int, into output: UnsafeMutableBufferPointer<UInt8>) {
        precondition(output.count == outputWidth * outputHeight * channels)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: outputWidth * outputHeight) { floats in
            resize(input, into: floats)
            for (index, value) in floats.enumerated() {
                let byte = UInt8(min(255, max(0, value.rounded(.toNearestOrEven))))
                for channel in 0 ..< channels { output[index * channels + channel] = byte }
            }
        }
    }

    /// Resizes an 8-bit image of `channels` (1: grey, replicated; 3: RGB, each channel on its own,
    /// as tf.image.resize does) to RGB bytes `outputHeight x outputWidth x 3`, rounded half to even
    /// and clipped.
    ///
    /// Separable, and the same float operations as `resize`: each input row is blended across once
    /// (`upper = left + (right - left) * xlerp`, the very value `resize` computes for every output row
    /// that reads that input row), then each output row down (`upper + (lower - upper) * ylerp`). So
    /// the bits are `resize`'s, with a third of its work at 200 -> 224 (checked by the tests against
    /// TensorFlow's pixels and against `resize` itself).
    public func resizeToRGB(_ input: UnsafeBufferPointer<UInt8>, channels: Int, into output: UnsafeMutableBufferPointer<UInt8>) {
        precondition(channels == 1 || channels == 3)
        precondition(input.count == inputWidth * inputHeight * channels && output.count == outputWidth * outputHeight * 3)
        let rowFloats = outputWidth * channels
        // rows[inputHeight][outputWidth x channels]: every input row blended across. One loop per
        // channel count, so that each has a fixed body.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: inputHeight * rowFloats) { rows in
            xTaps.withUnsafeBufferPointer { xTaps in
                for y in 0 ..< inputHeight {
                    let source = input.baseAddress! + y * inputWidth * channels
                    let row = rows.baseAddress! + y * rowFloats
                    if channels == 3 {
                        for x in 0 ..< outputWidth {
                            let tap = xTaps[x]
                            let left = source + tap.lower * 3, right = source + tap.upper * 3
                            let l0 = Float(left[0]), l1 = Float(left[1]), l2 = Float(left[2])
                            row[x * 3] = l0 + (Float(right[0]) - l0) * tap.lerp
                            row[x * 3 + 1] = l1 + (Float(right[1]) - l1) * tap.lerp
                            row[x * 3 + 2] = l2 + (Float(right[2]) - l2) * tap.lerp
                        }
                    } else {
                        for x in 0 ..< outputWidth {
                            let tap = xTaps[x]
                            let left = Float(source[tap.lower])
                            row[x] = left + (Float(source[tap.upper]) - left) * tap.lerp
                        }
                    }
                }
            }
            // Down each column, clipped, then rounded half to even: adding 1.5 x 2^23 to a float in
            // 0 ... 255 leaves the nearest integer, ties to even (the FPU's default mode), in the low
            // bits of the sum's mantissa, with no conversion that could trap (so the loop vectorises).
            // Clipping first gives the same byte as rounding first: both ends are integers.
            let magic: Float = 12_582_912
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: rowFloats) { bytes in
                let bytes = bytes.baseAddress!
                for y in 0 ..< outputHeight {
                    let tap = yTaps[y]
                    let upper = rows.baseAddress! + tap.lower * rowFloats, lower = rows.baseAddress! + tap.upper * rowFloats
                    let out = output.baseAddress! + y * outputWidth * 3
                    let target = channels == 3 ? out : bytes
                    for index in 0 ..< rowFloats {
                        let value = upper[index] + (lower[index] - upper[index]) * tap.lerp
                        target[index] = UInt8(truncatingIfNeeded: (min(255, max(0, value)) + magic).bitPattern)
                    }
                    if channels == 1 {
                        for index in 0 ..< rowFloats {
                            out[index * 3] = bytes[index]
                            out[index * 3 + 1] = bytes[index]
                            out[index * 3 + 2] = bytes[index]
                        }
                    }
                }
            }
        }
    }
}
