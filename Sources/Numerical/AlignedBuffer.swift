/// `count` floats starting on a 64-byte boundary (a cache line, and a whole number of vector
/// registers). `UnsafeMutablePointer.allocate` gives malloc's 16: then a row of 16 floats that the
/// GEMM tiles load or store as one cache line straddles two, and a packed weight sliver's every
/// other 32-byte load splits across lines. Uninitialised, like `allocate(capacity:)`; release with
/// `deallocateAligned`.
public func allocateAligned(floats count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        .bindMemory(to: Float.self, capacity: max(count, 1))
}

/// Releases what `allocateAligned` gave.
public func deallocateAligned(_ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).deallocate()
}
