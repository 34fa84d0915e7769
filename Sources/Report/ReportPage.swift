import Dataset
import Foundation
import Head
import Mustache

/// `report.html`: one self-contained page (inline CSS and SVG, images as data URIs) that opens
/// offline. The layout lives in a mustache template; this type only computes what it shows.
public struct ReportPage {
    public struct Mistake {
        var id: Int
        var truth: Int
        var predicted: Int
        var confidence: Double
        var png: Data?

        public init(id: Int, truth: Int, predicted: Int, confidence: Double, png: Data?) {
            self.id = id
            self.truth = truth
            self.predicted = predicted
            self.confidence = confidence
            self.png = png
        }
    }

    var history: [EpochRecord]
    var bestEpoch: Int
    var evaluation: Evaluation?
    var mistakes: [Mistake]
    /// The dataset's class names.
    var names: ClassNames
    var provenance: [(String, [(String, String)])]
    var randomBackbone: Bool
    var weightsSource: String
    /// Why the weights stand in for the requested ones, when a pipeline fell back.
    var fallbackReason: String?
    /// Where the backbone was cut and what was trained, in a sentence.
    var recipe: String
    /// The most confident right answers on the test split, shown beside the mistakes.
    var correct: [Mistake] = []
    /// Images trained on, held out for validation, tested on.
    var counts: (train: Int, validation: Int, test: Int)?
    /// When the head was made.
    var made: Date?

    public init(history: [EpochRecord], bestEpoch: Int, evaluation: Evaluation?, names: ClassNames = .signMNIST, mistakes: [Mistake],
                provenance: [(String, [(String, String)])], randomBackbone: Bool, weightsSource: String, fallbackReason: String?, recipe: String,
                correct: [Mistake] = [], counts: (train: Int, validation: Int, test: Int)? = nil, made: Date? = nil) {
        self.recipe = recipe
        self.correct = correct
        self.counts = counts
        self.made = made
        self.history = history
        self.bestEpoch = bestEpoch
        self.evaluation = evaluation
        self.mistakes = mistakes
        self.names = names
        self.provenance = provenance
        self.randomBackbone = randomBackbone
        self.weightsSource = weightsSource
        self.fallbackReason = fallbackReason
    }

    static let chartWidth = 420.0, chartHeight = 220.0, margin = 36.0

    /// A line chart's polylines and axis labels for series over epochs.
    func chart(title: String, series: [(name: String, color: String, values: [Double?])]) -> [String: Any] {
        let all = series.flatMap { $0.values.compactMap { $0 } }
        let top = max(all.max() ?? 1, 1e-9), bottom = min(all.min() ?? 0, 0)
        let epochs = max(history.count, 2)
        let plotWidth = Self.chartWidth - 2 * Self.margin, plotHeight = Self.chartHeight - 2 * Self.margin
        func x(_ index: Int) -> Double { Self.margin + plotWidth * Double(index) / Double(epochs - 1) }
        func y(_ value: Double) -> Double { Self.margin + plotHeight * (1 - (value - bottom) / (top - bottom)) }
        let lines: [[String: Any]] = series.map { item in
            let points = item.values.enumerated().compactMap { index, value in value.map { String(format: "%.1f,%.1f", x(index), y($0)) } }
            return ["name": item.name, "color": item.color, "points": points.joined(separator: " ")]
        }
        // Five ticks on the y axis, with light grid lines, so a value can be read off anywhere.
        let ticks: [[String: Any]] = (0 ... 4).map { step in
            let value = bottom + (top - bottom) * Double(step) / 4
            return ["y": String(format: "%.1f", y(value)), "label": String(format: "%.3g", value), "textY": String(format: "%.1f", y(value) + 4)]
        }
        var chart: [String: Any] = ["title": title, "lines": lines, "width": Self.chartWidth, "height": Self.chartHeight, "ticks": ticks,
                "top": String(format: "%.3g", top), "bottom": String(format: "%.3g", bottom),
                "topY": Self.margin + 4, "bottomY": Self.chartHeight - Self.margin, "lastEpoch": history.count,
                "left": Self.margin, "right": Self.chartWidth - Self.margin, "axisY": Self.chartHeight - Self.margin + 14,
                "bestTop": Self.margin, "bestBottom": Self.chartHeight - Self.margin]
        if bestEpoch > 0 { chart["bestX"] = String(format: "%.1f", x(bestEpoch - 1)) }
        return chart
    }

