import Foundation
import Numerical

/// Where the backbone is read: one or more of ResNet50's block outputs by their Keras names
/// (`conv2_block1_out` ... `conv5_block3_out`), kept in depth order. The features of a cut are the
/// globally average-pooled outputs of its blocks, concatenated in that order.
public struct Cut: Sendable, Equatable, CustomStringConvertible {
    /// Indices into `ResNet50.blockNames`, ascending.
    public let blocks: [Int]

    /// Today's default and the network's end: `conv5_block3_out`.
    public static let last = Cut(checkedBlocks: [ResNet50.blockNames.count - 1])

    init(checkedBlocks: [Int]) { blocks = checkedBlocks }

    /// From names, in any order; each must be a block output of ResNet50, named once.
    public init(_ names: [String]) throws(CutError) {
        guard !names.isEmpty else { throw CutError(message: "name at least one layer, e.g. \(ResNet50.blockNames.last!)") }
        var blocks: [Int] = []
        for name in names {
            guard let index = ResNet50.blockNames.firstIndex(of: name) else {
                throw CutError(message: "\(name) is not a block output of ResNet50; choose from \(Cut.choices)")
            }
            guard !blocks.contains(index) else { throw CutError(message: "\(name) is named twice") }
            blocks.append(index)
        }
        self.blocks = blocks.sorted()
    }

    /// A comma-separated list, as the command line and the pipeline file give it.
    public init(list: String) throws(CutError) {
        try self.init(list.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) })
    }

    public var names: [String] { blocks.map { ResNet50.blockNames[$0] } }
    public var channels: [Int] { blocks.map { ResNet50.blockChannels[$0] } }
    /// The length of the concatenated feature vector.
    public var dimension: Int { channels.reduce(0, +) }
    public var deepest: Int { blocks.last! }
    /// The canonical spelling: names in depth order, comma-separated.
    public var description: String { names.joined(separator: ",") }

    public static var choices: String { "\(ResNet50.blockNames.first!) ... \(ResNet50.blockNames.last!) (convS_blockB_out: S 2-5 with 3, 4, 6, 3 blocks)" }
}

public struct CutError: UserFacingError, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
