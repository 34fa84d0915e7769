import Foundation
import Numerical
import Yams

/// What a stage parameter may hold. Paths are the stage's inputs from outside the pipeline: they are
/// resolved against the pipeline file's folder and fingerprinted by content, not by name.
public enum ParameterKind: Sendable {
    case integer(ClosedRange<Int>)
    case number(ClosedRange<Double>)
    case text
    /// One of the listed words.
    case choice([String])
    /// Comma-separated (or a YAML list of) whole numbers, each in the range.
    case integerList(ClosedRange<Int>)
    /// Comma-separated (or a YAML list of) words from the list, each once, between `count` of them;
    /// canonically in the list's order, whatever order they were given in.
    /// `summary` says what the names are where the list's ends alone would not (several backbones' nodes).
    case choiceList([String], count: ClosedRange<Int>, summary: String? = nil)
    /// Free text that `check` accepts (it returns what is wrong, or nil): checked with the rest of the
    /// file, before any stage runs.
    case checkedText(@Sendable (String) -> String?)
    case inputFile(required: Bool)
}

/// One parameter of a stage, declared once: its key in a pipeline file (`learning_rate`), its option
/// on the stage's command line (`--learning-rate`), its kind with its limits, its default and its
/// help. The file, the command line and the fingerprint all go through `canonical`.
public struct ParameterSpec: Sendable {
    public var name: String
    public var kind: ParameterKind
    /// The canonical default; nil for none (an optional input file).
    public var defaultValue: String?
    public var help: String
    /// How the help names the value (`<sizes>`).
    public var valueName: String
    /// A parameter added to a stage that already had results: at its default it is left out of the
    /// fingerprint, so that upgrading the tool does not rerun the stage (a 19-minute extract) to
    /// make the same output; any other value is fingerprinted as usual.
    public var addedLater = false

    public init(_ name: String, _ kind: ParameterKind, default defaultValue: String? = nil, help: String = "", value valueName: String? = nil,
                addedLater: Bool = false) {
        self.addedLater = addedLater
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.valueName = valueName ?? {
            if case let .choice(words) = kind { return words.joined(separator: "|") }
            return name.replacingOccurrences(of: "_", with: "-")
        }()
    }

    /// The command-line option: `--` and the key with dashes.
    public var option: String { "--" + name.replacingOccurrences(of: "_", with: "-") }

    /// An input file is the pipeline file's business only: a stage's command line names its inputs
    /// with options of its own.
    public var isInputFile: Bool {
        if case .inputFile = kind { return true }
        return false
    }
}

/// A pipeline file (`pipelines/NAME.yaml`): its name, its artifacts folder and each stage's
/// parameters, every value kept with where it was written for error messages.
public struct PipelineFile: Sendable {
    public struct Value: Sendable {
        public var text: String
        public var list: [String]?
        /// Written in quotes: a string to YAML, so never a number, whatever its characters.
        public var quoted = false
        public var line: Int
        public var column: Int
        /// Given on the command line (`--set train.dropout=0.2`), not in the file: errors name it.
        public var origin: String?
    }

    public var url: URL
    public var name: String
    public var artifacts: URL
    /// Stage name to its keys, in file order.
    public var stages: [String: [String: Value]]
    public var stageMarks: [String: (line: Int, column: Int)]

    public var folder: URL { url.deletingLastPathComponent() }

    func error(_ line: Int, _ column: Int, _ message: String) -> LocatedError {
        LocatedError(file: url.path, line: line, column: column, message: message)
    }

