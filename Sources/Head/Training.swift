import Foundation
import Numerical

/// How to train a head; the defaults are the notebook's Keras head.
public struct TrainingOptions: Sendable, Equatable {
    public var hidden: [Int] = [256]
    public var dropout: Float = 0.5
    public var epochs = 30
    public var batch = 64
    public var learningRate: Float = 0.001
    /// The fraction of each class's training images held out for validation.
    public var validation = 0.1
    /// Epochs without a better validation loss before stopping; 0 never stops early.
    public var patience = 5
    public var seed: UInt64 = 0
    /// Inputs z-scored per dimension on the training rows (see `Standardization`), or left raw.
    public var standardize: StandardizeMode = .zscore
    /// L2 penalty on the weights (Keras's `kernel_regularizer=l2(...)`); 0 for none.
    public var weightDecay: Float = 0
    /// The learning rate over the run: cosine decay from `learningRate` to zero over all epochs'
    /// steps (measured: 1-3 points better than constant on real features), or constant (Keras's default).
    public var schedule: LearningRateSchedule = .cosine

    public init() {}
}

extension TrainingOptions {
    /// Rows per mini-batch when `rows` rows are trained on: a batch larger than the data is the data
    /// (as in Keras), so an accepted `--batch 1048576` allocates for the rows there are. The steps,
    /// and so the head, are those the larger batch would give.
    public func batchSize(rows: Int) -> Int { max(1, min(batch, rows)) }

    /// About how many bytes training takes besides the features: per parameter, the weights, their
    /// gradients, Adam's two moments and the best epoch's copy; per row of a mini-batch, every
    /// layer's output, its dropout mask and two gradient buffers of the widest layer.
    public func estimatedBytes(dimension: Int, classes: Int, batchRows: Int) -> Double {
        let sizes = [dimension] + hidden + [classes]
        let parameters = zip(sizes, sizes.dropFirst()).reduce(0.0) { $0 + Double($1.0 + 1) * Double($1.1) }
        let outputs = Double(sizes.dropFirst().reduce(0, +)), widest = Double(sizes.max() ?? 0)
        return 4 * (5 * parameters + Double(batchRows) * (outputs + Double(hidden.reduce(0, +)) + 2 * widest + Double(dimension)))
    }

    /// Why training with these options would not fit in this machine's memory (more than 80% of
    /// it), or nil: checked before anything is allocated.
    public func memoryProblem(dimension: Int, classes: Int, batchRows: Int) -> String? {
        let needed = estimatedBytes(dimension: dimension, classes: classes, batchRows: batchRows)
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        guard needed > 0.8 * physical else { return nil }
        func gigabytes(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
        let head = "hidden \(hidden.map(String.init).joined(separator: ",")) on \(dimension) inputs"
        let what = batchRows > 0 ? "\(head) with \(batchRows) rows a batch needs about \(gigabytes(needed)) to train"
                                 : "\(head) needs about \(gigabytes(needed)) for its weights, their gradients and Adam's moments"
        return "\(what); this machine has \(gigabytes(physical)): choose smaller hidden layers\(batchRows > 0 ? " (or a smaller batch)" : "")"
    }
}

public enum LearningRateSchedule: String, Sendable, CaseIterable {
    case constant, cosine

    /// The factor on the learning rate before step `step` of `total`.
    public func factor(step: Int, of total: Int) -> Float {
        switch self {
        case .constant: 1
        case .cosine: Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(total))))
        }
    }
}

/// Every training loop's early stopping: the best epoch so far (lowest validation loss; without
/// validation, the last) with what it had learnt, and how many epochs have not beaten it.
public struct EarlyStopping<Snapshot> {
    public private(set) var best: (loss: Double, epoch: Int, snapshot: Snapshot)
    let patience: Int
    var waited = 0

    /// `start`: what stands as best before any epoch (with its `loss` and `epoch`, e.g. an earlier phase's).
    public init(patience: Int, start: Snapshot, loss: Double = .infinity, epoch: Int = 0) {
        self.patience = patience
        best = (loss, epoch, start)
    }

