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
        parameters: [ParameterSpec("train", .inputFile(required: false)), ParameterSpec("test", .inputFile(required: false)),
                     // A folder of images instead of CSVs: fingerprinted by its listing and contents.
                     ParameterSpec("folder", .inputFile(required: false)),
                     ParameterSpec("test_fraction", .number(0 ... 0.9), default: "0.2",
                                   help: "Folder without train/test folders: the share of each class drawn into the test split.", addedLater: true),
                     ParameterSpec("split_seed", .integer(0 ... Int(Int32.max)), default: "0", help: "Folder: the seed the test split is drawn with.", addedLater: true),
                     ParameterSpec("skip_bad", .choice(["no", "yes"]), default: "no",
                                   help: "Folder: yes ingests the readable images and records the others (table skipped); no refuses the folder, naming every bad file.",
                                   addedLater: true),
                     ParameterSpec("classes", .choice(["sign-mnist", "digits"]), default: "sign-mnist",
                                   help: "The labels' names: sign-mnist (0-24 as A-Y, no J) or digits (0-9); classes_file overrides it.", addedLater: true),
                     ParameterSpec("classes_file", .inputFile(required: false))],
        output: "images.sqlite",
        run: { context in
            let inputs = context.parameters.inputs
            var options: Ingest.Options
            if let folder = inputs["folder"] {
                guard inputs["train"] == nil, inputs["test"] == nil else { throw StageError("ingest: give folder, or train and test CSVs, not both") }
                options = Ingest.Options(splits: [], output: context.output)
                options.folder = folder
                options.folderOptions = ImageFolder.Options(testFraction: try context.parameters.number("test_fraction", default: "0.2"),
                                                            splitSeed: UInt64(try context.parameters.number("split_seed", default: "0")),
                                                            skipBad: try context.parameters.text("skip_bad", default: "no") == "yes")
            } else {
                guard let train = inputs["train"] else { throw StageError("ingest: give train (a CSV) or folder (a folder of images)") }
                var splits: [(name: String, file: URL)] = [("train", train)]
                if let test = inputs["test"] { splits.append(("test", test)) }
                let classes = try inputs["classes_file"].map(ClassNames.load) ?? ClassNames.named(try context.parameters.text("classes", default: "sign-mnist"))
                options = Ingest.Options(splits: splits, output: context.output, classes: classes)
            }
            let report = try Ingest.run(options)
            for split in report.splits { context.log("ingest: \(split.name): \(split.rows) images, \(split.classCounts.count) classes") }
            for warning in report.warnings { context.log("ingest: warning: \(warning)") }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.imageCount)
        })

}
