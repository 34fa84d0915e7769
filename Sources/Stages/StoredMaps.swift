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
                // Read by stored type (GRDB's `as Int?` stops the process on text); the message says
                // what is wrong: the shape, or the bytes of a map whose shape is right.
                func integer(_ column: String) -> Int? {
                    if case let .int64(value) = (found[column] as DatabaseValue).storage { return Int(value) }
                    return nil
                }
                let shape = [integer("height"), integer("width"), integer("channels")]
                let expected = "\(file): table maps, image \(id), layer \(layer): expected \(side)x\(side)x\(channels) float16 values (\(floats * 2) bytes)"
                guard shape == [side, side, channels] else {
                    throw StageError("\(expected), found shape \(shape.map { $0.map(String.init) ?? "?" }.joined(separator: "x")): run extract with --keep \(layer) again")
                }
                guard case let .blob(data) = (found["data"] as DatabaseValue).storage, data.count == floats * 2 else {
                    let stored: DatabaseValue = found["data"]
                    let what = if case let .blob(data) = stored.storage { "\(data.count) bytes" } else { "no blob" }
                    throw StageError("\(expected), found \(what) (truncated?): run extract with --keep \(layer) again")
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
