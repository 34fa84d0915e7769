import Dispatch
import Foundation
import Numerical
import PipelineKit

/// Images parsed from one CSV in the Kaggle Sign Language MNIST layout: an optional header
/// `label,pixel1,...,pixel784`, then one image a row, its label and 784 grey levels, row-major 28x28.
public struct KaggleImages: Sendable {
    public static let side = 28
    public static let pixelCount = 784

    /// One label a row.
    public var labels: [UInt8] = []
    /// `pixelCount` grey levels a row, rows one after another.
    public var pixels: [UInt8] = []
    /// For each row, its 1-based line number in the file.
    public var lines: [Int] = []

    public var count: Int { labels.count }

    public func image(_ row: Int) -> ArraySlice<UInt8> {
        pixels[row * Self.pixelCount ..< (row + 1) * Self.pixelCount]
    }
}

/// Parser for the Kaggle layout. Accepts a header or none, LF or CRLF line ends, a UTF-8 byte-order
/// mark and a missing final newline; rejects everything else with `FILE:LINE:COLUMN` errors. Large
/// files are parsed in parallel chunks cut at line boundaries.
public enum KaggleCSV {
    public static let header = "label," + (1 ... KaggleImages.pixelCount).map { "pixel\($0)" }.joined(separator: ",")
    static let fieldCount = KaggleImages.pixelCount + 1

    /// Parses `bytes` (the whole file); `name` is the path used in messages.
    /// `classes`: the labels a row may have (Sign MNIST's letters unless told).
    public static func parse(_ bytes: UnsafeRawBufferPointer, name: String, maxErrors: Int = 20, classes: ClassNames = .signMNIST,
                             chunks requested: Int = coreCount) throws -> KaggleImages {
        // A label is one byte in KaggleImages: a vocabulary beyond 255 cannot come from a CSV.
        var allowed = [Bool](repeating: false, count: 256)
        for label in classes.labels where label < 256 { allowed[label] = true }
        let base = bytes.bindMemory(to: UInt8.self)
        var start = 0
        if base.count >= 3, base[0] == 0xEF, base[1] == 0xBB, base[2] == 0xBF { start = 3 }
        guard start < base.count else {
            throw LocatedErrors([LocatedError(file: name, line: 1, column: 1,
                                              message: "expected the header '\(shortHeader)' or a data row, found an empty file")],
                                truncated: false)
        }
        var firstLine = 1
        if !isDigit(base[start]) && base[start] != UInt8(ascii: "-") {
            start = try checkHeader(base, from: start, name: name)
            firstLine = 2
        }
        let limit = max(1, maxErrors)
        let chunkCount = base.count - start > 1 << 20 ? max(1, requested) : 1
        let bounds = chunkBounds(base, from: start, count: chunkCount)
        var results = [ChunkResult](repeating: ChunkResult(), count: bounds.count)
        results.withUnsafeMutableBufferPointer { slots in
            parallelFor(bounds.count) { index in
                slots[index] = parseChunk(base, bounds[index], name: name, maxErrors: limit, allowed: allowed, rule: classes.rule)
            }
        }

        var images = KaggleImages()
        var errors: [LocatedError] = []
        var line = firstLine
        for result in results {
            images.labels += result.labels
            images.pixels += result.pixels
            images.lines += result.lines.map { $0 + line }
            errors += result.errors.map { error in
                var error = error
                error.line += line
                return error
            }
            line += result.lineCount
        }
        if !errors.isEmpty {
            throw LocatedErrors(Array(errors.prefix(limit)), truncated: errors.count > limit || results.contains { $0.stoppedEarly })
        }
        if images.count == 0 {
            throw LocatedErrors([LocatedError(file: name, line: line, column: 1,
                                              message: "expected at least one data row, found none")], truncated: false)
        }
        return images
    }

