import Backbone
import Crypto
import Foundation
import Numerical
import PipelineKit

// URLSession lives in FoundationNetworking on Linux, in Foundation on Apple's systems.
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Which weights the backbone uses, as a user writes it: `imagenet`, `random:SEED` or a file path.
public enum WeightsSpec: Equatable, Sendable, CustomStringConvertible {
    case imagenet
    case random(seed: UInt64)
    case file(URL)

    public init(_ text: String) throws {
        if text == "imagenet" {
            self = .imagenet
        } else if text.hasPrefix("random:") {
            guard let seed = UInt64(text.dropFirst("random:".count)) else {
                throw StageError("--weights \(text): expected random:SEED with SEED a whole number, e.g. random:0")
            }
            self = .random(seed: seed)
        } else {
            self = .file(URL(fileURLWithPath: text))
        }
    }

    public var description: String {
        switch self {
        case .imagenet: return "imagenet"
        case let .random(seed): return "random:\(seed)"
        case let .file(url): return url.path
        }
    }
}

/// Weights ready to build a network from, with what the provenance records of them.
public struct ResolvedWeights {
    /// `imagenet`, `random:SEED` or the file's path.
    public var source: String
    /// MD5 of the weights file; for random weights, `random:SEED`. A file's is computed on another
    /// thread while the network is built from it (a tenth of a second for the 94 MB file).
    public var md5: String { get throws { try digest.value } }
    let digest: Pending<String>
    public var isRandom: Bool
    public var provider: BackboneWeights
}

/// A value computed on a thread of its own from creation, waited for where it is read.
final class Pending<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchGroup()
    /// Written once, before `done` is left; read only after waiting on it.
    private var result: Result<Value, Error>?

    init(_ value: Value) { result = .success(value) }

    init(computing work: @escaping @Sendable () throws -> Value) {
        done.enter()
        Thread.detachNewThread { [self] in
            result = Result { try work() }
            done.leave()
        }
    }

    var value: Value {
        get throws {
            done.wait()
            return try result!.get()
        }
    }
}

extension WeightsSpec {
    /// The weights of `architecture` this names, ready to build it from.
    public func resolve(for architecture: Architecture, showProgress: Bool = true) throws -> ResolvedWeights {
        switch self {
        case let .random(seed):
            return ResolvedWeights(source: description, digest: Pending(description), isRandom: true, provider: architecture.randomWeights(seed))
        case let .file(url):
            let provider = try KerasWeightsFile(url)
            return ResolvedWeights(source: url.path, digest: Pending { try cachedFileMD5(url) }, isRandom: false, provider: provider)
        case .imagenet:
            let published = ImageNetWeights(architecture)
            let url = try published.locate(showProgress: showProgress)
            // Where Keras publishes no MD5 (MobileNetV2), the file's own is what provenance records.
            let digest = published.md5.map { Pending($0) } ?? Pending { try cachedFileMD5(url) }
            return ResolvedWeights(source: "imagenet", digest: digest, isRandom: false, provider: try KerasWeightsFile(url))
        }
    }
}

/// MD5 of a weights file, remembered in `ImageNetWeights.cacheFolder`/md5.json by path, size,
/// modification time (ns) and inode, as the manifest does for artifacts: the 94 MB file took a sixth
/// of a second to hash at every extract and predict. A file changed in place gets a new mtime and is
/// hashed again. The record is an optimisation only: if it cannot be read or written, the file is hashed.
public func cachedFileMD5(_ url: URL, record: URL = ImageNetWeights.cacheFolder.appendingPathComponent("md5.json")) throws -> String {
    guard let key = FileStamp(url)?.description else { return try fileMD5(url) }
    let path = url.standardizedFileURL.path
    func entries() -> [String: [String: String]] {
        guard let data = try? Data(contentsOf: record) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: String]] ?? [:]
    }
    if let known = entries()[path], known["stat"] == key, let md5 = known["md5"] { return md5 }
    let md5 = try fileMD5(url)
    // Reread, add, write to a temporary file and rename: concurrent runs lose at most an entry.
    var updated = entries()
    updated[path] = ["stat": key, "md5": md5]
    if let data = try? JSONSerialization.data(withJSONObject: updated, options: [.sortedKeys]) {
        let temporary = record.deletingLastPathComponent().appendingPathComponent(".md5.json.\(getpid())")
        if (try? FileManager.default.createDirectory(at: record.deletingLastPathComponent(), withIntermediateDirectories: true)) != nil,
           (try? data.write(to: temporary)) != nil, rename(temporary.path, record.path) != 0 {
            unlink(temporary.path)
        }
    }
    return md5
}

public func fileMD5(_ url: URL) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: url.path) else { throw WeightsError("\(url.path): no such file, or not readable") }
    defer { try? handle.close() }
    var hasher = Insecure.MD5()
    while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
    return Array(hasher.finalize()).hexString
}

/// A backbone's official Keras ImageNet notop weights: found in Keras's cache or ours, else
/// downloaded once. Which file, its MD5 and where Keras publishes it come from the backbone's
/// `Architecture`.
public struct ImageNetWeights: Sendable {
    public let published: PublishedWeights

    public init(_ architecture: Architecture) { published = architecture.weights }
    public init(_ published: PublishedWeights) { self.published = published }

