import Artifacts
import Foundation
import PipelineKit

/// `pipeline gc`: removes the cached outputs no recorded experiment uses (with `keep`, all but the
/// `keep` newest experiments'), and the variant folders of sweeps that refer to nothing kept; the
/// artifacts folder's current outputs are always kept. Runs alone: a run in progress makes it refuse.
public struct GarbageCollector {
    public var artifacts: URL
    public var cache: RunCache
    public var keep: Int?

    public init(artifacts: URL, keep: Int?) {
        self.artifacts = artifacts
        cache = RunCache(artifacts: artifacts)
        self.keep = keep
    }

    public struct Result {
        public var removedEntries: Int
        public var keptEntries: Int
        public var removedFolders: Int
        public var bytesFreed: Int64
    }

    /// Counts the bytes that removing files frees: a file's bytes are freed when its last link goes
    /// (the cache and the artifacts folders share files by hard links).
    struct Freed {
        var links: [UInt64: (size: Int64, links: Int, removed: Int)] = [:]

        mutating func remove(_ folder: URL) {
            if let enumerator = FileManager.default.enumerator(atPath: folder.path) {
                for case let name as String in enumerator {
                    var info = stat()
                    guard lstat(folder.appendingPathComponent(name).path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                    let key = UInt64(info.st_ino)
                    var entry = links[key] ?? (Int64(info.st_size), Int(info.st_nlink), 0)
                    entry.removed += 1
                    links[key] = entry
                }
            }
            try? FileManager.default.removeItem(at: folder)
        }

        var bytes: Int64 { links.values.filter { $0.removed >= $0.links }.reduce(0) { $0 + $1.size } }
    }

    public func collect(manifest: Manifest) throws -> Result {
        let lock = try cache.useLock(exclusive: true)
        defer { lock.release() }
        let experiments = try ExperimentLog.all(of: artifacts)
        let kept = keep.map { Array(experiments.suffix($0)) } ?? experiments
        var wanted = Set(kept.flatMap { $0.stages.map(\.fingerprint) })
        wanted.formUnion(manifest.stages.values.map(\.fingerprint))
        var freed = Freed()
        var removed = 0, remaining = 0
        for fingerprint in cache.fingerprints() {
            if wanted.contains(fingerprint) {
                remaining += 1
            } else {
                freed.remove(cache.entry(fingerprint))
                removed += 1
            }
        }
        // Temporary folders of entries being built by runs that were killed.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cache.folder.path)) ?? [] where name.hasPrefix(".tmp-") {
            freed.remove(cache.folder.appendingPathComponent(name))
        }
        // A sweep's variant folder is kept while every output its manifest names is kept.
        var folders = 0
        let variants = Sweep.variantsFolder(of: artifacts)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: variants.path)) ?? [] {
            let folder = variants.appendingPathComponent(name)
            let recorded = (try? Manifest.load(folder.appendingPathComponent("manifest.json"), pipeline: ""))?.stages.values.map(\.fingerprint) ?? []
            if !recorded.isEmpty && recorded.allSatisfy(wanted.contains) {
                // The logs of sweeps that were killed (a running sweep holds the use lock gc holds now).
                for log in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where log.hasPrefix("run-") && log.hasSuffix(".log") {
                    freed.remove(folder.appendingPathComponent(log))
                }
                continue
            }
            freed.remove(folder)
            folders += 1
        }
        return Result(removedEntries: removed, keptEntries: remaining, removedFolders: folders, bytesFreed: freed.bytes)
    }
}
