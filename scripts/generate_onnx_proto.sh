#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift from Sources/ONNXProto/onnx.proto (ONNX's own schema,
# copied from the Python onnx package: python3 -c "import onnx, os; print(os.path.dirname(onnx.__file__))").
# The generated file is committed: the build never runs protoc.
# Needs: protoc (pip install grpcio-tools gives `python3 -m grpc_tools.protoc`) and swift-protobuf's
# protoc-gen-swift of the version Package.swift names (built here in a scratch package, about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/Sources/Dummy"
cat > "$scratch/Package.swift" <<'SWIFT'
// swift-tools-version:6.0
import PackageDescription
let package = Package(name: "generator",
  dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0")],
  targets: [.target(name: "Dummy", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")])])
SWIFT
echo "public let unused = 0" > "$scratch/Sources/Dummy/Dummy.swift"
swift build --package-path "$scratch" -c release --product protoc-gen-swift
plugin="$scratch/.build/release/protoc-gen-swift"
if command -v protoc > /dev/null; then protoc=(protoc); else protoc=(python3 -m grpc_tools.protoc); fi
"${protoc[@]}" --plugin=protoc-gen-swift="$plugin" --swift_out=Sources/ONNXProto --swift_opt=Visibility=Public \
  -I Sources/ONNXProto Sources/ONNXProto/onnx.proto
echo "wrote Sources/ONNXProto/onnx.pb.swift"
