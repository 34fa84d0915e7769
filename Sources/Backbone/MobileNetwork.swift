import CKernels
import Foundation
import Numerical

/// A mobile backbone (MobileNetV2, EfficientNetB0) built from its `MobilePlan`: BatchNorm folded
/// into every convolution at load, 1x1 convolutions on the GEMM kernel (the stem's 3x3 by im2col),
/// depthwise convolutions, activations and squeeze-excitation on the kernels of `depthwise.c`.
///
/// Each core takes whole images, one at a time, through the whole network: an image's largest
/// activation (MobileNetV2's first expansion, 112 x 112 x 96 at 224) is a few MB, so its layers
/// pass each other their outputs through the cache, where a batch's would go through memory, and an
/// image's features depend on that image alone (batch-independent bit for bit).
public final class MobileNetwork: FeatureNetwork {
    public let architecture: Architecture
    public let kernel: GEMMKernel
    let plan: MobilePlan

    /// A 1x1 convolution (or the stem, on im2col's patches): `[k x n]` for the GEMM, its bias, its activation.
    struct Pointwise {
        let weights: WeightMatrix
        let bias: [Float]
        let activation: Activation
    }

    struct Depthwise {
        /// `[size x size x channels]`, BatchNorm folded.
        let kernel: [Float], bias: [Float]
        let spec: DepthwiseSpec
    }

    struct Squeeze {
        /// `[channels x squeezed]` and `[squeezed x channels]`, as Keras stores the 1x1 kernels.
        let reduce: [Float], reduceBias: [Float], expand: [Float], expandBias: [Float]
        let spec: SqueezeSpec
    }

    struct Block {
        let expand: Pointwise?
        let depthwise: Depthwise
        let squeeze: Squeeze?
        let project: Pointwise
        let residual: Bool
    }

    /// EfficientNet's input layers folded into one affine map per channel, in Keras's order:
    /// `((x * (1/255)) - mean) / max(sqrt(variance), 1e-7) * rescale` (see `init`).
    struct InputNormalization {
        let mean: [Float], deviation: [Float], rescale: [Float]
    }

    let normalization: InputNormalization?
    let stem: Pointwise
    let blocks: [Block]
    let top: Pointwise

