import Foundation

/// An output file that appears only when complete: work is written to a temporary file in the same
/// folder (so the final rename is atomic on one file system) and renamed into place by `commit()`.
/// Until then an earlier output at the same path stays byte-identical; `discard()` (or never
/// committing) leaves no trace but the temporary file, which the next run's `discard` of its own does
/// not touch: temporary names are unique per process and attempt.
public struct AtomicOutput: Sendable {
    public let finalURL: URL
    public let temporaryURL: URL

    /// Checks that the output's folder exists and is writable before any work is done, so that a long
    /// stage does not fail at its very end.
    public init(_ url: URL) throws {
        finalURL = url.standardizedFileURL
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
    public static func write<T>(to url: URL, _ body: (URL) throws -> T) throws -> T {
        let output = try AtomicOutput(url)
        do {
            let result = try body(output.temporaryURL)
            try output.commit()
            return result
        } catch {
            output.discard()
            throw error
        }
    }
}

/// Removes a SQLite database file and the journal, WAL and shared-memory files beside it, if any.
public func removeDatabaseFiles(at url: URL) {
    for suffix in ["", "-journal", "-wal", "-shm"] { unlink(url.path + suffix) }
}
