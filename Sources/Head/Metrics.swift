

/// Classification metrics over labels: accuracy, per-class precision, recall, F1 and support, the
/// macro-averaged F1 and the confusion matrix.
public struct Evaluation: Sendable, Equatable {
    public struct ClassMetrics: Sendable, Equatable {
        public var label: Int
        public var precision: Double
        public var recall: Double
        public var f1: Double
        public var support: Int
    }

    /// Every label that occurs as truth or prediction, ascending: the confusion matrix's order.
    public var labels: [Int]
    /// `confusion[t][p]`: images of label `labels[t]` predicted as `labels[p]`.
    public var confusion: [[Int]]
    public var accuracy: Double
    /// The unweighted mean of the per-class F1 over `labels` (scikit-learn's `average="macro"`).
    public var macroF1: Double
    public var perClass: [ClassMetrics]

    public init(truth: [Int], predicted: [Int]) {
        precondition(truth.count == predicted.count)
        let labels = Array(Set(truth).union(predicted)).sorted()
        self.labels = labels
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
        for (t, p) in zip(truth, predicted) { confusion[index[t]!][index[p]!] += 1 }
        self.confusion = confusion
        let correct = zip(truth, predicted).filter { $0 == $1 }.count
        accuracy = truth.isEmpty ? 0 : Double(correct) / Double(truth.count)
        let perClass = labels.indices.map { k in
            let tp = confusion[k][k]
            let support = confusion[k].reduce(0, +)
            let predictedCount = confusion.reduce(0) { $0 + $1[k] }
            let precision = predictedCount == 0 ? 0 : Double(tp) / Double(predictedCount)
            let recall = support == 0 ? 0 : Double(tp) / Double(support)
            let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
            return ClassMetrics(label: labels[k], precision: precision, recall: recall, f1: f1, support: support)
        }
        self.perClass = perClass
        macroF1 = perClass.isEmpty ? 0 : perClass.reduce(0) { $0 + $1.f1 } / Double(perClass.count)
    }
}
