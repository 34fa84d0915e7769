import Backbone
import FineTune
import Fixtures
import Foundation
import Head
import Numerical
import Testing

/// The fixture's generated weights, read through the real reader once per process.
nonisolated(unsafe) let parityWeights: Result<KerasWeightsFile, any Error> = Result { try KerasWeightsFile(Fixtures.parityWeights()) }

/// The step Keras took (`scripts/make_finetune_fixture.py`): its loss and, per tensor, the change
/// plain SGD made at sampled positions.
struct KerasStep: Decodable {
    struct Tensor: Decodable {
        var name: String
        var shape: [Int]
        var largest_change: Double
        var index: [Int]
        var change: [Double]
    }

    var labels: [Int]
    var learning_rate: Float
    var loss: Double
    var tensors: [Tensor]
}

@Suite struct TopStageTraining {
    static let folder = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-finetune")

    /// conv5 run by the trainable stage on kept maps gives what the inference backbone gives from
    /// the image: the same folded weights, one through im2col and sgemm, the other through Winograd
    /// and our GEMM.
    @Test func forwardMatchesTheInferenceBackbone() throws {
        let weights = try parityWeights.get()
        let network = try ResNet50(weights: weights, size: 64)
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_64.npy"))
        let keep = ResNet50.blockNames.firstIndex(of: TopStage.inputLayer)!
        let workspace = network.makeWorkspace(count: 4, size: 64)
        inputs.bytes.withUnsafeBufferPointer { ResNet50.architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
        let stage = try TopStage(weights: weights)
        let top = stage.makeWorkspace(capacity: 4, side: 4)
        var features = [Float](repeating: 0, count: 4 * 2048)
        features.withUnsafeMutableBufferPointer {
            network.forward(workspace, count: 4, taps: [ResNet50.blockNames.count - 1], into: [$0.baseAddress!], keep: (keep, top.input))
        }
        stage.forward(top, count: 4)
        let ours = Array(UnsafeBufferPointer(start: top.pooled, count: 4 * 2048))
        let largest = features.map(abs).max()!
        let worst = zip(ours, features).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * largest, "max difference \(worst), largest \(largest)")
    }

    /// Backward against central finite differences on a tiny case: conv5's structure (a strided
    /// projection block, two identity blocks, 3x3s that see their padding) with 6 channels in, 4 wide,
    /// 8 out, maps of side 4, non-trivial BatchNorms and biases; every parameter checked.
    @Test func gradientsMatchFiniteDifferences() throws {
        let channels = TopStage.Channels(input: 6, width: 4, output: 8)
        var stage = try TopStage(weights: TinyWeights(seed: 5), channels: channels)
        var generator = SplitMix64(seed: 11)
        let count = 2, side = 4
        let maps = (0 ..< count * side * side * channels.input).map { _ in Float(max(0, generator.nextNormal())) }
        let readout = (0 ..< count * channels.output).map { _ in Float(generator.nextNormal()) }
        let workspace = stage.makeWorkspace(capacity: count, side: side)
        func loss(_ stage: TopStage) -> Double {
            maps.withUnsafeBufferPointer { workspace.input.update(from: $0.baseAddress!, count: $0.count) }
            stage.forward(workspace, count: count)
            return (0 ..< count * channels.output).reduce(0.0) { $0 + Double(workspace.pooled[$1]) * Double(readout[$1]) }
        }
        _ = loss(stage)
        readout.withUnsafeBufferPointer { stage.backward(workspace, count: count, pooledGradient: $0.baseAddress!) }
        let analytic = workspace.gradients
        var worst = 0.0, checked = 0, skipped = 0
        for conv in stage.convs.indices {
            for isBias in [false, true] {
                for i in 0 ..< (isBias ? stage.convs[conv].bias.count : stage.convs[conv].kernel.count) {
                    func numeric(_ h: Float) -> Double {
                        var up = stage, down = stage
                        if isBias {
                            up.convs[conv].bias[i] += h
                            down.convs[conv].bias[i] -= h
                        } else {
                            up.convs[conv].kernel[i] += h
                            down.convs[conv].kernel[i] -= h
                        }
                        up.refold()
                        down.refold()
                        return (loss(up) - loss(down)) / Double(2 * h)
                    }
                    let exact = Double(isBias ? analytic.bias[conv][i] : analytic.weights[conv][i])
                    func error(_ numeric: Double) -> Double { abs(numeric - exact) / max(0.1, abs(exact)) }
                    // A ReLU whose input is within the step of zero makes the difference quotient
                    // straddle its kink (the loss is not differentiable across it): there the
                    // quotients at different steps disagree with each other, and the parameter is
                    // skipped (at most a tenth may be).
                    // Steps of 1e-3, 2.5e-4 and 6.25e-5 (float32 noise about 1e-3 at the last): the
                    // first that agrees passes.
                    let steps: [Float] = [1e-3, 2.5e-4, 6.25e-5]
                    let quotients = steps.map(numeric)
                    let best = quotients.map(error).min()!
                    if best >= 1e-2 {
                        let spread = (quotients.max()! - quotients.min()!) / max(0.1, abs(quotients[0]))
                        if spread > 1e-2 {
                            skipped += 1
                            continue
                        }
                        #expect(best < 1e-2, "\(stage.convs[conv].name) \(isBias ? "bias" : "kernel")[\(i)]: numeric \(quotients), backward \(exact)")
                    }
                    worst = max(worst, best)
                    checked += 1
                }
            }
        }
        #expect(skipped * 10 < checked, "\(skipped) parameters by a kink, \(checked) checked")
        print("finite differences: \(checked) parameters checked, worst relative error \(worst); \(skipped) skipped by a ReLU kink")
    }

