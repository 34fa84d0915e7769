import Backbone
import Fixtures
import Foundation
import Testing

@Suite struct KerasParity {
    static let network: ResNet50 = try! ResNet50(weights: KerasWeightsFile(Fixtures.parity.appendingPathComponent("weights.h5")))

    @Test(arguments: [32, 64, 224])
    func featuresMatchKeras(size: Int) throws {
        let inputs = try NPY(Fixtures.parity.appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_\(size).npy")).floats
        #expect(inputs.shape == [4, size, size, 3])
        let features = Self.network.features(rgb: inputs.bytes, count: 4, size: size)
        let largest = expected.map(abs).max()!
        let worst = zip(features, expected).map { abs($0 - $1) }.max()!
        print("parity at \(size): max |ours - keras| = \(worst) (\(worst / largest) of the largest value \(largest))")
        #expect(worst <= 1e-4 * largest, "size \(size): max |ours - keras| = \(worst), largest reference value \(largest)")
    }
}
