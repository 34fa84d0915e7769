import Foundation
import GRDB
import Testing

/// The notebook's question, "which layer?", through the real executables on the sample at 32x32: one
/// extract that cuts at three layers and keeps conv4_block6_out's maps, then a head on each cut and a
/// fine-tuned conv5, each evaluated; predict runs each head exactly as far as it needs.
@Suite struct ThreeRecipes {
    @Test func cutsAndFineTuningThroughTheCommands() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let extract = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:2",
                                              "--layers", "conv5_block3_out,conv3_block4_out,conv4_block6_out", "--keep", "conv4_block6_out"])
        #expect(extract.status == 0, "\(extract.stderr)")
        #expect(extract.stdout.contains("3 layers (3584 in all)"), "\(extract.stdout)")
        let features = folder.appendingPathComponent("features.sqlite")
        #expect(try sqliteValue(features, "SELECT group_concat(layer) FROM (SELECT DISTINCT layer FROM features ORDER BY layer)")
            == "conv3_block4_out,conv4_block6_out,conv5_block3_out")
        #expect(try sqliteValue(features, "SELECT count(*) FROM maps") == "199")

        // A name that is no block output, or a layer extract did not store, is refused before anything is written.
        let misspelt = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("x.sqlite"), "--weights", "random:2",
                                               "--layers", "conv4_block7_out"])
        #expect(misspelt.status != 0)
        #expect(misspelt.stderr.contains("--layers conv4_block7_out: 'conv4_block7_out' is not one of conv2_block1_out ... conv5_block3_out"), "\(misspelt.stderr)")
        let absent = try runTool("train", ["--input", path("features.sqlite"), "--output", path("x.sqlite"), "--layers", "conv2_block3_out"])
        #expect(absent.status != 0)
        #expect(absent.stderr.contains("not conv2_block3_out: run extract with --layers"), "\(absent.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("x.sqlite")))

        // One head per cut: each records its layers and its input width, and predict agrees with the
        // stored predictions exactly (the same backbone path, cut at the same place).
        for (layers, width) in [("conv3_block4_out", 512), ("conv4_block6_out", 1024), ("conv3_block4_out,conv5_block3_out", 2560)] {
            let head = path("head-\(layers).sqlite")
            let train = try runTool("train", ["--input", path("features.sqlite"), "--output", head, "--layers", layers, "--hidden", "32", "--epochs", "3"])
            #expect(train.status == 0, "\(train.stderr)")
            #expect(train.stdout.contains("test: accuracy"), "\(train.stdout)")
            let url = URL(fileURLWithPath: head)
            #expect(try sqliteValue(url, "SELECT value FROM params WHERE key = 'layers'") == layers)
            #expect(try sqliteValue(url, "SELECT inputs FROM layers WHERE layer = 0") == String(width))
            try expectPredictAgrees(head: url, tolerance: 0)
        }

        // Fine-tuning conv5 on the kept maps: its ten convolutions stored, predict runs them from the
        // image and agrees with the evaluation (which ran on the float16 maps) to float16's precision.
        let tuned = path("head-tuned.sqlite")
        // (Without validation every fine-tuning epoch is kept; with it, only one that beats the frozen head.)
        let train = try runTool("train", ["--input", path("features.sqlite"), "--output", tuned, "--fine-tune", "conv5", "--hidden", "32", "--epochs", "2",
                                          "--fine-tune-epochs", "2", "--validation", "0"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("fine-tuning conv5 (its 10 convolutions' kernels and biases; BatchNorm frozen) with the head, from its epoch 2"), "\(train.stdout)")
        #expect(train.stdout.split(separator: "\n").filter { $0.hasPrefix("epoch") }.count == 4, "two epochs of each phase: \(train.stdout)")
        let tunedURL = URL(fileURLWithPath: tuned)
        #expect(try sqliteValue(tunedURL, "SELECT count(*) FROM backbone_weights") == "10")
        #expect(try sqliteValue(tunedURL, "SELECT value FROM params WHERE key = 'fine_tune'") == "conv5")
        try expectPredictAgrees(head: tunedURL, tolerance: 2e-3)
        let report = try String(contentsOfFile: path("report.html"), encoding: .utf8)
        #expect(report.contains("conv5 fine-tuned"), "the report says what was trained")

        // Fine-tuning needs the kept maps, and the head on conv5's output.
        #expect(try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("plain.sqlite"), "--weights", "random:2"]).status == 0)
        let noMaps = try runTool("train", ["--input", path("plain.sqlite"), "--output", path("x.sqlite"), "--fine-tune", "conv5"])
        #expect(noMaps.stderr.contains("keeps no conv4_block6_out maps (it keeps none)"), "\(noMaps.stderr)")
        let wrongCut = try runTool("train", ["--input", path("features.sqlite"), "--output", path("x.sqlite"), "--fine-tune", "conv5", "--layers", "conv4_block6_out"])
        #expect(wrongCut.stderr.contains("trains the head on its output, conv5_block3_out"), "\(wrongCut.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("x.sqlite")))
    }

    /// The pipeline file takes the same keys: a cut and kept maps for extract, fine-tuning for train.
    @Test func thePipelineFileTakesTheSameKeys() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try """
        name: e2e
        artifacts: artifacts
        stages:
          ingest: {train: train.csv, test: test.csv}
          preprocess: {size: 32}
          extract: {weights: "random:1", layers: [conv4_block6_out, conv5_block3_out], keep: conv4_block6_out}
          train: {hidden: [16], epochs: 2, validation: 0, fine_tune: conv5, fine_tune_epochs: 1, fine_tune_learning_rate: 1.0e-4}
        """.write(to: pipeline.file, atomically: true, encoding: .utf8)
        #expect(try pipeline.run() == ["ingest", "preprocess", "extract", "train"])
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        #expect(try sqliteValue(head, "SELECT count(*) FROM backbone_weights") == "10")
        #expect(try sqliteValue(head, "SELECT value FROM params WHERE key = 'fine_tune_learning_rate'") == "0.0001")
        // A misspelt layer is the file's error, with its line.
        try String(contentsOf: pipeline.file, encoding: .utf8).replacingOccurrences(of: "keep: conv4_block6_out", with: "keep: conv4_block9_out")
            .write(to: pipeline.file, atomically: true, encoding: .utf8)
        let result = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("extract.keep: 'conv4_block9_out' is not one of conv2_block1_out ... conv5_block3_out"), "\(result.stderr)")
    }

    /// predict --csv on the test rows gives each row the letter and confidence stored for it.
    func expectPredictAgrees(head: URL, tolerance: Double) throws {
        let predict = try runTool("predict", ["--model", head.path, "--csv", sample("test.csv"), "--json", "--top", "1"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(predict.stdout.utf8)) as! [String: Any]
        let predictions = json["predictions"] as! [[String: Any]]
        var configuration = Configuration()
        configuration.readonly = true
        let stored = try DatabaseQueue(path: head.path, configuration: configuration).read {
            try Row.fetchAll($0, sql: "SELECT predicted, confidence FROM predictions ORDER BY id")
        }
        #expect(predictions.count == stored.count && stored.count == 11)
        // On OpenBLAS, predict (other batches) and train's evaluation differ in the last bits.
        let bound = madeOnOurKernel(head.deletingLastPathComponent().appendingPathComponent("features.sqlite")) ? tolerance : max(tolerance, 1e-4)
        for (prediction, row) in zip(predictions, stored) {
            let top = (prediction["top"] as! [[String: Any]])[0]
            #expect(top["label"] as? Int == row["predicted"] as Int, "\(head.lastPathComponent)")
            let confidence = top["probability"] as! Double, expected = row["confidence"] as Double
            // Both are float32 values printed or stored as doubles: compared as float32.
            #expect(abs(Float(confidence) - Float(expected)) <= Float(bound), "\(head.lastPathComponent): predict \(confidence), stored \(expected)")
        }
    }
}

