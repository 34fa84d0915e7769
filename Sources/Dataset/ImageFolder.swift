import Foundation
import Imaging
import Numerical
import PipelineKit

/// A folder of images in the layout Keras's `image_dataset_from_directory` reads: `DIR/CLASS/*`
/// (one folder per class; files in subfolders of a class count too), or `DIR/train/CLASS/*` and
/// `DIR/test/CLASS/*`. Classes are the folder names in Keras's order (sorted); files are JPEG or
/// PNG by extension (without case), their bytes kept as found; anything else is counted and left.
public struct ImageFolder: Sendable {
    /// One image file: where it is, its class and split, its header's geometry, its bytes.
    public struct Entry: Sendable {
        /// Relative to the folder, with `/`.
        public var path: String
        public var split: String
        public var label: Int
        public var info: ImageFile.Info
        public var bytes: Data
    }

    public var classes: ClassNames
    /// In split order (train, then test), each split in class order, each class in path order.
    public var entries: [Entry]
    /// Files left out by extension (`.DS_Store`, notes, .bmp), by relative path.
    public var ignored: [String]
    /// Files that failed validation, with why (only with `skipBad`; otherwise an error names them).
    public var skipped: [(path: String, reason: String)]
    /// Whether the split came from `train`/`test` folders (else it was drawn).
    public var splitByFolders: Bool

    public struct Options: Sendable {
        /// The share of each class drawn into the test split when there are no split folders.
        public var testFraction: Double = 0.2
        public var splitSeed: UInt64 = 0
        public var skipBad = false
        public init(testFraction: Double = 0.2, splitSeed: UInt64 = 0, skipBad: Bool = false) {
            self.testFraction = testFraction
            self.splitSeed = splitSeed
            self.skipBad = skipBad
        }
    }

    /// Every problem found while reading, so that one run names them all.
    public struct Problems: UserFacingError {
        public var folder: String
        public var problems: [String]
        public var description: String {
            let shown = problems.prefix(50).map { "  \($0)" }.joined(separator: "\n")
            let more = problems.count > 50 ? "\n  ... and \(problems.count - 50) more" : ""
            return "\(folder): \(problems.count) problem\(problems.count == 1 ? "" : "s"); nothing was written (--skip-bad ingests the rest):\n\(shown)\(more)"
        }
    }

    public static func read(_ folder: URL, options: Options = Options()) throws -> ImageFolder {
        let root = folder.standardizedFileURL
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw StageError("\(root.path): no such folder (the layout is FOLDER/CLASS/* or FOLDER/train/CLASS/* and FOLDER/test/CLASS/*)")
        }
        guard (0 ... 0.9).contains(options.testFraction) else { throw StageError("--test-fraction \(options.testFraction): choose 0 to 0.9") }
        let top = try subfolders(root)
        let splitByFolders = top.contains("train")
        var problems: [String] = []
        var classNames: [String] = []
        var perSplit: [(split: String, folder: URL)] = []
        if splitByFolders {
            let unknown = top.filter { $0 != "train" && $0 != "test" }
            if !unknown.isEmpty {
                problems.append("with a train folder, only train and test may be beside it; found \(unknown.map { "'\($0)'" }.joined(separator: ", "))")
            }
            perSplit = ["train", "test"].filter(top.contains).map { ($0, root.appendingPathComponent($0)) }
            // The classes are the train split's; a test class that train lacks is an error.
            classNames = try subfolders(perSplit[0].folder)
            if let test = perSplit.first(where: { $0.split == "test" }) {
                for name in try subfolders(test.folder) where !classNames.contains(name) {
                    problems.append("test/\(name): a class the train folder does not have")
                }
            }
        } else {
            classNames = top
            perSplit = [("train", root)]
        }
        guard classNames.count >= 2 else {
            throw StageError("\(root.path): found \(classNames.count) class folder\(classNames.count == 1 ? "" : "s") (\(classNames.joined(separator: ", "))); a classifier needs at least two: FOLDER/CLASS/* with one folder per class")
        }
        var lowered: [String: String] = [:]
        for name in classNames {
            if let other = lowered[name.lowercased()] {
                problems.append("class folders '\(other)' and '\(name)' differ only by case: rename one (they would be one class on macOS and Windows)")
            }
            lowered[name.lowercased()] = name
        }
        let classes = ClassNames(classNames.enumerated().map { ($0.offset, $0.element) })
        if let problem = classes.problem { problems.append("class names: \(problem)") }

