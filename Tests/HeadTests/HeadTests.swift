import Artifacts
import Backbone
import Dataset
import Fixtures
import Foundation
import GRDB
import Head
import Numerical
import PipelineKit
import Stages
import Testing

/// A features.sqlite written by hand: `vectors` per split with labels, of any length, as the layer
/// `conv5_block3_out`.
func writeFeatures(_ url: URL, rows: [(split: String, label: Int, vector: [Float])], random: Bool = false) throws {
    let queue = try Artifact.create(at: url)
    try queue.write { db in
        try FeaturesStore.createTables(db)
        var ignored = ContentHasher()
        try ClassesTable.write(db, .signMNIST, into: &ignored)
        for (index, row) in rows.enumerated() {
            try db.execute(sql: "INSERT INTO features VALUES (?, ?, ?, 'conv5_block3_out', ?)",
                           arguments: [index + 1, row.split, row.label, row.vector.withUnsafeBufferPointer { FeaturesStore.encode($0) }])
        }
        try db.execute(sql: "INSERT INTO backbone VALUES ('weights', ?), ('random', ?), ('layers', 'conv5_block3_out')",
                       arguments: [random ? "random:5" : "hand-made clusters", random ? "1" : "0"])
        try Artifact.writeMeta(db, [Artifact.kindKey: FeaturesStore.kind, Artifact.schemaKey: FeaturesStore.schemaVersion, Artifact.contentKey: "test"])
    }
    try queue.close()
}

/// Separable clusters in 2048 dimensions: label k has a bump on features 10k ..< 10k+10, noise of
/// deviation 0.5 everywhere.
func clusterRows(train: Int, test: Int, labels: [Int] = [0, 1, 2, 3], seed: UInt64 = 1) -> [(split: String, label: Int, vector: [Float])] {
    var generator = SplitMix64(seed: seed)
    return (0 ..< train + test).map { index in
        let label = labels[index % labels.count]
        var vector = (0 ..< 2048).map { _ in Float(generator.nextNormal() * 0.5) }
        for f in 10 * label ..< 10 * label + 10 { vector[f] += 2 }
        return (index < train ? "train" : "test", label, vector)
    }
}

@Suite struct Gradients {
    @Test func matchFiniteDifferences() {
        var generator = SplitMix64(seed: 3)
        var network = DenseNetwork(sizes: [5, 4, 3, 3], dropout: 0, generator: &generator)
        let x: [Float] = (0 ..< 4 * 5).map { _ in Float(generator.nextNormal()) }
        let labels = [0, 2, 1, 2]
        func loss(_ net: DenseNetwork) -> Double {
            x.withUnsafeBufferPointer { net.lossAndGradients($0, labels: labels, dropoutMasks: nil).loss }
        }
        let analytic = x.withUnsafeBufferPointer { network.lossAndGradients($0, labels: labels, dropoutMasks: nil).gradients }
        var worst = 0.0
        for layer in network.layers.indices {
            for i in network.layers[layer].weights.indices {
                let saved = network.layers[layer].weights[i]
                network.layers[layer].weights[i] = saved + 1e-2
                let up = loss(network)
                network.layers[layer].weights[i] = saved - 1e-2
                let down = loss(network)
                network.layers[layer].weights[i] = saved
                worst = max(worst, abs((up - down) / 2e-2 - Double(analytic.weights[layer][i])))
            }
            for i in network.layers[layer].bias.indices {
                let saved = network.layers[layer].bias[i]
                network.layers[layer].bias[i] = saved + 1e-2
                let up = loss(network)
                network.layers[layer].bias[i] = saved - 1e-2
                let down = loss(network)
                network.layers[layer].bias[i] = saved
                worst = max(worst, abs((up - down) / 2e-2 - Double(analytic.bias[layer][i])))
            }
        }
        #expect(worst < 2e-3, "largest gradient error \(worst)")
    }

    @Test func dropoutMasksScaleTheGradient() {
        var generator = SplitMix64(seed: 4)
        let network = DenseNetwork(sizes: [3, 4, 2], dropout: 0.5, generator: &generator)
        let x: [Float] = [1, -2, 0.5, 0.3, 0.2, -0.1]
        let none = x.withUnsafeBufferPointer { network.lossAndGradients($0, labels: [0, 1], dropoutMasks: nil) }
        let keepAll = x.withUnsafeBufferPointer { network.lossAndGradients($0, labels: [0, 1], dropoutMasks: [[Float](repeating: 1, count: 8)]) }
        let dropAll = x.withUnsafeBufferPointer { network.lossAndGradients($0, labels: [0, 1], dropoutMasks: [[Float](repeating: 0, count: 8)]) }
        #expect(none.loss == keepAll.loss)
        #expect(dropAll.gradients.weights[0].allSatisfy { $0 == 0 })
        #expect(abs(dropAll.loss - log(2)) < 1e-6)
    }
}

