import Foundation
import GRDB
import Testing

/// Experiments through the real `pipeline` executable on the sample at sizes 32 and 40: variants with
/// --set, the run cache, sweeps (in parallel, twice at once, killed and resumed), gc and compare.
@Suite struct Experiments {
    /// Lines of `output` that say a stage ran (`STAGE: running (...)`), by stage.
    func runs(_ output: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in output.split(separator: "\n") where line.contains(": running (") {
            counts[String(line.prefix { $0 != ":" }), default: 0] += 1
        }
        return counts
    }

    func experiments(_ pipeline: SamplePipeline) throws -> [[String: Any]] {
        let result = try runTool("pipeline", ["compare", pipeline.file.path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    }

    static let grid = ["--grid", "preprocess.size=32,40", "--grid", "train.dropout=0.2,0.5"]

    @Test func sweepMakesEachOutputOnceAndAgainNothing() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let sweep = try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "2"] + Self.grid)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        // Two sizes: two preprocesses and two extracts; four heads; one ingest.
        #expect(runs(sweep.stdout) == ["ingest": 1, "preprocess": 2, "extract": 2, "train": 4], "\(sweep.stdout)")
        for variant in ["preprocess.size=32 train.dropout=0.2", "preprocess.size=40 train.dropout=0.2",
                        "preprocess.size=32 train.dropout=0.5", "preprocess.size=40 train.dropout=0.5"] {
            #expect(sweep.stdout.contains(": \(variant) =="), "a heading names each variant: \(sweep.stdout)")
        }
        let recorded = try experiments(pipeline)
        #expect(recorded.count == 4)
        #expect(Set(recorded.compactMap { ($0["params"] as? [String: String]).map { "\($0["preprocess.size"] ?? "")/\($0["train.dropout"] ?? "")" } })
                == ["32/0.2", "32/0.5", "40/0.2", "40/0.5"])
        #expect(recorded.allSatisfy { $0["accuracy"] is Double }, "each records the head's test accuracy")

        // The same sweep again runs nothing: every stage of every variant comes from the cache or is up to date.
        let again = try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "2"] + Self.grid)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(runs(again.stdout).isEmpty, "\(again.stdout)")
        #expect(try experiments(pipeline).count == 8)

        // The sweep leaves the artifacts folder alone; --set puts a variant there from the cache, and
        // back again; its head is the sweep's, byte for byte.
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        let variant = try runTool("pipeline", ["run", pipeline.file.path, "--set", "preprocess.size=40", "--set", "train.dropout=0.2"])
        #expect(variant.status == 0, "\(variant.stderr)")
        #expect(runs(variant.stdout).isEmpty, "\(variant.stdout)")
        #expect(variant.stdout.contains("variant: preprocess.size=40 train.dropout=0.2"))
        #expect(variant.stdout.contains("extract: restored from the cache (its input from preprocess changed"), "\(variant.stdout)")
        #expect(variant.stdout.contains("train: restored from the cache (parameter dropout changed from 0.5 to 0.2"), "\(variant.stdout)")
        let swept = pipeline.artifacts.appendingPathComponent("variants/preprocess.size=40_train.dropout=0.2/head.sqlite")
        #expect(try Data(contentsOf: pipeline.artifacts.appendingPathComponent("head.sqlite")) == Data(contentsOf: swept))
        let back = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(runs(back.stdout).isEmpty && back.stdout.contains("train: restored from the cache"), "\(back.stdout)")
    }

    @Test func compareShowsWhatDiffersAndWritesAPage() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1", "--grid", "train.dropout=0.2,0.5", "--grid", "train.hidden=[16],[32,16]"]).status == 0)
        let compare = try runTool("pipeline", ["compare", pipeline.file.path])
        #expect(compare.status == 0, "\(compare.stderr)")
        let lines = compare.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["exp", "train.dropout", "train.hidden", "accuracy", "macro-F1", "time", "cache", "hits"])
        #expect(lines.contains { $0.hasPrefix("4 ") && $0.contains("0.5") && $0.contains("32,16") && $0.contains("%") }, "\(compare.stdout)")
        let page = try String(contentsOf: pipeline.artifacts.appendingPathComponent("compare.html"), encoding: .utf8)
        #expect(page.contains("accuracy against train.dropout") && page.contains("accuracy against train.hidden"))
        #expect(page.components(separatedBy: "<polyline").count - 1 == 16, "four charts (validation and training, accuracy and loss) of four experiments' curves")
        #expect(page.contains("test images") && page.contains("(1 = 9.09 pts)"), "what one of the 11 test images is worth")
        #expect(page.contains("href=\"cache/") && page.contains(">report</a>"), "each run's report, from the run cache")
        #expect(page.contains("Per-class F1"))
        #expect(!page.contains("src=\"http") && !page.contains("href=\"http"), "self-contained")

        let some = try runTool("pipeline", ["compare", pipeline.file.path, "2", "3", "--json"])
        let entries = try JSONSerialization.jsonObject(with: Data(some.stdout.utf8)) as? [[String: Any]]
        #expect(entries?.map { $0["id"] as? Int } == [2, 3])
        let missing = try runTool("pipeline", ["compare", pipeline.file.path, "9"])
        #expect(missing.status != 0 && missing.stderr.contains("no experiment 9 (recorded: 1 to 4)"), "\(missing.stderr)")
        let listed = try runTool("pipeline", ["experiments", pipeline.file.path])
        // A line saying what the columns are, then a line an experiment.
        #expect(listed.stdout.split(separator: "\n").count == 1 + 4 && listed.stdout.contains("train.dropout=0.2 train.hidden=16"), "\(listed.stdout)")
        #expect(listed.stdout.hasPrefix("id, started, what differed"), "\(listed.stdout)")
    }

    /// A run that makes or restores nothing records nothing; a run of the file after an edit is
    /// named by what the edit changed.
    @Test func onlyRunsThatDidSomethingAreRecordedAndEditsAreNamed() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).stdout.contains("experiment 1 recorded"))
        let again = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(again.status == 0 && again.stdout.contains("everything was up to date: no experiment recorded"), "\(again.stdout)")
        try pipeline.write(epochs: 4)
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).stdout.contains("experiment 2 recorded"))
        let listed = try runTool("pipeline", ["experiments", pipeline.file.path]).stdout.split(separator: "\n")
        #expect(listed.count == 1 + 2, "\(listed)")
        #expect(listed.last?.contains("file edited: train.epochs=4 (was 3)") == true, "\(listed)")
        #expect(listed.dropFirst().first?.contains("(the file as is)") == true, "\(listed)")
    }

    @Test func badSettingsAreRefusedBeforeAnythingRuns() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        for (arguments, message) in [
            (["--set", "train.dropot=0.2"], "--set train.dropot=0.2: unknown key 'dropot' in stage train"),
            (["--set", "train.dropout=lots"], "--set train.dropout=lots: train.dropout: expected a number, found 'lots'"),
            (["--set", "trian.dropout=0.2"], "--set trian.dropout=0.2: unknown stage 'trian'"),
            (["--set", "dropout=0.2"], "--set dropout=0.2: expected STAGE.KEY=VALUE"),
            (["--set", "train.hidden=[32,x]"], "--set train.hidden=[32,x]: train.hidden: expected a list of whole numbers"),
        ] {
            let result = try runTool("pipeline", ["run", pipeline.file.path] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        let sweep = try runTool("pipeline", ["sweep", pipeline.file.path, "--grid", "train.dropout=0.2,2"])
        #expect(sweep.status != 0 && sweep.stderr.contains("--set train.dropout=2: train.dropout: expected 0.0 to"), "\(sweep.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path), "nothing was made")
    }

    @Test func gcFreesSpaceAndARemovedVariantIsMadeAgainIdentically() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1"] + Self.grid).status == 0)
        let before = try experiments(pipeline)
        let gc = try runTool("pipeline", ["gc", pipeline.file.path, "--keep", "1"])
        #expect(gc.status == 0, "\(gc.stderr)")
        let freed = gc.stdout.split(separator: " ").reversed().dropFirst().first.flatMap { Double($0) } ?? 0
        #expect(gc.stdout.contains("removed 5 cached outputs and 3 variant folders") && freed > 0.1, "\(gc.stdout)")
        // Experiment 1 (the first variant run) lost its outputs: run again, it is made again, identically.
        let first = before[0]
        let params = first["params"] as? [String: String] ?? [:]
        let again = try runTool("pipeline", ["run", pipeline.file.path, "--set", "preprocess.size=\(params["preprocess.size"]!)",
                                             "--set", "train.dropout=\(params["train.dropout"]!)"])
        #expect(runs(again.stdout) == ["preprocess": 1, "extract": 1, "train": 1], "\(again.stdout)")
        let recorded = (first["stages"] as? [[String: Any]] ?? []).map { $0["content"] as? String }
        let now = (try experiments(pipeline).last?["stages"] as? [[String: Any]] ?? []).map { $0["content"] as? String }
        #expect(recorded == now && recorded.count == 4)
        // A run in progress shares the cache's use lock: gc refuses rather than prune under it.
        let descriptor = open(pipeline.artifacts.appendingPathComponent("cache/.use.lock").path, O_RDWR)
        #expect(descriptor >= 0 && flock(descriptor, LOCK_SH) == 0)
        let refused = try runTool("pipeline", ["gc", pipeline.file.path])
        close(descriptor)
        #expect(refused.status != 0 && refused.stderr.contains("is in use by another run"), "\(refused.stderr)")
    }

    /// The cache and the experiments log are distrusted like every artifact: a damaged entry is
    /// dropped and the stage runs; an edited log row is an error naming the table and the row.
    @Test func damagedCacheEntriesAndEditedExperimentsAreCaught() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        #expect(try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2"]).status == 0)
        #expect(try runTool("pipeline", ["run", pipeline.file.path]).status == 0)
        // The dropout 0.2 head now lives only in its cache entry: damage it, and its record in another entry.
        let entries = try FileManager.default.contentsOfDirectory(atPath: pipeline.artifacts.appendingPathComponent("cache").path).filter { $0.count == 64 }
        let heads = try entries.filter { entry in
            let head = pipeline.artifacts.appendingPathComponent("cache/\(entry)/head.sqlite")
            guard FileManager.default.fileExists(atPath: head.path) else { return false }
            return try (FileManager.default.attributesOfItem(atPath: head.path)[.referenceCount] as? Int) == 1
        }
        try #require(heads.count == 1, "one head cached alone: \(entries)")
        let handle = try FileHandle(forWritingTo: pipeline.artifacts.appendingPathComponent("cache/\(heads[0])/head.sqlite"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("damage".utf8))
        try handle.close()
        let again = try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("train: the cache's copy is damaged and was dropped") && again.stdout.contains("train: running ("), "\(again.stdout)")
        // A record that is not JSON: the same.
        try Data("{".utf8).write(to: pipeline.artifacts.appendingPathComponent("cache/\(heads[0])/record.json"))
        let back = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(back.stdout.contains("train: restored from the cache") || back.stdout.contains("train: up to date"), "\(back.stdout)")
        let twice = try runTool("pipeline", ["run", pipeline.file.path, "--set", "train.dropout=0.2"])
        #expect(twice.stdout.contains("train: the cache's copy is damaged and was dropped") && twice.stdout.contains("train: running ("), "\(twice.stdout)")

        try sqliteEdit(pipeline.artifacts.appendingPathComponent("experiments.sqlite"), "UPDATE experiments SET changes = 'not json' WHERE id = 2")
        let listed = try runTool("pipeline", ["experiments", pipeline.file.path])
        #expect(listed.status != 0 && listed.stderr.contains("experiments.sqlite: table experiments, row id 2: column changes is not the JSON this tool writes"), "\(listed.stderr)")
    }

    @Test func twoSweepsAtOnceMakeEachOutputOnce() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let first = try startTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "2"] + Self.grid)
        let second = try startTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "2"] + Self.grid)
        let (one, two) = (try first.wait(), try second.wait())
        #expect(one.status == 0 && two.status == 0, "\(one.stderr) \(two.stderr)")
        let both = runs(one.stdout + two.stdout)
        #expect(both == ["ingest": 1, "preprocess": 2, "extract": 2, "train": 4], "\(one.stdout)\n\(two.stdout)")
        #expect(try experiments(pipeline).count == 8)
        // Every cached entry is whole: its files match its record.
        let again = try runTool("pipeline", ["sweep", pipeline.file.path] + Self.grid)
        #expect(again.status == 0 && runs(again.stdout).isEmpty && !again.stdout.contains("damaged"), "\(again.stdout)")
    }

    @Test func killedSweepResumesWithWhatIsMissing() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        // kill -9 of the sweep alone: its variants' runs die with it (they do not run on unseen).
        let sweep = try launchTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1"] + Self.grid)
        let log = pipeline.artifacts.appendingPathComponent("experiments.sqlite")
        var recorded = 0
        for _ in 0 ..< 600 where recorded == 0 && sweep.isRunning {
            Thread.sleep(forTimeInterval: 0.02)
            recorded = (try? sqliteValue(log, "SELECT count(*) FROM experiments")).flatMap { $0.flatMap(Int.init) } ?? 0
        }
        kill(sweep.processIdentifier, SIGKILL)
        sweep.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.5)
        #expect(recorded >= 1, "the first variant finished before the kill")
        let done = try sqliteValue(log, "SELECT count(*) FROM experiments").flatMap(Int.init) ?? 0
        try #require(done < 4, "the sweep was killed before its end")

        let resumed = try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "1"] + Self.grid)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let counts = runs(resumed.stdout)
        #expect(counts["ingest"] == nil && (counts["extract"] ?? 0) <= 1 && (counts["train"] ?? 0) <= 4 - done, "\(resumed.stdout)")
        // A variant finished before the kill runs nothing: its folder still holds its outputs. Which
        // one finished is read from the log (not assumed from the schedule), and its section found by
        // its name, whatever its place in the resumed sweep.
        let finished = try #require(try experiments(pipeline).first?["params"] as? [String: String])
        let name = "preprocess.size=\(finished["preprocess.size"] ?? "?") train.dropout=\(finished["train.dropout"] ?? "?")"
        let sections = resumed.stdout.components(separatedBy: "== variant ").dropFirst()
        let section = try #require(sections.first { $0.split(separator: "\n").first?.hasSuffix(": \(name) ==") == true }, "no section for \(name): \(resumed.stdout)")
        #expect(!section.contains("running") && section.contains("train: up to date, skipped"), "\(section)")
        let all = try experiments(pipeline)
        #expect(all.suffix(4).allSatisfy { $0["accuracy"] is Double })
    }
}

/// A tool started in the background with its output going to files, to be waited for.
struct StartedTool {
    var process: Process
    var folder: URL

    func wait() throws -> ToolResult {
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: folder) }
        return ToolResult(status: process.terminationStatus,
                          stdout: try String(contentsOf: folder.appendingPathComponent("stdout"), encoding: .utf8),
                          stderr: try String(contentsOf: folder.appendingPathComponent("stderr"), encoding: .utf8))
    }
}

func startTool(_ name: String, _ arguments: [String]) throws -> StartedTool {
    let process = Process()
    process.executableURL = productsFolder.appendingPathComponent(name)
    process.arguments = arguments
    let folder = try temporaryFolder()
    for stream in ["stdout", "stderr"] { _ = FileManager.default.createFile(atPath: folder.appendingPathComponent(stream).path, contents: nil) }
    process.standardOutput = try FileHandle(forWritingTo: folder.appendingPathComponent("stdout"))
    process.standardError = try FileHandle(forWritingTo: folder.appendingPathComponent("stderr"))
    try process.run()
    return StartedTool(process: process, folder: folder)
}
