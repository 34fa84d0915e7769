

/// A grid of images to look at, in colour: one row per class, its name drawn at the left.
public enum ContactSheet {
    /// Characters of a class name drawn (uppercased); a longer name is cut.
    public static let captionLength = 6

    /// `rows`: a caption (the class name) and the RGB images of that row, each `tile x tile x 3`.
    public static func make(rows: [(caption: String, images: [[UInt8]])], tile: Int, perRow: Int, gap: Int = 2) -> Bitmap {
        let scale = max(2, tile / 14)
        let longest = min(captionLength, max(1, rows.map(\.caption.count).max() ?? 1))
        let captionWidth = longest * (Font.width + 1) * scale + 2 * gap
        let width = captionWidth + perRow * (tile + gap) + gap
        let height = rows.count * (tile + gap) + gap
        var sheet = Bitmap(width: width, height: max(height, 1), channels: 3, fill: 32)
        for (rowIndex, row) in rows.enumerated() {
            let top = gap + rowIndex * (tile + gap)
            var x = gap
            for character in row.caption.uppercased().prefix(captionLength) {
                Font.draw(character, into: &sheet, x: x, y: top + (tile - Font.height * scale) / 2, scale: scale)
                x += (Font.width + 1) * scale
            }
            for (column, image) in row.images.prefix(perRow).enumerated() {
                let left = captionWidth + column * (tile + gap)
                for y in 0 ..< tile {
                    let from = y * tile * 3, to = ((top + y) * width + left) * 3
                    sheet.pixels.replaceSubrange(to ..< to + tile * 3, with: image[from ..< from + tile * 3])
                }
            }
        }
        return sheet
    }

    /// Nearest-neighbour reduction of a square image (`size x size x channels`) to an RGB
    /// `side x side x 3` one (grey replicated), to keep sheets small.
    public static func thumbnail(_ pixels: [UInt8], size: Int, channels: Int = 1, side: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: side * side * 3)
        for index in 0 ..< side * side {
            let y = (index / side) * size / side, x = (index % side) * size / side
            for channel in 0 ..< 3 { out[index * 3 + channel] = pixels[(y * size + x) * channels + (channels == 3 ? channel : 0)] }
        }
        return out
    }
}

/// A 5x7 bitmap font for the capital letters, digits, "-" and "_", enough to caption a contact
/// sheet; other characters are drawn as "?".
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
        "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
        "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
        " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
        // Anything else (accents, other scripts, punctuation).
        "?": [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],
    ]

    static func draw(_ character: Character, into bitmap: inout Bitmap, x: Int, y: Int, scale: Int) {
        guard let glyph = glyphs[character] ?? glyphs["?"] else { return }
        for (row, line) in glyph.enumerated() {
            for (column, mark) in line.enumerated() where mark == "#" {
                for dy in 0 ..< scale {
                    for dx in 0 ..< scale {
                        let px = x + column * scale + dx, py = y + row * scale + dy
                        if px >= 0, py >= 0, px < bitmap.width, py < bitmap.height {
                            for channel in 0 ..< bitmap.channels { bitmap.pixels[(py * bitmap.width + px) * bitmap.channels + channel] = 255 }
                        }
                    }
                }
            }
        }
    }
}
