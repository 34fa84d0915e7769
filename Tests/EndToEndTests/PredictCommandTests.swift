import Foundation
import GRDB
import Testing

@Suite(.serialized) struct PredictCommand {
    @Test func exportedTestImagesReproduceTheStoredPredictionsExactly() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let export = pipeline.folder.appendingPathComponent("export")
        let exported = try runTool("preprocess", ["--input", pipeline.artifacts.appendingPathComponent("images.sqlite").path,
                                                  "--output", pipeline.folder.appendingPathComponent("scratch.sqlite").path,
                                                  "--export", export.path, "--originals"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: export.path).filter { $0.hasPrefix("test-") }.sorted()
        #expect(files.count == 11)
        let result = try runTool("predict", ["--pipeline", pipeline.file.path, "--json", "--top", "1"] + files.map { export.appendingPathComponent($0).path })
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let predictions = json["predictions"] as! [[String: Any]]

        // The stored predictions read as stored (REAL, every bit), not parsed back from a printed table.
        var configuration = Configuration()
        configuration.readonly = true
        let rows = try DatabaseQueue(path: pipeline.artifacts.appendingPathComponent("head.sqlite").path, configuration: configuration).read { db in
            try Row.fetchAll(db, sql: "SELECT id, predicted, confidence FROM predictions ORDER BY id").map { ($0[0] as Int, $0[1] as Int, $0[2] as Double) }
        }
        #expect(rows.count == 11)
        let ours = madeOnOurKernel(pipeline.artifacts.appendingPathComponent("features.sqlite"))
        for (entry, row) in zip(predictions, rows) {
            let input = entry["input"] as! String
            let top = (entry["top"] as! [[String: Any]])[0]
            #expect(input.contains("test-\(row.0)-"))
            #expect(top["label"] as? Int == row.1)
            // Exactly on our kernels; on OpenBLAS (other batches than extract's) within its last bits.
            if ours {
                #expect(Float(top["probability"] as! Double) == Float(row.2), "\(input)")
            } else {
                #expect(abs(Float(top["probability"] as! Double) - Float(row.2)) <= 1e-4, "\(input)")
            }
        }
    }

    @Test func badFilesAreReportedAndTheOthersStillPredicted() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let folder = pipeline.folder
        let text = folder.appendingPathComponent("notes.png"), empty = folder.appendingPathComponent("empty.png")
        let corrupt = folder.appendingPathComponent("corrupt.png")
        try Data("not an image".utf8).write(to: text)
        try Data().write(to: empty)
        let good = repositoryRoot.appendingPathComponent("Tests/Fixtures/rgb8-56x56.png")
        try Data(contentsOf: good).prefix(60).write(to: corrupt)
        let grey16 = repositoryRoot.appendingPathComponent("Tests/Fixtures/grey16-40x30.png")
        let result = try runTool("predict", ["--pipeline", pipeline.file.path, good.path, text.path, folder.appendingPathComponent("missing.png").path,
                                             empty.path, corrupt.path, grey16.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(text.path): neither a JPEG nor a PNG"))
        #expect(result.stderr.contains("missing.png: no such file"))
        #expect(result.stderr.contains("\(empty.path): the file is empty"))
        #expect(result.stderr.contains("\(corrupt.path):"))
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[1].hasPrefix(good.path))
        #expect(lines[2].hasPrefix(grey16.path))
    }

    @Test func csvRowsArePredictedWithAccuracy() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let result = try runTool("predict", ["--pipeline", pipeline.file.path, "--csv", sample("test.csv")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count == 12)
        #expect(result.stderr.contains("of 11 rows)"))
    }

    @Test func headUsedWithOtherWeightsIsRefused() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run()
        let head = pipeline.artifacts.appendingPathComponent("head.sqlite")
        try sqliteEdit(head, "UPDATE params SET value = 'random:2' WHERE key = 'backbone_weights'")
        let result = try runTool("predict", ["--model", head.path, sample("test.csv")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("the head was trained on features of the weights random:2"))
    }

    @Test func noTrainedHeadYet() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let result = try runTool("predict", ["--pipeline", pipeline.file.path, sample("test.csv")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("no trained head yet"))
    }
}
