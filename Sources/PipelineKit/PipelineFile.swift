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
    case integerList
    case inputFile(required: Bool)
}

public struct ParameterSpec: Sendable {
    public var name: String
    public var kind: ParameterKind
    /// The canonical default; nil for none (an optional input file).
    public var defaultValue: String?

    public init(_ name: String, _ kind: ParameterKind, default defaultValue: String? = nil) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
    }
}

/// A pipeline file (`pipelines/NAME.yaml`): its name, its artifacts folder and each stage's
/// parameters, every value kept with where it was written for error messages.
public struct PipelineFile: Sendable {
    public struct Value: Sendable {
        public var text: String
        public var list: [String]?
        public var line: Int
        public var column: Int
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
                                           message: "unknown stage '\(stage)' (the stages are \(known.joined(separator: ", ")))")
                    }
                    var values: [String: Value] = [:]
                    if let parameters = stageValue.mapping {
                        for (parameterKey, parameterValue) in parameters {
                            let parameter = parameterKey.string ?? ""
                            let list = parameterValue.sequence.map { $0.map { $0.string ?? "" } }
                            values[parameter] = Value(text: parameterValue.string ?? list?.joined(separator: ",") ?? "", list: list,
                                                      line: parameterKey.mark?.line ?? 0, column: parameterKey.mark?.column ?? 0)
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
                                   message: "unknown key '\(key)' (expected name, artifacts, stages)")
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
            throw error(value.line, value.column, "unknown key '\(key)' in stage \(stage) (expected: \(specs.map(\.name).joined(separator: ", ")))")
        }
        var parameters = StageParameters()
        for spec in specs {
            let value = given[spec.name]
            let where_ = value.map { ($0.line, $0.column) } ?? stageMarks[stage] ?? (1, 1)
            func fail(_ message: String) -> LocatedError { error(where_.0, where_.1, "\(stage).\(spec.name): \(message)") }
            switch spec.kind {
            case let .integer(range):
                let text = value?.text ?? spec.defaultValue ?? ""
                guard let number = Int(text) else { throw fail("expected a whole number, found '\(text)'") }
                guard range.contains(number) else { throw fail("expected \(range.lowerBound) to \(range.upperBound), found \(number)") }
                parameters.values[spec.name] = String(number)
            case let .number(range):
                let text = value?.text ?? spec.defaultValue ?? ""
                guard let number = Double(text) else { throw fail("expected a number, found '\(text)'") }
                guard range.contains(number) else { throw fail("expected \(range.lowerBound) to \(range.upperBound), found \(number)") }
                parameters.values[spec.name] = String(number)
            case .text:
                parameters.values[spec.name] = value?.text ?? spec.defaultValue ?? ""
            case let .choice(words):
                let text = value?.text ?? spec.defaultValue ?? ""
                guard words.contains(text) else { throw fail("expected one of \(words.joined(separator: ", ")), found '\(text)'") }
                parameters.values[spec.name] = text
            case .integerList:
                let items = value?.list ?? (value?.text ?? spec.defaultValue ?? "").split(separator: ",").map(String.init)
                let numbers = try items.map { item -> Int in
                    guard let number = Int(item.trimmingCharacters(in: .whitespaces)), number > 0 else {
                        throw fail("expected a list of positive whole numbers, found '\(item)'")
                    }
                    return number
                }
                parameters.values[spec.name] = numbers.map(String.init).joined(separator: ",")
            case let .inputFile(required):
                guard let text = value?.text ?? spec.defaultValue else {
                    if required { throw fail("missing: give the path of the input file") }
                    continue
                }
                let url = URL(fileURLWithPath: text, relativeTo: folder).standardizedFileURL
                guard FileManager.default.fileExists(atPath: url.path) else { throw fail("no such file: \(url.path)") }
                parameters.inputs[spec.name] = url
            }
        }
        return parameters
    }
}

/// A stage's checked parameters: canonical values (fingerprinted as written here) and input files.
public struct StageParameters: Sendable, Equatable {
    public var values: [String: String] = [:]
    public var inputs: [String: URL] = [:]

    public init() {}
}
