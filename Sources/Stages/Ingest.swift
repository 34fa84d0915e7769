import Artifacts
import Dataset
import Foundation
import PipelineKit

/// The ingest stage: Kaggle CSVs, or a folder of JPEG/PNG images (one subfolder per class), in;
/// `images.sqlite` out.
public enum Ingest {
    public struct Options: Sendable {
        /// A folder of images (`FOLDER/CLASS/*`, or `FOLDER/train/CLASS/*` and `FOLDER/test/CLASS/*`),
        /// read instead of CSVs.
        public var folder: URL?
        public var folderOptions = ImageFolder.Options()
        /// Split names and their CSV files, in the order their ids are assigned.
        public var splits: [(name: String, file: URL)]
        public var output: URL
        public var maxErrors: Int
        /// The labels' names: what the rows' labels may be, stored as the dataset's vocabulary.
        public var classes: ClassNames

        public init(splits: [(name: String, file: URL)], output: URL, maxErrors: Int = 20, classes: ClassNames = .signMNIST) {
            self.splits = splits
            self.classes = classes
            self.output = output
            self.maxErrors = maxErrors
        }
    }

    public struct SplitSummary: Sendable {
        public var name: String
        public var path: String
        public var sha256: String
        public var rows: Int
        /// Images per label, for the labels present.
        public var classCounts: [Int: Int]
    }

    public struct Report: Sendable {
        public var splits: [SplitSummary]
        public var contentSHA256: String
        public var warnings: [String]
        public var imageCount: Int { splits.reduce(0) { $0 + $1.rows } }
        /// The dataset's vocabulary, as stored.
        public var classes: ClassNames
        /// Folder ingest: files left out by extension, and those skipped as bad (`--skip-bad`).
        public var ignored: [String] = []
        public var skipped: [(path: String, reason: String)] = []
    }

    public static func run(_ options: Options) throws -> Report {
        if let folder = options.folder { return try run(folder: folder, options: options) }
        try validate(options)
        // Fail before parsing anything when the output cannot be written.
        let output = try AtomicOutput(options.output, inputs: options.splits.map(\.file))

        var parsed: [ImagesStore.Split] = []
        var errors: [LocatedError] = []
        var truncated = false
        for (name, file) in options.splits {
            do {
                let (images, hash) = try KaggleCSV.read(file, maxErrors: max(1, options.maxErrors - errors.count), classes: options.classes)
                parsed.append(ImagesStore.Split(name: name, path: file.path, sha256: hash, images: images))
            } catch let failure as LocatedErrors {
                errors += failure.errors
                truncated = truncated || failure.truncated
                if errors.count >= options.maxErrors { break }
            }
        }
        if !errors.isEmpty {
            throw LocatedErrors(Array(errors.prefix(options.maxErrors)), truncated: truncated || errors.count > options.maxErrors)
        }

        let content = try output.write { try ImagesStore.write(parsed, classes: options.classes, to: $0) }
        let summaries = parsed.map { split in
            SplitSummary(name: split.name, path: split.path, sha256: split.sha256, rows: split.images.count,
                         classCounts: split.images.labels.reduce(into: [:]) { $0[Int($1), default: 0] += 1 })
        }
        return Report(splits: summaries, contentSHA256: content, warnings: duplicateWarnings(parsed), classes: options.classes)
    }