    /// Takes an epoch's record and what it ended with; true when training should stop (`patience`
    /// epochs without a better validation loss; 0 never stops).
    public mutating func record(_ record: EpochRecord, _ snapshot: Snapshot) -> Bool {
        guard let loss = record.validationLoss else {
            best = (record.loss, record.epoch, snapshot)
            return false
        }
        if loss < best.loss {
            best = (loss, record.epoch, snapshot)
            waited = 0
            return false
        }
        waited += 1
        return patience > 0 && waited >= patience
    }
}

public struct EpochRecord: Sendable, Equatable {
    public var epoch: Int
    public var loss: Double
    public var accuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var seconds: Double

    public init(epoch: Int, loss: Double, accuracy: Double, validationLoss: Double? = nil, validationAccuracy: Double? = nil, seconds: Double) {
        self.epoch = epoch
        self.loss = loss
        self.accuracy = accuracy
        self.validationLoss = validationLoss
        self.validationAccuracy = validationAccuracy
        self.seconds = seconds
    }
}

public struct TrainingResult: Sendable {
    /// The network with the best epoch's weights (the last epoch's without validation).
    public var network: DenseNetwork
    /// Fitted on the training rows (not validation) when `options.standardize` is zscore.
    public var standardization: Standardization?
    public var classifier: Classifier { Classifier(standardization: standardization, network: network) }
    public var history: [EpochRecord]
    public var bestEpoch: Int
    public var stoppedEarly: Bool
    /// The epoch in which the loss stopped being a finite number (training stopped there), if it did.
    public var divergedAt: Int? = nil
    public var trainCount: Int
    /// The rows (of the features given) held out for validation, ascending.
    public var validationRows: [Int]
    public var validationCount: Int { validationRows.count }

    public init(network: DenseNetwork, standardization: Standardization?, history: [EpochRecord], bestEpoch: Int, stoppedEarly: Bool,
                trainCount: Int, validationRows: [Int]) {
        self.network = network
        self.standardization = standardization
        self.history = history
        self.bestEpoch = bestEpoch
        self.stoppedEarly = stoppedEarly
        self.trainCount = trainCount
        self.validationRows = validationRows
    }
}

public enum Trainer {
    /// Trains on `features[count x dimension]` with class indices `labels` (0 ..< classCount).
    /// Everything random (initial weights, the validation split, shuffles, dropout) comes from one
    /// generator seeded with `options.seed`: the same data and seed give the same weights.
    /// `features` is consumed: standardization rewrites it in place, so a caller that passes its last
    /// use of the array (as the train stage does) spends no second copy of the features (225 MB at full size).
    /// `views`: which rows are augmented views of which (nil: every row is an original).
    public static func train(features: consuming [Float], labels: [Int], dimension: Int, classCount: Int, options: TrainingOptions,
                             views: Views? = nil, onEpoch: (EpochRecord) -> Void = { _ in }) -> TrainingResult {
        var features = features
        return trainAlone(features: &features, labels: labels, dimension: dimension, classCount: classCount, options: options, views: views, onEpoch: onEpoch)
    }

    /// The validation rows, drawn (stratified) from the originals only; and the training originals.
    public static func split(labels: [Int], classCount: Int, fraction: Double, views: Views?, generator: inout SplitMix64) -> (train: [Int], validation: [Int]) {
        guard let views else { return stratifiedSplit(labels: labels, classCount: classCount, fraction: fraction, generator: &generator) }
        let (train, validation) = stratifiedSplit(labels: views.originals.map { labels[$0] }, classCount: classCount, fraction: fraction, generator: &generator)
        return (train.map { views.originals[$0] }, validation.map { views.originals[$0] })
    }