@Suite struct MetricsByHand {
    @Test func confusionPrecisionRecallF1() {
        // truth:     A A A B B C
        // predicted: A A B B C C
        let evaluation = Evaluation(truth: [0, 0, 0, 1, 1, 2], predicted: [0, 0, 1, 1, 2, 2])
        #expect(evaluation.labels == [0, 1, 2])
        #expect(evaluation.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
        #expect(abs(evaluation.accuracy - 4.0 / 6) < 1e-12)
        let a = evaluation.perClass[0], b = evaluation.perClass[1], c = evaluation.perClass[2]
        #expect(a.precision == 1 && abs(a.recall - 2.0 / 3) < 1e-12 && abs(a.f1 - 0.8) < 1e-12 && a.support == 3)
        #expect(b.precision == 0.5 && b.recall == 0.5 && b.f1 == 0.5 && b.support == 2)
        #expect(c.precision == 0.5 && c.recall == 1 && abs(c.f1 - 2.0 / 3) < 1e-12 && c.support == 1)
        #expect(abs(evaluation.macroF1 - (0.8 + 0.5 + 2.0 / 3) / 3) < 1e-12)
    }

    @Test func aPredictedLabelAbsentFromTruthCountsInTheMacroAverage() {
        let evaluation = Evaluation(truth: [0, 0], predicted: [0, 5])
        #expect(evaluation.labels == [0, 5])
        #expect(evaluation.perClass[1].support == 0 && evaluation.perClass[1].f1 == 0)
        #expect(abs(evaluation.macroF1 - (2.0 / 3) / 2) < 1e-12)
    }
}

@Suite struct TrainingLoop {
    @Test func sameSeedSameWeightsAndMetrics() throws {
        let rows = clusterRows(train: 120, test: 40)
        let features = rows.filter { $0.split == "train" }.flatMap(\.vector)
        let labels = rows.filter { $0.split == "train" }.map(\.label)
        var options = TrainingOptions()
        options.epochs = 4
        options.hidden = [16]
        let a = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        let b = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        #expect(a.network.layers == b.network.layers)
        #expect(a.history.map(\.loss) == b.history.map(\.loss))
        options.seed = 1
        let c = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        #expect(a.network.layers != c.network.layers)
    }

    @Test func earlyStoppingRestoresTheBestEpochsWeights() {
        // Labels unrelated to the features: validation loss soon rises while training loss falls.
        var generator = SplitMix64(seed: 9)
        let count = 200
        let features = (0 ..< count * 2048).map { _ in Float(generator.nextNormal()) }
        let labels = (0 ..< count).map { _ in Int(generator.next() % 4) }
        var options = TrainingOptions()
        options.hidden = [64]
        options.epochs = 40
        options.patience = 3
        options.validation = 0.25
        options.learningRate = 0.003
        // A constant rate: with cosine decay the rate at each step depends on the number of epochs.
        options.schedule = .constant
        let result = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        #expect(result.stoppedEarly)
        let losses = result.history.map { $0.validationLoss! }
        let best = losses.indices.min { losses[$0] < losses[$1] }! + 1
        #expect(result.bestEpoch == best)
        #expect(result.history.count == best + options.patience)
        // The same run cut at the best epoch ends with exactly the weights that were restored.
        options.epochs = best
        options.patience = 0
        let cut = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        #expect(cut.network.layers == result.network.layers)
    }
}

@Suite struct TrainStage {
    @Test func trainsEvaluatesAndReports() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite")
        // Standardized, the 2,000 noise dimensions weigh as much as the 40 that carry the classes: a
        // head needs more than a few dozen rows per class to learn to ignore them.
        try writeFeatures(input, rows: clusterRows(train: 800, test: 40, labels: [0, 1, 2, 24]))
        var options = TrainingOptions()
        options.epochs = 15
        var lines: [String] = []
        let output = folder.appendingPathComponent("head.sqlite")
        let report = try Train.run(.init(input: input, output: output, params: try trainParams(options), log: { lines.append($0) }))
        #expect(report.classes == [0, 1, 2, 24])
        #expect(report.evaluation!.accuracy > 0.9)
        #expect(lines.filter { $0.hasPrefix("epoch") }.count == report.history.count)
        #expect(lines.first { $0.hasPrefix("epoch   1") }?.contains("val_loss") == true)

