import CJPEG
import CPNG
import CPNGWriter
import Foundation
import Numerical

/// An encoded picture as found in a folder: JPEG or PNG, told apart by their first bytes (not the
/// file name), sized from the header without decoding, decoded as TensorFlow's
/// `decode_image(channels=3)` does for the formats read.
public enum ImageFile {
    public enum Format: String, Sendable {
        case jpeg, png
    }

    /// File extensions read (compared without case); Keras also reads .bmp and .gif, which are
    /// counted and skipped here.
    public static let extensions: [String: Format] = ["jpg": .jpeg, "jpeg": .jpeg, "png": .png]

    /// The most pixels an image may have: a header claiming more is refused before anything is
    /// allocated (a decompression bomb). 2^26, 8192 x 8192: 200 MB of RGB.
    public static let maximumPixels = 1 << 26

    public struct Info: Sendable, Equatable {
        public var format: Format
        public var width: Int, height: Int
        /// 1 for a grey file, 3 for colour (an alpha channel is dropped, as TF's channels=3 does).
        public var channels: Int

        public init(format: Format, width: Int, height: Int, channels: Int) {
            (self.format, self.width, self.height, self.channels) = (format, width, height, channels)
        }
    }

    public struct Problem: UserFacingError {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The format by magic number: JPEG starts FF D8 FF, PNG with its 8-byte signature.
    public static func format(of data: Data) -> Format? {
        if data.count >= 3, data[data.startIndex] == 0xFF, data[data.startIndex + 1] == 0xD8, data[data.startIndex + 2] == 0xFF { return .jpeg }
        if data.count >= 8, Array(data.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }

    /// Format, size and channels from the header alone, checked against `maximumPixels`.
    public static func info(_ data: Data) throws(Problem) -> Info {
        guard !data.isEmpty else { throw Problem(description: "the file is empty") }
        guard let format = format(of: data) else { throw Problem(description: "neither a JPEG nor a PNG (its first bytes are neither's)") }
        let info: Info
        switch format {
        case .jpeg:
            var header = st_jpeg_info()
            var message = [CChar](repeating: 0, count: 256)
            let status = data.withUnsafeBytes { st_jpeg_header($0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count, &header, &message, message.count) }
            guard status == 0 else { throw Problem(description: "not a readable JPEG: \(text(message))") }
            guard header.components == 1 || header.components == 3 else {
                throw Problem(description: "a JPEG with \(header.components) colour components (CMYK?): only grey and colour are read")
            }
            info = Info(format: .jpeg, width: Int(header.width), height: Int(header.height), channels: Int(header.components))
        case .png:
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let colour = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
            let (width, height) = (Int(image.width), Int(image.height))
            png_image_free(&image)
            guard begun != 0 else { throw Problem(description: "not a readable PNG: \(message)") }
            info = Info(format: .png, width: width, height: height, channels: colour ? 3 : 1)
        }
        guard info.width > 0, info.height > 0 else { throw Problem(description: "an image of \(info.width)x\(info.height) pixels") }
        guard info.width * info.height <= maximumPixels else {
            throw Problem(description: "its header claims \(info.width)x\(info.height) pixels, more than the \(maximumPixels) allowed (a decompression bomb?)")
        }
        return info
    }

    /// Whether the whole file reads, as `decode` would read it, without keeping its pixels: a JPEG's
    /// entropy-coded data decoded to coefficients (truncation and corrupt data fail there; the
    /// inverse DCT and colour conversion, most of a decode's time, cannot fail on them), a PNG
    /// decoded. The header's info, checked as `info` checks it.
    public static func validate(_ data: Data) throws(Problem) -> Info {
        let file = try info(data)
        switch file.format {
        case .jpeg:
            var message = [CChar](repeating: 0, count: 256)
            let status = data.withUnsafeBytes { st_jpeg_check($0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count, &message, message.count) }
            guard status == 0 else { throw Problem(description: "a damaged JPEG: \(text(message))") }
        case .png:
            _ = try decode(data)
        }
        return file
    }

    /// Decoded pixels in the file's own channels (1 grey or 3 RGB): what `decode_image(channels=3)`
    /// gives, but for the replication of grey to RGB, which the resize does (it commutes with it).
    /// JPEG: libjpeg-turbo with the fast integer DCT and fancy upsampling, TensorFlow's defaults.
    /// `channels`: 1 or 3 to convert to (grey by the library's own conversion: libjpeg's, libpng's);
    /// nil keeps the file's.
    public static func decode(_ data: Data, channels wanted: Int? = nil) throws(Problem) -> Bitmap {
        let file = try info(data)
        let channels = wanted ?? file.channels
        var message = [CChar](repeating: 0, count: 256)
        switch file.format {
        case .jpeg:
            // libjpeg converts between grey and RGB itself (replicating grey, as TensorFlow does).
            var pixels = [UInt8](repeating: 0, count: file.width * file.height * channels)
            let status = data.withUnsafeBytes { bytes in
                pixels.withUnsafeMutableBufferPointer { out in
                    st_jpeg_decode(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, Int32(channels), 1,
                                   out.baseAddress, out.count, &message, message.count)
                }
            }
            guard status == 0 else { throw Problem(description: "a damaged JPEG: \(text(message))") }
            return Bitmap(width: file.width, height: file.height, channels: channels, pixels: pixels)
        case .png:
            // Grey asked of a colour file (predict's Sign MNIST path): libpng's own conversion.
            if channels == 1, file.channels == 3 {
                do {
                    return try PNG.decode(data, channels: 1)
                } catch {
                    throw Problem(description: "a damaged PNG: \(error.userMessage)")
                }
            }
            var pixels = [UInt8](repeating: 0, count: file.width * file.height * file.channels)
            let status = data.withUnsafeBytes { bytes in
                pixels.withUnsafeMutableBufferPointer { out in
                    st_png_decode(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, UInt32(file.width), UInt32(file.height),
                                  Int32(file.channels), out.baseAddress, out.count, &message, message.count)
                }
            }
            guard status == 0 else { throw Problem(description: "a damaged PNG: \(text(message))") }
            guard channels == 3, file.channels == 1 else {
                return Bitmap(width: file.width, height: file.height, channels: file.channels, pixels: pixels)
            }
            // Colour asked of a grey file: replicated, as decode_image(channels=3) does.
            return Bitmap(width: file.width, height: file.height, channels: 3, pixels: pixels.flatMap { [$0, $0, $0] })
        }
    }

    static func text(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
