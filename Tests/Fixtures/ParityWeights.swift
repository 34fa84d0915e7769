import CHDF5
import Foundation
import PipelineKit

/// The weights behind the committed Keras parity fixture (`Tests/Fixtures/keras-parity/`), made again
/// here bit for bit as `scripts/make_parity_fixture.py` makes them in NumPy (its docstring defines the
/// generator), then written as a Keras 2 HDF5 weights file through libhdf5, so that the parity tests
/// read 94 MB of weights through the product's real reader without the file being committed.
public enum ParityWeights {
    /// One layer of `layout.json`: its name and its weights in Keras's order.
    public struct Layer: Decodable, Sendable {
        public struct Weight: Decodable, Sendable {
            public var name: String
            public var shape: [Int]
            public var tensor: Int
            /// The generated values are multiplied by 2^gain (the mobile fixtures' calibrated BatchNorm variances).
            public var gain: Int?
        }

        public var name: String
        public var weights: [Weight]
    }

    public struct Meta: Decodable, Sendable {
        public var seed: UInt64
        public var labels: [Int]
        public var blocks: [String]
        public var block_channels: [Int]
        public var weights_sha256: String
        public var tensors: Int
    }

    public static let folder = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-parity")

    public static func file(_ name: String) -> URL { folder.appendingPathComponent(name) }

    public static func layout() throws -> [Layer] { try layout(in: folder) }

    public static func layout(in folder: URL) throws -> [Layer] {
        try JSONDecoder().decode([Layer].self, from: Data(contentsOf: folder.appendingPathComponent("layout.json")))
    }

