import ArgumentParser
import Backbone
import Foundation
import PipelineKit

struct ExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Run the preprocessed images through a frozen ResNet50: one 2048-vector per image.",
        discussion: """
            Weights: 'imagenet' (the official Keras file, from ~/.keras/models/ or the cache folder, else \
            downloaded once), a path to a Keras .h5 weights file, or random:SEED (a seeded He-initialised \
            backbone for offline demonstrations; everything downstream says so). An interrupted run \
            resumes from its last finished batch when rerun with the same input, weights and batch size.
            """)

    @Option(help: ArgumentHelp("The preprocess output to read.", valueName: "file"))
    var input: String = "preprocessed.sqlite"

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "features.sqlite"

    @Option(help: ArgumentHelp("imagenet, a Keras .h5 weights file, or random:SEED.", valueName: "weights"))
    var weights: String = "imagenet"

    @Option(help: "Images per forward pass.")
    var batch: Int = 32

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone(ExtractStage.definition, pipeline: pipeline)
        }
        let started = Date()
        let report = try Extract.run(.init(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output),
                                           weights: try WeightsSpec(weights), batch: batch))
        let seconds = Date().timeIntervalSince(started)
        if report.randomWeights {
            FileHandle.standardError.write(Data("warning: features come from a RANDOM backbone (\(report.weightsSource)), not ImageNet weights\n".utf8))
        }
        let computed = report.images - report.resumed
        print(String(format: "wrote %@: %d vectors of 2048 at %dx%d, weights %@, content %@, %.2f s (%.1f images/s)", output, report.images,
                     report.size, report.size, report.weightsSource, String(report.contentSHA256.prefix(12)), seconds, Double(computed) / seconds))
    }
}

do {
    var command = try ExtractCommand.parseAsRoot()
    try command.run()
} catch let error as UserFacingError {
    FileHandle.standardError.write(Data("extract: error: \(error.description)\n".utf8))
    exit(1)
} catch {
    ExtractCommand.exit(withError: error)
}
