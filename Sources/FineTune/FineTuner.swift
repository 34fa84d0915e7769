import Foundation
import Head
import Numerical

/// Where the kept maps come from, a mini-batch at a time (from disk: memory does not grow with the
/// dataset).
public protocol MapSource {
    /// The maps' side (conv4_block6_out's: 2 at 32x32 inputs, 4 at 64x64).
    var side: Int { get }
    /// The maps of `rows` (indices into the images trained on), `[rows.count, side, side, 1024]`, into `out`.
    func load(_ rows: [Int], into out: UnsafeMutablePointer<Float>) throws
}

/// Loads a batch of maps on another thread while the caller trains on the last one.
final class Prefetcher: @unchecked Sendable {
    let source: any MapSource
    let group = DispatchGroup()
    var failure: (any Error)?

    init(source: any MapSource) { self.source = source }

    func start(_ rows: [Int], into out: UnsafeMutablePointer<Float>) {
        let out = UncheckedSendable(out)
        DispatchQueue.global().async(group: group) {
            do { try self.source.load(rows, into: out.value) } catch { self.failure = error }
        }
    }

    /// Waits for the load started last; rethrows its error.
    func finish() throws {
        group.wait()
        if let failure {
            self.failure = nil
            throw failure
        }
    }
}

/// What fine-tuning returns: the head as `Trainer` does, and the trained top stage of the best epoch.
public struct FineTuneResult: Sendable {
    public var head: TrainingResult
    public var stage: TopStage
}

/// Trains conv5 and the dense head together on kept conv4_block6_out maps: the head's recipe of
/// `Trainer` (the same seeded validation split, shuffles and dropout, Adam, the schedule, early
/// stopping on the validation loss with the best epoch restored), with conv5 on its own Adam at its
/// own learning rate. The standardization is fitted once, on the frozen backbone's pooled features of
/// the training rows, and then held fixed: it is part of the head, and gradients pass through it.
public enum FineTuner {
    /// `features[count x 2048]`: the frozen backbone's pooled conv5_block3_out of every image (for
    /// the standardization); `labels`: class indices of the same images, whose maps `source` loads.
    public static func train(stage initial: TopStage, source: any MapSource, features: [Float], labels: [Int], classCount: Int,
                             options: TrainingOptions, learningRate: Float, onEpoch: (EpochRecord) -> Void = { _ in }) throws -> FineTuneResult {
        try withSingleThreadedBLAS {
            try trainAlone(stage: initial, source: source, features: features, labels: labels, classCount: classCount, options: options,
                           learningRate: learningRate, onEpoch: onEpoch)
        }
    }