    /// The fused step (raw gradient, Adam and refold in one pass, eight channels at a time) against
    /// the plain path: Adam's own update of the raw tensors from the raw gradients, then a refold.
    /// Convolutions with 16 outputs take the vector loop, those with 6 the scalar one; two steps, bit for bit.
    @Test func fusedAdamStepIsThePlainOne() throws {
        let channels = TopStage.Channels(input: 6, width: 6, output: 16)
        var fused = try TopStage(weights: TinyWeights(seed: 9), channels: channels)
        var plain = fused
        var generator = SplitMix64(seed: 4)
        let workspace = fused.makeWorkspace(capacity: 3, side: 4)
        var adamFused = Adam(learningRate: 0.01), adamPlain = Adam(learningRate: 0.01)
        var moments = TopStage.Moments(fused)
        for _ in 0 ..< 2 {
            for i in 0 ..< 3 * 16 * 6 { workspace.input[i] = Float(max(0, generator.nextNormal())) }
            let readout = (0 ..< 3 * 16).map { _ in Float(generator.nextNormal()) }
            fused.forward(workspace, count: 3)
            readout.withUnsafeBufferPointer { fused.backward(workspace, count: 3, pooledGradient: $0.baseAddress!) }
            let gradients = workspace.gradients
            fused.adamStep(workspace, adam: &adamFused, moments: &moments)
            let alpha = adamPlain.beginStep()
            for index in plain.convs.indices {
                adamPlain.apply(&plain.convs[index].kernel, gradients.weights[index], slot: 2 * index, alpha: alpha)
                adamPlain.apply(&plain.convs[index].bias, gradients.bias[index], slot: 2 * index + 1, alpha: alpha)
            }
            plain.refold()
            for (a, b) in zip(fused.convs, plain.convs) {
                #expect(a.kernel == b.kernel && a.bias == b.bias, "\(a.name)")
            }
            // The folded forms agree too: the same forward from both.
            fused.forward(workspace, count: 3)
            let fromFused = Array(UnsafeBufferPointer(start: workspace.pooled, count: 3 * 16))
            plain.forward(workspace, count: 3)
            #expect(Array(UnsafeBufferPointer(start: workspace.pooled, count: 3 * 16)) == fromFused)
        }
    }

