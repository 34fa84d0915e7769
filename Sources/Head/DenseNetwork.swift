import Foundation
import Numerical

/// A dense classifier head: `input -> [hidden, ReLU, dropout]* -> classes -> softmax`, as Keras's
/// `Dense(h, relu), Dropout(p), ..., Dense(classes, softmax)`. Weights are `[in x out]` row-major
/// with a bias per output, Glorot-uniform initialised. Matrix products go through `fixedOrderGEMM`
/// (the same bits on every CPU and core count).
public struct DenseNetwork: Sendable {
    public struct Layer: Sendable, Equatable {
        public var inputs: Int
        public var outputs: Int
        public var weights: [Float]
        public var bias: [Float]

        public init(inputs: Int, outputs: Int, weights: [Float], bias: [Float]) {
            self.inputs = inputs
            self.outputs = outputs
            self.weights = weights
            self.bias = bias
        }
    }

    public var layers: [Layer]
    public var dropout: Float

    public var inputCount: Int { layers[0].inputs }
    public var classCount: Int { layers.last!.outputs }

    /// Glorot-uniform weights (limit sqrt(6 / (in + out))), zero biases, drawn from `generator`.
    /// (He-uniform for the ReLU layers was measured too: no better on standardized features.)
    public init(sizes: [Int], dropout: Float, generator: inout SplitMix64) {
        precondition(sizes.count >= 2)
        layers = zip(sizes, sizes.dropFirst()).map { inputs, outputs in
            let limit = (6.0 / Double(inputs + outputs)).squareRoot()
            let weights = (0 ..< inputs * outputs).map { _ in Float((generator.nextUniform() * 2 - 1) * limit) }
            return Layer(inputs: inputs, outputs: outputs, weights: weights, bias: [Float](repeating: 0, count: outputs))
        }
        self.dropout = dropout
    }

    public init(layers: [Layer], dropout: Float) {
        self.layers = layers
        self.dropout = dropout
    }

    /// Class probabilities for `count` rows of `x[count x inputCount]` (no dropout).
    public func probabilities(_ x: UnsafeBufferPointer<Float>, count: Int) -> [Float] {
        var activation = Array(x)
        for (index, layer) in layers.enumerated() {
            var out = [Float](repeating: 0, count: count * layer.outputs)
            activation.withUnsafeBufferPointer { a in
                out.withUnsafeMutableBufferPointer { o in
                    affine(a.baseAddress!, layer, count: count, into: o.baseAddress!)
                    if index < layers.count - 1 {
                        for i in 0 ..< o.count where o[i] < 0 { o[i] = 0 }
                    } else {
                        softmaxRows(o.baseAddress!, count: count, classes: layer.outputs)
                    }
                }
            }
            activation = out
        }
        return activation
    }

    /// Gradients of every layer's weights and bias, in `layers` order.
    public struct Gradients {
        public var weights: [[Float]]
        public var bias: [[Float]]
    }

    /// Buffers for one batch size, reused across steps: training allocates nothing per step.
    public final class Scratch {
        let capacity: Int
        /// Each layer's output, `capacity x outputs`.
        var outputs: [[Float]]
        var delta: [Float]
        var previous: [Float]
        public var gradients: Gradients

        public init(network: DenseNetwork, batch: Int) {
            capacity = batch
            outputs = network.layers.map { [Float](repeating: 0, count: batch * $0.outputs) }
            let widest = network.layers.map { max($0.inputs, $0.outputs) }.max()!
            delta = [Float](repeating: 0, count: batch * widest)
            previous = delta
            gradients = Gradients(weights: network.layers.map { [Float](repeating: 0, count: $0.weights.count) },
                                  bias: network.layers.map { [Float](repeating: 0, count: $0.bias.count) })
        }
    }

    /// Mean cross-entropy over the batch and its gradients. `dropoutMasks[l]` (one per hidden layer,
    /// `count x outputs`, each entry 0 or 1/(1-p)) applies dropout as Keras does in training; pass
    /// nil for none. Also returns how many rows were classified right.
    public func lossAndGradients(_ x: UnsafeBufferPointer<Float>, labels: [Int], dropoutMasks: [[Float]]?) -> (loss: Double, correct: Int, gradients: Gradients) {
        let scratch = Scratch(network: self, batch: labels.count)
        let (loss, correct) = lossAndGradients(x, labels: labels, dropoutMasks: dropoutMasks, scratch: scratch)
        return (loss, correct, scratch.gradients)
    }