    public static func meta() throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: file("meta.json")))
    }

    /// SplitMix64's output function applied once to `key` (a counter-based generator: element i of
    /// tensor t needs no state from element i - 1).
    @inline(__always) static func mix(_ key: UInt64) -> UInt64 {
        var z = key &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Tensor `tensor` of kind `kind` (`kernel`, `bias`, `gamma`, ...) with `shape`, in C order.
    public static func values(seed: UInt64, tensor: Int, kind: String, shape: [Int]) -> [Float] {
        let count = shape.reduce(1, *)
        let base = (seed << 48) ^ (UInt64(tensor) << 32)
        var result = [Float](repeating: 0, count: count)
        // Every value is k / 2^m with at most 18 significant bits: exact in Double and in Float.
        let scale: Double
        var offset: Double = 0
        var centred = true
        switch kind {
        case "kernel":
            let fan = shape[0] * shape[1] * (shape[2] + shape[3])
            let exponent = (Int.bitWidth - fan.leadingZeroBitCount) / 2
            scale = 1.0 / 65536 * Double(sign: .plus, exponent: 1 - exponent, significand: 1)
        case "depthwise_kernel":
            let fan = shape[0] * shape[1] * 2
            let exponent = (Int.bitWidth - fan.leadingZeroBitCount) / 2
            scale = 1.0 / 65536 * Double(sign: .plus, exponent: 1 - exponent, significand: 1)
        case "bias": scale = 1.0 / 65536 / 16
        case "beta", "moving_mean", "mean": scale = 1.0 / 65536 / 8
        case "gamma": scale = 1.0 / 65536; offset = 0.5; centred = false
        case "moving_variance", "variance": scale = 1.5 / 65536; offset = 0.5; centred = false
        default: preconditionFailure("layout.json names an unknown weight kind \(kind)")
        }
        result.withUnsafeMutableBufferPointer { out in
            for index in 0 ..< count {
                let u = Double(mix(base ^ UInt64(index)) >> 48)
                out[index] = Float(offset + (centred ? 2 * u - 65535 : u) * scale)
            }
        }
        return result
    }

    /// The values of `weight` as layout.json describes it, its gain applied (exactly: a power of two).
    public static func values(seed: UInt64, weight: Layer.Weight) -> [Float] {
        let values = Self.values(seed: seed, tensor: weight.tensor, kind: weight.name, shape: weight.shape)
        guard let gain = weight.gain, gain != 0 else { return values }
        let factor = Float(sign: .plus, exponent: gain, significand: 1)
        return values.map { $0 * factor }
    }

    /// SHA-256 of every generated tensor's float32 little-endian bytes, in order: meta.json's
    /// `weights_sha256` when Swift and NumPy agree bit for bit.
    public static func digest(seed: UInt64, layout: [Layer]) -> String {
        var hasher = ContentHasher()
        for layer in layout {
            for weight in layer.weights {
                Self.values(seed: seed, weight: weight).withUnsafeBytes { hasher.update($0) }
            }
        }
        return hasher.finalize()
    }

    /// The full weights file, written once per test process into a temporary folder that is removed
    /// when the process exits.
    public static let kerasFile: Result<URL, any Error> = Result {
        let seed = try Self.meta().seed
        let folder = try Fixtures.temporaryFolder()
        ParityCleanup.register(folder)
        let url = folder.appendingPathComponent("parity-weights.h5")
        try writeKeras2(url, seed: seed, layout: try layout())
        return url
    }

    /// The weights behind another committed fixture made by the same generator (the mobile
    /// backbones': `scripts/make_mobile_parity_fixture.py`), written once per process per folder.
    public static func kerasFile(for fixture: URL, seed: UInt64) throws -> URL {
        written.lock.lock()
        defer { written.lock.unlock() }
        if let url = written.files[fixture.path] { return url }
        let folder = try Fixtures.temporaryFolder()
        ParityCleanup.register(folder)
        let url = folder.appendingPathComponent("parity-weights.h5")
        try writeKeras2(url, seed: seed, layout: try layout(in: fixture))
        written.files[fixture.path] = url
        return url
    }

    private final class Written: @unchecked Sendable {
        let lock = NSLock()
        var files: [String: URL] = [:]
    }
    private static let written = Written()

    /// How a dataset is stored in the file (HDF5 converts on reading); weights are float32 unless
    /// `writeKeras2`'s `storage` says otherwise, as a damaged or foreign file might.
    public enum Storage: Sendable { case float32, float64, int32 }

    /// Writes `layout` with generated values in the Keras 2 layout (the official file's): root
    /// attribute `layer_names` and per-layer `weight_names` as fixed-length byte strings, names ending
    /// in `:0`, datasets at `/<layer>/<layer>/<weight>:0`, float32 little-endian (or as `storage`
    /// says for a `layer/weight`).
    public static func writeKeras2(_ url: URL, seed: UInt64, layout: [Layer], storage: [String: Storage] = [:]) throws {
        H5Eset_auto2(st_h5e_default(), nil, nil)
        let file = H5Fcreate(url.path, st_h5f_acc_trunc(), st_h5p_default(), st_h5p_default())
        guard file >= 0 else { throw FixtureError("\(url.path): HDF5 cannot create the file") }
        defer { H5Fclose(file) }
        try writeStrings(layout.map(\.name), attribute: "layer_names", on: file, in: url)
        for layer in layout {
            let group = H5Gcreate2(file, layer.name, st_h5p_default(), st_h5p_default(), st_h5p_default())
            guard group >= 0 else { throw FixtureError("\(url.path): cannot create group \(layer.name)") }
            defer { H5Gclose(group) }
            let names = layer.weights.map { "\(layer.name)/\($0.name):0" }
            try writeStrings(names, attribute: "weight_names", on: group, in: url)
            guard !layer.weights.isEmpty else { continue }
            let inner = H5Gcreate2(group, layer.name, st_h5p_default(), st_h5p_default(), st_h5p_default())
            guard inner >= 0 else { throw FixtureError("\(url.path): cannot create group \(layer.name)/\(layer.name)") }
            H5Gclose(inner)
            for (name, weight) in zip(names, layer.weights) {
                let values = Self.values(seed: seed, weight: weight)
                var dims = weight.shape.map { hsize_t($0) }
                let space = H5Screate_simple(Int32(dims.count), &dims, nil)
                defer { H5Sclose(space) }
                let fileType: hid_t = switch storage["\(layer.name)/\(weight.name)"] ?? .float32 {
                case .float32: st_h5t_ieee_f32le()
                case .float64: st_h5t_ieee_f64le()
                case .int32: st_h5t_std_i32le()
                }
                let dataset = H5Dcreate2(group, name, fileType, space, st_h5p_default(), st_h5p_default(), st_h5p_default())
                guard dataset >= 0 else { throw FixtureError("\(url.path): cannot create dataset \(layer.name)/\(name)") }
                defer { H5Dclose(dataset) }
                let status = values.withUnsafeBytes {
                    H5Dwrite(dataset, st_h5t_native_float(), st_h5s_all(), st_h5s_all(), st_h5p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw FixtureError("\(url.path): cannot write dataset \(layer.name)/\(name)") }
            }
        }
    }

    /// A one-dimensional attribute of fixed-length, null-padded byte strings, as h5py writes a NumPy
    /// `S` array.
    static func writeStrings(_ strings: [String], attribute: String, on object: hid_t, in url: URL) throws {
        let width = max(1, strings.map(\.utf8.count).max() ?? 1)
        let type = H5Tcopy(st_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, width)
        H5Tset_strpad(type, H5T_STR_NULLPAD)
        var dims = [hsize_t(strings.count)]
        let space = H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let id = H5Acreate2(object, attribute, type, space, st_h5p_default(), st_h5p_default())
        guard id >= 0 else { throw FixtureError("\(url.path): cannot create attribute \(attribute)") }
        defer { H5Aclose(id) }
        var bytes = [UInt8](repeating: 0, count: width * strings.count)
        for (index, string) in strings.enumerated() {
            for (offset, byte) in string.utf8.enumerated() { bytes[index * width + offset] = byte }
        }
        guard H5Awrite(id, type, bytes) >= 0 else { throw FixtureError("\(url.path): cannot write attribute \(attribute)") }
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Folders removed when the test process exits (Swift Testing has no suite-wide tear-down).
enum ParityCleanup {
    nonisolated(unsafe) static var folders: [String] = []
    static let lock = NSLock()

    static func register(_ folder: URL) {
        lock.lock()
        defer { lock.unlock() }
        if folders.isEmpty {
            atexit {
                ParityCleanup.lock.lock()
                defer { ParityCleanup.lock.unlock() }
                for folder in ParityCleanup.folders { try? FileManager.default.removeItem(atPath: folder) }
            }
        }
        folders.append(folder.path)
    }
}
