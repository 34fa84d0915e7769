import Foundation
import Testing

/// A 150 KB file system (tmpfs, mounted for the test; root only, as CI runs) fills up mid-write.
private func mountSmallDisk() -> URL? {
    guard getuid() == 0, let folder = try? temporaryFolder() else { return nil }
    let mount = Process()
    mount.executableURL = URL(fileURLWithPath: "/bin/mount")
    mount.arguments = ["-t", "tmpfs", "-o", "size=150k", "tmpfs", folder.path]
    mount.standardError = FileHandle.nullDevice
    guard (try? mount.run()) != nil else { return nil }
    mount.waitUntilExit()
    return mount.terminationStatus == 0 ? folder : nil
}

private func unmount(_ folder: URL) {
    let umount = Process()
    umount.executableURL = URL(fileURLWithPath: "/bin/umount")
    umount.arguments = [folder.path]
    try? umount.run()
    umount.waitUntilExit()
    try? FileManager.default.removeItem(at: folder)
}

@Suite struct FullDisk {
    /// A full disk is said as such, the earlier good output stays byte-identical, and no temporary
    /// file is left to fill the disk further.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a small tmpfs"))
    func aFullDiskIsSaidAndTheEarlierOutputStays() throws {
        let disk = try #require(mountSmallDisk(), "mounting a tmpfs failed")
        defer { unmount(disk) }
        let output = disk.appendingPathComponent("images.sqlite")
        let small = disk.appendingPathComponent("small.csv")
        let lines = try String(contentsOfFile: sample("train.csv"), encoding: .utf8).split(separator: "\n").prefix(6)
        try (lines.joined(separator: "\n") + "\n").write(to: small, atomically: false, encoding: .utf8)
        #expect(try runTool("ingest", ["--train", small.path, "--output", output.path]).status == 0)
        let before = try Data(contentsOf: output)
        let full = try runTool("ingest", ["--train", sample("train.csv"), "--test", sample("test.csv"), "--output", output.path])
        #expect(full.status == 1)
        // The message names the file being written, then says what happened and what to do.
        #expect(full.stderr.contains("ingest: error: \(output.path): cannot write it: the disk is full") && full.stderr.contains("free some space and run again"),
                "\(full.stderr)")
        #expect(try Data(contentsOf: output) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path).sorted() == ["images.sqlite", "small.csv"])
    }
}
