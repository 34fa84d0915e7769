import PipelineKit

/// Every stage this tool has, as a pipeline file names them; the runner orders them by what each
/// reads and writes.
public enum PipelineStages {
    public static let all = [IngestStage.definition, PreprocessStage.definition, ExtractStage.definition, TrainStage.definition]
    public static var names: [String] { all.map(\.name) }
}
