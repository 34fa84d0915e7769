import Foundation

/// What tells a file's versions apart without reading it: size, modification time (ns) and inode.
/// A stored hash stays valid while the stamp is the same (the manifest's artifacts, the weights' MD5).
public struct FileStamp: Equatable, Sendable, CustomStringConvertible {
    public var size: Int64, modified: Int64, inode: UInt64

    public init(size: Int64, modified: Int64, inode: UInt64) {
        self.size = size
        self.modified = modified
        self.inode = inode
    }

    /// The stamp of the file at `url`; nil when it does not exist.
    public init?(_ url: URL) {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        inode = UInt64(info.st_ino)
    }

    public var description: String { "\(size):\(modified):\(inode)" }
}
