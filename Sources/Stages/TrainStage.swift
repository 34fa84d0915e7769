import Artifacts
import Backbone
import Dataset
import Foundation
import GRDB
import Head
import Imaging
import Numerical
import PipelineKit
import Report
import WeightsFetch

/// The train stage: its parameters, declared once (names, types, limits, defaults) for the pipeline
/// file, the `train` command line and the fingerprint; the one conversion to `TrainingOptions`; and
/// the stage as a pipeline runs it.
public enum TrainStage {
    public static let parameters: [ParameterSpec] = [
        ParameterSpec("hidden", .integerList, default: "256"), ParameterSpec("dropout", .number(0 ... 0.99), default: "0.5"),
        ParameterSpec("epochs", .integer(1 ... 100_000), default: "30"), ParameterSpec("batch", .integer(1 ... 1 << 20), default: "64"),
        ParameterSpec("learning_rate", .number(1e-9 ... 10), default: "0.001"),
        ParameterSpec("schedule", .choice(LearningRateSchedule.allCases.map(\.rawValue)), default: LearningRateSchedule.cosine.rawValue),
        ParameterSpec("weight_decay", .number(0 ... 1), default: "0.0"),
        ParameterSpec("standardize", .choice(StandardizeMode.allCases.map(\.rawValue)), default: StandardizeMode.zscore.rawValue),
        ParameterSpec("validation", .number(0 ... 0.9), default: "0.1"), ParameterSpec("patience", .integer(0 ... 100_000), default: "5"),
        ParameterSpec("seed", .integer(0 ... Int.max), default: "0"),
    ]

    /// The spec of parameter `name`, for help texts.
    public static func spec(_ name: String) -> ParameterSpec { parameters.first { $0.name == name }! }

    /// Checked parameters (`StageParameters` from a pipeline file or a command line) as training options.
    public static func options(_ parameters: StageParameters) -> TrainingOptions {
        let values = parameters.values
        var options = TrainingOptions()
        options.hidden = values["hidden"]!.split(separator: ",").map { Int($0)! }
        options.dropout = Float(values["dropout"]!)!
        options.epochs = Int(values["epochs"]!)!
        options.batch = Int(values["batch"]!)!
        options.learningRate = Float(values["learning_rate"]!)!
        options.schedule = LearningRateSchedule(rawValue: values["schedule"]!)!
        options.weightDecay = Float(values["weight_decay"]!)!
        options.standardize = StandardizeMode(rawValue: values["standardize"]!)!
        options.validation = Double(values["validation"]!)!
        options.patience = Int(values["patience"]!)!
        options.seed = UInt64(values["seed"]!)!
        return options
    }

    public static let definition = StageDefinition(
        name: "train",
        // 2: standardized inputs, cosine decay, the standardization table.
        version: 2,
        parameters: parameters,
        output: "head.sqlite",
        sideOutputs: ["metrics.json", "report.html"],
        reads: ["features.sqlite"],
        run: { context in
            let report = try Train.run(.init(input: context.input!, output: context.output, training: options(context.parameters),
                                             log: { context.log("train: " + $0) }))
            context.log("train: report \(report.reportURL.path)")
            var notes = ["report": report.reportURL.path]
            if let evaluation = report.evaluation { notes["accuracy"] = String(evaluation.accuracy) }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.classes.count, notes: notes)
        })
}