    /// As above, into `scratch.gradients`; with `inputGradient`, the loss's gradient at the input
    /// `x` too (`[count x inputCount]`), for a network below the head that trains with it.
    public func lossAndGradients(_ x: UnsafeBufferPointer<Float>, labels: [Int], dropoutMasks: [[Float]]?, scratch: Scratch,
                                 inputGradient: UnsafeMutablePointer<Float>? = nil) -> (loss: Double, correct: Int) {
        let count = labels.count
        precondition(count <= scratch.capacity)
        // Forward, keeping every layer's output for the backward pass.
        for (index, layer) in layers.enumerated() {
            let input = index == 0 ? x.baseAddress! : UnsafePointer(scratch.outputs[index - 1].withUnsafeBufferPointer { $0.baseAddress! })
            scratch.outputs[index].withUnsafeMutableBufferPointer { out in
                affine(input, layer, count: count, into: out.baseAddress!)
                let n = count * layer.outputs
                if index < layers.count - 1 {
                    if let masks = dropoutMasks {
                        masks[index].withUnsafeBufferPointer { m in for i in 0 ..< n { out[i] = max(out[i], 0) * m[i] } }
                    } else {
                        for i in 0 ..< n where out[i] < 0 { out[i] = 0 }
                    }
                } else {
                    softmaxRows(out.baseAddress!, count: count, classes: layer.outputs)
                }
            }
        }
        // Softmax and cross-entropy together: dL/dz = (p - onehot) / count.
        let classes = classCount
        var loss = 0.0
        var correct = 0
        let scale = 1 / Float(count)
        scratch.outputs[layers.count - 1].withUnsafeBufferPointer { p in
            scratch.delta.withUnsafeMutableBufferPointer { delta in
                for row in 0 ..< count {
                    let base = row * classes
                    // NaN (overflowed logits) must show in the loss: max(NaN, 1e-12) would hide it.
                    let truth = p[base + labels[row]]
                    loss -= truth.isNaN ? .nan : log(Double(max(truth, 1e-12)))
                    var best = 0
                    for k in 0 ..< classes {
                        if p[base + k] > p[base + best] { best = k }
                        delta[base + k] = p[base + k] * scale
                    }
                    if best == labels[row] { correct += 1 }
                    delta[base + labels[row]] -= scale
                }
            }
        }

        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[index]
            let input = index == 0 ? x.baseAddress! : UnsafePointer(scratch.outputs[index - 1].withUnsafeBufferPointer { $0.baseAddress! })
            scratch.delta.withUnsafeBufferPointer { d in
                // dW[in x out] = input^T [in x count] * delta [count x out]
                scratch.gradients.weights[index].withUnsafeMutableBufferPointer { w in
                    fixedOrderGEMM(transposeA: true, transposeB: false, m: layer.inputs, n: layer.outputs, k: count, a: input, lda: layer.inputs,
                              b: d.baseAddress!, ldb: layer.outputs, beta: 0, c: w.baseAddress!, ldc: layer.outputs)
                }
                scratch.gradients.bias[index].withUnsafeMutableBufferPointer { db in
                    for o in 0 ..< layer.outputs { db[o] = 0 }
                    for row in 0 ..< count {
                        for o in 0 ..< layer.outputs { db[o] += d[row * layer.outputs + o] }
                    }
                }
            }
            // Frozen features are constant: the input's gradient only when something below trains.
            guard index > 0 else {
                if let inputGradient {
                    scratch.delta.withUnsafeBufferPointer { d in
                        layer.weights.withUnsafeBufferPointer { w in
                            fixedOrderGEMM(transposeA: false, transposeB: true, m: count, n: layer.inputs, k: layer.outputs, a: d.baseAddress!, lda: layer.outputs,
                                      b: w.baseAddress!, ldb: layer.outputs, beta: 0, c: inputGradient, ldc: layer.inputs)
                        }
                    }
                }
                break
            }
            scratch.delta.withUnsafeBufferPointer { d in
                layer.weights.withUnsafeBufferPointer { w in
                    scratch.previous.withUnsafeMutableBufferPointer { p in
                        fixedOrderGEMM(transposeA: false, transposeB: true, m: count, n: layer.inputs, k: layer.outputs, a: d.baseAddress!, lda: layer.outputs,
                                  b: w.baseAddress!, ldb: layer.outputs, beta: 0, c: p.baseAddress!, ldc: layer.inputs)
                    }
                }
            }
            // Back through dropout and ReLU: the stored output is zero where either cut the unit.
            scratch.outputs[index - 1].withUnsafeBufferPointer { output in
                scratch.previous.withUnsafeMutableBufferPointer { p in
                    let n = count * layer.inputs
                    if let masks = dropoutMasks {
                        masks[index - 1].withUnsafeBufferPointer { m in for i in 0 ..< n { p[i] = output[i] > 0 ? p[i] * m[i] : 0 } }
                    } else {
                        for i in 0 ..< n where output[i] <= 0 { p[i] = 0 }
                    }
                }
            }
            swap(&scratch.delta, &scratch.previous)
        }
        return (loss / Double(count), correct)
    }

    /// `out[count x outputs] = x[count x inputs] * W + b`.
    func affine(_ x: UnsafePointer<Float>, _ layer: Layer, count: Int, into out: UnsafeMutablePointer<Float>) {
        layer.bias.withUnsafeBufferPointer { bias in
            for row in 0 ..< count { (out + row * layer.outputs).update(from: bias.baseAddress!, count: layer.outputs) }
        }
        layer.weights.withUnsafeBufferPointer { w in
            fixedOrderGEMM(transposeA: false, transposeB: false, m: count, n: layer.outputs, k: layer.inputs, a: x, lda: layer.inputs,
                      b: w.baseAddress!, ldb: layer.outputs, beta: 1, c: out, ldc: layer.outputs)
        }
    }

    func softmaxRows(_ values: UnsafeMutablePointer<Float>, count: Int, classes: Int) {
        for row in 0 ..< count {
            let line = values + row * classes
            var top = line[0]
            for k in 1 ..< max(classes, 1) { top = max(top, line[k]) }
            var sum: Float = 0
            for k in 0 ..< classes {
                line[k] = exp(line[k] - top)
                sum += line[k]
            }
            for k in 0 ..< classes { line[k] /= sum }
        }
    }
}

