import Artifacts
import Dataset
import Foundation
import Imaging
import Numerical
import PipelineKit

/// The preprocess stage: stored images (any side, grey or RGB) in, `S x S` RGB PNGs out, with a
/// contact sheet to look at. The content hash covers the pixels, not the PNG bytes (which depend on
/// the zlib installed).
public enum Preprocess {
    public static let sizes = 32 ... 512
    public static let method = "bilinear, half-pixel centres, no antialiasing (tf.image.resize)"
    public static let rounding = "half to even, clipped to 0-255"

    public struct Options: Sendable {
        public var input: URL
        public var output: URL
        public var size: Int
        /// Where to write PNG files named SPLIT-ID-CLASS.png, and how many at most.
        public var export: URL?
        public var exportLimit: Int?
        /// Export the originals as ingested rather than the resized images.
        public var exportOriginals: Bool
        public var showProgress: Bool
        /// Augmented views per training image (0: none, and the output is exactly as without the
        /// option), their ranges and the seed they are drawn with.
        public var augment: Int
        public var ranges: Augment.Ranges
        public var augmentSeed: UInt64
        /// Keras's `crop_to_aspect_ratio`: resize each image's centre square, keeping its aspect.
        public var cropToAspectRatio = false

        public init(input: URL, output: URL, size: Int = 224, export: URL? = nil, exportLimit: Int? = nil, exportOriginals: Bool = false,
                    showProgress: Bool = true, augment: Int = 0, ranges: Augment.Ranges = .init(), augmentSeed: UInt64 = 0) {
            self.augment = augment
            self.ranges = ranges
            self.augmentSeed = augmentSeed
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
        /// Rows written: the originals and their views.
        public var images: Int
        public var views: Int
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
            throw StageError("--size \(options.size) is out of range: choose \(sizes.lowerBound) to \(sizes.upperBound) (the ImageNet backbones were trained at 224)")
        }
        let (input, inputMeta) = try ImagesStore.open(options.input)
        let classes = try ImagesStore.classes(input)
        let geometry = try ImagesStore.geometry(input)
        let (total, lastID) = try ImagesStore.count(input)
        guard total > 0 else { throw StageError("\(options.input.path): the input holds no images") }
        if let export = options.export {
            try FileManager.default.createDirectory(at: export, withIntermediateDirectories: true)
        }
        let size = options.size
        let network = NetworkInput(size: size, from: geometry.map { ($0.width, $0.height) } ?? (size, size), crop: options.cropToAspectRatio)
        let progress = options.showProgress ? ProgressBar("preprocess", total: total) : nil
        let thumbnailSide = min(size, 56)
        var sheetRows: [Int: [[UInt8]]] = [:]
        var exported = 0
        var content = ""
        // Views get ids after every original's, in the order of their sources (id) and view number.
        let firstViewId = lastID + 1
        let trainImages = options.augment > 0 ? try ImagesStore.count(input, split: "train").images : 0
        var viewRows = 0
        // With views, the contact sheet shows the first training image of each letter beside its views.
        var viewSheet: [Int: [[UInt8]]] = [:]

