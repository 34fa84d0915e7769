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

    /// Every float GEMM path this CPU runs (our AVX-512 kernel, its AVX2 twin, OpenBLAS) at every fixture size.
    @Test(arguments: [32, 64, 224], GEMMKernel.availableFloat)
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

    /// Every block output, pooled, against Keras's (`blocks_S.npy`: the 16 outputs' averages side
    /// by side), each layer held to the bar of its own largest value; all 16 read in one pass.
    @Test(arguments: [32, 64, 224], GEMMKernel.availableFloat)
    func everyBlockOutputMatchesKeras(size: Int, kernel: GEMMKernel) throws {
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.parity.appendingPathComponent("meta.json"))) as! [String: Any]
        #expect(meta["blocks"] as? [String] == ResNet50.blockNames)
        #expect(meta["block_channels"] as? [Int] == ResNet50.blockChannels)
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Fixtures.parity.appendingPathComponent("blocks_\(size).npy"))
        let width = ResNet50.blockChannels.reduce(0, +)
        #expect(expected.shape == [4, width])
        let network = try #require(try Self.networks.get()[kernel])
        let all = try Cut(ResNet50.blockNames, of: ResNet50.architecture)
        let ours = pooled(network, cut: all, rgb: inputs.bytes, count: 4, size: size)
        var offset = 0, worstRatio: Float = 0
        defer { print("every block at \(size) (\(kernel)): worst layer max |ours - keras| / largest = \(worstRatio)") }
        for (block, channels) in ResNet50.blockChannels.enumerated() {
            var largest: Float = 0, worst: Float = 0
            for image in 0 ..< 4 {
                for c in 0 ..< channels {
                    let reference = expected.floats[image * width + offset + c]
                    largest = max(largest, abs(reference))
                    worst = max(worst, abs(ours[block][image * channels + c] - reference))
                }
            }
            worstRatio = max(worstRatio, worst / largest)
            #expect(largest > 0 && worst <= 1e-4 * largest, "\(ResNet50.blockNames[block]) at \(size), \(kernel): max |ours - keras| = \(worst), largest \(largest)")
            offset += channels
        }
        // A cut at one layer stops there and gives the very values the full pass gave (on our
        // kernels; OpenBLAS promises no bits from one call to the next, only Keras's bar).
        for block in [0, 2, 3, 12] {
            let alone = pooled(network, cut: try Cut([ResNet50.blockNames[block]], of: ResNet50.architecture), rgb: inputs.bytes, count: 4, size: size)
            if kernel == .blas {
                let largest = ours[block].map(abs).max()!, worst = zip(alone[0], ours[block]).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-4 * largest, "\(ResNet50.blockNames[block]) alone at \(size): \(worst) of \(largest)")
            } else {
                #expect(alone[0] == ours[block], "\(ResNet50.blockNames[block]) alone at \(size)")
            }
        }
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
    /// A batch of 7 at 224 runs its first stages in steps of 5 and 2 images: on our kernels each
    /// image's features are exactly those it gets alone (every output is one fixed chain of sums).
    @Test(arguments: GEMMKernel.available.filter { $0 != .blas })
    func featuresDoNotDependOnTheBatch(kernel: GEMMKernel) throws {
        let network = try ResNet50(weights: ResNet50.randomWeights(seed: 3), kernel: kernel)
        let pixels = 224 * 224 * 3
        let rgb: [UInt8] = (0 ..< 7 * pixels).map { UInt8(truncatingIfNeeded: ($0 * 2_654_435_761) >> 13) }
        let together = network.features(rgb: rgb, count: 7, size: 224)
        let workspace = network.makeResNetWorkspace(count: 1, size: 224)
        for image in 0 ..< 7 {
            let alone = network.features(rgb: Array(rgb[image * pixels ..< (image + 1) * pixels]), count: 1, size: 224, workspace: workspace)
            #expect(Array(together[image * 2048 ..< (image + 1) * 2048]) == alone, "image \(image)")
        }
        // The same for a cut inside conv2, which never leaves the steps, and for the kept maps.
        let cut = try Cut(["conv2_block1_out", "conv2_block3_out"], of: ResNet50.architecture)
        let side = ResNet50.blockSide(1, size: 224), mapFloats = side * side * 256
        var maps = [Float](repeating: 0, count: 7 * mapFloats)
        let early = maps.withUnsafeMutableBufferPointer { pooled(network, cut: cut, rgb: rgb, count: 7, size: 224, keep: (1, $0.baseAddress!)) }
        for image in 0 ..< 7 {
            var map = [Float](repeating: 0, count: mapFloats)
            let alone = map.withUnsafeMutableBufferPointer {
                pooled(network, cut: cut, rgb: Array(rgb[image * pixels ..< (image + 1) * pixels]), count: 1, size: 224, keep: (1, $0.baseAddress!))
            }
            #expect(Array(early[0][image * 256 ..< (image + 1) * 256]) == alone[0] && Array(early[1][image * 256 ..< (image + 1) * 256]) == alone[1],
                    "image \(image), conv2")
            #expect(Array(maps[image * mapFloats ..< (image + 1) * mapFloats]) == map, "image \(image), kept conv2_block2_out")
        }
    }

    /// OpenBLAS promises no order of its sums: which kernel it picks for the CPU (OPENBLAS_CORETYPE),
    /// and how the rows of a product are batched, change the last bits. What holds on every one of
    /// its kernels: an image's features in a batch are within 1e-4 of the largest value of those it
    /// gets alone (Keras's bar), on the parity weights at 64 and 224.
    @Test(arguments: [64, 224])
    func openBLASFeaturesStayWithinTheBar(size: Int) throws {
        let network = try #require(try KerasParity.networks.get()[.blas])
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let together = network.features(rgb: inputs.bytes, count: 4, size: size)
        let pixels = size * size * 3
        for image in 0 ..< 4 {
            let alone = network.features(rgb: Array(inputs.bytes[image * pixels ..< (image + 1) * pixels]), count: 1, size: size)
            let batched = Array(together[image * 2048 ..< (image + 1) * 2048])
            let largest = alone.map(abs).max()!, worst = zip(batched, alone).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * largest, "image \(image) at \(size): batched and alone differ by \(worst), largest \(largest)")
        }
    }

    /// Our two kernels compute the same chains: where the CPU runs both, the network gives the same
    /// features on each, bit for bit, at every fixture size (so shards made on either merge).
    @Test(.enabled(if: GEMMKernel.available.contains(.avx512) && GEMMKernel.available.contains(.avx2), "needs a CPU with AVX-512"),
          arguments: [32, 64, 224])
    func ourKernelsGiveTheSameFeatures(size: Int) throws {
        let networks = try KerasParity.networks.get()
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let avx512 = try #require(networks[.avx512]).features(rgb: inputs.bytes, count: 4, size: size)
        let avx2 = try #require(networks[.avx2]).features(rgb: inputs.bytes, count: 4, size: size)
        #expect(avx512 == avx2)
    }
}

