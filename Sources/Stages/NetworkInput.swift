import Backbone
import Imaging

/// The one path from a 28x28 grey image to the network's input, in two halves because the pipeline
/// stores the middle (preprocess keeps `rgb` as a lossless PNG, extract turns it into the tensor),
/// while predict does both at once. Each half exists once, here.
public struct NetworkInput: Sendable {
    /// The network's input side.
    public let size: Int
    let resize: BilinearResize

    public init(size: Int) {
        self.size = size
        resize = BilinearResize(from: (28, 28), to: (size, size))
    }

    /// Bytes of one input image: `size x size x 3`.
    public var rgbCount: Int { size * size * 3 }

    /// First half: resized with tf.image.resize's bilinear semantics, rounded half to even, clipped,
    /// replicated to RGB: `grey[28 x 28]` in, `rgb[size x size x 3]` out.
    public func rgb(grey: UnsafeBufferPointer<UInt8>, into rgb: UnsafeMutableBufferPointer<UInt8>) {
        precondition(grey.count == 28 * 28 && rgb.count == rgbCount)
        resize.resizeToBytes(grey, channels: 3, into: rgb)
    }

    /// Second half: Keras's caffe preprocessing (BGR, ImageNet means subtracted) into the network's
    /// input floats, `size x size x 3`.
    public static func tensor(rgb: UnsafeBufferPointer<UInt8>, into input: UnsafeMutablePointer<Float>) {
        ResNet50.preprocess(rgb: rgb, into: input)
    }

    /// Both halves: what the network sees for a 28x28 grey image. `scratch` holds `rgbCount` bytes.
    public func tensor(grey: UnsafeBufferPointer<UInt8>, scratch: UnsafeMutableBufferPointer<UInt8>, into input: UnsafeMutablePointer<Float>) {
        rgb(grey: grey, into: scratch)
        Self.tensor(rgb: UnsafeBufferPointer(scratch), into: input)
    }
}
