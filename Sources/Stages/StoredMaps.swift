import Artifacts
import FineTune
import Foundation

/// The kept maps of one layer in features.sqlite, read a mini-batch at a time (float16 on disk,
/// float32 out) through `FeaturesStore.readMaps`, which checks each row.
struct StoredMaps: MapSource {
    let queue: ArtifactFile
    let file: String
    let layer: String
    /// The image id of each row index the trainer asks for.
    let ids: [Int]
    let side: Int, channels: Int

    func load(_ rows: [Int], into out: UnsafeMutablePointer<Float>) throws {
        try FeaturesStore.readMaps(queue, layer: layer, ids: rows.map { ids[$0] }, side: side, channels: channels, into: out)
    }
}