    /// One step of plain SGD on a fixed batch (no shuffling, no dropout) moves every conv5 kernel and
    /// bias and the head's weights as Keras moved them, within 1e-4 of each tensor's largest change;
    /// with bf16 products (`--fine-tune-precision bf16`), within bf16's own precision (the bar
    /// below), and not within float's: the rounding is real.
    @Test(arguments: FineTunePrecision.allCases.filter { $0 == .fp32 || GEMMKernel.available.contains(.avx512bf16) })
    func oneSGDStepMatchesKeras(precision: FineTunePrecision) throws {
        let step = try JSONDecoder().decode(KerasStep.self, from: Data(contentsOf: Self.folder.appendingPathComponent("step.json")))
        var stage = try TopStage(weights: try parityWeights.get())
        stage.precision = precision
        // bf16: each tensor's step within 15% of its size (root mean square over the sampled
        // positions; measured 10.8% at worst: the gradients come back through up to nine bf16
        // products). What that costs in accuracy is measured by scripts/bench_finetune_precision.sh.
        let bar = 0.15
        let maps = try NPY(Self.folder.appendingPathComponent("maps_64.npy"))
        #expect(maps.shape == [4, 4, 4, 1024])
        let standardization = try NPY(Self.folder.appendingPathComponent("standardization.npy")).floats
        let mean = Array(standardization[..<2048]), deviation = Array(standardization[2048...])
        func floats(_ name: String) throws -> [Float] { try NPY(Self.folder.appendingPathComponent("\(name).npy")).floats }
        let network = DenseNetwork(layers: [.init(inputs: 2048, outputs: 8, weights: try floats("head_w1"), bias: try floats("head_b1")),
                                            .init(inputs: 8, outputs: 3, weights: try floats("head_w2"), bias: try floats("head_b2"))], dropout: 0)

        let workspace = stage.makeWorkspace(capacity: 4, side: 4)
        maps.floats.withUnsafeBufferPointer { workspace.input.update(from: $0.baseAddress!, count: $0.count) }
        stage.forward(workspace, count: 4)
        var z = Array(UnsafeBufferPointer(start: workspace.pooled, count: 4 * 2048))
        z.withUnsafeMutableBufferPointer { Standardization(mean: mean, deviation: deviation).apply($0, count: 4) }
        let scratch = DenseNetwork.Scratch(network: network, batch: 4)
        var inputGradient = [Float](repeating: 0, count: 4 * 2048)
        let (loss, _) = z.withUnsafeBufferPointer { x in
            inputGradient.withUnsafeMutableBufferPointer {
                network.lossAndGradients(x, labels: step.labels, dropoutMasks: nil, scratch: scratch, inputGradient: $0.baseAddress!)
            }
        }
        #expect(abs(loss - step.loss) <= (precision == .fp32 ? 1e-5 : 1e-3) * abs(step.loss), "loss \(loss), Keras \(step.loss)")
        for row in 0 ..< 4 {
            for d in 0 ..< 2048 { inputGradient[row * 2048 + d] /= deviation[d] }
        }
        inputGradient.withUnsafeBufferPointer { stage.backward(workspace, count: 4, pooledGradient: $0.baseAddress!) }

        // Plain SGD: the change is -learning_rate * gradient.
        var ours: [String: [Float]] = [:]
        for (index, conv) in stage.convs.enumerated() {
            ours["\(conv.name).kernel"] = workspace.gradients.weights[index].map { -step.learning_rate * $0 }
            ours["\(conv.name).bias"] = workspace.gradients.bias[index].map { -step.learning_rate * $0 }
        }
        for (index, name) in ["w1", "b1", "w2", "b2"].enumerated() {
            let gradient = index % 2 == 0 ? scratch.gradients.weights[index / 2] : scratch.gradients.bias[index / 2]
            ours["head.\(name)"] = gradient.map { -step.learning_rate * $0 }
        }
        #expect(step.tensors.count == 24)
        var worst = 0.0, worstRMS = 0.0
        for tensor in step.tensors {
            let change = try #require(ours[tensor.name], "no tensor \(tensor.name)")
            #expect(change.count == tensor.shape.reduce(1, *), "\(tensor.name)")
            let differences = zip(tensor.index, tensor.change).map { Double(change[$0]) - $1 }
            let error = differences.map(abs).max()! / tensor.largest_change
            // The step's size of error over the sampled positions, against the step's own size there.
            let rms = (differences.map { $0 * $0 }.reduce(0, +) / tensor.change.map { $0 * $0 }.reduce(0, +)).squareRoot()
            worst = max(worst, error)
            worstRMS = max(worstRMS, rms)
            if precision == .fp32 {
                #expect(error <= 1e-4, "\(tensor.name): off by \(error) of its largest change \(tensor.largest_change)")
            } else {
                #expect(rms <= bar, "\(tensor.name) (bf16): the step off by \(rms) of its own size")
            }
        }
        if precision == .bf16 { #expect(worst > 1e-4, "bf16 is not float under another name") }
        print("one SGD step against Keras (\(precision)): worst difference \(worst) of a tensor's largest change, worst step error \(worstRMS) of its size; loss \(loss) vs \(step.loss)")
    }
}

/// Small weights for every convolution with BatchNorms far from identity and non-zero biases.
struct TinyWeights: BackboneWeights {
    let seed: UInt64

    func generator(_ name: String) -> SplitMix64 {
        SplitMix64(seed: name.utf8.reduce(seed) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
    }

    func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights {
        var random = generator(name)
        let scale = (2.0 / Double(size * size * input)).squareRoot()
        return ConvWeights(kernel: (0 ..< size * size * input * output).map { _ in Float(random.nextNormal() * scale) },
                           bias: (0 ..< output).map { _ in Float(random.nextNormal() * 0.1) })
    }

    func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights {
        var random = generator(name)
        func values(_ body: (inout SplitMix64) -> Double) -> [Float] { (0 ..< channels).map { _ in Float(body(&random)) } }
        return BatchNormWeights(gamma: values { 0.5 + $0.nextUniform() }, beta: values { $0.nextNormal() * 0.2 },
                                mean: values { $0.nextNormal() * 0.2 }, variance: values { 0.5 + $0.nextUniform() })
    }
}
