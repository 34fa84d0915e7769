import Foundation
import Testing

/// MobileNetV2 and EfficientNetB0 through the real executables on the sample: one key picks the
/// backbone, its nodes are what a cut may take, train, predict and export work on its features, what
/// it does not offer (fine-tuning) is refused by name, and one sweep compares all three.
@Suite struct MobileBackbones {
    func pipeline(backbone: String) throws -> SamplePipeline {
        let pipeline = try SamplePipeline()
        let text = try String(contentsOf: pipeline.file, encoding: .utf8)
            .replacingOccurrences(of: "  extract:\n", with: "  extract:\n    backbone: \(backbone)\n")
        try text.write(to: pipeline.file, atomically: true, encoding: .utf8)
        return pipeline
    }

    @Test(arguments: ["mobilenetv2", "efficientnetb0"])
    func aPipelineRunsOnIt(backbone: String) throws {
        let pipeline = try self.pipeline(backbone: backbone)
        defer { pipeline.remove() }
        #expect(try pipeline.run() == ["ingest", "preprocess", "extract", "train"])
        let features = pipeline.artifacts.appendingPathComponent("features.sqlite")
        #expect(try sqliteValue(features, "SELECT value FROM backbone WHERE key = 'backbone'") == backbone)
        #expect(try sqliteValue(features, "SELECT length(vector) / 4 FROM features LIMIT 1") == "1280")
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        let predicted = try runTool("predict", ["--model", head.path, "--csv", pipeline.folder.appendingPathComponent("test.csv").path, "--json"])
        #expect(predicted.status == 0, "\(predicted.stderr)")
        #expect(predicted.stdout.contains("\"class\""), "\(predicted.stdout.prefix(300))")
        let report = try String(contentsOf: pipeline.artifacts.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.contains(backbone == "mobilenetv2" ? "MobileNetV2" : "EfficientNetB0"))

        // Export writes its graph (ONNX Runtime checks it against predict in scripts/test-onnx.sh).
        let model = pipeline.folder.appendingPathComponent("model.onnx")
        let exported = try runTool("export", ["--model", head.path, "--output", model.path])
        #expect(exported.status == 0, "\(exported.stderr)")
        let bytes = try Data(contentsOf: model)
        #expect(bytes.count > 1_000_000)
        #expect(bytes.range(of: Data((backbone == "mobilenetv2" ? "block_16_depthwise_W" : "block7a_se_expand_W").utf8)) != nil)
        // What it does not offer is refused, naming what there is.
        let tuned = try runTool("train", ["--input", features.path, "--output", pipeline.folder.appendingPathComponent("tuned.sqlite").path,
                                          "--fine-tune", "conv5"])
        #expect(tuned.status != 0)
        #expect(tuned.stderr.contains("\(backbone) offers no fine-tuning"), "\(tuned.stderr)")
        let bf16 = try runTool("extract", ["--input", pipeline.artifacts.appendingPathComponent("preprocessed.sqlite").path, "--output",
                                           pipeline.folder.appendingPathComponent("bf16.sqlite").path, "--backbone", backbone, "--weights", "random:1",
                                           "--precision", "bf16"])
        #expect(bf16.status != 0)
        #expect(bf16.stderr.contains("precision bf16: it does not pay for \(backbone)"), "\(bf16.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.folder.appendingPathComponent("bf16.sqlite").path))
    }

    /// A cut takes the backbone's own node names; another backbone's are refused with the choices.
    @Test func aCutTakesItsNodes() throws {
        let pipeline = try self.pipeline(backbone: "mobilenetv2")
        defer { pipeline.remove() }
        let text = try String(contentsOf: pipeline.file, encoding: .utf8)
            .replacingOccurrences(of: "    backbone: mobilenetv2\n", with: "    backbone: mobilenetv2\n    layers: [block_5_add, block_12_add]\n")
            .replacingOccurrences(of: "  train:\n", with: "  train:\n    layers: [block_5_add, block_12_add]\n")
        try text.write(to: pipeline.file, atomically: true, encoding: .utf8)
        try pipeline.run()
        let features = pipeline.artifacts.appendingPathComponent("features.sqlite")
        #expect(try sqliteValue(features, "SELECT group_concat(layer || ':' || (length(vector) / 4)) FROM (SELECT DISTINCT layer, vector FROM features GROUP BY layer ORDER BY layer)")
            == "block_12_add:96,block_5_add:32")
        #expect(try sqliteValue(pipeline.artifacts.appendingPathComponent("head.sqlite"), "SELECT value FROM params WHERE key = 'layers'")
            == "block_5_add,block_12_add")
        let wrong = text.replacingOccurrences(of: "[block_5_add, block_12_add]", with: "[conv4_block6_out]")
        try wrong.write(to: pipeline.file, atomically: true, encoding: .utf8)
        let result = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("conv4_block6_out is not a block output of mobilenetv2; choose from expanded_conv_project_BN ... out_relu"),
                "\(result.stderr)")
    }

    /// One sweep over the three backbones; compare shows each with its accuracy and time.
    @Test func oneSweepComparesTheBackbones() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let sweep = try runTool("pipeline", ["sweep", pipeline.file.path, "--jobs", "2", "--grid", "extract.backbone=resnet50,mobilenetv2,efficientnetb0"])
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let compare = try runTool("pipeline", ["compare", pipeline.file.path, "--json"])
        #expect(compare.status == 0, "\(compare.stderr)")
        let runs = try JSONSerialization.jsonObject(with: Data(compare.stdout.utf8)) as? [[String: Any]] ?? []
        let text = compare.stdout
        for backbone in ["resnet50", "mobilenetv2", "efficientnetb0"] {
            #expect(text.contains("extract.backbone=\(backbone)") || text.contains("\"extract.backbone\" : \"\(backbone)\""), "\(text.prefix(600))")
        }
        #expect(runs.count == 3, "\(text.prefix(600))")
    }
}
