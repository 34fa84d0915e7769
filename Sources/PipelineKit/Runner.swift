import Crypto
import Foundation

/// What the runner needs to know of a stage; each domain module declares its own.
public struct StageDefinition: Sendable {
    public var name: String
    public var parameters: [ParameterSpec]
    /// The file the stage writes in the artifacts folder.
    public var output: String
    /// The stage whose output is this stage's input.
    public var upstream: String?
    /// What besides the parameters decides the result, as it stands now (extract: the weights it would use).
    public var environment: @Sendable (StageParameters) -> [String: String]
    public var run: @Sendable (StageContext) throws -> StageOutcome

    public init(name: String, parameters: [ParameterSpec], output: String, upstream: String?,
                environment: @escaping @Sendable (StageParameters) -> [String: String] = { _ in [:] },
                run: @escaping @Sendable (StageContext) throws -> StageOutcome) {
        self.name = name
        self.parameters = parameters
        self.output = output
        self.upstream = upstream
        self.environment = environment
        self.run = run
    }
}

public struct StageContext {
    public var parameters: StageParameters
    /// The upstream stage's output.
    public var input: URL?
    public var output: URL
    public var folder: URL
    public var log: (String) -> Void
}

public struct StageOutcome: Sendable {
    public var contentSHA256: String
    public var rows: Int
    /// Overrides of `environment` with what the run actually used (a weights fallback).
    public var environment: [String: String]
    public var notes: [String: String]

    public init(contentSHA256: String, rows: Int, environment: [String: String] = [:], notes: [String: String] = [:]) {
        self.contentSHA256 = contentSHA256
        self.rows = rows
        self.environment = environment
        self.notes = notes
    }
}

public struct StageStatus: Sendable {
    public var stage: String
    public var upToDate: Bool
    /// Why the stage is stale; empty when up to date.
    public var reasons: [String]
}

/// Runs a pipeline's stages through its manifest: a stage runs when its fingerprint (stage name,
/// canonical parameters, environment, input content, tool version) changed or its output is missing
/// or altered; one that reruns and produces the same content leaves its downstream stages up to date.
public final class PipelineRunner {
    public let file: PipelineFile
    public let stages: [StageDefinition]
    public var manifest: Manifest
    let manifestURL: URL
    var lock: FileLock?

    public init(file: PipelineFile, stages: [StageDefinition]) throws {
        self.file = file
        self.stages = stages
        try FileManager.default.createDirectory(at: file.artifacts, withIntermediateDirectories: true)
        manifestURL = file.artifacts.appendingPathComponent("manifest.json")
        manifest = try Manifest.load(manifestURL, pipeline: file.name)
    }

    /// One run at a time per artifacts folder.
    public func acquireLock() throws {
        lock = try FileLock(file.artifacts.appendingPathComponent(".lock"), what: "the pipeline '\(file.name)' (\(file.artifacts.path))")
        // Another run may have finished while we waited for nothing: start from its manifest.
        manifest = try Manifest.load(manifestURL, pipeline: file.name)
    }

    public func output(of stage: StageDefinition) -> URL { file.artifacts.appendingPathComponent(stage.output) }

    func definition(_ name: String) -> StageDefinition? { stages.first { $0.name == name } }

    func fingerprint(_ stage: StageDefinition, parameters: StageParameters, environment: [String: String],
                     inputs: [String: Manifest.Input], upstream: String?) -> String {
        var text = "stage=\(stage.name)\ntool=\(toolVersion)\n"
        for (key, value) in parameters.values.sorted(by: { $0.key < $1.key }) { text += "param \(key)=\(value)\n" }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { text += "environment \(key)=\(value)\n" }
        for (key, input) in inputs.sorted(by: { $0.key < $1.key }) { text += "input \(key)=\(input.sha256)\n" }
        text += "upstream=\(upstream ?? "")\n"
        return Array(SHA256.hash(data: Data(text.utf8))).hexString
    }

    func currentInputs(_ parameters: StageParameters) throws -> [String: Manifest.Input] {
        var inputs: [String: Manifest.Input] = [:]
        for (name, url) in parameters.inputs {
            guard let hash = try manifest.sha256(of: url) else { throw StageError("\(url.path): the input '\(name)' has disappeared") }
            inputs[name] = Manifest.Input(path: url.path, sha256: hash)
        }
        return inputs
    }

    /// Whether `stage` is up to date, and if not why; `pendingUpstream` names a stale upstream stage.
    public func status(of stage: StageDefinition, pendingUpstream: String? = nil) throws -> StageStatus {
        let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
        guard let record = manifest.stages[stage.name] else { return StageStatus(stage: stage.name, upToDate: false, reasons: ["never run"]) }
        var reasons: [String] = []
        if let pendingUpstream { reasons.append("waits for \(pendingUpstream), which is stale") }
        if record.toolVersion != toolVersion { reasons.append("tool version changed from \(record.toolVersion) to \(toolVersion)") }
        for key in Set(parameters.values.keys).union(record.params.keys).sorted() where parameters.values[key] != record.params[key] {
            reasons.append("parameter \(key) changed from \(record.params[key] ?? "(unset)") to \(parameters.values[key] ?? "(unset)")")
        }
        let environment = stage.environment(parameters)
        for key in environment.keys.sorted() where environment[key] != record.environment[key] {
            reasons.append("\(key) changed from \(record.environment[key] ?? "(unset)") to \(environment[key]!)")
        }
        let inputs = try currentInputs(parameters)
        for key in Set(inputs.keys).union(record.inputs.keys).sorted() {
            let now = inputs[key], then = record.inputs[key]
            if now?.path != then?.path && now?.sha256 == then?.sha256 { continue }
            if now?.sha256 != then?.sha256 {
                reasons.append("input \(key) changed (\(then?.path ?? "none") sha256 \(then?.sha256.prefix(12) ?? "-") -> \(now?.path ?? "none") sha256 \(now?.sha256.prefix(12) ?? "-"))")
            }
        }
        if let upstream = stage.upstream, pendingUpstream == nil {
            let content = manifest.stages[upstream]?.output.content
            if content != record.upstreamContent { reasons.append("its input from \(upstream) changed") }
        }
        let outputURL = output(of: stage)
        if let hash = try manifest.sha256(of: outputURL) {
            if hash != record.output.sha256 { reasons.append("output \(stage.output) was altered on disk (sha256 \(hash.prefix(12)), recorded \(record.output.sha256.prefix(12)))") }
        } else {
            reasons.append("output \(stage.output) is missing")
        }
        return StageStatus(stage: stage.name, upToDate: reasons.isEmpty, reasons: reasons)
    }