        let model = try HeadModel(output)
        #expect(model.labels == [0, 1, 2, 24])
        #expect(model.network.layers.map(\.outputs) == [256, 4])
        let (queue, _) = try HeadStore.open(output)
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM predictions") } == 40)
        #expect(try queue.read { try String.fetchOne($0, sql: "SELECT name FROM classes WHERE idx = 3") } == "Y")

        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: report.metricsURL)) as! [String: Any]
        #expect(metrics["accuracy"] as? Double == report.evaluation!.accuracy)
        #expect((metrics["confusion"] as? [[Int]])?.count == 4)
        let html = try String(contentsOf: report.reportURL, encoding: .utf8)
        #expect(html.contains("hand-made clusters"))
        #expect(html.contains("<svg"))
        #expect(!html.contains("RANDOM"))
        #expect(html.contains("macro-F1"))

        // Same features, same seed: the same head.
        let again = try Train.run(.init(input: input, output: folder.appendingPathComponent("again.sqlite"), params: try trainParams(options)))
        #expect(again.contentSHA256 == report.contentSHA256)
    }

    @Test func randomBackboneIsBannered() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite")
        try writeFeatures(input, rows: clusterRows(train: 40, test: 8), random: true)
        var options = TrainingOptions()
        options.epochs = 2
        let report = try Train.run(.init(input: input, output: folder.appendingPathComponent("head.sqlite"), params: try trainParams(options)))
        #expect(report.randomBackbone)
        let html = try String(contentsOf: report.reportURL, encoding: .utf8)
        #expect(html.contains("class=\"banner\""))
        #expect(html.contains("random:5"))
    }

    @Test func noTestSplitSkipsEvaluationAndSaysSo() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite")
        try writeFeatures(input, rows: clusterRows(train: 40, test: 0))
        var options = TrainingOptions()
        options.epochs = 2
        var lines: [String] = []
        let report = try Train.run(.init(input: input, output: folder.appendingPathComponent("head.sqlite"), params: try trainParams(options), log: { lines.append($0) }))
        #expect(report.evaluation == nil)
        #expect(lines.contains("no test split: evaluation skipped"))
        #expect(try String(contentsOf: report.reportURL, encoding: .utf8).contains("No test split"))
    }

    @Test func badFeaturesAreRefusedAndNothingIsWritten() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func failure(_ rows: [(split: String, label: Int, vector: [Float])]) throws -> String {
            let input = folder.appendingPathComponent("f-\(UUID().uuidString).sqlite")
            try writeFeatures(input, rows: rows)
            do {
                _ = try Train.run(.init(input: input, output: folder.appendingPathComponent("head.sqlite"), params: try trainParams(TrainingOptions())))
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        var rows = clusterRows(train: 20, test: 4)
        #expect(try failure(rows.map { ($0.split, 3, $0.vector) }).contains("the train split has a single class (D)"))
        rows[5].vector[7] = .nan
        #expect(try failure(rows).contains("row id 6, layer conv5_block3_out holds nan at position 7"))
        rows[5].vector[7] = .infinity
        #expect(try failure(rows).contains("row id 6, layer conv5_block3_out holds inf at position 7"))
        rows[5].vector = Array(rows[5].vector.prefix(100))
        #expect(try failure(rows).contains("row id 6, layer conv5_block3_out has a vector of 100 values, expected 2048"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("head.sqlite").path))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("report.html").path))
    }
}

@Suite struct Divergence {
    /// Raw features at float32's largest value overflow the hidden layer: the loss is NaN, training
    /// stops and train says what to do, writing nothing.
    @Test func aLossThatIsNoLongerANumberStopsTrainingWithAMessage() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite"), output = folder.appendingPathComponent("head.sqlite")
        let rows = clusterRows(train: 40, test: 8).map { ($0.split, $0.label, $0.vector.map { _ in Float.greatestFiniteMagnitude }) }
        try writeFeatures(input, rows: rows)
        var options = TrainingOptions()
        options.hidden = [64]  // of 64 units, some overflow to infinity; the next layer's sums of them are NaN
        options.standardize = .none
        options.epochs = 3
        let error = #expect(throws: StageError.self) { try Train.run(.init(input: input, output: output, params: try trainParams(options))) }
        #expect(error?.description.contains("training diverged in epoch 1: the loss became NaN or infinite") == true, "\(String(describing: error))")
        #expect(error?.description.contains("try a smaller --learning-rate (it was 0.001) or --standardize zscore") == true)
        #expect(!FileManager.default.fileExists(atPath: output.path))
    }
}

