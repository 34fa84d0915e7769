import Dataset
import Foundation
import PipelineKit

/// The ingest stage as a pipeline runs it: `train` and `test` CSVs (paths relative to the pipeline
/// file) in, `images.sqlite` out.
public enum IngestStage {
    public static let definition = StageDefinition(
        name: "ingest",
        // 2: the classes table and each image's geometry in images.sqlite.
        version: 2,
        parameters: [ParameterSpec("train", .inputFile(required: true)), ParameterSpec("test", .inputFile(required: false)),
                     ParameterSpec("classes", .choice(["sign-mnist", "digits"]), default: "sign-mnist",
                                   help: "The labels' names: sign-mnist (0-24 as A-Y, no J) or digits (0-9); classes_file overrides it.", addedLater: true),
                     ParameterSpec("classes_file", .inputFile(required: false))],
        output: "images.sqlite",
        run: { context in
            guard let train = context.parameters.inputs["train"] else { throw StageError("ingest: no train file given") }
            var splits: [(name: String, file: URL)] = [("train", train)]
            if let test = context.parameters.inputs["test"] { splits.append(("test", test)) }
            let classes = try context.parameters.inputs["classes_file"].map(ClassNames.load)
                ?? ClassNames.named(try context.parameters.text("classes", default: "sign-mnist"))
            let report = try Ingest.run(.init(splits: splits, output: context.output, classes: classes))
            for split in report.splits { context.log("ingest: \(split.name): \(split.rows) images, \(split.classCounts.count) classes") }
            for warning in report.warnings { context.log("ingest: warning: \(warning)") }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.imageCount)
        })

}
