import Foundation
import GRDB
import ONNXProto
import SwiftProtobuf
import Testing

/// `export` through the real executable, the model read back with the same generated schema: what can
/// be checked without Python (ONNX Runtime's agreement with predict is scripts/check_onnx.py's, run by
/// `make test-onnx`).
@Suite struct ExportCommand {
    @Test func theModelReadsBackWithItsInputsOutputsWeightsAndProvenance() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        #expect(try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:4",
                                        "--layers", "conv3_block4_out,conv4_block6_out"]).status == 0)
        let train = try runTool("train", ["--input", path("features.sqlite"), "--output", path("head.sqlite"), "--layers", "conv3_block4_out,conv4_block6_out",
                                          "--hidden", "32", "--epochs", "2"])
        #expect(train.status == 0, "\(train.stderr)")
        let export = try runTool("export", ["--model", path("head.sqlite"), "--output", path("model.onnx")])
        #expect(export.status == 0, "\(export.stderr)")

        let model = try Onnx_ModelProto(serializedBytes: Data(contentsOf: folder.appendingPathComponent("model.onnx")))
        #expect(model.opsetImport.first?.version == 17)
        let graph = model.graph
        #expect(graph.input.map(\.name) == ["images"] && graph.output.map(\.name) == ["probabilities"])
        let inputDims = graph.input[0].type.tensorType.shape.dim
        #expect(inputDims.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam } == ["N", "28", "28", "1"])
        let classes = Int(try sqliteValue(folder.appendingPathComponent("head.sqlite"), "SELECT count(*) FROM classes") ?? "0")!
        #expect(graph.output[0].type.tensorType.shape.dim.last?.dimValue == Int64(classes))

        // The backbone as far as the deepest layer read (conv4_block6_out: 1 + 13 blocks' convolutions),
        // both layers pooled, the standardization, the head.
        let shapes = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0.dims.map(Int.init)) })
        #expect(shapes["conv1_W"] == [64, 3, 7, 7])
        #expect(shapes["conv4_block6_3_W"] == [1024, 256, 1, 1])
        #expect(shapes["conv5_block1_1_W"] == nil, "no conv5 for a head that reads conv4")
        #expect(graph.node.filter { $0.opType == "Conv" }.count == 1 + 13 * 3 + 3)
        #expect(graph.node.filter { $0.opType == "GlobalAveragePool" }.map(\.name) == ["conv3_block4_out_pool", "conv4_block6_out_pool"])
        #expect(shapes["mean"] == [1536] && shapes["deviation"] == [1536])
        #expect(shapes["dense0_W"] == [1536, 32] && shapes["dense1_W"] == [32, classes])
        // The resize's taps: 32 output columns, then 32 rows, each two input coordinates and a weight.
        #expect(shapes["resize_x_lower"] == [32] && shapes["resize_x_lerp"] == [32] && shapes["resize_lower"] == [32] && shapes["resize_lerp"] == [32, 1])
        // Every initializer holds as many floats as its shape says.
        for tensor in graph.initializer where tensor.dataType == 1 {
            #expect(tensor.rawData.count == 4 * tensor.dims.reduce(1, *), "\(tensor.name)")
        }

        let metadata = Dictionary(uniqueKeysWithValues: model.metadataProps.map { ($0.key, $0.value) })
        #expect(metadata["classes"]?.split(separator: ",").count == classes)
        #expect(metadata["layers"] == "conv3_block4_out,conv4_block6_out")
        #expect(metadata["weights"] == "random:4" && metadata["input_size"] == "32" && metadata["random_backbone"] == "1")
        #expect(metadata["weights_md5"] == (try sqliteValue(folder.appendingPathComponent("head.sqlite"), "SELECT value FROM params WHERE key = 'backbone_weights_md5'")))

        // Other weights than the head's are refused, saying which; an output that cannot be written
        // leaves nothing behind, and neither does a refusal.
        let other = try runTool("export", ["--model", path("head.sqlite"), "--output", path("other.onnx"), "--weights", "random:5"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("refusing to mix them"), "\(other.stderr)")
        let unwritable = try runTool("export", ["--model", path("head.sqlite"), "--output", path("missing-folder/model.onnx")])
        #expect(unwritable.status != 0)
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("onnx") || $0.hasPrefix(".") }
        #expect(left == ["model.onnx"], "\(left)")
    }
}
