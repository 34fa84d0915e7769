import Artifacts
import Foundation
import Mustache
import PipelineKit

/// `pipeline compare`: experiments side by side: the parameters that tell them apart, test accuracy,
/// macro-F1, time and cache hits, as a table, as JSON, and as `compare.html` (accuracy against each
/// varied parameter, the training curves overlaid, the per-class F1 side by side).
public struct Comparison {
    public let experiments: [Experiment]
    /// `stage.key` names whose values differ between the experiments or from the file, in pipeline order.
    public var keys: [String]
    /// The experiments with runs that made the very same outputs folded into one (`fold`): the
    /// page's rows, curves and dots.
    public let folded: [(experiment: Experiment, also: [Int])]

    public init(_ experiments: [Experiment], stageOrder: [String]) {
        self.experiments = experiments
        folded = Self.fold(experiments)
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
    /// The ten classic colours, then hues a golden angle apart (no two of any number alike).
    func color(_ index: Int) -> String {
        index < Self.colors.count ? Self.colors[index] : String(format: "hsl(%.0f, 65%%, 42%%)", (Double(index) * 137.508).truncatingRemainder(dividingBy: 360))
    }
    /// Solid for the first ten lines, then dashed, then dotted: lines close together stay apart.
    func dash(_ index: Int) -> String { ["", "7 3", "2 3"][(index / Self.colors.count) % 3] }

    /// Experiments that made the very same outputs (every stage's fingerprint alike: a sweep run
    /// twice, a run repeated), folded into one entry: the first, and the ids of the others.
    static func fold(_ experiments: [Experiment]) -> [(experiment: Experiment, also: [Int])] {
        var groups: [(experiment: Experiment, also: [Int])] = [], index: [String: Int] = [:]
        for experiment in experiments {
            let key = experiment.stages.isEmpty ? "id \(experiment.id)" : experiment.stages.map(\.fingerprint).joined(separator: ",")
            if let found = index[key] {
                groups[found].also.append(experiment.id)
            } else {
                index[key] = groups.count
                groups.append((experiment, []))
            }
        }
        return groups
    }

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
        // A dot per folded run, coloured as its row and its curves.
        let points: [[String: Any]] = folded.map(\.experiment).enumerated().compactMap { index, experiment in
            guard let accuracy = experiment.accuracy, let column = values.firstIndex(of: experiment.params[key] ?? "-") else { return nil }
            return ["x": String(format: "%.1f", x(column) + Double(index % 5 - 2) * 4), "y": String(format: "%.1f", y(accuracy)),
                    "color": color(index), "label": "experiment \(experiment.id): \(Self.percent(accuracy))"]
        }
        return ["key": key, "width": Self.width, "height": Self.height, "points": points,
                "ticks": values.enumerated().map { ["x": String(format: "%.1f", x($0)), "label": $1] },
                "top": Self.percent(top), "bottom": Self.percent(bottom), "topY": Self.margin + 4, "bottomY": Self.height - Self.margin,
                "left": Self.margin, "right": Self.width - Self.margin, "axisY": Self.height - Self.margin + 16]
    }

    /// One measure over epochs, a line per experiment (folded ones drawn once).
    func curves(_ title: String, _ value: (Experiment.Epoch) -> Double?) -> [String: Any] {
        let shown = folded.map(\.experiment)
        let series = shown.map { $0.history.map(value) }
        let all = series.flatMap { $0.compactMap { $0 } }
        let top = all.max() ?? 1, bottom = min(all.min() ?? 0, 0)
        let span = max(top - bottom, 1e-9)
        let epochs = max(series.map(\.count).max() ?? 2, 2)
        let plotWidth = Self.width - 2 * Self.margin, plotHeight = Self.height - 2 * Self.margin
        let lines: [[String: Any]] = series.enumerated().map { index, values in
            let points = values.enumerated().compactMap { epoch, value in
                value.map { String(format: "%.1f,%.1f", Self.margin + plotWidth * Double(epoch) / Double(epochs - 1), Self.margin + plotHeight * (1 - ($0 - bottom) / span)) }
            }
            return ["color": color(index), "dash": dash(index), "points": points.joined(separator: " "), "name": "experiment \(shown[index].id)"]
        }
        return ["title": title, "width": Self.width, "height": Self.height, "lines": lines,
                "top": String(format: "%.3g", top), "bottom": String(format: "%.3g", bottom), "epochs": epochs,
                "topY": Self.margin + 4, "bottomY": Self.height - Self.margin, "left": Self.margin, "right": Self.width - Self.margin,
                "axisY": Self.height - Self.margin + 16]
    }

