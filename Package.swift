// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SignTransfer",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "PipelineKit", targets: ["PipelineKit"]),
        .library(name: "Dataset", targets: ["Dataset"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "Backbone", targets: ["Backbone"]),
        .executable(name: "ingest", targets: ["ingest"]),
        .executable(name: "preprocess", targets: ["preprocess"]),
        .library(name: "Head", targets: ["Head"]),
        .executable(name: "extract", targets: ["extract"]),
        .executable(name: "train", targets: ["train"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
        .executable(name: "predict", targets: ["predict"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .target(
            name: "PipelineKit",
            dependencies: [.product(name: "Crypto", package: "swift-crypto"), .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "Dataset",
            dependencies: ["PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "ToolSupport",
            dependencies: ["PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CPNGWriter", dependencies: ["CPNG"], linkerSettings: [.linkedLibrary("png16")]),
        .target(
            name: "Imaging",
            dependencies: ["CPNG", "CPNGWriter", "Dataset", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CKernels"),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .target(
            name: "Backbone",
            dependencies: ["CBLAS", "CKernels", "CHDF5", "Imaging", "Dataset", "PipelineKit",
                           .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "Head",
            dependencies: ["CBLAS", "Backbone", "Imaging", "Dataset", "PipelineKit",
                           .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Mustache", package: "swift-mustache")]
        ),
        .executableTarget(
            name: "predict",
            dependencies: ["ToolSupport", "Head", "Backbone", "Dataset", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "pipeline",
            dependencies: ["ToolSupport", "Dataset", "Imaging", "Backbone", "Head", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "train",
            dependencies: ["ToolSupport", "Head", "Backbone", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "extract",
            dependencies: ["ToolSupport", "Backbone", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "preprocess",
            dependencies: ["ToolSupport", "Imaging", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "ingest",
            dependencies: ["ToolSupport", "Dataset", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "Fixtures", dependencies: ["CHDF5", "PipelineKit"], path: "Tests/Fixtures", exclude: ["keras-parity", "grey16-40x30.png", "rgb8-56x56.png"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Dataset", "PipelineKit", "Fixtures", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbone", "Imaging", "Dataset", "PipelineKit", "Fixtures", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "HeadTests", dependencies: ["Head", "Backbone", "Dataset", "PipelineKit", "Fixtures", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "DatasetTests", dependencies: ["Dataset", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "EndToEndTests", dependencies: ["Dataset", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]),
    ]
)
