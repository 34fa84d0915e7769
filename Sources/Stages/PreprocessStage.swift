import Artifacts
import Backbone
import Dataset
import Foundation
import GRDB
import Head
import Imaging
import Numerics
import PipelineKit
import Report
import WeightsFetch

/// The preprocess stage as a pipeline runs it.
public enum PreprocessStage {
    public static let definition = StageDefinition(
        name: "preprocess",
        parameters: [ParameterSpec("size", .integer(Preprocess.sizes), default: "224")],
        output: "preprocessed.sqlite",
        upstream: "ingest",
        run: { context in
            let report = try Preprocess.run(.init(input: context.input!, output: context.output, size: Int(context.parameters.values["size"]!)!))
            context.log("preprocess: contact sheet \(report.contactSheet.path)")
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images)
        })
}
