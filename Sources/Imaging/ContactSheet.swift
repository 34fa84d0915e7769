

/// A grid of images to look at: one row per class, its label drawn at the left.
public enum ContactSheet {
    /// `rows`: a caption (one or two letters) and the grey images of that row, each `tile x tile`.
    public static func make(rows: [(caption: String, images: [[UInt8]])], tile: Int, perRow: Int, gap: Int = 2) -> Bitmap {
        let scale = max(2, tile / 14)
        let captionWidth = 2 * (Font.width + 1) * scale + 2 * gap
        let width = captionWidth + perRow * (tile + gap) + gap
        let height = rows.count * (tile + gap) + gap
        var sheet = Bitmap(width: width, height: max(height, 1), channels: 1, fill: 32)
        for (rowIndex, row) in rows.enumerated() {
            let top = gap + rowIndex * (tile + gap)
            var x = gap
            for character in row.caption.uppercased().prefix(2) {
                Font.draw(character, into: &sheet, x: x, y: top + (tile - Font.height * scale) / 2, scale: scale)
                x += (Font.width + 1) * scale
            }
            for (column, image) in row.images.prefix(perRow).enumerated() {
                let left = captionWidth + column * (tile + gap)
                for y in 0 ..< tile {
                    for xx in 0 ..< tile {
                        sheet.pixels[(top + y) * width + left + xx] = image[y * tile + xx]
                    }
                }
            }
        }
        return sheet
    }

    /// Nearest-neighbour reduction of a square image to a grey `side x side` one (its first
    /// channel), to keep sheets small.
    public static func thumbnail(_ pixels: [UInt8], size: Int, channels: Int = 1, side: Int) -> [UInt8] {
        (0 ..< side * side).map { index in
            let y = (index / side) * size / side, x = (index % side) * size / side
            return pixels[(y * size + x) * channels]
        }
    }
}

/// A 5x7 bitmap font for the capital letters and digits, enough to caption a contact sheet.
enum Font {
    static let width = 5
    static let height = 7

    static let glyphs: [Character: [String]] = [
        "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
        "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
        "D": ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
        "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
        "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
        "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],
        "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
        "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
        "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
        "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
        "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
        "N": ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
        "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
        "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
        "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
        "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
        "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
        "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
        "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
        "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
        "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
        "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
        "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
        "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
        "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
        "3": ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
        "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
        "6": [".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."],
        "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
        "9": [".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."],
    ]

    static func draw(_ character: Character, into bitmap: inout Bitmap, x: Int, y: Int, scale: Int) {
        guard let glyph = glyphs[character] else { return }
        for (row, line) in glyph.enumerated() {
            for (column, mark) in line.enumerated() where mark == "#" {
                for dy in 0 ..< scale {
                    for dx in 0 ..< scale {
                        let px = x + column * scale + dx, py = y + row * scale + dy
                        if px >= 0, py >= 0, px < bitmap.width, py < bitmap.height {
                            bitmap.pixels[(py * bitmap.width + px) * bitmap.channels] = 255
                        }
                    }
                }
            }
        }
    }
}