        var entries: [Entry] = [], ignored: [String] = [], skipped: [(String, String)] = []
        for (split, folder) in perSplit {
            for (label, name) in classNames.enumerated() {
                let classFolder = folder.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: classFolder.path) else { continue }
                let prefix = splitByFolders ? "\(split)/\(name)" : name
                let (files, misnamed) = try listFiles(classFolder)
                var found = 0
                var candidates: [(path: String, url: URL)] = []
                // A name that is not UTF-8 cannot be stored faithfully as a path: an image with one
                // is a bad file (named with U+FFFD for the bytes), anything else is ignored as usual.
                for relative in misnamed {
                    let path = "\(prefix)/\(relative)"
                    guard ImageFile.extensions[(relative as NSString).pathExtension.lowercased()] != nil else {
                        ignored.append(path)
                        continue
                    }
                    let problem = "its name is not valid UTF-8 (shown with \u{FFFD}): rename the file"
                    if options.skipBad { skipped.append((path, problem)) } else { problems.append("\(path): \(problem)") }
                }
                for relative in files {
                    let path = "\(prefix)/\(relative)"
                    let ext = (relative as NSString).pathExtension.lowercased()
                    guard ImageFile.extensions[ext] != nil else {
                        ignored.append(path)
                        continue
                    }
                    candidates.append((path, classFolder.appendingPathComponent(relative)))
                }
                // Each file read and checked whole on all cores (a truncated file has a good header):
                // validation is the only decoding ingest does; the bytes are kept as found.
                var checked = [Result<(Data, ImageFile.Info), ImageFile.Problem>?](repeating: nil, count: candidates.count)
                checked.withUnsafeMutableBufferPointer { slots in
                    let slots = UncheckedSendable(slots)
                    parallelFor(candidates.count) { index in
                        slots.value[index] = Result { () throws(ImageFile.Problem) -> (Data, ImageFile.Info) in
                            guard let bytes = FileManager.default.contents(atPath: candidates[index].url.path) else {
                                throw ImageFile.Problem(description: "cannot be read")
                            }
                            return (bytes, try ImageFile.validate(bytes))
                        }
                    }
                }
                for (candidate, result) in zip(candidates, checked) {
                    switch result! {
                    case let .success((bytes, info)):
                        entries.append(Entry(path: candidate.path, split: split, label: label, info: info, bytes: bytes))
                        found += 1
                    case let .failure(problem):
                        if options.skipBad { skipped.append((candidate.path, problem.description)) } else { problems.append("\(candidate.path): \(problem.description)") }
                    }
                }
                if found == 0, !(options.skipBad && files.contains { ImageFile.extensions[($0 as NSString).pathExtension.lowercased()] != nil }) {
                    problems.append("\(prefix): no JPEG or PNG images in this class folder")
                }
            }
        }
        if !problems.isEmpty { throw Problems(folder: root.path, problems: problems) }
        if !splitByFolders { entries = drawTestSplit(entries, classes: classNames.count, options: options) }
        return ImageFolder(classes: classes, entries: entries, ignored: ignored, skipped: skipped, splitByFolders: splitByFolders)
    }

    /// Each class's files shuffled by a seeded generator, its first round(fraction x count) to test
    /// (at least one where the class has two or more and the fraction is above 0); ids then in the
    /// order train (class by class, path order), test likewise.
    static func drawTestSplit(_ entries: [Entry], classes: Int, options: Options) -> [Entry] {
        var train: [Entry] = [], test: [Entry] = []
        for label in 0 ..< classes {
            let members = entries.filter { $0.label == label }
            var order = Array(members.indices)
            var generator = SplitMix64(seed: options.splitSeed &+ UInt64(label) &* 0x9E37_79B9_7F4A_7C15)
            for index in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(index, Int(generator.next() % UInt64(index + 1)))
            }
            var count = Int((Double(members.count) * options.testFraction).rounded())
            if options.testFraction > 0, members.count >= 2 { count = max(1, min(count, members.count - 1)) }
            let chosen = Set(order.prefix(count))
            for (index, var entry) in members.enumerated() {
                entry.split = chosen.contains(index) ? "test" : "train"
                if chosen.contains(index) { test.append(entry) } else { train.append(entry) }
            }
        }
        return train + test
    }

    /// The names of the folders directly in `folder`, sorted as Python sorts strings (by code point),
    /// which is Keras's class order. Hidden folders are left out; a name that is not valid UTF-8 is
    /// an error naming its folder.
    static func subfolders(_ folder: URL) throws -> [String] {
        let root = Array(folder.path.utf8)
        var names: [String] = []
        for entry in try entries(of: root) where entry.name.first != UInt8(ascii: ".") && entry.kind == .folder {
            guard let name = String(validating: entry.name, as: UTF8.self) else {
                throw StageError("\(folder.path): the folder \"\(String(decoding: entry.name, as: UTF8.self))\" has a name that is not valid UTF-8 (shown with \u{FFFD}); class names are text: rename it")
            }
            names.append(name)
        }
        return names.sorted(by: codePointOrder)
    }

    /// Every regular file under `folder` (and symbolic link to one), relative with `/`, sorted by code
    /// point; symbolic links to folders are not followed (Keras's `follow_links=False`), so a link
    /// loop cannot trap the walk. `misnamed`: paths whose bytes are not valid UTF-8 (shown with
    /// U+FFFD), which no row could name faithfully.
    ///
    /// POSIX directly (readdir, lstat): Foundation's enumerator looked up each file's owner and group
    /// by name, reading /etc/passwd and /etc/group per file: that was half of ingest's time.
    static func listFiles(_ folder: URL) throws -> (files: [String], misnamed: [String]) {
        var files: [String] = [], misnamed: [String] = []
        func walk(_ directory: [UInt8], _ relative: [UInt8]) throws {
            for entry in try entries(of: directory) {
                let path = relative.isEmpty ? entry.name : relative + [UInt8(ascii: "/")] + entry.name
                switch entry.kind {
                case .folder:
                    try walk(directory + [UInt8(ascii: "/")] + entry.name, path)
                case .file:
                    if let text = String(validating: path, as: UTF8.self) { files.append(text) } else { misnamed.append(String(decoding: path, as: UTF8.self)) }
                case .other:
                    continue
                }
            }
        }
        try walk(Array(folder.path.utf8), [])
        return (files.sorted(by: codePointOrder), misnamed.sorted(by: codePointOrder))
    }

    /// Python's string order: by code point.
    static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    enum EntryKind { case folder, file, other }

    /// The entries of a directory given by its path's bytes (no `.` or `..`): a folder (not a
    /// symbolic link to one), a file (regular, or a symbolic link to something that is not a folder),
    /// or something else (a device, a socket, a pipe, a link to a folder).
    static func entries(of directory: [UInt8]) throws -> [(name: [UInt8], kind: EntryKind)] {
        func cString<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
            (bytes + [0]).withUnsafeBufferPointer { body(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }
        }
        guard let handle = cString(directory, { opendir($0) }) else {
            let reason = String(cString: strerror(errno))
            throw StageError("\(String(decoding: directory, as: UTF8.self)): cannot be listed (\(reason))")
        }
        defer { closedir(handle) }
        var found: [(name: [UInt8], kind: EntryKind)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            let path = directory + [UInt8(ascii: "/")] + name
            var status = stat()
            guard cString(path, { lstat($0, &status) }) == 0 else { continue }
            let type = status.st_mode & S_IFMT
            if type == S_IFDIR {
                found.append((name, .folder))
            } else if type == S_IFREG {
                found.append((name, .file))
            } else if type == S_IFLNK {
                // Where the link leads: a folder is not followed; a file, or nothing, is a file (a
                // broken link is then named as unreadable rather than passed over).
                var target = stat()
                let leadsToFolder = cString(path, { stat($0, &target) }) == 0 && target.st_mode & S_IFMT == S_IFDIR
                found.append((name, leadsToFolder ? .other : .file))
            } else {
                found.append((name, .other))
            }
        }
        return found
    }
}
