import Artifacts
import Foundation
import Mustache
import PipelineKit

/// `pipeline compare`: experiments side by side: the parameters that tell them apart, test accuracy,
/// macro-F1, time and cache hits, as a table, as JSON, and as `compare.html` (accuracy against each
/// varied parameter, the training curves overlaid, the per-class F1 side by side).
public struct Comparison {
    public var experiments: [Experiment]
    /// `stage.key` names whose values differ between the experiments or from the file, in pipeline order.
    public var keys: [String]

    public init(_ experiments: [Experiment], stageOrder: [String]) {
        self.experiments = experiments
        var varying = Set(experiments.flatMap(\.changes.keys))
        for key in Set(experiments.flatMap(\.params.keys)) where Set(experiments.map { $0.params[key] ?? "" }).count > 1 {
            varying.insert(key)
        }
        keys = sortedKeys(varying, order: stageOrder)
    }

    public static func percent(_ value: Double?) -> String { value.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
    public static func decimal(_ value: Double?) -> String { value.map { String(format: "%.4f", $0) } ?? "-" }

    func cells(_ experiment: Experiment) -> [String] {
        [String(experiment.id)] + keys.map { experiment.params[$0] ?? "-" }
            + [Self.percent(experiment.accuracy), Self.decimal(experiment.macroF1), String(format: "%.1f s", experiment.seconds),
               "\(experiment.cacheHits)/\(experiment.stages.count)"]
    }

    var header: [String] { ["exp"] + keys + ["accuracy", "macro-F1", "time", "cache hits"] }

    /// The table, columns aligned.
    public func table() -> String {
        let rows = [header] + experiments.map(cells)
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + experiments.map { line(cells($0)) }).joined(separator: "\n")
    }

    public func json() throws -> String {
        struct Entry: Encodable {
            var id: Int, started: Date, sweep: String?, changes: [String: String], params: [String: String]
            var accuracy: Double?, macro_f1: Double?, seconds: Double, cache_hits: Int, stages: [StageRun]
        }
        let entries = experiments.map { experiment in
            Entry(id: experiment.id, started: experiment.started, sweep: experiment.sweep, changes: experiment.changes,
                  params: experiment.params.filter { keys.contains($0.key) }, accuracy: experiment.accuracy, macro_f1: experiment.macroF1,
                  seconds: experiment.seconds, cache_hits: experiment.cacheHits, stages: experiment.stages)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(entries), as: UTF8.self)
    }

    static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    func color(_ index: Int) -> String { Self.colors[index % Self.colors.count] }

    static let width = 460.0, height = 240.0, margin = 40.0

    /// Accuracy against one parameter's values: a column per value (in numeric order when they are
    /// numbers), a dot per experiment.
    func scatter(_ key: String) -> [String: Any] {
        var values = Array(Set(experiments.map { $0.params[key] ?? "-" }))
        if values.allSatisfy({ Double($0) != nil }) { values.sort { Double($0)! < Double($1)! } } else { values.sort() }
        let accuracies = experiments.compactMap(\.accuracy)
        let top = min(1, (accuracies.max() ?? 1) + 0.02), bottom = max(0, (accuracies.min() ?? 0) - 0.02)
        let span = max(top - bottom, 1e-6)
        let plotWidth = Self.width - 2 * Self.margin, plotHeight = Self.height - 2 * Self.margin
        func x(_ index: Int) -> Double { Self.margin + plotWidth * (Double(index) + 0.5) / Double(values.count) }
        func y(_ value: Double) -> Double { Self.margin + plotHeight * (1 - (value - bottom) / span) }
        let points: [[String: Any]] = experiments.enumerated().compactMap { index, experiment in
            guard let accuracy = experiment.accuracy, let column = values.firstIndex(of: experiment.params[key] ?? "-") else { return nil }
            return ["x": String(format: "%.1f", x(column) + Double(index % 5 - 2) * 4), "y": String(format: "%.1f", y(accuracy)),
                    "color": color(index), "label": "experiment \(experiment.id): \(Self.percent(accuracy))"]
        }
        return ["key": key, "width": Self.width, "height": Self.height, "points": points,
                "ticks": values.enumerated().map { ["x": String(format: "%.1f", x($0)), "label": $1] },
                "top": Self.percent(top), "bottom": Self.percent(bottom), "topY": Self.margin + 4, "bottomY": Self.height - Self.margin,
                "left": Self.margin, "right": Self.width - Self.margin, "axisY": Self.height - Self.margin + 16]
    }

    /// One measure over epochs, a line per experiment.
    func curves(_ title: String, _ value: (Experiment.Epoch) -> Double?) -> [String: Any] {
        let series = experiments.map { $0.history.map(value) }
        let all = series.flatMap { $0.compactMap { $0 } }
        let top = all.max() ?? 1, bottom = min(all.min() ?? 0, 0)
        let span = max(top - bottom, 1e-9)
        let epochs = max(series.map(\.count).max() ?? 2, 2)
        let plotWidth = Self.width - 2 * Self.margin, plotHeight = Self.height - 2 * Self.margin
        let lines: [[String: Any]] = series.enumerated().map { index, values in
            let points = values.enumerated().compactMap { epoch, value in
                value.map { String(format: "%.1f,%.1f", Self.margin + plotWidth * Double(epoch) / Double(epochs - 1), Self.margin + plotHeight * (1 - ($0 - bottom) / span)) }
            }
            return ["color": color(index), "points": points.joined(separator: " "), "name": "experiment \(experiments[index].id)"]
        }
        return ["title": title, "width": Self.width, "height": Self.height, "lines": lines,
                "top": String(format: "%.3g", top), "bottom": String(format: "%.3g", bottom), "epochs": epochs,
                "topY": Self.margin + 4, "bottomY": Self.height - Self.margin, "left": Self.margin, "right": Self.width - Self.margin,
                "axisY": Self.height - Self.margin + 16]
    }

