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
        ParameterSpec("layers", .choiceList(Backbones.allNodeNames, count: 0 ... Backbones.allNodeNames.count, summary: Backbones.nodeSummary), default: "",
                      help: "The block outputs whose pooled vectors the head is trained on, concatenated (each dimension standardized); extract must have stored them (its --layers). Empty: the backbone's end."),
        ParameterSpec("fine_tune", .choice(["none"] + Backbones.all.compactMap(\.fineTunable?.name)), default: "none",
                      help: "none trains the head alone on frozen features; conv5 (resnet50) then trains conv5's three blocks with it (Keras's recipe: the head first, then both at a low rate), on the conv4_block6_out maps extract kept (--keep conv4_block6_out), BatchNorm frozen."),
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

    /// The stage's checked parameters, typed: built once from canonical values (a pipeline file's, a
    /// command line's, or code's through the same specs), the one way to `Train.Options`; the head's
    /// provenance is written from `values`.
    public struct Params: Sendable {
        /// The canonical values they were built from.
        public let values: [String: String]
        public var training: TrainingOptions
        /// The layers' names, in any order; empty: the backbone's end.
        public var layers: [String]
        /// nil: the head alone on frozen features.
        public var fineTune: Train.FineTuning?
        public var views: Views.Mode

        public init(_ parameters: StageParameters) throws {
            values = parameters.values
            var training = TrainingOptions()
            training.hidden = try parameters.integers("hidden")
            training.dropout = Float(try parameters.number("dropout"))
            training.epochs = try parameters.integer("epochs")
            training.batch = try parameters.integer("batch")
            training.learningRate = Float(try parameters.number("learning_rate"))
            training.schedule = try parameters.choice("schedule", as: LearningRateSchedule.self)
            training.weightDecay = Float(try parameters.number("weight_decay"))
            training.standardize = try parameters.choice("standardize", as: StandardizeMode.self)
            training.validation = try parameters.number("validation")
            training.patience = try parameters.integer("patience")
            training.seed = UInt64(try parameters.integer("seed"))
            self.training = training
            let layers = try parameters.text("layers", default: "")
            self.layers = layers.isEmpty ? [] : layers.split(separator: ",").map(String.init)
            if try parameters.text("fine_tune") == "none" {
                fineTune = nil
            } else {
                fineTune = Train.FineTuning(part: try parameters.text("fine_tune"), epochs: try parameters.integer("fine_tune_epochs"),
                                            learningRate: Float(try parameters.number("fine_tune_learning_rate")),
                                            precision: try parameters.choice("fine_tune_precision", as: FineTunePrecision.self, default: "fp32"))
            }
            views = try parameters.choice("views", as: Views.Mode.self, default: Views.Mode.sample.rawValue)
        }

        /// From values by key, as code gives them (`["epochs": "5"]`), through the same specs and
        /// checks as a pipeline file or a command line; the rest at their defaults.
        public init(_ given: [String: String] = [:]) throws {
            let parameters = try StageParameters.fromCommandLine(given, specs: TrainStage.parameters)
            if let problem = TrainStage.definition.check(parameters) { throw StageError(problem) }
            try self.init(parameters)
        }
    }

    public static let definition = StageDefinition(
        name: "train",
        // 2: standardized inputs, cosine decay, the standardization table. 3: trained on a cut
        // (layers), fine-tuning, the backbone_weights table. 4: class names in head.sqlite (its schema 4),
        // params as the canonical values.
        version: 4,
        parameters: parameters,
        output: "head.sqlite",
        sideOutputs: [Train.metricsName, Train.reportName],
        reads: ["features.sqlite"],
        check: { parameters in
            // The head's own size, before the data is known (rows decide the rest, at run time), on
            // the narrowest features any backbone with these layers gives: refused only if too big
            // for every backbone (run time checks the real width).
            let params: Params
            do { params = try Params(parameters) } catch { return error.userMessage }
            let dimensions = Backbones.all.compactMap { architecture in
                params.layers.isEmpty ? architecture.lastCut.dimension : (try? Cut(params.layers, of: architecture))?.dimension
            }
            guard let dimension = dimensions.min() else {
                return "layers: \(params.layers.joined(separator: ",")) are not the block outputs of any one backbone"
            }
            return params.training.memoryProblem(dimension: dimension, classes: 2, batchRows: 0)
                .map { "\($0) (counted on \(dimension) inputs, the fewest any backbone's features have)" }
        },
        run: { context in
            let report = try Train.run(.init(input: context.input!, output: context.output, params: try Params(context.parameters),
                                             log: { context.log("train: " + $0) }))
            context.log("train: report \(report.reportURL.path)")
            var notes = ["report": report.reportURL.path]
            if let evaluation = report.evaluation { notes["accuracy"] = String(evaluation.accuracy) }
            return StageOutcome(contentSHA256: report.contentSHA256, rows: report.classes.count, notes: notes)
        })
}