        try AtomicOutput.write(to: options.output, inputs: [options.input]) { temporary in
            let output = try PreprocessedWriter(at: temporary, classes: classes)
            // A batch's rows go into SQLite on a thread of their own while the next batch is decoded
            // and encoded (the inserts run on one core, which otherwise leaves the other idle); one
            // append at a time, in order, so the file is as a serial run writes it.
            let writing = BackgroundWriter()
            // Whatever ends the loop, no job may still be writing when the temporary file goes.
            defer { writing.drain() }
            try ImagesStore.forEachBatch(input, batch: 256) { images in
                // Thumbnails only for the images that will go on the contact sheet.
                var wanted = [Bool](repeating: false, count: images.count)
                var planned = sheetRows.mapValues(\.count)
                for (index, image) in images.enumerated() where planned[image.label, default: 0] < 8 {
                    wanted[index] = true
                    planned[image.label, default: 0] += 1
                }
                let (encoded, digests, thumbnails) = try encode(count: images.count, size: size, network: network, thumbnailSide: thumbnailSide,
                                                                image: { try decoded(images[$0]) },
                                                                wanted: { wanted[$0] })
                let rows = images.indices.map { index in
                    let image = images[index]
                    return PreprocessedWriter.Image(id: image.id, split: image.split, label: image.label, size: size, png: encoded[index], pixelsSHA256: digests[index])
                }
                try writing.next { try output.append(rows) }
                for (index, image) in images.enumerated() where wanted[index] {
                    sheetRows[image.label, default: []].append(thumbnails[index])
                }
                if let export = options.export {
                    for (image, png) in zip(images, encoded) where exported < (options.exportLimit ?? .max) {
                        // An original from a folder is written as it was found, JPEG as JPEG.
                        let kept = options.exportOriginals && image.encoding != "raw"
                        let name = "\(image.split)-\(image.id)-\(fileNamePart(classes.name(image.label))).\(kept ? (image.encoding == "jpeg" ? "jpg" : "png") : "png")"
                        let bytes = kept ? Data(image.pixels) : options.exportOriginals
                            ? try PNG.encode(Bitmap(width: image.width, height: image.height, channels: image.channels, pixels: image.pixels)) : png
                        try bytes.write(to: export.appendingPathComponent(name), options: .atomic)
                        exported += 1
                    }
                }
                progress?.advance(by: images.count)
            }
            try writing.wait()
            progress?.finish()
            if options.augment > 0 {
                viewRows = try writeViews(input: input, output: output, options: options, network: network, firstId: firstViewId, total: trainImages,
                                          thumbnailSide: thumbnailSide, sheet: &viewSheet)
            }
            var params = ["size": String(size), "channels": "3", "resize": method, "rounding": rounding,
                          "input_content_sha256": inputMeta[Artifact.contentKey] ?? "",
                          // What predict reduces a new picture to first, as the training images were.
                          "source_geometry": geometry.map { "\($0.width)x\($0.height)x\($0.channels)" } ?? "varied"]
            // Only when asked, so that a file without the option is exactly as before it.
            if options.cropToAspectRatio { params["crop_to_aspect_ratio"] = "on" }
            if options.augment > 0 {
                params["augment"] = String(options.augment)
                params["augment_seed"] = String(options.augmentSeed)
                params["augment_ranges"] = describe(options.ranges)
            }
            content = try output.finish(params: params)
        }

