import Foundation

/// What tells a file's versions apart without reading it: size, modification time (ns), inode and
/// change time.
/// A stored hash stays valid while the stamp is the same (the manifest's artifacts, the weights' MD5).
public struct FileStamp: Equatable, Sendable, CustomStringConvertible {
    public var size: Int64, modified: Int64, inode: UInt64
    /// The inode's change time (ns): a write moves it, and unlike the modification time no user call
    /// can set it back, so a file edited and given its old mtime (`touch -d`) still shows as changed.
    public var changed: Int64

    public init(size: Int64, modified: Int64, inode: UInt64, changed: Int64) {
        self.size = size
        self.modified = modified
        self.inode = inode
        self.changed = changed
    }

    /// The stamp of the file at `url`; nil when it does not exist.
    public init?(_ url: URL) {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        inode = UInt64(info.st_ino)
        changed = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
    }

    public var description: String { "\(size):\(modified):\(inode):\(changed)" }
}
