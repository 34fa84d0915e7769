import Crypto
import Foundation

/// What the runner needs to know of a stage; each stage declares its own: what it reads, what it
/// writes, its parameters, what else decides its result, and its version.
public struct StageDefinition: Sendable {
    public var name: String
    /// Raised whenever the stage's output for the same inputs and parameters would change (a kernel
    /// that changes the last bits of the features, a new table): part of the fingerprint.
    public var version: Int
    public var parameters: [ParameterSpec]
    /// The file the stage writes in the artifacts folder, which downstream stages read.
    public var output: String
    /// Files it writes beside the output for people (report.html, metrics.json, contact-sheet.png):
    /// recorded with their hashes, so that a missing or edited one makes the stage stale.
    public var sideOutputs: [String]
    /// The artifacts (other stages' outputs, by file name) it reads; the runner derives the order
    /// of the stages from these.
    public var reads: [String]
    /// What besides the parameters decides the result, as it stands now (extract: the weights it would use).
    public var environment: @Sendable (StageParameters) -> [String: String]
    /// What is wrong with a combination of checked values (each value alone is its spec's to check),
    /// or nil: asked with every other check, before anything runs (train: a head too big for memory).
    public var check: @Sendable (StageParameters) -> String?
    public var run: @Sendable (StageContext) throws -> StageOutcome

    public init(name: String, version: Int, parameters: [ParameterSpec], output: String, sideOutputs: [String] = [], reads: [String] = [],
                environment: @escaping @Sendable (StageParameters) -> [String: String] = { _ in [:] },
                check: @escaping @Sendable (StageParameters) -> String? = { _ in nil },
                run: @escaping @Sendable (StageContext) throws -> StageOutcome) {
        self.check = check
        self.name = name
        self.version = version
        self.parameters = parameters
        self.output = output
        self.sideOutputs = sideOutputs
        self.reads = reads
        self.environment = environment
        self.run = run
    }
}

/// Where and how a stage runs: here (`LocalExecutor`), or on a cluster (the Slurm executor runs
/// extract as an array job). The runner decides *whether* a stage runs; its executor, *how*.
public protocol StageExecutor: Sendable {
    func execute(_ stage: StageDefinition, _ context: StageContext) throws -> StageOutcome
}

/// Runs the stage in this process.
public struct LocalExecutor: StageExecutor {
    public init() {}
    public func execute(_ stage: StageDefinition, _ context: StageContext) throws -> StageOutcome { try stage.run(context) }
}

/// The stages in an order where each comes after the stages whose outputs it reads; ties keep the
/// given order. A read that no stage writes, or a cycle, is an error naming the stage.
public func orderedStages(_ stages: [StageDefinition]) throws -> [StageDefinition] {
    var writer: [String: String] = [:]
    for stage in stages {
        if let other = writer[stage.output] { throw StageError("stages \(other) and \(stage.name) both write \(stage.output)") }
        writer[stage.output] = stage.name
    }
    var placed: [StageDefinition] = [], done = Set<String>()
    while placed.count < stages.count {
        guard let next = stages.first(where: { stage in
            !done.contains(stage.name) && stage.reads.allSatisfy { read in writer[read].map(done.contains) ?? false }
        }) else {
            let stuck = stages.filter { !done.contains($0.name) }
            let missing = stuck.flatMap { stage in stage.reads.filter { writer[$0] == nil }.map { "\(stage.name) reads \($0), which no stage writes" } }
            throw StageError(missing.first ?? "the stages \(stuck.map(\.name).joined(separator: ", ")) read each other's outputs in a cycle")
        }
        placed.append(next)
        done.insert(next.name)
    }
    return placed
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

/// What a run did with a stage (and what an experiment records of it).
public struct StageRun: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case ran, restored, skipped
    }

    public var stage: String
    public var kind: Kind
    /// Wall time spent on it in this run (running, restoring, or checking).
    public var seconds: Double
    /// The fingerprint it was made under (the cache's key), and its output's content hash.
    public var fingerprint: String
    public var content: String

    public init(stage: String, kind: Kind, seconds: Double, fingerprint: String, content: String) {
        self.stage = stage
        self.kind = kind
        self.seconds = seconds
        self.fingerprint = fingerprint
        self.content = content
    }

    // `outcome` in compare's JSON and the experiments table.
    enum CodingKeys: String, CodingKey {
        case stage, kind = "outcome", seconds, fingerprint, content
    }
}

public struct StageStatus: Sendable {
    public var stage: String
    public var upToDate: Bool
    /// Why the stage is stale; empty when up to date.
    public var reasons: [String]
    /// The fingerprint it would be made under now: the cache's key.
    public var fingerprint: String
}