    func context() -> [String: Any] {
        var context: [String: Any] = [
            "randomBackbone": randomBackbone,
            "weightsSource": weightsSource,
            "recipe": recipe,
            "bestEpoch": bestEpoch,
            "epochsRun": history.count,
            "charts": [
                chart(title: "loss", series: [("train", "#1f77b4", history.map(\.loss)), ("validation", "#ff7f0e", history.map(\.validationLoss))]),
                chart(title: "accuracy", series: [("train", "#1f77b4", history.map(\.accuracy)), ("validation", "#ff7f0e", history.map(\.validationAccuracy))]),
            ],
            "provenance": provenance.map { stage, params in
                ["stage": stage, "params": params.map { ["key": $0.0, "value": $0.1] }]
            },
        ]
        if let fallbackReason { context["fallbackReason"] = fallbackReason }
        if let made {
            let formatter = ISO8601DateFormatter()
            context["made"] = formatter.string(from: made)
        }
        if let counts {
            context["counts"] = ["train": counts.train, "validation": counts.validation, "test": counts.test]
        }
        guard let evaluation else { return context }
        let letters = evaluation.labels.map(names.name)
        let largest = max(evaluation.confusion.flatMap { $0 }.max() ?? 1, 1)
        let tested = evaluation.perClass.reduce(0) { $0 + $1.support }
        // What an accuracy means here: guessing, always answering the largest class, one image's worth.
        let majority = Double(evaluation.perClass.map(\.support).max() ?? 0) / Double(max(tested, 1))
        func example(_ item: Mistake) -> [String: Any] {
            var entry: [String: Any] = ["id": item.id, "truth": names.name(item.truth), "predicted": names.name(item.predicted),
                                        "confidence": String(format: "%.1f%%", item.confidence * 100)]
            // Absent rather than nil: mustache takes an Optional wrapped in Any as present.
            if let png = item.png { entry["image"] = "data:image/png;base64," + png.base64EncodedString() }
            return entry
        }
        context["evaluation"] = [
            "chance": String(format: "%.2f%%", 100 / Double(max(evaluation.labels.count, 1))),
            "majority": String(format: "%.2f%%", majority * 100),
            "oneImage": String(format: "%.2f", 100 / Double(max(tested, 1))),
            "correct": correct.map(example),
            "hasCorrect": !correct.isEmpty,
            "accuracy": String(format: "%.2f%%", evaluation.accuracy * 100),
            "macroF1": String(format: "%.4f", evaluation.macroF1),
            "images": evaluation.perClass.reduce(0) { $0 + $1.support },
            "letters": letters,
            "confusion": evaluation.confusion.enumerated().map { t, row in
                ["letter": letters[t], "cells": row.enumerated().map { p, count in
                    let shade = count == 0 ? 0 : 0.15 + 0.85 * Double(count) / Double(largest)
                    let color = t == p ? "rgba(31,119,180,\(shade))" : "rgba(214,39,40,\(shade))"
                    return ["count": count == 0 ? "" : String(count), "color": color, "dark": shade > 0.6]
                }]
            },
            "perClass": evaluation.perClass.map { row in
                ["letter": names.name(row.label), "precision": String(format: "%.3f", row.precision),
                 "recall": String(format: "%.3f", row.recall), "f1": String(format: "%.3f", row.f1), "support": row.support]
            },
            "mistakes": mistakes.map(example),
            "hasMistakes": !mistakes.isEmpty,
        ]
        return context
    }

    public func render() throws -> String {
        try MustacheTemplate(string: Self.template).render(context())
    }

