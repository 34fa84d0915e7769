// swift-tools-version: 6.1
// package-benchmark suites, kept apart from the main package so that `swift build` and `swift test`
// there do not compile the benchmark harness. Run: `make bench` (or `swift package benchmark` here).
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which depends on where the repository was cloned.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "SignTransferBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        suite("IngestBenchmark", using: ["Dataset", "Stages", "PipelineKit"]),
        suite("PipelineBenchmark", using: ["Stages", "PipelineKit"]),
        suite("StagesBenchmark", using: ["Dataset", "Imaging", "Backbone", "Head", "Stages", "Numerical", "PipelineKit"]),
        suite("FineTuneBenchmark", using: ["Backbone", "FineTune", "Head", "Numerical"]),
    ]
)

/// A package-benchmark suite in Benchmarks/NAME using the main package's `modules`.
func suite(_ name: String, using modules: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: [.product(name: "Benchmark", package: "benchmark")] + modules.map { .product(name: $0, package: mainPackage) },
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}
