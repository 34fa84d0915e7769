import Foundation
import Testing

/// A pipeline over a private copy of the sample, small enough to run in about a second.
struct SamplePipeline {
    let folder: URL
    var file: URL { folder.appendingPathComponent("pipeline.yaml") }
    var artifacts: URL { folder.appendingPathComponent("artifacts") }
    var train: URL { folder.appendingPathComponent("train.csv") }

    init(size: Int = 32, epochs: Int = 3, extractBatch: Int = 32) throws {
        folder = try temporaryFolder()
        try FileManager.default.copyItem(atPath: sample("train.csv"), toPath: folder.appendingPathComponent("train.csv").path)
        try FileManager.default.copyItem(atPath: sample("test.csv"), toPath: folder.appendingPathComponent("test.csv").path)
        try write(size: size, epochs: epochs, extractBatch: extractBatch)
    }

    func write(size: Int = 32, epochs: Int = 3, extractBatch: Int = 32, weights: String = "random:1", fallback: String = "") throws {
        try """
        name: e2e
        artifacts: artifacts
        stages:
          ingest:
            train: train.csv
            test: test.csv
          preprocess:
            size: \(size)
          extract:
            weights: \(weights)
            fallback: "\(fallback)"
            batch: \(extractBatch)
          train:
            hidden: [32]
            epochs: \(epochs)
        """.write(to: file, atomically: true, encoding: .utf8)
    }

