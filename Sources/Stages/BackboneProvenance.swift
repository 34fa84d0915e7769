import Backbone
import Foundation
import PipelineKit

/// The backbone a features file's (or a head's) provenance names: its `backbone` row (absent before
/// there was a choice: ResNet50) and its `layers`.
enum BackboneProvenance {
    static func architecture(_ backbone: [String: String], file: String, table: String = "backbone", key: String = "backbone") throws -> Architecture {
        let name = backbone[key].flatMap { $0.isEmpty ? nil : $0 } ?? Backbones.defaultName
        do {
            return try Backbones.named(name)
        } catch {
            throw StageError("\(file): table \(table), \(key): \(error.message)")
        }
    }

    /// The cut `layers` names (heads from before cuts: the backbone's end).
    static func cut(_ layers: String?, of architecture: Architecture, file: String, table: String) throws -> Cut {
        guard let layers, !layers.isEmpty else { return architecture.lastCut }
        do {
            return try Cut(list: layers, of: architecture)
        } catch {
            throw StageError("\(file): table \(table), layers: \(error.message)")
        }
    }
}