/// Runs a pipeline's stages through its manifest: a stage runs when its fingerprint (stage name,
/// canonical parameters, environment, input content, tool version) changed or its output is missing
/// or altered; one that reruns and produces the same content leaves its downstream stages up to date.
public final class PipelineRunner {
    public let file: PipelineFile
    /// In dependency order (`orderedStages`).
    public let stages: [StageDefinition]
    /// How each stage runs; `LocalExecutor` unless set.
    public var executors: [String: any StageExecutor] = [:]
    public var manifest: Manifest
    let manifestURL: URL
    var lock: FileLock?
    var cacheUse: FileLock?
    /// Where outputs are kept by fingerprint (`artifacts/cache`); nil: nothing is kept or restored.
    public var cache: RunCache?
    /// Wait for another run holding the artifacts folder instead of refusing (sweeps).
    public var waitForLock = false
    /// What the last `run` did with each stage, in order.
    public private(set) var runs: [StageRun] = []

    public init(file: PipelineFile, stages: [StageDefinition]) throws {
        self.file = file
        self.stages = try orderedStages(stages)
        // Nothing is created here: `status` and `inspect` only look. The folder is made by the lock.
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: file.artifacts.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw StageError("\(file.artifacts.path): the pipeline's artifacts folder is a file; move it or name another folder in \(file.url.path)")
        }
        manifestURL = file.artifacts.appendingPathComponent("manifest.json")
        manifest = try Manifest.load(manifestURL, pipeline: file.name)
        cache = RunCache(artifacts: file.artifacts)
    }

    /// Every stage's parameters checked, before any stage runs: a typo in the last stage must not
    /// cost a run of the first.
    public func validate() throws {
        for stage in stages {
            let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
            if let problem = stage.check(parameters) { throw StageError("\(file.url.path): stage \(stage.name): \(problem)") }
        }
    }

    /// One run at a time per artifacts folder.
    public func acquireLock() throws {
        // A file with a bad value leaves no trace: checked before the artifacts folder is made.
        try validate()
        try FileManager.default.createDirectory(at: file.artifacts, withIntermediateDirectories: true)
        lock = try FileLock(file.artifacts.appendingPathComponent(".lock"), what: "the pipeline '\(file.name)' (\(file.artifacts.path))",
                            wait: waitForLock) { print("waiting for another run of \(self.file.artifacts.path) to finish") }
        cacheUse = try cache?.useLock()
        // Another run may have finished while we waited for nothing: start from its manifest.
        manifest = try Manifest.load(manifestURL, pipeline: file.name)
    }

    public func output(of stage: StageDefinition) -> URL { file.artifacts.appendingPathComponent(stage.output) }

    func definition(_ name: String) -> StageDefinition? { stages.first { $0.name == name } }

    /// The stage whose output `stage` reads first: its `context.input`.
    public func upstream(of stage: StageDefinition) -> String? {
        upstreams(of: stage).first
    }

    /// Every stage whose output `stage` reads, in the order of its `reads`.
    public func upstreams(of stage: StageDefinition) -> [String] {
        stage.reads.compactMap { read in stages.first { $0.output == read }?.name }
    }

    /// The content of every output `stage` reads, as the manifest records them now: one part of the
    /// fingerprint (each read's content, comma-separated; nil for a stage that reads none, and a
    /// missing record as empty, so that it differs from any content).
    func upstreamContent(of stage: StageDefinition) -> String? {
        let upstreams = upstreams(of: stage)
        guard !upstreams.isEmpty else { return nil }
        let contents = upstreams.map { manifest.stages[$0]?.output.content }
        // One read that was never run: nil, as before several reads were possible.
        if contents.count == 1 { return contents[0] }
        return contents.map { $0 ?? "" }.joined(separator: ",")
    }

    func fingerprint(_ stage: StageDefinition, parameters: StageParameters, environment: [String: String],
                     inputs: [String: Manifest.Input], upstream: String?) -> String {
        var text = "stage=\(stage.name)\nversion=\(stage.version)\n"
        for (key, value) in fingerprinted(stage, parameters.values).sorted(by: { $0.key < $1.key }) { text += "param \(key)=\(value)\n" }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { text += "environment \(key)=\(value)\n" }
        for (key, input) in inputs.sorted(by: { $0.key < $1.key }) { text += "input \(key)=\(input.sha256)\n" }
        text += "upstream=\(upstream ?? "")\n"
        return Array(SHA256.hash(data: Data(text.utf8))).hexString
    }

    /// The parameters the fingerprint hashes: all but those added later and left at their default.
    func fingerprinted(_ stage: StageDefinition, _ values: [String: String]) -> [String: String] {
        values.filter { key, value in
            guard let spec = stage.parameters.first(where: { $0.name == key }), spec.addedLater, let given = spec.defaultValue else { return true }
            // The default's canonical form: "10" is "10.0" for a number.
            return value != ((try? spec.canonical(given)) ?? given)
        }
    }

    func currentInputs(_ parameters: StageParameters) throws -> [String: Manifest.Input] {
        var inputs: [String: Manifest.Input] = [:]
        for (name, url) in parameters.inputs {
            guard let hash = try manifest.sha256(of: url) else { throw StageError("\(url.path): the input '\(name)' has disappeared") }
            inputs[name] = Manifest.Input(path: url.path, sha256: hash)
        }
        return inputs
    }

    /// The fingerprint `stage` would be made under now: its cache key.
    func currentFingerprint(_ stage: StageDefinition) throws -> String {
        let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
        let upstreamContent = upstreamContent(of: stage)
        return fingerprint(stage, parameters: parameters, environment: stage.environment(parameters), inputs: try currentInputs(parameters), upstream: upstreamContent)
    }

    /// Whether the cache holds an entry for `fingerprint` (a status's: not yet checked against its
    /// hashes, which a run does before restoring it).
    public func isCached(_ fingerprint: String) -> Bool {
        guard let cache else { return false }
        return FileManager.default.fileExists(atPath: cache.entry(fingerprint).appendingPathComponent(RunCache.recordName).path)
    }

    /// The files a stage writes into the artifacts folder: its output first, then its side outputs.
    func files(of stage: StageDefinition) -> [String] { [stage.output] + stage.sideOutputs }

    /// Whether `stage` is up to date, and if not why; `pendingUpstream` names a stale upstream stage.
    /// Up to date means exactly: the fingerprint computed now (stage, version, parameters,
    /// environment, input files' hashes, the upstream output's content) equals the recorded one, and
    /// the output and side outputs are on disk with their recorded hashes. The reasons say what differs.
    public func status(of stage: StageDefinition, pendingUpstream: String? = nil) throws -> StageStatus {
        let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
        let environment = stage.environment(parameters)
        let inputs = try currentInputs(parameters)
        let upstream = upstreams(of: stage).isEmpty ? nil : upstreams(of: stage).joined(separator: " and ")
        let upstreamContent = upstreamContent(of: stage)
        let now = fingerprint(stage, parameters: parameters, environment: environment, inputs: inputs, upstream: upstreamContent)
        guard let record = manifest.stages[stage.name] else {
            return StageStatus(stage: stage.name, upToDate: false, reasons: ["never run"], fingerprint: now)
        }
        var reasons: [String] = []
        if let pendingUpstream { reasons.append("waits for \(pendingUpstream), which is stale") }
        if now != record.fingerprint {
            var why: [String] = []
            if record.version != stage.version {
                why.append("stage version changed from \(record.version.map(String.init) ?? "(unrecorded)") to \(stage.version)")
            }
            let now = fingerprinted(stage, parameters.values), then = fingerprinted(stage, record.params)
            for key in Set(now.keys).union(then.keys).sorted() where now[key] != then[key] {
                why.append("parameter \(key) changed from \(record.params[key] ?? "(unset)") to \(parameters.values[key] ?? "(unset)")")
            }
            for key in Set(environment.keys).union(record.environment.keys).sorted() where environment[key] != record.environment[key] {
                why.append("\(key) changed from \(record.environment[key] ?? "(unset)") to \(environment[key] ?? "(unset)")")
            }
            for key in Set(inputs.keys).union(record.inputs.keys).sorted() where inputs[key]?.sha256 != record.inputs[key]?.sha256 {
                let now = inputs[key], then = record.inputs[key]
                why.append("input \(key) changed (\(then?.path ?? "none") sha256 \(then?.sha256.prefix(12) ?? "-") -> \(now?.path ?? "none") sha256 \(now?.sha256.prefix(12) ?? "-"))")
            }
            if let upstream, pendingUpstream == nil, upstreamContent != record.upstreamContent { why.append("its input from \(upstream) changed") }
            if pendingUpstream == nil || !why.isEmpty {
                reasons += why.isEmpty ? ["its fingerprint changed (recorded by an older version of the tool)"] : why
            }
        }
        for (name, recorded) in [(stage.output, Optional(record.output.sha256))] + stage.sideOutputs.map({ ($0, record.sideOutputs?[$0]?.sha256) }) {
            let url = file.artifacts.appendingPathComponent(name)
            guard let hash = try manifest.sha256(of: url) else {
                reasons.append("output \(name) is missing")
                continue
            }
            guard let recorded else {
                reasons.append("output \(name) was not recorded")
                continue
            }
            if hash != recorded { reasons.append("output \(name) was altered on disk (sha256 \(hash.prefix(12)), recorded \(recorded.prefix(12)))") }
        }
        return StageStatus(stage: stage.name, upToDate: reasons.isEmpty, reasons: reasons, fingerprint: now)
    }

    /// Every stage's status, in order; a stage after a stale one is reported as waiting for it.
    public func statuses() throws -> [StageStatus] {
        var result: [StageStatus] = []
        var stale: String?
        for stage in stages {
            let status = try self.status(of: stage, pendingUpstream: stale.flatMap { name in stage.reads.isEmpty ? nil : name })
            if !status.upToDate && stale == nil { stale = stage.name }
            result.append(status)
        }
        return result
    }

    /// Runs the stale stages in order (and `force`d ones), up to `until`; says what it skips and why.
    /// A stale stage whose fingerprint the cache holds is restored from it instead of run.
    @discardableResult
    public func run(until: String? = nil, force: Set<String> = [], log: @escaping (String) -> Void) throws -> [String] {
        for name in force.union(until.map { [$0] } ?? []) where definition(name) == nil {
            throw StageError("unknown stage '\(name)' (the stages are \(stages.map(\.name).joined(separator: ", ")))")
        }
        try validate()
        let knownFiles = manifest.files
        var ran: [String] = []
        runs = []
        for stage in stages {
            let started = Date()
            let status = try self.status(of: stage)
            let fingerprint = status.fingerprint
            if status.upToDate && !force.contains(stage.name) {
                log("\(stage.name): up to date, skipped")
                record(stage, .skipped, fingerprint, since: started)
            } else if force.contains(stage.name) {
                log("\(stage.name): running (forced)")
                try runStage(stage, log: log, fingerprint: fingerprint)
                ran.append(stage.name)
                record(stage, .ran, fingerprint, since: started)
            } else {
                let reasons = status.reasons.joined(separator: "; ")
                // Held from the lookup until the output is stored: a second run needing the same
                // fingerprint waits here, then finds it in the cache.
                let entryLock = try cache?.lock(fingerprint, stage: stage.name, log: log)
                defer { entryLock?.release() }
                if let restored = try restore(stage, fingerprint: fingerprint, log: log) {
                    manifest.stages[stage.name] = restored
                    try manifest.save(manifestURL)
                    log("\(stage.name): restored from the cache (\(reasons); fingerprint \(fingerprint.prefix(12)))")
                    record(stage, .restored, fingerprint, since: started)
                } else {
                    log("\(stage.name): running (\(reasons))")
                    try runStage(stage, log: log, fingerprint: fingerprint, holdingEntryLock: true)
                    ran.append(stage.name)
                    record(stage, .ran, fingerprint, since: started)
                }
            }
            if stage.name == until { break }
        }
        // A file rehashed with the same content (a CSV rewritten with the same bytes) gets its new
        // size, time and inode recorded, so the next check does not hash it again.
        if ran.isEmpty && manifest.files != knownFiles { try manifest.save(manifestURL) }
        return ran
    }

    func record(_ stage: StageDefinition, _ kind: StageRun.Kind, _ fingerprint: String, since started: Date) {
        runs.append(StageRun(stage: stage.name, kind: kind, seconds: Date().timeIntervalSince(started),
                             fingerprint: fingerprint, content: manifest.stages[stage.name]?.output.content ?? ""))
    }

    /// The cache's entry for `fingerprint` put in place, or nil when there is none (or it was damaged,
    /// which is said and the entry dropped).
    func restore(_ stage: StageDefinition, fingerprint: String, log: (String) -> Void) throws -> Manifest.StageRecord? {
        guard let cache else { return nil }
        let names = files(of: stage)
        guard let record = cache.load(fingerprint, files: names, manifest: &manifest, problem: { problem in
            log("\(stage.name): the cache's copy is damaged and was dropped: \(problem)")
        }) else { return nil }
        // The upstream content it was made from is part of the key; checked again, as the record
        // came from disk.
        guard record.upstreamContent == upstreamContent(of: stage) else {
            log("\(stage.name): the cache's copy names another input; running instead")
            return nil
        }
        try FileManager.default.createDirectory(at: file.artifacts, withIntermediateDirectories: true)
        return try cache.restore(fingerprint, record: record, files: names, into: file.artifacts)
    }

    /// Runs one stage now, whatever its status, and records it (`STAGE --pipeline FILE`).
    /// Its output is kept in the cache under the fingerprint it was made under (`fingerprint`, when
    /// the caller's status has it already; with `holdingEntryLock`, the caller holds its entry's lock).
    public func runStage(_ stage: StageDefinition, log: @escaping (String) -> Void, fingerprint known: String? = nil,
                         holdingEntryLock: Bool = false) throws {
        try FileManager.default.createDirectory(at: file.artifacts, withIntermediateDirectories: true)
        let parameters = try file.parameters(of: stage.name, specs: stage.parameters)
        let cacheKey = try known ?? currentFingerprint(stage)
        // The input is what the manifest says the upstream stage wrote, whether the whole pipeline
        // runs or this stage alone.
        var input: URL?
        for upstream in upstreams(of: stage) {
            guard let record = manifest.stages[upstream] else {
                throw StageError("\(stage.name) needs the output of \(upstream), which the manifest \(manifestURL.path) does not record: run \(upstream) first")
            }
            let url = URL(fileURLWithPath: record.output.path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw StageError("\(stage.name) needs \(url.path), which is missing: run \(upstream) first")
            }
            if input == nil { input = url }
        }
        let upstreamContent = upstreamContent(of: stage)
        let inputs = try currentInputs(parameters)
        let started = Date()
        let outputURL = output(of: stage)
        let executor = executors[stage.name] ?? LocalExecutor()
        let outcome = try executor.execute(stage, StageContext(parameters: parameters, input: input, output: outputURL, folder: file.artifacts, log: log))
        let ended = Date()
        let environment = stage.environment(parameters).merging(outcome.environment) { $1 }
        guard let hash = try manifest.sha256(of: outputURL) else { throw StageError("\(stage.name) did not write \(outputURL.path)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: outputURL.path)[.size] as? Int).flatMap { $0 } ?? 0
        var sideOutputs: [String: Manifest.SideOutput] = [:]
        for name in stage.sideOutputs {
            let url = file.artifacts.appendingPathComponent(name)
            guard let hash = try manifest.sha256(of: url) else { throw StageError("\(stage.name) did not write \(url.path)") }
            sideOutputs[name] = Manifest.SideOutput(path: url.path, sha256: hash)
        }
        manifest.stages[stage.name] = Manifest.StageRecord(
            fingerprint: fingerprint(stage, parameters: parameters, environment: environment, inputs: inputs, upstream: upstreamContent),
            params: parameters.values, environment: environment, inputs: inputs, upstreamContent: upstreamContent,
            output: Manifest.Output(path: outputURL.path, sha256: hash, content: outcome.contentSHA256, rows: outcome.rows, size: Int64(size)),
            sideOutputs: sideOutputs, version: stage.version, toolVersion: toolVersion, started: started, ended: ended, seconds: ended.timeIntervalSince(started), notes: outcome.notes)
        try manifest.save(manifestURL)
        if let cache, let record = manifest.stages[stage.name] {
            let entryLock = holdingEntryLock ? nil : try cache.lock(cacheKey, stage: stage.name, log: log)
            defer { entryLock?.release() }
            do {
                try cache.store(cacheKey, record: record, files: files(of: stage), from: file.artifacts)
            } catch {
                // The output is made and recorded; only a later restore is lost.
                log("\(stage.name): warning: not kept in the cache: \(error.userMessage)")
            }
        }
        log(String(format: "%@: done in %.2f s, %d rows, content %@", stage.name, ended.timeIntervalSince(started), outcome.rows,
                   String(outcome.contentSHA256.prefix(12))))
    }
}

extension PipelineRunner {
    /// Opens the pipeline file with the stages this tool has.
    public convenience init(pipeline path: String, stages: [StageDefinition]) throws {
        try self.init(file: PipelineFile(URL(fileURLWithPath: path), knownStages: stages.map(\.name)), stages: stages)
    }

    /// `STAGE --pipeline FILE`: runs the stage `name` of `stages` alone under the pipeline's lock and records it.
    public static func runAlone(_ name: String, of stages: [StageDefinition], pipeline path: String) throws {
        let runner = try PipelineRunner(pipeline: path, stages: stages)
        guard let stage = runner.definition(name) else { throw StageError("unknown stage '\(name)'") }
        try runner.acquireLock()
        try runner.runStage(stage) { print($0) }
    }
}
