import Foundation
import PipelineKit

/// `pipeline sweep`: every variant of a grid run as its own `pipeline run` process in its own folder
/// (`artifacts/NAME/variants/VARIANT/`), sharing the pipeline's cache and experiments log. The
/// cache's per-fingerprint locks make each distinct stage output get made once however the variants
/// interleave, in this sweep or in another one at the same time; a sweep started again after being
/// killed restores what was made and runs the rest (an interrupted extract resumes in its folder).
public struct Sweep: Sendable {
    public var pipeline: URL
    public var artifacts: URL
    public var variants: [Variant]
    public var jobs: Int
    /// Extra arguments for each variant's run (`--executor slurm --shards 4`).
    public var runArguments: [String]
    /// This executable (`pipeline`).
    public var tool: URL

    public init(pipeline: URL, artifacts: URL, variants: [Variant], jobs: Int, runArguments: [String], tool: URL) {
        self.pipeline = pipeline
        self.artifacts = artifacts
        self.variants = variants
        self.jobs = jobs
        self.runArguments = runArguments
        self.tool = tool
    }

    public static func newIdentifier() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return "sweep-\(formatter.string(from: Date()))-\(getpid())"
    }

    /// Where a pipeline's sweeps keep their variants' folders.
    public static func variantsFolder(of artifacts: URL) -> URL { artifacts.appendingPathComponent("variants") }

    public func folder(of variant: Variant) -> URL { Self.variantsFolder(of: artifacts).appendingPathComponent(variant.folderName) }

    /// Runs the variants, `jobs` at a time, printing each one's lines under a heading naming it when
    /// it ends (so that parallel variants' lines do not interleave). Returns the variants that failed.
    public func run(identifier: String, print output: @escaping @Sendable (String) -> Void) throws -> [Variant] {
        // Held from before the first variant's folder exists until the last has ended: gc, which
        // takes it alone, cannot remove a variant that has not yet started (and locked) its run.
        let use = try RunCache(artifacts: artifacts).useLock()
        defer { use.release() }
        try FileManager.default.createDirectory(at: Self.variantsFolder(of: artifacts), withIntermediateDirectories: true)
        let slots = DispatchSemaphore(value: jobs)
        let group = DispatchGroup()
        // One lock for what the threads share: the printing, the failed variants, a launch error.
        let shared = Locked<(failed: [Variant], problem: (any Error)?)>(([], nil))
        for (index, variant) in variants.enumerated() {
            slots.wait()
            if shared.value.problem != nil { slots.signal(); break }
            group.enter()
            Thread.detachNewThread {
                defer { slots.signal(); group.leave() }
                do {
                    let (status, lines) = try self.runOne(variant, identifier: identifier)
                    let heading = "== variant \(index + 1)/\(self.variants.count): \(variant.description) =="
                    shared.mutate { state in
                        output(heading + "\n" + lines.trimmingCharacters(in: .newlines) + (status.failed ? "\n(failed: \(status))" : ""))
                        if status.failed { state.failed.append(variant) }
                    }
                } catch {
                    shared.mutate { $0.problem = error }
                }
            }
        }
        group.wait()
        if let problem = shared.value.problem { throw problem }
        return shared.value.failed
    }

    /// How a variant's process ended: an exit status, or the signal that killed it.
    struct Ending: CustomStringConvertible {
        var code: Int32
        var signalled: Bool
        var failed: Bool { signalled || code != 0 }
        var description: String {
            guard signalled else { return "exit status \(code)" }
            let names: [Int32: String] = [SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT",
                                          SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGHUP: "SIGHUP"]
            return "killed by signal \(code)\(names[code].map { " (\($0))" } ?? "")"
        }
    }

    func runOne(_ variant: Variant, identifier: String) throws -> (Ending, String) {
        let folder = self.folder(of: variant)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let log = folder.appendingPathComponent("run-\(getpid()).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let process = Process()
        process.executableURL = tool
        process.arguments = ["run", pipeline.path, "--workspace", folder.path, "--sweep", identifier]
            + variant.settings.flatMap { ["--set", $0.description] } + runArguments
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        do {
            try process.run()
        } catch {
            throw StageError("\(tool.path): cannot start a variant's run: \(error.userMessage)")
        }
        process.waitUntilExit()
        try? handle.close()
        let ending = Ending(code: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal)
        return (ending, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}

/// A value shared between threads behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func mutate(_ change: (inout Value) -> Void) { lock.lock(); defer { lock.unlock() }; change(&stored) }
}
