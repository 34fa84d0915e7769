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
        let features = try FeaturesStore.all(queue)
        #expect(features.count == 199)
        #expect(features.allSatisfy { $0.vector.count == 2048 })
        // The fixture's four images are the sample's first four training rows.
        let expected = try NPY(Fixtures.parity.appendingPathComponent("features_32.npy")).floats
        let ours = features.prefix(4).flatMap(\.vector)
        let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * expected.map(abs).max()!)
        #expect(features.prefix(4).map(\.label) == [3, 6, 2, 2])
    }

    @Test func randomWeightsSaySoAndRepeat() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("a.sqlite"), weights: .random(seed: 3), showProgress: false))
        let b = try Extract.run(.init(input: preprocessed, output: folder.appendingPathComponent("b.sqlite"), weights: .random(seed: 3), showProgress: false))
        #expect(a.randomWeights)
        #expect(a.contentSHA256 == b.contentSHA256)
        #expect(try Data(contentsOf: folder.appendingPathComponent("a.sqlite")) == Data(contentsOf: folder.appendingPathComponent("b.sqlite")))
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