    /// compare.html. `report`: where an experiment's report.html is, relative to the page, when
    /// it can still be opened (its train output in the run cache).
    public func html(pipeline: String, report: (Experiment) -> String? = { _ in nil }) throws -> String {
        let groups = folded
        let letters = Set(experiments.flatMap(\.perClassF1.keys)).sorted()
        let hasValidation = experiments.contains { $0.history.contains { $0.validationAccuracy != nil } }
        // The best accuracy in bold, every run that has it; none when all runs score the same.
        let accuracies = groups.compactMap(\.experiment.accuracy)
        let best = Set(accuracies).count > 1 ? accuracies.max() : nil
        let descriptions = experiments.descriptions()
        var charts = [curves("training accuracy") { $0.accuracy }, curves("training loss") { $0.loss }]
        if hasValidation {
            charts = [curves("validation accuracy") { $0.validationAccuracy }, curves("validation loss") { $0.validationLoss }] + charts
        }
        let context: [String: Any] = [
            "pipeline": pipeline,
            "header": (["exp"] + keys + ["accuracy", "test images", "macro-F1", "time", "cache hits"]).enumerated().map { ["name": $1, "column": $0 + 1] },
            "rows": groups.enumerated().map { index, group in
                let experiment = group.experiment
                let tested = experiment.testImages.map { "\($0) (1 = \(String(format: "%.2f", 100 / Double(max($0, 1)))) pts)" } ?? "-"
                var row: [String: Any] = [
                    "color": color(index), "id": experiment.id,
                    "also": group.also.isEmpty ? "" : " (also \(group.also.map(String.init).joined(separator: ", ")): the same outputs)",
                    "cells": (keys.map { experiment.params[$0] ?? "-" }
                        + [Self.percent(experiment.accuracy), tested, Self.decimal(experiment.macroF1), String(format: "%.1f s", experiment.seconds),
                           "\(experiment.cacheHits)/\(experiment.stages.count)"]).map { ["value": $0] },
                    "best": best != nil && experiment.accuracy == best,
                ]
                if let link = report(experiment) { row["report"] = link }
                return row
            },
            "scatters": keys.map(scatter),
            "hasScatters": !keys.isEmpty,
            "charts": charts,
            "legend": groups.enumerated().map { index, group in
                ["color": color(index), "dash": dash(index), "id": group.experiment.id,
                 "changes": descriptions[group.experiment.id] ?? group.experiment.describeChanges()]
            },
            "experimentIds": groups.map { ["id": $0.experiment.id] },
            "f1": letters.map { letter in
                ["letter": letter, "cells": groups.map { group -> [String: Any] in
                    guard let value = group.experiment.perClassF1[letter] else { return ["value": "-", "color": "transparent"] }
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
    #runs th { cursor: pointer; user-select: none; } #runs th:hover { background: #f3f3f3; }
    #runs tr.best td { background: #eef7ee; font-weight: bold; }
    .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
    .f1 td { font-size: 12px; } .f1 td.dark { color: white; }
    svg { margin: 0 1em 1em 0; } svg text { font-size: 11px; fill: #555; } .note { color: #555; }
    </style></head><body>
    <h1>Experiments: {{pipeline}}</h1>
    <p class="note">Click a column's name to sort by it. The best test accuracy is in bold (when the runs differ); "1 = x pts" is what one test image is worth; runs that made the very same outputs are one row. Cache hits: the stages restored from the run cache.</p>
    <table id="runs"><tr><th data-column="0"></th>{{#header}}<th data-column="{{column}}">{{name}}</th>{{/header}}<th>report</th></tr>
    {{#rows}}<tr{{#best}} class="best"{{/best}}><td><span class="swatch" style="background: {{color}}"></span></td><td>{{id}}<small>{{also}}</small></td>{{#cells}}<td>{{value}}</td>{{/cells}}<td>{{#report}}<a href="{{report}}">report</a>{{/report}}</td></tr>
    {{/rows}}</table>
    <script>
    // Sort the table by a column: numbers as numbers (a leading figure), the rest as text; again to reverse.
    document.querySelectorAll("#runs th[data-column]").forEach(function (th) {
      th.addEventListener("click", function () {
        var table = document.getElementById("runs"), column = +th.dataset.column;
        var rows = Array.prototype.slice.call(table.rows, 1), down = th.dataset.down !== "1";
        function key(row) { var text = row.cells[column].textContent, number = parseFloat(text); return isNaN(number) ? text : number; }
        rows.sort(function (a, b) { var x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1); });
        rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
        th.dataset.down = down ? "1" : "0";
      });
    });
    </script>
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
    {{#lines}}<polyline fill="none" stroke="{{color}}" stroke-width="2" stroke-dasharray="{{dash}}" points="{{points}}"><title>{{name}}</title></polyline>{{/lines}}
    </svg>{{/charts}}
    <p>{{#legend}}<span style="margin-right: 1.5em"><svg width="22" height="10" style="margin:0"><line x1="0" y1="5" x2="22" y2="5" stroke="{{color}}" stroke-width="3" stroke-dasharray="{{dash}}"/></svg> {{id}}: {{changes}}</span> {{/legend}}</p>
    {{#hasF1}}<h2>Per-class F1 on the test split</h2>
    <p class="note">Darker blue, the higher the F1 (0 to 1). 0.00: no test image of that class was classified right (or none predicted as it was right); "-": the class has no test image in that run.</p>
    <table class="f1"><tr><th>class</th>{{#experimentIds}}<th>exp {{id}}</th>{{/experimentIds}}</tr>
    {{#f1}}<tr><th>{{letter}}</th>{{#cells}}<td style="background: {{color}}"{{#dark}} class="dark"{{/dark}}>{{value}}</td>{{/cells}}</tr>
    {{/f1}}</table>{{/hasF1}}
    </body></html>
    """
}
