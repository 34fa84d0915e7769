import Artifacts
import Dataset
import Foundation
import PipelineKit
import Stages
import Testing

private let header = KaggleCSV.header
private func row(_ label: String, pixel: Int = 7) -> String {
    ([label] + Array(repeating: String(pixel), count: 784)).joined(separator: ",")
}

private func parse(_ text: String, maxErrors: Int = 20, chunks: Int = 1) throws -> KaggleImages {
    try Array(text.utf8).withUnsafeBytes { try KaggleCSV.parse($0, name: "f.csv", maxErrors: maxErrors, chunks: chunks) }
}

private func errors(_ text: String, maxErrors: Int = 20) -> [LocatedError] {
    do {
        _ = try parse(text, maxErrors: maxErrors)
        return []
    } catch let error as LocatedErrors {
        return error.errors
    } catch {
        return [LocatedError(file: "?", line: 0, column: 0, message: "\(error)")]
    }
}

@Suite struct AcceptedVariants {
    let canonical = header + "\n" + row("3", pixel: 0) + "\n" + row("24", pixel: 255) + "\n"

    @Test func canonicalFile() throws {
        let images = try parse(canonical)
        #expect(images.labels == [3, 24])
        #expect(images.pixels.count == 2 * 784)
        #expect(images.pixels.prefix(784).allSatisfy { $0 == 0 })
        #expect(images.pixels.suffix(784).allSatisfy { $0 == 255 })
        #expect(images.lines == [2, 3])
    }

    static let variants: [String: String] = [
        "no header": row("3", pixel: 0) + "\n" + row("24", pixel: 255) + "\n",
        "CRLF": header + "\r\n" + row("3", pixel: 0) + "\r\n" + row("24", pixel: 255) + "\r\n",
        "BOM": "\u{FEFF}" + header + "\n" + row("3", pixel: 0) + "\n" + row("24", pixel: 255) + "\n",
        "no final newline": header + "\n" + row("3", pixel: 0) + "\n" + row("24", pixel: 255),
        "BOM, no header, CRLF, no final newline": "\u{FEFF}" + row("3", pixel: 0) + "\r\n" + row("24", pixel: 255),
        "blank lines": header + "\n\n" + row("3", pixel: 0) + "\n\r\n" + row("24", pixel: 255) + "\n\n",
    ]

    @Test(arguments: variants.keys.sorted())
    func variantGivesTheSameImages(name: String) throws {
        let images = try parse(Self.variants[name]!)
        let reference = try parse(canonical)
        #expect(images.labels == reference.labels)
        #expect(images.pixels == reference.pixels)
    }

    @Test func parallelChunksAgreeWithOneChunk() throws {
        let text = header + "\n" + (0 ..< 900).map { row(String([0, 5, 13, 24][$0 % 4]), pixel: $0 % 256) }.joined(separator: "\n")
        let whole = try parse(text, chunks: 1)
        let pieces = try Array(text.utf8).withUnsafeBytes { try KaggleCSV.parse($0, name: "f.csv", chunks: 7) }
        #expect(whole.labels == pieces.labels)
        #expect(whole.pixels == pieces.pixels)
        #expect(whole.lines == pieces.lines)
    }
}

@Suite struct RejectedInput {
    @Test func emptyFile() {
        let found = errors("")
        #expect(found.map(\.line) == [1])
        #expect(found.first?.message.contains("empty file") == true)
    }

