import Foundation

/// Paths and readers shared by the test targets.
public enum Fixtures {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let sample = repositoryRoot.appendingPathComponent("pipelines/data/sign-mnist-sample")

    /// The committed Keras parity fixture (made by `scripts/make_parity_fixture.py`).
    public static let parity = ParityWeights.folder

    /// The fixture's 94 MB Keras 2 weights file, generated and written on first use in this process.
    public static func parityWeights() throws -> URL { try ParityWeights.kerasFile.get() }

    public static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A NumPy `.npy` array (format 1.0/2.0, little-endian, C order): its shape and raw bytes.
public struct NPY {
    public var shape: [Int]
    public var dtype: String
    public var data: Data

    public init(_ url: URL) throws {
        let bytes = try Data(contentsOf: url)
        guard bytes.count > 10, bytes.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: url.path])
        }
        let major = bytes[6]
        let headerLength = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        let headerStart = major == 1 ? 10 : 12
        let header = String(decoding: bytes[headerStart ..< headerStart + headerLength], as: UTF8.self)
        guard let descr = header.range(of: "'descr': '")?.upperBound,
              let shapeStart = header.range(of: "'shape': (")?.upperBound,
              let shapeEnd = header[shapeStart...].firstIndex(of: ")") else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: url.path])
        }
        dtype = String(header[descr...].prefix { $0 != "'" })
        shape = header[shapeStart ..< shapeEnd].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        data = bytes.subdata(in: headerStart + headerLength ..< bytes.count)
    }

    public var floats: [Float] {
        precondition(dtype == "<f4", "not float32: \(dtype)")
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    public var bytes: [UInt8] {
        precondition(dtype == "|u1", "not uint8: \(dtype)")
        return [UInt8](data)
    }
}
