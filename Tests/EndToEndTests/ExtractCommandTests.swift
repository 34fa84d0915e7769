import Foundation
import GRDB
import Testing

/// ingest and preprocess the sample at `size` into a fresh folder through the executables.
private func preparedFolder(size: Int) throws -> URL {
    let folder = try temporaryFolder()
    let images = folder.appendingPathComponent("images.sqlite").path
    #expect(try runTool("ingest", ["--train", sample("train.csv"), "--test", sample("test.csv"), "--output", images]).status == 0)
    let pre = try runTool("preprocess", ["--input", images, "--output", folder.appendingPathComponent("preprocessed.sqlite").path, "--size", String(size)])
    #expect(pre.status == 0, "\(pre.stderr)")
    return folder
}

@Suite(.serialized) struct ExtractCommand {
    @Test func killedRunResumesAndEndsIdentical() throws {
        let folder = try preparedFolder(size: 96)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("preprocessed.sqlite").path
        let whole = folder.appendingPathComponent("whole.sqlite")
        let first = try runTool("extract", ["--input", input, "--output", whole.path, "--weights", "random:1", "--batch", "8"])
        #expect(first.status == 0, "\(first.stderr)")

        let resumed = folder.appendingPathComponent("resumed.sqlite")
        let process = try launchTool("extract", ["--input", input, "--output", resumed.path, "--weights", "random:1", "--batch", "8"])
        let partial = folder.appendingPathComponent(".resumed.sqlite.partial")
        let deadline = Date().addingTimeInterval(60)
        while rowCount(partial) < 24 && Date() < deadline { usleep(20_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let done = rowCount(partial, readOnly: false)
        #expect(done >= 24 && done < 199, "killed after \(done) images")
        #expect(!FileManager.default.fileExists(atPath: resumed.path))

        let second = try runTool("extract", ["--input", input, "--output", resumed.path, "--weights", "random:1", "--batch", "8"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("resuming after \(done) images"))
        if madeOnOurKernel(whole) { #expect(try Data(contentsOf: resumed) == Data(contentsOf: whole)) }
        #expect(!FileManager.default.fileExists(atPath: partial.path))
    }

    @Test func secondRunAtOnceRefusesAndDamagesNothing() throws {
        let folder = try preparedFolder(size: 96)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("preprocessed.sqlite").path
        let output = folder.appendingPathComponent("features.sqlite")
        let process = try launchTool("extract", ["--input", input, "--output", output.path, "--weights", "random:1", "--batch", "8"])
        let lock = folder.appendingPathComponent(".features.sqlite.lock")
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: lock.path) && Date() < deadline { usleep(10_000) }
        // The same output however spelt: as given, through a `..`, through a symbolic link to the folder.
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("link"), withDestinationURL: folder)
        for spelling in [output.path, folder.path + "/sub/../features.sqlite", folder.path + "/link/features.sqlite"] {
            let second = try runTool("extract", ["--input", input, "--output", spelling, "--weights", "random:1", "--batch", "8"])
            #expect(second.status != 0, "\(spelling)")
            #expect(second.stderr.contains("is in use by another run"), "\(spelling): \(second.stderr)")
        }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let check = try runTool("extract", ["--input", input, "--output", folder.appendingPathComponent("check.sqlite").path,
                                            "--weights", "random:1", "--batch", "8"])
        #expect(check.status == 0)
        if madeOnOurKernel(output) { #expect(try Data(contentsOf: output) == Data(contentsOf: folder.appendingPathComponent("check.sqlite"))) }
    }

    @Test func imagenetWithoutNetworkSaysWhatToDo() throws {
        let folder = try preparedFolder(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let home = folder.appendingPathComponent("home")
        let result = try runTool("extract", ["--input", folder.appendingPathComponent("preprocessed.sqlite").path,
                                             "--output", folder.appendingPathComponent("features.sqlite").path, "--weights", "imagenet"],
                                 environment: ["HOME": home.path, "XDG_CACHE_HOME": "", "SIGNTRANSFER_WEIGHTS_URL": "http://127.0.0.1:9/weights.h5"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("extract: error: could not download the ImageNet weights from http://127.0.0.1:9/weights.h5"))
        #expect(result.stderr.contains("\(home.path)/.cache/signtransfer/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("features.sqlite").path))
    }

    /// A file in ~/.keras/models/ with the wrong MD5 is not trusted: the run falls through to the
    /// download, which fails here.
    @Test func imagenetInTheKerasCacheWithTheWrongMD5IsNotUsed() throws {
        let folder = try preparedFolder(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let home = folder.appendingPathComponent("home")
        let keras = home.appendingPathComponent(".keras/models")
        try FileManager.default.createDirectory(at: keras, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-parity/keras3-conv1.h5"),
                                         to: keras.appendingPathComponent("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"))
        let result = try runTool("extract", ["--input", folder.appendingPathComponent("preprocessed.sqlite").path,
                                             "--output", folder.appendingPathComponent("features.sqlite").path, "--weights", "imagenet"],
                                 environment: ["HOME": home.path, "XDG_CACHE_HOME": "", "SIGNTRANSFER_WEIGHTS_URL": "http://127.0.0.1:9/weights.h5"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("could not download"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("features.sqlite").path))
    }
}

@Suite struct ExtractShardCommand {
    @Test func schedulerEnvironmentPicksTheShard() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let images = folder.appendingPathComponent("images.sqlite").path, pre = folder.appendingPathComponent("p.sqlite").path
        _ = try runTool("ingest", ["--train", sample("train.csv"), "--output", images])
        _ = try runTool("preprocess", ["--input", images, "--output", pre, "--size", "32"])
        let output = folder.appendingPathComponent("features.sqlite").path
        let slurm = try runTool("extract", ["--input", pre, "--output", output, "--weights", "random:1"],
                                environment: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"])
        #expect(slurm.status == 0, "\(slurm.stderr)")
        let kubernetes = try runTool("extract", ["--input", pre, "--output", output, "--weights", "random:1", "--shards", "2"],
                                     environment: ["JOB_COMPLETION_INDEX": "0"])
        #expect(kubernetes.status == 0, "\(kubernetes.stderr)")
        let merged = try runTool("extract", ["merge", "--input", pre, "--output", output, "--shards", "2"])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stdout.contains("188 vectors merged from 2 shards"))
    }
}

/// `extract --precision bf16` through the executable: recorded where a user would look, close to
/// float, refused where the CPU cannot, and never merged with float shards.
@Suite struct ExtractPrecision {
    /// The CPU has AVX512_BF16 and SIGNTRANSFER_GEMM does not stand for a CPU without AVX-512.
    static let bf16Available: Bool = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx512_bf16")
        && [nil, "", "avx512"].contains(ProcessInfo.processInfo.environment["SIGNTRANSFER_GEMM"])

    func vectors(_ file: URL) throws -> [Int: [Float]] {
        var configuration = Configuration()
        configuration.readonly = true
        return try DatabaseQueue(path: file.path, configuration: configuration).read { db in
            var result: [Int: [Float]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, vector FROM features") {
                let data: Data = row["vector"]
                result[row["id"]] = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            return result
        }
    }

    @Test(.enabled(if: bf16Available, "needs a CPU with AVX512_BF16"))
    func bf16IsRecordedCloseToFloatAndNeverMergedWithIt() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let float = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("f32.sqlite"), "--weights", "random:1"])
        let bf16 = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("bf16.sqlite"), "--weights", "random:1", "--precision", "bf16"])
        #expect(float.status == 0 && bf16.status == 0, "\(float.stderr) \(bf16.stderr)")
        #expect(try sqliteValue(URL(fileURLWithPath: path("bf16.sqlite")), "SELECT value FROM backbone WHERE key = 'precision'") == "bf16")
        #expect(try sqliteValue(URL(fileURLWithPath: path("bf16.sqlite")), "SELECT value FROM backbone WHERE key = 'gemm'") == "avx512-bf16")
        #expect(try sqliteValue(URL(fileURLWithPath: path("f32.sqlite")), "SELECT count(*) FROM backbone WHERE key = 'precision'") == "0",
                "a float file is exactly as before the option")
        let a = try vectors(URL(fileURLWithPath: path("f32.sqlite"))), b = try vectors(URL(fileURLWithPath: path("bf16.sqlite")))
        #expect(a.count == 199 && Set(a.keys) == Set(b.keys))
        var lowest = 1.0
        for (id, x) in a {
            let y = b[id]!
            let dot = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let norms = (x.reduce(0.0) { $0 + Double($1) * Double($1) } * y.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            lowest = min(lowest, dot / norms)
        }
        #expect(lowest >= 0.999 && a != b, "lowest cosine \(lowest)")

        // Shards of different precisions do not merge.
        for (index, precision) in [(0, "fp32"), (1, "bf16")] {
            let shard = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("mixed.sqlite"), "--weights", "random:1",
                                                "--precision", precision, "--shard", "\(index)/2"])
            #expect(shard.status == 0, "\(shard.stderr)")
        }
        let merged = try runTool("extract", ["merge", "--input", path("preprocessed.sqlite"), "--output", path("mixed.sqlite"), "--shards", "2"])
        #expect(merged.status != 0 && merged.stderr.contains("cannot merge shards of different precisions (shard 0 fp32, shard 1 bf16)"), "\(merged.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("mixed.sqlite")))
    }

    /// Without the instruction (SIGNTRANSFER_GEMM=blas stands for a CPU without AVX-512): refused,
    /// saying why, nothing written; no silent fallback to float.
    @Test func bf16IsRefusedWhereTheCPUCannot() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("features.sqlite").path
        let result = try runTool("extract", ["--input", folder.appendingPathComponent("preprocessed.sqlite").path, "--output", output, "--weights", "random:1",
                                             "--precision", "bf16"], environment: ["SIGNTRANSFER_GEMM": "blas"])
        #expect(result.status != 0 && result.stderr.contains("--precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps)"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }
}
