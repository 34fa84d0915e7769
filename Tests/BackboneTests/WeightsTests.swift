import Artifacts
import Backbone
import Fixtures
import Foundation
import Numerical
import Stages
import Testing
import WeightsFetch

private let keras2 = ParityWeights.file("keras2-conv1.h5")
private let keras3 = ParityWeights.file("keras3-conv1.h5")

private func message(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}

@Suite struct KerasWeightsLayouts {
    /// The small committed files hold the fixture's first two layers; the generator says what they must read as.
    func expected(_ layer: String) throws -> [String: [Float]] {
        let meta = try ParityWeights.meta()
        let entry = try #require(try ParityWeights.layout().first { $0.name == layer })
        return Dictionary(uniqueKeysWithValues: entry.weights.map {
            ($0.name, ParityWeights.values(seed: meta.seed, tensor: $0.tensor, kind: $0.name, shape: $0.shape))
        })
    }

    @Test(arguments: [keras2, keras3])
    func bothLayoutsReadTheFixturesWeights(file: URL) throws {
        let weights = try KerasWeightsFile(file)
        let conv = try weights.conv("conv1_conv", size: 7, input: 3, output: 64)
        let convExpected = try expected("conv1_conv")
        #expect(conv.kernel.count == 7 * 7 * 3 * 64)
        #expect(conv.kernel == convExpected["kernel"])
        #expect(conv.bias == convExpected["bias"])
        let norm = try weights.batchNorm("conv1_bn", channels: 64)
        let normExpected = try expected("conv1_bn")
        #expect(norm.gamma == normExpected["gamma"] && norm.beta == normExpected["beta"])
        #expect(norm.mean == normExpected["moving_mean"] && norm.variance == normExpected["moving_variance"])
    }

    /// The full-size file the parity tests use, written by our libhdf5 writer, reads as the generator made it.
    @Test func fullSizeFileReadsBackEveryLayer() throws {
        let weights = try KerasWeightsFile(Fixtures.parityWeights())
        let conv = try weights.conv("conv5_block3_3_conv", size: 1, input: 512, output: 2048)
        let meta = try ParityWeights.meta()
        let entry = try #require(try ParityWeights.layout().first { $0.name == "conv5_block3_3_conv" })
        #expect(conv.kernel == ParityWeights.values(seed: meta.seed, tensor: entry.weights[0].tensor, kind: "kernel", shape: [1, 1, 512, 2048]))
        #expect(throws: Never.self) { try ResNet50(weights: weights, size: 32) }
    }

    @Test func missingLayerIsNamed() {
        let text = message { _ = try ResNet50(weights: KerasWeightsFile(keras3)) }
        #expect(text.contains("keras3-conv1.h5"))
        #expect(text.contains("layer 'conv2_block1_0_conv' is missing"))
    }

    @Test func layerListedButAbsentIsNamed() {
        let text = message { _ = try ResNet50(weights: KerasWeightsFile(ParityWeights.file("keras2-missing-bn.h5"))) }
        #expect(text.contains("keras2-missing-bn.h5: layer 'conv1_bn' is missing"), "\(text)")
    }

    @Test func wrongShapeNamesLayerExpectedAndFound() {
        let text = message { _ = try KerasWeightsFile(keras2).conv("conv1_conv", size: 7, input: 3, output: 32) }
        #expect(text.contains("keras2-conv1.h5: layer 'conv1_conv' weight 'kernel': expected shape [7, 7, 3, 32], found [7, 7, 3, 64]"))
    }

    @Test func notHDF5AndMissingFiles() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = folder.appendingPathComponent("weights.h5")
        try Data("this is not HDF5".utf8).write(to: text)
        #expect(message { _ = try KerasWeightsFile(text) }.contains("not an HDF5 file"))
        #expect(message { _ = try KerasWeightsFile(folder.appendingPathComponent("nope.h5")) }.contains("nope.h5: no such file"))
    }

    /// The committed file cut in half: an error naming it, never a crash.
    /// Weights stored as float64 are converted to the same float32 values (every generated value is
    /// exact in float32); stored as integers, the file is refused, naming the dataset.
    @Test func storedTypesAreConvertedOrRefused() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let meta = try ParityWeights.meta()
        let layout = try ParityWeights.layout().filter { ["conv1_conv", "conv1_bn"].contains($0.name) }
        let plain = folder.appendingPathComponent("plain.h5"), wide = folder.appendingPathComponent("f64.h5"), whole = folder.appendingPathComponent("i32.h5")
        try ParityWeights.writeKeras2(plain, seed: meta.seed, layout: layout)
        try ParityWeights.writeKeras2(wide, seed: meta.seed, layout: layout, storage: ["conv1_conv/kernel": .float64, "conv1_bn/moving_variance": .float64])
        try ParityWeights.writeKeras2(whole, seed: meta.seed, layout: layout, storage: ["conv1_conv/kernel": .int32])
        let expected = try KerasWeightsFile(plain).conv("conv1_conv", size: 7, input: 3, output: 64)
        let converted = try KerasWeightsFile(wide).conv("conv1_conv", size: 7, input: 3, output: 64)
        #expect(converted.kernel == expected.kernel && converted.bias == expected.bias)
        #expect(try KerasWeightsFile(wide).batchNorm("conv1_bn", channels: 64).variance == KerasWeightsFile(plain).batchNorm("conv1_bn", channels: 64).variance)
        let text = message { _ = try KerasWeightsFile(whole).conv("conv1_conv", size: 7, input: 3, output: 64) }
        #expect(text.contains("i32.h5: dataset") && text.contains("conv1_conv") && text.contains("holds integers (4 bytes each), expected floating-point weights"), "\(text)")
    }

    @Test func truncatedFileIsAnErrorNotACrash() throws {
        let text = message { _ = try ResNet50(weights: KerasWeightsFile(ParityWeights.file("keras2-truncated.h5"))) }
        #expect(text.contains("keras2-truncated.h5"))
        #expect(text != "no error")
    }
}

