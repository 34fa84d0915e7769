import Foundation
import GRDB
import Testing

/// Augmented views through the real executables on the sample at 32x32: preprocess makes them,
/// extract carries them, train samples them and never validates or tests on them.
@Suite struct AugmentedSample {
    @Test func viewsFlowFromPreprocessToTheReport() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let run = try runTool("pipeline", ["run", pipeline.file.path, "--set", "preprocess.augment=2", "--set", "preprocess.rotation=15"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("preprocess: 376 views of the training images (2 each)"), "\(run.stdout)")
        #expect(run.stdout.contains("train: 376 augmented views of 188 training images: each epoch trains on one of each image's views"), "\(run.stdout)")
        let features = pipeline.artifacts.appendingPathComponent("features.sqlite")
        #expect(try sqliteValue(features, "SELECT count(DISTINCT id) FROM features") == "575")
        #expect(try sqliteValue(features, "SELECT count(*) FROM views WHERE view > 0") == "376")
        #expect(try sqliteValue(features, "SELECT count(*) FROM features f JOIN views v USING (id) WHERE f.split != 'train'") == "0")
        #expect(try sqliteValue(features, "SELECT max(abs(rotation)) <= 15 FROM views") == "1")
        // Every test image is evaluated, and only those: no view is a prediction.
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        #expect(try sqliteValue(head, "SELECT count(*) FROM predictions") == "11")
        #expect(try sqliteValue(head, "SELECT value FROM params WHERE key = 'views_used'") == "sample (376 views of 188 images)")
        let report = try String(contentsOf: pipeline.artifacts.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.contains("Augmentation: 376 views of the 188 training images (2 each"))
        #expect(report.contains("augment_ranges"), "the report's provenance gives the ranges")

        let all = try runTool("pipeline", ["run", pipeline.file.path, "--set", "preprocess.augment=2", "--set", "preprocess.rotation=15",
                                           "--set", "train.views=all"])
        #expect(all.status == 0 && all.stdout.contains("train: running (parameter views changed from sample to all)"), "\(all.stdout)")
        #expect(all.stdout.contains("each epoch trains on all of them"))
        // Back to no views: the first run's outputs, from the cache.
        let plain = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(plain.status == 0 && plain.stdout.contains("preprocess: running (never run)") == false, "\(plain.stdout)")
        #expect(try sqliteValue(pipeline.artifacts.appendingPathComponent("features.sqlite"), "SELECT count(*) FROM sqlite_master WHERE name = 'views'") == "0")
    }

    @Test func badAugmentValuesAreRefused() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let images = folder.appendingPathComponent("images.sqlite").path
        for (arguments, message) in [(["--augment", "-1"], "--augment -1: expected 0 to 64"), (["--rotation", "200"], "--rotation 200: expected 0.0 to 180.0"),
                                     (["--flip", "yes"], "--flip yes: expected one of off, on")] {
            let result = try runTool("preprocess", ["--input", images, "--output", folder.appendingPathComponent("x.sqlite").path] + arguments)
            #expect(result.status != 0 && result.stderr.contains(message), "\(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("x.sqlite").path))
    }
}
