import ArgumentParser
import Backbone
import Executors
import Foundation
import GRDB
import GRDBSQLite
import PipelineKit
import Stages
import ToolSupport
import WeightsFetch

let allStages = PipelineStages.all

func openRunner(_ path: String) throws -> PipelineRunner {
    try PipelineRunner(pipeline: path, stages: allStages)
}

/// The executables beside this one.
let toolsFolder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run a pipeline file's stale stages, show their status, or inspect the artifacts.",
        subcommands: [Run.self, Status.self, Inspect.self])
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the stages that are out of date, in order, and skip the rest.",
        discussion: "A stage is out of date when its parameters, its inputs' content, the weights it would use or the tool changed, or its output is missing or was altered.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    @Option(help: ArgumentHelp("Stop after this stage.", valueName: "stage"))
    var until: String?

    @Option(help: ArgumentHelp("Rerun this stage even if it is up to date (repeatable).", valueName: "stage"))
    var force: [String] = []

    @Option(help: ArgumentHelp("Where extract runs: local, or slurm (an array job of --shards tasks, then a merge).", valueName: "executor"))
    var executor: String = "local"

    @Option(help: ArgumentHelp("With --executor slurm: how many shards (array tasks).", valueName: "N"))
    var shards: Int = 4

    func validate() throws {
        guard ["local", "slurm"].contains(executor) else { throw ValidationError("--executor: local or slurm, not '\(executor)'") }
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1") }
    }

    func run() throws {
        let runner = try openRunner(file)
        if executor == "slurm" {
            let pipelineURL = URL(fileURLWithPath: file).standardizedFileURL
            runner.executors["extract"] = SlurmExecutor(pipeline: pipelineURL, shards: shards, extractTool: toolsFolder.appendingPathComponent("extract"))
        }
        try runner.acquireLock()
        let started = Date()
        let ran = try runner.run(until: until, force: Set(force)) { print($0) }
        print(String(format: "%@: %@ in %.2f s", runner.file.name, ran.isEmpty ? "nothing to do" : "ran \(ran.joined(separator: ", "))",
                     Date().timeIntervalSince(started)))
        if let report = runner.manifest.stages["train"]?.notes["report"], FileManager.default.fileExists(atPath: report) {
            print("report: \(report)")
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each stage as up to date or stale, with the reason.")

    @Argument(help: "The pipeline file (YAML).")
    var file: String

    func run() throws {
        let runner = try openRunner(file)
        for status in try runner.statuses() {
            if status.upToDate {
                let record = runner.manifest.stages[status.stage]!
                print("\(status.stage): up to date (\(record.output.rows) rows, content \(record.output.content.prefix(12)))")
            } else {
                print("\(status.stage): stale: \(status.reasons.joined(separator: "; "))")
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach every stage's SQLite output in one session: list the tables, or run a query across them.",
        discussion: "The outputs are attached under their stage names: ingest, preprocess, extract, train. Example: --sql \"SELECT p.id, i.letter, t.predicted FROM train.predictions t JOIN ingest.images i USING (id) JOIN preprocess.images p USING (id) LIMIT 5\"")

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

PipelineCommand.runAsTool()
