import ArgumentParser
import Backbone
import Foundation
import Head
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a dense head on cached features, evaluate it on the test split, write a report.",
        discussion: """
            Writes head.sqlite, and metrics.json and report.html beside it. The head: the hidden layers \
            given (ReLU, then dropout), a softmax output, cross-entropy, Adam with Keras's defaults, \
            early stopping on the validation loss with the best epoch's weights restored.
            """)

    @Option(help: ArgumentHelp("The extract output to read.", valueName: "file"))
    var input: String = "features.sqlite"

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "head.sqlite"

    // The training parameters: their names, limits and defaults are TrainStage.parameters, shared
    // with the pipeline file; given ones are checked there, absent ones take the default.
    @Option(help: help("hidden", "Hidden layer sizes, comma-separated; empty for softmax regression.", value: "sizes"))
    var hidden: String?

    @Option(help: help("dropout", "Dropout rate after each hidden layer."))
    var dropout: String?

    @Option(help: help("epochs", "The most epochs to train."))
    var epochs: String?

    @Option(help: help("batch", "Images per mini-batch."))
    var batch: String?

    @Option(help: help("learning_rate", "Adam's learning rate (at the start, with the cosine schedule)."))
    var learningRate: String?

    @Option(help: help("schedule", "The learning rate over the run: cosine (decays to zero over all the epochs' steps) or constant.", value: "cosine|constant"))
    var schedule: String?

    @Option(help: help("weight_decay", "L2 penalty on the weights, as Keras's kernel_regularizer=l2(...); 0 for none."))
    var weightDecay: String?

    @Option(help: help("standardize", "Input scaling: zscore (each dimension minus its training mean, divided by its training standard deviation; stored with the head and applied by predict) or none (the raw vectors).", value: "zscore|none"))
    var standardize: String?

    @Option(help: help("validation", "Fraction of each class's training images held out for validation."))
    var validation: String?

    @Option(help: help("patience", "Epochs without a better validation loss before stopping; 0 never stops early."))
    var patience: String?

    @Option(help: help("seed", "Seed for the initial weights, the validation split, shuffling and dropout."))
    var seed: String?

    @Option(help: ArgumentHelp("The preprocess output whose images the report shows (default: preprocessed.sqlite beside the input).", valueName: "file"))
    var images: String?

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone("train", of: PipelineStages.all, pipeline: pipeline)
        }
        let given: [String: String?] = ["hidden": hidden, "dropout": dropout, "epochs": epochs, "batch": batch, "learning_rate": learningRate,
                                        "schedule": schedule, "weight_decay": weightDecay, "standardize": standardize,
                                        "validation": validation, "patience": patience, "seed": seed]
        let parameters = try StageParameters.fromCommandLine(given.compactMapValues { $0 }, specs: TrainStage.parameters)
        let options = TrainStage.options(parameters)
        let report = try Train.run(.init(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output), training: options,
                                         images: images.map { URL(fileURLWithPath: $0) }, log: { print($0) }))
        print("wrote \(output), \(report.metricsURL.path), \(report.reportURL.path)")
    }
}

/// An option's help with its default, from the stage's one declaration.
func help(_ name: String, _ text: String, value: String? = nil) -> ArgumentHelp {
    ArgumentHelp("\(text) (default: \(TrainStage.spec(name).defaultValue.map { $0.isEmpty ? "none" : $0 } ?? "none"))", valueName: value)
}

TrainCommand.runAsTool()
