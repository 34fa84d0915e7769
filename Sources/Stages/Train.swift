import Artifacts
import Backbone
import Dataset
import FineTune
import Foundation
import GRDB
import Head
import Numerical
import PipelineKit
import Report
import WeightsFetch

/// The train stage: cached features in, a trained head, its evaluation and a report out; with
/// fine-tuning, conv5 trained with the head on the kept conv4_block6_out maps.
public enum Train {
    /// Training the backbone's top stage with the head (`--fine-tune conv5`).
    public struct FineTuning: Sendable, Equatable {
        /// The most epochs of the second phase (conv5 and the head together).
        public var epochs: Int
        /// Adam's learning rate in the second phase, for conv5 and the head alike.
        public var learningRate: Float
        /// What the second phase's products multiply.
        public var precision: FineTunePrecision

        public init(epochs: Int = 10, learningRate: Float = 1e-5, precision: FineTunePrecision = .fp32) {
            self.epochs = epochs
            self.learningRate = learningRate
            self.precision = precision
        }
    }

    /// Written beside the head: the figures for scripts, and the page for people.
    public static let metricsName = "metrics.json", reportName = "report.html"

    public struct Options {
        public var input: URL
        public var output: URL
        public var training: TrainingOptions
        /// The layers whose pooled vectors (concatenated in depth order) the head is trained on.
        public var cut: Cut
        /// nil: the head alone on frozen features.
        public var fineTune: FineTuning?
        /// How augmented views are used, when the features have them.
        public var views: Views.Mode
        /// The preprocess output whose images the report shows; nil looks beside the input.
        public var images: URL?
        /// Receives one line per epoch and the other messages of the run.
        public var log: (String) -> Void

        public init(input: URL, output: URL, training: TrainingOptions = TrainingOptions(), cut: Cut = .last, fineTune: FineTuning? = nil,
                    views: Views.Mode = .sample, images: URL? = nil, log: @escaping (String) -> Void = { _ in }) {
            self.views = views
            self.cut = cut
            self.fineTune = fineTune
            self.input = input
            self.output = output
            self.training = training
            self.images = images
            self.log = log
        }
    }

    public struct Report: Sendable {
        public var classes: [Int]
        public var history: [EpochRecord]
        public var bestEpoch: Int
        /// nil when there was no test split to evaluate on.
        public var evaluation: Evaluation?
        public var contentSHA256: String
        public var metricsURL: URL
        public var reportURL: URL
        public var randomBackbone: Bool
    }