    public func html(pipeline: String) throws -> String {
        let letters = Set(experiments.flatMap(\.perClassF1.keys)).sorted()
        let hasValidation = experiments.contains { $0.history.contains { $0.validationAccuracy != nil } }
        let context: [String: Any] = [
            "pipeline": pipeline,
            "header": header.map { ["name": $0] },
            "rows": experiments.enumerated().map { index, experiment in
                ["color": color(index), "cells": cells(experiment).map { ["value": $0] }]
            },
            "scatters": keys.map(scatter),
            "hasScatters": !keys.isEmpty,
            "charts": [
                curves(hasValidation ? "validation accuracy" : "training accuracy") { hasValidation ? $0.validationAccuracy : $0.accuracy },
                curves(hasValidation ? "validation loss" : "training loss") { hasValidation ? $0.validationLoss : $0.loss },
            ],
            "legend": { () -> [[String: Any]] in
                let descriptions = experiments.descriptions()
                return experiments.enumerated().map { index, experiment in
                    ["color": color(index), "id": experiment.id, "changes": descriptions[experiment.id] ?? experiment.describeChanges()]
                }
            }(),
            "experimentIds": experiments.map { ["id": $0.id] },
            "f1": letters.map { letter in
                ["letter": letter, "cells": experiments.map { experiment -> [String: Any] in
                    guard let value = experiment.perClassF1[letter] else { return ["value": "-", "color": "transparent"] }
                    return ["value": String(format: "%.2f", value), "color": "rgba(31,119,180,\(String(format: "%.2f", 0.1 + 0.8 * value)))",
                            "dark": value > 0.6]
                }]
            },
            "hasF1": !letters.isEmpty,
        ]
        return try MustacheTemplate(string: Self.template).render(context)
    }

    static let template = """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><title>SignTransfer experiments: {{pipeline}}</title>
    <style>
    body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
    h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
    table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
    .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
    .f1 td { font-size: 12px; } .f1 td.dark { color: white; }
    svg { margin: 0 1em 1em 0; } svg text { font-size: 11px; fill: #555; }
    </style></head><body>
    <h1>Experiments: {{pipeline}}</h1>
    <table><tr><th></th>{{#header}}<th>{{name}}</th>{{/header}}</tr>
    {{#rows}}<tr><td><span class="swatch" style="background: {{color}}"></span></td>{{#cells}}<td>{{value}}</td>{{/cells}}</tr>
    {{/rows}}</table>
    {{#hasScatters}}<h2>Test accuracy against each varied parameter</h2>
    {{#scatters}}<svg width="{{width}}" height="{{height}}" role="img" aria-label="accuracy against {{key}}">
    <text x="{{left}}" y="16">{{key}}</text>
    <line x1="{{left}}" y1="{{bottomY}}" x2="{{right}}" y2="{{bottomY}}" stroke="#999"/>
    <line x1="{{left}}" y1="{{topY}}" x2="{{left}}" y2="{{bottomY}}" stroke="#999"/>
    <text x="2" y="{{topY}}">{{top}}</text><text x="2" y="{{bottomY}}">{{bottom}}</text>
    {{#ticks}}<text x="{{x}}" y="{{axisY}}" text-anchor="middle">{{label}}</text>{{/ticks}}
    {{#points}}<circle cx="{{x}}" cy="{{y}}" r="5" fill="{{color}}"><title>{{label}}</title></circle>{{/points}}
    </svg>{{/scatters}}{{/hasScatters}}
    <h2>Training curves</h2>
    {{#charts}}<svg width="{{width}}" height="{{height}}" role="img" aria-label="{{title}} per epoch">
    <text x="{{left}}" y="16">{{title}}</text>
    <line x1="{{left}}" y1="{{bottomY}}" x2="{{right}}" y2="{{bottomY}}" stroke="#999"/>
    <line x1="{{left}}" y1="{{topY}}" x2="{{left}}" y2="{{bottomY}}" stroke="#999"/>
    <text x="2" y="{{topY}}">{{top}}</text><text x="2" y="{{bottomY}}">{{bottom}}</text>
    <text x="{{left}}" y="{{axisY}}">1</text><text x="{{right}}" y="{{axisY}}" text-anchor="end">epoch {{epochs}}</text>
    {{#lines}}<polyline fill="none" stroke="{{color}}" stroke-width="2" points="{{points}}"><title>{{name}}</title></polyline>{{/lines}}
    </svg>{{/charts}}
    <p>{{#legend}}<span style="margin-right: 1.5em"><span class="swatch" style="background: {{color}}"></span>{{id}}: {{changes}}</span> {{/legend}}</p>
    {{#hasF1}}<h2>Per-class F1 on the test split</h2>
    <table class="f1"><tr><th>class</th>{{#experimentIds}}<th>exp {{id}}</th>{{/experimentIds}}</tr>
    {{#f1}}<tr><th>{{letter}}</th>{{#cells}}<td style="background: {{color}}"{{#dark}} class="dark"{{/dark}}>{{value}}</td>{{/cells}}</tr>
    {{/f1}}</table>{{/hasF1}}
    </body></html>
    """
}