    static let template = """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><title>SignTransfer report</title>
    <style>
    body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
    h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
    .banner { background: #b00020; color: white; padding: 1em; font-size: 1.2em; font-weight: bold; border-radius: 4px; }
    .figures span { display: inline-block; margin-right: 2em; font-size: 1.3em; }
    table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
    .confusion td { width: 26px; height: 22px; text-align: center; font-size: 12px; border: 1px solid #f3f3f3; padding: 0; }
    .confusion td.dark { color: white; } .confusion th { font-size: 12px; padding: 0 4px; }
    .mistakes { display: flex; flex-wrap: wrap; gap: 12px; } .mistakes figure { margin: 0; text-align: center; font-size: 12px; }
    .mistakes img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #ccc; }
    .provenance td { text-align: left; font-family: monospace; font-size: 12px; }
    svg text { font-size: 11px; fill: #555; } .context { color: #555; }
    </style></head><body>
    <h1>SignTransfer report</h1>
    {{#randomBackbone}}<p class="banner">The backbone was RANDOM ({{weightsSource}}), not ImageNet: these features carry no ImageNet knowledge and the figures below are not representative.{{#fallbackReason}}<br>Fallback: {{fallbackReason}}{{/fallbackReason}}</p>{{/randomBackbone}}
    <p>Backbone weights: <code>{{weightsSource}}</code>. Best epoch {{bestEpoch}} of {{epochsRun}} run.{{#made}} Made {{made}}.{{/made}}</p>
    <p class="recipe">{{recipe}}</p>
    {{#counts}}<p>Images: <b>{{train}}</b> trained on, <b>{{validation}}</b> held out for validation, <b>{{test}}</b> in the test split.</p>{{/counts}}
    {{#evaluation}}<p class="figures"><span>test accuracy <b>{{accuracy}}</b></span><span>macro-F1 <b>{{macroF1}}</b></span><span>{{images}} test images</span></p>
    <p class="context">For scale: guessing is {{chance}}; always answering the largest class scores {{majority}}; one test image is {{oneImage}} points.</p>{{/evaluation}}
    {{^evaluation}}<p><b>No test split: evaluation was skipped.</b></p>{{/evaluation}}
    <h2>Training</h2>
    {{#charts}}<svg width="{{width}}" height="{{height}}" role="img" aria-label="{{title}} per epoch">
    <text x="{{left}}" y="14" style="font-size:13px;fill:#222">{{title}} per epoch</text>
    <line x1="{{left}}" y1="{{bottomY}}" x2="{{right}}" y2="{{bottomY}}" stroke="#999"/><line x1="{{left}}" y1="{{topY}}" x2="{{left}}" y2="{{bottomY}}" stroke="#999"/>
    {{#ticks}}<line x1="{{left}}" y1="{{y}}" x2="{{right}}" y2="{{y}}" stroke="#eee"/><text x="2" y="{{textY}}">{{label}}</text>{{/ticks}}
    <text x="{{left}}" y="{{axisY}}">1</text><text x="{{right}}" y="{{axisY}}" text-anchor="end">epoch {{lastEpoch}}</text>
    {{#bestX}}<line x1="{{bestX}}" y1="{{bestTop}}" x2="{{bestX}}" y2="{{bestBottom}}" stroke="#2ca02c" stroke-dasharray="4 3"/>{{/bestX}}
    {{#lines}}<polyline fill="none" stroke="{{color}}" stroke-width="2" points="{{points}}"><title>{{name}}</title></polyline>{{/lines}}
    </svg>{{/charts}}
    <p><span style="color:#1f77b4">&#9632; train</span> <span style="color:#ff7f0e">&#9632; validation</span> <span style="color:#2ca02c">- - best epoch (weights kept)</span></p>
    {{#evaluation}}
    <h2>Confusion matrix (rows: true class, columns: predicted)</h2>
    <table class="confusion"><tr><th></th>{{#letters}}<th>{{.}}</th>{{/letters}}</tr>
    {{#confusion}}<tr><th>{{letter}}</th>{{#cells}}<td style="background:{{color}}"{{#dark}} class="dark"{{/dark}}>{{count}}</td>{{/cells}}</tr>{{/confusion}}
    </table>
    <h2>Per class</h2>
    <table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
    {{#perClass}}<tr><td>{{letter}}</td><td>{{precision}}</td><td>{{recall}}</td><td>{{f1}}</td><td>{{support}}</td></tr>{{/perClass}}
    </table>
    <h2>Most confident mistakes</h2>
    {{#hasMistakes}}<div class="mistakes">{{#mistakes}}<figure>{{#image}}<img src="{{image}}" alt="image {{id}}">{{/image}}<figcaption>#{{id}}: {{truth}} taken for <b>{{predicted}}</b> ({{confidence}})</figcaption></figure>{{/mistakes}}</div>{{/hasMistakes}}
    {{^hasMistakes}}<p>None: every test image was classified right.</p>{{/hasMistakes}}
    {{#hasCorrect}}<h2>Most confident right answers</h2>
    <div class="mistakes">{{#correct}}<figure>{{#image}}<img src="{{image}}" alt="image {{id}}">{{/image}}<figcaption>#{{id}}: <b>{{truth}}</b> ({{confidence}})</figcaption></figure>{{/correct}}</div>{{/hasCorrect}}
    {{/evaluation}}
    <h2>Provenance</h2>
    {{#provenance}}<h3>{{stage}}</h3><table class="provenance">{{#params}}<tr><td>{{key}}</td><td>{{value}}</td></tr>{{/params}}</table>{{/provenance}}
    </body></html>
    """
}
