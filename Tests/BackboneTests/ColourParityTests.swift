import Backbone
import Fixtures
import Foundation
import Imaging
import Numerical
import PipelineKit
import Stages
import Testing

/// Real colour photos through the folder path against TensorFlow and Keras
/// (`scripts/make_colour_parity_fixture.py`): the decoded pixels are TF's `decode_image`'s bit for
/// bit, the resized ones tf.image.resize's rounded ones, and the features Keras's within 1e-4 of the
/// largest value. Sign MNIST never showed whether channel order is right (grey is the same in RGB
/// and BGR); these photos do.
@Suite struct ColourParity {
    static let folder = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-parity-colour")

    struct Listing: Decodable {
        struct File: Decodable {
            var file: String
            var decoded_sha256: String
            var shape: [Int]
        }

        var files: [File]
        var size: Int
    }

    static func listing() throws -> Listing {
        try JSONDecoder().decode(Listing.self, from: Data(contentsOf: folder.appendingPathComponent("files.json")))
    }

    /// The pixels of each file as the product decodes them (and as predict and preprocess see them).
    static func decoded() throws -> [Bitmap] {
        try listing().files.map { try ImageFile.decode(Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent($0.file))) }
    }

    @Test func decodedPixelsAreTensorFlowsBitForBit() throws {
        for (file, bitmap) in zip(try Self.listing().files, try Self.decoded()) {
            #expect([bitmap.height, bitmap.width, bitmap.channels] == file.shape, "\(file.file)")
            let digest = bitmap.pixels.withUnsafeBytes { sha256(of: $0) }
            #expect(digest == file.decoded_sha256, "\(file.file): decoded pixels differ from tf.io.decode_image's")
        }
    }

    /// Every kind of PNG TensorFlow decodes its own way (16-bit: the high byte; alpha and
    /// transparency dropped, not composited; palettes and 1-bit grey expanded; grey replicated),
    /// decoded to three channels as `decode_image(channels=3)`, bit for bit.
    @Test func everyKindOfPNGDecodesAsTensorFlow() throws {
        struct File: Decodable {
            var file: String
            var decoded_sha256: String
        }
        let files = try JSONDecoder().decode([File].self, from: Data(contentsOf: Self.folder.appendingPathComponent("pngs.json")))
        #expect(files.count == 7)
        for file in files {
            let bitmap = try ImageFile.decode(Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent(file.file)), channels: 3)
            #expect(bitmap.channels == 3)
            #expect(bitmap.pixels.withUnsafeBytes { sha256(of: $0) } == file.decoded_sha256, "\(file.file)")
        }
    }

    @Test func resizedPixelsAreTensorFlowsRounded() throws {
        let listing = try Self.listing()
        let expected = try NPY(Self.folder.appendingPathComponent("inputs_\(listing.size).npy"))
        let input = NetworkInput(size: listing.size, from: (200, 200))
        let pixels = input.rgbCount
        for (index, bitmap) in try Self.decoded().enumerated() {
            var rgb = [UInt8](repeating: 0, count: pixels)
            bitmap.pixels.withUnsafeBufferPointer { source in
                rgb.withUnsafeMutableBufferPointer { input.rgb(source, width: bitmap.width, height: bitmap.height, channels: bitmap.channels, into: $0) }
            }
            #expect(rgb == Array(expected.bytes[index * pixels ..< (index + 1) * pixels]), "\(listing.files[index].file)")
        }
    }

    /// A 200x120 picture resized whole (stretched, Keras's default) and with crop_to_aspect_ratio
    /// (its centre square, as Keras's smart_resize crops it), both as TensorFlow's rounded pixels.
    @Test(arguments: [false, true])
    func aWidePictureIsStretchedOrCroppedAsKerasDoes(crop: Bool) throws {
        let bitmap = try ImageFile.decode(Data(contentsOf: Self.folder.appendingPathComponent("wide.png")))
        #expect(bitmap.width == 200 && bitmap.height == 120)
        let expected = try NPY(Self.folder.appendingPathComponent(crop ? "wide_crop_64.npy" : "wide_64.npy"))
        let input = NetworkInput(size: 64, from: (bitmap.width, bitmap.height), crop: crop)
        var rgb = [UInt8](repeating: 0, count: input.rgbCount)
        bitmap.pixels.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { input.rgb(source, width: bitmap.width, height: bitmap.height, channels: 3, into: $0) }
        }
        let reference: [UInt8] = expected.bytes
        #expect(rgb == reference)
        // A NetworkInput made for another size crops the same way.
        let other = NetworkInput(size: 64, from: (28, 28), crop: crop)
        var again = [UInt8](repeating: 0, count: other.rgbCount)
        bitmap.pixels.withUnsafeBufferPointer { source in
            again.withUnsafeMutableBufferPointer { other.rgb(source, width: bitmap.width, height: bitmap.height, channels: 3, into: $0) }
        }
        #expect(again == rgb)
    }

    @Test(arguments: GEMMKernel.availableFloat)
    func featuresMatchKeras(kernel: GEMMKernel) throws {
        let listing = try Self.listing(), size = listing.size
        let inputs = try NPY(Self.folder.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Self.folder.appendingPathComponent("features_\(size).npy")).floats
        let count = listing.files.count
        let network = try ResNet50(weights: KerasWeightsFile(Fixtures.parityWeights()), kernel: kernel, size: size)
        // Through the architecture's own preprocessing, as extract runs it.
        let features = network.features(rgb: inputs.bytes, count: count, size: size)
        let largest = expected.map(abs).max()!
        let worst = zip(features, expected).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * largest, "\(kernel): max |ours - keras| = \(worst), largest \(largest)")
        // With the channels the wrong way round the bar is missed by far: the test can fail.
        var swapped = inputs.bytes
        for pixel in stride(from: 0, to: swapped.count, by: 3) { swapped.swapAt(pixel, pixel + 2) }
        let wrong = network.features(rgb: swapped, count: count, size: size)
        #expect(zip(wrong, expected).map { abs($0 - $1) }.max()! > 1e-2 * largest)
    }
}

/// Converting on decode: a colour file asked for grey comes back with one channel (predict's Sign
/// MNIST path), a grey file asked for colour with three equal ones, for JPEG and PNG alike.
@Suite struct DecodeConversions {
    @Test(arguments: ["photo.png", "png-grey16.png"])
    func askedChannelsAreGiven(name: String) throws {
        let data = try Data(contentsOf: ColourParity.folder.appendingPathComponent(name))
        for channels in [1, 3] {
            let bitmap = try ImageFile.decode(data, channels: channels)
            #expect(bitmap.channels == channels && bitmap.pixels.count == bitmap.width * bitmap.height * channels, "\(name) as \(channels)")
        }
    }

    @Test func aColourJPEGAskedForGreyHasOneChannel() throws {
        let file = try ColourParity.listing().files[0].file
        let bitmap = try ImageFile.decode(Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent(file)), channels: 1)
        #expect(bitmap.channels == 1 && bitmap.pixels.count == 200 * 200)
    }
}
