import Backbone
import Fixtures
import Foundation
import Testing

/// MobileNetV2 and EfficientNetB0 against Keras: the committed fixtures
/// (`scripts/make_mobile_parity_fixture.py`) hold Keras's pooled output of every node for three real
/// colour photos at 224, 64 and 45, from weights the tests generate again bit for bit.
@Suite struct MobileKerasParity {
    struct Meta: Decodable {
        var seed: UInt64
        var sizes: [Int]
        var nodes: [String]
        var node_channels: [Int]
        var weights_sha256: String
        var tensors: Int
    }

    static let mobile = ["mobilenetv2", "efficientnetb0"]

    static func folder(_ name: String) -> URL { Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-parity-\(name)") }

    static func meta(_ name: String) throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: folder(name).appendingPathComponent("meta.json")))
    }

    /// The network of `name` on the fixture's weights for `kernel`, built once per process.
    static func network(_ name: String, _ kernel: GEMMKernel) throws -> any FeatureNetwork {
        cache.lock.lock()
        defer { cache.lock.unlock() }
        let key = "\(name)/\(kernel)"
        if let built = cache.networks[key] { return built }
        let architecture = try Backbones.named(name)
        let file = try KerasWeightsFile(ParityWeights.kerasFile(for: folder(name), seed: try meta(name).seed))
        let built = try architecture.build(file, kernel, 224)
        cache.networks[key] = built
        return built
    }

    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var networks: [String: any FeatureNetwork] = [:]
    }
    private static let cache = Cache()

    /// Every node's pooled output of `count` images (`rgb`: `count x size x size x 3` bytes).
    static func pooled(_ network: any FeatureNetwork, rgb: [UInt8], count: Int, size: Int, taps: [Int]? = nil) -> [[Float]] {
        let architecture = network.architecture
        let taps = taps ?? Array(architecture.nodes.indices)
        let workspace = network.makeWorkspace(count: count, size: size)
        rgb.withUnsafeBufferPointer { architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
        let channels = taps.map { architecture.nodes[$0].channels }
        let parts = channels.map { UnsafeMutablePointer<Float>.allocate(capacity: count * $0) }
        defer { parts.forEach { $0.deallocate() } }
        network.forward(workspace, count: count, taps: taps, into: parts, keep: nil)
        return zip(parts, channels).map { Array(UnsafeBufferPointer(start: $0, count: count * $1)) }
    }

    /// Swift makes the fixture's weights bit for bit, and the fixture names the nodes we cut at.
    @Test(arguments: mobile)
    func fixtureMatchesThePlan(name: String) throws {
        let meta = try Self.meta(name), layout = try ParityWeights.layout(in: Self.folder(name))
        #expect(layout.reduce(0) { $0 + $1.weights.count } == meta.tensors)
        #expect(ParityWeights.digest(seed: meta.seed, layout: layout) == meta.weights_sha256)
        let architecture = try Backbones.named(name)
        #expect(meta.nodes == architecture.nodeNames)
        #expect(meta.node_channels == architecture.nodes.map(\.channels))
    }

    /// Every node, pooled, within 1e-4 of its own largest reference value, on every float kernel.
    @Test(arguments: mobile, [224, 64, 45])
    func everyNodeMatchesKeras(name: String, size: Int) throws {
        let meta = try Self.meta(name)
        let inputs = try NPY(Self.folder(name).appendingPathComponent("inputs_\(size).npy"))
        let expected = try NPY(Self.folder(name).appendingPathComponent("nodes_\(size).npy")).floats
        #expect(inputs.shape == [3, size, size, 3])
        let width = meta.node_channels.reduce(0, +)
        for kernel in GEMMKernel.availableFloat {
            let ours = Self.pooled(try Self.network(name, kernel), rgb: inputs.bytes, count: 3, size: size)
            var offset = 0, worstRatio: Float = 0
            for (node, channels) in meta.node_channels.enumerated() {
                var largest: Float = 0, worst: Float = 0
                for image in 0 ..< 3 {
                    for c in 0 ..< channels {
                        let reference = expected[image * width + offset + c]
                        largest = max(largest, abs(reference))
                        worst = max(worst, abs(ours[node][image * channels + c] - reference))
                    }
                }
                worstRatio = max(worstRatio, worst / largest)
                #expect(largest > 0 && worst <= 1e-4 * largest, "\(name) \(meta.nodes[node]) at \(size), \(kernel): max |ours - keras| = \(worst), largest \(largest)")
                offset += channels
            }
            print("\(name) every node at \(size) (\(kernel)): worst max |ours - keras| / largest = \(worstRatio)")
        }
    }

    /// An image's features are its own: alone or third in a batch, cut at one node or at all, the
    /// same bits; and our two x86 kernels give the same bits as each other.
    @Test(arguments: mobile)
    func batchAndKernelIndependent(name: String) throws {
        let inputs = try NPY(Self.folder(name).appendingPathComponent("inputs_64.npy")).bytes
        let kernels = GEMMKernel.availableFloat.filter { $0 != .blas }
        guard let first = kernels.first else { return }
        let network = try Self.network(name, first)
        let nodes = network.architecture.nodes.count
        let batch = Self.pooled(network, rgb: inputs, count: 3, size: 64)
        let third = Self.pooled(network, rgb: Array(inputs[(2 * 64 * 64 * 3)...]), count: 1, size: 64)
        for node in 0 ..< nodes {
            let channels = network.architecture.nodes[node].channels
            #expect(Array(batch[node][(2 * channels)...]) == third[node], "\(name) node \(node): alone differs from in a batch")
        }
        let cut = Self.pooled(network, rgb: inputs, count: 3, size: 64, taps: [5])
        #expect(cut[0] == batch[5])
        for other in kernels.dropFirst() {
            #expect(Self.pooled(try Self.network(name, other), rgb: inputs, count: 3, size: 64) == batch, "\(name): \(other) differs from \(first)")
        }
    }
}
