import Backbone
import Benchmark
import FineTune
import Head
import Numerical

/// One fine-tuning step of conv5 (forward keeping activations, backward to every kernel and bias,
/// the fused Adam update) on a batch of 64 kept conv4_block6_out maps, at the two input sizes the
/// README compares with Keras: 2x2 maps (32x32 images) and 4x4 (64x64). Seeded random weights: the
/// cost does not depend on the values.
func step(_ benchmark: Benchmark, side: Int) throws {
    var stage = try TopStage(weights: ResNet50.randomWeights(seed: 1))
    let workspace = stage.makeWorkspace(capacity: 64, side: side)
    var generator = SplitMix64(seed: 2)
    for i in 0 ..< 64 * side * side * TopStage.inputChannels { workspace.input[i] = Float(max(0, generator.nextNormal())) }
    let gradient = (0 ..< 64 * TopStage.outputChannels).map { _ in Float(generator.nextNormal() * 1e-3) }
    var adam = Adam(learningRate: 1e-5), moments = TopStage.Moments(stage)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        stage.forward(workspace, count: 64)
        gradient.withUnsafeBufferPointer { stage.backward(workspace, count: 64, pooledGradient: $0.baseAddress!) }
        stage.adamStep(workspace, adam: &adam, moments: &moments)
    }
    benchmark.stopMeasurement()
    blackHole(workspace.pooled[0])
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(20), maxIterations: 30)
    Benchmark("fine-tune conv5: one step, batch 64, 2x2 maps (32x32 input)") { try step($0, side: 2) }
    Benchmark("fine-tune conv5: one step, batch 64, 4x4 maps (64x64 input)") { try step($0, side: 4) }
}
