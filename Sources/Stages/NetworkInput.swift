import Backbone
import Imaging

/// The one path from a stored image (grey or RGB, any side) to the network's input, in two halves
/// because the pipeline stores the middle (preprocess keeps `rgb` as a lossless PNG, extract turns it
/// into the tensor), while predict does both at once. Each half exists once, here.
public struct NetworkInput: Sendable {
    /// The network's input side.
    public let size: Int
    /// The resize for the geometry most images have (the dataset's); others get their own.
    let usual: BilinearResize
    /// Keras's `crop_to_aspect_ratio`: the centre square of each image (side min(width, height),
    /// offsets rounded down) is what is resized, so the aspect ratio is kept.
    public let crop: Bool

    public init(size: Int, from source: (width: Int, height: Int) = (28, 28), crop: Bool = false) {
        self.size = size
        self.crop = crop
        let side = min(source.width, source.height)
        usual = BilinearResize(from: crop ? (side, side) : source, to: (size, size))
    }

    /// The centre square Keras's smart_resize keeps of a `width x height` image for a square target.
    public static func cropBox(width: Int, height: Int) -> (x: Int, y: Int, side: Int) {
        let side = min(width, height)
        return ((width - side) / 2, (height - side) / 2, side)
    }

    /// Bytes of one input image: `size x size x 3`.
    public var rgbCount: Int { size * size * 3 }

    /// First half: resized with tf.image.resize's bilinear semantics (aspect not kept), rounded half
    /// to even, clipped, grey replicated to RGB: `pixels[height x width x channels]` in,
    /// `rgb[size x size x 3]` out.
    public func rgb(_ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int, into rgb: UnsafeMutableBufferPointer<UInt8>) {
        precondition(pixels.count == width * height * channels && rgb.count == rgbCount)
        guard crop, width != height else {
            let resize = usual.inputWidth == width && usual.inputHeight == height ? usual : BilinearResize(from: (width, height), to: (size, size))
            return resize.resizeToRGB(pixels, channels: channels, into: rgb)
        }
        let box = Self.cropBox(width: width, height: height)
        var square = [UInt8](repeating: 0, count: box.side * box.side * channels)
        for y in 0 ..< box.side {
            let from = ((box.y + y) * width + box.x) * channels
            square.withUnsafeMutableBufferPointer { out in
                (out.baseAddress! + y * box.side * channels).update(from: pixels.baseAddress! + from, count: box.side * channels)
            }
        }
        let resize = usual.inputWidth == box.side && usual.inputHeight == box.side ? usual : BilinearResize(from: (box.side, box.side), to: (size, size))
        square.withUnsafeBufferPointer { resize.resizeToRGB($0, channels: channels, into: rgb) }
    }

    /// Second half: the backbone's own preprocessing (ResNet50: Keras's caffe mode) into the
    /// network's input floats, `size x size x 3`.
    public static func tensor(rgb: UnsafeBufferPointer<UInt8>, preprocessing: InputPreprocessing, into input: UnsafeMutablePointer<Float>) {
        preprocessing.apply(rgb: rgb, into: input)
    }

    /// Both halves: what the network sees for an image. `scratch` holds `rgbCount` bytes.
    public func tensor(_ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int, preprocessing: InputPreprocessing,
                       scratch: UnsafeMutableBufferPointer<UInt8>, into input: UnsafeMutablePointer<Float>) {
        rgb(pixels, width: width, height: height, channels: channels, into: scratch)
        Self.tensor(rgb: UnsafeBufferPointer(scratch), preprocessing: preprocessing, into: input)
    }
}