    /// Reads and checks the file's structure; `known` are the stage names this tool has.
    public init(_ url: URL, knownStages known: [String]) throws {
        self.url = url.standardizedFileURL
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw StageError("\(url.path): cannot read the pipeline file: \(error.userMessage)")
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw LocatedError(file: url.path, line: 1, column: 1, message: "expected a pipeline (name, artifacts, stages), found an empty file")
            }
            root = node
        } catch let error as YamlError {
            // Yams describes parser errors as "LINE:COLUMN: error: ...": prefixed with the path, the
            // usual FILE:LINE:COLUMN form.
            throw StageError("\(url.path):\(error)".replacingOccurrences(of: "\n", with: " ", options: [], range: nil))
        }
        guard let mapping = root.mapping else {
            throw LocatedError(file: url.path, line: root.mark?.line ?? 1, column: root.mark?.column ?? 1,
                               message: "expected a mapping with the keys name, artifacts and stages")
        }
        var name: String?, artifacts: String?
        var stages: [String: [String: Value]] = [:]
        var stageMarks: [String: (line: Int, column: Int)] = [:]
        for (keyNode, valueNode) in mapping {
            let key = keyNode.string ?? ""
            let mark = keyNode.mark
            switch key {
            case "name": name = valueNode.string
            case "artifacts": artifacts = valueNode.string
            case "stages":
                guard let stageMap = valueNode.mapping else {
                    throw LocatedError(file: url.path, line: valueNode.mark?.line ?? 0, column: valueNode.mark?.column ?? 0,
                                       message: "stages: expected a mapping of stage names to their parameters")
                }
                for (stageKey, stageValue) in stageMap {
                    let stage = stageKey.string ?? ""
                    guard known.contains(stage) else {
                        throw LocatedError(file: url.path, line: stageKey.mark?.line ?? 0, column: stageKey.mark?.column ?? 0,
                                           message: "unknown stage '\(excerpt(stage))' (the stages are \(known.joined(separator: ", ")))")
                    }
                    var values: [String: Value] = [:]
                    if let parameters = stageValue.mapping {
                        for (parameterKey, parameterValue) in parameters {
                            let parameter = parameterKey.string ?? ""
                            let list = parameterValue.sequence.map { $0.map { $0.string ?? "" } }
                            var value = Value(text: parameterValue.string ?? list?.joined(separator: ",") ?? "", list: list,
                                              line: parameterKey.mark?.line ?? 0, column: parameterKey.mark?.column ?? 0)
                            value.quoted = [.singleQuoted, .doubleQuoted].contains(parameterValue.scalar?.style)
                                || (parameterValue.sequence?.contains { [.singleQuoted, .doubleQuoted].contains($0.scalar?.style) } ?? false)
                            values[parameter] = value
                        }
                    } else if stageValue.scalar == nil || !(stageValue.string ?? "").isEmpty {
                        throw LocatedError(file: url.path, line: stageValue.mark?.line ?? 0, column: stageValue.mark?.column ?? 0,
                                           message: "\(stage): expected a mapping of parameters")
                    }
                    stages[stage] = values
                    stageMarks[stage] = (stageKey.mark?.line ?? 0, stageKey.mark?.column ?? 0)
                }
            default:
                throw LocatedError(file: url.path, line: mark?.line ?? 0, column: mark?.column ?? 0,
                                   message: "unknown key '\(excerpt(key))' (expected name, artifacts, stages)")
            }
        }
        guard let name, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw LocatedError(file: url.path, line: 1, column: 1, message: "name: expected a pipeline name of letters, digits, '-' and '_'")
        }
        self.name = name
        let folder = self.url.deletingLastPathComponent()
        self.artifacts = URL(fileURLWithPath: artifacts ?? "../artifacts/\(name)", relativeTo: folder).standardizedFileURL
        self.stages = stages
        self.stageMarks = stageMarks
    }

    /// A stage's parameters checked against its specification: unknown keys, wrong types, values out
    /// of range and missing input files are errors naming the line and the key.
    public func parameters(of stage: String, specs: [ParameterSpec]) throws -> StageParameters {
        let given = stages[stage] ?? [:]
        for (key, value) in given where !specs.contains(where: { $0.name == key }) {
            let message = "unknown key '\(excerpt(key))' in stage \(stage) (expected: \(specs.map(\.name).joined(separator: ", ")))"
            if let origin = value.origin { throw StageError("\(origin): \(message)") }
            throw error(value.line, value.column, message)
        }
        var parameters = StageParameters()
        for spec in specs {
            let value = given[spec.name]
            let where_ = value.map { ($0.line, $0.column) } ?? stageMarks[stage] ?? (1, 1)
            func fail(_ message: String) -> any Error {
                if let origin = value?.origin { return StageError("\(origin): \(stage).\(spec.name): \(message)") }
                return error(where_.0, where_.1, "\(stage).\(spec.name): \(message)")
            }
            if case let .inputFile(required) = spec.kind {
                guard let text = value?.text ?? spec.defaultValue else {
                    if required { throw fail("missing: give the path of the input file") }
                    continue
                }
                let url = URL(fileURLWithPath: text, relativeTo: folder).standardizedFileURL
                guard FileManager.default.fileExists(atPath: url.path) else { throw fail("no such file: \(url.path)") }
                parameters.inputs[spec.name] = url
                continue
            }
            do {
                parameters.values[spec.name] = try spec.canonical(value?.text ?? spec.defaultValue ?? "", list: value?.list, quoted: value?.quoted ?? false)
            } catch let problem as ParameterProblem {
                throw fail(problem.message)
            }
        }
        return parameters
    }
}

