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

    @Option(help: ArgumentHelp("Hidden layer sizes, comma-separated; empty for softmax regression.", valueName: "sizes"))
    var hidden: String = "256"

    @Option(help: "Dropout rate after each hidden layer.")
    var dropout: Float = 0.5

    @Option(help: "The most epochs to train.")
    var epochs: Int = 30

    @Option(help: "Images per mini-batch.")
    var batch: Int = 64

    @Option(help: "Adam's learning rate.")
    var learningRate: Float = 0.001

    @Option(help: "Fraction of each class's training images held out for validation.")
    var validation: Double = 0.1

    @Option(help: "Epochs without a better validation loss before stopping; 0 never stops early.")
    var patience: Int = 5

    @Option(help: "Seed for the initial weights, the validation split, shuffling and dropout.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Input scaling: zscore (each dimension minus its training mean, divided by its training standard deviation; stored with the head and applied by predict) or none (the raw vectors).", valueName: "none|zscore"))
    var standardize: String = StandardizeMode.zscore.rawValue

    @Option(help: ArgumentHelp("The learning rate over the run: cosine (decays to zero over all the epochs' steps) or constant.", valueName: "cosine|constant"))
    var schedule: String = LearningRateSchedule.cosine.rawValue

    @Option(help: "L2 penalty on the weights, as Keras's kernel_regularizer=l2(...); 0 for none.")
    var weightDecay: Float = 0

    @Option(help: ArgumentHelp("The preprocess output whose images the report shows (default: preprocessed.sqlite beside the input).", valueName: "file"))
    var images: String?

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone("train", of: PipelineStages.all, pipeline: pipeline)
        }
        var options = TrainingOptions()
        options.hidden = try hidden.split(separator: ",", omittingEmptySubsequences: true).map {
            guard let size = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--hidden: '\($0)' is not a whole number") }
            return size
        }
        options.dropout = dropout
        options.epochs = epochs
        options.batch = batch
        options.learningRate = learningRate
        options.validation = validation
        options.patience = patience
        options.seed = seed
        guard let mode = StandardizeMode(rawValue: standardize) else {
            throw ValidationError("--standardize: none or zscore, not '\(standardize)'")
        }
        options.standardize = mode
        guard let rate = LearningRateSchedule(rawValue: schedule) else {
            throw ValidationError("--schedule: cosine or constant, not '\(schedule)'")
        }
        options.schedule = rate
        options.weightDecay = weightDecay
        let report = try Train.run(.init(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output), training: options,
                                         images: images.map { URL(fileURLWithPath: $0) }, log: { print($0) }))
        print("wrote \(output), \(report.metricsURL.path), \(report.reportURL.path)")
    }
}

TrainCommand.runAsTool()
