import Artifacts
import Fixtures
import Foundation
import Imaging
import Numerical
import Stages
import Testing

@Suite struct ResizeParity {
    @Test(arguments: [32, 64, 224])
    func matchesTensorFlowBeforeAndAfterRounding(size: Int) throws {
        let source = try NPY(Fixtures.parity.appendingPathComponent("source_28.npy"))
        let resized = try NPY(Fixtures.parity.appendingPathComponent("resized_\(size).npy")).floats
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy")).bytes
        #expect(source.shape == [4, 28, 28])
        let resize = BilinearResize(from: (28, 28), to: (size, size))
        let pixels = source.bytes
        var worst: Float = 0
        for image in 0 ..< 4 {
            let grey = Array(pixels[image * 784 ..< (image + 1) * 784])
            var floats = [Float](repeating: 0, count: size * size)
            grey.withUnsafeBufferPointer { g in floats.withUnsafeMutableBufferPointer { resize.resize(g, into: $0) } }
            for (ours, theirs) in zip(floats, resized[image * size * size ..< (image + 1) * size * size]) {
                worst = max(worst, abs(ours - theirs))
            }
            var rgb = [UInt8](repeating: 0, count: size * size * 3)
            grey.withUnsafeBufferPointer { g in rgb.withUnsafeMutableBufferPointer { resize.resizeToBytes(g, channels: 3, into: $0) } }
            #expect(rgb == Array(inputs[image * size * size * 3 ..< (image + 1) * size * size * 3]), "image \(image) at \(size)")
        }
        #expect(worst <= 1e-3, "largest difference from tf.image.resize: \(worst)")
    }

    /// The resize by its taps, as the ONNX export runs it (gathers, then `l + (r - l) * lerp` across
    /// and the same down, each operation rounded to float): the very floats the resize gives, at the
    /// sizes where products with its weights would be exact (32, 64, 224) and where they are not (48, 96).
    @Test(arguments: [32, 48, 64, 96, 224])
    func byItsTapsTheSameFloats(size: Int) throws {
        let resize = BilinearResize(from: (28, 28), to: (size, size))
        let (rows, columns) = resize.taps
        let csv = try String(contentsOf: Fixtures.sample.appendingPathComponent("train.csv"), encoding: .utf8)
        let images = csv.split(separator: "\n").dropFirst().prefix(60).map { line in line.split(separator: ",").dropFirst().map { UInt8($0)! } }
        for grey in images {
            var expected = [Float](repeating: 0, count: size * size)
            grey.withUnsafeBufferPointer { g in expected.withUnsafeMutableBufferPointer { resize.resize(g, into: $0) } }
            var across = [Float](repeating: 0, count: 28 * size)
            for i in 0 ..< 28 {
                for x in 0 ..< size {
                    let l = Float(grey[i * 28 + columns.lower[x]]), r = Float(grey[i * 28 + columns.upper[x]])
                    let step = (r - l) * columns.lerp[x]
                    across[i * size + x] = l + step
                }
            }
            var out = [Float](repeating: 0, count: size * size)
            for y in 0 ..< size {
                for x in 0 ..< size {
                    let t = across[rows.lower[y] * size + x], b = across[rows.upper[y] * size + x]
                    let step = (b - t) * rows.lerp[y]
                    out[y * size + x] = t + step
                }
            }
            #expect(out == expected, "size \(size)")
        }
    }

    @Test func identityWhenSizesMatch() {
        let grey = (0 ..< 784).map { UInt8($0 % 256) }
        let resize = BilinearResize(from: (28, 28), to: (28, 28))
        var out = [UInt8](repeating: 0, count: 784)
        grey.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { resize.resizeToBytes(g, channels: 1, into: $0) } }
        #expect(out == grey)
    }
}

