import Foundation
import Numerical

/// Where a backbone is read: one or more of its named outputs (Keras's layer names, e.g. ResNet50's
/// `conv2_block1_out` ... `conv5_block3_out`), kept in depth order. The features of a cut are the
/// globally average-pooled outputs of its nodes, concatenated in that order.
public struct Cut: Sendable, Equatable, CustomStringConvertible {
    public let architecture: Architecture
    /// Indices into `architecture.nodes`, ascending.
    public let blocks: [Int]

    init(architecture: Architecture, checkedBlocks: [Int]) {
        self.architecture = architecture
        blocks = checkedBlocks
    }

    /// From names, in any order; each must be an output of the backbone, named once.
    public init(_ names: [String], of architecture: Architecture) throws(CutError) {
        guard !names.isEmpty else { throw CutError(message: "name at least one layer, e.g. \(architecture.nodeNames.last!)") }
        var blocks: [Int] = []
        for name in names {
            guard let index = architecture.nodeIndex(name) else {
                throw CutError(message: "\(name) is not a block output of \(architecture.name); choose from \(Cut.choices(architecture))")
            }
            guard !blocks.contains(index) else { throw CutError(message: "\(name) is named twice") }
            blocks.append(index)
        }
        self.architecture = architecture
        self.blocks = blocks.sorted()
    }

    /// A comma-separated list, as the command line and the pipeline file give it.
    public init(list: String, of architecture: Architecture) throws(CutError) {
        try self.init(list.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) },
                      of: architecture)
    }

    public var names: [String] { blocks.map { architecture.nodes[$0].name } }
    public var channels: [Int] { blocks.map { architecture.nodes[$0].channels } }
    /// The length of the concatenated feature vector.
    public var dimension: Int { channels.reduce(0, +) }
    public var deepest: Int { blocks.last! }
    /// The canonical spelling: names in depth order, comma-separated.
    public var description: String { names.joined(separator: ",") }

    public static func == (a: Cut, b: Cut) -> Bool { a.architecture.name == b.architecture.name && a.blocks == b.blocks }

    /// The names a cut of `architecture` may take, shortly.
    public static func choices(_ architecture: Architecture) -> String {
        "\(architecture.nodeNames.first!) ... \(architecture.nodeNames.last!)"
    }
}

public struct CutError: UserFacingError, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
