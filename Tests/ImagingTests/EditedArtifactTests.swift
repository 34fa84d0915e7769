import Artifacts
import Fixtures
import Foundation
import GRDB
import PipelineKit
import Stages
import Testing

/// Artifacts can be edited by hand: a bad row is refused with the file, the table, the row and what
/// was expected, and the earlier output is left alone.
@Suite struct EditedArtifacts {
    func ingested() throws -> (folder: URL, images: URL) {
        let folder = try Fixtures.temporaryFolder()
        let images = folder.appendingPathComponent("images.sqlite")
        _ = try Ingest.run(.init(splits: [("train", Fixtures.sample.appendingPathComponent("train.csv"))], output: images))
        return (folder, images)
    }

    @Test(arguments: [
        ("UPDATE images SET pixels = zeroblob(100) WHERE id = 5", "table images, row id 5: pixels: expected 784 bytes, found 100"),
        ("UPDATE images SET pixels = 'text' WHERE id = 6", "table images, row id 6: pixels: expected a blob, found the text 'text'"),
        ("UPDATE images SET label = 99 WHERE id = 7", "table images, row id 7: label: 99 is none of the file's classes"),
        ("UPDATE images SET width = 0 WHERE id = 10", "table images, row id 10: width, height, channels: expected sides from 1 to 32768 and 1 or 3 channels, found 0, 28, 1"),
        ("UPDATE images SET channels = 3 WHERE id = 11", "table images, row id 11: pixels: expected 2352 bytes, found 784"),
        ("UPDATE classes SET name = 'B' WHERE label = 0", "table classes: the class name 'B' is given to two labels"),
        ("UPDATE images SET label = 'seven' WHERE id = 8", "table images, row id 8: label: expected an integer, found the text 'seven'"),
        ("UPDATE images SET split = 'a/../b' WHERE id = 9", "table images, row id 9: split: expected a split name"),
        // A table without a column the reader selects (an older ingest's) is named as the input.
        ("ALTER TABLE images DROP COLUMN encoding", "table images lacks the column encoding: made by an older ingest"),
    ])
    func preprocessRefusesABadImagesRow(edit: String, expected: String) throws {
        let (folder, images) = try ingested()
        defer { try? FileManager.default.removeItem(at: folder) }
        try DatabaseQueue(path: images.path).write { try $0.execute(sql: edit) }
        let output = folder.appendingPathComponent("preprocessed.sqlite")
        let error = #expect(throws: StageError.self) { try Preprocess.run(.init(input: images, output: output, size: 32, showProgress: false)) }
        #expect(error?.description.contains(images.path + ": " + expected) == true, "\(error?.description ?? "no error")")
        #expect(!FileManager.default.fileExists(atPath: output.path))
    }
}