    static func trainAlone(stage initial: TopStage, source: any MapSource, features: [Float], labels: [Int], classCount: Int,
                           options: TrainingOptions, learningRate: Float, onEpoch: (EpochRecord) -> Void) throws -> FineTuneResult {
        let dimension = initial.channels.output
        precondition(features.count == labels.count * dimension)
        var generator = SplitMix64(seed: options.seed)
        var network = DenseNetwork(sizes: [dimension] + options.hidden + [classCount], dropout: options.dropout, generator: &generator)
        let (trainRows, validationRows) = Trainer.stratifiedSplit(labels: labels, classCount: classCount, fraction: options.validation, generator: &generator)
        let standardization = options.standardize == .zscore
            ? features.withUnsafeBufferPointer { Standardization.fit($0, dimension: dimension, rows: trainRows) } : nil
        var stage = initial
        var headAdam = Adam(learningRate: options.learningRate), stageAdam = Adam(learningRate: learningRate)
        var moments = TopStage.Moments(stage)
        headAdam.weightDecay = options.weightDecay
        let stepsPerEpoch = (trainRows.count + options.batch - 1) / options.batch
        let totalSteps = max(1, stepsPerEpoch * max(1, options.epochs))
        var stepsTaken = 0
        var history: [EpochRecord] = []
        var best = (loss: Double.infinity, epoch: 0, network: network, stage: stage)
        var waited = 0, stoppedEarly = false
        var order = trainRows
        let workspace = stage.makeWorkspace(capacity: options.batch, side: source.side)
        let scratch = DenseNetwork.Scratch(network: network, batch: options.batch)
        var inputs = [Float](repeating: 0, count: options.batch * dimension), inputGradient = inputs
        // Two map buffers: the next batch is read from disk and decoded while this one trains.
        let mapFloats = options.batch * source.side * source.side * initial.channels.input
        let spare = UnsafeMutablePointer<Float>.allocate(capacity: mapFloats)
        defer { spare.deallocate() }
        let loader = Prefetcher(source: source)

        for epoch in 1 ... max(1, options.epochs) {
            let started = Date()
            order.shuffle(using: &generator)
            var lossSum = 0.0, correct = 0
            let batches = stride(from: 0, to: order.count, by: options.batch).map { Array(order[$0 ..< min($0 + options.batch, order.count)]) }
            var current = workspace.input, next = spare
            try source.load(batches[0], into: current)
            for (index, rows) in batches.enumerated() {
                let count = rows.count
                if index + 1 < batches.count { loader.start(batches[index + 1], into: next) }
                stage.forward(workspace, count: count, input: current)
                inputs.withUnsafeMutableBufferPointer { x in
                    x.baseAddress!.update(from: workspace.pooled, count: count * dimension)
                    standardization?.apply(x, count: count)
                }
                let masks = options.dropout > 0 ? network.layers.dropLast().map { layer in
                    Trainer.dropoutMask(count: count * layer.outputs, rate: options.dropout, generator: &generator)
                } : nil
                let step = inputs.withUnsafeBufferPointer { x in
                    inputGradient.withUnsafeMutableBufferPointer { g in
                        network.lossAndGradients(UnsafeBufferPointer(rebasing: x[0 ..< count * dimension]), labels: rows.map { labels[$0] },
                                                 dropoutMasks: masks, scratch: scratch, inputGradient: g.baseAddress!)
                    }
                }
                // Back through the fixed standardization: d/dpooled = d/dz / deviation.
                if let standardization {
                    for row in 0 ..< count {
                        for d in 0 ..< dimension { inputGradient[row * dimension + d] /= standardization.deviation[d] }
                    }
                }
                inputGradient.withUnsafeBufferPointer { stage.backward(workspace, count: count, pooledGradient: $0.baseAddress!) }
                if options.schedule == .cosine {
                    let factor = Float(0.5 * (1 + cos(Double.pi * Double(stepsTaken) / Double(totalSteps))))
                    headAdam.learningRate = options.learningRate * factor
                    stageAdam.learningRate = learningRate * factor
                }
                headAdam.update(&network, scratch.gradients)
                stage.adamStep(workspace, adam: &stageAdam, moments: &moments)
                try loader.finish()
                swap(&current, &next)
                stepsTaken += 1
                lossSum += step.loss * Double(count)
                correct += step.correct
            }
            var record = EpochRecord(epoch: epoch, loss: lossSum / Double(max(order.count, 1)), accuracy: Double(correct) / Double(max(order.count, 1)),
                                     seconds: 0)
            if !validationRows.isEmpty {
                let probabilities = try predict(stage: stage, classifier: Classifier(standardization: standardization, network: network),
                                                source: source, rows: validationRows, workspace: workspace)
                var loss = 0.0, right = 0
                for (index, row) in validationRows.enumerated() {
                    let p = probabilities[index * classCount ..< (index + 1) * classCount]
                    loss -= log(Double(max(p[index * classCount + labels[row]], 1e-12)))
                    if p.indices.max(by: { p[$0] < p[$1] })! - index * classCount == labels[row] { right += 1 }
                }
                record.validationLoss = loss / Double(validationRows.count)
                record.validationAccuracy = Double(right) / Double(validationRows.count)
            }
            record.seconds = Date().timeIntervalSince(started)
            history.append(record)
            onEpoch(record)
            guard let validationLoss = record.validationLoss else {
                best = (record.loss, epoch, network, stage)
                continue
            }
            if validationLoss < best.loss {
                best = (validationLoss, epoch, network, stage)
                waited = 0
            } else {
                waited += 1
                if options.patience > 0 && waited >= options.patience {
                    stoppedEarly = epoch < options.epochs
                    break
                }
            }
        }
        let head = TrainingResult(network: best.network, standardization: standardization, history: history, bestEpoch: best.epoch,
                                  stoppedEarly: stoppedEarly, trainCount: trainRows.count, validationRows: validationRows)
        return FineTuneResult(head: head, stage: best.stage)
    }

    /// Probabilities of `rows` through the trained stage and the classifier, a batch at a time.
    public static func predict(stage: TopStage, classifier: Classifier, source: any MapSource, rows: [Int], batch: Int = 64) throws -> [Float] {
        let workspace = stage.makeWorkspace(capacity: batch, side: source.side)
        return try withSingleThreadedBLAS { try predict(stage: stage, classifier: classifier, source: source, rows: rows, workspace: workspace) }
    }

    static func predict(stage: TopStage, classifier: Classifier, source: any MapSource, rows: [Int], workspace: TopStage.Workspace) throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(rows.count * classifier.classCount)
        for start in stride(from: 0, to: rows.count, by: workspace.capacity) {
            let chunk = Array(rows[start ..< min(start + workspace.capacity, rows.count)])
            try source.load(chunk, into: workspace.input)
            stage.forward(workspace, count: chunk.count)
            out += classifier.probabilities(UnsafeBufferPointer(start: workspace.pooled, count: chunk.count * stage.channels.output), count: chunk.count)
        }
        return out
    }
}
