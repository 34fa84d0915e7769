import Backbone
import Foundation
import Numerical
import Testing

/// The mobile kernels as llm.c checks its kernels: every fast path against the plain loop (the same
/// bits, since they make the same operations in the same order), the plain loop against a slow
/// reference in double.
@Suite struct MobileKernelChecks {
    static func values(_ count: Int, seed: UInt64, scale: Double) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in Float(generator.nextNormal() * scale) }
    }

    static func reference(_ v: Double, _ activation: Activation) -> Double {
        switch activation {
        case .relu: max(v, 0)
        case .relu6: min(max(v, 0), 6)
        case .swish: v / (1 + Foundation.exp(-v))
        case .sigmoid: 1 / (1 + Foundation.exp(-v))
        case .none: v
        }
    }

    /// Depthwise 3x3 and 5x5 at strides 1 and 2, even and odd sides (TensorFlow's "same" pads the odd
    /// row after), channels that fill vectors and that do not (13), each activation.
    @Test(arguments: [(3, 1), (3, 2), (5, 1), (5, 2)], [(9, 16), (10, 13), (7, 48)])
    func depthwiseMatchesThePlainLoopAndTheReference(shape: (size: Int, stride: Int), image: (side: Int, channels: Int)) {
        let (size, stride) = shape, (side, channels) = image
        let x = Self.values(side * side * channels, seed: 1, scale: 2), kernel = Self.values(size * size * channels, seed: 2, scale: 0.5)
        let bias = Self.values(channels, seed: 3, scale: 0.3)
        let out = MobilePlan.sameOutput(side, stride: stride), pad = MobilePlan.samePadding(side, size: size, stride: stride)
        for activation in [Activation.none, .relu6, .swish] {
            let plain = MobileKernels.depthwise(.portable, x: x, side: side, channels: channels, kernel: kernel, bias: bias, size: size, stride: stride,
                                                activation: activation)
            for isa in MobileKernels.available.dropFirst() {
                let fast = MobileKernels.depthwise(isa, x: x, side: side, channels: channels, kernel: kernel, bias: bias, size: size, stride: stride,
                                                   activation: activation)
                #expect(fast.output == plain.output && fast.sums == plain.sums, "\(isa) \(size)x\(size)/\(stride) side \(side) \(channels) \(activation)")
            }
            var worst = 0.0, sums = [Double](repeating: 0, count: channels)
            for oy in 0 ..< out {
                for ox in 0 ..< out {
                    for c in 0 ..< channels {
                        var acc = Double(bias[c])
                        for ky in 0 ..< size {
                            for kx in 0 ..< size {
                                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                                guard iy >= 0, iy < side, ix >= 0, ix < side else { continue }
                                acc += Double(x[(iy * side + ix) * channels + c]) * Double(kernel[(ky * size + kx) * channels + c])
                            }
                        }
                        let expected = Self.reference(acc, activation)
                        sums[c] += expected
                        worst = max(worst, abs(Double(plain.output[(oy * out + ox) * channels + c]) - expected) / max(1, abs(expected)))
                    }
                }
            }
            #expect(worst < 1e-5, "plain \(size)x\(size)/\(stride) \(activation): \(worst)")
            let sumError = zip(plain.sums, sums).map { abs(Double($0) - $1) / max(1, abs($1)) }.max()!
            #expect(sumError < 1e-4, "sums \(activation): \(sumError)")
        }
    }

    /// The activations alone (in the GEMMs' tiles they are the same functions), and squeeze-excitation's
    /// dense layers, on every instruction set, bit for bit; exp within a few units in the last place.
    @Test func activationsExpAndDenseMatch() {
        let x = Self.values(1000, seed: 4, scale: 8) + [0, -0.0, 6, -88, 88, 200, -200, .greatestFiniteMagnitude]
        for activation in [Activation.relu, .relu6, .swish, .sigmoid] {
            let plain = MobileKernels.activate(.portable, x, activation)
            for isa in MobileKernels.available.dropFirst() {
                #expect(MobileKernels.activate(isa, x, activation) == plain, "\(isa) \(activation)")
            }
            var worst = 0.0
            for (value, ours) in zip(x, plain) where abs(value) < 80 {
                let expected = Self.reference(Double(value), activation)
                // Relative where the value is not tiny; swish's far negative tail is checked absolutely.
                worst = max(worst, abs(Double(ours) - expected) / max(1e-3, abs(expected)))
            }
            #expect(worst < 1e-6, "\(activation): relative error \(worst)")
        }
        var worstExp = 0.0
        for t in stride(from: -87.0, through: 88.0, by: 0.01) {
            worstExp = max(worstExp, abs(Double(MobileKernels.exp(Float(t))) - Foundation.exp(Double(Float(t)))) / Foundation.exp(Double(Float(t))))
        }
        #expect(worstExp < 5e-7, "exp: relative error \(worstExp)")
        let input = Self.values(40, seed: 5, scale: 1), w = Self.values(40 * 24, seed: 6, scale: 0.3), bias = Self.values(24, seed: 7, scale: 0.1)
        let dense = MobileKernels.dense(.portable, x: input, w: w, bias: bias, activation: .swish)
        for isa in MobileKernels.available.dropFirst() { #expect(MobileKernels.dense(isa, x: input, w: w, bias: bias, activation: .swish) == dense) }
        for j in 0 ..< 24 {
            let acc = (0 ..< 40).reduce(Double(bias[j])) { $0 + Double(input[$1]) * Double(w[$1 * 24 + j]) }
            #expect(abs(Double(dense[j]) - Self.reference(acc, .swish)) < 1e-5 * max(1, abs(acc)))
        }
    }
}
