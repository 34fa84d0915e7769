import Artifacts
import Dataset
import Foundation
import GRDB
import Imaging
import Stages
import Testing

/// `ingest --folder`: Keras's layouts, the vocabulary and the files as found; bad files named, never
/// half-written; the odd folder a clear error.
@Suite struct FolderIngest {
    static let photos = repositoryRoot.appendingPathComponent("pipelines/data/asl-colour-4")

    /// A folder of `perClass` real photos in each of `classes` (flat: FOLDER/CLASS/*), copied from the sample.
    static func flatFolder(_ root: URL, classes: [String] = ["A", "B", "C", "D"], perClass: Int = 5) throws -> URL {
        let folder = root.appendingPathComponent("photos")
        for name in classes {
            let source = photos.appendingPathComponent("train/\(name)")
            let files = try FileManager.default.contentsOfDirectory(atPath: source.path).sorted().prefix(perClass)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(name), withIntermediateDirectories: true)
            for file in files {
                try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: folder.appendingPathComponent("\(name)/\(file)"))
            }
        }
        return folder
    }

    static func ingest(_ folder: URL, into output: URL, _ options: ImageFolder.Options = .init()) throws -> Ingest.Report {
        var ingest = Ingest.Options(splits: [], output: output)
        ingest.folder = folder
        ingest.folderOptions = options
        return try Ingest.run(ingest)
    }

    @Test func splitFoldersClassesAndFilesAsFound() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let output = root.appendingPathComponent("images.sqlite")
        // Notes and system files beside the photos are left out, and counted.
        try Data("notes".utf8).write(to: root.appendingPathComponent("notes.txt"))
        let report = try Self.ingest(Self.photos, into: output)
        #expect(report.classes.entries.map(\.name) == ["A", "B", "C", "D"])
        #expect(report.splits.map(\.name) == ["train", "test"])
        #expect(report.splits.map(\.rows) == [80, 20])
        let queue = try DatabaseQueue(path: output.path)
        let row = try #require(try queue.read { try Row.fetchOne($0, sql: "SELECT * FROM images WHERE path = 'test/C/' || (SELECT min(substr(path, 8)) FROM images WHERE path LIKE 'test/C/%')") })
        let path: String = row["path"]
        let stored: Data = row["pixels"]
        #expect(stored == (try Data(contentsOf: Self.photos.appendingPathComponent(path))), "the file's bytes, as found")
        #expect(row["encoding"] as String == "jpeg")
        #expect([row["width"], row["height"], row["channels"]] as [Int] == [200, 200, 3])
        #expect(row["label"] as Int == 2)
        // The same folder gives the same file.
        let again = try Self.ingest(Self.photos, into: root.appendingPathComponent("again.sqlite"))
        #expect(again.contentSHA256 == report.contentSHA256)
    }

    @Test func theDrawnTestSplitIsStratifiedAndSeeded() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try Self.flatFolder(root, perClass: 10)
        try Data().write(to: folder.appendingPathComponent("A/.DS_Store"))
        func testPaths(seed: UInt64, _ name: String) throws -> [String] {
            let output = root.appendingPathComponent(name)
            let report = try Self.ingest(folder, into: output, .init(testFraction: 0.2, splitSeed: seed))
            #expect(report.ignored == ["A/.DS_Store"])
            return try DatabaseQueue(path: output.path).read { try String.fetchAll($0, sql: "SELECT path FROM images WHERE split = 'test' ORDER BY path") }
        }
        let first = try testPaths(seed: 0, "a.sqlite")
        #expect(first.count == 8)
        for name in ["A", "B", "C", "D"] { #expect(first.filter { $0.hasPrefix("\(name)/") }.count == 2, "two of each class's ten") }
        #expect(try testPaths(seed: 0, "b.sqlite") == first)
        #expect(try testPaths(seed: 1, "c.sqlite") != first)
    }

    /// Empty, text, truncated, and a header claiming 65000x65000 pixels: every one named with why,
    /// nothing written; with skip-bad, the rest ingested and the bad ones recorded.
    @Test func badFilesAreNamedAndCostNothingElse() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try Self.flatFolder(root, classes: ["A", "B"], perClass: 3)
        let photo = try Data(contentsOf: folder.appendingPathComponent("A").appendingPathComponent(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("A").path).sorted()[0]))
        try Data().write(to: folder.appendingPathComponent("A/empty.jpg"))
        try Data("not a picture".utf8).write(to: folder.appendingPathComponent("A/text.PNG"))
        try photo.prefix(photo.count / 2).write(to: folder.appendingPathComponent("B/truncated.jpg"))
        // The baseline frame header (FF C0): length, precision, then height and width, big-endian.
        var bomb = photo
        let frame = try #require((0 ..< bomb.count - 1).first { bomb[$0] == 0xFF && (bomb[$0 + 1] == 0xC0 || bomb[$0 + 1] == 0xC2) })
        for (offset, byte) in [UInt8(0xFD), 0xE8, 0xFD, 0xE8].enumerated() { bomb[frame + 5 + offset] = byte }
        try bomb.write(to: folder.appendingPathComponent("B/bomb.jpeg"))
        let output = root.appendingPathComponent("images.sqlite")
        try Data("earlier good file".utf8).write(to: output)
        let error = #expect(throws: ImageFolder.Problems.self) { try Self.ingest(folder, into: output) }
        let text = error?.description ?? ""
        #expect(text.contains("4 problems"), "\(text)")
        #expect(text.contains("A/empty.jpg: the file is empty"))
        #expect(text.contains("A/text.PNG: neither a JPEG nor a PNG"))
        #expect(text.contains("B/bomb.jpeg: its header claims 65000x65000 pixels"))
        #expect(text.contains("B/truncated.jpg: a damaged JPEG"), "its header is whole: found by decoding it")
        #expect(try Data(contentsOf: output) == Data("earlier good file".utf8), "the earlier output untouched")

        let report = try Self.ingest(folder, into: output, .init(skipBad: true))
        #expect(report.skipped.map(\.path).sorted() == ["A/empty.jpg", "A/text.PNG", "B/bomb.jpeg", "B/truncated.jpg"])
        #expect(report.imageCount == 6)
        let queue = try DatabaseQueue(path: output.path)
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM skipped") } == 4)
        // An edited row whose bytes no longer decode is named by preprocess, which writes nothing.
        try queue.write { try $0.execute(sql: "UPDATE images SET pixels = substr(pixels, 1, 2000) WHERE id = 2") }
        let preprocessed = root.appendingPathComponent("preprocessed.sqlite")
        let decodeError = #expect(throws: (any Error).self) {
            try Preprocess.run(.init(input: output, output: preprocessed, size: 32, showProgress: false))
        }
        #expect("\(decodeError.map { $0.userMessage } ?? "")".contains("image 2 (A/"), "\(decodeError.map { $0.userMessage } ?? "")")
        #expect(!FileManager.default.fileExists(atPath: preprocessed.path))
    }

    @Test(arguments: [
        ("one", "found 1 class folder"),
        ("empty", "B: no JPEG or PNG images in this class folder"),
        ("case", "class folders 'A' and 'a' differ only by case"),
    ])
    func oddFoldersAreClearErrors(kind: String, message: String) throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder: URL
        switch kind {
        case "one": folder = try Self.flatFolder(root, classes: ["A"], perClass: 2)
        case "empty":
            folder = try Self.flatFolder(root, classes: ["A"], perClass: 2)
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("B"), withIntermediateDirectories: true)
        default:
            folder = try Self.flatFolder(root, classes: ["A", "B"], perClass: 2)
            try FileManager.default.copyItem(at: folder.appendingPathComponent("A"), to: folder.appendingPathComponent("a"))
        }
        let error = #expect(throws: (any Error).self) { try Self.ingest(folder, into: root.appendingPathComponent("images.sqlite")) }
        #expect("\(error.map { $0.userMessage } ?? "")".contains(message), "\(error.map { $0.userMessage } ?? "")")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("images.sqlite").path))
    }

    /// A symbolic link from a class folder to its parent is not followed (Keras's follow_links=False).
    @Test func aLinkLoopEndsTheWalk() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try Self.flatFolder(root, classes: ["A", "B"], perClass: 2)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("A/loop"), withDestinationURL: folder)
        let report = try Self.ingest(folder, into: root.appendingPathComponent("images.sqlite"), .init(testFraction: 0))
        #expect(report.imageCount == 4)
    }

    /// Names whose bytes are not UTF-8 (a Latin-1 "é", 0xE9, as an old camera or zip may leave):
    /// an image file is a bad file, named with U+FFFD (skipped with --skip-bad); another file is
    /// ignored as any non-image is; a class folder is an error, since a class name is text.
    @Test func namesThatAreNotUTF8() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try Self.flatFolder(root, classes: ["A", "B"], perClass: 2)
        func create(_ relative: [UInt8], copying source: URL? = nil, folder isFolder: Bool = false) throws {
            let path = Array(folder.path.utf8) + [UInt8(ascii: "/")] + relative + [0]
            try path.withUnsafeBufferPointer { buffer in
                let name = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                if isFolder {
                    guard mkdir(name, 0o755) == 0 else { throw CocoaError(.fileWriteUnknown) }
                    return
                }
                let bytes = try Data(contentsOf: source!)
                guard let file = fopen(name, "wb") else { throw CocoaError(.fileWriteUnknown) }
                defer { fclose(file) }
                _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, file) }
            }
        }
        let photo = folder.appendingPathComponent("A").appendingPathComponent(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("A").path).sorted()[0])
        try create(Array("A/caf".utf8) + [0xE9] + Array(".jpg".utf8), copying: photo)
        try create(Array("B/notes-".utf8) + [0xE9] + Array(".txt".utf8), copying: photo)
        let output = root.appendingPathComponent("images.sqlite")
        let error = #expect(throws: ImageFolder.Problems.self) { try Self.ingest(folder, into: output) }
        #expect(error?.description.contains("A/caf\u{FFFD}.jpg: its name is not valid UTF-8") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("1 problem") == true, "the text file is ignored: \(error?.description ?? "")")
        #expect(!FileManager.default.fileExists(atPath: output.path))
        let report = try Self.ingest(folder, into: output, .init(testFraction: 0, skipBad: true))
        #expect(report.skipped.map(\.path) == ["A/caf\u{FFFD}.jpg"] && report.imageCount == 4)

        try create(Array("caf".utf8) + [0xE9], folder: true)
        let classError = #expect(throws: (any Error).self) { try Self.ingest(folder, into: root.appendingPathComponent("other.sqlite")) }
        #expect("\(classError.map { $0.userMessage } ?? "")".contains("has a name that is not valid UTF-8"), "\(classError.map { $0.userMessage } ?? "")")
    }

    /// Augmented views of colour photos: warped on the 200x200 original in colour, after every
    /// original, seeded (the same options give the same file), the contact sheet in colour.
    @Test func colourPhotosGetColourViews() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try Self.flatFolder(root, classes: ["A", "B"], perClass: 3)
        let images = root.appendingPathComponent("images.sqlite")
        _ = try Self.ingest(folder, into: images, .init(testFraction: 0))
        var options = Preprocess.Options(input: images, output: root.appendingPathComponent("views.sqlite"), size: 32, showProgress: false, augment: 2,
                                         ranges: .init(rotation: 20, translation: 15, flip: true), augmentSeed: 5)
        let report = try Preprocess.run(options)
        #expect(report.images == 6 + 12 && report.views == 12)
        let queue = try DatabaseQueue(path: options.output.path)
        let views = try queue.read { try Row.fetchAll($0, sql: "SELECT png FROM images WHERE id > 6 ORDER BY id") }
        #expect(views.count == 12)
        // Colour survives the warp: a view's channels differ somewhere.
        func isColour(_ bitmap: Bitmap) -> Bool {
            let pixels = bitmap.pixels
            return stride(from: 0, to: pixels.count, by: 3).contains { (index: Int) -> Bool in pixels[index] != pixels[index + 1] || pixels[index] != pixels[index + 2] }
        }
        let firstView: Data = views[0]["png"]
        #expect(isColour(try PNG.decode(firstView, channels: 3)))
        #expect(isColour(try PNG.decode(try Data(contentsOf: report.contactSheet), channels: 3)), "a colour contact sheet")
        options.output = root.appendingPathComponent("again.sqlite")
        #expect(try Preprocess.run(options).contentSHA256 == report.contentSHA256)
    }
}
