import Benchmark
import Dataset
import Foundation
import PipelineKit
import Stages

/// A full-size train CSV (27,455 rows, about 83 MB) tiled from the embedded sample's real rows with a
/// small deterministic jitter, as `shared/bench/make_fullsize_csv.py` makes one.
func fullSizeCSV(rows: Int = 27455) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-train-\(rows).csv")
    if FileManager.default.fileExists(atPath: url.path) { return url }
    let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("pipelines/data/sign-mnist-sample/train.csv")
    let images = try KaggleCSV.read(sample).images
    var text = KaggleCSV.header + "\n"
    var state: UInt64 = 1
    for row in 0 ..< rows {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let source = Int(state >> 33) % images.count
        var fields = [String(images.labels[source])]
        for pixel in images.image(source) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            fields.append(String(min(255, max(0, Int(pixel) + Int(state >> 61) - 3))))
        }
        text += fields.joined(separator: ",") + "\n"
        _ = row
    }
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(20), maxIterations: 10)

    Benchmark("ingest full-size train CSV (27,455 rows)") { benchmark in
        let csv = try fullSizeCSV()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-images.sqlite")
        benchmark.startMeasurement()
        let report = try Ingest.run(.init(splits: [("train", csv)], output: output))
        benchmark.stopMeasurement()
        blackHole(report)
    }

    Benchmark("parse full-size train CSV in memory") { benchmark in
        let data = try Data(contentsOf: try fullSizeCSV())
        benchmark.startMeasurement()
        let images = try data.withUnsafeBytes { try KaggleCSV.parse($0, name: "train.csv") }
        benchmark.stopMeasurement()
        blackHole(images)
    }
}
