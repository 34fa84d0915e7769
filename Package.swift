// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SignTransfer",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "PipelineKit", targets: ["PipelineKit"]),
        .library(name: "Numerical", targets: ["Numerical"]),
        .library(name: "Dataset", targets: ["Dataset"]),
        .library(name: "Artifacts", targets: ["Artifacts"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "Backbone", targets: ["Backbone"]),
        .library(name: "Head", targets: ["Head"]),
        .library(name: "FineTune", targets: ["FineTune"]),
        .library(name: "Stages", targets: ["Stages"]),
        .executable(name: "ingest", targets: ["ingest"]),
        .executable(name: "preprocess", targets: ["preprocess"]),
        .executable(name: "extract", targets: ["extract"]),
        .executable(name: "train", targets: ["train"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
        .executable(name: "predict", targets: ["predict"]),
        .executable(name: "export", targets: ["export"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // Exactly the version whose protoc-gen-swift generated Sources/ONNXProto/onnx.pb.swift.
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        // C libraries and our C kernels.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CPNGWriter", dependencies: ["CPNG"], linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("z")]),
        // JPEG decoding through libjpeg-turbo (Debian: libjpeg62-turbo-dev), errors returned, never exits.
        .target(name: "CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(name: "CKernels"),
        // Two calls Swift cannot make itself: line-buffered stdout, dying with the parent (prctl).
        .target(name: "CToolSupport"),

        // The base: threads, the RNG, the split GEMM, the error protocol. No files, no SQLite.
        .target(name: "Numerical", dependencies: ["CBLAS", "CKernels"]),
        // Pipeline files, the manifest, the runner, atomic outputs, locks, hashing, progress.
        .target(name: "PipelineKit", dependencies: ["Numerical", .product(name: "Crypto", package: "swift-crypto"), .product(name: "Yams", package: "Yams")]),

        // Pure compute: they know nothing of SQLite, the manifest or the command line.
        .target(name: "Dataset", dependencies: ["PipelineKit", "Numerical", "Imaging"]),
        .target(name: "Imaging", dependencies: ["CPNG", "CPNGWriter", "CJPEG", "CKernels", "Numerical"]),
        .target(name: "Backbone", dependencies: ["CBLAS", "CKernels", "CHDF5", "Numerical"]),
        .target(name: "Head", dependencies: ["Numerical"]),
        .target(name: "FineTune", dependencies: ["Backbone", "Head", "Numerical"]),
        // ONNX's schema (onnx.proto, from the onnx package) compiled by protoc-gen-swift; the generated
        // file is committed (scripts/generate_onnx_proto.sh): the build never runs protoc.
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")], exclude: ["onnx.proto"]),
        .target(name: "Export", dependencies: ["ONNXProto", "Backbone", "Head"]),

        // The artifacts at the centre: every SQLite file's schema, written and read in one place.
        .target(name: "Artifacts", dependencies: ["Dataset", "PipelineKit", "Numerical", .product(name: "GRDB", package: "GRDB.swift")]),

        // Around them: the report, the ImageNet weights' fetcher, the stages, the executors.
        .target(name: "Report", dependencies: ["Head", "Dataset", .product(name: "Mustache", package: "swift-mustache")]),
        .target(name: "WeightsFetch", dependencies: ["Backbone", "PipelineKit", "Numerical", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "Stages",
            dependencies: ["Dataset", "Artifacts", "Imaging", "Backbone", "Head", "FineTune", "Export", "Report", "WeightsFetch", "PipelineKit", "Numerical"]
        ),
        // Variants, sweeps, the experiments log's use, comparison and the cache's gc (`pipeline`).
        .target(name: "Experiments", dependencies: ["Artifacts", "PipelineKit", "Numerical", .product(name: "Mustache", package: "swift-mustache")]),
        .target(name: "Executors", dependencies: ["Stages", "Artifacts", "WeightsFetch", "PipelineKit"]),

        // The executables: parse arguments, call a stage.
        .target(
            name: "ToolSupport",
            dependencies: ["CToolSupport", "PipelineKit", "Numerical", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "ingest", dependencies: ["ToolSupport", "Stages", "Dataset", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "preprocess", dependencies: ["ToolSupport", "Stages", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "extract",
            dependencies: ["ToolSupport", "Stages", "Backbone", "WeightsFetch", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "export", dependencies: ["ToolSupport", "Stages", "PipelineKit", "WeightsFetch",
                                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "train", dependencies: ["ToolSupport", "Stages", "Head", "Backbone", "WeightsFetch", "PipelineKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "predict",
            dependencies: ["ToolSupport", "Stages", "Artifacts", "Backbone", "Dataset", "WeightsFetch", "PipelineKit", "Numerical",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "pipeline",
            dependencies: ["ToolSupport", "Stages", "Executors", "Experiments", "Artifacts", "Backbone", "WeightsFetch", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "GRDBSQLite", package: "GRDB.swift"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .target(name: "Fixtures", dependencies: ["CHDF5", "PipelineKit"], path: "Tests/Fixtures", exclude: ["keras-parity", "keras-parity-colour", "keras-parity-mobilenetv2", "keras-parity-efficientnetb0", "keras-finetune", "grey16-40x30.png", "rgb8-56x56.png"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Stages", "Artifacts", "Dataset", "PipelineKit", "Numerical", "Fixtures", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "BackboneTests", dependencies: ["Backbone", "WeightsFetch", "Stages", "Artifacts", "Imaging", "Dataset", "PipelineKit", "Numerical", "Fixtures",
                                                          .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "HeadTests", dependencies: ["Head", "FineTune", "Backbone", "Stages", "Artifacts", "Dataset", "PipelineKit", "Numerical", "Fixtures", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "DatasetTests", dependencies: ["Dataset", "Stages", "Artifacts", "Imaging", "PipelineKit", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "PipelineKitTests", dependencies: ["PipelineKit", "Numerical"]),
        .testTarget(name: "FineTuneTests", dependencies: ["FineTune", "Backbone", "Head", "Numerical", "Fixtures"]),
        .testTarget(name: "EndToEndTests", dependencies: ["Dataset", "PipelineKit", "ONNXProto", .product(name: "GRDB", package: "GRDB.swift"),
                                                          .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    ]
)
