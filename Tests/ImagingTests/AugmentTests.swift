import Imaging
import Numerical
import Testing

/// The augmentation transforms do what they say, on patterns where the answer is known exactly.
@Suite struct AugmentTransforms {
    static let side = 28
    /// Every pixel different from its neighbours: (7 * row + 3 * column) mod 256.
    static let pattern: [UInt8] = (0 ..< side * side).map { UInt8((7 * ($0 / side) + 3 * ($0 % side)) % 256) }

    func pixel(_ image: [UInt8], _ row: Int, _ column: Int) -> UInt8 {
        image[min(max(row, 0), Self.side - 1) * Self.side + min(max(column, 0), Self.side - 1)]
    }

    @Test func theIdentityChangesNothing() {
        #expect(Augment.apply(.identity, to: Self.pattern, side: Self.side) == Self.pattern)
    }

    @Test func aQuarterTurnMovesEveryPixelExactly() {
        let turned = Augment.apply(Augment.Transform(rotation: 90), to: Self.pattern, side: Self.side)
        for y in 0 ..< Self.side {
            for x in 0 ..< Self.side {
                #expect(turned[y * Self.side + x] == pixel(Self.pattern, Self.side - 1 - x, y), "pixel (\(x), \(y))")
            }
        }
        var image = Self.pattern
        for _ in 0 ..< 4 { image = Augment.apply(Augment.Transform(rotation: 90), to: image, side: Self.side) }
        #expect(image == Self.pattern, "four quarter turns are the identity")
        #expect(Augment.apply(Augment.Transform(rotation: -90), to: turned, side: Self.side) == Self.pattern)
    }

    @Test func aWholePixelShiftMovesEveryPixelAndExtendsTheEdges() {
        let shifted = Augment.apply(Augment.Transform(dx: 3, dy: -2), to: Self.pattern, side: Self.side)
        for y in 0 ..< Self.side {
            for x in 0 ..< Self.side {
                // Content moves 3 right and 2 up; what comes in is the nearest edge pixel.
                #expect(shifted[y * Self.side + x] == pixel(Self.pattern, y + 2, x - 3), "pixel (\(x), \(y))")
            }
        }
    }

    @Test func aMirrorReversesEachRow() {
        let mirrored = Augment.apply(Augment.Transform(flip: true), to: Self.pattern, side: Self.side)
        for y in 0 ..< Self.side {
            #expect(Array(mirrored[y * Self.side ..< (y + 1) * Self.side]) == Array(Self.pattern[y * Self.side ..< (y + 1) * Self.side].reversed()))
        }
    }

    @Test func brightnessAndContrastAreAboutMidGreyRoundedHalfToEvenAndClipped() {
        let flat = [UInt8](repeating: 100, count: Self.side * Self.side)
        // 100 + 0.1 * 255 = 125.5 -> 126 (half to even); contrast 2 about 127.5: 72.5 -> 72; clipped at both ends.
        #expect(Set(Augment.apply(Augment.Transform(brightness: 0.1), to: flat, side: Self.side)) == [126])
        #expect(Set(Augment.apply(Augment.Transform(contrast: 2), to: flat, side: Self.side)) == [72])
        #expect(Set(Augment.apply(Augment.Transform(brightness: 1), to: flat, side: Self.side)) == [255])
        #expect(Set(Augment.apply(Augment.Transform(brightness: -1), to: flat, side: Self.side)) == [0])
    }

    @Test func aScaleAboutTheCentreKeepsTheCentre() {
        // A zoom by 2 maps the centre 2x2 block onto the centre 4x4 block, which keeps their mean.
        let zoomed = Augment.apply(Augment.Transform(scale: 2), to: Self.pattern, side: Self.side)
        let centre = [13, 14].flatMap { y in [13, 14].map { x in Int(Self.pattern[y * Self.side + x]) } }
        let middle = (12 ... 15).flatMap { y in (12 ... 15).map { x in Int(zoomed[y * Self.side + x]) } }
        #expect(abs(Double(middle.reduce(0, +)) / 16 - Double(centre.reduce(0, +)) / 4) <= 1)
    }

    @Test func viewsAreDrawnPerImageAndViewWithinTheirRanges() {
        let ranges = Augment.Ranges(rotation: 15, translation: 3, scale: 0.2, brightness: 0.1, contrast: 0.3, flip: true)
        let a = Augment.draw(ranges, seed: 5, id: 17, view: 2)
        #expect(a == Augment.draw(ranges, seed: 5, id: 17, view: 2), "the same seed, image and view: the same transform")
        #expect(a != Augment.draw(ranges, seed: 5, id: 17, view: 3) && a != Augment.draw(ranges, seed: 5, id: 18, view: 2) && a != Augment.draw(ranges, seed: 6, id: 17, view: 2))
        var flips = 0
        for view in 1 ... 400 {
            let t = Augment.draw(ranges, seed: 1, id: 3, view: view)
            #expect(abs(t.rotation) <= 15 && abs(t.dx) <= 3 && abs(t.dy) <= 3 && abs(t.scale - 1) <= 0.2 && abs(t.brightness) <= 0.1 && abs(t.contrast - 1) <= 0.3)
            flips += t.flip ? 1 : 0
        }
        #expect((150 ... 250).contains(flips), "about half mirrored: \(flips)")
        let none = Augment.Ranges(rotation: 0, translation: 0, scale: 0, brightness: 0, contrast: 0, flip: false)
        #expect(Augment.draw(none, seed: 9, id: 1, view: 1) == .identity)
    }
}