    @Test func headerAlone() {
        let found = errors(header + "\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 2)
        #expect(found.first?.message.contains("at least one data row") == true)
    }

    @Test func wrongHeaderNamesItsColumn() {
        let bad = header.replacingOccurrences(of: "pixel3,", with: "pixel33,")
        let found = errors(bad + "\n" + row("1") + "\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 1)
        // "label,pixel1,pixel2," is 20 characters: pixel3 starts at column 21.
        #expect(found.first?.column == 21)
        #expect(found.first?.message.contains("'pixel33' where 'pixel3' belongs") == true)
    }

    @Test func headerWithMissingColumns() {
        let found = errors("label,pixel1\n" + row("1") + "\n")
        #expect(found.first?.line == 1)
        #expect(found.first?.message.contains("found the end of the line") == true)
    }

    @Test func tooFewFields() {
        let short = (["3"] + Array(repeating: "1", count: 700)).joined(separator: ",")
        let found = errors(header + "\n" + row("1") + "\n" + short + "\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 3)
        #expect(found.first?.column == short.utf8.count + 1)
        #expect(found.first?.message == "expected 785 fields (a label and 784 pixels), found 701")
    }

    @Test func tooManyFields() {
        let long = row("1") + ",9"
        let found = errors(header + "\n" + long + "\n")
        #expect(found.first?.line == 2)
        #expect(found.first?.column == long.utf8.count)
        #expect(found.first?.message.contains("found more") == true)
    }

    @Test func notAnInteger() {
        let bad = row("1").replacingOccurrences(of: "1,7,7,", with: "1,7,x7,")
        let found = errors(header + "\n" + bad + "\n")
        #expect(found.first?.line == 2)
        #expect(found.first?.column == 5)
        #expect(found.first?.message == "expected an integer grey level for pixel2, found 'x7'")
    }

    @Test func decimalIsNotAnInteger() {
        let found = errors(row("1").replacingOccurrences(of: "1,7,", with: "1,7.5,") + "\n")
        #expect(found.first?.line == 1)
        #expect(found.first?.column == 3)
        #expect(found.first?.message.contains("'7.5'") == true)
    }

    @Test func emptyField() {
        let found = errors(row("1").replacingOccurrences(of: "1,7,", with: "1,,") + "\n")
        #expect(found.first?.column == 3)
        #expect(found.first?.message.contains("an empty field") == true)
    }

    @Test(arguments: [("256", "found 256"), ("-1", "found -1"), ("1000", "found 1000")])
    func pixelOutOfRange(value: String, shown: String) {
        let found = errors(header + "\n" + row("1").replacingOccurrences(of: "1,7,", with: "1,\(value),") + "\n")
        #expect(found.first?.line == 2)
        #expect(found.first?.column == 3)
        #expect(found.first?.message == "expected a grey level from 0 to 255 for pixel1, \(shown)")
    }

    @Test(arguments: ["9", "25", "-1", "100"])
    func labelOutOfRange(label: String) {
        let found = errors(header + "\n" + row("2") + "\n" + row(label) + "\n")
        #expect(found.count == 1)
        #expect(found.first?.line == 3)
        #expect(found.first?.column == 1)
        #expect(found.first?.message == "expected a label from 0 to 24 other than 9 (J needs motion), found \(label)")
    }

    @Test func reportsUpToMaxErrors() throws {
        let bad = (0 ..< 10).map { _ in row("9") }.joined(separator: "\n")
        let text = header + "\n" + bad + "\n"
        #expect(errors(text).count == 10)
        #expect(errors(text).map(\.line) == Array(2 ... 11))
        #expect(errors(text, maxErrors: 3).map(\.line) == [2, 3, 4])
        do {
            _ = try parse(text, maxErrors: 3)
            Issue.record("expected a failure")
        } catch let error as LocatedErrors {
            #expect(error.truncated)
            #expect(error.description.hasPrefix("f.csv:2:1: expected a label"))
        }
    }

    @Test func lineNumbersStayRightAcrossChunks() throws {
        var lines = (0 ..< 2000).map { _ in row("4") }
        lines[1500] = row("4").replacingOccurrences(of: "4,7,", with: "4,300,")
        let text = header + "\n" + lines.joined(separator: "\n") + "\n"
        do {
            _ = try Array(text.utf8).withUnsafeBytes { try KaggleCSV.parse($0, name: "f.csv", chunks: 4) }
            Issue.record("expected a failure")
        } catch let error as LocatedErrors {
            #expect(error.errors.map(\.line) == [1502])
        }
    }
}

@Suite struct QuotedInput {
    /// A huge field and one with a terminal escape sequence are quoted short and escaped, never whole
    /// or raw; a 10-million-digit label too.
    @Test func errorsQuoteAShortEscapedExcerpt() {
        let huge = String(repeating: "x", count: 10_000_000)
        let escape = "\u{1B}[2J\u{1B}[31mred"
        let digits = String(repeating: "9", count: 10_000_000)
        let text = header + "\n" + row(huge) + "\n" + row(escape) + "\n" + row(digits) + "\n"
        let messages = errors(text).map(\.message)
        #expect(messages.count == 3, "\(messages.map { $0.prefix(200) })")
        #expect(messages.allSatisfy { $0.count < 200 }, "\(messages.map(\.count))")
        #expect(messages.allSatisfy { !$0.unicodeScalars.contains { $0.value == 0x1B } })
        #expect(messages.contains { $0.contains("found '" + String(repeating: "x", count: 40) + "...'") })
        #expect(messages.contains { $0.contains("'\\u{1B}[2J\\u{1B}[31mred'") }, "\(messages)")
        #expect(messages.contains { $0.contains("found " + String(repeating: "9", count: 40) + "...") })
    }
}
