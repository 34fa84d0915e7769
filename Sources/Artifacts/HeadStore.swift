import Foundation
import GRDB
import PipelineKit

/// `head.sqlite`, the train stage's output:
/// - `classes(idx, label, letter)`: the output units, in order;
/// - `layers(layer, inputs, outputs, weights, bias)`: float32 little-endian, weights `[inputs x outputs]`;
/// - `standardization(dimension, mean, deviation)`: what each input dimension is z-scored with before
///   the first layer (empty when the head was trained on raw features);
/// - `history(epoch, loss, accuracy, val_loss, val_accuracy, seconds)`;
/// - `predictions(id, split, label, predicted, confidence, probabilities)`: the test split;
/// - `metrics(key, value)`, `per_class(label, letter, precision, recall, f1, support)`,
///   `confusion(true_label, predicted_label, count)`;
/// - `backbone_weights(name, kernel, bias)`: with `--fine-tune conv5`, the trained convolutions in
///   Keras's own form (raw HWIO kernel and bias, float32 little-endian; their BatchNorms stay the
///   backbone's), which evaluation and predict run in place of the backbone file's;
/// - `params(key, value)`: the training options and the backbone's provenance;
/// - `meta`: kind `signtransfer.head`, `content_sha256` over classes, weights and predictions.
public enum HeadStore {
    public static let kind = "signtransfer.head"
    /// 2: the standardization table. 3: the backbone_weights table (fine-tuning).
    public static let schemaVersion = "3"

    public static func floats(_ values: [Float]) -> Data {
        values.withUnsafeBufferPointer { FeaturesStore.encode($0) }
    }

