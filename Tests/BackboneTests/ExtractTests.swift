import Artifacts
import Backbone
import Dataset
import Fixtures
import Foundation
import GRDB
import Imaging
import Numerical
import PipelineKit
import Stages
import Testing
import WeightsFetch

/// The sample ingested and preprocessed at `size` in a fresh folder.
func preprocessedSample(size: Int) throws -> (folder: URL, preprocessed: URL) {
    let folder = try Fixtures.temporaryFolder()
    let images = folder.appendingPathComponent("images.sqlite")
    _ = try Ingest.run(.init(splits: [("train", Fixtures.sample.appendingPathComponent("train.csv")),
                                      ("test", Fixtures.sample.appendingPathComponent("test.csv"))], output: images))
    let preprocessed = folder.appendingPathComponent("preprocessed.sqlite")
    _ = try Preprocess.run(.init(input: images, output: preprocessed, size: size, showProgress: false))
    return (folder, preprocessed)
}

@Suite struct ExtractStage {
    @Test func throughTheRealStagesTheFirstImagesMatchKeras() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("features.sqlite")
        let weights = try Fixtures.parityWeights()
        let report = try Extract.run(.init(input: preprocessed, output: output, weights: .file(weights), batch: 16, showProgress: false))
        #expect(report.images == 199)
        #expect(!report.randomWeights)

        let (queue, meta) = try FeaturesStore.open(output)
        #expect(meta[Artifact.contentKey] == report.contentSHA256)
        let provenance = try FeaturesStore.backbone(queue)
        #expect(provenance["weights"] == weights.path)
        #expect(provenance["weights_md5"] == (try fileMD5(weights)))
        #expect(provenance["input_size"] == "32")
        #expect(provenance["layers"] == "conv5_block3_out")
        let features = try FeaturesStore.all(queue, layer: "conv5_block3_out")
        #expect(features.count == 199)
        #expect(features.allSatisfy { $0.vector.count == 2048 })
        // The fixture's four images are the sample's first four training rows.
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_32.npy")).floats
        let ours = features.prefix(4).flatMap(\.vector)
        let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * expected.map(abs).max()!)
        #expect(features.prefix(4).map(\.label) == [3, 6, 2, 2])
    }

    /// Cut at three layers and keep one layer's maps, through the real stage: a row per image and
    /// layer matching Keras's pooled block outputs, and float16 maps whose averages are those vectors.
    @Test func severalLayersAndKeptMapsMatchKeras() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("features.sqlite")
        let cut = try Cut(["conv5_block3_out", "conv3_block4_out", "conv4_block6_out"], of: ResNet50.architecture)
        let keep = ResNet50.blockNames.firstIndex(of: "conv4_block6_out")!
        _ = try Extract.run(.init(input: preprocessed, output: output, weights: .file(try Fixtures.parityWeights()), batch: 16, showProgress: false,
                                  cut: cut, keep: keep))
        let (queue, _) = try FeaturesStore.open(output)
        let provenance = try FeaturesStore.backbone(queue)
        #expect(provenance["layers"] == "conv3_block4_out,conv4_block6_out,conv5_block3_out")
        #expect(provenance["keep"] == "conv4_block6_out")
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM features") } == 3 * 199)
        let expected = try NPY(Fixtures.parity.appendingPathComponent("blocks_32.npy")).floats
        let width = ResNet50.blockChannels.reduce(0, +)
        for (name, block) in zip(cut.names, cut.blocks) {
            let offset = ResNet50.blockChannels[..<block].reduce(0, +), channels = ResNet50.blockChannels[block]
            let features = try FeaturesStore.all(queue, layer: name)
            #expect(features.count == 199 && features.allSatisfy { $0.vector.count == channels })
            var worst: Float = 0, largest: Float = 0
            for image in 0 ..< 4 {
                for c in 0 ..< channels {
                    let reference = expected[image * width + offset + c]
                    largest = max(largest, abs(reference))
                    worst = max(worst, abs(features[image].vector[c] - reference))
                }
            }
            #expect(worst <= 1e-4 * largest, "\(name): \(worst) of \(largest)")
        }
        // The kept maps: 2x2x1024 at 32, in float16; their average is the stored vector to float16's precision.
        let vectors = try FeaturesStore.all(queue, layer: "conv4_block6_out")
        let maps = try queue.read { try Row.fetchAll($0, sql: "SELECT id, height, width, channels, data FROM maps ORDER BY id") }
        #expect(maps.count == 199)
        for (row, vector) in zip(maps, vectors).prefix(20) {
            #expect(row["id"] as Int == vector.id)
            let shape: [Int] = [row["height"], row["width"], row["channels"]]
            #expect(shape == [2, 2, 1024])
            var map = [Float](repeating: 0, count: 4 * 1024)
            map.withUnsafeMutableBufferPointer { FeaturesStore.decodeHalf(row["data"] as Data, into: $0.baseAddress!, count: 4 * 1024) }
            for c in 0 ..< 1024 {
                let mean = (map[c] + map[1024 + c] + map[2048 + c] + map[3072 + c]) / 4
                #expect(abs(mean - vector.vector[c]) <= 1e-3 * max(1, abs(vector.vector[c])), "image \(vector.id), channel \(c)")
            }
        }
    }

    @Test func randomWeightsSaySoAndRepeat() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("a.sqlite"), weights: .random(seed: 3), showProgress: false))
        let b = try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("b.sqlite"), weights: .random(seed: 3), showProgress: false))
        #expect(a.randomWeights)
        // The same bits again on our kernels; OpenBLAS promises that of no call.
        if GEMMKernel.preferred != .blas {
            #expect(a.contentSHA256 == b.contentSHA256)
            #expect(try Data(contentsOf: folder.appendingPathComponent("a.sqlite")) == Data(contentsOf: folder.appendingPathComponent("b.sqlite")))
        }
        let (queue, _) = try FeaturesStore.open(folder.appendingPathComponent("a.sqlite"))
        let provenance = try FeaturesStore.backbone(queue)
        #expect(provenance["random"] == "1")
        #expect(provenance["weights"] == "random:3")
        // Nothing but the output is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }.isEmpty)
    }

    @Test func wrongInputsAreRefused() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: StageError.self) {
            try Extract.run(.init(input: folder.appendingPathComponent("images.sqlite"), output: folder.appendingPathComponent("f.sqlite"),
                                  weights: .random(seed: 0), showProgress: false))
        }
        #expect(throws: StageError.self) {
            try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("f.sqlite"), weights: .random(seed: 0), batch: 0, showProgress: false))
        }
        #expect(throws: WeightsError.self) {
            try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("f.sqlite"),
                                  weights: .file(folder.appendingPathComponent("none.h5")), showProgress: false))
        }
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("f.sqlite").path))
    }

    @Test func weightsSpecParsing() throws {
        #expect(try WeightsSpec("imagenet") == .imagenet)
        #expect(try WeightsSpec("random:42") == .random(seed: 42))
        #expect(try WeightsSpec("some/file.h5") == .file(URL(fileURLWithPath: "some/file.h5")))
        #expect(throws: StageError.self) { try WeightsSpec("random:x") }
    }
}
