import Dataset
import Foundation
import GRDB
import PipelineKit

/// `head.sqlite`, the train stage's output:
/// - `classes(idx, label, name)`: the output units, in order, with the dataset's class names;
/// - `layers(layer, inputs, outputs, weights, bias)`: float32 little-endian, weights `[inputs x outputs]`;
/// - `standardization(dimension, mean, deviation)`: what each input dimension is z-scored with before
///   the first layer (empty when the head was trained on raw features);
/// - `history(epoch, loss, accuracy, val_loss, val_accuracy, seconds)`;
/// - `predictions(id, split, label, predicted, confidence, probabilities)`: the test split;
/// - `metrics(key, value)`, `per_class(label, name, precision, recall, f1, support)`,
///   `confusion(true_label, predicted_label, count)`;
/// - `backbone_weights(name, kernel, bias)`: with `--fine-tune conv5`, the trained convolutions in
///   Keras's own form (raw HWIO kernel and bias, float32 little-endian; their BatchNorms stay the
///   backbone's), which evaluation and predict run in place of the backbone file's;
/// - `params(key, value)`: the training parameters' canonical values and the backbone's provenance;
/// - `meta`: kind `signtransfer.head`, `content_sha256` over classes, weights, predictions and params.
///
/// Written by `write` alone: the one place its rows are inserted and hashed.
public enum HeadStore {
    public static let kind = "signtransfer.head"
    /// 2: the standardization table. 3: the backbone_weights table (fine-tuning). 4: class names
    /// (`name` for `letter`).
    public static let schemaVersion = "4"

    public static func floats(_ values: [Float]) -> Data {
        values.withUnsafeBufferPointer { FeaturesStore.encode($0) }
    }

