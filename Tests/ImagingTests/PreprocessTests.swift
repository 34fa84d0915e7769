import Artifacts
import Dataset
import Fixtures
import Foundation
import GRDB
import Imaging
import PipelineKit
import Stages
import Testing

/// An ingest output of the real sample, in a fresh folder.
func ingestedSample() throws -> (folder: URL, images: URL) {
    let folder = try Fixtures.temporaryFolder()
    let images = folder.appendingPathComponent("images.sqlite")
    _ = try Ingest.run(.init(splits: [("train", Fixtures.sample.appendingPathComponent("train.csv")),
                                      ("test", Fixtures.sample.appendingPathComponent("test.csv"))], output: images))
    return (folder, images)
}

@Suite struct PreprocessStage {
    func ingested() throws -> (folder: URL, images: URL) { try ingestedSample() }

    @Test func storedPNGsDecodeToTheResizedReplicatedImages() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("preprocessed.sqlite")
        let report = try Preprocess.run(.init(input: images, output: output, size: 32, showProgress: false))
        #expect(report.images == 199)

        let (queue, meta) = try PreprocessedStore.open(output)
        #expect(meta[Artifact.contentKey] == report.contentSHA256)
        let params = try PreprocessedStore.params(queue)
        #expect(params["size"] == "32")
        #expect(params["channels"] == "3")
        let (source, _) = try ImagesStore.open(images)
        var originals: [Int: [UInt8]] = [:]
        try ImagesStore.forEachBatch(source) { for image in $0 { originals[image.id] = image.pixels } }
        let resize = BilinearResize(from: (28, 28), to: (32, 32))
        var seen = 0
        do {
            for image in try PreprocessedStore.images(queue, ids: 0 ... Int.max) {
                let bitmap = try PNG.decode(image.png, channels: 3)
                var expected = [UInt8](repeating: 0, count: 32 * 32 * 3)
                originals[image.id]!.withUnsafeBufferPointer { g in expected.withUnsafeMutableBufferPointer { resize.resizeToBytes(g, channels: 3, into: $0) } }
                #expect(bitmap.width == 32 && bitmap.height == 32)
                #expect(bitmap.pixels == expected)
                seen += 1
            }
        }
        #expect(seen == 199)
    }

    @Test func contactSheetAndExportAreReadablePNGs() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let export = folder.appendingPathComponent("export")
        let report = try Preprocess.run(.init(input: images, output: folder.appendingPathComponent("p.sqlite"), size: 64,
                                              export: export, exportLimit: 5, showProgress: false))
        let sheet = try PNG.decode(try Data(contentsOf: report.contactSheet), channels: 1)
        // 24 letters, one row each.
        #expect(sheet.height >= 24 * 56)
        let files = try FileManager.default.contentsOfDirectory(atPath: export.path).sorted()
        let labels = try String(contentsOf: Fixtures.sample.appendingPathComponent("train.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().prefix(5).map { Int($0.prefix { $0 != "," })! }
        #expect(files == labels.enumerated().map { "train-\($0.offset + 1)-\(SignLetters.letter($0.element)).png" }.sorted())
        let first = try PNG.decode(try Data(contentsOf: export.appendingPathComponent(files[0])), channels: 3)
        #expect(first.width == 64)
    }

    @Test func sameInputSameContent() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = try Preprocess.run(.init(input: images, output: folder.appendingPathComponent("a.sqlite"), size: 40, showProgress: false))
        let b = try Preprocess.run(.init(input: images, output: folder.appendingPathComponent("b.sqlite"), size: 40, showProgress: false))
        #expect(a.contentSHA256 == b.contentSHA256)
        #expect(try Data(contentsOf: folder.appendingPathComponent("a.sqlite")) == Data(contentsOf: folder.appendingPathComponent("b.sqlite")))
    }

    @Test func errorsLeaveTheEarlierOutputAlone() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("preprocessed.sqlite")
        _ = try Preprocess.run(.init(input: images, output: output, size: 32, showProgress: false))
        let before = try Data(contentsOf: output)

        for size in [31, 513] {
            #expect(throws: StageError.self) { try Preprocess.run(.init(input: images, output: output, size: size, showProgress: false)) }
        }
        // A preprocess output is not an ingest output.
        let wrongKind = #expect(throws: StageError.self) {
            try Preprocess.run(.init(input: output, output: folder.appendingPathComponent("x.sqlite"), size: 32, showProgress: false))
        }
        #expect(wrongKind?.description.contains("expected an ingest output") == true)
        // Not SQLite at all.
        let text = folder.appendingPathComponent("notes.sqlite")
        try Data("hello".utf8).write(to: text)
        #expect(throws: StageError.self) {
            try Preprocess.run(.init(input: text, output: folder.appendingPathComponent("y.sqlite"), size: 32, showProgress: false))
        }
        // An output whose folder is a regular file.
        #expect(throws: StageError.self) {
            try Preprocess.run(.init(input: images, output: text.appendingPathComponent("p.sqlite"), size: 32, showProgress: false))
        }
        #expect(try Data(contentsOf: output) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }.isEmpty)
    }
}

