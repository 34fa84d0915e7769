import Foundation
import GRDB
import Numerical
import PipelineKit

/// One recorded `pipeline run`: what differed from the pipeline file, what each stage did, and the
/// head's figures (copied here, so that comparing does not need the cached head).
public struct Experiment: Sendable, Codable, Equatable {
    public struct Epoch: Sendable, Codable, Equatable {
        public var epoch: Int
        public var loss: Double
        public var accuracy: Double
        public var validationLoss: Double?
        public var validationAccuracy: Double?
    }

    public var id: Int
    public var started: Date
    public var seconds: Double
    /// The sweep it was part of, if any.
    public var sweep: String?
    /// `stage.key` to canonical value, for every parameter that differs from the file.
    public var changes: [String: String]
    /// `stage.key` to canonical value, for every parameter of the run (input files by path).
    public var params: [String: String]
    public var stages: [StageRun]
    /// Test accuracy and macro-F1 of the head, when train ran to the end with a test split.
    public var accuracy: Double?
    public var macroF1: Double?
    public var history: [Epoch]
    /// Letter to F1 on the test split.
    public var perClassF1: [String: Double]
    /// How many test images the accuracy is over (nil in logs made before it was recorded).
    public var testImages: Int? = nil

    public init(id: Int = 0, started: Date, seconds: Double, sweep: String?, changes: [String: String], params: [String: String], stages: [StageRun],
                accuracy: Double? = nil, macroF1: Double? = nil, history: [Epoch] = [], perClassF1: [String: Double] = [:]) {
        self.id = id
        self.started = started
        self.seconds = seconds
        self.sweep = sweep
        self.changes = changes
        self.params = params
        self.stages = stages
        self.accuracy = accuracy
        self.macroF1 = macroF1
        self.history = history
        self.perClassF1 = perClassF1
    }

    /// How many stages came from the cache.
    public var cacheHits: Int { stages.filter { $0.kind == .restored }.count }

    /// The changes as `stage.key=value`, in a stable order (stage order first when `order` is given).
    public func describeChanges(order: [String] = []) -> String { Artifacts.describe(changes: changes, order: order) }

    /// What this run was: its `--set` changes; or, for a run of the file itself, the parameters that
    /// differ from the run before it (the file was edited between them: `file edited: train.epochs=40
    /// (was 20)`); or "(the file as is)".
    public func describe(after previous: Experiment?, order: [String] = []) -> String {
        // A sweep's variant is its grid values, whatever ran before it.
        guard changes.isEmpty, sweep == nil, let previous else { return describeChanges(order: order) }
        let edited = Set(params.keys).union(previous.params.keys).filter { params[$0] != previous.params[$0] }
        guard !edited.isEmpty else { return describeChanges(order: order) }
        return "file edited: " + sortedKeys(edited, order: order).map { key in
            "\(key)=\(params[key] ?? "(none)") (was \(previous.params[key] ?? "none"))"
        }.joined(separator: " ")
    }
}

extension [Experiment] {
    /// Each experiment's description (`Experiment.describe(after:)`), each run of the file against
    /// the run of the file recorded before it (sweeps' variants are not runs of the file).
    public func descriptions(order: [String] = []) -> [Int: String] {
        var found: [Int: String] = [:]
        var previous: Experiment?
        for experiment in self.sorted(by: { $0.id < $1.id }) {
            found[experiment.id] = experiment.describe(after: previous, order: order)
            if experiment.sweep == nil { previous = experiment }
        }
        return found
    }
}

/// Changed parameters as `stage.key=value ...` in pipeline order, or "(the file as is)".
public func describe(changes: [String: String], order: [String]) -> String {
    changes.isEmpty ? "(the file as is)" : sortedKeys(changes.keys, order: order).map { "\($0)=\(changes[$0]!)" }.joined(separator: " ")
}

