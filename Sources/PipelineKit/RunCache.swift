import Foundation
import Numerical

/// `artifacts/NAME/cache/`: every output the pipeline's stages have made, by the fingerprint they
/// were made under (stage, version, parameters, environment, input files, upstream content), so that
/// a stage whose fingerprint was seen before is restored instead of run.
///
/// An entry is a folder `cache/FINGERPRINT/` holding the output and side outputs under their own
/// names, hard links to the files the stage wrote (a copy where the file system refuses links), and
/// `record.json`, the manifest record they were made with. Entries appear whole (built in a
/// temporary folder and renamed) and are checked against their recorded SHA-256 before use: a hard
/// link shares its bytes with the artifacts folder's file, so an artifact edited in place damages
/// its entry too, which is then dropped, not restored.
public struct RunCache: Sendable {
    public let folder: URL

    public init(folder: URL) { self.folder = folder }

    /// The cache of the pipeline whose artifacts folder is `artifacts`.
    public init(artifacts: URL) { folder = artifacts.appendingPathComponent("cache") }

    public static let recordName = "record.json"

    public func entry(_ fingerprint: String) -> URL { folder.appendingPathComponent(fingerprint) }

    /// Fingerprints with an entry on disk.
    public func fingerprints() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { name in
            name.count == 64 && name.allSatisfy(\.isHexDigit)
        }.sorted()
    }

    /// Held while a fingerprint is looked up, computed and stored: two runs that need the same output
    /// at once compute it once; the second waits and restores it.
    public func lock(_ fingerprint: String, stage: String, log: @escaping (String) -> Void) throws -> FileLock {
        let locks = folder.appendingPathComponent(".locks")
        try FileManager.default.createDirectory(at: locks, withIntermediateDirectories: true)
        return try FileLock(locks.appendingPathComponent("\(fingerprint).lock"), what: "the cache entry \(fingerprint.prefix(12))", wait: true) {
            log("\(stage): waiting for another run that is making the same output (fingerprint \(fingerprint.prefix(12)))")
        }
    }

    /// Shared by every run, taken alone by `gc`: the cache is never pruned under a run that uses it.
    public func useLock(exclusive: Bool = false) throws -> FileLock {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try FileLock(folder.appendingPathComponent(".use.lock"), what: "the run cache \(folder.path)", wait: !exclusive, shared: !exclusive)
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// The recorded entry for `fingerprint`, its files checked against their hashes (through the
    /// manifest's state table, so an unchanged file is not rehashed). nil with no entry; a damaged
    /// entry is removed and reported through `problem`.
    public func load(_ fingerprint: String, files names: [String], manifest: inout Manifest, problem: (String) -> Void) -> Manifest.StageRecord? {
        let entry = self.entry(fingerprint)
        let recordURL = entry.appendingPathComponent(Self.recordName)
        guard FileManager.default.fileExists(atPath: recordURL.path) else { return nil }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let record: Manifest.StageRecord
            do {
                record = try decoder.decode(Manifest.StageRecord.self, from: Data(contentsOf: recordURL))
            } catch {
                throw StageError("\(recordURL.path) is not a record this tool writes (\(error.userMessage))")
            }
            // An entry copied or moved under another fingerprint would restore another computation's
            // output under this one's name.
            guard record.fingerprint == fingerprint else {
                throw StageError("\(recordURL.path) records fingerprint \(record.fingerprint.prefix(12)), but is filed under \(fingerprint.prefix(12))")
            }
            for name in names {
                let expected = name == names.first ? record.output.sha256 : record.sideOutputs?[name]?.sha256
                let url = entry.appendingPathComponent(name)
                guard let expected else { throw StageError("\(name) is not recorded in \(recordURL.path)") }
                guard let hash = try manifest.sha256(of: url) else { throw StageError("\(url.path) is missing") }
                guard hash == expected else {
                    throw StageError("\(url.path) has sha256 \(hash.prefix(12)), recorded \(expected.prefix(12)) (edited in place?)")
                }
            }
            return record
        } catch {
            problem(error.userMessage)
            try? FileManager.default.removeItem(at: entry)
            return nil
        }
    }

    /// Keeps the files a stage just wrote in `artifacts` (`names`: output first, then side outputs)
    /// under `fingerprint`, replacing an older entry (a forced rerun).
    public func store(_ fingerprint: String, record: Manifest.StageRecord, files names: [String], from artifacts: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let building = folder.appendingPathComponent(".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        do {
            try FileManager.default.createDirectory(at: building, withIntermediateDirectories: false)
            for name in names {
                try Self.linkOrCopy(artifacts.appendingPathComponent(name), to: building.appendingPathComponent(name))
            }
            try Self.encoder().encode(record).write(to: building.appendingPathComponent(Self.recordName))
            let entry = self.entry(fingerprint)
            try? FileManager.default.removeItem(at: entry)
            guard rename(building.path, entry.path) == 0 else {
                throw StageError("\(entry.path): cannot move the new cache entry into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: building)
            throw error
        }
    }

    /// Puts an entry's files into `artifacts` (each replaced in one step) and returns its record with
    /// the paths there.
    public func restore(_ fingerprint: String, record: Manifest.StageRecord, files names: [String], into artifacts: URL) throws -> Manifest.StageRecord {
        let entry = self.entry(fingerprint)
        for name in names {
            let target = artifacts.appendingPathComponent(name)
            let temporary = artifacts.appendingPathComponent(".\(name).restore-\(getpid())-\(UInt32.random(in: 0 ... .max))")
            do {
                try Self.linkOrCopy(entry.appendingPathComponent(name), to: temporary)
                guard rename(temporary.path, target.path) == 0 else {
                    throw StageError("\(target.path): cannot put the cached file in place: \(String(cString: strerror(errno)))")
                }
                // rename(2) onto another link to the same file succeeds and does nothing: the
                // temporary link is then still there.
                unlink(temporary.path)
            } catch {
                unlink(temporary.path)
                throw error
            }
        }
        var restored = record
        let from = URL(fileURLWithPath: record.output.path).deletingLastPathComponent().path + "/"
        restored.output.path = artifacts.appendingPathComponent(names[0]).path
        if var sides = restored.sideOutputs {
            for name in sides.keys { sides[name]?.path = artifacts.appendingPathComponent(name).path }
            restored.sideOutputs = sides
        }
        // Notes that name a file the stage wrote (train's report) name it where it is now.
        restored.notes = restored.notes.mapValues { value in
            value.hasPrefix(from) ? artifacts.path + "/" + value.dropFirst(from.count) : value
        }
        return restored
    }

    /// A hard link (no copy, no space) where the file system allows one, else a copy.
    static func linkOrCopy(_ source: URL, to destination: URL) throws {
        if link(source.path, destination.path) == 0 { return }
        let reason = errno
        guard reason == EXDEV || reason == EPERM || reason == EMLINK || reason == ENOTSUP else {
            throw StageError("\(destination.path): cannot link \(source.path) there: \(String(cString: strerror(reason)))")
        }
        do {
            try FileManager.default.copyItem(at: source, to: destination)
        } catch {
            throw StageError("\(destination.path): cannot copy \(source.path) there: \(error.userMessage)")
        }
    }
}
