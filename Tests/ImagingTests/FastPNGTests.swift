import Dataset
import Fixtures
import Foundation
import Imaging
import Numerical
import Testing

/// The fast PNG writer (Paeth, literals-only deflate under the image's own code) against the plain
/// path: libpng and zlib read every file it writes back to exactly the pixels it was given, whatever
/// the statistics (a photo, noise that coding cannot shrink, one colour, a code that has to be
/// flattened to 15 bits) and shape (one pixel, one row, one column, several stored blocks).
@Suite struct FastPNG {
    static let photos = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("pipelines/data/asl-colour-4/train/A")

    /// The file libpng reads back to `bitmap`; the plain loops' file, which the AVX2 path (filter,
    /// checksum, BMI2 coder) and the AVX-512 one (VBMI coder) must equal byte for byte where the CPU
    /// has them.
    func roundTrips(_ bitmap: Bitmap, _ what: String) throws -> Data {
        let file = try PNG.encodeFast(bitmap, isa: .portable)
        let decoded = try PNG.decode(file, channels: bitmap.channels)
        #expect(decoded == bitmap, "\(what): \(bitmap.width)x\(bitmap.height)x\(bitmap.channels)")
        for isa in ProductISA.allCases where isa != .portable && isa <= ProductISA.best {
            #expect(try PNG.encodeFast(bitmap, isa: isa) == file, "\(what): \(isa)")
        }
        return file
    }

    /// Real photos resized as preprocess resizes them: read back exactly, in under three quarters of their
    /// bytes (the code is made for the image, not a stored copy).
    @Test func photosResizedAsPreprocessDoes() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.photos.path).sorted().prefix(4)
        #expect(files.count == 4)
        for name in files {
            let source = try ImageFile.decode(try Data(contentsOf: Self.photos.appendingPathComponent(name)))
            for size in [64, 224] {
                var rgb = [UInt8](repeating: 0, count: size * size * 3)
                source.pixels.withUnsafeBufferPointer { pixels in
                    rgb.withUnsafeMutableBufferPointer {
                        BilinearResize(from: (source.width, source.height), to: (size, size)).resizeToRGB(pixels, channels: source.channels, into: $0)
                    }
                }
                let bitmap = Bitmap(width: size, height: size, channels: 3, pixels: rgb)
                let fast = try roundTrips(bitmap, name)
                #expect(fast.count < rgb.count * 3 / 4, "\(name) at \(size): \(fast.count) bytes")
            }
        }
    }

    /// Noise: coding would not pay, so the stream is stored blocks (several: 600x200x3 is past 65,535).
    @Test func noiseIsStored() throws {
        var generator = SplitMix64(seed: 3)
        let pixels = (0 ..< 600 * 200 * 3).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let file = try roundTrips(Bitmap(width: 600, height: 200, channels: 3, pixels: pixels), "noise")
        #expect(file.count > pixels.count)
    }

    /// One colour (a code of one literal and end-of-block), and the smallest shapes.
    @Test(arguments: [(1, 1, 1), (1, 1, 3), (5, 1, 3), (1, 7, 1), (2, 2, 3), (300, 3, 1)])
    func flatAndTinyImages(width: Int, height: Int, channels: Int) throws {
        _ = try roundTrips(Bitmap(width: width, height: height, channels: channels, pixels: [UInt8](repeating: 200, count: width * height * channels)), "flat")
        let ramp = (0 ..< width * height * channels).map { UInt8(($0 * 37) % 256) }
        _ = try roundTrips(Bitmap(width: width, height: height, channels: channels, pixels: ramp), "ramp")
    }

    /// Residues with Fibonacci frequencies make an unlimited Huffman code 25 bits deep; deflate's
    /// limit is 15, so the writer has to flatten it. One grey row: its residues are the differences
    /// of neighbours, so a running sum of the wanted residues makes them.
    @Test func deepCodesAreLimitedTo15Bits() throws {
        var residues: [UInt8] = []
        var (a, b) = (1, 1)
        for symbol in 0 ..< 25 {
            residues += [UInt8](repeating: UInt8(symbol * 9 + 1), count: a)
            (a, b) = (b, a + b)
        }
        var generator = SplitMix64(seed: 8)
        residues.shuffle(using: &generator)
        var pixels = [UInt8](repeating: 0, count: residues.count)
        var sum: UInt8 = 0
        for (index, residue) in residues.enumerated() {
            sum &+= residue
            pixels[index] = sum
        }
        let file = try roundTrips(Bitmap(width: pixels.count, height: 1, channels: 1, pixels: pixels), "Fibonacci residues")
        #expect(file.count < pixels.count / 2)
    }

    /// Every image of the Sign MNIST sample, resized and replicated as preprocess does, at three
    /// sizes: 597 files whose code headers leave different numbers of bits pending before the
    /// literals (a 96x96 image once tripped the coder's 64-bit word when a header left 31).
    @Test func everySampleImageAtThreeSizes() throws {
        let (rows, _) = try KaggleCSV.read(Fixtures.sample.appendingPathComponent("train.csv"))
        for size in [32, 96, 224] {
            let resize = BilinearResize(from: (28, 28), to: (size, size))
            for row in 0 ..< rows.count {
                var rgb = [UInt8](repeating: 0, count: size * size * 3)
                Array(rows.image(row)).withUnsafeBufferPointer { grey in rgb.withUnsafeMutableBufferPointer { resize.resizeToRGB(grey, channels: 1, into: $0) } }
                _ = try roundTrips(Bitmap(width: size, height: size, channels: 3, pixels: rgb), "row \(row) at \(size)")
            }
        }
    }

    /// Random shapes and statistics (smooth to noisy, grey and RGB), 400 of them.
    @Test func randomImages() throws {
        var generator = SplitMix64(seed: 21)
        for index in 0 ..< 400 {
            let width = Int(generator.next() % 90) + 1, height = Int(generator.next() % 90) + 1
            let channels = generator.next() % 2 == 0 ? 1 : 3
            let noise = Int(generator.next() % 64) + 1
            var value = Int(generator.next() % 256)
            let pixels = (0 ..< width * height * channels).map { _ in
                value = (value + Int(generator.next() % UInt64(noise)) - noise / 2) & 255
                return UInt8(value)
            }
            _ = try roundTrips(Bitmap(width: width, height: height, channels: channels, pixels: pixels), "random image \(index)")
        }
    }
}
