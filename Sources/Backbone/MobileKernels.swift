import CKernels

/// The mobile backbones' C kernels (`depthwise.c`) on whole arrays, on a chosen instruction set: what
/// the tests hold each fast path to (the plain loop, bit for bit) and the plain loop to (a slow
/// reference in double).
public enum MobileKernels {
    public enum ISA: Int32, CaseIterable, Sendable {
        case portable = 0, avx2 = 1, avx512 = 2
    }

    /// The instruction sets this CPU runs, plain loops first.
    public static var available: [ISA] { ISA.allCases.filter { $0.rawValue <= st_isa_best() } }

    /// One image's depthwise convolution with TensorFlow's "same" padding: `x[side x side x channels]`,
    /// `kernel[size x size x channels]`; the output and, with `sums`, each channel's sum of it.
    public static func depthwise(_ isa: ISA, x: [Float], side: Int, channels: Int, kernel: [Float], bias: [Float], size: Int, stride: Int,
                                 activation: Activation) -> (output: [Float], sums: [Float]) {
        precondition(x.count == side * side * channels && kernel.count == size * size * channels && bias.count == channels)
        let out = MobilePlan.sameOutput(side, stride: stride), pad = MobilePlan.samePadding(side, size: size, stride: stride)
        var y = [Float](repeating: 0, count: out * out * channels), sums = [Float](repeating: 0, count: channels)
        st_depthwise(isa.rawValue, x, Int32(side), Int32(side), Int32(channels), kernel, bias, Int32(size), Int32(stride), Int32(pad), Int32(pad),
                     Int32(out), Int32(out), activation.rawValue, &y, &sums)
        return (y, sums)
    }

    public static func activate(_ isa: ISA, _ x: [Float], _ activation: Activation) -> [Float] {
        var y = x
        st_activate(isa.rawValue, &y, y.count, activation.rawValue)
        return y
    }

    /// `act(bias + x * w)` for `w[inputs x outputs]`: squeeze-excitation's 1x1 convolutions.
    public static func dense(_ isa: ISA, x: [Float], w: [Float], bias: [Float], activation: Activation) -> [Float] {
        var y = [Float](repeating: 0, count: bias.count)
        st_dense_vector(isa.rawValue, x, Int32(x.count), w, bias, Int32(bias.count), activation.rawValue, &y)
        return y
    }

    /// exp as every kernel here computes it.
    public static func exp(_ x: Float) -> Float { st_exp(x) }
}
