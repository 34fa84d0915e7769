import Artifacts
import Dataset
import Foundation
import Imaging
import Numerical
import PipelineKit

/// The preprocess stage: 28x28 grey images in, `S x S` RGB PNGs out, with a contact sheet to look at.
public enum Preprocess {
    public static let sizes = 32 ... 512
    public static let method = "bilinear, half-pixel centres, no antialiasing (tf.image.resize)"
    public static let rounding = "half to even, clipped to 0-255"

    public struct Options: Sendable {
        public var input: URL
        public var output: URL
        public var size: Int
        /// Where to write PNG files named SPLIT-ID-LETTER.png, and how many at most.
        public var export: URL?
        public var exportLimit: Int?
        /// Export the 28x28 grey originals rather than the resized images.
        public var exportOriginals: Bool
        public var showProgress: Bool

        public init(input: URL, output: URL, size: Int = 224, export: URL? = nil, exportLimit: Int? = nil, exportOriginals: Bool = false,
                    showProgress: Bool = true) {
            self.exportOriginals = exportOriginals
            self.input = input
            self.output = output
            self.size = size
            self.export = export
            self.exportLimit = exportLimit
            self.showProgress = showProgress
        }
    }

    public struct Report: Sendable {
        public var images: Int
        public var outputBytes: Int
        public var contentSHA256: String
        public var contactSheet: URL
        public var exported: Int
    }

    /// The contact sheet's name; it is written beside the output.
    public static let contactSheetName = "contact-sheet.png"

    public static func contactSheetURL(for output: URL) -> URL {
        output.deletingLastPathComponent().appendingPathComponent(contactSheetName)
    }

    public static func run(_ options: Options) throws -> Report {
        guard sizes.contains(options.size) else {
            throw StageError("--size \(options.size) is out of range: choose \(sizes.lowerBound) to \(sizes.upperBound) (ResNet50 was trained at 224)")
        }
        let (input, inputMeta) = try ImagesStore.open(options.input)
        let total = try input.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM images") ?? 0 }
        guard total > 0 else { throw StageError("\(options.input.path): the input holds no images") }
        if let export = options.export {
            try FileManager.default.createDirectory(at: export, withIntermediateDirectories: true)
        }
        let size = options.size
        let network = NetworkInput(size: size)
        let progress = options.showProgress ? ProgressBar("preprocess", total: total) : nil
        let thumbnailSide = min(size, 56)
        var sheetRows: [Int: [[UInt8]]] = [:]
        var exported = 0
        var hasher = ContentHasher()

        try AtomicOutput.write(to: options.output, inputs: [options.input]) { temporary in
            let output = try Artifact.create(at: temporary)
            try output.write { try PreprocessedStore.createTables($0) }
            try ImagesStore.forEachBatch(input, batch: 256) { images in
                var encoded = [Data](repeating: Data(), count: images.count)
                // Thumbnails only for the images that will go on the contact sheet.
                var wanted = [Bool](repeating: false, count: images.count)
                var planned = sheetRows.mapValues(\.count)
                for (index, image) in images.enumerated() where planned[image.label, default: 0] < 8 {
                    wanted[index] = true
                    planned[image.label, default: 0] += 1
                }
                var thumbnails = [[UInt8]](repeating: [], count: images.count)
                let chunks = min(images.count, coreCount * 4)
                // One slot per chunk: the chunks run at once, so they must not share a variable.
                var failures = [Error?](repeating: nil, count: chunks)
                encoded.withUnsafeMutableBufferPointer { slots in
                    thumbnails.withUnsafeMutableBufferPointer { thumbs in
                        failures.withUnsafeMutableBufferPointer { failures in
                            parallelFor(chunks) { chunk in
                                var rgb = [UInt8](repeating: 0, count: size * size * 3)
                                for index in stride(from: chunk, to: images.count, by: chunks) {
                                    images[index].pixels.withUnsafeBufferPointer { grey in
                                        rgb.withUnsafeMutableBufferPointer { network.rgb(grey: grey, into: $0) }
                                    }
                                    do {
                                        slots[index] = try PNG.encode(Bitmap(width: size, height: size, channels: 3, pixels: rgb), fast: true)
                                    } catch {
                                        failures[chunk] = error
                                    }
                                    if wanted[index] {
                                        thumbs[index] = ContactSheet.thumbnail(rgb, size: size, channels: 3, side: thumbnailSide)
                                    }
                                }
                            }
                        }
                    }
                }
                if let failure = failures.lazy.compactMap({ $0 }).first { throw failure }
                try output.write { db in
                    let insert = try db.cachedStatement(sql: "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)")
                    for (image, png) in zip(images, encoded) {
                        try insert.execute(arguments: [image.id, image.split, image.label, size, size, 3, png])
                    }
                }
                for (image, png) in zip(images, encoded) {
                    hasher.update(integer: Int64(image.id))
                    hasher.update(image.split)
                    hasher.update(integer: Int64(image.label))
                    png.withUnsafeBytes { hasher.update($0) }
                }
                for (index, image) in images.enumerated() where wanted[index] {
                    sheetRows[image.label, default: []].append(thumbnails[index])
                }
                if let export = options.export {
                    for (image, png) in zip(images, encoded) where exported < (options.exportLimit ?? .max) {
                        let name = "\(image.split)-\(image.id)-\(SignLetters.letter(image.label)).png"
                        let bytes = options.exportOriginals ? try PNG.encode(Bitmap(width: 28, height: 28, channels: 1, pixels: image.pixels)) : png
                        try bytes.write(to: export.appendingPathComponent(name), options: .atomic)
                        exported += 1
                    }
                }
                progress?.advance(by: images.count)
            }
            progress?.finish()
            let content = hasher.finalize()
            try output.write { db in
                try db.execute(sql: "CREATE INDEX images_split ON images(split, id)")
                let params = ["size": String(size), "channels": "3", "resize": method, "rounding": rounding,
                              "input_content_sha256": inputMeta[Artifact.contentKey] ?? ""]
                for (key, value) in params.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "INSERT INTO params VALUES (?, ?)", arguments: [key, value])
                }
                try Artifact.writeMeta(db, [Artifact.kindKey: PreprocessedStore.kind, Artifact.schemaKey: PreprocessedStore.schemaVersion,
                                            Artifact.contentKey: content, Artifact.toolKey: toolVersion])
            }
            try output.close()
        }

        let sheetURL = contactSheetURL(for: options.output)
        let sheet = ContactSheet.make(rows: sheetRows.keys.sorted().map { (SignLetters.letter($0), sheetRows[$0]!) },
                                      tile: thumbnailSide, perRow: 8)
        try AtomicOutput.write(to: sheetURL, inputs: [options.input]) { try PNG.encode(sheet).write(to: $0) }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: options.output.path)[.size] as? Int) ?? 0
        return Report(images: total, outputBytes: bytes, contentSHA256: hasher.finalize(), contactSheet: sheetURL, exported: exported)
    }
}
