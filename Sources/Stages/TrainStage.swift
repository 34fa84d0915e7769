import Backbone
import FineTune
import Foundation
import Head
import PipelineKit

/// The train stage: its parameters, declared once (names, types, limits, defaults) for the pipeline
/// file, the `train` command line and the fingerprint; the one conversion to `TrainingOptions`; and
/// the stage as a pipeline runs it.
public enum TrainStage {
    public static let parameters: [ParameterSpec] = [
        // A layer of 65,536 units on 2048 inputs is already 512 MB of weights, and as much again for Adam.
        ParameterSpec("hidden", .integerList(1 ... 65_536), default: "256",
                      help: "Hidden layer sizes, comma-separated, each 1 to 65536; empty for softmax regression.", value: "sizes"),
        ParameterSpec("dropout", .number(0 ... 0.99), default: "0.5", help: "Dropout rate after each hidden layer, 0 to 0.99."),
        ParameterSpec("epochs", .integer(1 ... 100_000), default: "30", help: "The most epochs to train."),
        ParameterSpec("batch", .integer(1 ... 1 << 20), default: "64", help: "Images per mini-batch."),
        ParameterSpec("learning_rate", .number(1e-9 ... 10), default: "0.001", help: "Adam's learning rate (at the start, with the cosine schedule)."),
        ParameterSpec("schedule", .choice(LearningRateSchedule.allCases.map(\.rawValue)), default: LearningRateSchedule.cosine.rawValue,
                      help: "The learning rate over the run: cosine (decays to zero over all the epochs' steps) or constant."),
        ParameterSpec("weight_decay", .number(0 ... 1), default: "0.0", help: "L2 penalty on the weights, as Keras's kernel_regularizer=l2(...); 0 for none."),
        ParameterSpec("standardize", .choice(StandardizeMode.allCases.map(\.rawValue)), default: StandardizeMode.zscore.rawValue,
                      help: "Input scaling: zscore (each dimension minus its training mean, divided by its training standard deviation; stored with the head and applied by predict) or none (the raw vectors)."),
        ParameterSpec("validation", .number(0 ... 0.9), default: "0.1", help: "Fraction of each class's training images held out for validation."),
        ParameterSpec("patience", .integer(0 ... 100_000), default: "5", help: "Epochs without a better validation loss before stopping; 0 never stops early."),
        ParameterSpec("seed", .integer(0 ... Int.max), default: "0", help: "Seed for the initial weights, the validation split, shuffling and dropout."),
        ParameterSpec("layers", .choiceList(ResNet50.blockNames, count: 1 ... ResNet50.blockNames.count), default: Cut.last.description,
                      help: "The block outputs whose pooled vectors the head is trained on, concatenated (each dimension standardized); extract must have stored them (its --layers)."),
        ParameterSpec("fine_tune", .choice(["none", TopStage.name]), default: "none",
                      help: "none trains the head alone on frozen features; conv5 then trains conv5's three blocks with it (Keras's recipe: the head first, then both at a low rate), on the conv4_block6_out maps extract kept (--keep conv4_block6_out), BatchNorm frozen."),
        ParameterSpec("fine_tune_epochs", .integer(1 ... 100_000), default: "10",
                      help: "With --fine-tune: the most epochs of the second phase, conv5 and the head together (the first trains the head alone, as without it)."),
        // Keras's fine-tuning guide's rate: at 1e-4 the first fine-tuning epoch undid the frozen head's
        // fit (training loss 0.05 -> 2.7, measured), at 1e-5 less so, at 1e-6 it improved on it.
        ParameterSpec("fine_tune_learning_rate", .number(1e-9 ... 1), default: "1e-05",
                      help: "With --fine-tune: Adam's learning rate in the second phase, for conv5 and the head alike; the same schedule."),
        ParameterSpec("fine_tune_precision", .choice(FineTunePrecision.allCases.map(\.rawValue)), default: FineTunePrecision.fp32.rawValue,
                      help: "With --fine-tune: bf16 multiplies bf16-rounded values in the second phase's products (forward and backward; sums, weights, Adam and evaluation stay float; AVX512_BF16 only). fp32 matches Keras's step.",
                      addedLater: true),
        ParameterSpec("views", .choice(Views.Mode.allCases.map(\.rawValue)), default: Views.Mode.sample.rawValue,
                      help: "With augmented views (preprocess --augment): sample trains each epoch on one view of each training image, drawn anew (the original among them); all on every view. Validation uses originals only.", addedLater: true),
    ]

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

    /// The layers checked parameters name.
    public static func cut(_ parameters: StageParameters) throws -> Cut {
        try Cut(list: parameters.values["layers"] ?? Cut.last.description)
    }

    /// How augmented views are used.
    public static func views(_ parameters: StageParameters) -> Views.Mode {
        Views.Mode(rawValue: parameters.values["views"] ?? "") ?? .sample
    }

    /// Whether checked parameters ask for fine-tuning, and how.
    public static func fineTune(_ parameters: StageParameters) -> Train.FineTuning? {
        guard parameters.values["fine_tune"] == TopStage.name else { return nil }
        return Train.FineTuning(epochs: Int(parameters.values["fine_tune_epochs"] ?? "10") ?? 10,
                                learningRate: Float(parameters.values["fine_tune_learning_rate"] ?? "1e-05") ?? 1e-5,
                                precision: FineTunePrecision(rawValue: parameters.values["fine_tune_precision"] ?? "") ?? .fp32)
    }

    public static let definition = StageDefinition(
        name: "train",
        // 2: standardized inputs, cosine decay, the standardization table. 3: trained on a cut
        // (layers), fine-tuning, the backbone_weights table.
        version: 3,
        parameters: parameters,
        output: "head.sqlite",
        sideOutputs: [Train.metricsName, Train.reportName],
        reads: ["features.sqlite"],
        check: { parameters in
            // The head's own size, before the data is known (rows decide the rest, at run time).
            guard let cut = try? cut(parameters) else { return nil }
            let options = options(parameters)
            return options.memoryProblem(dimension: cut.dimension, classes: 2, batchRows: 0)
        },
        run: { context in
            let report = try Train.run(.init(input: context.input!, output: context.output, training: options(context.parameters),
                                             cut: try cut(context.parameters), fineTune: fineTune(context.parameters), views: views(context.parameters),
                                             log: { context.log("train: " + $0) }))
            context.log("train: report \(report.reportURL.path)")
            var notes = ["report": report.reportURL.path]
            if let evaluation = report.evaluation { notes["accuracy"] = String(evaluation.accuracy) }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.classes.count, notes: notes)
        })
}
