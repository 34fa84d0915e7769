import Foundation
import PipelineKit
import Testing

/// A folder as a stage's input: hashed by its listing and contents, as DVC does, so that a changed,
/// added, removed or renamed file makes the stage stale and nothing else does.
@Suite struct FolderInputs {
    @Test func aFolderHashFollowsItsFilesAndTheirNames() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-folder-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let photos = folder.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos.appendingPathComponent("a"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: photos.appendingPathComponent("b"), withIntermediateDirectories: true)
        try Data("one".utf8).write(to: photos.appendingPathComponent("a/1.png"))
        try Data("two".utf8).write(to: photos.appendingPathComponent("b/2.png"))
        var manifest = try Manifest.load(folder.appendingPathComponent("manifest.json"), pipeline: "t")
        let first = try #require(try manifest.sha256(of: photos))
        #expect(try manifest.sha256(of: photos) == first)
        // Same contents under another name: another folder.
        try FileManager.default.moveItem(at: photos.appendingPathComponent("b/2.png"), to: photos.appendingPathComponent("a/2.png"))
        let renamed = try #require(try manifest.sha256(of: photos))
        #expect(renamed != first)
        try Data("changed".utf8).write(to: photos.appendingPathComponent("a/2.png"))
        #expect(try manifest.sha256(of: photos) != renamed)
        // A symbolic link loop is listed once, not followed forever.
        try FileManager.default.createSymbolicLink(at: photos.appendingPathComponent("a/loop"), withDestinationURL: photos)
        _ = try manifest.sha256(of: photos)
    }
}