/// One `--set STAGE.KEY=VALUE`: a parameter's value for one run, over the file's.
public struct ParameterSetting: Sendable, Hashable {
    public var stage: String
    public var key: String
    /// As written; `[a,b]` is a list.
    public var value: String

    /// Reads `STAGE.KEY=VALUE`; `what` names the option in errors (`--set`, `--grid`).
    public init(parsing text: String, what: String = "--set") throws {
        guard let equals = text.firstIndex(of: "="), let dot = text[..<equals].firstIndex(of: ".") else {
            throw StageError("\(what) \(excerpt(text)): expected STAGE.KEY=VALUE, as in train.dropout=0.2")
        }
        stage = String(text[..<dot])
        key = String(text[text.index(after: dot)..<equals])
        value = String(text[text.index(after: equals)...])
        guard !stage.isEmpty, !key.isEmpty else { throw StageError("\(what) \(excerpt(text)): expected STAGE.KEY=VALUE, as in train.dropout=0.2") }
    }

    public init(stage: String, key: String, value: String) {
        self.stage = stage
        self.key = key
        self.value = value
    }

    /// `stage.key`, the parameter it sets.
    public var name: String { "\(stage).\(key)" }

    /// `stage.key=value`, as given.
    public var description: String { "\(name)=\(value)" }

    /// The value as the file's parser would hold it: `[a, b]` is a list, quotes make a string.
    var fileValue: PipelineFile.Value {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") {
            let items = trimmed.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return PipelineFile.Value(text: items.joined(separator: ","), list: items, line: 0, column: 0, origin: "--set \(description)")
        }
        for quote in ["\"", "'"] where trimmed.count >= 2 && trimmed.hasPrefix(quote) && trimmed.hasSuffix(quote) {
            var value = PipelineFile.Value(text: String(trimmed.dropFirst().dropLast()), list: nil, line: 0, column: 0, origin: "--set \(description)")
            value.quoted = true
            return value
        }
        return PipelineFile.Value(text: trimmed, list: nil, line: 0, column: 0, origin: "--set \(description)")
    }
}

extension PipelineFile {
    /// The file with `settings` over its values (a variant: the file itself is not touched). A stage
    /// the tool does not have is an error here; keys and values are checked with the rest, by
    /// `parameters(of:specs:)`, and their errors name the setting.
    public func applying(_ settings: [ParameterSetting], knownStages known: [String]) throws -> PipelineFile {
        var variant = self
        var seen: [String: ParameterSetting] = [:]
        for setting in settings {
            guard known.contains(setting.stage) else {
                throw StageError("--set \(excerpt(setting.description)): unknown stage '\(excerpt(setting.stage))' (the stages are \(known.joined(separator: ", ")))")
            }
            // The last of two would win silently: one value per key.
            if let earlier = seen["\(setting.stage).\(setting.key)"] {
                throw StageError("--set \(excerpt(setting.description)): \(setting.stage).\(setting.key) is already set (\(excerpt(earlier.description))): give each parameter once")
            }
            seen["\(setting.stage).\(setting.key)"] = setting
            variant.stages[setting.stage, default: [:]][setting.key] = setting.fileValue
        }
        return variant
    }
}

