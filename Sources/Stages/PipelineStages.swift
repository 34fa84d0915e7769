import Foundation
import PipelineKit

/// Every stage this tool has, as a pipeline file names them; the runner orders them by what each
/// reads and writes.
public enum PipelineStages {
    public static let all = [IngestStage.definition, PreprocessStage.definition, ExtractStage.definition, TrainStage.definition]
    public static var names: [String] { all.map(\.name) }

    /// The head a pipeline's last train run wrote, as its manifest records it.
    public static func trainedHead(pipeline: String) throws -> URL {
        let file = try PipelineFile(URL(fileURLWithPath: pipeline), knownStages: names)
        let manifest = try Manifest.load(file.artifacts.appendingPathComponent("manifest.json"), pipeline: file.name)
        guard let record = manifest.stages[TrainStage.definition.name], FileManager.default.fileExists(atPath: record.output.path) else {
            throw StageError("\(file.url.path): the pipeline has no trained head yet: run `pipeline run \(pipeline)` first")
        }
        return URL(fileURLWithPath: record.output.path)
    }
}
