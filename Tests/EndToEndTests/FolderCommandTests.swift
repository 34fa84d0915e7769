import Foundation
import ONNXProto
import SwiftProtobuf
import Testing

/// A user's own photos through every stage: `pipeline run` on a folder pipeline, then predict on
/// JPEGs, answers in the folder's class names.
@Suite(.serialized) struct FolderPipelines {
    static let photos = URL(fileURLWithPath: sample("")).deletingLastPathComponent().appendingPathComponent("asl-colour-4")

    @Test func photosRunThroughEveryStageAndPredictAnswersInTheirNames() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Self.photos, to: folder.appendingPathComponent("photos"))
        let file = folder.appendingPathComponent("pipeline.yaml")
        try """
        name: folder-e2e
        artifacts: artifacts
        stages:
          ingest:
            folder: photos
          preprocess:
            size: 32
            crop_to_aspect_ratio: on
          extract:
            weights: random:1
          train:
            hidden: [16]
            epochs: 3
        """.write(to: file, atomically: true, encoding: .utf8)
        let run = try runTool("pipeline", ["run", file.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("training on 72 images, 8 held out for validation"), "\(run.stdout)")
        let artifacts = folder.appendingPathComponent("artifacts")
        #expect(try sqliteValue(artifacts.appendingPathComponent("images.sqlite"), "SELECT group_concat(name) FROM classes") == "A,B,C,D")
        #expect(try sqliteValue(artifacts.appendingPathComponent("preprocessed.sqlite"), "SELECT value FROM params WHERE key = 'source_geometry'") == "200x200x3")
        // The crop travels with the features to the head, so predict crops as preprocess did.
        #expect(try sqliteValue(artifacts.appendingPathComponent("head.sqlite"), "SELECT value FROM params WHERE key = 'backbone_crop_to_aspect_ratio'") == "on")
        let report = try String(contentsOf: artifacts.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(report.contains("<td>D</td>"), "the per-class table names the folder's classes")

        // A photo added to a class folder makes ingest and everything after it stale.
        let extra = folder.appendingPathComponent("photos/train/A/extra.jpg")
        try FileManager.default.copyItem(at: folder.appendingPathComponent("photos/test/B").appendingPathComponent(
            try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("photos/test/B").path).sorted()[0]), to: extra)
        #expect(try runTool("pipeline", ["status", file.path]).stdout.contains("ingest: stale: input folder changed"))

        let test = folder.appendingPathComponent("photos/test/C")
        let jpegs = try FileManager.default.contentsOfDirectory(atPath: test.path).sorted().map { test.appendingPathComponent($0).path }
        let predicted = try runTool("predict", ["--pipeline", file.path, "--json"] + jpegs)
        #expect(predicted.status == 0, "\(predicted.stderr)")
        let answers = try JSONSerialization.jsonObject(with: Data(predicted.stdout.utf8)) as? [String: Any]
        let top = (answers?["predictions"] as? [[String: Any]])?.compactMap { ($0["top"] as? [[String: Any]])?.first?["class"] as? String }
        #expect(top?.count == jpegs.count)
        #expect(top?.allSatisfy { ["A", "B", "C", "D"].contains($0) } == true, "\(predicted.stdout.prefix(300))")

        // A colour head exports a model of RGB images at the network's size (the caller resizes, as
        // preprocess did), with the class names and the originals' geometry and crop in its metadata;
        // ONNX Runtime's agreement with predict is `make test-onnx`'s.
        let export = try runTool("export", ["--pipeline", file.path, "--output", folder.appendingPathComponent("model.onnx").path])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stdout.contains("N x 32 x 32 x 3, RGB 0-255"), "\(export.stdout)")
        let model = try Onnx_ModelProto(serializedBytes: Data(contentsOf: folder.appendingPathComponent("model.onnx")))
        #expect(model.graph.input[0].type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam } == ["N", "32", "32", "3"])
        #expect(model.graph.node.contains { $0.opType == "Gather" && $0.name == "to_bgr" }, "RGB in, BGR to the caffe means")
        #expect(!model.graph.initializer.contains { $0.name.hasPrefix("resize_") })
        let metadata = Dictionary(uniqueKeysWithValues: model.metadataProps.map { ($0.key, $0.value) })
        #expect(metadata["classes"] == "A,B,C,D")
        #expect(metadata["source_geometry"] == "200x200x3" && metadata["crop_to_aspect_ratio"] == "on")
    }
}