    /// Builds the network from `weights`, checking every layer's presence and shape.
    public init(architecture: Architecture, plan: MobilePlan, weights: any BackboneWeights, kernel: GEMMKernel) throws {
        self.architecture = architecture
        self.plan = plan
        self.kernel = kernel
        let epsilon = plan.epsilon
        func pointwise(_ spec: NormedConvSpec) throws -> Pointwise {
            let raw = try weights.conv(spec.conv, size: spec.size, input: spec.input, output: spec.output)
            let norm = FrozenBatchNorm(try weights.batchNorm(spec.norm, channels: spec.output), epsilon: epsilon)
            let (folded, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
            return Pointwise(weights: WeightMatrix(folded[...], k: spec.size * spec.size * spec.input, n: spec.output, kernel: kernel),
                             bias: bias, activation: spec.activation)
        }
        if let layer = plan.normalization {
            let (mean, variance) = try weights.normalization(layer, channels: 3)
            // Keras's Normalization divides by max(sqrt(variance), epsilon) in float. The published
            // ImageNet weights hold the standard deviations where the variances belong, so Keras
            // (`EfficientNet(weights="imagenet")`) rescales by 1 / sqrt(stddev) after it: the input
            // ends up divided by the deviation, as meant. The factors are Keras's, computed in double.
            normalization = InputNormalization(
                mean: mean, deviation: variance.map { max($0.squareRoot(), 1e-7) },
                rescale: MobileNetwork.imagenetDeviation.map { Float(1 / $0.squareRoot()) })
        } else {
            normalization = nil
        }
        stem = try pointwise(plan.stem)
        blocks = try plan.blocks.map { spec in
            let depthwise: Depthwise = try {
                let d = spec.depthwise
                let raw = try weights.depthwise(d.conv, size: d.size, channels: d.channels)
                let norm = FrozenBatchNorm(try weights.batchNorm(d.norm, channels: d.channels), epsilon: epsilon)
                let (folded, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
                return Depthwise(kernel: folded, bias: bias, spec: d)
            }()
            let squeeze: Squeeze? = try spec.squeeze.map { s in
                let reduce = try weights.conv(s.reduce, size: 1, input: s.channels, output: s.squeezed)
                let expand = try weights.conv(s.expand, size: 1, input: s.squeezed, output: s.channels)
                return Squeeze(reduce: reduce.kernel, reduceBias: reduce.bias, expand: expand.kernel, expandBias: expand.bias, spec: s)
            }
            return Block(expand: try spec.expand.map(pointwise), depthwise: depthwise, squeeze: squeeze,
                         project: try pointwise(spec.project), residual: spec.residual)
        }
        top = try pointwise(plan.top)
    }

    /// Keras's IMAGENET_STDDEV_RGB (efficientnet.py).
    static let imagenetDeviation: [Double] = [0.229, 0.224, 0.225]

    /// One core's buffers for one image.
    final class Scratch {
        /// Three activations (input, expansion, depthwise output; the projection lands on a free one).
        let buffers: [UnsafeMutablePointer<Float>]
        let columns: UnsafeMutablePointer<Float>
        let normalized: UnsafeMutablePointer<Float>
        /// Squeeze-excitation's vectors: channel sums, pooled, squeezed, scale.
        let sums: UnsafeMutablePointer<Float>, pooled: UnsafeMutablePointer<Float>, squeezed: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>

        init(activation: Int, columns: Int, input: Int, channels: Int) {
            buffers = (0 ..< 3).map { _ in .allocate(capacity: activation) }
            self.columns = .allocate(capacity: columns)
            normalized = .allocate(capacity: input)
            sums = .allocate(capacity: channels)
            pooled = .allocate(capacity: channels)
            squeezed = .allocate(capacity: channels)
            scale = .allocate(capacity: channels)
        }

        deinit {
            buffers.forEach { $0.deallocate() }
            [columns, normalized, sums, pooled, squeezed, scale].forEach { $0.deallocate() }
        }
    }

    public final class Workspace: NetworkWorkspace {
        public let count: Int, size: Int
        public let input: UnsafeMutablePointer<Float>
        let scratch: [Scratch]

        init(network: MobileNetwork, count: Int, size: Int) {
            self.count = count
            self.size = size
            input = .allocate(capacity: count * size * size * 3)
            let (activation, columns, channels) = network.bufferSizes(size: size)
            scratch = (0 ..< max(1, min(coreCount, count))).map { _ in
                Scratch(activation: activation, columns: columns, input: size * size * 3, channels: channels)
            }
        }

        deinit { input.deallocate() }
    }

    /// For one image of side `size`: the largest activation, the stem's im2col, the widest layer, in floats.
    func bufferSizes(size: Int) -> (activation: Int, columns: Int, channels: Int) {
        var side = MobilePlan.sameOutput(size, stride: plan.stem.stride)
        let columns = side * side * plan.stem.size * plan.stem.size * plan.stem.input
        var largest = side * side * plan.stem.output, channels = plan.stem.output
        for block in plan.blocks {
            let expanded = block.expand?.output ?? block.input
            largest = max(largest, side * side * expanded)
            side = MobilePlan.sameOutput(side, stride: block.depthwise.stride)
            largest = max(largest, side * side * max(expanded, block.output))
            channels = max(channels, expanded)
        }
        largest = max(largest, side * side * plan.top.output)
        return (largest, columns, max(channels, plan.top.output))
    }

    public func makeWorkspace(count: Int, size: Int) -> any NetworkWorkspace {
        precondition(size >= architecture.minimumSize, "\(architecture.name) needs inputs of at least \(architecture.minimumSize)x\(architecture.minimumSize)")
        return Workspace(network: self, count: count, size: size)
    }

    public func forward(_ workspace: any NetworkWorkspace, count: Int, taps: [Int], into pooled: [UnsafeMutablePointer<Float>],
                        keep: (block: Int, into: UnsafeMutablePointer<Float>)?) {
        guard let workspace = workspace as? Workspace else { preconditionFailure("a \(type(of: workspace)) is not a mobile network's workspace") }
        precondition(count <= workspace.count && taps.count == pooled.count && !taps.isEmpty)
        let deepest = max(taps.max()!, keep?.block ?? 0)
        let workers = workspace.scratch.count
        withSingleThreadedBLAS {
            parallelFor(min(workers, count)) { worker in
                for image in stride(from: worker, to: count, by: workers) {
                    run(image: image, workspace: workspace, scratch: workspace.scratch[worker], deepest: deepest) { node, output, side in
                        let channels = plan.nodeChannels[node]
                        if let tap = taps.firstIndex(of: node) {
                            Kernels.globalAveragePool(output, Shape(count: 1, height: side, width: side, channels: channels),
                                                      into: pooled[tap] + image * channels)
                        }
                        if let keep, keep.block == node {
                            let perImage = side * side * channels
                            (keep.into + image * perImage).update(from: output, count: perImage)
                        }
                    }
                }
            }
        }
    }

    /// One image through the network as far as node `deepest`; `emit` sees each node's output.
    func run(image: Int, workspace: Workspace, scratch: Scratch, deepest: Int,
             emit: (_ node: Int, _ output: UnsafeMutablePointer<Float>, _ side: Int) -> Void) {
        let isa = kernel.isa
        var side = workspace.size
        var x = workspace.input + image * side * side * 3
        if let normalization {
            for pixel in 0 ..< side * side {
                for c in 0 ..< 3 {
                    let value = x[pixel * 3 + c] * Float(1.0 / 255.0)
                    scratch.normalized[pixel * 3 + c] = (value - normalization.mean[c]) / normalization.deviation[c] * normalization.rescale[c]
                }
            }
            x = scratch.normalized
        }
        let buffers = scratch.buffers
        // Stem: 3x3/2 "same" by im2col and the GEMM, then its activation.
        //   input   [side, side, 3]
        //   patches [out*out, 27]              scratch.columns
        //   stem    [out, out, 32]             buffers[0]
        let stemSpec = plan.stem
        let out = MobilePlan.sameOutput(side, stride: stemSpec.stride)
        let pad = MobilePlan.samePadding(side, size: stemSpec.size, stride: stemSpec.stride)
        let outShape = Shape(count: 1, height: out, width: out, channels: stemSpec.input)
        Kernels.im2col(x, Shape(count: 1, height: side, width: side, channels: 3), size: stemSpec.size, stride: stemSpec.stride, top: pad, left: pad,
                       output: outShape, rows: 0 ..< out * out, into: scratch.columns)
        pointwise(stem, scratch.columns, rows: out * out, into: buffers[0], residual: nil, isa: isa)
        side = out
        var current = 0
        for (index, block) in blocks.enumerated() where index <= deepest {
            // Each block on three buffers (s the depthwise stride):
            //   input      [side, side, c]               buffers[current]
            //   expanded   [side, side, e]               1x1 + bias + activation        another (the input when e = c, no expansion)
            //   depthwise  [side/s, side/s, e]           kxk/s + bias + activation       the third; squeeze-excitation scales it in place
            //   output     [side/s, side/s, c']          1x1 + bias (+ input)            over the input when residual, else a free one
            let pixels = side * side
            var expanded = current
            if let expand = block.expand {
                expanded = (current + 1) % 3
                pointwise(expand, buffers[current], rows: pixels, into: buffers[expanded], residual: nil, isa: isa)
            }
            let d = block.depthwise.spec
            let dwOut = MobilePlan.sameOutput(side, stride: d.stride)
            let dwPad = MobilePlan.samePadding(side, size: d.size, stride: d.stride)
            let depthwise = (0 ..< 3).first { $0 != current && $0 != expanded }!
            if block.squeeze != nil { scratch.sums.update(repeating: 0, count: d.channels) }
            block.depthwise.kernel.withUnsafeBufferPointer { w in
                block.depthwise.bias.withUnsafeBufferPointer { b in
                    st_depthwise(isa, buffers[expanded], Int32(side), Int32(side), Int32(d.channels), w.baseAddress!, b.baseAddress!, Int32(d.size),
                                 Int32(d.stride), Int32(dwPad), Int32(dwPad), Int32(dwOut), Int32(dwOut), d.activation.rawValue,
                                 buffers[depthwise], block.squeeze == nil ? nil : scratch.sums)
                }
            }
            if let squeeze = block.squeeze {
                excite(squeeze, buffers[depthwise], pixels: dwOut * dwOut, scratch: scratch, isa: isa)
            }
            let target = block.residual ? current : (0 ..< 3).first { $0 != depthwise && $0 != current }!
            pointwise(block.project, buffers[depthwise], rows: dwOut * dwOut, into: buffers[target],
                      residual: block.residual ? UnsafePointer(buffers[current]) : nil, isa: isa)
            current = target
            side = dwOut
            emit(index, buffers[current], side)
        }
        guard deepest == blocks.count else { return }
        let output = (current + 1) % 3
        pointwise(top, buffers[current], rows: side * side, into: buffers[output], residual: nil, isa: isa)
        emit(blocks.count, buffers[output], side)
    }

    /// `c[rows x n] = act(a[rows x k] * W + bias (+ residual))`, a chunk of about 128 KB of output at a
    /// time, so that the activation's pass reads it from cache.
    func pointwise(_ layer: Pointwise, _ a: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>,
                   residual: UnsafePointer<Float>?, isa: Int32) {
        let k = layer.weights.k, n = layer.weights.n
        let chunk = max(16, (1 << 15) / n)
        layer.bias.withUnsafeBufferPointer { bias in
            var start = 0
            while start < rows {
                let m = min(chunk, rows - start)
                layer.weights.multiplyOneThread(m: m, a: a + start * k, bias: bias.baseAddress, residual: residual.map { $0 + start * n },
                                                into: c + start * n, relu: false)
                st_activate(isa, c + start * n, m * n, layer.activation.rawValue)
                start += m
            }
        }
    }

    /// Squeeze-excitation on `x[pixels x channels]`, whose channel sums the depthwise kernel left in `scratch.sums`.
    func excite(_ squeeze: Squeeze, _ x: UnsafeMutablePointer<Float>, pixels: Int, scratch: Scratch, isa: Int32) {
        let s = squeeze.spec
        // The mean as TensorFlow's reduce_mean takes it: the sum divided by the count.
        for c in 0 ..< s.channels { scratch.pooled[c] = scratch.sums[c] / Float(pixels) }
        squeeze.reduce.withUnsafeBufferPointer { w in
            squeeze.reduceBias.withUnsafeBufferPointer { b in
                st_dense_vector(isa, scratch.pooled, Int32(s.channels), w.baseAddress!, b.baseAddress!, Int32(s.squeezed), s.activation.rawValue, scratch.squeezed)
            }
        }
        squeeze.expand.withUnsafeBufferPointer { w in
            squeeze.expandBias.withUnsafeBufferPointer { b in
                st_dense_vector(isa, scratch.squeezed, Int32(s.squeezed), w.baseAddress!, b.baseAddress!, Int32(s.channels), Activation.sigmoid.rawValue, scratch.scale)
            }
        }
        st_scale_channels(isa, x, Int32(pixels), Int32(s.channels), scratch.scale)
    }
}
