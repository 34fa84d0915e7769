import Artifacts
import Foundation
import Numerical
import PipelineKit

/// A variant of a pipeline: the file with some values set over it (`--set`, one cell of a sweep's grid).
public struct Variant: Sendable, Hashable {
    public var settings: [ParameterSetting]

    public init(_ settings: [ParameterSetting]) { self.settings = settings }

    /// `stage.key=value ...`, as given.
    public var description: String { settings.isEmpty ? "(the file as is)" : settings.map(\.description).joined(separator: " ") }

    /// A folder name for the variant's own artifacts in a sweep: readable, and distinct for distinct
    /// settings (a hash is added when the readable part had to be shortened or changed).
    public var folderName: String {
        let text = settings.map(\.description).joined(separator: "_")
        let safe = String(text.map { $0.isLetter || $0.isNumber || "._=-".contains($0) ? $0 : "-" })
        if safe == text && !safe.isEmpty && safe.count <= 80 && !safe.hasPrefix(".") { return safe }
        return String(safe.prefix(60)) + "-" + Data(text.utf8).withUnsafeBytes { sha256(of: $0) }.prefix(10)
    }
}

public enum Variants {
    /// Every parameter of `file` as `stage.key` to its canonical value (input files by path), each
    /// checked: a bad --set is an error naming it before anything runs.
    public static func parameters(of file: PipelineFile, stages: [StageDefinition]) throws -> [String: String] {
        var flat: [String: String] = [:]
        for stage in stages {
            let values = try file.parameters(of: stage.name, specs: stage.parameters)
            if let problem = stage.check(values) { throw StageError("\(file.url.path): stage \(stage.name): \(problem)") }
            for (key, value) in values.values { flat["\(stage.name).\(key)"] = value }
            for (key, url) in values.inputs { flat["\(stage.name).\(key)"] = url.path }
        }
        return flat
    }

    /// Every parameter whose canonical value in `variant` differs from `base`'s, as `stage.key` to
    /// the variant's value.
    public static func changes(of variant: PipelineFile, from base: PipelineFile, stages: [StageDefinition]) throws -> [String: String] {
        let before = try parameters(of: base, stages: stages), after = try parameters(of: variant, stages: stages)
        var changes: [String: String] = [:]
        for key in Set(before.keys).union(after.keys) where before[key] != after[key] { changes[key] = after[key] ?? "" }
        return changes
    }

    /// What a finished run made of itself, as an experiment: its stages as the runner saw them and,
    /// when train's output is there, the head's figures.
    public static func experiment(of runner: PipelineRunner, changes: [String: String], sweep: String?, started: Date) throws -> Experiment {
        var experiment = Experiment(started: started, seconds: Date().timeIntervalSince(started), sweep: sweep, changes: changes,
                                    params: try parameters(of: runner.file, stages: runner.stages), stages: runner.runs)
        if runner.runs.contains(where: { $0.stage == "train" }), let record = runner.manifest.stages["train"] {
            let summary = try HeadStore.summary(URL(fileURLWithPath: record.output.path))
            experiment.accuracy = summary.accuracy
            experiment.macroF1 = summary.macroF1
            experiment.history = summary.history
            experiment.perClassF1 = summary.perClassF1
            experiment.testImages = summary.testImages
        }
        return experiment
    }

    /// Reads `--grid STAGE.KEY=V1,V2,...`: commas inside brackets belong to a list value
    /// (`train.hidden=[256],[512,128]`).
    public static func grid(_ text: String) throws -> [ParameterSetting] {
        let whole = try ParameterSetting(parsing: text, what: "--grid")
        var values: [String] = [], current = "", depth = 0
        for character in whole.value {
            switch character {
            case "[": depth += 1
            case "]": depth -= 1
            default: break
            }
            if character == "," && depth == 0 {
                values.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        values.append(current)
        values = values.map { $0.trimmingCharacters(in: .whitespaces) }
        guard depth == 0, !values.contains(where: \.isEmpty) else {
            throw StageError("--grid \(excerpt(text)): expected STAGE.KEY=V1,V2,... with no empty value and balanced brackets")
        }
        guard Set(values).count == values.count else { throw StageError("--grid \(excerpt(text)): a value is named twice") }
        return values.map { ParameterSetting(stage: whole.stage, key: whole.key, value: $0) }
    }

    /// Every combination of the grids' values, each after the fixed `settings`, the first grid
    /// varying slowest.
    public static func combinations(_ grids: [[ParameterSetting]], after settings: [ParameterSetting]) -> [Variant] {
        var variants = [settings]
        for grid in grids {
            variants = variants.flatMap { prefix in grid.map { prefix + [$0] } }
        }
        return variants.map(Variant.init)
    }

    /// The order to start variants in so that those running at once differ as early in the pipeline
    /// as they can (two sizes extract side by side; two dropouts of one size share its extract, and
    /// the second would only wait for the first's): variants are grouped by their earliest stage's
    /// values and taken from the groups in turn.
    public static func schedule(_ variants: [Variant], stageOrder: [String]) -> [Variant] {
        guard let earliest = variants.flatMap({ $0.settings.map(\.stage) }).min(by: {
            (stageOrder.firstIndex(of: $0) ?? .max) < (stageOrder.firstIndex(of: $1) ?? .max)
        }) else { return variants }
        var groups: [[Variant]] = [], keys: [[ParameterSetting]] = []
        for variant in variants {
            let key = variant.settings.filter { $0.stage == earliest }
            if let index = keys.firstIndex(of: key) { groups[index].append(variant) } else {
                keys.append(key)
                groups.append([variant])
            }
        }
        var ordered: [Variant] = []
        for round in 0 ..< (groups.map(\.count).max() ?? 0) {
            for group in groups where round < group.count { ordered.append(group[round]) }
        }
        return ordered
    }
}