    static func trainAlone(features: inout [Float], labels: [Int], dimension: Int, classCount: Int, options: TrainingOptions,
                           views: Views?, onEpoch: (EpochRecord) -> Void) -> TrainingResult {
        var generator = SplitMix64(seed: options.seed)
        var network = DenseNetwork(sizes: [dimension] + options.hidden + [classCount], dropout: options.dropout, generator: &generator)
        // With views, `trainRows` are the training originals; the rows trained on are drawn from
        // their views each epoch.
        let (trainRows, validationRows) = split(labels: labels, classCount: classCount, fraction: options.validation, views: views, generator: &generator)
        // Fitted on the rows trained on (every view of the training originals), never the validation rows; applied to both.
        var standardization: Standardization?
        if options.standardize == .zscore {
            let fittedRows = views?.rows(of: trainRows) ?? trainRows
            let fitted = features.withUnsafeBufferPointer { Standardization.fit($0, dimension: dimension, rows: fittedRows) }
            features.withUnsafeMutableBufferPointer { fitted.apply($0, count: labels.count) }
            standardization = fitted
        }
        var adam = Adam(learningRate: options.learningRate)
        adam.weightDecay = options.weightDecay
        let epochSize = views?.epochSize(trainRows) ?? trainRows.count
        let batchSize = options.batchSize(rows: epochSize)
        let stepsPerEpoch = (epochSize + batchSize - 1) / batchSize
        let totalSteps = max(1, stepsPerEpoch * max(1, options.epochs))
        var stepsTaken = 0
        var history: [EpochRecord] = []
        var stopping = EarlyStopping(patience: options.patience, start: network)
        var stoppedEarly = false
        var order = trainRows
        var batch = [Float](repeating: 0, count: batchSize * dimension)
        let scratch = DenseNetwork.Scratch(network: network, batch: batchSize)

        for epoch in 1 ... max(1, options.epochs) {
            let started = Date()
            if let views { order = views.epochRows(trainRows, generator: &generator) }
            order.shuffle(using: &generator)
            var lossSum = 0.0, correct = 0
            for start in stride(from: 0, to: order.count, by: batchSize) {
                let rows = Array(order[start ..< min(start + batchSize, order.count)])
                gather(features, rows: rows, dimension: dimension, into: &batch)
                let masks = dropoutMasks(network, rows: rows.count, rate: options.dropout, generator: &generator)
                let step = batch.withUnsafeBufferPointer {
                    network.lossAndGradients(UnsafeBufferPointer(rebasing: $0[0 ..< rows.count * dimension]),
                                             labels: rows.map { labels[$0] }, dropoutMasks: masks, scratch: scratch)
                }
                adam.learningRate = options.learningRate * options.schedule.factor(step: stepsTaken, of: totalSteps)
                // A NaN or infinite loss poisons every weight at the next update: stop here.
                guard step.loss.isFinite else {
                    var result = TrainingResult(network: stopping.best.snapshot, standardization: standardization, history: history,
                                                bestEpoch: stopping.best.epoch, stoppedEarly: true, trainCount: trainRows.count, validationRows: validationRows)
                    result.divergedAt = epoch
                    return result
                }
                adam.update(&network, scratch.gradients)
                stepsTaken += 1
                lossSum += step.loss * Double(rows.count)
                correct += step.correct
            }
            var record = EpochRecord(epoch: epoch, loss: lossSum / Double(max(order.count, 1)),
                                     accuracy: Double(correct) / Double(max(order.count, 1)), seconds: 0)
            if !validationRows.isEmpty {
                let (loss, accuracy) = evaluate(network, features: features, labels: labels, rows: validationRows, dimension: dimension)
                record.validationLoss = loss
                record.validationAccuracy = accuracy
            }
            record.seconds = Date().timeIntervalSince(started)
            history.append(record)
            onEpoch(record)
            if stopping.record(record, network) {
                stoppedEarly = epoch < options.epochs
                break
            }
        }
        return TrainingResult(network: stopping.best.snapshot, standardization: standardization, history: history, bestEpoch: stopping.best.epoch,
                              stoppedEarly: stoppedEarly, trainCount: trainRows.count, validationRows: validationRows)
    }

    /// For each class, a seeded shuffle of its rows, the first `round(fraction * n)` held out.
    /// How many of a class's `count` originals are held out for validation: which ones is the
    /// generator's draw, how many is not.
    static func heldOut(_ count: Int, fraction: Double) -> Int {
        min(Int((Double(count) * fraction).rounded()), max(count - 1, 0))
    }

    /// The sizes of the split `train` will draw: validation originals, and the originals trained on
    /// (their views too, when `views`).
    public static func splitSizes(labels: [Int], classCount: Int, fraction: Double, views: Views?) -> (train: Int, validation: Int) {
        var perClass = [Int](repeating: 0, count: classCount)
        for row in views?.originals ?? Array(labels.indices) { perClass[labels[row]] += 1 }
        let validation = perClass.reduce(0) { $0 + heldOut($1, fraction: fraction) }
        return ((views?.originals.count ?? labels.count) - validation, validation)
    }

