import Foundation

/// How a head's inputs are scaled before its first layer.
public enum StandardizeMode: String, Sendable, CaseIterable {
    /// The vectors as the backbone gave them.
    case none
    /// Each dimension minus its mean over the training rows, divided by its standard deviation there.
    case zscore
}

/// Per-dimension z-scoring, fitted on the training rows only and applied identically to every
/// vector the head ever sees (validation, test, predict): `x' = (x - mean) / deviation`.
///
/// Why: backbone features are not centred (pooled ReLU outputs are all positive, and a randomly
/// initialised backbone's have mean ~2 and spread ~3); fed raw, a ReLU head's units die in the first
/// epoch and the loss sits at ln(classes). Standardized, the same features train reliably.
public struct Standardization: Sendable, Equatable {
    public var mean: [Float]
    /// The standard deviation, floored (see `fit`): never zero.
    public var deviation: [Float]

    public var dimension: Int { mean.count }

    public init(mean: [Float], deviation: [Float]) {
        precondition(mean.count == deviation.count)
        self.mean = mean
        self.deviation = deviation
    }

    /// The floor on a dimension's deviation, relative to the root mean square of all of them: a
    /// dimension constant on the training rows (a dead ReLU channel) is not blown up by the first
    /// small difference at test time.
    public static let relativeFloor = 1e-2

    /// Fits on rows `rows` of `features[rowCount x dimension]`, in double, in two passes (mean, then
    /// squared deviations) so that large offsets cost no precision.
    public static func fit(_ features: UnsafeBufferPointer<Float>, dimension: Int, rows: [Int]) -> Standardization {
        precondition(!rows.isEmpty)
        var sum = [Double](repeating: 0, count: dimension)
        var squares = [Double](repeating: 0, count: dimension)
        sum.withUnsafeMutableBufferPointer { sum in
            for row in rows {
                let x = features.baseAddress! + row * dimension
                for d in 0 ..< dimension { sum[d] += Double(x[d]) }
            }
        }
        let count = Double(rows.count)
        let mean = sum.map { $0 / count }
        squares.withUnsafeMutableBufferPointer { squares in
            mean.withUnsafeBufferPointer { mean in
                for row in rows {
                    let x = features.baseAddress! + row * dimension
                    for d in 0 ..< dimension {
                        let centred = Double(x[d]) - mean[d]
                        squares[d] += centred * centred
                    }
                }
            }
        }
        let deviation = squares.map { ($0 / count).squareRoot() }
        let rms = (deviation.reduce(0) { $0 + $1 * $1 } / Double(dimension)).squareRoot()
        let floor = rms > 0 ? rms * relativeFloor : 1
        return Standardization(mean: mean.map { Float($0) }, deviation: deviation.map { Float(max($0, floor)) })
    }

    /// Standardizes `count` rows of `x[count x dimension]` in place.
    public func apply(_ x: UnsafeMutableBufferPointer<Float>, count: Int) {
        precondition(x.count >= count * dimension)
        mean.withUnsafeBufferPointer { mean in
            deviation.withUnsafeBufferPointer { deviation in
                for row in 0 ..< count {
                    let line = x.baseAddress! + row * dimension
                    for d in 0 ..< dimension { line[d] = (line[d] - mean[d]) / deviation[d] }
                }
            }
        }
    }
}

/// What a trained head is at prediction time: its input standardization (if any) and its network.
/// Evaluation after training and `predict` both go through `probabilities`, so that they agree bit
/// for bit.
public struct Classifier: Sendable {
    public var standardization: Standardization?
    public var network: DenseNetwork

    public init(standardization: Standardization?, network: DenseNetwork) {
        self.standardization = standardization
        self.network = network
    }

    public var inputCount: Int { network.inputCount }
    public var classCount: Int { network.classCount }

    /// Class probabilities for `count` raw feature vectors `x[count x inputCount]`.
    public func probabilities(_ x: UnsafeBufferPointer<Float>, count: Int) -> [Float] {
        guard standardization != nil else { return network.probabilities(x, count: count) }
        var scaled = Array(x[0 ..< count * inputCount])
        return scaled.withUnsafeMutableBufferPointer { probabilities(overwriting: $0, count: count) }
    }

    /// The same for vectors in a scratch buffer of the caller's, standardized in place (no copy).
    public func probabilities(overwriting x: UnsafeMutableBufferPointer<Float>, count: Int) -> [Float] {
        standardization?.apply(x, count: count)
        return network.probabilities(UnsafeBufferPointer(x), count: count)
    }
}