    public static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE classes (idx INTEGER PRIMARY KEY NOT NULL, label INTEGER NOT NULL, name TEXT NOT NULL);
            CREATE TABLE layers (layer INTEGER PRIMARY KEY NOT NULL, inputs INTEGER NOT NULL, outputs INTEGER NOT NULL,
                                 weights BLOB NOT NULL, bias BLOB NOT NULL);
            CREATE TABLE standardization (dimension INTEGER PRIMARY KEY NOT NULL, mean REAL NOT NULL, deviation REAL NOT NULL);
            CREATE TABLE history (epoch INTEGER PRIMARY KEY NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL,
                                  val_loss REAL, val_accuracy REAL, seconds REAL NOT NULL);
            CREATE TABLE predictions (id INTEGER PRIMARY KEY NOT NULL, split TEXT NOT NULL, label INTEGER NOT NULL,
                                      predicted INTEGER NOT NULL, confidence REAL NOT NULL, probabilities BLOB NOT NULL);
            CREATE TABLE metrics (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE per_class (label INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, precision REAL NOT NULL,
                                    recall REAL NOT NULL, f1 REAL NOT NULL, support INTEGER NOT NULL);
            CREATE TABLE confusion (true_label INTEGER NOT NULL, predicted_label INTEGER NOT NULL, count INTEGER NOT NULL,
                                    PRIMARY KEY (true_label, predicted_label));
            CREATE TABLE params (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE backbone_weights (name TEXT PRIMARY KEY NOT NULL, kernel BLOB NOT NULL, bias BLOB NOT NULL);
            """)
    }

    public static func open(_ url: URL) throws -> (DatabaseQueue, [String: String]) {
        // Version 1 heads (before standardization) are read as heads trained on raw features.
        try Artifact.open(url, kind: kind, role: "a train output (head.sqlite)", versions: ["1", "2", "3", schemaVersion])
    }

    /// A stored head as it is on disk: its classes, its layers' weights, its input standardization
    /// and the provenance it was trained with. The stages turn it into a classifier.
    public struct Stored: Sendable {
        public struct Layer: Sendable, Equatable {
            public var inputs: Int, outputs: Int
            /// `[inputs x outputs]`, row-major.
            public var weights: [Float]
            public var bias: [Float]

            public init(inputs: Int, outputs: Int, weights: [Float], bias: [Float]) {
                (self.inputs, self.outputs, self.weights, self.bias) = (inputs, outputs, weights, bias)
            }
        }

        /// The label of each output unit.
        public var labels: [Int]
        /// Each output unit's class name (a head before names: Sign MNIST's letters, which its
        /// `letter` column held).
        public var names: [String]
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
        let (queue, meta) = try open(url)
        let nameColumn = ["1", "2", "3"].contains(meta[Artifact.schemaKey] ?? "") ? "letter" : "name"
        return try queue.read { db in
            let classes = try RecordColumns.fetch(db, file: url.path, table: "classes", sql: "SELECT label, \(nameColumn) AS name FROM classes ORDER BY idx") {
                (try RecordColumns.label($0), try RecordColumns.text($0, "name"))
            }
            let labels = classes.map(\.0), names = classes.map(\.1)
            if !classes.isEmpty, let problem = ClassNames(classes.map { ($0.0, $0.1) }).problem { throw StageError("\(url.path): table classes: \(problem)") }
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
            return Stored(labels: labels, names: names, layers: layers, standardization: standardization, params: params, backboneWeights: backboneWeights)
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

    /// Everything a trained head's file holds, as train computed it.
    public struct Contents {
        public struct Prediction {
            public var id: Int, split: String, label: Int, predicted: Int, confidence: Double, probabilities: [Float]
            public init(id: Int, split: String, label: Int, predicted: Int, confidence: Double, probabilities: [Float]) {
                (self.id, self.split, self.label, self.predicted, self.confidence, self.probabilities) = (id, split, label, predicted, confidence, probabilities)
            }
        }
        public struct Epoch {
            public var epoch: Int, loss: Double, accuracy: Double, validationLoss: Double?, validationAccuracy: Double?, seconds: Double
            public init(epoch: Int, loss: Double, accuracy: Double, validationLoss: Double?, validationAccuracy: Double?, seconds: Double) {
                (self.epoch, self.loss, self.accuracy, self.validationLoss, self.validationAccuracy, self.seconds) = (epoch, loss, accuracy, validationLoss, validationAccuracy, seconds)
            }
        }
        public struct ClassFigures {
            public var label: Int, precision: Double, recall: Double, f1: Double, support: Int
            public init(label: Int, precision: Double, recall: Double, f1: Double, support: Int) {
                (self.label, self.precision, self.recall, self.f1, self.support) = (label, precision, recall, f1, support)
            }
        }

        /// The output units' labels, in order, and the dataset's names.
        public var labels: [Int]
        public var names: ClassNames
        public var layers: [Stored.Layer]
        public var standardization: (mean: [Float], deviation: [Float])?
        /// Fine-tuned convolutions (Keras layer name, raw kernel, bias), in order.
        public var backboneWeights: [(name: String, kernel: [Float], bias: [Float])]
        public var history: [Epoch]
        public var predictions: [Prediction]
        public var metrics: [String: String]
        public var perClass: [ClassFigures]
        /// (true label, predicted label, count), zero counts left out.
        public var confusion: [(truth: Int, predicted: Int, count: Int)]
        public var params: [String: String]

        public init(labels: [Int], names: ClassNames, layers: [Stored.Layer], standardization: (mean: [Float], deviation: [Float])?,
                    backboneWeights: [(name: String, kernel: [Float], bias: [Float])], history: [Epoch], predictions: [Prediction],
                    metrics: [String: String], perClass: [ClassFigures], confusion: [(truth: Int, predicted: Int, count: Int)], params: [String: String]) {
            self.labels = labels
            self.names = names
            self.layers = layers
            self.standardization = standardization
            self.backboneWeights = backboneWeights
            self.history = history
            self.predictions = predictions
            self.metrics = metrics
            self.perClass = perClass
            self.confusion = confusion
            self.params = params
        }
    }

    /// Writes `contents` to `url` (a fresh file) and returns the content hash: over the classes
    /// (labels and names), the layers, the standardization, the fine-tuned convolutions, the
    /// predictions and the params, in that order.
    public static func write(_ contents: Contents, to url: URL) throws -> String {
        var hasher = ContentHasher()
        let db = try Artifact.create(at: url)
        try db.write { db in
            try createTables(db)
            for (index, label) in contents.labels.enumerated() {
                let name = contents.names.name(label)
                try db.execute(sql: "INSERT INTO classes VALUES (?, ?, ?)", arguments: [index, label, name])
                hasher.update(integer: Int64(label))
                hasher.update(name)
            }
            for (index, layer) in contents.layers.enumerated() {
                let weights = floats(layer.weights), bias = floats(layer.bias)
                try db.execute(sql: "INSERT INTO layers VALUES (?, ?, ?, ?, ?)", arguments: [index, layer.inputs, layer.outputs, weights, bias])
                hasher.update(weights)
                hasher.update(bias)
            }
            if let standardization = contents.standardization {
                for d in standardization.mean.indices {
                    try db.execute(sql: "INSERT INTO standardization VALUES (?, ?, ?)",
                                   arguments: [d, Double(standardization.mean[d]), Double(standardization.deviation[d])])
                }
                hasher.update(floats(standardization.mean))
                hasher.update(floats(standardization.deviation))
            }
            for conv in contents.backboneWeights {
                let kernel = floats(conv.kernel), bias = floats(conv.bias)
                try db.execute(sql: "INSERT INTO backbone_weights VALUES (?, ?, ?)", arguments: [conv.name, kernel, bias])
                hasher.update(conv.name)
                hasher.update(kernel)
                hasher.update(bias)
            }
            for record in contents.history {
                try db.execute(sql: "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [record.epoch, record.loss, record.accuracy, record.validationLoss, record.validationAccuracy, record.seconds])
            }
            for prediction in contents.predictions {
                let probabilities = floats(prediction.probabilities)
                try db.execute(sql: "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [prediction.id, prediction.split, prediction.label, prediction.predicted, prediction.confidence, probabilities])
                hasher.update(integer: Int64(prediction.id))
                hasher.update(integer: Int64(prediction.predicted))
                hasher.update(probabilities)
            }
            for row in contents.perClass {
                try db.execute(sql: "INSERT INTO per_class VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [row.label, contents.names.name(row.label), row.precision, row.recall, row.f1, row.support])
            }
            for cell in contents.confusion where cell.count > 0 {
                try db.execute(sql: "INSERT INTO confusion VALUES (?, ?, ?)", arguments: [cell.truth, cell.predicted, cell.count])
            }
            for (key, value) in contents.metrics.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO metrics VALUES (?, ?)", arguments: [key, value])
            }
            for (key, value) in contents.params.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO params VALUES (?, ?)", arguments: [key, value])
                hasher.update(key)
                hasher.update(value)
            }
            try Artifact.writeMeta(db, [Artifact.kindKey: kind, Artifact.schemaKey: schemaVersion, Artifact.contentKey: hasher.finalize(),
                                        Artifact.toolKey: toolVersion])
        }
        try db.close()
        return hasher.finalize()
    }
}