/// Clusters that a head fed raw vectors cannot learn once shifted and scaled: ten classes (labels 0-8
/// and 10), each with a
/// bump of +2 on its own ten dimensions, noise of deviation 1 everywhere, then `scale * x + offset`
/// in every dimension (pooled backbone features are all positive and far from centred).
func shiftedClusterRows(offset: Float, scale: Float, train: Int = 1000, test: Int = 500) -> [(split: String, label: Int, vector: [Float])] {
    var generator = SplitMix64(seed: 11)
    return (0 ..< train + test).map { index in
        let cluster = Int(generator.next() % 10)
        var vector = (0 ..< 2048).map { _ in Float(generator.nextNormal()) }
        for f in 10 * cluster ..< 10 * cluster + 10 { vector[f] += 2 }
        // Sign MNIST has no label 9 (J needs motion).
        return (index < train ? "train" : "test", cluster < 9 ? cluster : 10, vector.map { scale * $0 + offset })
    }
}

@Suite struct Standardizing {
    func testAccuracy(_ rows: [(split: String, label: Int, vector: [Float])], options: TrainingOptions) throws -> Double {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite")
        try writeFeatures(input, rows: rows)
        let report = try Train.run(.init(input: input, output: folder.appendingPathComponent("head.sqlite"), params: try trainParams(options)))
        return try #require(report.evaluation).accuracy
    }

    /// With the default recipe, an offset of +3 and a scale of 10 in every dimension cost (almost)
    /// nothing; fed raw, the same head fell from 91-92% to 52-65% on these clusters.
    @Test(arguments: [0, 1, 2] as [UInt64])
    func offsetAndScaleDoNotChangeWhatTheHeadLearns(seed: UInt64) throws {
        var options = TrainingOptions()
        options.seed = seed
        let plain = try testAccuracy(shiftedClusterRows(offset: 0, scale: 1), options: options)
        let shifted = try testAccuracy(shiftedClusterRows(offset: 3, scale: 10), options: options)
        print("seed \(seed): test accuracy \(plain) on the clusters, \(shifted) shifted by 3 and scaled by 10")
        #expect(plain > 0.8)
        #expect(shifted >= 0.9 * plain, "seed \(seed): \(shifted) shifted against \(plain)")
    }

