import Foundation
import PipelineKit

/// The ingest stage as a pipeline runs it: `train` and `test` CSVs (paths relative to the pipeline
/// file) in, `images.sqlite` out.
public enum IngestStage {
    public static let definition = StageDefinition(
        name: "ingest",
        version: 1,
        parameters: [ParameterSpec("train", .inputFile(required: true)), ParameterSpec("test", .inputFile(required: false))],
        output: "images.sqlite",
        run: { context in
            var splits: [(name: String, file: URL)] = [("train", context.parameters.inputs["train"]!)]
            if let test = context.parameters.inputs["test"] { splits.append(("test", test)) }
            let report = try Ingest.run(.init(splits: splits, output: context.output))
            for split in report.splits { context.log("ingest: \(split.name): \(split.rows) images, \(split.classCounts.count) classes") }
            for warning in report.warnings { context.log("ingest: warning: \(warning)") }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.imageCount)
        })
}