    public static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE classes (idx INTEGER PRIMARY KEY NOT NULL, label INTEGER NOT NULL, letter TEXT NOT NULL);
            CREATE TABLE layers (layer INTEGER PRIMARY KEY NOT NULL, inputs INTEGER NOT NULL, outputs INTEGER NOT NULL,
                                 weights BLOB NOT NULL, bias BLOB NOT NULL);
            CREATE TABLE standardization (dimension INTEGER PRIMARY KEY NOT NULL, mean REAL NOT NULL, deviation REAL NOT NULL);
            CREATE TABLE history (epoch INTEGER PRIMARY KEY NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL,
                                  val_loss REAL, val_accuracy REAL, seconds REAL NOT NULL);
            CREATE TABLE predictions (id INTEGER PRIMARY KEY NOT NULL, split TEXT NOT NULL, label INTEGER NOT NULL,
                                      predicted INTEGER NOT NULL, confidence REAL NOT NULL, probabilities BLOB NOT NULL);
            CREATE TABLE metrics (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE per_class (label INTEGER PRIMARY KEY NOT NULL, letter TEXT NOT NULL, precision REAL NOT NULL,
                                    recall REAL NOT NULL, f1 REAL NOT NULL, support INTEGER NOT NULL);
            CREATE TABLE confusion (true_label INTEGER NOT NULL, predicted_label INTEGER NOT NULL, count INTEGER NOT NULL,
                                    PRIMARY KEY (true_label, predicted_label));
            CREATE TABLE params (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE backbone_weights (name TEXT PRIMARY KEY NOT NULL, kernel BLOB NOT NULL, bias BLOB NOT NULL);
            """)
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        // Version 1 heads (before standardization) are read as heads trained on raw features.
        try Artifact.open(url, kind: kind, role: "a train output (head.sqlite)", versions: ["1", "2", schemaVersion])
    }

    /// A stored head as it is on disk: its classes, its layers' weights, its input standardization
    /// and the provenance it was trained with. The stages turn it into a classifier.
    public struct Stored: Sendable {
        public struct Layer: Sendable, Equatable {
            public var inputs: Int, outputs: Int
            /// `[inputs x outputs]`, row-major.
            public var weights: [Float]
            public var bias: [Float]
        }

        /// The label of each output unit.
        public var labels: [Int]
        public var layers: [Layer]
        /// Per input dimension; nil for a head trained on raw features.
        public var standardization: (mean: [Float], deviation: [Float])?
        public var params: [String: String]
        /// Fine-tuned backbone convolutions by Keras layer name (`conv5_block1_1_conv`): raw kernel
        /// and bias; empty for a head on frozen features. Their sizes are checked against the
        /// network when the backbone is built.
        public var backboneWeights: [String: (kernel: [Float], bias: [Float])]
    }

    public static func load(_ url: URL) throws -> Stored {
        let (queue, _) = try open(url)
        return try queue.read { db in
            let labels = try RecordColumns.fetch(db, file: url.path, table: "classes", sql: "SELECT label FROM classes ORDER BY idx") {
                try RecordColumns.label($0)
            }
            let layers = try RecordColumns.fetch(db, file: url.path, table: "layers", sql: "SELECT inputs, outputs, weights, bias FROM layers ORDER BY layer") { row in
                let inputs = try RecordColumns.integer(row, "inputs"), outputs = try RecordColumns.integer(row, "outputs")
                guard inputs > 0, outputs > 0 else { throw ColumnProblem(message: "inputs and outputs: expected positive sizes, found \(inputs) and \(outputs)") }
                let weights = FeaturesStore.decode(try RecordColumns.blob(row, "weights", bytes: inputs * outputs * 4))
                let bias = FeaturesStore.decode(try RecordColumns.blob(row, "bias", bytes: outputs * 4))
                guard weights.allSatisfy(\.isFinite), bias.allSatisfy(\.isFinite) else {
                    throw ColumnProblem(message: "weights and bias: expected finite numbers, found NaN or infinity")
                }
                return Stored.Layer(inputs: inputs, outputs: outputs, weights: weights, bias: bias)
            }
            guard !labels.isEmpty, !layers.isEmpty else {
                throw StageError("\(url.path): the head has no classes or no layers: not a trained head; rerun train")
            }
            for (index, pair) in zip(layers, layers.dropFirst()).enumerated() where pair.0.outputs != pair.1.inputs {
                throw StageError("\(url.path): table layers: layer \(index) has \(pair.0.outputs) outputs but layer \(index + 1) takes \(pair.1.inputs) inputs")
            }
            guard layers.last!.outputs == labels.count else {
                throw StageError("\(url.path): the last layer has \(layers.last!.outputs) outputs for \(labels.count) classes")
            }
            let params = try Artifact.keyValues(db, table: "params")
            let standardization = try loadStandardization(db, file: url.path, dimension: layers.first?.inputs ?? 0)
            var backboneWeights: [String: (kernel: [Float], bias: [Float])] = [:]
            if try db.tableExists("backbone_weights") {
                let rows = try RecordColumns.fetch(db, file: url.path, table: "backbone_weights", sql: "SELECT name, kernel, bias FROM backbone_weights ORDER BY name") { row in
                    let name = try RecordColumns.text(row, "name")
                    let kernel = FeaturesStore.decode(try RecordColumns.blob(row, "kernel", multipleOf: 4))
                    let bias = FeaturesStore.decode(try RecordColumns.blob(row, "bias", multipleOf: 4))
                    guard !kernel.isEmpty, !bias.isEmpty, kernel.allSatisfy(\.isFinite), bias.allSatisfy(\.isFinite) else {
                        throw ColumnProblem(message: "kernel and bias: expected finite numbers, found none, NaN or infinity")
                    }
                    return (name, kernel, bias)
                }
                for row in rows { backboneWeights[row.0] = (row.1, row.2) }
            }
            return Stored(labels: labels, layers: layers, standardization: standardization, params: params, backboneWeights: backboneWeights)
        }
    }

    /// The stored standardization, checked: one row per input dimension, numbered from 0, every
    /// mean finite and every deviation positive; nil when the table is empty (a head trained raw).
    static func loadStandardization(_ db: Database, file: String, dimension: Int) throws -> (mean: [Float], deviation: [Float])? {
        // Heads written before standardization existed (schema 1) have no such table: they were trained raw.
        guard try db.tableExists("standardization") else { return nil }
        let rows = try RecordColumns.fetch(db, file: file, table: "standardization",
                                           sql: "SELECT dimension, mean, deviation FROM standardization ORDER BY dimension") { row in
            (number: try RecordColumns.integer(row, "dimension"), mean: try RecordColumns.number(row, "mean"), deviation: try RecordColumns.number(row, "deviation"))
        }
        guard !rows.isEmpty else { return nil }
        guard rows.count == dimension else {
            throw StageError("\(file): table standardization has \(rows.count) rows, expected one for each of the \(dimension) input dimensions")
        }
        var mean: [Float] = [], deviation: [Float] = []
        for (index, row) in rows.enumerated() {
            let (number, m, d) = row
            guard number == index, m.isFinite, d.isFinite, d > 0 else {
                throw StageError("\(file): table standardization, row for dimension \(index): expected the dimension number, a finite mean and a positive deviation")
            }
            mean.append(Float(m))
            deviation.append(Float(d))
        }
        return (mean, deviation)
    }
}