/// `stage.key` names in pipeline order, then by key.
public func sortedKeys(_ keys: some Sequence<String>, order: [String]) -> [String] {
    keys.sorted { a, b in
        let sa = order.firstIndex(of: String(a.prefix { $0 != "." })) ?? order.count
        let sb = order.firstIndex(of: String(b.prefix { $0 != "." })) ?? order.count
        return sa != sb ? sa < sb : a < b
    }
}

/// `artifacts/NAME/experiments.sqlite`: every `pipeline run` of the pipeline, a row each. Many
/// runs may record at once (a sweep's variants): each record is one short transaction, and a writer
/// waits for another's.
///
///     experiments(id, started, seconds, sweep, changes JSON, params JSON, accuracy, macro_f1, history JSON, per_class_f1 JSON)
///     experiment_stages(experiment, position, stage, outcome, fingerprint, content, seconds)
public enum ExperimentLog {
    public static let kind = "signtransfer.experiments"
    public static let schemaVersion = "1"
    public static let fileName = "experiments.sqlite"

    /// The log of the pipeline whose artifacts folder is `artifacts`.
    static func url(of artifacts: URL) -> URL { artifacts.appendingPathComponent(fileName) }

    static func openForWriting(_ url: URL) throws -> DatabaseQueue {
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: url.path, configuration: Artifact.writing)
            try queue.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS experiments (id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, seconds REAL NOT NULL,
                        sweep TEXT, changes TEXT NOT NULL, params TEXT NOT NULL, accuracy REAL, macro_f1 REAL, history TEXT NOT NULL, per_class_f1 TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS experiment_stages (experiment INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
                        position INTEGER NOT NULL, stage TEXT NOT NULL, outcome TEXT NOT NULL, fingerprint TEXT NOT NULL, content TEXT NOT NULL,
                        seconds REAL NOT NULL, PRIMARY KEY (experiment, stage));
                    INSERT OR IGNORE INTO meta VALUES ('kind', '\(kind)'), ('schema_version', '\(schemaVersion)');
                    """)
                // Added later, nullable: a log made before it gains the column and keeps its rows.
                if try !db.columns(in: "experiments").contains(where: { $0.name == "test_images" }) {
                    try db.execute(sql: "ALTER TABLE experiments ADD COLUMN test_images INTEGER")
                }
                try check(Artifact.readMeta(db), url)
            }
        } catch let error as DatabaseError {
            throw StageError("\(url.path): cannot record the experiment: \(error.message ?? "\(error.resultCode)")")
        }
        return queue
    }

    static func check(_ meta: [String: String], _ url: URL) throws {
        guard meta["kind"] == kind else {
            throw StageError("\(url.path): not an experiments log (meta kind is '\(meta["kind"] ?? "missing")'); move it away")
        }
        guard meta["schema_version"] == schemaVersion else {
            throw StageError("\(url.path): experiments log schema \(meta["schema_version"] ?? "missing"), this tool reads \(schemaVersion)")
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Appends `experiment` and returns its id.
    @discardableResult
    public static func record(_ experiment: Experiment, of artifacts: URL) throws -> Int {
        let url = url(of: artifacts)
        let queue = try openForWriting(url)
        return try queue.write { db in
            try db.execute(sql: """
                INSERT INTO experiments (started, seconds, sweep, changes, params, accuracy, macro_f1, history, per_class_f1, test_images)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [ISO8601DateFormatter().string(from: experiment.started), experiment.seconds, experiment.sweep,
                                 try json(experiment.changes), try json(experiment.params), experiment.accuracy, experiment.macroF1, try json(experiment.history),
                                 try json(experiment.perClassF1), experiment.testImages])
            let id = Int(db.lastInsertedRowID)
            for (position, stage) in experiment.stages.enumerated() {
                try db.execute(sql: "INSERT INTO experiment_stages VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [id, position, stage.stage, stage.kind.rawValue, stage.fingerprint, stage.content, stage.seconds])
            }
            return id
        }
    }

    /// Every recorded experiment, oldest first; none when nothing was recorded yet. A row that is not
    /// as written (edited by hand) is an error naming the table and the row.
    public static func all(of artifacts: URL) throws -> [Experiment] {
        let url = url(of: artifacts)
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        do {
            return try read(url, configuration: configuration)
        } catch let error as DatabaseError {
            // "file is not a database" alone does not say which file.
            throw StageError("\(url.path): cannot read the experiments log: \(error.message ?? "\(error.resultCode)"); move it away to start a new one")
        }
    }

    static func read(_ url: URL, configuration: Configuration) throws -> [Experiment] {
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        return try queue.read { db in
            try check(Artifact.readMeta(db), url)
            var stagesByExperiment: [Int: [StageRun]] = [:]
            // Every column read by its stored type (GRDB's `row[...] as Double?` stops the process on
            // text), numbers checked finite and in range.
            for row in try Row.fetchAll(db, sql: "SELECT * FROM experiment_stages ORDER BY experiment, position") {
                let (id, run) = try LogColumns.read(row, file: url.path, table: "experiment_stages",
                                                    which: "experiment \(LogColumns.shown(row, "experiment")), position \(LogColumns.shown(row, "position"))") { row in
                    let id = try RecordColumns.integer(row, "experiment"), stage = try RecordColumns.text(row, "stage")
                    guard let outcome = StageRun.Kind(rawValue: try RecordColumns.text(row, "outcome")) else {
                        throw ColumnProblem(message: "outcome: expected ran, restored or skipped")
                    }
                    let fingerprint = try RecordColumns.text(row, "fingerprint")
                    guard fingerprint.count == 64, fingerprint.allSatisfy(\.isHexDigit) else { throw ColumnProblem(message: "fingerprint: expected 64 hexadecimal digits") }
                    let content = try RecordColumns.text(row, "content")
                    let seconds = try LogColumns.number(row, "seconds", in: 0 ... 1e9)!
                    return (id, StageRun(stage: stage, kind: outcome, seconds: seconds, fingerprint: fingerprint, content: content))
                }
                stagesByExperiment[id, default: []].append(run)
            }
            let decoder = JSONDecoder()
            return try Row.fetchAll(db, sql: "SELECT * FROM experiments ORDER BY id").map { row in
                try LogColumns.read(row, file: url.path, table: "experiments", which: "row id \(LogColumns.shown(row, "id"))") { row in
                    let id = try RecordColumns.integer(row, "id")
                    func decode<T: Decodable>(_ column: String, as type: T.Type) throws -> T {
                        guard case let .string(text) = (row[column] as DatabaseValue).storage, let value = try? decoder.decode(T.self, from: Data(text.utf8)) else {
                            throw ColumnProblem(message: "column \(column) is not the JSON this tool writes")
                        }
                        return value
                    }
                    guard let started = ISO8601DateFormatter().date(from: try RecordColumns.text(row, "started")) else {
                        throw ColumnProblem(message: "column started is not an ISO 8601 time")
                    }
                    let seconds = try LogColumns.number(row, "seconds", in: 0 ... 1e9)!
                    let sweep = try LogColumns.optionalText(row, "sweep")
                    var experiment = Experiment(id: id, started: started, seconds: seconds, sweep: sweep, changes: try decode("changes", as: [String: String].self),
                                                params: try decode("params", as: [String: String].self),
                                                stages: stagesByExperiment[id] ?? [], accuracy: try LogColumns.number(row, "accuracy", in: 0 ... 1, optional: true),
                                                macroF1: try LogColumns.number(row, "macro_f1", in: 0 ... 1, optional: true),
                                                history: try decode("history", as: [Experiment.Epoch].self),
                                                perClassF1: try decode("per_class_f1", as: [String: Double].self))
                    if row.hasColumn("test_images") {
                        experiment.testImages = try LogColumns.number(row, "test_images", in: 0 ... 1e9, optional: true).map { Int($0) }
                    }
                    return experiment
                }
            }
        }
    }
}

