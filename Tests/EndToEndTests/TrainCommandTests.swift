import Foundation
import Testing

@Suite struct TrainCommand {
    /// The command line and the pipeline file hold train's parameters to the same declared limits.
    @Test func limitsAreTheOnesThePipelineFileHas() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        try pipeline.run(["--until", "extract"])
        let features = pipeline.artifacts.appendingPathComponent("features.sqlite").path
        let output = pipeline.folder.appendingPathComponent("head.sqlite").path
        let cases = [(["--dropout", "1.5"], "--dropout 1.5: expected 0.0 to 0.99, found 1.5"),
                     (["--epochs", "ten"], "--epochs ten: expected a whole number, found 'ten'"),
                     (["--standardize", "minmax"], "--standardize minmax: expected one of none, zscore, found 'minmax'"),
                     (["--epoch", "3"], "unknown option '--epoch' (the stage's parameters are --hidden, --dropout, --epochs,"),
                     (["--seed"], "--seed needs a value (seed)")]
        for (arguments, expected) in cases {
            let result = try runTool("train", ["--input", features, "--output", output] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains(expected), "\(result.stderr)")
        }
        try "name: e2e\nartifacts: artifacts\nstages:\n  ingest:\n    train: train.csv\n  train:\n    dropout: 1.5\n"
            .write(to: pipeline.file, atomically: true, encoding: .utf8)
        let fromFile = try runTool("pipeline", ["run", pipeline.file.path])
        #expect(fromFile.stderr.contains("train.dropout: expected 0.0 to 0.99, found 1.5"), "\(fromFile.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    /// Every parameter the pipeline file knows for train is an option of the command, with its default.
    @Test func helpNamesEveryParameterWithItsDefault() throws {
        let help = try runTool("train", ["--help"]).stdout
        let parameters = ["hidden": "256", "dropout": "0.5", "epochs": "30", "batch": "64", "learning-rate": "0.001", "schedule": "cosine",
                          "weight-decay": "0.0", "standardize": "zscore", "validation": "0.1", "patience": "5", "seed": "0"]
        let flat = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for (option, value) in parameters {
            #expect(flat.contains("--\(option) "), "\(option)")
            #expect(flat.contains("(default: \(value))"), "\(option): \(value)")
        }
    }
}

@Suite struct LookingChangesNothing {
    /// `pipeline status` on a pipeline never run creates no artifacts folder; `extract merge --shards 0`
    /// is an error, not a trap; a hidden layer too large to allocate is refused up front.
    @Test func statusAndBadCountsLeaveNoTrace() throws {
        let pipeline = try SamplePipeline()
        defer { pipeline.remove() }
        let status = try runTool("pipeline", ["status", pipeline.file.path])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pipeline.artifacts.path))
        let merge = try runTool("extract", ["merge", "--shards", "0", "--input", pipeline.folder.appendingPathComponent("p.sqlite").path,
                                            "--output", pipeline.folder.appendingPathComponent("f.sqlite").path])
        #expect(merge.status == 1)
        #expect(merge.stderr.contains("--shards 0: there is at least one shard"), "\(merge.stderr)")
        let train = try runTool("train", ["--input", pipeline.folder.appendingPathComponent("f.sqlite").path, "--hidden", "100000000"])
        #expect(train.stderr.contains("--hidden 100000000: expected a list of whole numbers from 1 to 65536"), "\(train.stderr)")
    }
}