    static func stratifiedSplit(labels: [Int], classCount: Int, fraction: Double, generator: inout SplitMix64) -> (train: [Int], validation: [Int]) {
        var byClass = [[Int]](repeating: [], count: classCount)
        for (row, label) in labels.enumerated() { byClass[label].append(row) }
        var train: [Int] = [], validation: [Int] = []
        for var rows in byClass {
            rows.shuffle(using: &generator)
            let held = heldOut(rows.count, fraction: fraction)
            validation += rows[..<held]
            train += rows[held...]
        }
        return (train.sorted(), validation.sorted())
    }

    /// One dropout mask per hidden layer of `network` for a batch of `rows`, or nil without dropout.
    public static func dropoutMasks(_ network: DenseNetwork, rows: Int, rate: Float, generator: inout SplitMix64) -> [[Float]]? {
        guard rate > 0 else { return nil }
        return network.layers.dropLast().map { dropoutMask(count: rows * $0.outputs, rate: rate, generator: &generator) }
    }

    static func dropoutMask(count: Int, rate: Float, generator: inout SplitMix64) -> [Float] {
        let keep = 1 / (1 - rate)
        return (0 ..< count).map { _ in Float(generator.nextUniform()) >= rate ? keep : 0 }
    }

    public static func gather(_ features: [Float], rows: [Int], dimension: Int, into batch: inout [Float]) {
        features.withUnsafeBufferPointer { source in
            batch.withUnsafeMutableBufferPointer { destination in
                for (index, row) in rows.enumerated() {
                    (destination.baseAddress! + index * dimension).update(from: source.baseAddress! + row * dimension, count: dimension)
                }
            }
        }
    }

    /// Probabilities of raw feature `rows` through the whole classifier (standardization included),
    /// in chunks so that memory stays bounded.
    public static func predict(_ classifier: Classifier, features: [Float], rows: [Int], dimension: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(rows.count * classifier.classCount)
        var batch = [Float](repeating: 0, count: 1024 * dimension)
        for start in stride(from: 0, to: rows.count, by: 1024) {
            let chunk = Array(rows[start ..< min(start + 1024, rows.count)])
            gather(features, rows: chunk, dimension: dimension, into: &batch)
            // `batch` is this loop's own copy of the rows: standardized where it lies.
            out += batch.withUnsafeMutableBufferPointer {
                classifier.probabilities(overwriting: UnsafeMutableBufferPointer(rebasing: $0[0 ..< chunk.count * dimension]), count: chunk.count)
            }
        }
        return out
    }

    /// Probabilities of `rows` of already standardized features through the bare network.
    static func predict(_ network: DenseNetwork, features: [Float], rows: [Int], dimension: Int) -> [Float] {
        predict(Classifier(standardization: nil, network: network), features: features, rows: rows, dimension: dimension)
    }

    static func evaluate(_ network: DenseNetwork, features: [Float], labels: [Int], rows: [Int], dimension: Int) -> (loss: Double, accuracy: Double) {
        lossAndAccuracy(predict(network, features: features, rows: rows, dimension: dimension), classes: network.classCount, labels: labels, rows: rows)
    }

    /// Mean cross-entropy and accuracy of `probabilities[rows.count x classes]` (row i for `rows[i]`)
    /// against `labels[rows[i]]`: the validation figures of every training loop.
    public static func lossAndAccuracy(_ probabilities: [Float], classes: Int, labels: [Int], rows: [Int]) -> (loss: Double, accuracy: Double) {
        var loss = 0.0, correct = 0
        for (index, row) in rows.enumerated() {
            let p = probabilities[index * classes ..< (index + 1) * classes]
            loss -= log(Double(max(p[index * classes + labels[row]], 1e-12)))
            if p.indices.max(by: { p[$0] < p[$1] })! - index * classes == labels[row] { correct += 1 }
        }
        return (loss / Double(rows.count), Double(correct) / Double(rows.count))
    }
}