    /// Runs `pipeline run` and returns the stages it ran.
    @discardableResult
    func run(_ extra: [String] = []) throws -> [String] {
        let result = try runTool("pipeline", ["run", file.path] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.split(separator: "\n").compactMap { line in
            line.hasSuffix(")") && line.contains(": running (") ? String(line.prefix { $0 != ":" }) : nil
        }
    }

    func status() throws -> String { try runTool("pipeline", ["status", file.path]).stdout }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}

/// An artifact's content hash from its meta table (head.sqlite keeps per-epoch timings, so its
/// bytes differ between runs while its content does not).
func contentHash(_ file: URL) throws -> String {
    try sqliteValue(file, "SELECT value FROM meta WHERE key = 'content_sha256'") ?? ""
}

@Suite(.serialized) struct PipelineRules {
    @Test func secondRunRerunsNothingAndStatusSaysUpToDate() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try pipeline.run() == ["ingest", "preprocess", "extract", "train"])
        #expect(try pipeline.run() == [])
        let status = try pipeline.status()
        #expect(status.split(separator: "\n").allSatisfy { $0.contains(": up to date") })
        #expect(FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("manifest.json").path))
        #expect(FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("report.html").path))
    }

    @Test func changedHeadParameterRerunsOnlyTrain() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        try pipeline.write(epochs: 4)
        #expect(try pipeline.status().contains("train: stale: parameter epochs changed from 3 to 4"))
        #expect(try pipeline.run() == ["train"])
    }

    @Test func changedSizeRerunsPreprocessExtractAndTrain() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        try pipeline.write(size: 40)
        let status = try pipeline.status()
        #expect(status.contains("preprocess: stale: parameter size changed from 32 to 40"))
        #expect(status.contains("extract: stale: waits for preprocess"))
        #expect(try pipeline.run() == ["preprocess", "extract", "train"])
    }

    @Test func csvRewrittenWithTheSameBytesRerunsNothing() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let bytes = try Data(contentsOf: pipeline.train)
        try FileManager.default.removeItem(at: pipeline.train)
        try bytes.write(to: pipeline.train)
        #expect(try pipeline.run() == [])
        // The rehash was recorded: the manifest's state table has the new file's inode.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: pipeline.artifacts.appendingPathComponent("manifest.json"))) as! [String: Any]
        let state = (manifest["files"] as! [String: Any])[pipeline.train.standardizedFileURL.path] as! [String: Any]
        let inode = (try FileManager.default.attributesOfItem(atPath: pipeline.train.path)[.systemFileNumber] as! NSNumber).uint64Value
        #expect((state["inode"] as! NSNumber).uint64Value == inode)
    }

    @Test func onePixelChangedRerunsEverything() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        var lines = try String(contentsOf: pipeline.train, encoding: .utf8).components(separatedBy: "\n")
        var fields = lines[7].components(separatedBy: ",")
        fields[100] = fields[100] == "0" ? "1" : "0"
        lines[7] = fields.joined(separator: ",")
        try lines.joined(separator: "\n").write(to: pipeline.train, atomically: true, encoding: .utf8)
        #expect(try pipeline.status().contains("ingest: stale: input train changed"))
        #expect(try pipeline.run() == ["ingest", "preprocess", "extract", "train"])
    }

    @Test func deletedFeaturesComeBackFromTheCacheAndTrainStays() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        try FileManager.default.removeItem(at: pipeline.artifacts.appendingPathComponent("features.sqlite"))
        #expect(try pipeline.status().contains("extract: stale: output features.sqlite is missing"))
        // Put back from the run cache (checked against its hash), not recomputed; train stays up to date.
        let restore = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(restore.stdout.contains("extract: restored from the cache (output features.sqlite is missing; fingerprint"), "\(restore.stdout)")
        #expect(restore.stdout.contains("train: up to date, skipped"))
        #expect(try pipeline.run() == [])
        // Forced, it runs.
        #expect(try pipeline.run(["--force", "extract"]) == ["extract"])
    }

    @Test func outputEditedOnDiskIsReportedAndRebuilt() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        let original = try contentHash(head)
        let handle = try FileHandle(forWritingTo: head)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("tampered".utf8))
        try handle.close()
        #expect(try pipeline.status().contains("train: stale: output head.sqlite was altered on disk"))
        #expect(try pipeline.run() == ["train"])
        #expect(try contentHash(head) == original)
        #expect(try pipeline.run() == [])
    }

    /// report.html is an output of train like head.sqlite: deleted, train is stale and its outputs come back from the cache.
    @Test func deletedReportComesBackFromTheCache() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        try FileManager.default.removeItem(at: pipeline.artifacts.appendingPathComponent("report.html"))
        #expect(try pipeline.status().contains("train: stale: output report.html is missing"))
        let restore = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(restore.stdout.contains("train: restored from the cache (output report.html is missing"), "\(restore.stdout)")
        #expect(FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("report.html").path))
    }

    /// The GEMM kernel decides the features' last bits: another kernel makes extract stale.
    @Test(.enabled(if: cpuHasAVX2, "needs a CPU with AVX2 (one of our kernels besides OpenBLAS)"))
    func anotherGEMMKernelRerunsExtract() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let run = try runTool("pipeline", ["run", pipeline.file.path], environment: ["SIGNTRANSFER_GEMM": "avx2"])
        #expect(run.status == 0, "\(run.stderr)")
        let status = try runTool("pipeline", ["status", pipeline.file.path], environment: ["SIGNTRANSFER_GEMM": "blas"])
        #expect(status.stdout.contains("extract: stale: gemm changed from avx2 to blas"), "\(status.stdout)")
        #expect(status.stdout.contains("preprocess: up to date"))
    }

    @Test func forceAndUntil() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try pipeline.run(["--until", "preprocess"]) == ["ingest", "preprocess"])
        #expect(try pipeline.status().contains("extract: stale: never run"))
        #expect(try pipeline.run() == ["extract", "train"])
        #expect(try pipeline.run(["--force", "preprocess"]) == ["preprocess"])
    }

    @Test func stageExecutablesRunUnderThePipeline() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let early = try runTool("preprocess", ["--pipeline", pipeline.file.path])
        #expect(early.status != 0)
        #expect(early.stderr.contains("needs the output of ingest"))
        for stage in ["ingest", "preprocess", "extract", "train"] {
            let result = try runTool(stage, ["--pipeline", pipeline.file.path])
            #expect(result.status == 0, "\(stage): \(result.stderr)")
        }
        #expect(try pipeline.run() == [])
    }

    @Test func killedExtractResumesAndEndsIdentical() throws {
        let reference = try SamplePipeline(size: 96, extractBatch: 8)
        defer { reference.remove() }
        try reference.run()

        let pipeline = try SamplePipeline(size: 96, extractBatch: 8)
        defer { pipeline.remove() }
        try pipeline.run(["--until", "preprocess"])
        let process = try launchTool("pipeline", ["run", pipeline.file.path])
        let partial = pipeline.artifacts.appendingPathComponent(".features.sqlite.partial")
        let deadline = Date().addingTimeInterval(60)
        while rowCount(partial) < 24 && Date() < deadline { usleep(20_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("features.sqlite").path))

        let resumed = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming after"))
        let features = "features.sqlite"
        if madeOnOurKernel(reference.artifacts.appendingPathComponent(features)) {
            #expect(try Data(contentsOf: pipeline.artifacts.appendingPathComponent(features)) == Data(contentsOf: reference.artifacts.appendingPathComponent(features)))
            #expect(try contentHash(pipeline.artifacts.appendingPathComponent("head.sqlite")) == contentHash(reference.artifacts.appendingPathComponent("head.sqlite")))
        }
    }

    @Test func twoRunsAtOnceTheSecondRefuses() throws {
        let pipeline = try SamplePipeline(size: 96, extractBatch: 8)
        defer { pipeline.remove() }
        // A run holding the pipeline's lock, for certain: the lock taken here, as a run takes it.
        try FileManager.default.createDirectory(at: pipeline.artifacts, withIntermediateDirectories: true)
        let descriptor = open(pipeline.artifacts.appendingPathComponent(".lock").path, O_RDWR | O_CREAT, 0o644)
        #expect(descriptor >= 0 && flock(descriptor, LOCK_EX) == 0)
        let refused = try runTool("pipeline", ["run", pipeline.file.path])
        close(descriptor)
        #expect(refused.status != 0 && refused.stderr.contains("is in use by another run"), "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent(".lock").path), "the refused run leaves the holder's lock file")
        // Two real runs at once: whichever order they take, one runs, the other is refused or finds
        // everything up to date, and what they leave is whole.
        let started = try startTool("pipeline", ["run", pipeline.file.path])
        let second = try runTool("pipeline", ["run", pipeline.file.path])
        let first = try started.wait()
        #expect(first.status == 0 || second.status == 0, "one of them ran: \(first.stderr) \(second.stderr)")
        for result in [first, second] where result.status != 0 {
            #expect(result.stderr.contains("is in use by another run"), "\(result.stderr)")
        }
        #expect(try pipeline.run() == [])
    }

    @Test func badPipelineFilesNameFileLineAndKey() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let cases: [(String, String)] = [
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  preprocess:\n    sise: 32\n", "pipeline.yaml:7:5: unknown key 'sise' in stage preprocess"),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  preprocess:\n    size: big\n", "pipeline.yaml:7:5: preprocess.size: expected a whole number, found 'big'"),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  predict:\n    top: 3\n", "pipeline.yaml:6:3: unknown stage 'predict'"),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: missing.csv\n", "pipeline.yaml:5:5: ingest.train: no such file"),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  preprocess:\n    size: 9\n", "pipeline.yaml:7:5: preprocess.size: expected 32 to 512, found 9"),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  preprocess:\n    size: \"32\"\n",
             "pipeline.yaml:7:5: preprocess.size: expected a whole number, found the string \"32\""),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  train:\n    dropout: '0.5'\n",
             "pipeline.yaml:7:5: train.dropout: expected a number, found the string \"0.5\""),
            ("name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  train:\n    standardize: minmax\n",
             "pipeline.yaml:7:5: train.standardize: expected one of none, zscore, found 'minmax'"),
        ]
        // Every case names the artifacts folder inside the test's own folder: the default,
        // ../artifacts/NAME, would be outside it.
        for (text, expected) in cases {
            try text.write(to: pipeline.file, atomically: true, encoding: .utf8)
            let result = try runTool("pipeline", ["run", pipeline.file.path])
            #expect(result.status != 0)
            #expect(result.stderr.contains(expected), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("images.sqlite").path))
        }
    }

    @Test func inspectAttachesEveryStage() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let tables = try runTool("pipeline", ["inspect", pipeline.file.path])
        for line in ["ingest.images: 199 rows", "preprocess.images: 199 rows", "extract.features: 199 rows", "train.predictions: 11 rows"] {
            #expect(tables.stdout.contains(line), "\(tables.stdout)")
        }
        let query = try runTool("pipeline", ["inspect", pipeline.file.path, "--sql",
                                             "SELECT count(*) AS n FROM train.predictions t JOIN ingest.images i USING (id) WHERE i.split = 'test'"])
        #expect(query.stdout.contains("11"))
        // Looking changes nothing: no ATTACH of a path of the query's choosing (it would create the
        // file), no writes; both are errors that say so.
        let elsewhere = pipeline.folder.appendingPathComponent("created-by-a-query.sqlite")
        let attach = try runTool("pipeline", ["inspect", pipeline.file.path, "--sql", "ATTACH '\(elsewhere.path)' AS n"])
        #expect(attach.status != 0)
        #expect(attach.stderr.contains("--sql: ATTACH is refused"), "\(attach.stderr)")
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path))
        let before = try Data(contentsOf: pipeline.artifacts.appendingPathComponent("images.sqlite"))
        let delete = try runTool("pipeline", ["inspect", pipeline.file.path, "--sql", "DELETE FROM ingest.images"])
        #expect(delete.status != 0)
        #expect(delete.stderr.contains("pipeline: error: --sql:") && delete.stderr.contains("inspect only reads"), "\(delete.stderr)")
        #expect(try Data(contentsOf: pipeline.artifacts.appendingPathComponent("images.sqlite")) == before)
    }
}

