import Artifacts
import Backbone
import Dataset
import FineTune
import Foundation
import Head
import Numerical
import PipelineKit
import Report
import WeightsFetch

/// The train stage: cached features in, a trained head, its evaluation and a report out; with
/// fine-tuning, conv5 trained with the head on the kept conv4_block6_out maps. `run` is load,
/// train, evaluate, write (HeadStore.write), report.
public enum Train {
    /// Training the backbone's top part with the head (`--fine-tune conv5`).
    public struct FineTuning: Sendable, Equatable {
        /// The part trained, as the backbone names it (`Architecture.fineTunable`).
        public var part: String
        /// The most epochs of the second phase (the part and the head together).
        public var epochs: Int
        /// Adam's learning rate in the second phase, for the part and the head alike.
        public var learningRate: Float
        /// What the second phase's products multiply.
        public var precision: FineTunePrecision

        public init(part: String = TopStage.name, epochs: Int = 10, learningRate: Float = 1e-5, precision: FineTunePrecision = .fp32) {
            self.part = part
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
        /// The stage's parameters: training options, layers, fine-tuning, views; their canonical
        /// values are the head's provenance.
        public var params: TrainStage.Params
        /// The preprocess output whose images the report shows; nil looks beside the input.
        public var images: URL?
        /// Receives one line per epoch and the other messages of the run.
        public var log: (String) -> Void

        public init(input: URL, output: URL, params: TrainStage.Params, images: URL? = nil, log: @escaping (String) -> Void = { _ in }) {
            self.input = input
            self.output = output
            self.params = params
            self.images = images
            self.log = log
        }

        public var training: TrainingOptions { params.training }
        public var fineTune: FineTuning? { params.fineTune }
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

    /// What training reads: the features file's rows for the cut, its backbone and vocabulary.
    struct Input {
        var queue: ArtifactFile
        var contentSHA256: String
        /// The features file's provenance (its `backbone` table).
        var backbone: [String: String]
        var architecture: Architecture
        var cut: Cut
        var names: ClassNames
        var data: Loaded
        var trainRows: [Int]
        var testRows: [Int]
        /// The labels the head's outputs stand for, ascending.
        var classes: [Int]
        var views: Views?
        var random: Bool { backbone["random"] == "1" }
    }

    /// What training made: the head, and the fine-tuned part with its maps when it was kept.
    struct Trained {
        var result: TrainingResult
        var tuned: (stage: TopStage, maps: (_ rows: [Int]) -> StoredMaps)?
    }

    struct Evaluated {
        var predictions: [(row: Int, predicted: Int, confidence: Float, probabilities: [Float])] = []
        var evaluation: Evaluation?
    }

    /// Load, train, evaluate, write the head, then metrics.json and report.html beside it.
    public static func run(_ options: Options) throws -> Report {
        let inputs = [options.input] + (options.images.map { [$0] } ?? [])
        let output = try AtomicOutput(options.output, inputs: inputs)
        let input = try load(options)
        let trained = try train(input, options)
        let evaluated = try evaluate(input, trained, options)
        let params = provenance(input, trained, options)
        let content = try output.write { try HeadStore.write(contents(input, trained, evaluated, params: params), to: $0) }
        let folder = output.finalURL.deletingLastPathComponent()
        let metricsURL = folder.appendingPathComponent(metricsName), reportURL = folder.appendingPathComponent(reportName)
        let metricsJSON = MetricsFile(result: trained.result, classes: input.classes, names: input.names, evaluation: evaluated.evaluation, params: params)
        try AtomicOutput.write(to: metricsURL, inputs: inputs) { try metricsJSON.encoded().write(to: $0) }
        try writeReport(input, trained, evaluated, params: params, options: options, to: reportURL, inputs: inputs)
        return Report(classes: input.classes, history: trained.result.history, bestEpoch: trained.result.bestEpoch, evaluation: evaluated.evaluation,
                      contentSHA256: content, metricsURL: metricsURL, reportURL: reportURL, randomBackbone: input.random)
    }

    /// The features file opened and checked against what the options ask: the layers held, the
    /// kept maps for fine-tuning, two classes at least, a head that fits in memory.
    static func load(_ options: Options) throws -> Input {
        let file = options.input.path
        let (queue, featuresMeta) = try FeaturesStore.open(options.input)
        let backbone = try FeaturesStore.backbone(queue)
        let architecture = try BackboneProvenance.architecture(backbone, file: file)
        let cut: Cut
        do {
            cut = options.params.layers.isEmpty ? architecture.lastCut : try Cut(options.params.layers, of: architecture)
        } catch {
            throw StageError("--layers: \(error.message) (the features in \(file) come from \(architecture.name))")
        }
        let held = FeaturesStore.layers(backbone).pooled
        if let missing = cut.names.first(where: { !held.contains($0) }) {
            throw StageError("\(file) holds the pooled outputs of \(held.joined(separator: ", ")), not \(missing): run extract with --layers \((held + cut.names.filter { !held.contains($0) }).joined(separator: ",")) first")
        }
        if let fineTune = options.fineTune {
            if fineTune.precision == .bf16, !GEMMKernel.available.contains(.avx512bf16) {
                throw StageError("--fine-tune-precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps), which bf16 fine-tuning needs; use --fine-tune-precision fp32")
            }
            guard let part = architecture.fineTunable, part.name == fineTune.part, part.name == TopStage.name else {
                throw StageError("--fine-tune \(fineTune.part): \(architecture.name) offers \(architecture.fineTunable.map { "only --fine-tune \($0.name)" } ?? "no fine-tuning"); train the head alone (--fine-tune none)")
            }
            guard cut == architecture.lastCut else {
                throw StageError("fine-tuning \(part.name) trains the head on its output, \(TopStage.outputLayer): leave --layers at its default (asked for \(cut))")
            }
            guard FeaturesStore.layers(backbone).kept == part.input else {
                throw StageError("\(file) keeps no \(part.input) maps (it keeps \(FeaturesStore.layers(backbone).kept ?? "none")): fine-tuning \(part.name) trains on them; run extract with --keep \(part.input) first")
            }
        }
        let data = try load(queue, cut: cut, file: file)
        let names = try FeaturesStore.classes(queue) ?? ClassNames(Set(data.labels).sorted().map { ($0, String($0)) })
        let trainRows = data.splits.indices.filter { data.splits[$0] == "train" }
        guard !trainRows.isEmpty else { throw StageError("\(file): there is no train split to learn from") }
        let classes = Array(Set(trainRows.map { data.labels[$0] })).sorted()
        guard classes.count >= 2 else {
            throw StageError("\(file): the train split has a single class (\(names.name(classes[0]))): a classifier needs at least two")
        }
        let training = options.training
        if let problem = training.memoryProblem(dimension: data.dimension, classes: classes.count, batchRows: training.batchSize(rows: trainRows.count)) {
            throw StageError("\(file): \(problem)")
        }
        let views = try self.views(queue, data: data, trainRows: trainRows, mode: options.params.views, file: file)
        return Input(queue: queue, contentSHA256: featuresMeta[Artifact.contentKey] ?? "", backbone: backbone, architecture: architecture, cut: cut,
                     names: names, data: data, trainRows: trainRows, testRows: data.splits.indices.filter { data.splits[$0] == "test" },
                     classes: classes, views: views)
    }

    /// The head on the frozen features; with fine-tuning, then the top part and the head together.
    static func train(_ input: Input, _ options: Options) throws -> Trained {
        let data = input.data, dimension = data.dimension, trainRows = input.trainRows
        let classIndex = Dictionary(uniqueKeysWithValues: input.classes.enumerated().map { ($1, $0) })
        if let views = input.views {
            let count = trainRows.count - views.originals.count
            options.log("\(count) augmented views of \(views.originals.count) training images: \(views.mode == .sample ? "each epoch trains on one of each image's views (the original among them), drawn anew" : "each epoch trains on all of them"); validation on originals only")
        }
        let trainFeatures = gatherRows(data.features, rows: trainRows, dimension: dimension)
        if input.random {
            options.log("warning: these features come from a RANDOM backbone (\(input.backbone["weights"] ?? "random")), not ImageNet weights")
        }
        let logEpoch = { (epoch: EpochRecord) in
            var line = String(format: "epoch %3d  loss %.4f  accuracy %.4f", epoch.epoch, epoch.loss, epoch.accuracy)
            if let loss = epoch.validationLoss, let accuracy = epoch.validationAccuracy {
                line += String(format: "  val_loss %.4f  val_accuracy %.4f", loss, accuracy)
            }
            options.log(line + String(format: "  %.2f s", epoch.seconds))
        }
        let labels = trainRows.map { classIndex[data.labels[$0]]! }
        // The split's sizes are fixed by the labels and the fraction (which images, by the seed).
        let sizes = Trainer.splitSizes(labels: labels, classCount: input.classes.count, fraction: options.training.validation, views: input.views)
        let held = sizes.validation > 0 ? ", \(sizes.validation) held out for validation" : ""
        let viewsNote = input.views.map { views in
            // Every original has the same number of views (preprocess makes K of each).
            views.mode == .all ? " (\(sizes.train * (views.source.count / max(views.originals.count, 1))) rows with their views)" : " (one view of each an epoch)"
        } ?? ""
        guard let fineTune = options.fineTune else {
            options.log("training on \(sizes.train) images\(viewsNote)\(held), \(input.classes.count) classes, \(dimension) features from \(input.cut.names.joined(separator: " + "))")
            let result = Trainer.train(features: trainFeatures, labels: labels, dimension: dimension, classCount: input.classes.count,
                                       options: options.training, views: input.views, onEpoch: logEpoch)
            try refuseDivergence(result, options, fineTuning: false)
            if result.stoppedEarly { options.log("stopped early after epoch \(result.history.count); restored the weights of epoch \(result.bestEpoch)") }
            return Trained(result: result, tuned: nil)
        }
        let file = options.input.path
        let stage = try TopStage(weights: try backboneWeights(input.backbone, architecture: input.architecture, file: file).provider)
        guard let size = input.backbone["input_size"].flatMap(Int.init), size >= input.architecture.minimumSize,
              let node = input.architecture.nodeIndex(TopStage.inputLayer) else {
            throw StageError("\(file): table backbone gives no usable input_size (\(input.backbone["input_size"] ?? "none"))")
        }
        let side = input.architecture.nodes[node].side(size)
        let queue = input.queue
        let maps = { (rows: [Int]) in
            StoredMaps(queue: queue, file: file, layer: TopStage.inputLayer, ids: rows.map { data.ids[$0] }, side: side, channels: TopStage.inputChannels)
        }
        options.log("first the head on the frozen features: \(sizes.train) images\(held), \(input.classes.count) classes, \(dimension) features from \(TopStage.outputLayer)")
        let frozen = Trainer.train(features: trainFeatures, labels: labels, dimension: dimension, classCount: input.classes.count,
                                   options: options.training, views: input.views, onEpoch: logEpoch)
        try refuseDivergence(frozen, options, fineTuning: false)
        options.log("fine-tuning \(TopStage.name) (its \(stage.convs.count) convolutions' kernels and biases; BatchNorm frozen) with the head, from its epoch \(frozen.bestEpoch), on the \(TopStage.inputLayer) maps (\(side)x\(side)x\(TopStage.inputChannels)): up to \(fineTune.epochs) epochs at learning rate \(fineTune.learningRate)\(fineTune.precision == .bf16 ? ", products in bf16" : "")")
        let outcome = try FineTuner.train(stage: stage, head: frozen, source: maps(trainRows), labels: labels, options: options.training,
                                          epochs: fineTune.epochs, learningRate: fineTune.learningRate, views: input.views,
                                          precision: fineTune.precision, onEpoch: logEpoch)
        try refuseDivergence(outcome.head, options, fineTuning: true)
        if outcome.head.stoppedEarly { options.log("stopped early after epoch \(outcome.head.history.count); restored the weights of epoch \(outcome.head.bestEpoch)") }
        guard outcome.improved else {
            options.log("fine-tuning did not beat the frozen head's best validation loss (epoch \(frozen.bestEpoch)): kept the frozen \(TopStage.name) and that head")
            return Trained(result: outcome.head, tuned: nil)
        }
        return Trained(result: outcome.head, tuned: (outcome.stage, maps))
    }

    /// The test split through the trained head (fine-tuned: the test images' maps through the
    /// trained part, as predict runs it); nothing without a test split.
    static func evaluate(_ input: Input, _ trained: Trained, _ options: Options) throws -> Evaluated {
        let testRows = input.testRows, classes = input.classes, data = input.data
        guard !testRows.isEmpty else {
            options.log("no test split: evaluation skipped")
            return Evaluated()
        }
        let result = trained.result
        let probabilities = try trained.tuned.map { try FineTuner.predict(stage: $0.stage, classifier: result.classifier, source: $0.maps(testRows),
                                                                        rows: Array(testRows.indices)) }
            ?? Trainer.predict(result.classifier, features: data.features, rows: testRows, dimension: data.dimension)
        var evaluated = Evaluated()
        for (index, row) in testRows.enumerated() {
            let p = Array(probabilities[index * classes.count ..< (index + 1) * classes.count])
            let best = p.indices.max { p[$0] < p[$1] }!
            evaluated.predictions.append((row, classes[best], p[best], p))
        }
        let evaluation = Evaluation(truth: testRows.map { data.labels[$0] }, predicted: evaluated.predictions.map(\.predicted))
        evaluated.evaluation = evaluation
        options.log(String(format: "test: accuracy %.4f, macro-F1 %.4f on %d images", evaluation.accuracy, evaluation.macroF1, testRows.count))
        return evaluated
    }

    /// The head's params: the stage's canonical values (the layers as the cut resolved them), what
    /// the run did beyond them, and the backbone's provenance prefixed `backbone_`.
    static func provenance(_ input: Input, _ trained: Trained, _ options: Options) -> [String: String] {
        var params = options.params.values
        params["layers"] = input.cut.description
        params["optimizer"] = "adam (beta1 0.9, beta2 0.999, epsilon 1e-7)"
        if let views = input.views {
            params["views_used"] = "\(views.mode.rawValue) (\(input.trainRows.count - views.originals.count) views of \(views.originals.count) images)"
        }
        if options.fineTune != nil { params["fine_tuned"] = trained.tuned == nil ? "0 (no epoch beat the frozen head)" : "1" }
        for (key, value) in input.backbone { params["backbone_\(key)"] = value }
        params["features_content_sha256"] = input.contentSHA256
        return params
    }

    /// The head file's rows.
    static func contents(_ input: Input, _ trained: Trained, _ evaluated: Evaluated, params: [String: String]) -> HeadStore.Contents {
        let result = trained.result, data = input.data
        var metrics = ["best_epoch": String(result.bestEpoch), "epochs_run": String(result.history.count),
                       "stopped_early": result.stoppedEarly ? "1" : "0", "train_images": String(result.trainCount),
                       "validation_images": String(result.validationCount), "test_images": String(input.testRows.count),
                       "evaluated": evaluated.evaluation == nil ? "0" : "1"]
        if let evaluation = evaluated.evaluation {
            metrics["accuracy"] = String(evaluation.accuracy)
            metrics["macro_f1"] = String(evaluation.macroF1)
        }
        var confusion: [(truth: Int, predicted: Int, count: Int)] = []
        if let evaluation = evaluated.evaluation {
            for (t, truth) in evaluation.labels.enumerated() {
                for (p, predicted) in evaluation.labels.enumerated() { confusion.append((truth, predicted, evaluation.confusion[t][p])) }
            }
        }
        return HeadStore.Contents(
            labels: input.classes, names: input.names,
            layers: result.network.layers.map { HeadStore.Stored.Layer(inputs: $0.inputs, outputs: $0.outputs, weights: $0.weights, bias: $0.bias) },
            standardization: result.standardization.map { ($0.mean, $0.deviation) },
            backboneWeights: (trained.tuned?.stage.convs ?? []).map { ($0.name, $0.kernel, $0.bias) },
            history: result.history.map { HeadStore.Contents.Epoch(epoch: $0.epoch, loss: $0.loss, accuracy: $0.accuracy, validationLoss: $0.validationLoss,
                                                                   validationAccuracy: $0.validationAccuracy, seconds: $0.seconds) },
            predictions: evaluated.predictions.map { HeadStore.Contents.Prediction(id: data.ids[$0.row], split: data.splits[$0.row], label: data.labels[$0.row],
                                                                                  predicted: $0.predicted, confidence: Double($0.confidence), probabilities: $0.probabilities) },
            metrics: metrics,
            perClass: evaluated.evaluation?.perClass.map { HeadStore.Contents.ClassFigures(label: $0.label, precision: $0.precision, recall: $0.recall, f1: $0.f1, support: $0.support) } ?? [],
            confusion: confusion, params: params)
    }

    /// report.html: curves, evaluation, the most confident mistakes with their pictures, provenance.
    static func writeReport(_ input: Input, _ trained: Trained, _ evaluated: Evaluated, params: [String: String], options: Options,
                            to reportURL: URL, inputs: [URL]) throws {
        let data = input.data, result = trained.result
        let imagesURL = options.images ?? options.input.deletingLastPathComponent().appendingPathComponent("preprocessed.sqlite")
        let mistakes = evaluated.predictions.filter { $0.predicted != data.labels[$0.row] }.sorted { $0.confidence > $1.confidence }.prefix(12)
        let correct = evaluated.predictions.filter { $0.predicted == data.labels[$0.row] }.sorted { $0.confidence > $1.confidence }.prefix(6)
        let pictures = (try? mistakePictures(imagesURL, ids: (mistakes + correct).map { data.ids[$0.row] })) ?? [:]
        let headParams = params.filter { !$0.key.hasPrefix("backbone_") && $0.key != "features_content_sha256" }
        let html = try ReportPage(history: result.history, bestEpoch: result.bestEpoch, evaluation: evaluated.evaluation, names: input.names,
                                  mistakes: mistakes.map { ReportPage.Mistake(id: data.ids[$0.row], truth: data.labels[$0.row],
                                                                              predicted: $0.predicted, confidence: Double($0.confidence),
                                                                              png: pictures[data.ids[$0.row]]) },
                                  provenance: provenance(features: options.input, images: imagesURL, backbone: input.backbone, head: headParams),
                                  randomBackbone: input.random, weightsSource: input.backbone["weights"] ?? "unknown",
                                  fallbackReason: input.backbone["weights_fallback"],
                                  recipe: recipe(options, cut: input.cut, fineTuned: trained.tuned != nil) + augmentation(input.views),
                                  correct: correct.map { ReportPage.Mistake(id: data.ids[$0.row], truth: data.labels[$0.row], predicted: $0.predicted,
                                                                            confidence: Double($0.confidence), png: pictures[data.ids[$0.row]]) },
                                  counts: (result.trainCount, result.validationCount, input.testRows.count), made: Date()).render()
        try AtomicOutput.write(to: reportURL, inputs: inputs) { try Data(html.utf8).write(to: $0) }
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
    static func views(_ queue: ArtifactFile, data: Loaded, trainRows: [Int], mode: Views.Mode, file: String) throws -> Views? {
        let table = try FeaturesStore.views(queue)
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
    static func recipe(_ options: Options, cut: Cut, fineTuned: Bool) -> String {
        if let fineTune = options.fineTune {
            let outcome = fineTuned ? "kept: it beat the frozen head's validation loss" : "not kept: no epoch beat the frozen head's validation loss, so the stored model is the frozen one"
            return "Recipe: the head trained on the frozen backbone's end, then \(TopStage.name) fine-tuned with it (its 10 convolutions' kernels and biases, BatchNorm frozen; up to \(fineTune.epochs) epochs at learning rate \(fineTune.learningRate)) on the \(TopStage.inputLayer) maps extract kept; the backbone below conv5 frozen. Fine-tuning \(outcome)."
        }
        let place = cut == cut.architecture.lastCut ? "its end, \(cut)" : cut.names.joined(separator: " + ")
        return "Recipe: the \(cut.architecture.name) backbone frozen and cut at \(place) (\(cut.dimension) features, globally averaged); the head alone trained."
    }

    /// The weights the features were extracted with, as their provenance names them, checked by
    /// MD5: fine-tuning starts from exactly those.
    static func backboneWeights(_ backbone: [String: String], architecture: Architecture, file: String) throws -> ResolvedWeights {
        guard let source = backbone["weights"], let md5 = backbone["weights_md5"] else {
            throw StageError("\(file): table backbone does not name the weights the features came from (weights, weights_md5)")
        }
        let resolved = try WeightsSpec(source).resolve(for: architecture, showProgress: true)
        guard try resolved.md5 == md5 else {
            throw StageError("\(file): the features came from the weights \(source) with MD5 \(md5), but that file now has MD5 \(try resolved.md5): extract again, or restore the file")
        }
        return resolved
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
    static func load(_ queue: ArtifactFile, cut: Cut, file: String) throws -> Loaded {
        var loaded = Loaded()
        loaded.dimension = cut.dimension
        let total = try FeaturesStore.count(queue, layer: cut.names[0])
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
        return try PreprocessedStore.pngs(queue, ids: ids)
    }

    /// Every stage's parameters that can be found: the head's own, the backbone's from the features
    /// file, the preprocessing's and the ingest sources from the artifacts beside it.
    static func provenance(features: URL, images: URL, backbone: [String: String], head: [String: String]) -> [(String, [(String, String)])] {
        var sections: [(String, [(String, String)])] = []
        let folder = features.deletingLastPathComponent()
        if let (queue, _) = try? ImagesStore.open(folder.appendingPathComponent("images.sqlite")),
           let sources = try? ImagesStore.sources(queue) {
            sections.append(("ingest", sources.map { ("split \($0.split)", "\($0.path) (\($0.rows) rows, sha256 \($0.sha256.prefix(12)))") }))
        }
        if let (queue, _) = try? PreprocessedStore.open(images), let params = try? PreprocessedStore.params(queue) {
            sections.append(("preprocess", params.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        }
        // Keys a float run leaves empty (so its file is as before they existed), shown as what they mean.
        var shown = backbone
        if shown["precision", default: ""].isEmpty { shown["precision"] = "fp32" }
        if shown["backbone", default: ""].isEmpty { shown["backbone"] = Backbones.defaultName }
        sections.append(("extract", shown.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        sections.append(("train", head.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
        return sections
    }
}

/// `metrics.json` beside head.sqlite: the figures a script would want, without SQLite.
struct MetricsFile: Encodable {
    struct PerClass: Encodable {
        var label: Int, name: String, precision: Double, recall: Double, f1: Double, support: Int
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

    init(result: TrainingResult, classes: [Int], names: ClassNames, evaluation: Evaluation?, params: [String: String]) {
        evaluated = evaluation != nil
        accuracy = evaluation?.accuracy
        macroF1 = evaluation?.macroF1
        bestEpoch = result.bestEpoch
        epochsRun = result.history.count
        self.classes = classes.map(names.name)
        perClass = evaluation?.perClass.map { PerClass(label: $0.label, name: names.name($0.label), precision: $0.precision,
                                                       recall: $0.recall, f1: $0.f1, support: $0.support) } ?? []
        confusionLabels = evaluation?.labels.map(names.name) ?? []
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