@Suite struct RandomBackbone {
    @Test func seededAndFinite() throws {
        let rgb: [UInt8] = (0 ..< 2 * 32 * 32 * 3).map { (index: Int) -> UInt8 in UInt8(truncatingIfNeeded: index * 31) }
        let a = try ResNet50(weights: ResNet50.randomWeights(seed: 7)).features(rgb: rgb, count: 2, size: 32)
        let b = try ResNet50(weights: ResNet50.randomWeights(seed: 7)).features(rgb: rgb, count: 2, size: 32)
        let c = try ResNet50(weights: ResNet50.randomWeights(seed: 8)).features(rgb: rgb, count: 2, size: 32)
        #expect(a == b)
        #expect(a != c)
        #expect(a.allSatisfy { $0.isFinite && $0 >= 0 })
        #expect(a.contains { $0 > 0 })
    }
}

@Suite struct WeightsDigest {
    /// The remembered MD5 is the file's, and a file rewritten in place is hashed again.
    @Test func rememberedUntilTheFileChanges() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("w.h5"), record = folder.appendingPathComponent("md5.json")
        try Data("first".utf8).write(to: file)
        let first = try cachedFileMD5(file, record: record)
        #expect(first == (try fileMD5(file)))
        #expect(FileManager.default.fileExists(atPath: record.path))
        #expect(try cachedFileMD5(file, record: record) == first)
        try Data("other".utf8).write(to: file)
        let second = try cachedFileMD5(file, record: record)
        #expect(second != first)
        #expect(second == (try fileMD5(file)))
    }
}

@Suite struct WeightsDownload {
    let body = Data((0 ..< 300_000).map { (index: Int) -> UInt8 in UInt8(index % 251) })

    func md5(_ data: Data) throws -> String {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("f")
        try data.write(to: file)
        return try fileMD5(file)
    }

    @Test func goodFileLandsInTheCache() throws {
        let server = try LocalHTTPServer(body: body)
        defer { server.stop() }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = try ImageNetWeights(ResNet50.architecture).download(from: server.url, into: folder, expectedMD5: try md5(body), showProgress: false)
        #expect(url == folder.appendingPathComponent(ImageNetWeights(ResNet50.architecture).fileName))
        #expect(try Data(contentsOf: url) == body)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == [ImageNetWeights(ResNet50.architecture).fileName])
    }

    @Test func wrongChecksumIsDiscarded() throws {
        let server = try LocalHTTPServer(body: body)
        defer { server.stop() }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message { _ = try ImageNetWeights(ResNet50.architecture).download(from: server.url, into: folder, expectedMD5: "0123", showProgress: false) }
        #expect(text.contains("expected 0123; the download was discarded"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func serverDownSaysWhereToPutTheFile() throws {
        let port = try LocalHTTPServer.closedPort()
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message {
            _ = try ImageNetWeights(ResNet50.architecture).download(from: URL(string: "http://127.0.0.1:\(port)/w.h5")!, into: folder, expectedMD5: "x", showProgress: false)
        }
        #expect(text.contains("could not download the ImageNet weights from http://127.0.0.1:\(port)/w.h5"))
        #expect(text.contains("by hand"))
        #expect(text.contains(folder.appendingPathComponent(ImageNetWeights(ResNet50.architecture).fileName).path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func cutOffMidwayIsAnErrorAndLeavesNothing() throws {
        let server = try LocalHTTPServer(body: body, cutAfter: 100_000)
        defer { server.stop() }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message { _ = try ImageNetWeights(ResNet50.architecture).download(from: server.url, into: folder, expectedMD5: try md5(body), showProgress: false) }
        #expect(text.contains("could not download") || text.contains("discarded"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }
}
