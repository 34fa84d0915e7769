import Foundation
import GRDB
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
    public func describeChanges(order: [String] = []) -> String { describe(changes: changes, order: order) }
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
                INSERT INTO experiments (started, seconds, sweep, changes, params, accuracy, macro_f1, history, per_class_f1) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [ISO8601DateFormatter().string(from: experiment.started), experiment.seconds, experiment.sweep,
                                 try json(experiment.changes), try json(experiment.params), experiment.accuracy, experiment.macroF1, try json(experiment.history),
                                 try json(experiment.perClassF1)])
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
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        return try queue.read { db in
            try check(Artifact.readMeta(db), url)
            var stagesByExperiment: [Int: [StageRun]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM experiment_stages ORDER BY experiment, position") {
                let id: Int? = row["experiment"]
                let outcome = (row["outcome"] as String?).flatMap(StageRun.Kind.init), fingerprint: String? = row["fingerprint"]
                guard let id, let stage = row["stage"] as String?, let outcome,
                      let fingerprint, fingerprint.count == 64, fingerprint.allSatisfy(\.isHexDigit),
                      let content = row["content"] as String?, let seconds = row["seconds"] as Double?, seconds.isFinite else {
                    throw StageError("\(url.path): table experiment_stages, experiment \(id.map(String.init) ?? "NULL"): expected a stage, an outcome (ran, restored, skipped), a 64-digit fingerprint, a content hash and seconds")
                }
                stagesByExperiment[id, default: []].append(StageRun(stage: stage, kind: outcome, seconds: seconds, fingerprint: fingerprint, content: content))
            }
            let decoder = JSONDecoder()
            return try Row.fetchAll(db, sql: "SELECT * FROM experiments ORDER BY id").map { row in
                let id: Int = row["id"]
                func fail(_ what: String) -> StageError { StageError("\(url.path): table experiments, row id \(id): \(what)") }
                func decode<T: Decodable>(_ column: String, as type: T.Type) throws -> T {
                    guard let text = row[column] as String?, let value = try? decoder.decode(T.self, from: Data(text.utf8)) else {
                        throw fail("column \(column) is not the JSON this tool writes")
                    }
                    return value
                }
                guard let startedText = row["started"] as String?, let started = ISO8601DateFormatter().date(from: startedText) else {
                    throw fail("column started is not an ISO 8601 time")
                }
                guard let seconds = row["seconds"] as Double?, seconds.isFinite, seconds >= 0 else { throw fail("column seconds is not a duration") }
                return Experiment(id: id, started: started, seconds: seconds, sweep: row["sweep"], changes: try decode("changes", as: [String: String].self),
                                  params: try decode("params", as: [String: String].self),
                                  stages: stagesByExperiment[id] ?? [], accuracy: row["accuracy"], macroF1: row["macro_f1"],
                                  history: try decode("history", as: [Experiment.Epoch].self),
                                  perClassF1: try decode("per_class_f1", as: [String: Double].self))
            }
        }
    }
}

extension HeadStore {
    /// The figures an experiment keeps from a head: test accuracy and macro-F1 (nil without a test
    /// split), the training history and the per-class F1.
    public static func summary(_ url: URL) throws -> (accuracy: Double?, macroF1: Double?, history: [Experiment.Epoch], perClassF1: [String: Double]) {
        let (queue, _) = try open(url)
        return try queue.read { db in
            let metrics = try Artifact.keyValues(db, table: "metrics")
            let history = try Row.fetchAll(db, sql: "SELECT epoch, loss, accuracy, val_loss, val_accuracy FROM history ORDER BY epoch").map { row in
                guard let epoch = row["epoch"] as Int?, let loss = row["loss"] as Double?, let accuracy = row["accuracy"] as Double? else {
                    throw StageError("\(url.path): table history: expected an epoch, a loss and an accuracy in every row")
                }
                return Experiment.Epoch(epoch: epoch, loss: loss, accuracy: accuracy, validationLoss: row["val_loss"], validationAccuracy: row["val_accuracy"])
            }
            var f1: [String: Double] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT letter, f1 FROM per_class") {
                guard let letter = row["letter"] as String?, let value = row["f1"] as Double? else {
                    throw StageError("\(url.path): table per_class: expected a letter and an F1 in every row")
                }
                f1[letter] = value
            }
            return (metrics["accuracy"].flatMap(Double.init), metrics["macro_f1"].flatMap(Double.init), history, f1)
        }
    }
}
