import Foundation
import PipelineKit

/// A dataset's vocabulary: each label's class name. Ingest writes it into images.sqlite as
/// `classes(label, name)`, and every later artifact carries it (preprocessed, features) or its own
/// form of it (head.sqlite's output units), so that reports, predict and export speak the dataset's
/// names without knowing which dataset it was.
public struct ClassNames: Sendable, Equatable {
    /// Label to name, labels ascending.
    public let entries: [(label: Int, name: String)]

    /// How a label outside them is described in messages ("a label from 0 to 24 other than 9").
    public let rule: String

    public init(_ entries: [(label: Int, name: String)], rule: String? = nil) {
        self.entries = entries.sorted { $0.label < $1.label }
        let labels = self.entries.map(\.label)
        // Consecutive labels read as a range; anything else (an edited file's, too) as a list.
        let consecutive = zip(labels, labels.dropFirst()).allSatisfy { $1 == $0 + 1 }
        if let rule {
            self.rule = rule
        } else if let first = labels.first, let last = labels.last, consecutive {
            self.rule = "a label from \(first) to \(last)"
        } else {
            self.rule = "one of the labels \(labels.map(String.init).joined(separator: ", "))"
        }
    }

    /// Sign Language MNIST: label i is the i-th letter, A ... Y without J (9), which needs motion.
    public static let signMNIST = ClassNames(SignLetters.validLabels.map { ($0, SignLetters.letter($0)) },
                                             rule: "a label from 0 to 24 other than 9 (J needs motion)")
    /// MNIST's digits: label i is "i".
    public static let digits = ClassNames((0 ... 9).map { ($0, String($0)) })

    /// A file of class names, one a line: the first line names label 0, the next label 1, ...
    /// (blank lines at the end ignored).
    public static func load(_ url: URL) throws -> ClassNames {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw StageError("\(url.path): cannot read the class names (a UTF-8 text file, one name a line)")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        let classes = ClassNames(lines.enumerated().map { ($0.offset, $0.element.trimmingCharacters(in: .whitespaces)) })
        if let problem = classes.problem { throw StageError("\(url.path): \(problem)") }
        return classes
    }

    /// `sign-mnist`, `digits`, or a file of names.
    public static func named(_ text: String) throws -> ClassNames {
        switch text {
        case "sign-mnist": return .signMNIST
        case "digits": return .digits
        default: return try load(URL(fileURLWithPath: text))
        }
    }

    public static func == (a: ClassNames, b: ClassNames) -> Bool {
        // The rule only words messages.
        a.entries.map(\.label) == b.entries.map(\.label) && a.entries.map(\.name) == b.entries.map(\.name)
    }

    public var labels: [Int] { entries.map(\.label) }
    public func contains(_ label: Int) -> Bool { entries.contains { $0.label == label } }
    /// The class name of `label`, or the label itself as text where none is known.
    public func name(_ label: Int) -> String { entries.first { $0.label == label }?.name ?? String(label) }

    /// The labels a stored label may take: non-negative, below this (a class name per label).
    public static let labelLimit = 1 << 20

    /// What is wrong with a vocabulary, or nil: every label in range and named once, names non-empty,
    /// without control characters, distinct.
    public var problem: String? {
        var labels = Set<Int>(), names = Set<String>()
        for (label, name) in entries {
            guard (0 ..< Self.labelLimit).contains(label) else { return "label \(label) is out of range (0 to \(Self.labelLimit - 1))" }
            guard labels.insert(label).inserted else { return "label \(label) is named twice" }
            guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                return "label \(label): a class name must be non-empty text without control characters"
            }
            guard names.insert(name).inserted else { return "the class name '\(name)' is given to two labels" }
        }
        return entries.count < 1 ? "there are no classes" : nil
    }
}


