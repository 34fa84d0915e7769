import Foundation
import Testing

/// What the redesign promises a user: a pipeline's folder can move, a folder can be an input, the
/// dataset's own class names reach the report and predict, a backbone is one parameter.
@Suite(.serialized) struct RedesignedPipelines {
    /// A pipeline folder copied elsewhere (the manifest's paths are relative to the artifacts folder)
    /// is up to date there, and the original is untouched.
    @Test func aCopiedPipelineFolderIsUpToDate() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let copy = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: copy) }
        let moved = copy.appendingPathComponent("moved")
        try FileManager.default.copyItem(at: pipeline.folder, to: moved)
        let manifest = try String(contentsOf: moved.appendingPathComponent("artifacts/manifest.json"), encoding: .utf8)
        #expect(!manifest.contains(pipeline.folder.appendingPathComponent("artifacts").path + "/"), "artifact paths are relative")
        let again = try runTool("pipeline", ["run", moved.appendingPathComponent("pipeline.yaml").path])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("nothing to do"), "\(again.stdout)")
        #expect(try pipeline.run().isEmpty)
    }

    /// `--classes digits` names the labels; the report, metrics.json and predict answer in those
    /// names (the sample's labels 0-9 read as digits, the rest refused by ingest, naming the row).
    @Test func theDatasetsNamesReachTheReportAndPredict() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let names = pipeline.folder.appendingPathComponent("names.txt")
        let letters = (0 ... 24).map { "sign-\($0)" }
        try (letters.joined(separator: "\n") + "\n").write(to: names, atomically: true, encoding: .utf8)
        let text = try String(contentsOf: pipeline.file, encoding: .utf8)
            .replacingOccurrences(of: "    test: test.csv\n", with: "    test: test.csv\n    classes_file: names.txt\n")
        try text.write(to: pipeline.file, atomically: true, encoding: .utf8)
        try pipeline.run()
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        #expect(try sqliteValue(head, "SELECT name FROM classes WHERE label = 24") == "sign-24")
        let metrics = try String(contentsOf: pipeline.artifacts.appendingPathComponent("metrics.json"), encoding: .utf8)
        #expect(metrics.contains("\"sign-0\""))
        let report = try String(contentsOf: pipeline.artifacts.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.contains("sign-3"))
        let predicted = try runTool("predict", ["--model", head.path, "--csv", pipeline.folder.appendingPathComponent("test.csv").path, "--json"])
        #expect(predicted.status == 0, "\(predicted.stderr)")
        #expect(predicted.stdout.contains("\"class\" : \"sign-"), "\(predicted.stdout.prefix(400))")
        // Renaming a class reruns what shows names, and only that far.
        try (letters.map { $0 == "sign-3" ? "D" : $0 }.joined(separator: "\n") + "\n").write(to: names, atomically: true, encoding: .utf8)
        #expect(try pipeline.run() == ["ingest", "preprocess", "extract", "train"])
        #expect(try sqliteValue(head, "SELECT name FROM classes WHERE label = 3") == "D")

        let digits = try runTool("ingest", ["--train", pipeline.train.path, "--classes", "digits",
                                            "--output", pipeline.folder.appendingPathComponent("digits.sqlite").path])
        #expect(digits.status != 0)
        #expect(digits.stderr.contains("expected a label from 0 to 9, found 1"), "\(digits.stderr)")
    }

    /// An unknown backbone is refused before anything runs, naming the ones there are.
    @Test func theBackboneIsOneParameter() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let text = try String(contentsOf: pipeline.file, encoding: .utf8)
            .replacingOccurrences(of: "  extract:\n", with: "  extract:\n    backbone: vgg16\n")
        try text.write(to: pipeline.file, atomically: true, encoding: .utf8)
        let result = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("backbone") && result.stderr.contains("resnet50"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path))
        // Written out at its default, it changes nothing: resnet50 is what ran before the key existed.
        try String(contentsOf: pipeline.file, encoding: .utf8).replacingOccurrences(of: "backbone: vgg16", with: "backbone: resnet50")
            .write(to: pipeline.file, atomically: true, encoding: .utf8)
        try pipeline.run()
        try String(contentsOf: pipeline.file, encoding: .utf8).replacingOccurrences(of: "    backbone: resnet50\n", with: "")
            .write(to: pipeline.file, atomically: true, encoding: .utf8)
        #expect(try pipeline.run().isEmpty)
    }
}
