import Backbone
import Fixtures
import Foundation
import Testing

private let keras2 = Fixtures.parity.appendingPathComponent("weights.h5")
private let keras3 = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/keras3-conv1.h5")

private func message(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}

@Suite struct KerasWeightsLayouts {
    @Test func keras3LayoutReadsTheSameWeightsAsKeras2() throws {
        let old = try KerasWeightsFile(keras2), new = try KerasWeightsFile(keras3)
        let a = try old.conv("conv1_conv", size: 7, input: 3, output: 64), b = try new.conv("conv1_conv", size: 7, input: 3, output: 64)
        #expect(a.kernel == b.kernel)
        #expect(a.bias == b.bias)
        #expect(a.kernel.count == 7 * 7 * 3 * 64)
        let x = try old.batchNorm("conv1_bn", channels: 64), y = try new.batchNorm("conv1_bn", channels: 64)
        #expect(x.gamma == y.gamma && x.beta == y.beta && x.mean == y.mean && x.variance == y.variance)
    }

    @Test func missingLayerIsNamed() {
        let text = message { _ = try ResNet50(weights: KerasWeightsFile(keras3)) }
        #expect(text.contains("keras3-conv1.h5"))
        #expect(text.contains("layer 'conv2_block1_0_conv' is missing"))
    }

    @Test func wrongShapeNamesLayerExpectedAndFound() {
        let text = message { _ = try KerasWeightsFile(keras2).conv("conv1_conv", size: 7, input: 3, output: 32) }
        #expect(text.contains("weights.h5: layer 'conv1_conv' weight 'kernel': expected shape [7, 7, 3, 32], found [7, 7, 3, 64]"))
    }

    @Test func notHDF5AndMissingFiles() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = folder.appendingPathComponent("weights.h5")
        try Data("this is not HDF5".utf8).write(to: text)
        #expect(message { _ = try KerasWeightsFile(text) }.contains("not an HDF5 file"))
        #expect(message { _ = try KerasWeightsFile(folder.appendingPathComponent("nope.h5")) }.contains("nope.h5: no such file"))
    }

    @Test func truncatedFileIsAnErrorNotACrash() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let handle = try FileHandle(forReadingFrom: keras2)
        let head = try handle.read(upToCount: 20 << 20) ?? Data()
        try handle.close()
        let truncated = folder.appendingPathComponent("truncated.h5")
        try head.write(to: truncated)
        let text = message { _ = try ResNet50(weights: KerasWeightsFile(truncated)) }
        #expect(text.contains("truncated.h5"))
        #expect(text != "no error")
    }
}

@Suite struct RandomBackbone {
    @Test func seededAndFinite() throws {
        let rgb: [UInt8] = (0 ..< 2 * 32 * 32 * 3).map { (index: Int) -> UInt8 in UInt8(truncatingIfNeeded: index * 31) }
        let a = try ResNet50(weights: RandomWeights(seed: 7)).features(rgb: rgb, count: 2, size: 32)
        let b = try ResNet50(weights: RandomWeights(seed: 7)).features(rgb: rgb, count: 2, size: 32)
        let c = try ResNet50(weights: RandomWeights(seed: 8)).features(rgb: rgb, count: 2, size: 32)
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
        let url = try ImageNetWeights.download(from: server.url, into: folder, expectedMD5: try md5(body), showProgress: false)
        #expect(url == folder.appendingPathComponent(ImageNetWeights.fileName))
        #expect(try Data(contentsOf: url) == body)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == [ImageNetWeights.fileName])
    }

    @Test func wrongChecksumIsDiscarded() throws {
        let server = try LocalHTTPServer(body: body)
        defer { server.stop() }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message { _ = try ImageNetWeights.download(from: server.url, into: folder, expectedMD5: "0123", showProgress: false) }
        #expect(text.contains("expected 0123; the download was discarded"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func serverDownSaysWhereToPutTheFile() throws {
        let port = try LocalHTTPServer.closedPort()
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message {
            _ = try ImageNetWeights.download(from: URL(string: "http://127.0.0.1:\(port)/w.h5")!, into: folder, expectedMD5: "x", showProgress: false)
        }
        #expect(text.contains("could not download the ImageNet weights from http://127.0.0.1:\(port)/w.h5"))
        #expect(text.contains("by hand"))
        #expect(text.contains(folder.appendingPathComponent(ImageNetWeights.fileName).path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func cutOffMidwayIsAnErrorAndLeavesNothing() throws {
        let server = try LocalHTTPServer(body: body, cutAfter: 100_000)
        defer { server.stop() }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = message { _ = try ImageNetWeights.download(from: server.url, into: folder, expectedMD5: try md5(body), showProgress: false) }
        #expect(text.contains("could not download") || text.contains("discarded"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }
}