/// The experiments log's columns, read as the records' are (`RecordColumns`), with its own advice:
/// the log is not rebuilt by a stage, so an edited row is deleted, not remade.
enum LogColumns {
    /// A column's value as it stands, for naming the row (`NULL`, a number, a short text).
    static func shown(_ row: Row, _ column: String) -> String {
        let value: DatabaseValue = row.hasColumn(column) ? row[column] : .null
        if case let .int64(number) = value.storage { return String(number) }
        return RecordColumns.describe(value)
    }

    /// A finite number in `range` (NULL allowed when `optional`: nil).
    static func number(_ row: Row, _ column: String, in range: ClosedRange<Double>, optional: Bool = false) throws -> Double? {
        let value: DatabaseValue = row[column]
        if optional, value.isNull { return nil }
        let number = try RecordColumns.number(row, column)
        guard number.isFinite, range.contains(number) else {
            throw ColumnProblem(message: "column \(column): expected a number from \(range.lowerBound) to \(range.upperBound), found \(number)")
        }
        return number
    }

    static func optionalText(_ row: Row, _ column: String) throws -> String? {
        let value: DatabaseValue = row[column]
        return value.isNull ? nil : try RecordColumns.text(row, column)
    }

    static func read<Record>(_ row: Row, file: String, table: String, which: String, _ make: (Row) throws -> Record) throws -> Record {
        try RecordColumns.checked(row, file: file, table: table, which: which,
                                  advice: "the log was edited by hand: delete that row (or the file) to go on", make)
    }
}

