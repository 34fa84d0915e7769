import CPNG
import CPNGWriter
import Foundation
import Numerical

/// An 8-bit image in memory: `height x width x channels` bytes, row-major, channels interleaved.
public struct Bitmap: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "a \(width)x\(height)x\(channels) bitmap needs \(width * height * channels) bytes")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    public init(width: Int, height: Int, channels: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels, pixels: [UInt8](repeating: fill, count: width * height * channels))
    }
}

public struct PNGError: UserFacingError {
    public var description: String
}

/// PNG through libpng's simplified API, which reports errors through return values (no setjmp).
public enum PNG {
    static func format(channels: Int) -> UInt32 {
        switch channels {
        case 1: return UInt32(PNG_FORMAT_GRAY)
        case 2: return UInt32(PNG_FORMAT_FLAG_ALPHA)
        case 3: return UInt32(PNG_FORMAT_RGB)
        case 4: return UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        default: preconditionFailure("PNG bitmaps have 1 to 4 channels, not \(channels)")
        }
    }

    /// Encodes a bitmap. `fast` trades size for speed, right for intermediate files that are written
    /// once and read back soon: see `encodeFast`.
    public static func encode(_ bitmap: Bitmap, fast: Bool = false) throws -> Data {
        if fast { return try encodeFast(bitmap) }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(bitmap.width)
        image.height = UInt32(bitmap.height)
        image.format = format(channels: bitmap.channels)
        image.flags = 0
        let stride = Int32(bitmap.width * bitmap.channels)
        // Worst case for PNG: every row stored, plus generous framing; the size is checked below.
        var size = bitmap.pixels.count + bitmap.height * 8 + 1024
        var output = Data(count: size)
        let written = output.withUnsafeMutableBytes { out in
            bitmap.pixels.withUnsafeBytes { pixels in
                png_image_write_to_memory(&image, out.baseAddress, &size, 0, pixels.baseAddress, stride, nil)
            }
        }
        guard written != 0 else {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            throw PNGError(description: "PNG encoding failed: \(message)")
        }
        output.count = size
        return output
    }

    /// zlib level 1, the Up filter and zlib's run-length strategy. Measured on the full-size dataset
    /// (34,627 images): at 224 20.6 s and 789 MB, against 55 s and 1,098 MB with the simplified API's
    /// fast flag; at 64 3.7 s. Upsampled images change slowly down a column, so Up leaves long runs
    /// of equal bytes, which is exactly what the run-length strategy finds cheaply.
    static let tuning: (level: Int32, filters: Int32, strategy: Int32) = (1, Int32(PNG_FILTER_UP), 3)

    /// The fast encoding, through the full libpng API (CPNGWriter), which lets us choose zlib's level,
    /// the row filter and zlib's strategy; the simplified API allows none of them.
    public static func encodeFast(_ bitmap: Bitmap) throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bitmap.pixels.withUnsafeBufferPointer { pixels in
            st_png_encode(pixels.baseAddress, UInt32(bitmap.width), UInt32(bitmap.height), Int32(bitmap.channels),
                          tuning.level, tuning.filters, tuning.strategy, &out, &size, &message, message.count)
        }
        guard status == 0, let out else {
            throw PNGError(description: "PNG encoding failed: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { st_png_free(out) }
        return Data(bytes: out, count: size)
    }

    /// Decodes any PNG (grey or colour, 8 or 16 bit, palette, alpha) to 8-bit `channels` channels,
    /// with libpng doing the conversion.
    public static func decode(_ data: Data, channels: Int) throws -> Bitmap {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func failure(_ what: String) -> PNGError {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            return PNGError(description: "\(what): \(message)")
        }
        // libpng keeps reading from the memory given at the start until the end: one scope for both.
        return try data.withUnsafeBytes { bytes -> Bitmap in
            guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
                throw failure("not a readable PNG")
            }
            image.format = format(channels: channels)
            let width = Int(image.width), height = Int(image.height)
            guard width > 0, height > 0, width * height <= 1 << 28 else { throw failure("PNG of unusable size \(width)x\(height)") }
            var pixels = [UInt8](repeating: 0, count: width * height * channels)
            let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard finished != 0 else { throw failure("corrupt PNG") }
            return Bitmap(width: width, height: height, channels: channels, pixels: pixels)
        }
    }
}
