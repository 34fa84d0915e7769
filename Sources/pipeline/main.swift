import ArgumentParser
import Artifacts
import Backbone
import Executors
import Experiments
import Foundation
import GRDB
import GRDBSQLite
import Numerical
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

let allStages = PipelineStages.all

func openRunner(_ path: String) throws -> PipelineRunner {
    try PipelineRunner(pipeline: path, stages: allStages)
}

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run a pipeline file's stale stages, show their status, or inspect the artifacts; run variants, sweeps, and compare them.",
        subcommands: [Run.self, Status.self, Inspect.self, ExperimentsCommand.self, SweepCommand.self, Compare.self, GC.self])
}

/// The pipeline file, with `--set` values over it when given (a variant), and what differs.
struct VariantFile {
    var base: PipelineFile
    var file: PipelineFile
    var settings: [ParameterSetting]
    var changes: [String: String]

    init(_ path: String, settings texts: [String]) throws {
        base = try PipelineFile(URL(fileURLWithPath: path), knownStages: PipelineStages.names)
        settings = try texts.map { try ParameterSetting(parsing: $0) }
        file = try base.applying(settings, knownStages: PipelineStages.names)
        changes = try Variants.changes(of: file, from: base, stages: allStages)
    }

}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the stages that are out of date, in order, and skip the rest; record the run as an experiment.",
        discussion: """
            A stage is out of date when its parameters, its inputs' content, the weights it would use or the tool changed, or its output is missing or was altered. \
            A stale stage whose fingerprint was made before is restored from the cache (artifacts/NAME/cache) instead of run. \
            --set runs a variant without editing the file: pipeline run FILE --set train.dropout=0.2 --set train.hidden=[512,128]
            """)

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(name: .customLong("set"), help: ArgumentHelp("A parameter's value for this run, over the file's (repeatable): STAGE.KEY=VALUE, lists as [a,b].", valueName: "stage.key=value"))
    var settings: [String] = []

    @Option(help: ArgumentHelp("Stop after this stage.", valueName: "stage"))
    var until: String?

    @Option(help: ArgumentHelp("Rerun this stage even if it is up to date or cached (repeatable).", valueName: "stage"))
    var force: [String] = []

    @Option(help: ArgumentHelp("Where extract runs: local, or slurm (an array job of --shards tasks, then a merge).", valueName: "executor"))
    var executor: String = "local"

    @Option(help: ArgumentHelp("With --executor slurm: how many shards (array tasks).", valueName: "N"))
    var shards: Int = 4

    // A sweep runs each variant in its own folder, sharing the pipeline's cache and experiments.
    @Option(help: .hidden) var workspace: String?
    @Option(help: .hidden) var sweep: String?

    func validate() throws {
        guard ["local", "slurm"].contains(executor) else { throw ValidationError("--executor: local or slurm, not '\(executor)'") }
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1") }
    }

    func run() throws {
        if sweep != nil { try endWithParentProcess() }
        let variant = try VariantFile(file, settings: settings)
        var target = variant.file
        if let workspace { target.artifacts = URL(fileURLWithPath: workspace).standardizedFileURL }
        let runner = try PipelineRunner(file: target, stages: allStages)
        runner.cache = RunCache(artifacts: variant.base.artifacts)
        runner.waitForLock = workspace != nil
        if executor == "slurm" {
            let pipelineURL = URL(fileURLWithPath: file).standardizedFileURL
            var extraArguments = settings.flatMap { ["--set", $0] }
            if let workspace { extraArguments += ["--workspace", workspace] }
            runner.executors["extract"] = SlurmExecutor(pipeline: pipelineURL, shards: shards, extractTool: toolsFolder.appendingPathComponent("extract"),
                                                        pipelineArguments: extraArguments)
        }
        try runner.acquireLock()
        if !variant.changes.isEmpty {
            print("variant: \(describe(changes: variant.changes, order: PipelineStages.names))")
        }
        let started = Date()
        let ran = try runner.run(until: until, force: Set(force)) { print($0) }
        let restored = runner.runs.filter { $0.kind == .restored }.map(\.stage)
        var did: [String] = []
        if !ran.isEmpty { did.append("ran \(ran.joined(separator: ", "))") }
        if !restored.isEmpty { did.append("restored \(restored.joined(separator: ", ")) from the cache") }
        print(String(format: "%@: %@ in %.2f s", runner.file.name, did.isEmpty ? "nothing to do" : did.joined(separator: "; "), Date().timeIntervalSince(started)))
        if let report = runner.manifest.stages["train"]?.notes["report"], FileManager.default.fileExists(atPath: report) {
            print("report: \(report)")
        }
        // A run that made or restored nothing is the last one again: nothing to record (a sweep's
        // variants are recorded always: the sweep's table lists each).
        guard !ran.isEmpty || !restored.isEmpty || sweep != nil else {
            print("everything was up to date: no experiment recorded (`pipeline experiments \(file)` lists the runs that made these outputs)")
            return
        }
        let experiment = try Variants.experiment(of: runner, changes: variant.changes, sweep: sweep, started: started)
        let id = try ExperimentLog.record(experiment, of: variant.base.artifacts)
        print("experiment \(id) recorded\(experiment.accuracy.map { String(format: ": test accuracy %.2f%%", $0 * 100) } ?? "")")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each stage as up to date or stale, with the reason.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(name: .customLong("set"), help: ArgumentHelp("A parameter's value over the file's (repeatable): STAGE.KEY=VALUE.", valueName: "stage.key=value"))
    var settings: [String] = []

    func run() throws {
        let runner = try PipelineRunner(file: VariantFile(file, settings: settings).file, stages: allStages)
        for status in try runner.statuses() {
            if status.upToDate {
                let record = runner.manifest.stages[status.stage]!
                print("\(status.stage): up to date (\(record.output.rows) rows, content \(record.output.content.prefix(12)))")
            } else {
                // Known only while its input is: a stage after a stale one may still be in the cache.
                let waiting = status.reasons.contains { $0.hasPrefix("waits for") }
                let cached = !waiting && runner.isCached(status.fingerprint)
                print("\(status.stage): stale: \(status.reasons.joined(separator: "; "))\(cached ? " (in the cache: a run restores it)" : "")")
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach every stage's SQLite output in one session: list the tables, or run a query across them.",
        discussion: "The outputs are attached under their stage names: ingest, preprocess, extract, train. Example: --sql \"SELECT t.id, c.name AS truth, t.predicted FROM train.predictions t JOIN ingest.classes c ON c.label = t.label LIMIT 5\"")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(help: ArgumentHelp("A query to run across the attached outputs.", valueName: "query"))
    var sql: String?

    func run() throws {
        let runner = try openRunner(file)
        let queue = try DatabaseQueue()
        var attached: [String] = []
        try queue.writeWithoutTransaction { db in
            for stage in allStages {
                let url = runner.output(of: stage)
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                try db.execute(sql: "ATTACH DATABASE ? AS \(stage.name)", arguments: ["file:\(url.path)?mode=ro"])
                attached.append(stage.name)
            }
            // No more: a query's own ATTACH would create a file wherever it names (reads run with
            // query_only, which does not cover ATTACH).
            sqlite3_limit(db.sqliteConnection, SQLITE_LIMIT_ATTACHED, Int32(attached.count))
        }
        guard !attached.isEmpty else { throw StageError("\(runner.file.artifacts.path) holds no outputs yet: run `pipeline run \(file)` first") }
        try queue.read { db in
            if let sql {
                let rows: [Row]
                do {
                    rows = try Row.fetchAll(db, sql: sql)
                } catch let error as DatabaseError where error.message?.contains("too many attached databases") == true {
                    throw StageError("--sql: ATTACH is refused: inspect reads the pipeline's own outputs only (\(attached.joined(separator: ", ")))")
                } catch let error as DatabaseError {
                    // Writes fail too: every output is attached read-only and reads run with query_only.
                    let readOnly = error.resultCode == .SQLITE_READONLY || error.message?.contains("readonly") == true
                    throw StageError("--sql: \(error.message ?? "\(error.resultCode)")\(readOnly ? " (inspect only reads)" : "")")
                }
                printTable(rows)
                return
            }
            for schema in attached {
                print("\(schema) (\(runner.output(of: allStages.first { $0.name == schema }!).path))")
                for table in try String.fetchAll(db, sql: "SELECT name FROM \(schema).sqlite_master WHERE type = 'table' ORDER BY name") {
                    let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(schema).\"\(table)\"") ?? 0
                    print("  \(schema).\(table): \(count) rows")
                }
            }
        }
    }

    func printTable(_ rows: [Row]) {
        guard let first = rows.first else {
            print("(no rows)")
            return
        }
        let columns = Array(first.columnNames)
        let cells: [[String]] = rows.map { row in
            Array(row.databaseValues).map { value -> String in
                switch value.storage {
                case .null: return "NULL"
                case let .blob(data): return "<\(data.count) bytes>"
                case let .double(number): return String(number)
                case let .int64(number): return String(number)
                case let .string(text): return text
                }
            }
        }
        let widths = columns.indices.map { index in max(columns[index].count, cells.map { $0[index].count }.max() ?? 0) }

        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        print(line(columns))
        print(line(widths.map { String(repeating: "-", count: $0) }))
        cells.forEach { print(line($0)) }
    }
}

struct ExperimentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiments",
        abstract: "List the recorded runs of a pipeline: what differed from the file, the head's figures, what ran and what came from the cache.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    func run() throws {
        let base = try PipelineFile(URL(fileURLWithPath: file), knownStages: PipelineStages.names)
        let experiments = try ExperimentLog.all(of: base.artifacts)
        guard !experiments.isEmpty else {
            print("no experiments recorded yet: `pipeline run \(file)` records one")
            return
        }
        let cache = RunCache(artifacts: base.artifacts)
        let cached = Set(cache.fingerprints())
        let formatter = ISO8601DateFormatter()
        let descriptions = experiments.descriptions(order: PipelineStages.names)
        print("""
            id, started, what differed (--set values; a file edited since the run before; or the file as is), \
            test accuracy and macro-F1, seconds, the stages that ran, how many were restored from the run cache, \
            and whether every output is still in the cache ("cached": `pipeline run --set ...` brings it back \
            without running) or gc removed some; then the sweep, if any.
            """)
        for experiment in experiments {
            let ran = experiment.stages.filter { $0.kind == .ran }.map(\.stage)
            let outputs = experiment.stages.allSatisfy { cached.contains($0.fingerprint) } ? "cached" : "outputs removed by gc"
            var line = "\(experiment.id)  \(formatter.string(from: experiment.started))  \(descriptions[experiment.id] ?? "")"
            line += "  accuracy \(Comparison.percent(experiment.accuracy))  macro-F1 \(Comparison.decimal(experiment.macroF1))"
            line += String(format: "  %.1f s", experiment.seconds)
            line += "  ran: \(ran.isEmpty ? "none" : ran.joined(separator: ","))  restored: \(experiment.cacheHits)  (\(outputs))"
            if let sweep = experiment.sweep { line += "  \(sweep)" }
            print(line)
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run every combination of the --grid values, each distinct stage output made once, then compare them.",
        discussion: """
            Each variant runs in its own folder (artifacts/NAME/variants/...), sharing the pipeline's cache: two dropout values at one size share one preprocess and one extract. \
            A sweep stopped and started again finishes only what is missing. The artifacts folder itself is left as it was: `pipeline run FILE --set ...` puts a variant there, from the cache.
            Example: pipeline sweep FILE --grid preprocess.size=32,40 --grid train.dropout=0.2,0.5 --jobs 2
            """)

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(help: ArgumentHelp("A parameter and its values (repeatable): STAGE.KEY=V1,V2,... (lists in brackets: train.hidden=[256],[512,128]).", valueName: "stage.key=values"))
    var grid: [String] = []

    @Option(name: .customLong("set"), help: ArgumentHelp("A value for every variant, over the file's (repeatable): STAGE.KEY=VALUE.", valueName: "stage.key=value"))
    var settings: [String] = []

    @Option(help: ArgumentHelp("How many variants run at once (default: the cores, at most the variants).", valueName: "N"))
    var jobs: Int?

    @Option(help: ArgumentHelp("Where each distinct extract runs: local, or slurm (its own array job).", valueName: "executor"))
    var executor: String = "local"

    @Option(help: ArgumentHelp("With --executor slurm: how many shards (array tasks) per extract.", valueName: "N"))
    var shards: Int = 4

    func validate() throws {
        guard !grid.isEmpty else { throw ValidationError("give at least one --grid STAGE.KEY=V1,V2,...") }
        guard ["local", "slurm"].contains(executor) else { throw ValidationError("--executor: local or slurm, not '\(executor)'") }
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        let base = try PipelineFile(URL(fileURLWithPath: file), knownStages: PipelineStages.names)
        let fixed = try settings.map { try ParameterSetting(parsing: $0) }
        let grids = try grid.map(Variants.grid)
        for (index, values) in grids.enumerated() {
            let name = values[0].name
            if grids[..<index].contains(where: { $0[0].name == name }) || fixed.contains(where: { $0.name == name }) {
                throw StageError("--grid \(name): the parameter is given twice")
            }
        }
        let variants = Variants.schedule(Variants.combinations(grids, after: fixed), stageOrder: PipelineStages.names)
        // Every variant's values checked before anything runs; two spellings of one value (0.5,
        // 0.50, 5e-1) would make the same variant twice.
        var seen: [[String: String]: Variant] = [:]
        for variant in variants {
            let values = try Variants.parameters(of: base.applying(variant.settings, knownStages: PipelineStages.names), stages: allStages)
            if let twin = seen[values] {
                throw StageError("--grid: \(twin.description) and \(variant.description) are the same values spelt twice: name each value once")
            }
            seen[values] = variant
        }
        let identifier = Sweep.newIdentifier()
        let jobs = min(self.jobs ?? coreCount, variants.count)
        print("\(identifier): \(variants.count) variants, \(jobs) at a time")
        let started = Date()
        let sweep = Sweep(pipeline: base.url, artifacts: base.artifacts, variants: variants, jobs: jobs,
                          runArguments: executor == "slurm" ? ["--executor", "slurm", "--shards", String(shards)] : [],
                          tool: toolsFolder.appendingPathComponent("pipeline"))
        let failed = try sweep.run(identifier: identifier) { print($0) }
        let experiments = try ExperimentLog.all(of: base.artifacts).filter { $0.sweep == identifier }
        print("")
        print(Comparison(experiments, stageOrder: PipelineStages.names).table())
        print(String(format: "%@: %d variants in %.1f s; compare with `pipeline compare %@ %@`", identifier, variants.count,
                     Date().timeIntervalSince(started), file, experiments.map { String($0.id) }.joined(separator: " ")))
        if !failed.isEmpty {
            throw StageError("\(failed.count) of \(variants.count) variants failed: \(failed.map(\.description).joined(separator: "; "))")
        }
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare experiments: the parameters that differ, test accuracy, macro-F1, time, cache hits; writes compare.html beside the manifest.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Argument(help: "Experiment ids (default: all).")
    var experiments: [Int] = []

    @Flag(help: "Print JSON instead of the table.")
    var json = false

    func run() throws {
        let base = try PipelineFile(URL(fileURLWithPath: file), knownStages: PipelineStages.names)
        let all = try ExperimentLog.all(of: base.artifacts)
        guard !all.isEmpty else { throw StageError("\(base.artifacts.path): no experiments recorded yet: `pipeline run \(file)` records one") }
        var chosen: [Experiment] = []
        for id in experiments {
            guard let experiment = all.first(where: { $0.id == id }) else {
                throw StageError("no experiment \(id) (recorded: \(all.first!.id) to \(all.last!.id)); `pipeline experiments \(file)` lists them")
            }
            chosen.append(experiment)
        }
        let comparison = Comparison(chosen.isEmpty ? all : chosen, stageOrder: PipelineStages.names)
        // Each run's report where it can still be opened: its train output's entry in the run cache.
        let html = try comparison.html(pipeline: base.name) { experiment in
            guard let train = experiment.stages.last(where: { $0.stage == "train" }) else { return nil }
            let relative = "cache/\(train.fingerprint)/report.html"
            return FileManager.default.fileExists(atPath: base.artifacts.appendingPathComponent(relative).path) ? relative : nil
        }
        let page = base.artifacts.appendingPathComponent("compare.html")
        try AtomicOutput.write(to: page) { try Data(html.utf8).write(to: $0) }
        if json {
            print(try comparison.json())
        } else {
            print(comparison.table())
            print("compare.html: \(page.path)")
        }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove cached outputs that no recorded experiment uses (or all but the --keep newest experiments'), and print the space freed.",
        discussion: "The artifacts folder's current outputs are always kept. Experiments stay recorded; a removed one's outputs are made again when it is run again.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(help: ArgumentHelp("Keep the outputs of only the N newest experiments.", valueName: "N"))
    var keep: Int?

    func validate() throws {
        if let keep, keep < 0 { throw ValidationError("--keep must be 0 or more") }
    }

    func run() throws {
        let runner = try openRunner(file)
        let result = try GarbageCollector(artifacts: runner.file.artifacts, keep: keep).collect(manifest: runner.manifest)
        print(String(format: "gc: removed %d cached outputs and %d variant folders, kept %d; freed %.1f MB",
                     result.removedEntries, result.removedFolders, result.keptEntries, Double(result.bytesFreed) / 1_048_576))
    }
}

PipelineCommand.runAsTool()
