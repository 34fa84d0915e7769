import Foundation
import GRDB

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func sample(_ name: String) -> String {
    repositoryRoot.appendingPathComponent("pipelines/data/sign-mnist-sample/\(name)").path
}

func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-e2e-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A temporary folder holding the sample ingested (images.sqlite) and preprocessed at `size`
/// (preprocessed.sqlite) by the real commands.
func preprocessedSample(size: Int) throws -> URL {
    let folder = try temporaryFolder()
    let images = folder.appendingPathComponent("images.sqlite").path, preprocessed = folder.appendingPathComponent("preprocessed.sqlite").path
    let ingest = try runTool("ingest", ["--train", sample("train.csv"), "--test", sample("test.csv"), "--output", images])
    let preprocess = try runTool("preprocess", ["--input", images, "--output", preprocessed, "--size", String(size)])
    guard ingest.status == 0, preprocess.status == 0 else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "preparing the sample failed: \(ingest.stderr) \(preprocess.stderr)"])
    }
    return folder
}

/// Whether this CPU has AVX-512 (the flag Linux lists in /proc/cpuinfo).
let cpuHasAVX512: Bool = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx512f")

/// The folder `swift build` put the executables in: the one holding the running test bundle.
let productsFolder: URL = {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("ingest").path) {
        url = url.deletingLastPathComponent()
    }
    return url
}()

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs one of the package's executables to completion, as a user would from a shell.
func runTool(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    try runCommand(productsFolder.appendingPathComponent(name).path, arguments, environment: environment)
}

/// Runs any executable to completion (`path`, absolute), its output collected.
func runCommand(_ path: String, _ arguments: [String], environment: [String: String] = [:], in folder: URL? = nil) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    if let folder { process.currentDirectoryURL = folder }
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    // Output goes to files rather than pipes, so that a chatty tool can never stall on a full pipe.
    let outputs = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: outputs) }
    let outURL = outputs.appendingPathComponent("stdout"), errURL = outputs.appendingPathComponent("stderr")
    for url in [outURL, errURL] { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                      stderr: try String(contentsOf: errURL, encoding: .utf8))
}

/// Starts one of the package's executables in the background, its output discarded.
func launchTool(_ name: String, _ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = productsFolder.appendingPathComponent(name)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// Rows in `file`'s features table, 0 if it cannot be read. `readOnly: false` after the writer was
/// killed: a batch cut off mid-transaction leaves a hot journal that only a writable connection rolls back.
func rowCount(_ file: URL, readOnly: Bool = true) -> Int {
    guard FileManager.default.fileExists(atPath: file.path) else { return 0 }
    var configuration = Configuration()
    configuration.readonly = readOnly
    configuration.busyMode = .timeout(2)
    guard let queue = try? DatabaseQueue(path: file.path, configuration: configuration) else { return 0 }
    return (try? queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM features") }) ?? 0
}

/// One value read from an SQLite file, opened read-only.
func sqliteValue(_ file: URL, _ sql: String) throws -> String? {
    var configuration = Configuration()
    configuration.readonly = true
    return try DatabaseQueue(path: file.path, configuration: configuration).read { try String.fetchOne($0, sql: sql) }
}

/// Runs one statement that changes an SQLite file, as a user editing an artifact by hand would.
func sqliteEdit(_ file: URL, _ sql: String) throws {
    try DatabaseQueue(path: file.path).write { try $0.execute(sql: sql) }
}

/// Whether a features file was made on one of our GEMM kernels, whose bits are the same however a
/// run is batched, resumed or repeated; OpenBLAS (`blas`) promises that of no call.
func madeOnOurKernel(_ features: URL) -> Bool {
    ((try? sqliteValue(features, "SELECT value FROM backbone WHERE key = 'gemm'")) ?? nil).map { $0 != "blas" } ?? false
}
