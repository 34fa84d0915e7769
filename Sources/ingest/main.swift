import ArgumentParser
import Dataset
import Foundation
import PipelineKit
import Stages
import ToolSupport

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Read a folder of JPEG/PNG images, or Kaggle-layout image CSVs (Sign Language MNIST, MNIST), into images.sqlite.",
        discussion: """
            --folder DIR reads the layout Keras's image_dataset_from_directory reads: DIR/CLASS/* (one \
            folder per class; a test split of --test-fraction of each class is drawn with --split-seed), \
            or DIR/train/CLASS/* and DIR/test/CLASS/*. Classes are the folder names, sorted; JPEG and PNG \
            files (by extension, any case) are checked and kept as found (JPEG stays JPEG), other files \
            are counted and left out. A file that does not decode, or claims more than 2^26 pixels, is \
            an error naming every such file, with nothing written; --skip-bad ingests the rest and \
            records them (table skipped).

            Each CSV has an optional header 'label,pixel1,...,pixel784' and one image a row: a label \
            and 784 grey levels (28x28). The labels' names are the dataset's vocabulary, stored with \
            the images: --classes sign-mnist (0-24 as A-Y, not 9), digits (0-9), or a file of names. \
            Errors are printed as FILE:LINE:COLUMN; on any error nothing is written and an earlier \
            output stays as it was.
            """)

    @Option(help: ArgumentHelp("The training split's CSV.", valueName: "file"))
    var train: String?

    @Option(help: ArgumentHelp("The test split's CSV.", valueName: "file"))
    var test: String?

    @Option(name: .customLong("split"), help: ArgumentHelp("Another split, as NAME=FILE (repeatable).", valueName: "name=file"))
    var extraSplits: [String] = []

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "images.sqlite"

    @Option(help: ArgumentHelp("A folder of images, one subfolder per class (instead of CSVs).", valueName: "dir"))
    var folder: String?

    @Option(help: ArgumentHelp("With --folder and no train/test folders: the share of each class drawn into the test split (0 to 0.9).", valueName: "f"))
    var testFraction: Double = 0.2

    @Option(help: ArgumentHelp("With --folder: the seed the test split is drawn with.", valueName: "n"))
    var splitSeed: UInt64 = 0

    @Flag(help: "With --folder: ingest the readable images and record the others, instead of refusing the folder.")
    var skipBad = false

    @Option(help: ArgumentHelp("The labels' names: sign-mnist, digits, or a file with one name a line (line 1 names label 0).", valueName: "sign-mnist|digits|file"))
    var classes: String = "sign-mnist"

    @Option(help: "How many input errors to report before stopping.")
    var maxErrors: Int = 20

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    func run() throws {
        if let pipeline {
            return try PipelineRunner.runAlone("ingest", of: PipelineStages.all, pipeline: pipeline)
        }
        var splits: [(name: String, file: URL)] = []
        if let train { splits.append(("train", URL(fileURLWithPath: train))) }
        if let test { splits.append(("test", URL(fileURLWithPath: test))) }
        for entry in extraSplits {
            guard let equals = entry.firstIndex(of: "=") else {
                throw ValidationError("--split expects NAME=FILE, found '\(entry)'")
            }
            splits.append((String(entry[..<equals]), URL(fileURLWithPath: String(entry[entry.index(after: equals)...]))))
        }
        let started = Date()
        var options = Ingest.Options(splits: splits, output: URL(fileURLWithPath: output), maxErrors: maxErrors)
        if let folder {
            options.folder = URL(fileURLWithPath: folder)
            options.folderOptions = ImageFolder.Options(testFraction: testFraction, splitSeed: splitSeed, skipBad: skipBad)
        } else {
            options.classes = try ClassNames.named(classes)
        }
        let report = try Ingest.run(options)
        let names = report.classes
        for split in report.splits {
            print("\(split.name): \(split.rows) images from \(split.path)" + (split.sha256.isEmpty ? "" : " (sha256 \(split.sha256.prefix(12)))"))
            let counts = split.classCounts.keys.sorted().map { "\(names.name($0)) \(split.classCounts[$0]!)" }
            print("  \(split.classCounts.count) classes: " + counts.joined(separator: "  "))
        }
        for warning in report.warnings { printError("warning: \(warning)") }
        let seconds = String(format: "%.2f", Date().timeIntervalSince(started))
        print("wrote \(output): \(report.imageCount) images, content \(report.contentSHA256.prefix(12)), \(seconds) s")
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

IngestCommand.runAsTool()
