import Backbone
import Benchmark
import Dataset
import Foundation
import Head
import Imaging
import Numerical
import PipelineKit
import Stages

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The full-size dataset's images (34,627: the sample's real rows tiled), ingested once.
func fullSizeImages() throws -> URL {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-images-34627.sqlite")
    if FileManager.default.fileExists(atPath: output.path) { return output }
    let sample = try KaggleCSV.read(root.appendingPathComponent("pipelines/data/sign-mnist-sample/train.csv")).images
    var text = KaggleCSV.header + "\n"
    for row in 0 ..< 34627 {
        let source = row % sample.count
        text += ([String(sample.labels[source])] + sample.image(source).map { String($0) }).joined(separator: ",") + "\n"
    }
    let csv = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-34627.csv")
    try text.write(to: csv, atomically: true, encoding: .utf8)
    _ = try Ingest.run(.init(splits: [("train", csv)], output: output))
    return output
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(30), maxIterations: 5)

    Benchmark("preprocess 34,627 images at 64x64") { benchmark in
        let images = try fullSizeImages()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-bench-pre64.sqlite")
        benchmark.startMeasurement()
        blackHole(try Preprocess.run(.init(input: images, output: output, size: 64, showProgress: false)))
    }

    // The backbone's steady state, weights loading excluded (extract's whole-process rates are in
    // scripts/compare_backbone.sh and compare_kernels.sh), on every GEMM path this CPU runs: our
    // AVX-512 kernel, its AVX2 twin, OpenBLAS (with the kernel OPENBLAS_CORETYPE or the CPU picks),
    // and the bf16 one where the CPU has AVX512_BF16 (`extract --precision bf16`).
    let kernels: [(String, GEMMKernel)] = GEMMKernel.available.map { ($0 == .avx512bf16 ? "bf16" : "fp32 \($0.rawValue)", $0) }
    for (size, count) in [(224, 32), (64, 64)] {
        for (precision, kernel) in kernels {
        Benchmark("ResNet50 forward \(precision), batch \(count) at \(size)x\(size) (images/s = \(count) / time)") { benchmark in
            let network = try ResNet50(weights: ResNet50.randomWeights(seed: 0), kernel: kernel, size: size)
            let workspace = network.makeResNetWorkspace(count: count, size: size)
            let rgb = (0 ..< count * size * size * 3).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
            rgb.withUnsafeBufferPointer { ResNet50.architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
            var features = [Float](repeating: 0, count: count * 2048)
            benchmark.startMeasurement()
            features.withUnsafeMutableBufferPointer { network.forward(workspace, count: count, into: $0.baseAddress!) }
            benchmark.stopMeasurement()
            blackHole(features)
        }
        }
    }

    // The mobile backbones' steady state at 224, batch 32, on the float kernels (bf16 is refused for
    // them: it does not pay).
    for architecture in [MobileNetV2.architecture, EfficientNetB0.architecture] {
        for kernel in GEMMKernel.availableFloat {
            Benchmark("\(architecture.name) forward fp32 \(kernel.rawValue), batch 32 at 224x224 (images/s = 32 / time)") { benchmark in
                let (count, size) = (32, 224)
                let network = try architecture.build(architecture.randomWeights(0), kernel, size)
                let workspace = network.makeWorkspace(count: count, size: size)
                let rgb = (0 ..< count * size * size * 3).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
                rgb.withUnsafeBufferPointer { architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
                let last = architecture.nodes.count - 1
                var features = [Float](repeating: 0, count: count * architecture.nodes[last].channels)
                benchmark.startMeasurement()
                features.withUnsafeMutableBufferPointer { network.forward(workspace, count: count, taps: [last], into: [$0.baseAddress!], keep: nil) }
                benchmark.stopMeasurement()
                blackHole(features)
            }
        }
    }

    Benchmark("head: one epoch on 27,455 x 2048 features") { benchmark in
        var generator = SplitMix64(seed: 1)
        let count = 27455
        let labels = (0 ..< count).map { $0 % 24 }
        let features = (0 ..< count * 2048).map { index in Float(generator.nextNormal()) + (index % 2048 == labels[index / 2048] ? 3 : 0) }
        var options = TrainingOptions()
        options.epochs = 1
        benchmark.startMeasurement()
        blackHole(Trainer.train(features: features, labels: labels, dimension: 2048, classCount: 24, options: options))
    }
}
