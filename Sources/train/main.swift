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
        usage: "train [--input <file>] [--output <file>] [--images <file>] [TRAINING PARAMETERS] | train --pipeline <file>",
        discussion: """
            Writes head.sqlite, and metrics.json and report.html beside it. The head: the hidden layers \
            given (ReLU, then dropout), a softmax output, cross-entropy, Adam with Keras's defaults, \
            early stopping on the validation loss with the best epoch's weights restored.

            Three recipes: the head on the backbone's end (the default); on a cut, `--layers \
            conv4_block6_out` (any block outputs extract stored, concatenated); or conv5 fine-tuned with \
            the head, `--fine-tune conv5`, on the conv4_block6_out maps `extract --keep conv4_block6_out` \
            stored (BatchNorm frozen, conv5 on its own Adam at --fine-tune-learning-rate; the trained conv5 \
            is stored in head.sqlite and predict runs it).

            """ + ParameterSpec.optionsHelp(TrainStage.parameters, title: "TRAINING PARAMETERS (a pipeline file's train keys, with _ for -):"))

    @Option(help: ArgumentHelp("The extract output to read.", valueName: "file"))
    var input: String = "features.sqlite"

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "head.sqlite"

    // The training parameters are TrainStage.parameters, declared once for this command line, the
    // pipeline file and the fingerprint: their help is in the discussion, their values parsed and
    // checked by the same rules as the file's.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var parameters: [String] = []

    @Option(help: ArgumentHelp("The preprocess output whose images the report shows (default: preprocessed.sqlite beside the input).", valueName: "file"))
    var images: String?

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone("train", of: PipelineStages.all, pipeline: pipeline)
        }
        let parameters = try StageParameters.fromArguments(self.parameters, specs: TrainStage.parameters)
        if let problem = TrainStage.definition.check(parameters) { throw StageError(problem) }
        let report = try Train.run(.init(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output), params: try TrainStage.Params(parameters),
                                         images: images.map { URL(fileURLWithPath: $0) }, log: { print($0) }))
        print("wrote \(output), \(report.metricsURL.path), \(report.reportURL.path)")
    }
}

TrainCommand.runAsTool()
