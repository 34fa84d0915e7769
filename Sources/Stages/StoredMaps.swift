import Artifacts
import FineTune
import Foundation
import GRDB
import PipelineKit

/// The kept maps of one layer in features.sqlite, read a mini-batch at a time (float16 on disk,
/// float32 out), each row checked: present, the expected shape, the expected length.
struct StoredMaps: MapSource {
    let queue: DatabaseQueue
    let file: String
    let layer: String
    /// The image id of each row index the trainer asks for.
    let ids: [Int]
    let side: Int, channels: Int

    func load(_ rows: [Int], into out: UnsafeMutablePointer<Float>) throws {
        let floats = side * side * channels
        try queue.read { db in
            let statement = try db.cachedStatement(sql: "SELECT height, width, channels, data FROM maps WHERE id = ? AND layer = ?")
            for (index, row) in rows.enumerated() {
                let id = ids[row]
                guard let found = try Row.fetchOne(statement, arguments: [id, layer]) else {
                    throw StageError("\(file): table maps has no row for image \(id), layer \(layer): run extract with --keep \(layer) again")
                }
                let shape = [found["height"] as Int?, found["width"] as Int?, found["channels"] as Int?]
                guard shape == [side, side, channels], let data = found["data"] as Data?, data.count == floats * 2 else {
                    throw StageError("\(file): table maps, image \(id), layer \(layer): expected \(side)x\(side)x\(channels) float16 values (\(floats * 2) bytes), found shape \(shape.map { $0.map(String.init) ?? "NULL" }.joined(separator: "x"))")
                }
                let map = out + index * floats
                FeaturesStore.decodeHalf(data, into: map, count: floats)
                if let bad = (0 ..< floats).first(where: { !map[$0].isFinite }) {
                    throw StageError("\(file): table maps, image \(id), layer \(layer): value \(bad) is \(map[bad]); the maps must be finite numbers")
                }
            }
        }
    }
}
