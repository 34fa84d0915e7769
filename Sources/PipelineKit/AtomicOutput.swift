import Foundation
import Numerical

/// An output file that appears only when complete: work is written to a temporary file in the same
/// folder (so the final rename is atomic on one file system) and renamed into place by `commit()`.
/// Until then an earlier output at the same path stays byte-identical; `discard()` (or never
/// committing) leaves no trace but the temporary file, which the next run's `discard` of its own does
/// not touch: temporary names are unique per process and attempt.
public struct AtomicOutput: Sendable {
    public let finalURL: URL
    public let temporaryURL: URL

    /// Checks, before any work is done (so that a long stage does not fail at its very end), that the
    /// output's folder exists and is writable, and that the output may be replaced: a path that does
    /// not exist yet or a regular file, never a device, FIFO or folder (as root, renaming over
    /// /dev/null replaces the system's), and never one of the stage's `inputs` (compared by device
    /// and inode, so that another spelling of the same path is caught too).
    public init(_ url: URL, inputs: [URL] = []) throws {
        // One canonical spelling (absolute, no `.` or `..`, the folder's symbolic links resolved), so
        // that the locks and partial files beside an output are the same however its path is written.
        let standardized = url.standardizedFileURL
        finalURL = standardized.deletingLastPathComponent().resolvingSymlinksInPath().appendingPathComponent(standardized.lastPathComponent)
        var existing = stat()
        if lstat(finalURL.path, &existing) == 0 {
            let type = existing.st_mode & S_IFMT
            guard type == S_IFREG || type == S_IFLNK else {
                let what = type == S_IFDIR ? "a folder" : type == S_IFCHR || type == S_IFBLK ? "a device" : type == S_IFIFO ? "a FIFO" : "not a regular file"
                throw StageError("\(url.path): is \(what), not a file this stage may replace; choose another output path")
            }
            var target = stat()
            if stat(finalURL.path, &target) == 0 {
                for input in inputs {
                    var other = stat()
                    if stat(input.path, &other) == 0, other.st_dev == target.st_dev, other.st_ino == target.st_ino {
                        throw StageError("\(url.path): is the stage's input \(input.path); writing there would destroy it; choose another output path")
                    }
                }
            }
        }
        let folder = finalURL.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StageError("\(url.path): the folder \(folder.path) does not exist; create it first")
        }
        guard access(folder.path, W_OK) == 0 else {
            throw StageError("\(url.path): the folder \(folder.path) is not writable")
        }
        let unique = "\(getpid())-\(UInt32.random(in: 0 ... .max))"
        temporaryURL = folder.appendingPathComponent(".\(finalURL.lastPathComponent).tmp-\(unique)")
        Self.removeStaleTemporaries(of: finalURL)
    }

    /// Temporary files of this output left by processes that no longer exist (killed mid-write):
    /// removed, so that they do not pile up (one was 64 MB for 100k rows). A live process's are kept.
    static func removeStaleTemporaries(of url: URL) {
        let folder = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH { unlink(folder.appendingPathComponent(name).path) }
        }
    }

    /// Moves the finished temporary file into place, replacing any earlier output in one step.
    public func commit() throws {
        guard rename(temporaryURL.path, finalURL.path) == 0 else {
            let reason = String(cString: strerror(errno))
            discard()
            throw StageError("\(finalURL.path): could not move the finished output into place: \(reason)")
        }
    }

    /// Removes the temporary file and its SQLite side files, if any.
    public func discard() { removeDatabaseFiles(at: temporaryURL) }

    /// Runs `body` against the temporary path and commits on success; on any error, discards.
    public func write<T>(_ body: (URL) throws -> T) throws -> T {
        do {
            let result = try body(temporaryURL)
            try commit()
            return result
        } catch let error as UserFacingError {
            discard()
            throw error
        } catch {
            discard()
            // The system's own words ("There isn't enough space.") say nothing of which file.
            throw StageError("\(finalURL.path): cannot write it: \(error.userMessage)")
        }
    }

    /// The same for an output not checked beforehand.
    public static func write<T>(to url: URL, inputs: [URL] = [], _ body: (URL) throws -> T) throws -> T {
        try AtomicOutput(url, inputs: inputs).write(body)
    }
}

/// Removes a SQLite database file and the journal, WAL and shared-memory files beside it, if any.
public func removeDatabaseFiles(at url: URL) {
    for suffix in ["", "-journal", "-wal", "-shm"] { unlink(url.path + suffix) }
}
