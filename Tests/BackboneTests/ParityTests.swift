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