    public var fileName: String { published.fileName }
    /// Keras's MD5 of the file, or nil where Keras publishes none (MobileNetV2's).
    public var md5: String? { published.md5 }
    /// Where Keras publishes them; SIGNTRANSFER_WEIGHTS_URL overrides it (a mirror, or a test server).
    public var url: URL {
        if let override = ProcessInfo.processInfo.environment["SIGNTRANSFER_WEIGHTS_URL"], let url = URL(string: override) { return url }
        return URL(string: published.url)!
    }

    static var home: URL { URL(fileURLWithPath: ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()) }

    /// `$XDG_CACHE_HOME/signtransfer`, else `~/.cache/signtransfer`.
    public static var cacheFolder: URL {
        if let xdg = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("signtransfer")
        }
        return home.appendingPathComponent(".cache/signtransfer")
    }

    public static var kerasCache: URL { home.appendingPathComponent(".keras/models") }

    /// The first cached copy whose MD5 is right, or a fresh download into our cache.
    public func locate(showProgress: Bool) throws -> URL {
        if let cached = cachedCopy { return cached }
        return try download(from: url, showProgress: showProgress)
    }

    /// Whether a good copy sits in Keras's cache or ours: one with the wrong MD5 must not keep a
    /// pipeline from its fallback.
    public var isCached: Bool { cachedCopy != nil }

    /// A copy in Keras's cache or ours whose MD5 is right (remembered by path, size, mtime and inode,
    /// so asking again costs a stat); a damaged copy does not count. Without a published MD5, a copy
    /// that opens as HDF5 counts (building the network then checks every layer and shape).
    public var cachedCopy: URL? {
        for folder in [Self.kerasCache, Self.cacheFolder] {
            let candidate = folder.appendingPathComponent(fileName)
            guard FileManager.default.fileExists(atPath: candidate.path) else { continue }
            if let md5 {
                if (try? cachedFileMD5(candidate)) == md5 { return candidate }
            } else if (try? KerasWeightsFile(candidate)) != nil {
                return candidate
            }
        }
        return nil
    }

    /// Downloads to a temporary file in the cache folder, checks the MD5, then renames into place: a
    /// cut-off or wrong download never becomes the cached file.
    public func download(from source: URL, into folder: URL = cacheFolder, expectedMD5: String? = nil, showProgress: Bool) throws -> URL {
        let expectedMD5 = expectedMD5 ?? md5
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let destination = folder.appendingPathComponent(fileName)
        let byHand = "Without a network, download \(url.absoluteString) by hand\(md5.map { " (MD5 \($0))" } ?? "") and put it at \(destination.path) or in \(Self.kerasCache.path)/."
        return try AtomicOutput.write(to: destination) { temporary -> URL in
            do {
                try Downloader(showProgress: showProgress).fetch(source, to: temporary)
            } catch {
                throw WeightsError("could not download the ImageNet weights from \(source.absoluteString): \(error.userMessage). \(byHand)")
            }
            if let expectedMD5 {
                let found = try fileMD5(temporary)
                guard found == expectedMD5 else {
                    throw WeightsError("the ImageNet weights downloaded from \(source.absoluteString) have MD5 \(found), expected \(expectedMD5); the download was discarded. \(byHand)")
                }
            } else {
                do { _ = try KerasWeightsFile(temporary) } catch {
                    throw WeightsError("the ImageNet weights downloaded from \(source.absoluteString) are not an HDF5 file (\(error.userMessage)); the download was discarded. \(byHand)")
                }
            }
            return destination
        }
    }
}

/// One HTTP(S) download to a file, with a progress bar, through URLSession.
final class Downloader: NSObject, URLSessionDownloadDelegate, @unchecked Sendable {
    let showProgress: Bool
    private let done = DispatchSemaphore(value: 0)
    private var destination: URL?
    private var failure: Error?
    private var progress: ProgressBar?

    init(showProgress: Bool) { self.showProgress = showProgress }

    func fetch(_ source: URL, to destination: URL) throws {
        self.destination = destination
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 30
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.downloadTask(with: source).resume()
        done.wait()
        if let failure { throw failure }
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didWriteData bytesWritten: Int64,
                    totalBytesWritten: Int64, totalBytesExpectedToWrite: Int64) {
        guard showProgress, totalBytesExpectedToWrite > 0 else { return }
        if progress == nil { progress = ProgressBar("download", total: Int(totalBytesExpectedToWrite >> 20), unit: "MB") }
        progress?.advance(by: Int(totalBytesWritten >> 20) - (progress?.done ?? 0))
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {
        if let http = downloadTask.response as? HTTPURLResponse, http.statusCode != 200 {
            failure = WeightsError("the server answered HTTP \(http.statusCode)")
            return
        }
        if let expected = downloadTask.response?.expectedContentLength, expected > 0,
           let size = try? FileManager.default.attributesOfItem(atPath: location.path)[.size] as? Int, size != Int(expected) {
            failure = WeightsError("the transfer was cut off after \(size) of \(expected) bytes")
            return
        }
        do {
            _ = try? FileManager.default.removeItem(at: destination!)
            try FileManager.default.moveItem(at: location, to: destination!)
        } catch {
            failure = error
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil { failure = error }
        progress?.finish()
        done.signal()
    }
}
