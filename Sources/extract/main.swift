import ArgumentParser
import Backbone
import Foundation
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

struct ExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Run the preprocessed images through a frozen ImageNet backbone: a pooled vector per image and layer cut at.",
        discussion: """
            `extract [run] --input preprocessed.sqlite --output features.sqlite --weights imagenet|PATH|random:SEED \
            [--batch 32] [--layers conv4_block6_out,conv5_block3_out] [--keep conv4_block6_out] [--shard K/N] [--pipeline FILE]` extracts (`extract run --help` explains every option); \
            `extract merge --shards N` combines shard files.
            """,
        subcommands: [Run.self, Merge.self],
        defaultSubcommand: Run.self)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract features (the default command).",
        usage: "extract [run] [--input <file>] [--output <file>] [--weights <weights>] [--batch <batch>] [--layers <layers>] [--keep <layer>] [--shard <K/N>] [--shards <N>] | extract --pipeline <file>",
        discussion: """
            Weights: 'imagenet' (the official Keras file, from ~/.keras/models/ or the cache folder, else \
            downloaded once), a path to a Keras .h5 weights file, or random:SEED (a seeded He-initialised \
            backbone for offline demonstrations; everything downstream says so). An interrupted run \
            resumes from its last finished batch when rerun with the same input, weights and batch size.

            Cutting: --layers names block outputs (conv2_block1_out ... conv5_block3_out, Keras's names); \
            features.sqlite gets one row per image and layer, the layer's channels globally averaged \
            (256, 512, 1024 or 2048 values), and the network runs no further than the deepest. `train \
            --layers` picks which to train on. --keep conv4_block6_out also stores that layer's whole maps \
            (float16), which `train --fine-tune conv5` trains conv5 on.

            Sharding: --shard K/N processes the batches b with b % N == K and writes \
            OUTPUT-stem.shard-K-of-N.sqlite; `extract merge` combines the shards. Without --shard, a Slurm \
            array task takes SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, and a Kubernetes Indexed Job \
            task JOB_COMPLETION_INDEX with --shards N, so one command line serves every task.

            The GEMM: our AVX-512 kernel, or its AVX2 twin on x86-64 CPUs without AVX-512 (the same \
            bits: features do not depend on the batch, the shards or which of the two ran), else \
            OpenBLAS (last bits its own). SIGNTRANSFER_GEMM=avx512|avx2|blas picks one this CPU runs; \
            the features' backbone table records it (gemm). Shards merge only when their kernels give \
            the same bits.

            """ + ParameterSpec.optionsHelp(ExtractStage.commandLineParameters, title: "PARAMETERS (also the keys of a pipeline file's extract stage):"))

    @Option(help: ArgumentHelp("The preprocess output to read.", valueName: "file"))
    var input: String = "preprocessed.sqlite"

    @Option(help: ArgumentHelp("The SQLite file to write.", valueName: "file"))
    var output: String = "features.sqlite"

    // --weights, --batch, --layers and --keep are ExtractStage.parameters, declared once for this command line, the
    // pipeline file and the fingerprint, and checked by the same rules.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var parameters: [String] = []

    @Option(help: ArgumentHelp("Process shard K of N only (0-based).", valueName: "K/N"))
    var shard: String?

    @Option(help: ArgumentHelp("The shard count, for a Kubernetes Indexed Job (the index comes from JOB_COMPLETION_INDEX).", valueName: "N"))
    var shards: Int?

    @Option(help: ArgumentHelp("Run this stage of a pipeline file instead: its parameters from the file, its input from the manifest, its record written there.", valueName: "file"))
    var pipeline: String?

    // A sweep's variant under Slurm: its --set values and its own artifacts folder.
    @Option(name: .customLong("set"), help: .hidden) var settings: [String] = []
    @Option(help: .hidden) var workspace: String?

    /// The shard from --shard, or from the scheduler's environment.
    func resolvedShard() throws -> Extract.Shard? {
        if let shard { return try Extract.Shard(shard) }
        let environment = ProcessInfo.processInfo.environment
        if let id = environment["SLURM_ARRAY_TASK_ID"].flatMap(Int.init), let count = environment["SLURM_ARRAY_TASK_COUNT"].flatMap(Int.init) {
            let minimum = environment["SLURM_ARRAY_TASK_MIN"].flatMap(Int.init) ?? 0
            return try Extract.Shard(index: id - minimum, count: count)
        }
        if let index = environment["JOB_COMPLETION_INDEX"].flatMap(Int.init) {
            guard let shards else { throw ValidationError("JOB_COMPLETION_INDEX is set: give the shard count with --shards N") }
            return try Extract.Shard(index: index, count: shards)
        }
        return nil
    }

    func run() throws {
        if let pipeline {
            if let shard = try resolvedShard() { return try ExtractStage.runShard(shard, pipeline: pipeline, settings: settings, workspace: workspace) }
            return try PipelineRunner.runAlone("extract", of: PipelineStages.all, pipeline: pipeline)
        }
        let shard = try resolvedShard()
        // Checked by the same rules as the pipeline file's extract stage.
        let parameters = try StageParameters.fromArguments(self.parameters, specs: ExtractStage.commandLineParameters)
        let started = Date()
        let params = try ExtractStage.Params(parameters)
        let report = try Extract.run(try params.options(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output)), shard: shard)
        let seconds = Date().timeIntervalSince(started)
        if report.randomWeights {
            FileHandle.standardError.write(Data("warning: features come from a RANDOM backbone (\(report.weightsSource)), not ImageNet weights\n".utf8))
        }
        let written = shard.map { $0.file(for: URL(fileURLWithPath: output)).path } ?? output
        let computed = report.images - report.resumed
        let layers = report.cut.names.count == 1 ? "\(report.cut.names[0]) (\(report.cut.dimension))"
            : "\(report.cut.names.count) layers (\(report.cut.dimension) in all)"
        // Two rates, each named: the network's (the progress bar's) and the whole run's, weights loading included.
        let running = report.extractSeconds.map { String(format: "%.1f images/s through the network, ", Double(computed) / max($0, 1e-9)) } ?? ""
        print(String(format: "wrote %@: %d images at %dx%d, %@, weights %@, content %@, %.2f s (%@%.1f images/s with weights loading)", written, report.images,
                     report.size, report.size, layers, report.weightsSource, String(report.contentSHA256.prefix(12)), seconds, running, Double(computed) / seconds))
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the shard files of OUTPUT into OUTPUT, checking that every image is there exactly once.")

    @Option(help: ArgumentHelp("The preprocess output the shards were made from.", valueName: "file"))
    var input: String = "preprocessed.sqlite"

    @Option(help: ArgumentHelp("The merged file to write; its shards sit beside it as STEM.shard-K-of-N.sqlite.", valueName: "file"))
    var output: String = "features.sqlite"

    @Option(help: "How many shards there are.")
    var shards: Int

    func run() throws {
        let report = try Extract.merge(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output), shards: shards)
        print("wrote \(output): \(report.images) vectors merged from \(shards) shards, content \(report.contentSHA256.prefix(12))")
    }
}

ExtractCommand.runAsTool()