/// Adam as Keras implements it: m and v moving averages, the bias correction folded into the step
/// size, epsilon added outside the square root.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-7
    /// L2 penalty `weightDecay * sum(w^2)` on the weights (not the biases), as Keras's
    /// `kernel_regularizer=l2(weightDecay)`: its gradient `2 * weightDecay * w` joins the loss's.
    public var weightDecay: Float = 0
    var step = 0
    var m: [[Float]] = []
    var v: [[Float]] = []

    public init(learningRate: Float) { self.learningRate = learningRate }

    /// Updates every layer's weights and bias with their gradients, in place.
    public mutating func update(_ network: inout DenseNetwork, _ gradients: DenseNetwork.Gradients) {
        let alpha = beginStep()
        for layer in network.layers.indices {
            apply(&network.layers[layer].weights, gradients.weights[layer], slot: 2 * layer, alpha: alpha, l2: 2 * weightDecay)
            apply(&network.layers[layer].bias, gradients.bias[layer], slot: 2 * layer + 1, alpha: alpha, l2: 0)
        }
    }

    /// For tensors other than a dense network's (a fine-tuned backbone stage): count one step and
    /// return its step size, then `apply` each tensor with its own slot (no weight decay).
    public mutating func beginStep() -> Float {
        step += 1
        let t = Float(step)
        return learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
    }

    /// One tensor's update with the step size `beginStep` returned; `slot` names its moments.
    public mutating func apply(_ parameters: inout [Float], _ gradient: [Float], slot: Int, alpha: Float) {
        apply(&parameters, gradient, slot: slot, alpha: alpha, l2: 0)
    }

    mutating func apply(_ parameters: inout [Float], _ gradient: [Float], slot: Int, alpha: Float, l2: Float) {
        while m.count <= slot {
            m.append([])
            v.append([])
        }
        if m[slot].count != parameters.count {
            m[slot] = [Float](repeating: 0, count: parameters.count)
            v[slot] = m[slot]
        }
        let (beta1, beta2, epsilon) = (self.beta1, self.beta2, self.epsilon)
        parameters.withUnsafeMutableBufferPointer { w in
            m[slot].withUnsafeMutableBufferPointer { m in
                v[slot].withUnsafeMutableBufferPointer { v in
                    gradient.withUnsafeBufferPointer { g in
                        // Eight lanes at a time by hand: the compiler cannot prove the four buffers
                        // apart, so it would not vectorise the plain loop. One thread: OpenBLAS's
                        // workers spin on the other core between GEMMs.
                        let count = w.count, lanes = 8
                        let (b1, b2, e, a) = (SIMD8<Float>(repeating: beta1), SIMD8<Float>(repeating: beta2),
                                              SIMD8<Float>(repeating: epsilon), SIMD8<Float>(repeating: alpha))
                        let (c1, c2) = (SIMD8<Float>(repeating: 1 - beta1), SIMD8<Float>(repeating: 1 - beta2))
                        let decay = SIMD8<Float>(repeating: l2)
                        let wr = UnsafeMutableRawPointer(w.baseAddress!), mr = UnsafeMutableRawPointer(m.baseAddress!)
                        let vr = UnsafeMutableRawPointer(v.baseAddress!), gr = UnsafeRawPointer(g.baseAddress!)
                        let parts = count >= 1 << 16 ? 2 : 1
                        let vectorEnd = count / lanes * lanes
                        parallelFor(parts) { part in
                        var i = vectorEnd / lanes * part / parts * lanes
                        let stop = vectorEnd / lanes * (part + 1) / parts * lanes
                        while i < stop {
                            let offset = i * 4
                            let wo = wr.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                            let gi = gr.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + decay * wo
                            let mi = b1 * mr.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + c1 * gi
                            let vi = b2 * vr.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + c2 * gi * gi
                            let wi = wo - a * mi / (vi.squareRoot() + e)
                            mr.storeBytes(of: mi, toByteOffset: offset, as: SIMD8<Float>.self)
                            vr.storeBytes(of: vi, toByteOffset: offset, as: SIMD8<Float>.self)
                            wr.storeBytes(of: wi, toByteOffset: offset, as: SIMD8<Float>.self)
                            i += lanes
                        }
                        }
                        var i = vectorEnd
                        while i < count {
                            let gi = g[i] + l2 * w[i]
                            m[i] = beta1 * m[i] + (1 - beta1) * gi
                            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                            w[i] -= alpha * m[i] / (v[i].squareRoot() + epsilon)
                            i += 1
                        }
                    }
                }
            }
        }
    }
}