    public static func run(_ options: Options) throws -> Report {
        try validate(options.training)
        let (queue, featuresMeta) = try FeaturesStore.open(options.input)
        let backbone = try FeaturesStore.backbone(queue)
        let inputs = [options.input] + (options.images.map { [$0] } ?? [])
        let output = try AtomicOutput(options.output, inputs: inputs)
        let metricsURL = output.finalURL.deletingLastPathComponent().appendingPathComponent(metricsName)
        let reportURL = output.finalURL.deletingLastPathComponent().appendingPathComponent(reportName)

        let held = FeaturesStore.layers(backbone).pooled
        if let missing = options.cut.names.first(where: { !held.contains($0) }) {
            throw StageError("\(options.input.path) holds the pooled outputs of \(held.joined(separator: ", ")), not \(missing): run extract with --layers \((held + options.cut.names.filter { !held.contains($0) }).joined(separator: ",")) first")
        }
        if options.fineTune?.precision == .bf16, !GEMMKernel.available.contains(.avx512bf16) {
            throw StageError("--fine-tune-precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps), which bf16 fine-tuning needs; use --fine-tune-precision fp32")
        }
        if options.fineTune != nil {
            guard options.cut == .last else {
                throw StageError("fine-tuning \(TopStage.name) trains the head on its output, \(TopStage.outputLayer): leave --layers at its default (asked for \(options.cut))")
            }
            guard FeaturesStore.layers(backbone).kept == TopStage.inputLayer else {
                throw StageError("\(options.input.path) keeps no \(TopStage.inputLayer) maps (it keeps \(FeaturesStore.layers(backbone).kept ?? "none")): fine-tuning \(TopStage.name) trains on them; run extract with --keep \(TopStage.inputLayer) first")
            }
        }
        let data = try load(queue, cut: options.cut, file: options.input.path)
        let trainRows = data.splits.indices.filter { data.splits[$0] == "train" }
        guard !trainRows.isEmpty else { throw StageError("\(options.input.path): there is no train split to learn from") }
        let classes = Array(Set(trainRows.map { data.labels[$0] })).sorted()
        guard classes.count >= 2 else {
            throw StageError("\(options.input.path): the train split has a single class (\(SignLetters.letter(classes[0]))): a classifier needs at least two")
        }
        let classIndex = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let dimension = data.dimension
        if let problem = options.training.memoryProblem(dimension: dimension, classes: classes.count,
                                                         batchRows: options.training.batchSize(rows: trainRows.count)) {
            throw StageError("\(options.input.path): \(problem)")
        }
        let views = try self.views(queue, data: data, trainRows: trainRows, mode: options.views, file: options.input.path)
        if let views {
            let count = trainRows.count - views.originals.count
            options.log("\(count) augmented views of \(views.originals.count) training images: \(views.mode == .sample ? "each epoch trains on one of each image's views (the original among them), drawn anew" : "each epoch trains on all of them"); validation on originals only")
        }
        let trainFeatures = gatherRows(data.features, rows: trainRows, dimension: dimension)
        if backbone["random"] == "1" {
            options.log("warning: these features come from a RANDOM backbone (\(backbone["weights"] ?? "random")), not ImageNet weights")
        }
        let logEpoch = { (epoch: EpochRecord) in
            var line = String(format: "epoch %3d  loss %.4f  accuracy %.4f", epoch.epoch, epoch.loss, epoch.accuracy)
            if let loss = epoch.validationLoss, let accuracy = epoch.validationAccuracy {
                line += String(format: "  val_loss %.4f  val_accuracy %.4f", loss, accuracy)
            }
            options.log(line + String(format: "  %.2f s", epoch.seconds))
        }
        let result: TrainingResult
        var tuned: (stage: TopStage, maps: (_ rows: [Int]) -> StoredMaps)?
        if let fineTune = options.fineTune {
            let stage = try TopStage(weights: try backboneWeights(backbone, file: options.input.path).provider)
            guard let size = backbone["input_size"].flatMap(Int.init), size >= ResNet50.minimumSize else {
                throw StageError("\(options.input.path): table backbone gives no usable input_size (\(backbone["input_size"] ?? "none"))")
            }
            let side = ResNet50.blockSide(ResNet50.blockNames.firstIndex(of: TopStage.inputLayer)!, size: size)
            let maps = { (rows: [Int]) in
                StoredMaps(queue: queue, file: options.input.path, layer: TopStage.inputLayer, ids: rows.map { data.ids[$0] }, side: side,
                           channels: TopStage.inputChannels)
            }
            let labels = trainRows.map { classIndex[data.labels[$0]]! }
            options.log("first the head on the frozen features: \(trainRows.count) images, \(classes.count) classes, \(dimension) features from \(TopStage.outputLayer)")
            let frozen = Trainer.train(features: trainFeatures, labels: labels, dimension: dimension, classCount: classes.count,
                                       options: options.training, views: views, onEpoch: logEpoch)
            try refuseDivergence(frozen, options, fineTuning: false)
            options.log("fine-tuning \(TopStage.name) (its \(stage.convs.count) convolutions' kernels and biases; BatchNorm frozen) with the head, from its epoch \(frozen.bestEpoch), on the \(TopStage.inputLayer) maps (\(side)x\(side)x\(TopStage.inputChannels)): up to \(fineTune.epochs) epochs at learning rate \(fineTune.learningRate)\(fineTune.precision == .bf16 ? ", products in bf16" : "")")
            let outcome = try FineTuner.train(stage: stage, head: frozen, source: maps(trainRows), labels: labels, options: options.training,
                                              epochs: fineTune.epochs, learningRate: fineTune.learningRate, views: views,
                                              precision: fineTune.precision, onEpoch: logEpoch)
            result = outcome.head
            if outcome.improved {
                tuned = (outcome.stage, maps)
            } else {
                options.log("fine-tuning did not beat the frozen head's best validation loss (epoch \(frozen.bestEpoch)): kept the frozen \(TopStage.name) and that head")
            }
        } else {
            options.log("training on \(trainRows.count) images, \(classes.count) classes, \(dimension) features from \(options.cut.names.joined(separator: " + "))")
            result = Trainer.train(features: trainFeatures, labels: trainRows.map { classIndex[data.labels[$0]]! },
                                   dimension: dimension, classCount: classes.count, options: options.training, views: views, onEpoch: logEpoch)
        }
        try refuseDivergence(result, options, fineTuning: options.fineTune != nil)
        if result.stoppedEarly { options.log("stopped early after epoch \(result.history.count); restored the weights of epoch \(result.bestEpoch)") }

        let testRows = data.splits.indices.filter { data.splits[$0] == "test" }
        var predictions: [(row: Int, predicted: Int, confidence: Float, probabilities: [Float])] = []
        var evaluation: Evaluation?
        if testRows.isEmpty {
            options.log("no test split: evaluation skipped")
        } else {
            // Fine-tuned: the test images' maps through the trained conv5, as predict runs it.
            let probabilities = try tuned.map { try FineTuner.predict(stage: $0.stage, classifier: result.classifier, source: $0.maps(testRows),
                                                                    rows: Array(testRows.indices)) }
                ?? Trainer.predict(result.classifier, features: data.features, rows: testRows, dimension: dimension)
            for (index, row) in testRows.enumerated() {
                let p = Array(probabilities[index * classes.count ..< (index + 1) * classes.count])
                let best = p.indices.max { p[$0] < p[$1] }!
                predictions.append((row, classes[best], p[best], p))
            }
            evaluation = Evaluation(truth: testRows.map { data.labels[$0] }, predicted: predictions.map(\.predicted))
            options.log(String(format: "test: accuracy %.4f, macro-F1 %.4f on %d images", evaluation!.accuracy, evaluation!.macroF1, testRows.count))
        }

        var headParams = paramsDictionary(options.training)
        headParams["layers"] = options.cut.description
        headParams["fine_tune"] = options.fineTune == nil ? "none" : TopStage.name
        // Only with views, so that a head without them is exactly as before.
        if let views { headParams["views"] = "\(views.mode.rawValue) (\(trainRows.count - views.originals.count) views of \(views.originals.count) images)" }
        if let fineTune = options.fineTune {
            headParams["fine_tune_learning_rate"] = String(fineTune.learningRate)
            headParams["fine_tune_epochs"] = String(fineTune.epochs)
            // Only for bf16, so that a float fine-tuning's head is exactly as before the option.
            if fineTune.precision == .bf16 { headParams["fine_tune_precision"] = "bf16" }
            headParams["fine_tuned"] = tuned == nil ? "0 (no epoch beat the frozen head)" : "1"
        }
        var params = headParams
        for (key, value) in backbone { params["backbone_\(key)"] = value }
        params["features_content_sha256"] = featuresMeta[Artifact.contentKey] ?? ""
        var hasher = ContentHasher()
        try output.write { temporary in
            let db = try Artifact.create(at: temporary)
            try db.write { db in
                try HeadStore.createTables(db)
                for (index, label) in classes.enumerated() {
                    try db.execute(sql: "INSERT INTO classes VALUES (?, ?, ?)", arguments: [index, label, SignLetters.letter(label)])
                    hasher.update(integer: Int64(label))
                }
                for (index, layer) in result.network.layers.enumerated() {
                    let weights = HeadStore.floats(layer.weights), bias = HeadStore.floats(layer.bias)
                    try db.execute(sql: "INSERT INTO layers VALUES (?, ?, ?, ?, ?)", arguments: [index, layer.inputs, layer.outputs, weights, bias])
                    hasher.update(weights)
                    hasher.update(bias)
                }
                if let standardization = result.standardization {
                    for d in 0 ..< standardization.dimension {
                        try db.execute(sql: "INSERT INTO standardization VALUES (?, ?, ?)",
                                       arguments: [d, Double(standardization.mean[d]), Double(standardization.deviation[d])])
                    }
                    hasher.update(HeadStore.floats(standardization.mean))
                    hasher.update(HeadStore.floats(standardization.deviation))
                }
                for conv in tuned?.stage.convs ?? [] {
                    let kernel = HeadStore.floats(conv.kernel), bias = HeadStore.floats(conv.bias)
                    try db.execute(sql: "INSERT INTO backbone_weights VALUES (?, ?, ?)", arguments: [conv.name, kernel, bias])
                    hasher.update(conv.name)
                    hasher.update(kernel)
                    hasher.update(bias)
                }
                for record in result.history {
                    try db.execute(sql: "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)", arguments: [record.epoch, record.loss, record.accuracy,
                                                                                               record.validationLoss, record.validationAccuracy, record.seconds])
                }
                for prediction in predictions {
                    let id = data.ids[prediction.row]
                    let probabilities = HeadStore.floats(prediction.probabilities)
                    try db.execute(sql: "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [id, data.splits[prediction.row], data.labels[prediction.row], prediction.predicted,
                                               Double(prediction.confidence), probabilities])
                    hasher.update(integer: Int64(id))
                    hasher.update(integer: Int64(prediction.predicted))
                    hasher.update(probabilities)
                }
                var metrics = ["best_epoch": String(result.bestEpoch), "epochs_run": String(result.history.count),
                               "stopped_early": result.stoppedEarly ? "1" : "0", "train_images": String(result.trainCount),
                               "validation_images": String(result.validationCount), "test_images": String(testRows.count),
                               "evaluated": evaluation == nil ? "0" : "1"]
                if let evaluation {
                    metrics["accuracy"] = String(evaluation.accuracy)
                    metrics["macro_f1"] = String(evaluation.macroF1)
                    for row in evaluation.perClass {
                        try db.execute(sql: "INSERT INTO per_class VALUES (?, ?, ?, ?, ?, ?)",
                                       arguments: [row.label, SignLetters.letter(row.label), row.precision, row.recall, row.f1, row.support])
                    }
                    for (t, truth) in evaluation.labels.enumerated() {
                        for (p, predicted) in evaluation.labels.enumerated() where evaluation.confusion[t][p] > 0 {
                            try db.execute(sql: "INSERT INTO confusion VALUES (?, ?, ?)", arguments: [truth, predicted, evaluation.confusion[t][p]])
                        }
                    }
                }
                for (key, value) in metrics.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "INSERT INTO metrics VALUES (?, ?)", arguments: [key, value])
                }
                for (key, value) in params.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "INSERT INTO params VALUES (?, ?)", arguments: [key, value])
                    hasher.update(key)
                    hasher.update(value)
                }
                try Artifact.writeMeta(db, [Artifact.kindKey: HeadStore.kind, Artifact.schemaKey: HeadStore.schemaVersion,
                                            Artifact.contentKey: hasher.finalize(), Artifact.toolKey: toolVersion])
            }
            try db.close()
        }

        let metricsJSON = MetricsFile(result: result, classes: classes, evaluation: evaluation, params: params)
        try AtomicOutput.write(to: metricsURL, inputs: inputs) { try metricsJSON.encoded().write(to: $0) }

        let imagesURL = options.images ?? options.input.deletingLastPathComponent().appendingPathComponent("preprocessed.sqlite")
        let mistakes = predictions.filter { $0.predicted != data.labels[$0.row] }.sorted { $0.confidence > $1.confidence }.prefix(12)
        let pictures = (try? mistakePictures(imagesURL, ids: mistakes.map { data.ids[$0.row] })) ?? [:]
        let html = try ReportPage(history: result.history, bestEpoch: result.bestEpoch, evaluation: evaluation,
                                  mistakes: mistakes.map { ReportPage.Mistake(id: data.ids[$0.row], truth: data.labels[$0.row],
                                                                              predicted: $0.predicted, confidence: Double($0.confidence),
                                                                              png: pictures[data.ids[$0.row]]) },
                                  provenance: provenance(features: options.input, images: imagesURL, backbone: backbone, head: headParams),
                                  randomBackbone: backbone["random"] == "1", weightsSource: backbone["weights"] ?? "unknown",
                                  fallbackReason: backbone["weights_fallback"], recipe: recipe(options, fineTuned: tuned != nil) + augmentation(views)).render()
        try AtomicOutput.write(to: reportURL, inputs: inputs) { try Data(html.utf8).write(to: $0) }
        return Report(classes: classes, history: result.history, bestEpoch: result.bestEpoch, evaluation: evaluation,
                      contentSHA256: hasher.finalize(), metricsURL: metricsURL, reportURL: reportURL, randomBackbone: backbone["random"] == "1")
    }

    /// A run whose loss became NaN or infinite is an error that says what to change; nothing is written.
    /// `fineTuning`: the result is the second phase's, whose rate is the fine-tuning one.
    static func refuseDivergence(_ result: TrainingResult, _ options: Options, fineTuning: Bool) throws {
        guard let epoch = result.divergedAt else { return }
        let rate = fineTuning ? "--fine-tune-learning-rate (it was \(options.fineTune!.learningRate))" : "--learning-rate (it was \(options.training.learningRate))"
        throw StageError("training diverged in epoch \(epoch): the loss became NaN or infinite, and the weights with it; try a smaller \(rate)\(options.training.standardize == .none ? " or --standardize zscore" : ""); nothing was written")
    }

    /// The views used, for the report ("" without).
    static func augmentation(_ views: Views?) -> String {
        guard let views else { return "" }
        let count = views.source.count - views.originals.count
        let most = views.originals.map { views.rows(of: [$0]).count - 1 }.max() ?? 0
        return " Augmentation: \(count) views of the \(views.originals.count) training images (\(most) each; their ranges under preprocess below, each view's transform in the views table), \(views.mode == .sample ? "one view of each image per epoch, drawn anew" : "all views every epoch"); validation and test on originals only."
    }

    /// Which training rows (positions in `trainRows`) are views of which, from the features file's
    /// views table; nil without one. A test image that is a view, or a view whose source is not a
    /// training image, is refused: views never reach evaluation.
    static func views(_ queue: DatabaseQueue, data: Loaded, trainRows: [Int], mode: Views.Mode, file: String) throws -> Views? {
        let table = try queue.read { try PreprocessedStore.views($0, file: file) }
        guard !table.isEmpty else { return nil }
        var position: [Int: Int] = [:]
        for (index, row) in trainRows.enumerated() { position[data.ids[row]] = index }
        for (row, split) in data.splits.enumerated() where split != "train" {
            if let entry = table[data.ids[row]], entry.view > 0 {
                throw StageError("\(file): table views, row id \(data.ids[row]): a view in the \(split) split; views are made of training images only")
            }
        }
        let source = try trainRows.enumerated().map { index, row -> Int in
            guard let entry = table[data.ids[row]] else { return index }
            guard let original = position[entry.source] else {
                throw StageError("\(file): table views, row id \(data.ids[row]): its source \(entry.source) is not a training image here")
            }
            return original
        }
        guard let views = Views(source: source, mode: mode) else {
            throw StageError("\(file): table views: a view's source is itself a view")
        }
        return views
    }

    /// Where the backbone was cut and what was trained, for the report.
    static func recipe(_ options: Options, fineTuned: Bool) -> String {
        if let fineTune = options.fineTune {
            let outcome = fineTuned ? "kept: it beat the frozen head's validation loss" : "not kept: no epoch beat the frozen head's validation loss, so the stored model is the frozen one"
            return "Recipe: the head trained on the frozen backbone's end, then \(TopStage.name) fine-tuned with it (its 10 convolutions' kernels and biases, BatchNorm frozen; up to \(fineTune.epochs) epochs at learning rate \(fineTune.learningRate)) on the \(TopStage.inputLayer) maps extract kept; the backbone below conv5 frozen. Fine-tuning \(outcome)."
        }
        let cut = options.cut == .last ? "its end, \(options.cut)" : options.cut.names.joined(separator: " + ")
        return "Recipe: the backbone frozen and cut at \(cut) (\(options.cut.dimension) features, globally averaged); the head alone trained."
    }

    /// The weights the features were extracted with, as their provenance names them, checked by
    /// MD5: fine-tuning starts from exactly those.
    static func backboneWeights(_ backbone: [String: String], file: String) throws -> ResolvedWeights {
        guard let source = backbone["weights"], let md5 = backbone["weights_md5"] else {
            throw StageError("\(file): table backbone does not name the weights the features came from (weights, weights_md5)")
        }
        let resolved = try WeightsSpec(source).resolve(showProgress: true)
        guard try resolved.md5 == md5 else {
            throw StageError("\(file): the features came from the weights \(source) with MD5 \(md5), but that file now has MD5 \(try resolved.md5): extract again, or restore the file")
        }
        return resolved
    }

    /// Options given in code are held to the same limits as the pipeline file and the command line.
    static func validate(_ options: TrainingOptions) throws {
        let parameters = try StageParameters.fromCommandLine(paramsDictionary(options), specs: TrainStage.parameters)
        if let problem = TrainStage.definition.check(parameters) { throw StageError(problem) }
    }

    public static func paramsDictionary(_ options: TrainingOptions) -> [String: String] {
        ["hidden": options.hidden.map(String.init).joined(separator: ","), "dropout": String(options.dropout), "epochs": String(options.epochs),
         "batch": String(options.batch), "learning_rate": String(options.learningRate), "validation": String(options.validation),
         "patience": String(options.patience), "seed": String(options.seed), "standardize": options.standardize.rawValue,
         "schedule": options.schedule.rawValue, "weight_decay": String(options.weightDecay),
         "optimizer": "adam (beta1 0.9, beta2 0.999, epsilon 1e-7)"]
    }

    struct Loaded {
        var ids: [Int] = []
        var splits: [String] = []
        var labels: [Int] = []
        /// `[images x dimension]`: each image's vectors of the cut's layers, concatenated in depth order.
        var features: [Float] = []
        var dimension = 0
    }

    /// Every image's vectors of the `cut`'s layers, checked: each layer's length, finite values, and
    /// the same images (with the same split and label) in every layer.
    static func load(_ queue: DatabaseQueue, cut: Cut, file: String) throws -> Loaded {
        var loaded = Loaded()
        loaded.dimension = cut.dimension
        let total = try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM features WHERE layer = ?", arguments: [cut.names[0]]) } ?? 0
        loaded.features.reserveCapacity(total * loaded.dimension)
        var offset = 0
        for (part, layer) in cut.names.enumerated() {
            let channels = cut.channels[part]
            var row = 0
            // Each row's types, label and split are checked by the store; the length, the values and
            // the agreement between layers here.
            try FeaturesStore.forEach(queue, layer: layer) { feature in
                let whereLayer = "features row id \(feature.id), layer \(layer)"
                guard feature.vector.count == channels else {
                    throw StageError("\(file): \(whereLayer) has a vector of \(feature.vector.count) values, expected \(channels)")
                }
                if let bad = feature.vector.firstIndex(where: { !$0.isFinite }) {
                    throw StageError("\(file): \(whereLayer) holds \(feature.vector[bad]) at position \(bad); the features must be finite numbers")
                }
                if part == 0 {
                    loaded.ids.append(feature.id)
                    loaded.splits.append(feature.split)
                    loaded.labels.append(feature.label)
                    loaded.features += [Float](repeating: 0, count: loaded.dimension)
                } else {
                    guard row < loaded.ids.count, loaded.ids[row] == feature.id, loaded.splits[row] == feature.split, loaded.labels[row] == feature.label else {
                        throw StageError("\(file): \(whereLayer) does not match the rows of layer \(cut.names[0]) (each image needs one row per layer, with the same split and label)")
                    }
                }
                loaded.features.withUnsafeMutableBufferPointer { all in
                    let destination = all.baseAddress! + row * loaded.dimension + offset
                    feature.vector.withUnsafeBufferPointer { destination.update(from: $0.baseAddress!, count: channels) }
                }
                row += 1
            }
            guard row == loaded.ids.count else {
                throw StageError("\(file): layer \(layer) has \(row) rows, layer \(cut.names[0]) \(loaded.ids.count): each image needs one row per layer")
            }
            offset += channels
        }
        guard !loaded.ids.isEmpty else { throw StageError("\(file): holds no features of \(cut.names[0])") }
        return loaded
    }

    static func gatherRows(_ features: [Float], rows: [Int], dimension: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows.count * dimension)
        Trainer.gather(features, rows: rows, dimension: dimension, into: &out)
        return out
    }

    static func mistakePictures(_ url: URL, ids: [Int]) throws -> [Int: Data] {
        guard !ids.isEmpty, FileManager.default.fileExists(atPath: url.path) else { return [:] }
        let (queue, _) = try PreprocessedStore.open(url)
        return try queue.read { db in
            var pictures: [Int: Data] = [:]
            for id in ids {
                if let png = try Data.fetchOne(db, sql: "SELECT png FROM images WHERE id = ?", arguments: [id]) { pictures[id] = png }
            }
            return pictures
        }
    }

    /// Every stage's parameters that can be found: the head's own, the backbone's from the features
    /// file, the preprocessing's and the ingest sources from the artifacts beside it.
    static func provenance(features: URL, images: URL, backbone: [String: String], head: [String: String]) -> [(String, [(String, String)])] {
        var sections: [(String, [(String, String)])] = []
        let folder = features.deletingLastPathComponent()
        if let (queue, _) = try? ImagesStore.open(folder.appendingPathComponent("images.sqlite")),
           let sources = try? queue.read({ try Row.fetchAll($0, sql: "SELECT split, path, sha256, rows FROM sources ORDER BY split") }) {
            sections.append(("ingest", sources.map { ("split \($0["split"] as String)", "\($0["path"] as String) (\($0["rows"] as Int) rows, sha256 \(($0["sha256"] as String).prefix(12)))") }))
        }
        if let (queue, _) = try? PreprocessedStore.open(images), let params = try? PreprocessedStore.params(queue) {
            sections.append(("preprocess", params.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        }
        sections.append(("extract", backbone.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        sections.append(("train", head.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        return sections
    }
}

/// `metrics.json` beside head.sqlite: the figures a script would want, without SQLite.
struct MetricsFile: Encodable {
    struct PerClass: Encodable {
        var label: Int, letter: String, precision: Double, recall: Double, f1: Double, support: Int
    }

    var evaluated: Bool
    var accuracy: Double?
    var macroF1: Double?
    var bestEpoch: Int
    var epochsRun: Int
    var classes: [String]
    var perClass: [PerClass]
    var confusionLabels: [String]
    var confusion: [[Int]]
    var history: [[String: Double]]
    var params: [String: String]

    init(result: TrainingResult, classes: [Int], evaluation: Evaluation?, params: [String: String]) {
        evaluated = evaluation != nil
        accuracy = evaluation?.accuracy
        macroF1 = evaluation?.macroF1
        bestEpoch = result.bestEpoch
        epochsRun = result.history.count
        self.classes = classes.map(SignLetters.letter)
        perClass = evaluation?.perClass.map { PerClass(label: $0.label, letter: SignLetters.letter($0.label), precision: $0.precision,
                                                       recall: $0.recall, f1: $0.f1, support: $0.support) } ?? []
        confusionLabels = evaluation?.labels.map(SignLetters.letter) ?? []
        confusion = evaluation?.confusion ?? []
        history = result.history.map { record in
            var entry = ["epoch": Double(record.epoch), "loss": record.loss, "accuracy": record.accuracy, "seconds": record.seconds]
            if let loss = record.validationLoss { entry["val_loss"] = loss }
            if let accuracy = record.validationAccuracy { entry["val_accuracy"] = accuracy }
            return entry
        }
        self.params = params
    }

    enum CodingKeys: String, CodingKey {
        case evaluated, accuracy, macroF1 = "macro_f1", bestEpoch = "best_epoch", epochsRun = "epochs_run", classes
        case perClass = "per_class", confusionLabels = "confusion_labels", confusion, history, params
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
