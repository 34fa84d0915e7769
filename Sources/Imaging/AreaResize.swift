

/// Area averaging: each output pixel is the mean of the input area it covers, fractional pixels at
/// its edges weighted by their covered fraction. The way to reduce a photo to 28x28 without aliasing.
public func areaResize(_ pixels: [UInt8], width: Int, height: Int, to side: Int) -> [UInt8] {
    if width == side && height == side { return pixels }
    func spans(_ size: Int) -> [[(index: Int, weight: Double)]] {
        let scale = Double(size) / Double(side)
        return (0 ..< side).map { out in
            let start = Double(out) * scale, end = Double(out + 1) * scale
            var taps: [(Int, Double)] = []
            var position = Int(start.rounded(.down))
            while Double(position) < end && position < size {
                let covered = min(end, Double(position + 1)) - max(start, Double(position))
                if covered > 0 { taps.append((position, covered)) }
                position += 1
            }
            return taps
        }
    }
    let xs = spans(width), ys = spans(height)
    var out = [UInt8](repeating: 0, count: side * side)
    for y in 0 ..< side {
        for x in 0 ..< side {
            var sum = 0.0, weight = 0.0
            for (row, wy) in ys[y] {
                for (column, wx) in xs[x] {
                    sum += Double(pixels[row * width + column]) * wy * wx
                    weight += wy * wx
                }
            }
            out[y * side + x] = UInt8(min(255, max(0, (sum / weight).rounded(.toNearestOrEven))))
        }
    }
    return out
}