/// The pooled outputs of `cut`'s layers for RGB bytes, one array per layer `[count x channels]`.
func pooled(_ network: ResNet50, cut: Cut, rgb: [UInt8], count: Int, size: Int,
            keep: (block: Int, into: UnsafeMutablePointer<Float>)? = nil) -> [[Float]] {
    let workspace = network.makeWorkspace(count: count, size: size)
    rgb.withUnsafeBufferPointer { ResNet50.architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
    let parts = cut.channels.map { UnsafeMutablePointer<Float>.allocate(capacity: count * $0) }
    defer { parts.forEach { $0.deallocate() } }
    network.forward(workspace, count: count, taps: cut.blocks, into: parts, keep: keep)
    return zip(parts, cut.channels).map { Array(UnsafeBufferPointer(start: $0, count: count * $1)) }
}

/// The bf16 fidelity gate: on the parity fixture's images with its weights, at 64 and 224, every
/// image's bf16 features point the way its float features do (cosine at least 0.999) and stay near
/// Keras's; the largest relative difference is printed. The fp32 kernels are held to Keras's bar above.
@Suite(.enabled(if: GEMMKernel.available.contains(.avx512bf16), "needs a CPU with AVX512_BF16"))
struct PrecisionGate {
    static let networks: Result<(float: ResNet50, bf16: ResNet50), any Error> = Result {
        let file = try KerasWeightsFile(Fixtures.parityWeights())
        return (try ResNet50(weights: file, kernel: GEMMKernel.availableFloat[0]), try ResNet50(weights: file, kernel: .avx512bf16))
    }

    func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        return dot / (na * nb).squareRoot()
    }

    @Test(arguments: [64, 224])
    func bf16FeaturesKeepTheirDirection(size: Int) throws {
        let (float, bf16) = try Self.networks.get()
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let keras = try NPY(Fixtures.parity.appendingPathComponent("features_\(size).npy")).floats
        let exact = float.features(rgb: inputs.bytes, count: 4, size: size)
        let rounded = bf16.features(rgb: inputs.bytes, count: 4, size: size)
        #expect(rounded != exact, "bf16 is not the float path under another name")
        var lowest = 1.0, widest: Float = 0
        for image in 0 ..< 4 {
            let range = image * 2048 ..< (image + 1) * 2048
            let similarity = cosine(rounded[range], exact[range])
            let relative = zip(rounded[range], exact[range]).map { abs($0 - $1) }.max()! / exact[range].map(abs).max()!
            lowest = min(lowest, similarity)
            widest = max(widest, relative)
            #expect(similarity >= 0.999, "image \(image) at \(size): cosine \(similarity)")
            #expect(cosine(rounded[range], keras[range]) >= 0.999, "image \(image) at \(size) against Keras")
        }
        print("bf16 gate at \(size): lowest cosine to fp32 \(lowest), largest |bf16 - fp32| / largest fp32 value \(widest)")
    }
}
