import CKernels
import Numerical
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
    /// The taps across, per output float of a grey and of an RGB row (index j = x * channels + c):
    /// what the C kernels read.
    let acrossGrey: Across
    let acrossRGB: Across

    struct Across: Sendable {
        var lower: [Int32], upper: [Int32], lerp: [Float]

        init(_ taps: [Tap], channels: Int) {
            lower = taps.flatMap { tap in (0 ..< channels).map { Int32(tap.lower * channels + $0) } }
            upper = taps.flatMap { tap in (0 ..< channels).map { Int32(tap.upper * channels + $0) } }
            lerp = taps.flatMap { tap in [Float](repeating: tap.lerp, count: channels) }
        }
    }

    public init(from input: (width: Int, height: Int), to output: (width: Int, height: Int)) {
        inputWidth = input.width
        inputHeight = input.height
        outputWidth = output.width
        outputHeight = output.height
        xTaps = Self.taps(input: input.width, output: output.width)
        yTaps = Self.taps(input: input.height, output: output.height)
        acrossGrey = Across(xTaps, channels: 1)
        acrossRGB = Across(xTaps, channels: 3)
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

    /// The taps of each output row and column (the two input coordinates blended, the upper's
    /// weight): for an exporter that repeats `resize`'s own operations, `l + (r - l) * lerp` across,
    /// then the same down, which gives its floats at any size.
    public var taps: (rows: (lower: [Int], upper: [Int], lerp: [Float]), columns: (lower: [Int], upper: [Int], lerp: [Float])) {
        ((yTaps.map(\.lower), yTaps.map(\.upper), yTaps.map(\.lerp)), (xTaps.map(\.lower), xTaps.map(\.upper), xTaps.map(\.lerp)))
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
    /// Separable, and the same float operations as `resize`: each input row an output row reads is
    /// blended across once (`upper = left + (right - left) * xlerp`, the very value `resize` computes
    /// for every output row that reads that input row), then each output row down (`upper + (lower -
    /// upper) * ylerp`). So the bits are `resize`'s, with a third of its work at 200 -> 224 (checked by
    /// the tests against TensorFlow's pixels and against `resize` itself, on every path). The passes
    /// are CKernels' `st_resize_across` and `st_resize_down`: on `isa` (the best this CPU runs unless
    /// told), with the plain loops on `.portable`.
    public func resizeToRGB(_ input: UnsafeBufferPointer<UInt8>, channels: Int, into output: UnsafeMutableBufferPointer<UInt8>,
                            isa: ProductISA = .best) {
        precondition(channels == 1 || channels == 3)
        precondition(input.count == inputWidth * inputHeight * channels && output.count == outputWidth * outputHeight * 3)
        let rowFloats = outputWidth * channels, rowBytes = inputWidth * channels
        let across = channels == 3 ? acrossRGB : acrossGrey
        let isa = isa.rawValue
        // Each output row down from two input rows blended across, made when first needed and kept
        // in one of two slots while output rows still read them (the taps only move down): the
        // blended rows stay in L1, where a buffer of every input row (537 KB at 200 -> 224) went
        // to L2 and back, and a shrink blends only the rows its taps read. Grey goes into `bytes`
        // first (then written three times).
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * rowFloats + rowBytes) { floats in
            let slots = [floats.baseAddress!, floats.baseAddress! + rowFloats], scratch = floats.baseAddress! + 2 * rowFloats
            var held = [-1, -1]
            across.lower.withUnsafeBufferPointer { lower in
                across.upper.withUnsafeBufferPointer { upper in
                    across.lerp.withUnsafeBufferPointer { lerp in
                        // Input row `y` blended, in the slot that does not hold `other` unless it is there already.
                        func blended(_ y: Int, keeping other: Int) -> UnsafeMutablePointer<Float> {
                            if let slot = held.firstIndex(of: y) { return slots[slot] }
                            let slot = held[0] == other ? 1 : 0
                            st_resize_across(isa, input.baseAddress! + y * rowBytes, Int32(rowBytes), lower.baseAddress, upper.baseAddress, lerp.baseAddress,
                                             Int32(rowFloats), scratch, slots[slot])
                            held[slot] = y
                            return slots[slot]
                        }
                        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: rowFloats) { bytes in
                            let bytes = bytes.baseAddress!
                            for y in 0 ..< outputHeight {
                                let tap = yTaps[y]
                                let top = blended(tap.lower, keeping: tap.upper), bottom = blended(tap.upper, keeping: tap.lower)
                                let out = output.baseAddress! + y * outputWidth * 3
                                st_resize_down(isa, top, bottom, tap.lerp, Int32(rowFloats), channels == 3 ? out : bytes)
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
        }
    }
}
