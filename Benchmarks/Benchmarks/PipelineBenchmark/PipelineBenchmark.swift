import Benchmark
import Foundation
import PipelineKit
import Stages

/// The embedded sample pipeline at 32x32 with a random backbone, run once so that every stage is up
/// to date; the benchmarks then time what a no-op costs.
func upToDateSample() throws -> URL {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-pipeline")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let file = folder.appendingPathComponent("sample.yaml")
    let data = root.appendingPathComponent("pipelines/data/sign-mnist-sample").path
    try """
    name: bench
    artifacts: artifacts
    stages:
      ingest: {train: \(data)/train.csv, test: \(data)/test.csv}
      preprocess: {size: 32}
      extract: {weights: "random:0"}
      train: {epochs: 3}
    """.write(to: file, atomically: true, encoding: .utf8)
    try runner(file).run { _ in }
    return file
}

func runner(_ file: URL) throws -> PipelineRunner {
    let runner = try PipelineRunner(pipeline: file.path, stages: PipelineStages.all)
    try runner.acquireLock()
    return runner
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 50)

    Benchmark("pipeline run with nothing to do (sample)") { benchmark in
        let file = try upToDateSample()
        benchmark.startMeasurement()
        let ran = try runner(file).run { _ in }
        benchmark.stopMeasurement()
        precondition(ran.isEmpty)
    }

    Benchmark("pipeline status (sample)") { benchmark in
        let file = try upToDateSample()
        benchmark.startMeasurement()
        blackHole(try runner(file).statuses())
    }
}
