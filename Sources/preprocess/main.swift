import ArgumentParser
import Foundation
import PipelineKit
import Stages
import ToolSupport

struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Resize the ingested images (Sign MNIST's 28x28 grey, or photos from a folder) to SxS RGB, as PNGs in SQLite.",
        usage: "preprocess [--input <file>] [--output <file>] [--size <size>] [--export <dir> [--limit <n>] [--originals]] | preprocess --pipeline <file>",
        discussion: """
            Photos are decoded as TensorFlow's decode_image does (JPEG and PNG), grey replicated to \
            RGB. Bilinear resizing with tf.image.resize's semantics (half-pixel centres, no \
            antialiasing), rounded half to even. Augmented views are warped on the original (grey or \
            colour, before the resize). Also writes contact-sheet.png beside the output: one row per \
            class (with --augment, a training image of each class beside its views).

            """ + ParameterSpec.optionsHelp(PreprocessStage.parameters, title: "PARAMETERS (also the keys of a pipeline file's preprocess stage):"))

    @Option(help: ArgumentHelp("The ingest output to read.", valueName: "file"))
    var input: String = "images.sqlite"

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "preprocessed.sqlite"

    // --size is PreprocessStage.parameters, declared once for this command line, the pipeline file and
    // the fingerprint, and checked by the same rule.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var parameters: [String] = []

    @Option(help: ArgumentHelp("Also write each image as DIR/SPLIT-ID-CLASS.png.", valueName: "dir"))
    var export: String?

    @Option(help: "With --export, write at most this many files.")
    var limit: Int?

    @Flag(help: "With --export, write the originals instead of the resized images (Sign MNIST's 28x28 grey as PNG; a photo's file as ingested).")
    var originals = false

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone("preprocess", of: PipelineStages.all, pipeline: pipeline)
        }
        // The size is checked by the same rule as the pipeline file's.
        let params = try PreprocessStage.Params(try StageParameters.fromArguments(parameters, specs: PreprocessStage.parameters))
        let size = params.size
        let started = Date()
        let report = try Preprocess.run(params.options(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output),
                                                       export: export.map { URL(fileURLWithPath: $0) }, exportLimit: limit, exportOriginals: originals))
        let seconds = Date().timeIntervalSince(started)
        print(String(format: "wrote %@: %d images at %dx%d, %.1f MB, content %@, %.2f s (%.0f images/s)", output, report.images, size, size,
                     Double(report.outputBytes) / 1e6, String(report.contentSHA256.prefix(12)), seconds, Double(report.images) / seconds))
        if report.views > 0 { print("\(report.views) of the rows are augmented views of the training images (\(params.views) each)") }
        print("contact sheet: \(report.contactSheet.path)")
        if let export { print("exported \(report.exported) PNG files to \(export)") }
    }
}

PreprocessCommand.runAsTool()
