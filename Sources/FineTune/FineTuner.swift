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

/// What fine-tuning returns: the head as `Trainer` does (its history both phases'), and the trained
/// top stage of the best epoch.
public struct FineTuneResult: Sendable {
    public var head: TrainingResult
    public var stage: TopStage
    /// Whether an epoch of fine-tuning beat the frozen head's best validation loss (else the stage
    /// is the frozen one and the head the first phase's).
    public var improved: Bool
}

/// The second phase of Keras's fine-tuning recipe: with the head already trained on the frozen
/// features (`Trainer`, the first phase), conv5 and the head train together at a low learning rate
/// on the kept conv4_block6_out maps. (Trained together from a random head, the head's first large
/// gradients wreck conv5's pre-trained features: measured, the fine-tuned model then ends below the
/// frozen one.) The same validation rows; Adam for each, the schedule over the fine-tuning epochs,
/// early stopping on the validation loss; an epoch is kept only if it beats the frozen head's best.
/// The standardization stays the first phase's, fixed; gradients pass through it.
public enum FineTuner {
    /// `head`: the first phase's result on the same rows; `labels`: class indices of the rows, whose
    /// maps `source` loads; `options`: batch, dropout, patience, schedule, weight decay and seed.
    /// `views`: as the first phase's (validation from the originals, one view or all per epoch).
    /// `precision`: what the training steps' products multiply (validation and the result run in float).
    public static func train(stage initial: TopStage, head: TrainingResult, source: any MapSource, labels: [Int], options: TrainingOptions,
                             epochs: Int, learningRate: Float, views: Views? = nil, precision: FineTunePrecision = .fp32,
                             onEpoch: (EpochRecord) -> Void = { _ in }) throws -> FineTuneResult {
        var training = initial
        training.precision = precision
        var result = try withSingleThreadedBLAS {
            try trainAlone(stage: training, head: head, source: source, labels: labels, options: options, epochs: epochs,
                           learningRate: learningRate, views: views, onEpoch: onEpoch)
        }
        result.stage.precision = .fp32
        return result
    }

    static func trainAlone(stage initial: TopStage, head: TrainingResult, source: any MapSource, labels: [Int], options: TrainingOptions,
                           epochs: Int, learningRate: Float, views: Views?, onEpoch: (EpochRecord) -> Void) throws -> FineTuneResult {
        let dimension = initial.channels.output
        precondition(head.network.inputCount == dimension)
        let classCount = head.network.classCount
        let standardization = head.standardization
        let validationRows = head.validationRows
        let held = Set(validationRows)
        // With views: the training originals, whose views are drawn each epoch.
        let trainRows = (views?.originals ?? Array(labels.indices)).filter { !held.contains($0) }
        // Its own stream, so that the first phase's draws stay those of a plain `train`.
        var generator = SplitMix64(seed: options.seed ^ 0x5EED_F17E)
        var network = head.network, stage = initial
        var headAdam = Adam(learningRate: learningRate), stageAdam = Adam(learningRate: learningRate)
        var moments = TopStage.Moments(stage)
        headAdam.weightDecay = options.weightDecay
        let epochSize = views?.epochSize(trainRows) ?? trainRows.count
        let batchSize = options.batchSize(rows: epochSize)
        let stepsPerEpoch = (epochSize + batchSize - 1) / batchSize
        let totalSteps = max(1, stepsPerEpoch * max(1, epochs))
        var stepsTaken = 0
        var history: [EpochRecord] = []
        let frozen = head.history.count
        let frozenLoss = head.history.indices.contains(head.bestEpoch - 1) ? head.history[head.bestEpoch - 1].validationLoss : nil
        // The frozen head stands as best until an epoch beats it.
        var stopping = EarlyStopping(patience: options.patience, start: (network: network, stage: stage), loss: frozenLoss ?? .infinity, epoch: head.bestEpoch)
        var stoppedEarly = false
        var order = trainRows
        let workspace = stage.makeWorkspace(capacity: batchSize, side: source.side)
        let scratch = DenseNetwork.Scratch(network: network, batch: batchSize)
        var inputs = [Float](repeating: 0, count: batchSize * dimension), inputGradient = inputs
        // Two map buffers: the next batch is read from disk and decoded while this one trains.
        let mapFloats = batchSize * source.side * source.side * initial.channels.input
        let spare = UnsafeMutablePointer<Float>.allocate(capacity: mapFloats)
        defer { spare.deallocate() }
        let loader = Prefetcher(source: source)

        for epoch in 1 ... max(1, epochs) {
            let started = Date()
            if let views { order = views.epochRows(trainRows, generator: &generator) }
            order.shuffle(using: &generator)
            var lossSum = 0.0, correct = 0
            let batches = stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0 ..< min($0 + batchSize, order.count)]) }
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
                let masks = Trainer.dropoutMasks(network, rows: count, rate: options.dropout, generator: &generator)
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
                let factor = options.schedule.factor(step: stepsTaken, of: totalSteps)
                headAdam.learningRate = learningRate * factor
                stageAdam.learningRate = learningRate * factor
                guard step.loss.isFinite else {
                    try loader.finish()
                    var result = TrainingResult(network: stopping.best.snapshot.network, standardization: standardization, history: head.history + history,
                                                bestEpoch: stopping.best.epoch, stoppedEarly: true, trainCount: trainRows.count, validationRows: validationRows)
                    result.divergedAt = frozen + epoch
                    return FineTuneResult(head: result, stage: stopping.best.snapshot.stage, improved: stopping.best.epoch > frozen)
                }
                headAdam.update(&network, scratch.gradients)
                stage.adamStep(workspace, adam: &stageAdam, moments: &moments)
                try loader.finish()
                swap(&current, &next)
                stepsTaken += 1
                lossSum += step.loss * Double(count)
                correct += step.correct
            }
            var record = EpochRecord(epoch: frozen + epoch, loss: lossSum / Double(max(order.count, 1)),
                                     accuracy: Double(correct) / Double(max(order.count, 1)), seconds: 0)
            if !validationRows.isEmpty {
                var evaluating = stage
                evaluating.precision = .fp32
                let probabilities = try predict(stage: evaluating, classifier: Classifier(standardization: standardization, network: network),
                                                source: source, rows: validationRows, workspace: workspace)
                (record.validationLoss, record.validationAccuracy) = Trainer.lossAndAccuracy(probabilities, classes: classCount, labels: labels,
                                                                                             rows: validationRows)
            }
            record.seconds = Date().timeIntervalSince(started)
            history.append(record)
            onEpoch(record)
            if stopping.record(record, (network, stage)) {
                stoppedEarly = epoch < epochs
                break
            }
        }
        let best = stopping.best
        let result = TrainingResult(network: best.snapshot.network, standardization: standardization, history: head.history + history,
                                    bestEpoch: best.epoch, stoppedEarly: stoppedEarly, trainCount: trainRows.count, validationRows: validationRows)
        return FineTuneResult(head: result, stage: best.snapshot.stage, improved: best.epoch > frozen)
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