        let sheetURL = contactSheetURL(for: options.output)
        let sheet = viewSheet.isEmpty
            ? ContactSheet.make(rows: sheetRows.keys.sorted().map { (classes.name($0), sheetRows[$0]!) }, tile: thumbnailSide, perRow: 8)
            : ContactSheet.make(rows: viewSheet.keys.sorted().map { (classes.name($0), viewSheet[$0]!) }, tile: thumbnailSide,
                                perRow: min(options.augment, sheetViews) + 1)
        // The fast writer: libpng's deflate at its default level was a third of the stage's last,
        // single-threaded 60 ms (perf, 2,500 photos at 224).
        try AtomicOutput.write(to: sheetURL, inputs: [options.input]) { try PNG.encode(sheet, fast: true).write(to: $0) }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: options.output.path)[.size] as? Int) ?? 0
        return Report(images: total + viewRows, views: viewRows, outputBytes: bytes, contentSHA256: content, contactSheet: sheetURL, exported: exported)
    }

    /// Runs one job at a time on a thread of its own: `next` waits for the last job (throwing its
    /// error) and starts the new one; `wait` waits for the last.
    final class BackgroundWriter: @unchecked Sendable {
        private let queue = DispatchQueue(label: "preprocess.write")
        private let group = DispatchGroup()
        private var failure: Error?

        func next(_ job: @escaping () throws -> Void) throws {
            try wait()
            let work = UncheckedSendable(job)
            queue.async(group: group) {
                do { try work.value() } catch { self.failure = error }
            }
        }

        func wait() throws {
            group.wait()
            if let failure { throw failure }
        }

        func drain() { group.wait() }
    }

    /// Images `0 ..< count` (`image(i)`: pixels, width, height, channels) resized to RGB and
    /// PNG-encoded on all cores, each with the SHA-256 of its RGB pixels (what the content hash
    /// covers), and a contact-sheet thumbnail of those `wanted(i)` says: the one path of the
    /// originals and the views.
    static func encode(count: Int, size: Int, network: NetworkInput, thumbnailSide: Int,
                       image: (Int) throws -> (pixels: [UInt8], width: Int, height: Int, channels: Int),
                       wanted: (Int) -> Bool) throws -> (png: [Data], digests: [[UInt8]], thumbnails: [[UInt8]]) {
        var encoded = [Data](repeating: Data(), count: count)
        var digests = [[UInt8]](repeating: [], count: count)
        var thumbnails = [[UInt8]](repeating: [], count: count)
        // Many small chunks, taken by whichever core is free, so that a batch's last chunk keeps the
        // other core waiting for a few images at most (with eight chunks it could be 32 photos).
        let chunks = min(count, coreCount * 32)
        // One slot per chunk: the chunks run at once, so they must not share a variable.
        var failures = [Error?](repeating: nil, count: chunks)
        encoded.withUnsafeMutableBufferPointer { slots in
          digests.withUnsafeMutableBufferPointer { digests in
            thumbnails.withUnsafeMutableBufferPointer { thumbs in
                failures.withUnsafeMutableBufferPointer { failures in
                    parallelFor(chunks) { chunk in
                        var rgb = [UInt8](repeating: 0, count: size * size * 3)
                        for index in stride(from: chunk, to: count, by: chunks) {
                            let source: (pixels: [UInt8], width: Int, height: Int, channels: Int)
                            do {
                                source = try image(index)
                            } catch {
                                failures[chunk] = error
                                continue
                            }
                            source.pixels.withUnsafeBufferPointer { pixels in
                                rgb.withUnsafeMutableBufferPointer {
                                    network.rgb(pixels, width: source.width, height: source.height, channels: source.channels, into: $0)
                                }
                            }
                            digests[index] = rgb.withUnsafeBytes { sha256Bytes(of: $0) }
                            do {
                                slots[index] = try PNG.encodeFast(rgb: Bitmap(width: size, height: size, channels: 3, pixels: rgb))
                            } catch {
                                failures[chunk] = error
                            }
                            if wanted(index) {
                                thumbs[index] = ContactSheet.thumbnail(rgb, size: size, channels: 3, side: thumbnailSide)
                            }
                        }
                    }
                }
            }
          }
        }
        if let failure = failures.lazy.compactMap({ $0 }).first { throw failure }
        return (encoded, digests, thumbnails)
    }

    /// An image's pixels: as stored for a CSV row, decoded (as TensorFlow decodes) for a file from a
    /// folder, its geometry checked against the row's.
    static func decoded(_ image: ImagesStore.Image) throws -> (pixels: [UInt8], width: Int, height: Int, channels: Int) {
        guard image.encoding != "raw" else { return (image.pixels, image.width, image.height, image.channels) }
        let bitmap: Bitmap
        do {
            bitmap = try ImageFile.decode(Data(image.pixels))
        } catch {
            throw StageError("image \(image.id) (\(image.path)): \(error.description)")
        }
        guard bitmap.width == image.width, bitmap.height == image.height, bitmap.channels == image.channels else {
            throw StageError("image \(image.id) (\(image.path)): decodes to \(bitmap.width)x\(bitmap.height)x\(bitmap.channels), its row says \(image.width)x\(image.height)x\(image.channels)")
        }
        return (bitmap.pixels, bitmap.width, bitmap.height, bitmap.channels)
    }

    /// A class name as part of a file name: letters, digits, '-' and '_' kept, anything else '_'.
    static func fileNamePart(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(64))
    }

    /// Views shown per letter on the contact sheet, beside the original.
    static let sheetViews = 7

    /// The ranges in words, as params and the report give them.
    public static func describe(_ ranges: Augment.Ranges) -> String {
        String(format: "rotation ±%g°, translation ±%g px, scale ±%g, brightness ±%g, contrast ±%g, flip %@",
               ranges.rotation, ranges.translation, ranges.scale, ranges.brightness, ranges.contrast, ranges.flip ? "on" : "off")
    }

    /// The second pass: `options.augment` views of every training image, warped on the original
    /// (decoded, for a file from a folder) and resized like it, written after all originals with ids
    /// from `firstId` on, and the `views` table (a row per training image and view, 0 the original,
    /// with its transform).
    static func writeViews(input: ArtifactFile, output: PreprocessedWriter, options: Options, network: NetworkInput, firstId: Int, total: Int,
                           thumbnailSide: Int, sheet: inout [Int: [[UInt8]]]) throws -> Int {
        let size = options.size, views = options.augment
        let progress = options.showProgress ? ProgressBar("preprocess: views", total: total * views) : nil
        var ordinal = 0, written = 0
        var viewRecords: [(id: Int, source: Int, view: Int, transform: Augment.Transform)] = []
        try ImagesStore.forEachBatch(input, split: "train", batch: 64) { images in
            let count = images.count * views
            let transforms = images.flatMap { image in (1 ... views).map { Augment.draw(options.ranges, seed: options.augmentSeed, id: image.id, view: $0) } }
            // The first training image of each class not yet on the sheet, with its views.
            var onSheet = Set<Int>(), labels = Set<Int>()
            for (index, image) in images.enumerated() where sheet[image.label] == nil && !labels.contains(image.label) {
                onSheet.insert(index)
                labels.insert(image.label)
            }
            // The batch's originals decoded once, on all cores (views are drawn from each `views` times).
            var sources = [Result<(pixels: [UInt8], width: Int, height: Int, channels: Int), Error>?](repeating: nil, count: images.count)
            sources.withUnsafeMutableBufferPointer { slots in
                let slots = UncheckedSendable(slots)
                parallelFor(images.count) { index in slots.value[index] = Result { try decoded(images[index]) } }
            }
            let originals = try sources.map { try $0!.get() }
            let (encoded, digests, thumbnails) = try encode(count: count, size: size, network: network, thumbnailSide: thumbnailSide,
                                                            image: { index in
                                                                let source = originals[index / views]
                                                                return (Augment.apply(transforms[index], to: source.pixels, width: source.width, height: source.height, channels: source.channels),
                                                                        source.width, source.height, source.channels)
                                                            },
                                                            wanted: { $0 % views < sheetViews && onSheet.contains($0 / views) })
            var rows: [PreprocessedWriter.Image] = []
            for (index, png) in encoded.enumerated() {
                let image = images[index / views]
                let id = firstId + (ordinal + index / views) * views + index % views
                rows.append(.init(id: id, split: image.split, label: image.label, size: size, png: png, pixelsSHA256: digests[index]))
                viewRecords.append((id, image.id, index % views + 1, transforms[index]))
            }
            try output.append(rows)
            for (index, image) in images.enumerated() {
                viewRecords.append((image.id, image.id, 0, .identity))
                if onSheet.contains(index) {
                    var original = [UInt8](repeating: 0, count: size * size * 3)
                    let source = originals[index]
                    source.pixels.withUnsafeBufferPointer { pixels in
                        original.withUnsafeMutableBufferPointer { network.rgb(pixels, width: source.width, height: source.height, channels: source.channels, into: $0) }
                    }
                    sheet[image.label] = [ContactSheet.thumbnail(original, size: size, channels: 3, side: thumbnailSide)]
                        + thumbnails[index * views ..< index * views + min(views, sheetViews)]
                }
            }
            ordinal += images.count
            written += count
            progress?.advance(by: count)
        }
        progress?.finish()
        try output.writeViews(viewRecords.map { record in
            let t = record.transform
            return .init(id: record.id, source: record.source, view: record.view, rotation: t.rotation, dx: t.dx, dy: t.dy, scale: t.scale,
                         brightness: t.brightness, contrast: t.contrast, flip: t.flip)
        })
        return written
    }
}
