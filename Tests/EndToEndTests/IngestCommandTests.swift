import Foundation
import Testing

@Suite struct IngestCommand {
    @Test func sampleThroughTheExecutable() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("images.sqlite").path
        let result = try runTool("ingest", ["--train", sample("train.csv"), "--test", sample("test.csv"), "--output", output])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("train: 188 images"))
        #expect(result.stdout.contains("test: 11 images"))
        #expect(result.stdout.contains("24 classes"))
        #expect(FileManager.default.fileExists(atPath: output))
    }

    @Test func badRowIsReportedWithFileLineColumnAndNothingWritten() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var lines = try String(contentsOfFile: sample("train.csv"), encoding: .utf8).components(separatedBy: "\n")
        lines[3] = "9" + lines[3].drop { $0 != "," }
        let bad = folder.appendingPathComponent("bad.csv").path
        try lines.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let output = folder.appendingPathComponent("images.sqlite").path
        let result = try runTool("ingest", ["--train", bad, "--output", output])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(bad):4:1: expected a label from 0 to 24 other than 9 (J needs motion), found 9"))
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func helpNamesEveryOption() throws {
        let result = try runTool("ingest", ["--help"])
        for option in ["--train", "--test", "--split", "--output", "--max-errors"] {
            #expect(result.stdout.contains(option))
        }
    }
}
