import Artifacts
import Dataset
import Foundation
import GRDB
import PipelineKit
import Stages
import Testing

@Suite struct IngestStage {
    let train = sampleFolder.appendingPathComponent("train.csv")
    let test = sampleFolder.appendingPathComponent("test.csv")

    @Test func sampleRoundTripsEveryLabelAndPixel() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("images.sqlite")
        let report = try Ingest.run(.init(splits: [("train", train), ("test", test)], output: output))
        #expect(report.splits.map(\.rows) == [188, 11])
        #expect(report.splits[0].classCounts.count == 24)

        let (queue, meta) = try ImagesStore.open(output)
        #expect(meta[Artifact.contentKey] == report.contentSHA256)
        for (split, file) in [("train", train), ("test", test)] {
            let expected = try plainRows(file)
            var stored: [ImagesStore.Image] = []
            try ImagesStore.forEachBatch(queue, split: split, batch: 50) { stored += $0 }
            #expect(stored.count == expected.count)
            for (image, row) in zip(stored, expected) {
                #expect(image.label == row.label)
                #expect(image.pixels == row.pixels)
            }
            #expect(stored.map(\.sourceRow) == Array(0 ..< expected.count))
        }
        let sources = try queue.read { try Row.fetchAll($0, sql: "SELECT split, sha256, rows FROM sources ORDER BY split") }
        #expect(sources.map { $0["rows"] as Int } == [11, 188])
        #expect(sources[1]["sha256"] as String == (try sha256(ofFile: train)))
        let letters = try queue.read { try String.fetchAll($0, sql: "SELECT name FROM classes WHERE label = 24") }
        #expect(letters == ["Y"])
    }

    @Test func sameInputGivesSameContentAndBytes() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = folder.appendingPathComponent("a.sqlite"), second = folder.appendingPathComponent("b.sqlite")
        let a = try Ingest.run(.init(splits: [("train", train)], output: first))
        let b = try Ingest.run(.init(splits: [("train", train)], output: second))
        #expect(a.contentSHA256 == b.contentSHA256)
        #expect(try Data(contentsOf: first) == Data(contentsOf: second))
    }

    @Test func failureLeavesEarlierOutputByteIdentical() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("images.sqlite")
        _ = try Ingest.run(.init(splits: [("train", train)], output: output))
        let before = try Data(contentsOf: output)

        let broken = folder.appendingPathComponent("broken.csv")
        var lines = try String(contentsOf: train, encoding: .utf8).components(separatedBy: "\n")
        lines[5] = lines[5].replacingOccurrences(of: ",", with: ",x", options: [], range: lines[5].range(of: ","))
        try lines.joined(separator: "\n").write(to: broken, atomically: true, encoding: .utf8)
        #expect(throws: LocatedErrors.self) {
            try Ingest.run(.init(splits: [("train", broken)], output: output))
        }
        #expect(try Data(contentsOf: output) == before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func missingFileIsNamed() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let missing = folder.appendingPathComponent("nope.csv")
        do {
            _ = try Ingest.run(.init(splits: [("train", missing)], output: folder.appendingPathComponent("o.sqlite")))
            Issue.record("expected a failure")
        } catch let error as LocatedErrors {
            #expect(error.description.contains("nope.csv"))
            #expect(error.description.contains("no such file"))
        }
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("o.sqlite").path))
    }

    @Test func duplicatesAreWarnedAbout() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let lines = try String(contentsOf: train, encoding: .utf8).split(separator: "\n")
        let repeated = folder.appendingPathComponent("repeated.csv")
        let blank = (["3"] + Array(repeating: "0", count: 784)).joined(separator: ",")
        try ([String(lines[0]), blank, String(lines[2]), blank].joined(separator: "\n"))
            .write(to: repeated, atomically: true, encoding: .utf8)
        let report = try Ingest.run(.init(splits: [("train", train), ("extra", repeated)],
                                          output: folder.appendingPathComponent("o.sqlite")))
        #expect(report.warnings.count == 2)
        #expect(report.warnings.contains { $0.hasPrefix("extra: 1 image(s) repeat an earlier one (row 2 = extra row 0)") })
        #expect(report.warnings.contains { $0.hasPrefix("extra: 1 image(s) also appear in train, which may leak between splits (row 1 = train row 1)") })
    }

    /// The output's folder is a regular file, which no user, root included, can write into.
    @Test func unwritableOutputFolderFailsBeforeWork() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let notAFolder = folder.appendingPathComponent("file")
        try Data("x".utf8).write(to: notAFolder)
        #expect(throws: StageError.self) {
            try Ingest.run(.init(splits: [("train", train)], output: notAFolder.appendingPathComponent("images.sqlite")))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["file"])
    }

    @Test func badSplitNamesAreRefused() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("x.sqlite")
        #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("a b", train)], output: output)) }
        #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("t", train), ("t", test)], output: output)) }
        #expect(throws: StageError.self) { try Ingest.run(.init(splits: [], output: output)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }
}