    /// Reads and parses a file; a missing or unreadable file is reported with its path.
    public static func read(_ url: URL, maxErrors: Int = 20, classes: ClassNames = .signMNIST) throws -> (images: KaggleImages, sha256: String) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LocatedErrors([LocatedError(file: url.path, line: 0, column: 0,
                                              message: "cannot read the file: \(readFailure(url))")], truncated: false)
        }
        return try data.withUnsafeBytes { bytes in
            let images = try parse(bytes, name: url.path, maxErrors: maxErrors, classes: classes)
            return (images, sha256(of: bytes))
        }
    }

    private static func readFailure(_ url: URL) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a folder" }
        return "permission denied or not readable"
    }

    static let shortHeader = "label,pixel1,...,pixel784"

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte &- 48 < 10 }

    /// Validates the header line starting at `start`; returns the offset of the line after it.
    private static func checkHeader(_ base: UnsafeBufferPointer<UInt8>, from start: Int, name: String) throws -> Int {
        var end = start
        while end < base.count, base[end] != UInt8(ascii: "\n") { end += 1 }
        var lineEnd = end
        if lineEnd > start, base[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
        let text = String(decoding: UnsafeBufferPointer(rebasing: base[start ..< lineEnd]), as: UTF8.self)
        let found = text.split(separator: ",", omittingEmptySubsequences: false)
        let expected = header.split(separator: ",")
        var column = 1
        for (index, name_) in expected.enumerated() {
            guard index < found.count else {
                throw headerError(name, column, "expected '\(name_)' (the header has \(found.count) of \(expected.count) columns), found the end of the line")
            }
            if found[index] != name_ {
                throw headerError(name, column, "expected the header '\(shortHeader)', found '\(excerpt(found[index]))' where '\(name_)' belongs")
            }
            column += found[index].utf8.count + 1
        }
        if found.count > expected.count {
            throw headerError(name, column, "expected the header to end after 'pixel784', found '\(excerpt(found[expected.count]))'")
        }
        return end < base.count ? end + 1 : end
    }

    private static func headerError(_ name: String, _ column: Int, _ message: String) -> LocatedErrors {
        LocatedErrors([LocatedError(file: name, line: 1, column: column, message: message)], truncated: false)
    }

    /// Cuts `[start, count)` into about `count` pieces that each begin at a line start.
    private static func chunkBounds(_ base: UnsafeBufferPointer<UInt8>, from start: Int, count: Int) -> [Range<Int>] {
        var bounds: [Range<Int>] = []
        var lower = start
        for piece in 1 ... count {
            var upper = piece == count ? base.count : start + (base.count - start) * piece / count
            while upper < base.count, upper > lower, base[upper - 1] != UInt8(ascii: "\n") { upper += 1 }
            if upper > lower || bounds.isEmpty { bounds.append(lower ..< max(upper, lower)) }
            lower = upper
        }
        return bounds
    }

    struct ChunkResult {
        var labels: [UInt8] = []
        var pixels: [UInt8] = []
        /// Line numbers relative to the chunk's first line (0-based).
        var lines: [Int] = []
        /// Errors with lines relative to the chunk's first line (0-based).
        var errors: [LocatedError] = []
        var lineCount = 0
        var stoppedEarly = false
    }

    /// Parses whole lines in `range`. Line numbers in the result are relative to the range's start.
    static func parseChunk(_ base: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, name: String, maxErrors: Int, allowed: [Bool], rule: String) -> ChunkResult {
        var result = ChunkResult()
        let estimatedRows = range.count / 1800 + 1
        result.labels.reserveCapacity(estimatedRows)
        result.lines.reserveCapacity(estimatedRows)
        result.pixels.reserveCapacity(estimatedRows * KaggleImages.pixelCount)
        var row = [UInt8](repeating: 0, count: KaggleImages.pixelCount)
        let comma = UInt8(ascii: ","), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), minus = UInt8(ascii: "-")
        var i = range.lowerBound
        let end = range.upperBound
        var line = 0
        while i < end {
            let lineStart = i
            // A blank line (or a lone CR) carries no row: skip it.
            if base[i] == lf || (base[i] == cr && (i + 1 == end || base[i + 1] == lf)) {
                i += base[i] == cr ? 2 : 1
                line += 1
                continue
            }
            var field = 0
            var label = 0
            var failed = false
            func fail(_ column: Int, _ message: String) {
                result.errors.append(LocatedError(file: name, line: line, column: column - lineStart + 1, message: message))
                failed = true
            }
            // Each iteration reads one field and the delimiter after it.
            while true {
                let fieldStart = i
                var negative = false
                if i < end, base[i] == minus { negative = true; i += 1 }
                var value = 0
                var digits = 0
                while i < end, isDigit(base[i]) {
                    if digits < 9 { value = value &* 10 &+ Int(base[i] &- 48) }
                    digits += 1
                    i += 1
                }
                let atDelimiter = i == end || base[i] == comma || base[i] == lf || base[i] == cr
                if !failed {
                    if digits == 0 || !atDelimiter {
                        var stop = i
                        while stop < end, base[stop] != comma, base[stop] != lf, base[stop] != cr { stop += 1 }
                        let text = String(decoding: UnsafeBufferPointer(rebasing: base[fieldStart ..< stop]), as: UTF8.self)
                        fail(fieldStart, "expected an integer \(fieldRole(field)), found \(text.isEmpty ? "an empty field" : "'\(excerpt(text))'")")
                    } else if field == 0 {
                        if negative || digits > 3 || value > 255 || !allowed[value] {
                            let shown = String(decoding: UnsafeBufferPointer(rebasing: base[fieldStart ..< i]), as: UTF8.self)
                            fail(fieldStart, "expected \(rule), found \(excerpt(shown))")
                        } else {
                            label = value
                        }
                    } else if field <= KaggleImages.pixelCount {
                        if negative || digits > 3 || value > 255 {
                            let shown = String(decoding: UnsafeBufferPointer(rebasing: base[fieldStart ..< i]), as: UTF8.self)
                            fail(fieldStart, "expected a grey level from 0 to 255 for pixel\(field), found \(excerpt(shown))")
                        } else {
                            row[field - 1] = UInt8(value)
                        }
                    } else if field == fieldCount {
                        fail(fieldStart, "expected \(fieldCount) fields (a label and 784 pixels), found more")
                    }
                }
                while i < end, base[i] != comma, base[i] != lf, base[i] != cr { i += 1 }
                field += 1
                if i < end, base[i] == comma {
                    i += 1
                    continue
                }
                break
            }
            if !failed && field < fieldCount {
                fail(i, "expected \(fieldCount) fields (a label and 784 pixels), found \(field)")
            }
            if i < end, base[i] == cr { i += 1 }
            if i < end, base[i] == lf { i += 1 }
            if !failed {
                result.labels.append(UInt8(label))
                result.pixels.append(contentsOf: row)
                result.lines.append(line)
            }
            line += 1
            if result.errors.count >= maxErrors {
                result.stoppedEarly = i < end
                break
            }
        }
        result.lineCount = line
        return result
    }

    private static func fieldRole(_ field: Int) -> String {
        field == 0 ? "label" : field <= KaggleImages.pixelCount ? "grey level for pixel\(field)" : "field"
    }
}