extension HeadStore {
    /// The figures an experiment keeps from a head: test accuracy and macro-F1 (nil without a test
    /// split), the training history and the per-class F1.
    public static func summary(_ url: URL) throws -> (accuracy: Double?, macroF1: Double?, history: [Experiment.Epoch], perClassF1: [String: Double], testImages: Int?) {
        let (queue, _) = try open(url)
        return try queue.read { db in
            let metrics = try Artifact.keyValues(db, table: "metrics")
            let history = try Row.fetchAll(db, sql: "SELECT epoch, loss, accuracy, val_loss, val_accuracy FROM history ORDER BY epoch").map { row in
                try RecordColumns.checked(row, file: url.path, table: "history") { row in
                    let validationLoss: DatabaseValue = row["val_loss"], validationAccuracy: DatabaseValue = row["val_accuracy"]
                    return Experiment.Epoch(epoch: try RecordColumns.integer(row, "epoch"), loss: try RecordColumns.number(row, "loss"),
                                            accuracy: try RecordColumns.number(row, "accuracy"),
                                            validationLoss: validationLoss.isNull ? nil : try RecordColumns.number(row, "val_loss"),
                                            validationAccuracy: validationAccuracy.isNull ? nil : try RecordColumns.number(row, "val_accuracy"))
                }
            }
            var f1: [String: Double] = [:]
            // Heads before class names (schema 3 and older) call the column `letter`.
            let nameColumn = try db.columns(in: "per_class").contains { $0.name == "name" } ? "name" : "letter"
            for row in try Row.fetchAll(db, sql: "SELECT \(nameColumn) AS name, f1 FROM per_class") {
                let (name, value) = try RecordColumns.checked(row, file: url.path, table: "per_class") { row in
                    (try RecordColumns.text(row, "name"), try RecordColumns.number(row, "f1"))
                }
                f1[name] = value
            }
            // Figures that are not numbers in range are no figures: an edited metric is refused.
            func figure(_ key: String) throws -> Double? {
                guard let text = metrics[key] else { return nil }
                guard let value = Double(text), value.isFinite, (0 ... 1).contains(value) else {
                    throw StageError("\(url.path): table metrics, key \(key): expected a number from 0 to 1, found '\(excerpt(text))'")
                }
                return value
            }
            let tested = metrics["test_images"].flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }
            return (try figure("accuracy"), try figure("macro_f1"), history, f1, tested)
        }
    }
}