    /// The statistics come from the rows trained on: not the validation rows, not the test split.
    @Test func fittedOnTheTrainingRowsOnly() throws {
        var rows = shiftedClusterRows(offset: 3, scale: 10, train: 200, test: 50)
        for index in rows.indices where rows[index].split == "test" { rows[index].vector = rows[index].vector.map { $0 + 1000 } }
        let train = rows.filter { $0.split == "train" }
        let classes = Array(Set(train.map(\.label))).sorted()
        let features = train.flatMap(\.vector), labels = train.map { classes.firstIndex(of: $0.label)! }
        var options = TrainingOptions()
        options.epochs = 1
        options.validation = 0.2
        let result = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: classes.count, options: options)
        let fitted = try #require(result.standardization)
        #expect(result.validationRows.count == result.validationCount && result.validationCount > 0)
        let trainedOn = train.indices.filter { !result.validationRows.contains($0) }
        let expected = features.withUnsafeBufferPointer { Standardization.fit($0, dimension: 2048, rows: trainedOn) }
        #expect(fitted == expected)
        let everything = features.withUnsafeBufferPointer { Standardization.fit($0, dimension: 2048, rows: Array(train.indices)) }
        #expect(fitted != everything)
        #expect(fitted.mean.allSatisfy { $0 < 100 })
    }

    /// A dimension constant on the training rows gets the floor, not a zero deviation.
    @Test func constantDimensionsAreFloored() {
        var features: [Float] = []
        for row in 0 ..< 10 { features += [5, Float(row), 2 * Float(row)] }
        let fitted = features.withUnsafeBufferPointer { Standardization.fit($0, dimension: 3, rows: Array(0 ..< 10)) }
        #expect(fitted.mean == [5, 4.5, 9])
        let rms = ((0 + 8.25 + 33.0) / 3).squareRoot()
        #expect(abs(Double(fitted.deviation[0]) - rms * Standardization.relativeFloor) < 1e-6)
        #expect(abs(Double(fitted.deviation[1]) - 8.25.squareRoot()) < 1e-6)
        var probe: [Float] = [5, 4.5, 9, 6, 4.5, 9]
        probe.withUnsafeMutableBufferPointer { fitted.apply($0, count: 2) }
        #expect(probe[0 ..< 3].allSatisfy { $0 == 0 })
        #expect(probe[3].isFinite && probe[3] > 0)
    }

    /// zscore is stored with the head and used by its evaluation; none stores nothing; both are in
    /// the head's parameters.
    @Test(arguments: StandardizeMode.allCases)
    func storedWithTheHeadAndNamedInItsParameters(mode: StandardizeMode) throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite"), output = folder.appendingPathComponent("head.sqlite")
        let rows = shiftedClusterRows(offset: 3, scale: 10, train: 200, test: 40)
        try writeFeatures(input, rows: rows)
        var options = TrainingOptions()
        options.epochs = 3
        options.standardize = mode
        let report = try Train.run(.init(input: input, output: output, params: try trainParams(options)))
        let model = try HeadModel(output)
        #expect(model.params["standardize"] == mode.rawValue)
        #expect((model.classifier.standardization == nil) == (mode == .none))
        #expect(model.classifier.standardization?.dimension ?? 2048 == 2048)
        // The stored predictions are what the loaded classifier gives, exactly.
        let (queue, _) = try HeadStore.open(output)
        let stored = try queue.read { try Row.fetchAll($0, sql: "SELECT id, probabilities FROM predictions ORDER BY id") }
        let test = rows.enumerated().filter { $0.element.split == "test" }
        #expect(stored.count == test.count)
        let vectors = test.flatMap(\.element.vector)
        let probabilities = vectors.withUnsafeBufferPointer { model.classifier.probabilities($0, count: test.count) }
        for (index, row) in stored.enumerated() {
            #expect(FeaturesStore.decode(row["probabilities"]) == Array(probabilities[index * 10 ..< (index + 1) * 10]))
        }
        #expect(try String(contentsOf: report.reportURL, encoding: .utf8).contains("standardize"))
    }
}

@Suite struct SchemaVersions {
    /// An artifact of a schema version this tool does not read is refused on open, with what to do.
    @Test func unknownVersionIsRefused() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("features.sqlite")
        try writeFeatures(input, rows: clusterRows(train: 20, test: 4))
        try DatabaseQueue(path: input.path).write { try $0.execute(sql: "UPDATE meta SET value = '7' WHERE key = 'schema_version'") }
        let error = #expect(throws: StageError.self) { try FeaturesStore.open(input) }
        #expect(error?.description.contains("table meta gives schema_version '7', but this tool reads signtransfer.features version 2") == true)
        #expect(error?.description.contains("rebuild the file") == true)
    }
}

@Suite struct EditedHeadsAndFeatures {
    func trained() throws -> (folder: URL, features: URL, head: URL) {
        let folder = try Fixtures.temporaryFolder()
        let features = folder.appendingPathComponent("features.sqlite"), head = folder.appendingPathComponent("head.sqlite")
        try writeFeatures(features, rows: clusterRows(train: 40, test: 8))
        var options = TrainingOptions()
        options.epochs = 2
        _ = try Train.run(.init(input: features, output: head, params: try trainParams(options)))
        return (folder, features, head)
    }

    @Test(arguments: [
        ("UPDATE layers SET bias = zeroblob(3) WHERE layer = 1", "table layers, a row: bias: expected 16 bytes, found 3"),
        ("DELETE FROM classes", "the head has no classes or no layers"),
        ("UPDATE classes SET label = -1 WHERE idx = 0", "table classes, a row: label: expected a label from 0 to 1048575, found -1"),
        ("UPDATE classes SET name = 'B' WHERE idx = 0", "table classes: the class name 'B' is given to two labels"),
    ])
    func aDamagedHeadIsRefused(edit: String, expected: String) throws {
        let (folder, _, head) = try trained()
        defer { try? FileManager.default.removeItem(at: folder) }
        try DatabaseQueue(path: head.path).write { try $0.execute(sql: edit) }
        let error = #expect(throws: StageError.self) { try HeadModel(head) }
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "no error")")
    }

    @Test func aNaNBiasIsRefused() throws {
        let (folder, _, head) = try trained()
        defer { try? FileManager.default.removeItem(at: folder) }
        var bias = [Float](repeating: 0, count: 4)
        bias[2] = .nan
        try DatabaseQueue(path: head.path).write {
            try $0.execute(sql: "UPDATE layers SET bias = ? WHERE layer = 1", arguments: [bias.withUnsafeBufferPointer { FeaturesStore.encode($0) }])
        }
        let error = #expect(throws: StageError.self) { try HeadModel(head) }
        #expect(error?.description.contains("expected finite numbers") == true)
    }

    @Test func aFeatureLabelOf99IsRefused() throws {
        let (folder, features, _) = try trained()
        defer { try? FileManager.default.removeItem(at: folder) }
        try DatabaseQueue(path: features.path).write { try $0.execute(sql: "UPDATE features SET label = 99 WHERE id = 3") }
        let error = #expect(throws: StageError.self) { try Train.run(.init(input: features, output: folder.appendingPathComponent("again.sqlite"), params: try trainParams(TrainingOptions()))) }
        #expect(error?.description.contains("table features, row id 3: label: 99 is none of the file's classes") == true,
                "\(error?.description ?? "no error")")
    }
}