@Suite struct EveryValueFirst {
    /// A bad fallback (or weights) value is the file's error, with line and column, before any stage
    /// runs and before the artifacts folder exists.
    @Test(arguments: [("random:1", "random:x", "extract.fallback"), ("random:y", "", "extract.weights")])
    func badWeightsValuesStopTheRunBeforeItStarts(weights: String, fallback: String, key: String) throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.write(weights: weights, fallback: fallback)
        let result = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("pipeline.yaml:") && result.stderr.contains("\(key): expected random:SEED with SEED a whole number"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path))
    }
}

@Suite struct WeightsFallback {
    /// A damaged ImageNet file in Keras's cache (wrong MD5) does not keep the pipeline from its
    /// fallback: the run uses random:0, says why, and records it.
    @Test func damagedCachedWeightsFallBack() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.write(weights: "imagenet", fallback: "random:0")
        let home = pipeline.folder.appendingPathComponent("home")
        let keras = home.appendingPathComponent(".keras/models")
        try FileManager.default.createDirectory(at: keras, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("Tests/Fixtures/keras-parity/keras2-conv1.h5"),
                                         to: keras.appendingPathComponent("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"))
        let environment = ["HOME": home.path, "XDG_CACHE_HOME": pipeline.folder.appendingPathComponent("cache").path,
                           "SIGNTRANSFER_WEIGHTS_URL": "http://127.0.0.1:9/weights.h5"]
        let result = try runTool("pipeline", ["run", pipeline.file.path], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("using the fallback random:0"))
        let status = try runTool("pipeline", ["status", pipeline.file.path], environment: environment)
        #expect(status.stdout.contains("extract: up to date"), "\(status.stdout)")
    }
}
