import Foundation
import PipelineKit
import Stages
import Testing

/// An output path may only be a new file or a regular file: never a FIFO, a device or a folder, and
/// never the stage's own input, however the path is spelled.
@Suite struct OutputSafety {
    @Test func aFIFOOrAFolderIsNotReplaced() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("pipe")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let train = sampleFolder.appendingPathComponent("train.csv")
        let error = #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("train", train)], output: fifo)) }
        #expect(error?.description.contains("is a FIFO, not a file this stage may replace") == true)
        var info = stat()
        #expect(lstat(fifo.path, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO)
        let sub = folder.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let folderError = #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("train", train)], output: sub)) }
        #expect(folderError?.description.contains("is a folder") == true)
    }

    /// `ingest --train x.csv --output ./x.csv` would have destroyed the CSV.
    @Test func theInputIsNotOverwrittenUnderAnotherSpelling() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("x.csv")
        try FileManager.default.copyItem(at: sampleFolder.appendingPathComponent("train.csv"), to: csv)
        let before = try Data(contentsOf: csv)
        let otherSpelling = URL(fileURLWithPath: folder.path + "/./sub/../x.csv")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let error = #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("train", csv)], output: otherSpelling)) }
        #expect(error?.description.contains("is the stage's input") == true)
        let link = folder.appendingPathComponent("link.csv")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: csv)
        #expect(throws: StageError.self) { try Ingest.run(.init(splits: [("train", link)], output: csv)) }
        #expect(try Data(contentsOf: csv) == before)
    }
}

@Suite struct StaleTemporaries {
    /// A temporary file of a process that no longer exists is removed by the next write of the same
    /// output; one of a live process (here, this one's parent) is left alone.
    @Test func deadProcessesLeftoversAreRemoved() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var dead: Int32 = 999_999
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = folder.appendingPathComponent(".images.sqlite.tmp-\(dead)-7")
        let live = folder.appendingPathComponent(".images.sqlite.tmp-\(getppid())-7")
        for file in [stale, live] { try Data("partial".utf8).write(to: file) }
        _ = try Ingest.run(.init(splits: [("train", sampleFolder.appendingPathComponent("train.csv"))], output: folder.appendingPathComponent("images.sqlite")))
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
    }
}