@Suite struct PNGCodec {
    @Test(arguments: [1, 2, 3, 4])
    func roundTrip(channels: Int) throws {
        let pixels = (0 ..< 37 * 23 * channels).map { UInt8(($0 * 7) % 256) }
        let bitmap = Bitmap(width: 37, height: 23, channels: channels, pixels: pixels)
        // The fast writer takes grey and RGB, all preprocess writes.
        for fast in channels == 1 || channels == 3 ? [false, true] : [false] {
            let decoded = try PNG.decode(try PNG.encode(bitmap, fast: fast), channels: channels)
            #expect(decoded == bitmap)
        }
    }

    /// The fast writer refuses a channel count it has no colour type for, instead of reading past
    /// the rows it was given.
    @Test(arguments: [2, 4, 5])
    func otherChannelCountsAreRefused(channels: Int) {
        let error = #expect(throws: PNGError.self) { try PNG.encodeFast(Bitmap(width: 3, height: 2, channels: channels)) }
        #expect(error?.description.contains("1 or 3 channels, not \(channels)") == true)
    }

    @Test func greyDecodesToReplicatedRGB() throws {
        let grey = Bitmap(width: 5, height: 4, channels: 1, pixels: (0 ..< 20).map { UInt8($0 * 12) })
        let rgb = try PNG.decode(try PNG.encode(grey), channels: 3)
        #expect(rgb.pixels == grey.pixels.flatMap { [$0, $0, $0] })
    }

    @Test func garbageAndTruncationAreErrors() throws {
        #expect(throws: PNGError.self) { try PNG.decode(Data("not a png at all".utf8), channels: 3) }
        #expect(throws: PNGError.self) { try PNG.decode(Data(), channels: 3) }
        let good = try PNG.encode(Bitmap(width: 64, height: 64, channels: 3, pixels: (0 ..< 64 * 64 * 3).map { UInt8($0 % 251) }))
        #expect(throws: PNGError.self) { try PNG.decode(good.prefix(good.count / 2), channels: 3) }
    }
}

/// The separable colour path (`resizeToRGB`) is a faster order of the same float operations as the
/// plain one (`resize`, then rounding): the same bytes for grey and for each channel of colour, at
/// shrinking, growing and odd sizes, with its plain loops and with its AVX2 and AVX-512 passes.
@Suite struct SeparableResize {
    @Test(arguments: [(28, 28, 224), (200, 200, 224), (200, 120, 64), (37, 53, 32), (300, 301, 64)])
    func separableEqualsPlain(width: Int, height: Int, size: Int) {
        var generator = SplitMix64(seed: UInt64(width * 1000 + height))
        let resize = BilinearResize(from: (width, height), to: (size, size))
        for channels in [1, 3] {
            let pixels = (0 ..< width * height * channels).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            // The plain loops, and the AVX2 and AVX-512 passes where the CPU has them.
            var fast = [UInt8](repeating: 0, count: size * size * 3)
            pixels.withUnsafeBufferPointer { source in fast.withUnsafeMutableBufferPointer { resize.resizeToRGB(source, channels: channels, into: $0, isa: .portable) } }
            for isa in ProductISA.allCases where isa != .portable && isa <= ProductISA.best {
                var wide = [UInt8](repeating: 0, count: size * size * 3)
                pixels.withUnsafeBufferPointer { source in wide.withUnsafeMutableBufferPointer { resize.resizeToRGB(source, channels: channels, into: $0, isa: isa) } }
                #expect(wide == fast, "\(isa): \(width)x\(height)x\(channels) to \(size)")
            }
            // The plain path, one channel at a time.
            var plain = [UInt8](repeating: 0, count: size * size * 3)
            for channel in 0 ..< channels {
                let plane = stride(from: channel, to: pixels.count, by: channels).map { pixels[$0] }
                var floats = [Float](repeating: 0, count: size * size)
                plane.withUnsafeBufferPointer { source in floats.withUnsafeMutableBufferPointer { resize.resize(source, into: $0) } }
                for (index, value) in floats.enumerated() {
                    let byte = UInt8(min(255, max(0, value.rounded(.toNearestOrEven))))
                    for copy in channels == 1 ? [0, 1, 2] : [channel] { plain[index * 3 + copy] = byte }
                }
            }
            #expect(fast == plain, "\(width)x\(height)x\(channels) to \(size)")
        }
    }
}
