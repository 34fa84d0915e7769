import Foundation
import PipelineKit

/// The preprocess stage as a pipeline runs it.
public enum PreprocessStage {
    /// Declared once for the pipeline file, the `preprocess` command line and the fingerprint.
    public static let parameters = [ParameterSpec("size", .integer(Preprocess.sizes), default: "224",
                                                  help: "The side of the square output images, \(Preprocess.sizes.lowerBound) to \(Preprocess.sizes.upperBound).")]

    public static let definition = StageDefinition(
        name: "preprocess",
        version: 1,
        parameters: parameters,
        output: "preprocessed.sqlite",
        sideOutputs: [Preprocess.contactSheetName],
        reads: ["images.sqlite"],
        run: { context in
            let report = try Preprocess.run(.init(input: context.input!, output: context.output, size: Int(context.parameters.values["size"]!)!))
            context.log("preprocess: contact sheet \(report.contactSheet.path)")
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images)
        })
}
