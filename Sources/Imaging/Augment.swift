import Foundation
import Numerical

/// Augmented views of an original (Sign MNIST's 28x28 grey, or a colour photo of any size), made
/// before the resize (so the resize's semantics are the same for every view): one affine warp (rotation and scale about the centre, then a
/// translation, optionally a mirror) sampled bilinearly with the edge pixels extended outwards
/// (Keras's `fill_mode="nearest"`), then brightness and contrast about mid-grey, rounded half to
/// even and clipped to 0-255.
public enum Augment {
    /// The ranges views are drawn from, uniformly; each is symmetric about "no change".
    public struct Ranges: Sendable, Equatable {
        /// Degrees either way.
        public var rotation: Double
        /// Pixels of the original (Sign MNIST: of 28x28) either way, in x and in y.
        public var translation: Double
        /// Relative: a view's scale is in 1 - scale ... 1 + scale.
        public var scale: Double
        /// Fraction of full scale added: -brightness ... +brightness (x 255 grey levels).
        public var brightness: Double
        /// Relative: a view's contrast factor is in 1 - contrast ... 1 + contrast.
        public var contrast: Double
        /// Mirror left-right with probability 1/2.
        public var flip: Bool

        public init(rotation: Double = 10, translation: Double = 2, scale: Double = 0.1, brightness: Double = 0.1, contrast: Double = 0.2, flip: Bool = false) {
            self.rotation = rotation
            self.translation = translation
            self.scale = scale
            self.brightness = brightness
            self.contrast = contrast
            self.flip = flip
        }
    }

    /// One view's transform.
    public struct Transform: Sendable, Equatable {
        public var rotation = 0.0, dx = 0.0, dy = 0.0, scale = 1.0, brightness = 0.0, contrast = 1.0
        public var flip = false

        public init(rotation: Double = 0, dx: Double = 0, dy: Double = 0, scale: Double = 1, brightness: Double = 0, contrast: Double = 1, flip: Bool = false) {
            self.rotation = rotation
            self.dx = dx
            self.dy = dy
            self.scale = scale
            self.brightness = brightness
            self.contrast = contrast
            self.flip = flip
        }

        public static let identity = Transform()
    }

    /// View `view` (1 ...) of image `id`: drawn from a generator of its own, seeded by the seed, the
    /// image and the view, so that a view does not depend on which others were made or in what order.
    public static func draw(_ ranges: Ranges, seed: UInt64, id: Int, view: Int) -> Transform {
        var mixer = SplitMix64(seed: seed ^ 0xA06_3E17)
        var generator = SplitMix64(seed: mixer.next() ^ (UInt64(bitPattern: Int64(id)) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(view) &* 0xC2B2_AE3D_27D4_EB4F))
        func symmetric(_ range: Double) -> Double { (2 * generator.nextUniform() - 1) * range }
        var transform = Transform()
        transform.rotation = symmetric(ranges.rotation)
        transform.dx = symmetric(ranges.translation)
        transform.dy = symmetric(ranges.translation)
        transform.scale = 1 + symmetric(ranges.scale)
        transform.brightness = symmetric(ranges.brightness)
        transform.contrast = 1 + symmetric(ranges.contrast)
        transform.flip = ranges.flip && generator.next() & 1 == 1
        return transform
    }

    /// `grey` (side x side, row-major) under `transform`.
    public static func apply(_ transform: Transform, to grey: [UInt8], side: Int) -> [UInt8] {
        apply(transform, to: grey, width: side, height: side, channels: 1)
    }

    /// `pixels` (`height x width x channels`, row-major, channels interleaved) under `transform`,
    /// every channel warped alike; brightness and contrast act on each channel's value.
    ///
    /// Coordinates are continuous with pixel (x, y) covering [x, x + 1) x [y, y + 1) and the centre at
    /// (width / 2, height / 2). A source point p lands at T(p) = R(rotation) * scale * (mirror(p) - c) + c + (dx, dy);
    /// each output pixel's centre q is mapped back by T's inverse and sampled bilinearly, indices
    /// clamped to the image (edges extended). A rotation by a multiple of 90 degrees (of a square)
    /// and whole-pixel translations therefore move pixels exactly.
    public static func apply(_ transform: Transform, to pixels: [UInt8], width: Int, height: Int, channels: Int) -> [UInt8] {
        precondition(pixels.count == width * height * channels)
        let centreX = Double(width) / 2, centreY = Double(height) / 2
        let angle = -transform.rotation * .pi / 180
        // cos and sin of multiples of 90 degrees snapped to exact values: 6e-17 is not 0.
        func exact(_ value: Double) -> Double { abs(value) < 1e-12 ? 0 : abs(abs(value) - 1) < 1e-12 ? value.sign == .minus ? -1 : 1 : value }
        let cosine = exact(cos(angle)), sine = exact(sin(angle))
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { source in
            // A pixel's offset, its indices clamped to the image (edges extended).
            func offset(_ x: Int, _ y: Int) -> Int { (min(max(y, 0), height - 1) * width + min(max(x, 0), width - 1)) * channels }
            for y in 0 ..< height {
                for x in 0 ..< width {
                    // Undo the translation, the rotation, the scale, the mirror.
                    let qx = Double(x) + 0.5 - centreX - transform.dx, qy = Double(y) + 0.5 - centreY - transform.dy
                    var px = (cosine * qx - sine * qy) / transform.scale + centreX
                    let py = (sine * qx + cosine * qy) / transform.scale + centreY
                    if transform.flip { px = Double(width) - px }
                    // Pixel-index coordinates of the sample point.
                    let u = px - 0.5, v = py - 0.5
                    let x0 = Int(u.rounded(.down)), y0 = Int(v.rounded(.down))
                    let fx = u - Double(x0), fy = v - Double(y0)
                    // The four neighbours' offsets, once for every channel.
                    let topLeft = offset(x0, y0), topRight = offset(x0 + 1, y0), bottomLeft = offset(x0, y0 + 1), bottomRight = offset(x0 + 1, y0 + 1)
                    for channel in 0 ..< channels {
                        func at(_ corner: Int) -> Double { Double(source[corner + channel]) }
                        let sampled = (at(topLeft) * (1 - fx) + at(topRight) * fx) * (1 - fy)
                            + (at(bottomLeft) * (1 - fx) + at(bottomRight) * fx) * fy
                        let value = (sampled - 127.5) * transform.contrast + 127.5 + transform.brightness * 255
                        out[(y * width + x) * channels + channel] = UInt8(min(max(value.rounded(.toNearestOrEven), 0), 255))
                    }
                }
            }
        }
        return out
    }
}