    /// A folder of images: every file checked (format, header, size) before anything is written.
    static func run(folder: URL, options: Options) throws -> Report {
        guard options.splits.isEmpty else { throw StageError("give a folder or CSV files, not both") }
        let output = try AtomicOutput(options.output, inputs: [folder])
        let read = try ImageFolder.read(folder, options: options.folderOptions)
        let content = try output.write { try ImagesStore.write(folder: read, source: folder.standardizedFileURL.path, to: $0) }
        var summaries: [SplitSummary] = []
        for split in ["train", "test"] {
            let entries = read.entries.filter { $0.split == split }
            guard !entries.isEmpty else { continue }
            summaries.append(SplitSummary(name: split, path: folder.path, sha256: "", rows: entries.count,
                                          classCounts: entries.reduce(into: [:]) { $0[$1.label, default: 0] += 1 }))
        }
        var warnings: [String] = []
        if !read.ignored.isEmpty {
            warnings.append("\(read.ignored.count) file(s) that are not .jpg, .jpeg or .png were left out (\(read.ignored.prefix(3).joined(separator: ", "))\(read.ignored.count > 3 ? ", ..." : ""))")
        }
        for (path, reason) in read.skipped { warnings.append("skipped \(path): \(reason)") }
        if !read.splitByFolders {
            warnings.append("no train/test folders: a test split of \(options.folderOptions.testFraction) of each class was drawn with seed \(options.folderOptions.splitSeed)")
        }
        return Report(splits: summaries, contentSHA256: content, warnings: warnings, classes: read.classes, ignored: read.ignored, skipped: read.skipped)
    }

    private static func validate(_ options: Options) throws {
        guard !options.splits.isEmpty else {
            throw StageError("no input: give --train FILE, --test FILE or --split NAME=FILE")
        }
        var seen = Set<String>()
        for (name, _) in options.splits {
            guard SplitName.isValid(name) else {
                throw StageError("split name '\(name)': use letters, digits, '_' and '-' only")
            }
            guard seen.insert(name).inserted else { throw StageError("split '\(name)' is given twice") }
        }
        guard options.maxErrors >= 1 else { throw StageError("--max-errors must be at least 1") }
        if let problem = options.classes.problem { throw StageError("--classes: \(problem)") }
    }

    /// Identical images inside a split inflate it; identical images across splits leak test data into
    /// training. Both are worth a warning, neither is an error: the Kaggle data has a few.
    static func duplicateWarnings(_ splits: [ImagesStore.Split]) -> [String] {
        var firstSeen: [UInt64: [(split: Int, row: Int)]] = [:]
        var pairs: [String: [(Int, String, Int)]] = [:]
        for (splitIndex, split) in splits.enumerated() {
            for row in 0 ..< split.images.count {
                let pixels = split.images.image(row)
                let key = fingerprint(pixels)
                if let first = firstSeen[key]?.first(where: { splits[$0.split].images.image($0.row) == pixels }) {
                    let firstName = splits[first.split].name
                    pairs["\(firstName)/\(split.name)", default: []].append((row, firstName, first.row))
                } else {
                    firstSeen[key, default: []].append((splitIndex, row))
                }
            }
        }
        return pairs.keys.sorted().map { key in
            let found = pairs[key]!
            let names = key.split(separator: "/")
            let examples = found.prefix(3).map { "row \($0.0) = \($0.1) row \($0.2)" }.joined(separator: ", ")
            let more = found.count > 3 ? ", ..." : ""
            if names[0] == names[1] {
                return "\(names[0]): \(found.count) image(s) repeat an earlier one (\(examples)\(more))"
            }
            return "\(names[1]): \(found.count) image(s) also appear in \(names[0]), which may leak between splits (\(examples)\(more))"
        }
    }

    /// A 64-bit hash of an image, eight pixels at a time; equal images have equal fingerprints, and
    /// the rare unequal pair that collides is told apart by comparing the pixels.
    private static func fingerprint(_ pixels: ArraySlice<UInt8>) -> UInt64 {
        pixels.withUnsafeBytes { bytes in
            var hash: UInt64 = 0x9E37_79B9_7F4A_7C15
            let words = bytes.count / 8
            for word in 0 ..< words {
                hash = (hash ^ bytes.loadUnaligned(fromByteOffset: word * 8, as: UInt64.self)) &* 0x1000_0000_01B3
                hash ^= hash >> 29
            }
            return hash
        }
    }
}
