import Foundation
import Numerical
import PipelineKit
import Testing

/// A stage that writes its name and its input's bytes to its output (and a note beside it).
func stage(_ name: String, reads: [String] = [], side: [String] = [], version: Int = 1) -> StageDefinition {
    StageDefinition(name: name, version: version, parameters: [ParameterSpec("size", .integer(1 ... 9), default: "1")],
                    output: "\(name).out", sideOutputs: side, reads: reads) { context in
        let input = try context.input.map { try Data(contentsOf: $0) } ?? Data()
        try (Data(name.utf8) + input).write(to: context.output)
        for file in side { try Data("note".utf8).write(to: context.folder.appendingPathComponent(file)) }
        return StageOutcome(contentSHA256: name + String(input.count), rows: 1)
    }
}

func pipelineFolder() throws -> (folder: URL, file: URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-runner-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let file = folder.appendingPathComponent("p.yaml")
    try "name: p\nartifacts: artifacts\nstages:\n  a: {}\n  b: {}\n  c: {}\n".write(to: file, atomically: true, encoding: .utf8)
    return (folder, file)
}

@Suite struct StageGraph {
    /// The order comes from what each stage reads, not from the order given.
    @Test func orderFollowsReads() throws {
        let ordered = try orderedStages([stage("c", reads: ["b.out"]), stage("a"), stage("b", reads: ["a.out"])])
        #expect(ordered.map(\.name) == ["a", "b", "c"])
    }

    @Test func aReadNobodyWritesAndACycleAreErrors() {
        let missing = #expect(throws: StageError.self) { try orderedStages([stage("a"), stage("b", reads: ["x.out"])]) }
        #expect(missing?.description == "b reads x.out, which no stage writes")
        let cycle = #expect(throws: StageError.self) { try orderedStages([stage("a", reads: ["b.out"]), stage("b", reads: ["a.out"])]) }
        #expect(cycle?.description.contains("in a cycle") == true)
    }

    /// Up to date exactly when the fingerprint matches and every output, side outputs included, is intact.
    @Test func sideOutputsAndVersionsDecideStaleness() throws {
        let (folder, file) = try pipelineFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let stages = [stage("a"), stage("b", reads: ["a.out"], side: ["b.html"]), stage("c", reads: ["b.out"])]
        #expect(try PipelineRunner(pipeline: file.path, stages: stages).run { _ in } == ["a", "b", "c"])
        #expect(try PipelineRunner(pipeline: file.path, stages: stages).run { _ in } == [])

        try FileManager.default.removeItem(at: folder.appendingPathComponent("artifacts/b.html"))
        let runner = try PipelineRunner(pipeline: file.path, stages: stages)
        #expect(try runner.status(of: stages[1]).reasons == ["output b.html is missing"])
        // b's outputs come back from the cache, checked against their hashes: nothing runs, c stays up to date.
        #expect(try runner.run { _ in } == [])
        #expect(runner.runs.map(\.kind) == [.skipped, .restored, .skipped])
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("artifacts/b.html").path))
        // Without the cache, b reruns and writes the same content: c stays up to date.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("artifacts/b.html"))
        let uncached = try PipelineRunner(pipeline: file.path, stages: stages)
        uncached.cache = nil
        #expect(try uncached.run { _ in } == ["b"])

        let bumped = [stage("a"), stage("b", reads: ["a.out"], side: ["b.html"], version: 2), stage("c", reads: ["b.out"])]
        let again = try PipelineRunner(pipeline: file.path, stages: bumped)
        #expect(try again.status(of: bumped[1]).reasons == ["stage version changed from 1 to 2"])
        #expect(try again.run { _ in } == ["b"])
    }

    /// A parameter added to a stage later (`addedLater`) does not make old results stale at its
    /// default: upgrading the tool reruns nothing; any other value does, and says so.
    @Test func aParameterAddedLaterLeavesOldResultsAloneAtItsDefault() throws {
        let (folder, file) = try pipelineFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "name: p\nartifacts: artifacts\nstages:\n  a: {}\n  b: {}\n".write(to: file, atomically: true, encoding: .utf8)
        let before = [stage("a"), stage("b", reads: ["a.out"])]
        #expect(try PipelineRunner(pipeline: file.path, stages: before).run { _ in } == ["a", "b"])
        var upgraded = stage("b", reads: ["a.out"])
        upgraded.parameters.append(ParameterSpec("precision", .choice(["fp32", "bf16"]), default: "fp32", addedLater: true))
        upgraded.parameters.append(ParameterSpec("rotation", .number(0 ... 180), default: "10", addedLater: true))
        let after = [stage("a"), upgraded]
        #expect(try PipelineRunner(pipeline: file.path, stages: after).statuses().allSatisfy(\.upToDate), "the defaults, however written (10 is 10.0)")
        #expect(try PipelineRunner(pipeline: file.path, stages: after).run { _ in } == [])
        try "name: p\nartifacts: artifacts\nstages:\n  a: {}\n  b: {precision: bf16}\n".write(to: file, atomically: true, encoding: .utf8)
        let runner = try PipelineRunner(pipeline: file.path, stages: after)
        #expect(try runner.status(of: upgraded).reasons == ["parameter precision changed from (unset) to bf16"])
    }

    /// Each stage runs through its executor.
    @Test func executorsRunTheirStages() throws {
        struct Counting: StageExecutor {
            let calls: Counter
            func execute(_ stage: StageDefinition, _ context: StageContext) throws -> StageOutcome {
                calls.add(stage.name)
                return try stage.run(context)
            }
        }
        final class Counter: @unchecked Sendable {
            var names: [String] = []
            func add(_ name: String) { names.append(name) }
        }
        let (folder, file) = try pipelineFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let counter = Counter()
        let runner = try PipelineRunner(pipeline: file.path, stages: [stage("a"), stage("b", reads: ["a.out"]), stage("c", reads: ["b.out"])])
        runner.executors["b"] = Counting(calls: counter)
        _ = try runner.run { _ in }
        #expect(counter.names == ["b"])
    }
}

