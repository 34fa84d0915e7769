import Numerical

/// Augmented views among the rows trained on: for every row, the row of the original image it is
/// a view of (itself for an original). Validation is drawn from the originals only and a held-out
/// original's views are never trained on; each epoch trains on one view of each training image
/// (`sample`: the original or one of its views, drawn anew each epoch) or on all of them (`all`).
public struct Views: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        case sample, all
    }

    /// `source[row]`: the original's row.
    public let source: [Int]
    public let mode: Mode
    /// The originals' rows, ascending.
    public let originals: [Int]
    /// For each original (by its position in `originals`): its own row, then its views' rows, ascending.
    let groups: [[Int]]
    /// For each row that is an original, its position in `originals` (-1 for a view).
    let position: [Int]

    /// nil when `source` is not a map of rows to originals (an original is its own source).
    public init?(source: [Int], mode: Mode) {
        guard source.indices.allSatisfy({ source.indices.contains(source[$0]) && source[source[$0]] == source[$0] }) else { return nil }
        self.source = source
        self.mode = mode
        originals = source.indices.filter { source[$0] == $0 }
        var position = [Int](repeating: -1, count: source.count)
        for (index, row) in originals.enumerated() { position[row] = index }
        var groups = originals.map { [$0] }
        for row in source.indices where source[row] != row { groups[position[source[row]]].append(row) }
        self.groups = groups
        self.position = position
    }

    /// Every row of the given originals: themselves and their views (in row order).
    public func rows(of originals: [Int]) -> [Int] { originals.flatMap { groups[position[$0]] }.sorted() }

    /// One epoch's rows (before shuffling) for training originals `trainOriginals`: one view each,
    /// drawn with `generator` (`sample`), or all their rows (`all`). Never a row of another original.
    public func epochRows(_ trainOriginals: [Int], generator: inout SplitMix64) -> [Int] {
        switch mode {
        case .all:
            return trainOriginals.flatMap { groups[position[$0]] }
        case .sample:
            return trainOriginals.map { original in
                let group = groups[position[original]]
                return group[Int(generator.next() % UInt64(group.count))]
            }
        }
    }

    /// Rows trained on per epoch.
    public func epochSize(_ trainOriginals: [Int]) -> Int {
        mode == .sample ? trainOriginals.count : rows(of: trainOriginals).count
    }
}
