import Artifacts
import Foundation
import Stages

/// The repository's root, found from this file's own path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let sampleFolder = repositoryRoot.appendingPathComponent("pipelines/data/sign-mnist-sample")

/// A fresh folder for one test, removed by the caller's `defer`.
func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("signtransfer-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The sample's rows parsed the plainest way, as a check on the real parser.
func plainRows(_ url: URL) throws -> [(label: Int, pixels: [UInt8])] {
    let text = try String(contentsOf: url, encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { line in
        let fields = line.split(separator: ",").map { Int($0)! }
        return (fields[0], fields.dropFirst().map { UInt8($0) })
    }
}