    /// Every stage's status, in order; a stage after a stale one is reported as waiting for it.
    public func statuses() throws -> [StageStatus] {
        var result: [StageStatus] = []
        var stale: String?
        for stage in stages {
            let status = try self.status(of: stage, pendingUpstream: stale.flatMap { name in stage.upstream == nil ? nil : name })
            if !status.upToDate && stale == nil { stale = stage.name }
            result.append(status)
        }
        return result
    }

    /// Runs the stale stages in order (and `force`d ones), up to `until`; says what it skips and why.
    @discardableResult
    public func run(until: String? = nil, force: Set<String> = [], log: @escaping (String) -> Void) throws -> [String] {
        for name in force.union(until.map { [$0] } ?? []) where definition(name) == nil {
            throw StageError("unknown stage '\(name)' (the stages are \(stages.map(\.name).joined(separator: ", ")))")
        }
        // Every stage's parameters are checked before any stage runs: a typo in the last stage must
        // not cost a run of the first.
        for stage in stages { _ = try file.parameters(of: stage.name, specs: stage.parameters) }
        let knownFiles = manifest.files
        var ran: [String] = []
        for stage in stages {
            let status = try self.status(of: stage)
            if status.upToDate && !force.contains(stage.name) {
                log("\(stage.name): up to date, skipped")
            } else {
                log("\(stage.name): running (\(force.contains(stage.name) ? "forced" : status.reasons.joined(separator: "; ")))")
                try runStage(stage, log: log)
                ran.append(stage.name)
            }
            if stage.name == until { break }
        }
        // A file rehashed with the same content (a CSV rewritten with the same bytes) gets its new
        // size, time and inode recorded, so the next check does not hash it again.
        if ran.isEmpty && manifest.files != knownFiles { try manifest.save(manifestURL) }
        return ran
    }

    /// Runs one stage now, whatever its status, and records it (`STAGE --pipeline FILE`).
    public func runStage(_ stage: StageDefinition, log: @escaping (String) -> Void) throws {
        let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
        // The input is what the manifest says the upstream stage wrote, whether the whole pipeline
        // runs or this stage alone.
        var input: URL?
        var upstreamContent: String?
        if let upstream = stage.upstream {
            guard let record = manifest.stages[upstream] else {
                throw StageError("\(stage.name) needs the output of \(upstream), which the manifest \(manifestURL.path) does not record: run \(upstream) first")
            }
            input = URL(fileURLWithPath: record.output.path)
            upstreamContent = record.output.content
        }
        if let input, !FileManager.default.fileExists(atPath: input.path) {
            throw StageError("\(stage.name) needs \(input.path), which is missing: run \(stage.upstream ?? "the previous stage") first")
        }
        let inputs = try currentInputs(parameters)
        let started = Date()
        let outputURL = output(of: stage)
        let outcome = try stage.run(StageContext(parameters: parameters, input: input, output: outputURL, folder: file.artifacts, log: log))
        let ended = Date()
        let environment = stage.environment(parameters).merging(outcome.environment) { $1 }
        guard let hash = try manifest.sha256(of: outputURL) else { throw StageError("\(stage.name) did not write \(outputURL.path)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: outputURL.path)[.size] as? Int).flatMap { $0 } ?? 0
        manifest.stages[stage.name] = Manifest.StageRecord(
            fingerprint: fingerprint(stage, parameters: parameters, environment: environment, inputs: inputs, upstream: upstreamContent),
            params: parameters.values, environment: environment, inputs: inputs, upstreamContent: upstreamContent,
            output: Manifest.Output(path: outputURL.path, sha256: hash, content: outcome.contentSHA256, rows: outcome.rows, size: Int64(size)),
            toolVersion: toolVersion, started: started, ended: ended, seconds: ended.timeIntervalSince(started), notes: outcome.notes)
        try manifest.save(manifestURL)
        log(String(format: "%@: done in %.2f s, %d rows, content %@", stage.name, ended.timeIntervalSince(started), outcome.rows,
                   String(outcome.contentSHA256.prefix(12))))
    }
}

/// The stages a pipeline file may name, in the order they run.
public let pipelineStageNames = ["ingest", "preprocess", "extract", "train"]

extension PipelineRunner {
    /// `STAGE --pipeline FILE`: runs `stage` alone under the pipeline's lock and records it.
    public static func runAlone(_ stage: StageDefinition, pipeline path: String) throws {
        let file = try PipelineFile(URL(fileURLWithPath: path), knownStages: pipelineStageNames)
        let runner = try PipelineRunner(file: file, stages: [stage])
        try runner.acquireLock()
        try runner.runStage(stage) { print($0) }
    }
}
