import Backbone
import Fixtures
import Foundation
import Testing

@Suite struct KerasParity {
    static let weights = Fixtures.parity.appendingPathComponent("weights.h5")
    static let networks: [GEMMKernel: ResNet50] = Dictionary(uniqueKeysWithValues: GEMMKernel.available.map {
        ($0, try! ResNet50(weights: KerasWeightsFile(weights), kernel: $0))
    })

    /// Both GEMM paths (our AVX-512 kernel where the CPU has it, and OpenBLAS) at every fixture size.
    @Test(arguments: [32, 64, 224], GEMMKernel.available)
    func featuresMatchKeras(size: Int, kernel: GEMMKernel) throws {
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_\(size).npy")).floats
        #expect(inputs.shape == [4, size, size, 3])
        let features = Self.networks[kernel]!.features(rgb: inputs.bytes, count: 4, size: size)
        let largest = expected.map(abs).max()!
        let worst = zip(features, expected).map { abs($0 - $1) }.max()!
        print("parity at \(size) (\(kernel)): max |ours - keras| = \(worst) (\(worst / largest) of the largest value \(largest))")
        #expect(worst <= 1e-4 * largest, "size \(size), \(kernel): max |ours - keras| = \(worst), largest reference value \(largest)")
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
