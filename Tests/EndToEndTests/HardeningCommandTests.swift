import Foundation
import GRDB
import Testing

/// The second adversarial round (#30), each case as it was found, through the real executables.
@Suite struct HardeningSecondRound {
    /// A sweep started by a bare name from another folder runs its own `pipeline`, not whatever
    /// executable of that name sits in the current folder.
    @Test func aSweepRunsItsOwnProgramWhereverItIsStarted() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let elsewhere = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        let impostor = elsewhere.appendingPathComponent("pipeline"), marker = elsewhere.appendingPathComponent("impostor-ran")
        try "#!/bin/sh\ntouch '\(marker.path)'\n".write(to: impostor, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: impostor.path)
        let path = productsFolder.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let sweep = try runCommand("/usr/bin/env", ["PATH=\(path)", "pipeline", "sweep", pipeline.file.path, "--grid", "train.dropout=0.2,0.5"], in: elsewhere)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker.path), "the sweep ran ./pipeline")
        #expect(sweep.stdout.components(separatedBy: "train: running (").count - 1 == 2, "\(sweep.stdout)")
    }

    /// Accepted values that would exhaust memory: a batch larger than the data is the data (the same
    /// head as any batch that large), and a head too big for this machine is refused before anything
    /// is allocated or written, from the command line, a pipeline file and a sweep's grid alike.
    @Test func acceptedValuesStayWithinMemory() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        #expect(try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:1"]).status == 0)
        var contents: [String] = []
        for batch in ["1048576", "5000"] {
            let head = path("head-\(batch).sqlite")
            let train = try runTool("train", ["--input", path("features.sqlite"), "--output", head, "--batch", batch, "--epochs", "2", "--hidden", "16"])
            #expect(train.status == 0, "\(train.stderr)")
            // The trained weights (the params differ: they record the batch asked for).
            contents.append(try sqliteValue(URL(fileURLWithPath: head), "SELECT group_concat(hex(weights), '') FROM (SELECT weights FROM layers ORDER BY layer)") ?? "")
        }
        #expect(contents[0] == contents[1] && !contents[0].isEmpty)

        let huge = try runTool("train", ["--input", path("features.sqlite"), "--output", path("huge.sqlite"), "--hidden", "65536,65536"])
        #expect(huge.status != 0)
        // Refused before the features are read, so on the fewest inputs any backbone gives (MobileNetV2's 1280).
        #expect(huge.stderr.contains("hidden 65536,65536 on 1280 inputs") && huge.stderr.contains("choose smaller hidden layers"), "\(huge.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("huge.sqlite")))

        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let run = try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.hidden=[65536,65536]"])
        #expect(run.status != 0 && run.stderr.contains("stage train: hidden 65536,65536"), "\(run.stderr)")
        let sweep = try runTool("pipeline", ["sweep", pipeline.file.path, "--grid", "train.hidden=[16],[65536,65536]"])
        #expect(sweep.status != 0 && sweep.stderr.contains("hidden 65536,65536"), "\(sweep.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path), "nothing ran")
    }

    /// The train entries of the cache, by the dropout their record says.
    func trainEntries(_ pipeline: SamplePipeline) throws -> [String: URL] {
        let cache = pipeline.artifacts.appendingPathComponent("cache")
        var found: [String: URL] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: cache.path) where name.count == 64 {
            let entry = cache.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: entry.appendingPathComponent("head.sqlite").path) else { continue }
            let record = try JSONSerialization.jsonObject(with: Data(contentsOf: entry.appendingPathComponent("record.json"))) as? [String: Any]
            if let dropout = (record?["params"] as? [String: String])?["dropout"] { found[dropout] = entry }
        }
        return found
    }

    /// The cache restores only what was made under the fingerprint asked for, checks bytes even when
    /// a file's modification time was put back, and leaves no temporary link behind.
    @Test func theCacheRestoresOnlyWhatItRecorded() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2"]).status == 0)
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        var entries = try trainEntries(pipeline)
        try #require(Set(entries.keys) == ["0.2", "0.5"], "\(entries)")

        // The entry for 0.5 copied over the one for 0.2: not restored as 0.2, dropped and run.
        let forged = entries["0.2"]!
        try FileManager.default.removeItem(at: forged)
        try FileManager.default.copyItem(at: entries["0.5"]!, to: forged)
        let variant = try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2"])
        #expect(variant.status == 0, "\(variant.stderr)")
        #expect(variant.stdout.contains("is filed under") && variant.stdout.contains("train: running ("), "\(variant.stdout)")
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        #expect(try sqliteValue(head, "SELECT value FROM params WHERE key = 'dropout'") == "0.2")
        let status = try runTool("pipeline", ["status", pipeline.file.path, "--set", "train.dropout=0.2"])
        #expect(status.stdout.contains("train: up to date"), "\(status.stdout)")

        // A byte of the cached 0.5 head flipped, its modification time put back: still caught.
        entries = try trainEntries(pipeline)
        let cached = entries["0.5"]!.appendingPathComponent("head.sqlite")
        let modified = try FileManager.default.attributesOfItem(atPath: cached.path)[.modificationDate] as! Date
        let good = try Data(contentsOf: cached)
        var bad = good
        bad[bad.count / 2] ^= 0xFF
        let handle = try FileHandle(forWritingTo: cached)
        try handle.write(contentsOf: bad)
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: cached.path)
        let back = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(back.stdout.contains("train: the cache's copy is damaged and was dropped") && back.stdout.contains("train: running ("), "\(back.stdout)")

        // A restore onto a link to the same file (the report deleted, the head still the entry's)
        // leaves no temporary link.
        try FileManager.default.removeItem(at: pipeline.artifacts.appendingPathComponent("report.html"))
        let restored = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(restored.status == 0, "\(restored.stderr)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: pipeline.artifacts.path).filter { $0.contains(".restore-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(FileManager.default.fileExists(atPath: pipeline.artifacts.appendingPathComponent("report.html").path))
    }

    /// A fine-tuned head whose conv5 rows were deleted is refused by predict and export (it would
    /// otherwise run the frozen conv5 under a head trained on the tuned one).
    @Test func aFineTunedHeadWithoutItsConv5IsRefused() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        #expect(try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:2",
                                        "--keep", "conv4_block6_out"]).status == 0)
        let train = try runTool("train", ["--input", path("features.sqlite"), "--output", path("head.sqlite"), "--fine-tune", "conv5", "--hidden", "16",
                                          "--epochs", "1", "--fine-tune-epochs", "1", "--validation", "0"])
        #expect(train.status == 0, "\(train.stderr)")
        let head = URL(fileURLWithPath: path("head.sqlite"))
        #expect(try sqliteValue(head, "SELECT value FROM params WHERE key = 'fine_tuned'") == "1")
        try sqliteEdit(head, "DELETE FROM backbone_weights")
        let csv = sample("test.csv")
        let predict = try runTool("predict", ["--model", head.path, "--csv", csv])
        #expect(predict.status != 0 && predict.stderr.contains("table backbone_weights holds nothing; the head's params say conv5 was fine-tuned"), "\(predict.stderr)")
        let export = try runTool("export", ["--model", head.path, "--output", path("model.onnx")])
        #expect(export.status != 0 && export.stderr.contains("table backbone_weights holds nothing"), "\(export.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("model.onnx")))
    }

    /// Hand-edited rows of the experiments log are errors naming the table and the row in
    /// `experiments`, `compare` and `gc`, never a crash; an infinite accuracy is no accuracy.
    @Test(arguments: [
        ("UPDATE experiments SET accuracy = 'high' WHERE id = 1", "table experiments, row id 1: accuracy: expected a number, found the text 'high'"),
        ("UPDATE experiments SET sweep = x'00ff' WHERE id = 1", "table experiments, row id 1: sweep: expected text, found a blob of 2 bytes"),
        ("UPDATE experiments SET macro_f1 = x'01' WHERE id = 1", "table experiments, row id 1: macro_f1: expected a number, found a blob of 1 bytes"),
        ("UPDATE experiments SET accuracy = 9e999 WHERE id = 1", "table experiments, row id 1: column accuracy: expected a number from 0.0 to 1.0, found inf"),
        ("UPDATE experiment_stages SET seconds = 'slow' WHERE experiment = 1 AND position = 0",
         "table experiment_stages, experiment 1, position 0: seconds: expected a number, found the text 'slow'"),
    ])
    func editedExperimentRowsAreNamed(edit: String, message: String) throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        try sqliteEdit(pipeline.artifacts.appendingPathComponent("experiments.sqlite"), edit)
        for command in [["experiments"], ["compare"], ["compare", "--json"], ["gc"]] {
            let result = try runTool("pipeline", [command[0], pipeline.file.path] + command.dropFirst())
            #expect(result.status == 1, "\(command): exit \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("experiments.sqlite: " + message), "\(command): \(result.stderr)")
        }
    }

    /// An edited views table is refused before extract runs a single image (no partial file, no
    /// lock left), and by train in the features file.
    @Test func editedViewsAreRefusedBeforeTheWork() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["run", pipeline.file.path, "--set", "preprocess.augment=1"]).status == 0)
        let artifacts = pipeline.artifacts
        func path(_ name: String) -> String { artifacts.appendingPathComponent(name).path }
        let copy = pipeline.folder.appendingPathComponent("edited.sqlite")
        try FileManager.default.copyItem(atPath: path("preprocessed.sqlite"), toPath: copy.path)
        try sqliteEdit(copy, "UPDATE views SET source = 'abc' WHERE id = (SELECT max(id) FROM views)")
        let output = pipeline.folder.appendingPathComponent("features.sqlite")
        let extract = try runTool("extract", ["--input", copy.path, "--output", output.path, "--weights", "random:1"])
        #expect(extract.status == 1 && extract.stderr.contains("table views, row id") && extract.stderr.contains("source: expected an integer, found the text 'abc'"),
                "\(extract.stderr)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: pipeline.folder.path).filter { $0.hasPrefix(".features") }
        #expect(leftovers.isEmpty && !FileManager.default.fileExists(atPath: output.path), "\(leftovers)")

        try FileManager.default.copyItem(atPath: path("features.sqlite"), toPath: output.path)
        try sqliteEdit(output, "UPDATE views SET view = 'one' WHERE id = (SELECT max(id) FROM views)")
        let train = try runTool("train", ["--input", output.path, "--output", pipeline.folder.appendingPathComponent("head.sqlite").path])
        #expect(train.status == 1 && train.stderr.contains("table views, row id") && train.stderr.contains("view: expected an integer, found the text 'one'"),
                "\(train.stderr)")
    }

    /// One value, one spelling: a grid naming a value twice in two spellings, a key set twice, and
    /// -0 against 0.
    @Test func oneValueHasOneSpelling() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let grid = try runTool("pipeline", ["sweep", pipeline.file.path, "--grid", "train.dropout=0.5,0.50,5e-1"])
        #expect(grid.status == 1 && grid.stderr.contains("train.dropout=0.5 and train.dropout=0.50 are the same values spelt twice"), "\(grid.stderr)")
        let twice = try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2", "--set", "train.dropout=0.3"])
        #expect(twice.status == 1 && twice.stderr.contains("train.dropout is already set (train.dropout=0.2)"), "\(twice.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path), "nothing ran")
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        let negativeZero = try runTool("pipeline", ["status", pipeline.file.path, "--set", "train.weight_decay=-0"])
        #expect(negativeZero.stdout.contains("train: up to date"), "\(negativeZero.stdout)")
    }

    /// gc while a sweep runs refuses (the sweep holds the cache from before its first variant's
    /// folder exists), so no variant loses its folder mid-sweep; after it, gc removes the logs of
    /// killed sweeps.
    @Test func gcWaitsForASweepAndClearsKilledSweepsLogs() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let grid = ["--grid", "train.dropout=0.2,0.5"]
        let sweep = try startTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1"] + grid)
        var refused = 0
        while sweep.process.isRunning {
            let gc = try runTool("pipeline", ["gc", pipeline.file.path, "--keep", "0"])
            if gc.status != 0 {
                #expect(gc.stderr.contains("is in use by another run"), "\(gc.stderr)")
                refused += 1
            }
            usleep(100_000)
        }
        let result = try sweep.wait()
        // gc between the variants would have removed the second's folder or its inputs: it would
        // have failed or trained again.
        #expect(result.status == 0 && !result.stdout.contains("(failed"), "\(result.stdout)\n\(result.stderr)")
        #expect(refused >= 1, "gc was never refused while the sweep ran")
        #expect(result.stdout.components(separatedBy: "train: running (").count - 1 == 2, "each variant trained once: \(result.stdout)")
        // Again, all of it from the cache or up to date, so every variant folder is there.
        #expect(try runTool("pipeline", ["sweep", pipeline.file.path] + grid).status == 0)
        let variants = pipeline.artifacts.appendingPathComponent("variants")
        // A killed sweep's log in a kept variant folder goes with the next gc.
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: variants.path).first)
        let log = variants.appendingPathComponent("\(name)/run-999999.log")
        try Data("killed".utf8).write(to: log)
        let gc = try runTool("pipeline", ["gc", pipeline.file.path])
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(!FileManager.default.fileExists(atPath: log.path))
        #expect(FileManager.default.fileExists(atPath: variants.appendingPathComponent("\(name)/head.sqlite").path))
    }

    /// Messages that name what they are about: a variant killed by a signal, a damaged record, a log
    /// that is not SQLite, a truncated kept map.
    @Test func messagesNameTheFileAndTheCause() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let sweep = try startTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1", "--grid", "train.dropout=0.2,0.5"])
        // Kill the first variant's run (a child whose arguments name its workspace) once it exists.
        var killed = false
        for _ in 0 ..< 300 where !killed && sweep.process.isRunning {
            let found = try runCommand("/usr/bin/pgrep", ["-f", "--", "--workspace \(pipeline.artifacts.path)/variants/"])
            if let pid = found.stdout.split(separator: "\n").first.flatMap({ Int32($0) }) {
                killed = kill(pid, SIGKILL) == 0
            }
            usleep(20_000)
        }
        let result = try sweep.wait()
        #expect(killed, "no variant's run was found to kill")
        #expect(result.stdout.contains("(failed: killed by signal 9 (SIGKILL))"), "\(result.stdout)")

        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        let cache = pipeline.artifacts.appendingPathComponent("cache")
        // The entry of the head the artifacts folder holds now.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: pipeline.artifacts.appendingPathComponent("manifest.json"))) as? [String: Any]
        let entry = try #require(((manifest?["stages"] as? [String: Any])?["train"] as? [String: Any])?["fingerprint"] as? String)
        try FileManager.default.removeItem(at: pipeline.artifacts.appendingPathComponent("head.sqlite"))
        try Data("{".utf8).write(to: cache.appendingPathComponent("\(entry)/record.json"))
        let damaged = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(damaged.stdout.contains("\(cache.path)/\(entry)/record.json is not a record this tool writes"), "\(damaged.stdout)")

        try Data("this is not SQLite, not at all, not even close".utf8).write(to: pipeline.artifacts.appendingPathComponent("experiments.sqlite"))
        let listed = try runTool("pipeline", ["experiments", pipeline.file.path])
        #expect(listed.status == 1 && listed.stderr.contains("\(pipeline.artifacts.path)/experiments.sqlite: cannot read the experiments log"), "\(listed.stderr)")

        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let features = folder.appendingPathComponent("features.sqlite")
        #expect(try runTool("extract", ["--input", folder.appendingPathComponent("preprocessed.sqlite").path, "--output", features.path,
                                        "--weights", "random:2", "--keep", "conv4_block6_out"]).status == 0)
        try sqliteEdit(features, "UPDATE maps SET data = substr(data, 1, 100) WHERE id = (SELECT min(id) FROM maps)")
        let train = try runTool("train", ["--input", features.path, "--output", folder.appendingPathComponent("head.sqlite").path, "--fine-tune", "conv5",
                                          "--epochs", "1", "--fine-tune-epochs", "1", "--hidden", "8"])
        #expect(train.status == 1 && train.stderr.contains("(8192 bytes), found 100 bytes (truncated?)"), "\(train.stderr)")
    }
}
