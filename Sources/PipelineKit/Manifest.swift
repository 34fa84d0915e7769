import Foundation
import Numerical

/// `artifacts/NAME/manifest.json`: what each stage last did, and a state table of file hashes.
public struct Manifest: Codable, Sendable {
    public struct FileState: Codable, Sendable, Equatable {
        public var size: Int64
        public var modified: Int64
        public var inode: UInt64
        /// The change time; nil in manifests written before it was kept (such a file is hashed again once).
        public var changed: Int64?
        public var sha256: String
    }

    public struct Input: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
    }

    public struct Output: Codable, Sendable, Equatable {
        public var path: String
        /// SHA-256 of the file's bytes.
        public var sha256: String
        /// The artifact's own content hash (its meta table), which downstream stages depend on.
        public var content: String
        public var rows: Int
        public var size: Int64
    }

    /// A file a stage writes for people beside its output (report.html): its path and hash.
    public struct SideOutput: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
    }

    public struct StageRecord: Codable, Sendable {
        public var fingerprint: String
        public var params: [String: String]
        /// What besides the file decided the result (the weights extract actually used).
        public var environment: [String: String]
        public var inputs: [String: Input]
        /// The upstream stage's output content this stage was computed from.
        public var upstreamContent: String?
        public var output: Output
        /// nil in manifests written before side outputs were tracked.
        public var sideOutputs: [String: SideOutput]?
        /// The stage's own version; nil in manifests written before stages had one.
        public var version: Int?
        public var toolVersion: String
        public var started: Date
        public var ended: Date
        public var seconds: Double
        public var notes: [String: String]
    }

    public var pipeline: String
    public var stages: [String: StageRecord] = [:]
    /// Hashes of files by absolute path, valid while size, modification time and inode match: a
    /// check never rehashes a file that has not changed.
    public var files: [String: FileState] = [:]

    public init(pipeline: String) { self.pipeline = pipeline }

    public static func load(_ url: URL, pipeline: String) throws -> Manifest {
        guard FileManager.default.fileExists(atPath: url.path) else { return Manifest(pipeline: pipeline) }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let stored = try decoder.decode(Manifest.self, from: Data(contentsOf: url))
            let folder = url.deletingLastPathComponent().standardizedFileURL
            return stored.mappingPaths { $0.hasPrefix("/") ? $0 : folder.appendingPathComponent($0).standardizedFileURL.path }
        } catch {
            throw StageError("\(url.path): the manifest cannot be read (\(error.userMessage)); delete it to rebuild every stage")
        }
    }

    /// Replaces the manifest atomically. Paths inside its folder are written relative to it, so that
    /// an artifacts folder can be moved or copied whole (its files are then hashed once again, their
    /// inodes being new, and found up to date).
    public func save(_ url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let folder = url.deletingLastPathComponent().standardizedFileURL.path + "/"
        let data = try encoder.encode(mappingPaths { $0.hasPrefix(folder) ? String($0.dropFirst(folder.count)) : $0 })
        try AtomicOutput.write(to: url) { try data.write(to: $0) }
    }

    /// The manifest with every path (outputs, side outputs, inputs, the state table's keys) mapped.
    func mappingPaths(_ map: (String) -> String) -> Manifest {
        var copy = self
        copy.files = Dictionary(files.map { (map($0.key), $0.value) }, uniquingKeysWith: { first, _ in first })
        copy.stages = stages.mapValues { record in
            var record = record
            record.output.path = map(record.output.path)
            record.sideOutputs = record.sideOutputs?.mapValues { side in
                var side = side
                side.path = map(side.path)
                return side
            }
            record.inputs = record.inputs.mapValues { input in
                var input = input
                input.path = map(input.path)
                return input
            }
            return record
        }
        return copy
    }

    /// The file's SHA-256, from the state table when the file's size, modification time, inode and
    /// change time are as recorded; otherwise hashed and recorded. nil when the file does not exist.
    /// A folder's is the SHA-256 of its listing, as DVC hashes a folder: every regular file under it
    /// (symbolic links followed, hidden files included), by path relative to the folder with `/`, in
    /// byte order, each with its own SHA-256 (from the state table like any file's).
    public mutating func sha256(of url: URL) throws -> String? {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
            return try folderSHA256(url)
        }
        guard let stamp = FileStamp(url) else { return nil }
        if let known = files[url.path], let changed = known.changed,
           FileStamp(size: known.size, modified: known.modified, inode: known.inode, changed: changed) == stamp {
            return known.sha256
        }
        let hash = try PipelineKit.sha256(ofFile: url)
        files[url.path] = FileState(size: stamp.size, modified: stamp.modified, inode: stamp.inode, changed: stamp.changed, sha256: hash)
        return hash
    }

    mutating func folderSHA256(_ folder: URL) throws -> String {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey], options: []) else {
            throw StageError("\(folder.path): the folder cannot be listed")
        }
        let base = folder.resolvingSymlinksInPath().standardizedFileURL.path
        var entries: [(path: String, url: URL)] = []
        var seen = Set<String>()
        for case let url as URL in walker {
            let resolved = url.resolvingSymlinksInPath()
            guard (try? resolved.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            // A symbolic link loop or a second link to a file is listed once, by its first path.
            guard seen.insert(url.standardizedFileURL.path).inserted else { continue }
            var relative = url.standardizedFileURL.path
            if relative.hasPrefix(base + "/") { relative.removeFirst(base.count + 1) }
            entries.append((relative, url))
        }
        var hasher = ContentHasher()
        for entry in entries.sorted(by: { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }) {
            guard let hash = try sha256(of: entry.url) else { throw StageError("\(entry.url.path): disappeared while the folder was hashed") }
            hasher.update(entry.path)
            hasher.update(hash)
        }
        return hasher.finalize()
    }
}