@Suite struct Locks {
    /// A refused taker leaves the holder's lock alone: the third, fourth... are refused too, and the
    /// file is there until the holder lets go.
    @Test func everyLaterTakerIsRefusedWhileTheHolderHolds() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(".out.lock")
        let holder = try FileLock(url, what: "out")
        for _ in 0 ..< 3 {
            #expect(throws: StageError.self) { _ = try FileLock(url, what: "out") }
            #expect(FileManager.default.fileExists(atPath: url.path))
        }
        holder.release()
        #expect(!FileManager.default.fileExists(atPath: url.path))
        let next = try FileLock(url, what: "out")
        next.release()
    }
}

@Suite struct Messages {
    /// A full disk is said plainly, whether the system or SQLite reports it.
    @Test func aFullDiskIsSaidPlainly() {
        let posix = NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))
        #expect(posix.userMessage.hasPrefix("the disk is full ("))
        #expect(posix.userMessage.contains("free some space and run again"))
        let sqlite = NSError(domain: "GRDB.DatabaseError", code: 13, userInfo: [NSLocalizedDescriptionKey: "SQLite error 13: database or disk is full"])
        #expect(sqlite.userMessage.hasPrefix("the disk is full (SQLite error 13: database or disk is full)"))
        #expect(NSError(domain: NSPOSIXErrorDomain, code: Int(EACCES)).userMessage.contains("disk is full") == false)
    }
}

/// A write that fails for a reason of the system's (a full disk, said by Foundation as "There isn't
/// enough space.") names the file it was writing, says the disk is full and what to do, and leaves
/// nothing behind.
@Suite struct WriteErrors {
    @Test func aFullDiskNamesTheFile() throws {
        let (folder, _) = try pipelineFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("metrics.json")
        let error = #expect(throws: StageError.self) {
            try AtomicOutput.write(to: target) { url in
                try Data("{}".utf8).write(to: url)
                throw CocoaError(.fileWriteOutOfSpace)
            }
        }
        #expect(error?.description.hasPrefix("\(target.path): cannot write it: the disk is full") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("free some space") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("metrics") }.isEmpty)
    }
}