/// Augmented views in training: validation from originals only, a held-out image's views never
/// trained on, one view per image per epoch (or all), and no views exactly as before.
@Suite struct TrainingOnViews {
    /// 40 originals (rows 0 ..< 40), then 3 views of each: row 40 + 3i + v - 1 is view v of original i.
    static let originals = 40, perImage = 3
    static let source = (0 ..< originals).map { $0 } + (0 ..< originals * perImage).map { $0 / perImage }

    @Test func validationIsOriginalsAndEpochsNeverTouchItsViews() throws {
        let labels = Self.source.map { $0 % 4 }
        for mode in Views.Mode.allCases {
            let views = try #require(Views(source: Self.source, mode: mode))
            #expect(views.originals == Array(0 ..< Self.originals))
            var generator = SplitMix64(seed: 3)
            let (train, validation) = Trainer.split(labels: labels, classCount: 4, fraction: 0.25, views: views, generator: &generator)
            // 10 originals of each class, a quarter held out: round(2.5) = 3 each.
            #expect(validation.count == 12 && validation.allSatisfy { $0 < Self.originals } && Set(train).isDisjoint(with: validation))
            #expect(train.count + validation.count == Self.originals)
            var seen = Set<Int>()
            for _ in 0 ..< 20 {
                let rows = views.epochRows(train, generator: &generator)
                #expect(rows.count == (mode == .sample ? train.count : train.count * (Self.perImage + 1)))
                #expect(Set(rows.map { Self.source[$0] }) == Set(train), "each training image, and only those")
                #expect(!rows.contains { validation.contains(Self.source[$0]) }, "no view of a validation image")
                seen.formUnion(rows)
            }
            #expect(seen == Set(views.rows(of: train)), "over epochs, every view of every training image")
        }
        #expect(Views(source: [0, 0, 1], mode: .sample) == nil, "a view of a view is refused")
    }

    @Test func trainingWithViewsKeepsValidationOnOriginals() throws {
        // Features: views are their original plus noise; labels follow the originals.
        let base = clusterRows(train: Self.originals, test: 0)
        var generator = SplitMix64(seed: 8)
        let features = Self.source.flatMap { base[$0].vector.map { $0 + Float(generator.nextNormal() * 0.1) } }
        let labels = Self.source.map { base[$0].label }
        var options = TrainingOptions()
        options.epochs = 5
        options.hidden = [16]
        options.validation = 0.25
        let views = try #require(Views(source: Self.source, mode: .sample))
        let result = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options, views: views)
        #expect(result.validationRows.count == 12 && result.validationRows.allSatisfy { $0 < Self.originals })
        #expect(result.history.allSatisfy { $0.validationAccuracy != nil })
        // Without views the same rows are all originals: the split is drawn from all 160.
        let plain = Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 4, options: options)
        #expect(plain.validationRows.count == 40)
    }
}

/// Training options as the train stage's parameters, through the same specs and checks as a
/// pipeline file (every field of `TrainingOptions` that has a parameter).
func trainParams(_ options: TrainingOptions) throws -> Stages.TrainStage.Params {
    try Stages.TrainStage.Params([
        "hidden": options.hidden.map(String.init).joined(separator: ","), "dropout": String(options.dropout), "epochs": String(options.epochs),
        "batch": String(options.batch), "learning_rate": String(options.learningRate), "validation": String(options.validation),
        "patience": String(options.patience), "seed": String(options.seed), "standardize": options.standardize.rawValue,
        "schedule": options.schedule.rawValue, "weight_decay": String(options.weightDecay),
    ])
}
