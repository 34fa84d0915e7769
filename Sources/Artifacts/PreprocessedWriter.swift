import Dataset
import Foundation
import GRDB
import PipelineKit

/// Writes a new preprocessed.sqlite and hashes it as it goes: the classes, then the images in the
/// order they are appended (originals in id order, then views), then the views table. The one place
/// its rows are inserted.
public final class PreprocessedWriter {
    let file: ArtifactFile
    var hasher = ContentHasher()

    /// One resized image: its PNG, and the SHA-256 of its RGB pixels (what the content hash covers).
    public struct Image {
        public var id: Int, split: String, label: Int, size: Int
        public var png: Data
        public var pixelsSHA256: [UInt8]

        public init(id: Int, split: String, label: Int, size: Int, png: Data, pixelsSHA256: [UInt8]) {
            (self.id, self.split, self.label, self.size, self.png, self.pixelsSHA256) = (id, split, label, size, png, pixelsSHA256)
        }
    }

    /// One row of `views`: which image it is a view of (view 0: the original itself) and its transform.
    public struct View {
        public var id: Int, source: Int, view: Int
        public var rotation: Double, dx: Double, dy: Double, scale: Double, brightness: Double, contrast: Double
        public var flip: Bool

        public init(id: Int, source: Int, view: Int, rotation: Double, dx: Double, dy: Double, scale: Double, brightness: Double,
                    contrast: Double, flip: Bool) {
            (self.id, self.source, self.view, self.rotation, self.dx, self.dy) = (id, source, view, rotation, dx, dy)
            (self.scale, self.brightness, self.contrast, self.flip) = (scale, brightness, contrast, flip)
        }
    }

    /// A fresh file at `url` (a temporary path the caller renames into place) with the dataset's classes.
    public init(at url: URL, classes: ClassNames) throws {
        file = try Artifact.create(at: url)
        var hasher = ContentHasher()
        try file.write { db in
            try PreprocessedStore.createTables(db)
            try ClassesTable.write(db, classes, into: &hasher)
        }
        self.hasher = hasher
    }

    public func append(_ images: [Image]) throws {
        try file.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)")
            for image in images {
                try insert.execute(arguments: [image.id, image.split, image.label, image.size, image.size, 3, image.png])
            }
        }
        for image in images {
            hasher.update(integer: Int64(image.id))
            hasher.update(image.split)
            hasher.update(integer: Int64(image.label))
            hasher.update(image.pixelsSHA256)
        }
    }

    /// The views table, in id order, hashed after the images.
    public func writeViews(_ views: [View]) throws {
        let views = views.sorted { $0.id < $1.id }
        try file.write { db in
            if try !db.tableExists("views") { try PreprocessedStore.createViewsTable(db) }
            let insert = try db.cachedStatement(sql: "INSERT INTO views VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            for v in views {
                try insert.execute(arguments: [v.id, v.source, v.view, v.rotation, v.dx, v.dy, v.scale, v.brightness, v.contrast, v.flip ? 1 : 0])
            }
        }
        for v in views {
            hasher.update(integer: Int64(v.id))
            hasher.update(integer: Int64(v.source))
            hasher.update(integer: Int64(v.view))
            for value in [v.rotation, v.dx, v.dy, v.scale, v.brightness, v.contrast] { hasher.update(integer: value.bitPattern) }
            hasher.update(integer: UInt8(v.flip ? 1 : 0))
        }
    }

    /// The index, `params`, meta; the file closed. Returns the content hash.
    public func finish(params: [String: String]) throws -> String {
        let content = hasher.finalize()
        try file.write { db in
            try db.execute(sql: "CREATE INDEX images_split ON images(split, id)")
            for (key, value) in params.sorted(by: { $0.key < $1.key }) {
                try db.execute(sql: "INSERT INTO params VALUES (?, ?)", arguments: [key, value])
            }
            try Artifact.writeMeta(db, [Artifact.kindKey: PreprocessedStore.kind, Artifact.schemaKey: PreprocessedStore.schemaVersion,
                                        Artifact.contentKey: content, Artifact.toolKey: toolVersion])
        }
        try file.close()
        return content
    }
}
