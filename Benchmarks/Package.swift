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
        .executableTarget(
            name: "IngestBenchmark",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Dataset", package: mainPackage),
                .product(name: "PipelineKit", package: mainPackage),
            ],
            path: "Benchmarks/IngestBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "PipelineBenchmark",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Dataset", package: mainPackage),
                .product(name: "Imaging", package: mainPackage),
                .product(name: "Backbone", package: mainPackage),
                .product(name: "Head", package: mainPackage),
                .product(name: "PipelineKit", package: mainPackage),
            ],
            path: "Benchmarks/PipelineBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "StagesBenchmark",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Dataset", package: mainPackage),
                .product(name: "Imaging", package: mainPackage),
                .product(name: "Backbone", package: mainPackage),
                .product(name: "Head", package: mainPackage),
                .product(name: "PipelineKit", package: mainPackage),
            ],
            path: "Benchmarks/StagesBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