/// Why a value does not fit its parameter, without saying where it was written.
public struct ParameterProblem: Error, Sendable {
    public var message: String
}

extension ParameterSpec {
    /// The canonical text of a value for this parameter (what the fingerprint hashes and the stage
    /// reads), checked against its kind and range: the one check for the pipeline file and the
    /// command line alike. `quoted` is a YAML string, never a number.
    public func canonical(_ text: String, list: [String]? = nil, quoted: Bool = false) throws -> String {
        func fail(_ message: String) -> ParameterProblem { ParameterProblem(message: message) }
        switch kind {
        case let .integer(range):
            guard !quoted else { throw fail("expected a whole number, found the string \"\(text)\" (no quotes around numbers)") }
            guard let number = Int(text) else { throw fail("expected a whole number, found '\(excerpt(text))'") }
            guard range.contains(number) else { throw fail("expected \(range.lowerBound) to \(range.upperBound), found \(number)") }
            return String(number)
        case let .number(range):
            guard !quoted else { throw fail("expected a number, found the string \"\(text)\" (no quotes around numbers)") }
            guard let number = Double(text), number.isFinite else { throw fail("expected a number, found '\(excerpt(text))'") }
            guard range.contains(number) else { throw fail("expected \(range.lowerBound) to \(range.upperBound), found \(number)") }
            // -0 is 0: one spelling, one fingerprint.
            return String(number == 0 ? 0 : number)
        case .text, .inputFile:
            return text
        case let .checkedText(check):
            if let problem = check(text) { throw fail(problem) }
            return text
        case let .choice(words):
            guard words.contains(text) else { throw fail("expected one of \(words.joined(separator: ", ")), found '\(excerpt(text))'") }
            return text
        case let .integerList(range):
            guard !quoted else { throw fail("expected a list of whole numbers, found a string (no quotes around numbers)") }
            let items = list ?? text.split(separator: ",").map(String.init)
            let numbers = try items.map { item -> Int in
                guard let number = Int(item.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
                    throw fail("expected a list of whole numbers from \(range.lowerBound) to \(range.upperBound), found '\(excerpt(item))'")
                }
                return number
            }
            return numbers.map(String.init).joined(separator: ",")
        case let .choiceList(words, count, summary):
            // "" is no names (keep's default); "a,,b" keeps its empty name, which is refused below.
            let items = (list ?? (text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
                .map { $0.trimmingCharacters(in: .whitespaces) }
            var chosen: [Int] = []
            for item in items {
                guard let index = words.firstIndex(of: item) else {
                    throw fail("'\(excerpt(item))' is not one of " + (summary ?? "\(words.first ?? "") ... \(words.last ?? "") (\(words.count) names)"))
                }
                guard !chosen.contains(index) else { throw fail("'\(excerpt(item))' is named twice") }
                chosen.append(index)
            }
            guard count.contains(chosen.count) else {
                throw fail(count.upperBound == 1 ? "expected at most one name, found \(chosen.count)" : "expected \(count.lowerBound) to \(count.upperBound) names, found \(chosen.count)")
            }
            return chosen.sorted().map { words[$0] }.joined(separator: ",")
        }
    }
}

extension StageParameters {
    /// Parameters given on a command line (`given`: name to text; absent ones take their default),
    /// checked by the same rules as a pipeline file's; errors name the option (`--learning-rate`).
    public static func fromCommandLine(_ given: [String: String], specs: [ParameterSpec]) throws -> StageParameters {
        var parameters = StageParameters()
        for spec in specs where !spec.isInputFile {
            let text = given[spec.name] ?? spec.defaultValue ?? ""
            do {
                parameters.values[spec.name] = try spec.canonical(text)
            } catch let problem as ParameterProblem {
                throw StageError("\(spec.option) \(excerpt(text)): \(problem.message)")
            }
        }
        return parameters
    }

    /// Parameters from command-line words (`--learning-rate 0.01` or `--learning-rate=0.01`, each at
    /// most once), the options being the specs' own; anything else is an error naming it.
    public static func fromArguments(_ words: [String], specs: [ParameterSpec]) throws -> StageParameters {
        var given: [String: String] = [:]
        var index = 0
        while index < words.count {
            let word = words[index]
            let (option, inline) = word.contains("=") ? (String(word.prefix { $0 != "=" }), String(word.drop { $0 != "=" }.dropFirst())) : (word, nil)
            guard let spec = specs.first(where: { $0.option == option }) else {
                let known = specs.filter { !$0.isInputFile }.map(\.option)
                throw StageError(option.hasPrefix("-") ? "unknown option '\(excerpt(option))' (the stage's parameters are \(known.joined(separator: ", ")); see --help)"
                                                       : "unexpected argument '\(excerpt(word))'")
            }
            guard given[spec.name] == nil else { throw StageError("\(option) is given twice") }
            if let inline {
                given[spec.name] = inline
            } else {
                guard index + 1 < words.count else { throw StageError("\(option) needs a value (\(spec.valueName))") }
                index += 1
                given[spec.name] = words[index]
            }
            index += 1
        }
        return try fromCommandLine(given, specs: specs)
    }
}

extension ParameterSpec {
    /// The help for these parameters as command-line options, laid out as swift-argument-parser lays
    /// out its own (the text from column 27, lines up to 76 wide, since the help is re-wrapped at 80),
    /// each with its default.
    public static func optionsHelp(_ specs: [ParameterSpec], title: String) -> String {
        let indent = String(repeating: " ", count: 26)
        var lines = [title]
        for spec in specs where !spec.isInputFile {
            let option = "  \(spec.option) <\(spec.valueName)>"
            let shown = spec.defaultValue.map { $0.isEmpty ? "none" : $0 } ?? "none"
            // The option shares its first line with the text when it fits in the column before it.
            var line = option.count < 24 ? option.padding(toLength: indent.count, withPad: " ", startingAt: 0) : indent
            if option.count >= 24 { lines.append(option) }
            for word in "\(spec.help) (default: \(shown))".split(separator: " ") {
                if line.count + word.count > 76 && line.count > indent.count {
                    lines.append(String(line.dropLast()))
                    line = indent
                }
                line += word + " "
            }
            lines.append(String(line.dropLast()))
        }
        return lines.joined(separator: "\n")
    }
}
/// A stage's checked parameters: canonical values (fingerprinted as written here) and input files.
public struct StageParameters: Sendable, Equatable {
    public var values: [String: String] = [:]
    public var inputs: [String: URL] = [:]

    public init() {}

    /// The canonical value of `key`; `fallback` for a parameter added after the values were
    /// recorded. A key that is missing without one is an error naming it (checked values always
    /// hold every declared key, so this means a stage asked for an undeclared one).
    public func text(_ key: String, default fallback: String? = nil) throws(StageError) -> String {
        guard let value = values[key] ?? fallback else { throw StageError("parameter \(key) has no value") }
        return value
    }

    public func integer(_ key: String) throws(StageError) -> Int {
        let text = try text(key)
        guard let value = Int(text) else { throw StageError("parameter \(key): expected a whole number, found '\(text)'") }
        return value
    }

    public func number(_ key: String, default fallback: String? = nil) throws(StageError) -> Double {
        let text = try text(key, default: fallback)
        guard let value = Double(text), value.isFinite else { throw StageError("parameter \(key): expected a number, found '\(text)'") }
        return value
    }

    /// A comma-separated list of whole numbers; empty for none.
    public func integers(_ key: String) throws(StageError) -> [Int] {
        let text = try text(key)
        guard !text.isEmpty else { return [] }
        var values: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Int(part) else { throw StageError("parameter \(key): expected whole numbers separated by commas, found '\(text)'") }
            values.append(value)
        }
        return values
    }

    /// A value of a closed set (`RawRepresentable` by its spelling).
    public func choice<Value: RawRepresentable>(_ key: String, as type: Value.Type, default fallback: String? = nil) throws(StageError) -> Value
        where Value.RawValue == String {
        let text = try text(key, default: fallback)
        guard let value = Value(rawValue: text) else { throw StageError("parameter \(key): '\(text)' is not one of its choices") }
        return value
    }
}