/// `train --fine-tune-precision bf16` through the executable: trains, records it, evaluates in float
/// (so predict agrees as for a float fine-tuning), and is refused where the CPU cannot.
@Suite struct FineTunePrecisionCommand {
    @Test(.enabled(if: ExtractPrecision.bf16Available, "needs a CPU with AVX512_BF16"))
    func bf16FineTuningTrainsAndPredictAgrees() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        #expect(try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:2",
                                        "--keep", "conv4_block6_out"]).status == 0)
        let train = try runTool("train", ["--input", path("features.sqlite"), "--output", path("head.sqlite"), "--fine-tune", "conv5", "--hidden", "32",
                                          "--epochs", "2", "--fine-tune-epochs", "2", "--validation", "0", "--fine-tune-precision", "bf16"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("products in bf16"), "\(train.stdout)")
        let head = URL(fileURLWithPath: path("head.sqlite"))
        #expect(try sqliteValue(head, "SELECT value FROM params WHERE key = 'fine_tune_precision'") == "bf16")
        #expect(try sqliteValue(head, "SELECT count(*) FROM backbone_weights") == "10")
        try ThreeRecipes().expectPredictAgrees(head: head, tolerance: 2e-3)

        let refused = try runTool("train", ["--input", path("features.sqlite"), "--output", path("x.sqlite"), "--fine-tune", "conv5", "--fine-tune-precision", "bf16"],
                                  environment: ["SIGNTRANSFER_GEMM": "blas"])
        #expect(refused.status != 0 && refused.stderr.contains("--fine-tune-precision bf16: this CPU has no AVX512_BF16"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("x.sqlite")))
    }
}