/// `preprocess --augment K`: views of the training images only, traceable to their source and
/// transform, the same bytes for the same seed, and nothing at all for K = 0.
@Suite struct AugmentedViews {
    func ingested() throws -> (folder: URL, images: URL) { try ingestedSample() }

    @Test func noViewsIsExactlyTheOutputWithoutAugmentation() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = folder.appendingPathComponent("plain.sqlite"), zero = folder.appendingPathComponent("zero.sqlite")
        let report = try Preprocess.run(.init(input: images, output: plain, size: 32, showProgress: false))
        _ = try Preprocess.run(.init(input: images, output: zero, size: 32, showProgress: false, augment: 0,
                                     ranges: .init(rotation: 45, translation: 5, scale: 0.3, brightness: 0.5, contrast: 0.5, flip: true), augmentSeed: 7))
        #expect(try Data(contentsOf: plain) == Data(contentsOf: zero))
        // The pixels the sample had at 32x32 before augmentation existed, decoded: a hash of the PNG
        // bytes would pin the installed zlib's output too, which is not ours to promise.
        let (queue, _) = try PreprocessedStore.open(zero)
        var pixels: [UInt8] = []
        for image in try PreprocessedStore.images(queue, ids: 0 ... Int(Int32.max)) {
            pixels += [UInt8(image.id & 0xFF), UInt8(image.label)] + (try PNG.decode(image.png, channels: 3)).pixels
        }
        let digest = pixels.withUnsafeBytes { sha256(of: $0) }
        print("pre-augmentation pixels at 32: sha256 \(digest)")
        #expect(digest == "b71659934b75f37a82fd8cbd4e8a2b8d5b0951ca8d2b849f2f52b5fcf346c85e")
        #expect(try PreprocessedStore.open(zero).0.read { try $0.tableExists("views") } == false)
    }

    @Test func viewsAreTraceableAndTheSameSeedGivesTheSameBytes() throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        let ranges = Augment.Ranges(rotation: 20, translation: 2, scale: 0.1, brightness: 0.1, contrast: 0.2, flip: true)
        let one = folder.appendingPathComponent("one.sqlite"), two = folder.appendingPathComponent("two.sqlite"), other = folder.appendingPathComponent("other.sqlite")
        let report = try Preprocess.run(.init(input: images, output: one, size: 32, showProgress: false, augment: 3, ranges: ranges, augmentSeed: 4))
        _ = try Preprocess.run(.init(input: images, output: two, size: 32, showProgress: false, augment: 3, ranges: ranges, augmentSeed: 4))
        _ = try Preprocess.run(.init(input: images, output: other, size: 32, showProgress: false, augment: 3, ranges: ranges, augmentSeed: 5))
        #expect(try Data(contentsOf: one) == Data(contentsOf: two), "the same seed: the same file, byte for byte")
        #expect(try PreprocessedStore.open(other).1[Artifact.contentKey] != report.contentSHA256)
        #expect(report.images == 199 + 188 * 3 && report.views == 188 * 3)

        let (queue, _) = try PreprocessedStore.open(one)
        let (source, _) = try ImagesStore.open(images)
        var originals: [Int: ImagesStore.Image] = [:]
        try ImagesStore.forEachBatch(source) { for image in $0 { originals[image.id] = image } }
        let stored = Dictionary(uniqueKeysWithValues: try PreprocessedStore.images(queue, ids: 0 ... Int.max).map { ($0.id, $0) })
        let rows = try queue.read { try Row.fetchAll($0, sql: "SELECT * FROM views ORDER BY id") }
        #expect(rows.count == 188 * 4, "a row per training image and view, 0 the original")
        let network = NetworkInput(size: 32)
        for row in rows {
            let id: Int = row["id"], sourceId: Int = row["source"], view: Int = row["view"]
            let original = try #require(originals[sourceId])
            let image = try #require(stored[id])
            #expect(original.split == "train" && image.split == "train" && image.label == original.label)
            if view == 0 {
                #expect(id == sourceId)
                continue
            }
            #expect(id > originals.keys.max()!, "views come after every original")
            // The stored transform is the one drawn for this image and view, and remakes the stored PNG.
            let transform = Augment.Transform(rotation: row["rotation"], dx: row["dx"], dy: row["dy"], scale: row["scale"],
                                              brightness: row["brightness"], contrast: row["contrast"], flip: (row["flip"] as Int) == 1)
            #expect(transform == Augment.draw(ranges, seed: 4, id: sourceId, view: view))
            var rgb = [UInt8](repeating: 0, count: 32 * 32 * 3)
            Augment.apply(transform, to: original.pixels, side: 28).withUnsafeBufferPointer { grey in
                rgb.withUnsafeMutableBufferPointer { network.rgb(grey, width: 28, height: 28, channels: 1, into: $0) }
            }
            #expect(try PNG.decode(image.png, channels: 3).pixels == rgb, "view \(view) of image \(sourceId)")
        }
        let testIds = Set(originals.values.filter { $0.split == "test" }.map(\.id))
        #expect(!rows.contains { testIds.contains($0["source"] as Int) }, "test images have no views")
    }
}
