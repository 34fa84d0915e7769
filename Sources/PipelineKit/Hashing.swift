import Crypto
import Foundation

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, the form sha256sum and md5sum print.
    public var hexString: String {
        var text = ""
        for byte in self {
            text += String(byte >> 4, radix: 16) + String(byte & 15, radix: 16)
        }
        return text
    }
}

/// SHA-256 of a whole file, read in 4 MiB pieces so that memory does not grow with the file.
public func sha256(ofFile url: URL) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: url.path) else {
        throw StageError("\(url.path): cannot open for reading")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
        hasher.update(data: chunk)
    }
    return Array(hasher.finalize()).hexString
}

/// SHA-256 of bytes already in memory.
/// The 32 bytes of a SHA-256, for hashing into another hash.
public func sha256Bytes(of bytes: UnsafeRawBufferPointer) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

public func sha256(of bytes: UnsafeRawBufferPointer) -> String {
    Array(SHA256.hash(data: bytes)).hexString
}

/// Incremental SHA-256 for content hashes computed while writing.
public struct ContentHasher {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) } }

    public mutating func update(_ data: Data) { hasher.update(data: data) }

    public mutating func update(_ text: String) {
        update(Array(text.utf8))
        update([0])
    }

    public mutating func update<T: FixedWidthInteger>(integer value: T) {
        withUnsafeBytes(of: value.littleEndian) { hasher.update(bufferPointer: $0) }
    }

    public func finalize() -> String { Array(hasher.finalize()).hexString }
}
