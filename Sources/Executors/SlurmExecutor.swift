import Artifacts
import Backbone
import Foundation
import Numerical
import PipelineKit
import Stages
import WeightsFetch

/// Runs the extract stage as a Slurm array job: one task per shard (`sbatch --array`, waited for),
/// then the merge, recorded in the manifest like a local run. Only the shards without a finished,
/// matching shard file are submitted, so a rerun after a failed or killed task redoes just those.
/// Other stages run locally.
public struct SlurmExecutor: StageExecutor {
    public let pipeline: URL
    public let shards: Int
    public let extractTool: URL
    /// More arguments for each task's `extract --pipeline` (a sweep variant's --set and --workspace).
    public let pipelineArguments: [String]

    public init(pipeline: URL, shards: Int, extractTool: URL, pipelineArguments: [String] = []) {
        self.pipeline = pipeline
        self.shards = shards
        self.extractTool = extractTool
        self.pipelineArguments = pipelineArguments
    }

    public func execute(_ stage: StageDefinition, _ context: StageContext) throws -> StageOutcome {
        guard stage.name == ExtractStage.definition.name else { return try LocalExecutor().execute(stage, context) }
        let params = try ExtractStage.Params(context.parameters)
        let (_, inputMeta) = try PreprocessedStore.open(context.input!)
        var missing: [Int] = []
        for index in 0 ..< shards {
            let file = try Extract.Shard(index: index, count: shards).file(for: context.output)
            if !(try Self.shardMatches(file, inputContent: inputMeta[Artifact.contentKey] ?? "", params: params)) {
                unlink(file.path)
                missing.append(index)
            }
        }
        if missing.isEmpty {
            context.log("extract: all \(shards) shards are already done")
        } else {
            try Self.submit(missing, of: shards, pipeline: pipeline, extractTool: extractTool, arguments: pipelineArguments, folder: context.folder, log: context.log)
        }
        let report = try Extract.merge(input: context.input!, output: context.output, shards: shards)
        for index in 0 ..< shards { unlink(try Extract.Shard(index: index, count: shards).file(for: context.output).path) }
        return StageOutcome(contentSHA256: report.contentSHA256, rows: report.images, environment: ["weights used": params.effectiveWeightsText],
                            notes: ["executor": "slurm, \(shards) shards"])
    }

    /// Whether a finished shard file was made from this input with these parameters (backbone,
    /// weights, batch size, layers, kept layer).
    static func shardMatches(_ file: URL, inputContent: String, params: ExtractStage.Params) throws -> Bool {
        guard FileManager.default.fileExists(atPath: file.path),
              let (queue, meta) = try? Artifact.open(file, kind: Extract.shardKind, role: "a shard", versions: [FeaturesStore.schemaVersion]) else { return false }
        defer { try? queue.close() }
        let provenance = try FeaturesStore.backbone(queue)
        let keep = params.keep.map { params.architecture.nodes[$0].name } ?? ""
        return provenance["input_content_sha256"] == inputContent && provenance["weights"] == params.effectiveWeights.description
            && meta["batch"] == String(params.batch) && provenance["layers"] == params.cut.description && (provenance["keep"] ?? "") == keep
            && (provenance["backbone"] ?? Backbones.defaultName) == params.architecture.name
    }

    /// Submits shards `indexes` of `count` as one array job and waits for it.
    static func submit(_ indexes: [Int], of count: Int, pipeline: URL, extractTool: URL, arguments extra: [String], folder: URL, log: (String) -> Void) throws {
        let script = folder.appendingPathComponent(".slurm-extract.sh")
        // Single-quoted for the shell, a quote inside written as '\''.
        let quoted = extra.map { " '" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined()
        try """
        #!/bin/sh
        # Written by `pipeline run --executor slurm`: one array task per shard; the task id is the shard index.
        exec '\(extractTool.path)' --pipeline '\(pipeline.path)' --shard "$SLURM_ARRAY_TASK_ID/\(count)"\(quoted)

        """.write(to: script, atomically: true, encoding: .utf8)
        chmod(script.path, 0o755)
        let arguments = ["--wait", "--parsable", "--array=\(indexes.map(String.init).joined(separator: ","))", "--job-name=signtransfer-extract",
                         "--cpus-per-task=1", "--output=\(folder.path)/slurm-extract-%A-%a.log", script.path]
        log("extract: sbatch \(arguments.joined(separator: " "))")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sbatch"] + arguments
        do {
            try process.run()
        } catch {
            throw StageError("cannot run sbatch: \(error.userMessage); is Slurm installed and SLURM_CONF set?")
        }
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            log("extract: the array job ended with status \(process.terminationStatus) (a task failed or was killed); see \(folder.path)/slurm-extract-*.log")
        }
    }
}
