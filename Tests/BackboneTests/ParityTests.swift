import Artifacts
import Backbone
import Fixtures
import Foundation
import Numerical
import Stages
import Testing
import WeightsFetch

@Suite struct KerasParity {
    /// The fixture's weights, generated, written through libhdf5 and read back through the real reader.
    static let networks: Result<[GEMMKernel: ResNet50], any Error> = Result {
        let file = try KerasWeightsFile(Fixtures.parityWeights())
        return try Dictionary(uniqueKeysWithValues: GEMMKernel.available.map { ($0, try ResNet50(weights: file, kernel: $0)) })
    }

    /// Swift makes the same 23.5 million weights as NumPy did for the fixture, bit for bit: without
    /// this, a parity failure could be the generator's and not the network's.
    @Test func generatedWeightsAreTheFixturesBitForBit() throws {
        let meta = try ParityWeights.meta(), layout = try ParityWeights.layout()
        #expect(layout.reduce(0) { $0 + $1.weights.count } == meta.tensors)
        #expect(ParityWeights.digest(seed: meta.seed, layout: layout) == meta.weights_sha256)
    }

    /// Both GEMM paths (our AVX-512 kernel where the CPU has it, and OpenBLAS) at every fixture size.
    @Test(arguments: [32, 64, 224], GEMMKernel.available)
    func featuresMatchKeras(size: Int, kernel: GEMMKernel) throws {
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_\(size).npy")).floats
        #expect(inputs.shape == [4, size, size, 3])
        let features = try #require(try Self.networks.get()[kernel]).features(rgb: inputs.bytes, count: 4, size: size)
        let largest = expected.map(abs).max()!
        let worst = zip(features, expected).map { abs($0 - $1) }.max()!
        print("parity at \(size) (\(kernel)): max |ours - keras| = \(worst) (\(worst / largest) of the largest value \(largest))")
        #expect(worst <= 1e-4 * largest, "size \(size), \(kernel): max |ours - keras| = \(worst), largest reference value \(largest)")
    }

    /// The bar can be missed: a backbone that ignores one BatchNorm's moving mean, deep in the
    /// network, is caught at every size.
    @Test(arguments: [32, 64])
    func aFoldThatForgetsOneMeanFailsTheBar(size: Int) throws {
        let network = try ResNet50(weights: ForgetMean(base: try KerasWeightsFile(Fixtures.parityWeights()), layer: "conv4_block3_2_bn"))
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_\(size).npy")).floats
        let features = network.features(rgb: inputs.bytes, count: 4, size: size)
        let worst = zip(features, expected).map { abs($0 - $1) }.max()!
        #expect(worst > 1e-2 * expected.map(abs).max()!, "max difference only \(worst)")
    }
}

/// Weights that pass everything through but one BatchNorm's moving mean, set to zero.
struct ForgetMean: BackboneWeights {
    let base: any BackboneWeights
    let layer: String

    func conv(_ name: String, size: Int, input: Int, output: Int) throws -> ConvWeights {
        try base.conv(name, size: size, input: input, output: output)
    }

    func batchNorm(_ name: String, channels: Int) throws -> BatchNormWeights {
        var weights = try base.batchNorm(name, channels: channels)
        if name == layer { weights.mean = .init(repeating: 0, count: channels) }
        return weights
    }
}

@Suite struct BatchIndependence {
    /// A batch of 7 at 224 runs its first stages in steps of 5 and 2 images: each image's features
    /// must be exactly those it gets alone, on both GEMM paths.
    @Test(arguments: GEMMKernel.available)
    func featuresDoNotDependOnTheBatch(kernel: GEMMKernel) throws {
        let network = try ResNet50(weights: RandomWeights(seed: 3), kernel: kernel)
        let pixels = 224 * 224 * 3
        let rgb: [UInt8] = (0 ..< 7 * pixels).map { UInt8(truncatingIfNeeded: ($0 * 2_654_435_761) >> 13) }
        let together = network.features(rgb: rgb, count: 7, size: 224)
        let workspace = network.makeWorkspace(count: 1, size: 224)
        for image in 0 ..< 7 {
            let alone = network.features(rgb: Array(rgb[image * pixels ..< (image + 1) * pixels]), count: 1, size: 224, workspace: workspace)
            #expect(Array(together[image * 2048 ..< (image + 1) * 2048]) == alone, "image \(image)")
        }
    }
}
