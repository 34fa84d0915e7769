// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SignTransfer",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "PipelineKit", targets: ["PipelineKit"]),
        .library(name: "Dataset", targets: ["Dataset"]),
        .executable(name: "ingest", targets: ["ingest"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        .target(
            name: "PipelineKit",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "Dataset",
            dependencies: ["PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .executableTarget(
            name: "ingest",
            dependencies: ["Dataset", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "DatasetTests", dependencies: ["Dataset", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "EndToEndTests", dependencies: ["Dataset", "PipelineKit"]),
    ]
)
