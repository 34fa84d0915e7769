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

    /// A block: its 1x1 convolutions laid out for the GEMM, its depthwise and squeeze-excitation as folded.
    struct Block {
        let expand: Pointwise?
        let depthwise: FoldedMobile.Depthwise
        let squeeze: FoldedMobile.Squeeze?
        let project: Pointwise
        let residual: Bool
    }

    let normalization: FoldedMobile.InputNormalization?
    let stem: Pointwise
    let blocks: [Block]
    let top: Pointwise

    /// Builds the network from `weights`, checking every layer's presence and shape.
    public init(architecture: Architecture, plan: MobilePlan, weights: any BackboneWeights, kernel: GEMMKernel) throws {
        self.architecture = architecture
        self.plan = plan
        self.kernel = kernel
        let folded = try FoldedMobile(plan: plan, weights: weights)
        func pointwise(_ conv: FoldedMobile.Conv) -> Pointwise {
            let spec = conv.spec
            return Pointwise(weights: WeightMatrix(conv.kernel[...], k: spec.size * spec.size * spec.input, n: spec.output, kernel: kernel),
                             bias: conv.bias, activation: spec.activation)
        }
        normalization = folded.normalization
        stem = pointwise(folded.stem)
        blocks = folded.blocks.map { block in
            Block(expand: block.expand.map(pointwise), depthwise: block.depthwise, squeeze: block.squeeze, project: pointwise(block.project),
                  residual: block.spec.residual)
        }
        top = pointwise(folded.top!)
    }

    /// One core's buffers for one image.
    final class Scratch {
        /// Three activations (input, expansion, depthwise output; the projection lands on a free one).
        let buffers: [UnsafeMutablePointer<Float>]
        /// A band of expanded rows, and a band of depthwise output (`runBlock`).
        let band: UnsafeMutablePointer<Float>, depthwiseBand: UnsafeMutablePointer<Float>
        let columns: UnsafeMutablePointer<Float>
        let normalized: UnsafeMutablePointer<Float>
        /// Squeeze-excitation's vectors: channel sums, pooled, squeezed, scale.
        let sums: UnsafeMutablePointer<Float>, pooled: UnsafeMutablePointer<Float>, squeezed: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>

        init(activation: Int, band: Int, depthwiseBand: Int, columns: Int, input: Int, channels: Int) {
            buffers = (0 ..< 3).map { _ in allocateAligned(floats: activation) }
            self.band = allocateAligned(floats: band)
            self.depthwiseBand = allocateAligned(floats: depthwiseBand)
            self.columns = allocateAligned(floats: columns)
            normalized = allocateAligned(floats: input)
            sums = allocateAligned(floats: channels)
            pooled = allocateAligned(floats: channels)
            squeezed = allocateAligned(floats: channels)
            scale = allocateAligned(floats: channels)
        }

        deinit { (buffers + [band, depthwiseBand, columns, normalized, sums, pooled, squeezed, scale]).forEach(deallocateAligned) }
    }

    public final class Workspace: NetworkWorkspace {
        public let count: Int, size: Int
        public let input: UnsafeMutablePointer<Float>
        let scratch: [Scratch]

        init(network: MobileNetwork, count: Int, size: Int) {
            self.count = count
            self.size = size
            input = allocateAligned(floats: count * size * size * 3)
            let sizes = network.bufferSizes(size: size)
            scratch = (0 ..< max(1, min(coreCount, count))).map { _ in
                Scratch(activation: sizes.activation, band: sizes.band, depthwiseBand: sizes.depthwiseBand, columns: sizes.columns,
                        input: size * size * 3, channels: sizes.channels)
            }
        }

        deinit { deallocateAligned(input) }
    }

    /// For one image of side `size`, in floats: the largest activation, the largest band of expanded
    /// rows and of depthwise output (`runBlock`), the stem's im2col, the widest layer.
    func bufferSizes(size: Int) -> (activation: Int, band: Int, depthwiseBand: Int, columns: Int, channels: Int) {
        var side = MobilePlan.sameOutput(size, stride: plan.stem.stride)
        let columns = side * side * plan.stem.size * plan.stem.size * plan.stem.input
        var largest = side * side * plan.stem.output, channels = plan.stem.output, band = 1, depthwiseBand = 1
        for block in plan.blocks {
            let d = block.depthwise
            let outSide = MobilePlan.sameOutput(side, stride: d.stride)
            let rows = Self.bandRows(side: side, outSide: outSide, depthwise: d)
            band = max(band, min(side, (rows - 1) * d.stride + d.size) * side * d.channels)
            depthwiseBand = max(depthwiseBand, rows * outSide * d.channels)
            largest = max(largest, side * side * block.input, outSide * outSide * max(d.channels, block.output))
            channels = max(channels, d.channels)
            side = outSide
        }
        largest = max(largest, side * side * plan.top.output)
        return (largest, band, depthwiseBand, columns, max(channels, plan.top.output))
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
            // The channels' constants out of their arrays first, so that the loop has no bounds
            // checks and vectorises (the same operations on each value: the same bits).
            let (m0, m1, m2) = (normalization.mean[0], normalization.mean[1], normalization.mean[2])
            let (d0, d1, d2) = (normalization.deviation[0], normalization.deviation[1], normalization.deviation[2])
            let (r0, r1, r2) = (normalization.rescale[0], normalization.rescale[1], normalization.rescale[2])
            let out = scratch.normalized, scale = Float(1.0 / 255.0)
            for pixel in 0 ..< side * side {
                let at = pixel * 3
                out[at] = (x[at] * scale - m0) / d0 * r0
                out[at + 1] = (x[at + 1] * scale - m1) / d1 * r1
                out[at + 2] = (x[at + 2] * scale - m2) / d2 * r2
            }
            x = out
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
            let target = runBlock(block, input: current, side: side, scratch: scratch, isa: isa)
            current = target
            side = MobilePlan.sameOutput(side, stride: block.depthwise.spec.stride)
            emit(index, buffers[current], side)
        }
        guard deepest == blocks.count else { return }
        let output = (current + 1) % 3
        pointwise(top, buffers[current], rows: side * side, into: buffers[output], residual: nil, isa: isa)
        emit(blocks.count, buffers[output], side)
    }

    /// Output rows per band of a block: about 512 KB of expanded rows (the input rows the band's
    /// depthwise taps read), so that the expansion's output is read back from cache.
    static func bandRows(side: Int, outSide: Int, depthwise d: DepthwiseSpec) -> Int {
        let rows = (1 << 17) / max(1, side * d.channels)
        return max(1, min(outSide, (rows - (d.size - d.stride)) / d.stride))
    }

    /// One block on `scratch.buffers[input]` (`side x side`); returns the buffer its output is in.
    ///
    /// The depthwise output is made a band of rows at a time: the expansion runs on just the rows
    /// the band's taps read (into `scratch.band`; the rows the next band shares are moved to the
    /// front, not computed again), then the depthwise on them. Without squeeze-excitation the band
    /// goes straight on to the projection (`scratch.depthwiseBand`), so that only the block's input
    /// and output, its narrow ends, ever leave the cache; with it, the whole depthwise output is
    /// needed first (its mean scales every pixel), so it goes to the third buffer. The rows and the
    /// order of every sum are those of the whole image at once: the same bits.
    ///   input      [side, side, c]          buffers[input]
    ///   expanded   [rows, side, e]          1x1 + bias + activation        scratch.band (rows of the band)
    ///   depthwise  [R, side/s, e]           kxk/s + bias + activation      scratch.depthwiseBand, or the third buffer
    ///   output     [side/s, side/s, c']     1x1 + bias (+ input)           over the input when residual, else a free buffer
    func runBlock(_ block: Block, input: Int, side: Int, scratch: Scratch, isa: Int32) -> Int {
        let buffers = scratch.buffers
        let d = block.depthwise.spec
        let outSide = MobilePlan.sameOutput(side, stride: d.stride)
        let pad = MobilePlan.samePadding(side, size: d.size, stride: d.stride)
        let third = (input + 1) % 3
        let target = block.residual ? input : (input + 2) % 3
        let whole = block.squeeze != nil
        let bandRows = Self.bandRows(side: side, outSide: outSide, depthwise: d)
        if whole { scratch.sums.update(repeating: 0, count: d.channels) }
        // Rows [bandFirst, bandEnd) of the expansion are in scratch.band.
        var bandFirst = 0, bandEnd = 0
        var first = 0
        while first < outSide {
            let rows = min(bandRows, outSide - first)
            let needFirst = max(0, first * d.stride - pad), needEnd = min(side, (first + rows - 1) * d.stride - pad + d.size)
            let source: UnsafeMutablePointer<Float>, sourceFirst: Int, sourceRows: Int
            if let expand = block.expand {
                // Keep what this band shares with the last, compute the rest.
                let kept = max(0, bandEnd - max(needFirst, bandFirst))
                if kept > 0 { scratch.band.update(from: scratch.band + (bandEnd - kept - bandFirst) * side * d.channels, count: kept * side * d.channels) }
                let fresh = max(needFirst, bandEnd)
                if needEnd > fresh {
                    pointwise(expand, buffers[input] + fresh * side * expand.weights.k, rows: (needEnd - fresh) * side,
                              into: scratch.band + kept * side * d.channels, residual: nil, isa: isa)
                }
                (bandFirst, bandEnd) = (needFirst, needEnd)
                (source, sourceFirst, sourceRows) = (scratch.band, needFirst, needEnd - needFirst)
            } else {
                (source, sourceFirst, sourceRows) = (buffers[input], 0, side)
            }
            let output = whole ? buffers[third] + first * outSide * d.channels : scratch.depthwiseBand
            block.depthwise.kernel.withUnsafeBufferPointer { w in
                block.depthwise.bias.withUnsafeBufferPointer { b in
                    st_depthwise(isa, source, Int32(sourceRows), Int32(side), Int32(d.channels), w.baseAddress!, b.baseAddress!, Int32(d.size),
                                 Int32(d.stride), Int32(pad + sourceFirst - first * d.stride), Int32(pad), Int32(rows), Int32(outSide),
                                 d.activation.rawValue, output, whole ? scratch.sums : nil)
                }
            }
            if !whole {
                let at = first * outSide * block.project.weights.n
                pointwise(block.project, output, rows: rows * outSide, into: buffers[target] + at,
                          residual: block.residual ? UnsafePointer(buffers[input] + at) : nil, isa: isa)
            }
            first += rows
        }
        if let squeeze = block.squeeze {
            excite(squeeze, buffers[third], pixels: outSide * outSide, scratch: scratch, isa: isa)
            pointwise(block.project, buffers[third], rows: outSide * outSide, into: buffers[target],
                      residual: block.residual ? UnsafePointer(buffers[input]) : nil, isa: isa)
        }
        return target
    }

    /// `c[rows x n] = act(a[rows x k] * W + bias (+ residual))`: one GEMM, the activation in its
    /// tiles' epilogue (on OpenBLAS, a chunk of about 128 KB of output at a time, so that the
    /// activation's pass reads it from cache).
    func pointwise(_ layer: Pointwise, _ a: UnsafePointer<Float>, rows: Int, into c: UnsafeMutablePointer<Float>,
                   residual: UnsafePointer<Float>?, isa: Int32) {
        let k = layer.weights.k, n = layer.weights.n
        let chunk = kernel == .blas ? max(16, (1 << 15) / n) : rows
        layer.bias.withUnsafeBufferPointer { bias in
            var start = 0
            while start < rows {
                let m = min(chunk, rows - start)
                layer.weights.multiplyOneThread(m: m, a: a + start * k, bias: bias.baseAddress, residual: residual.map { $0 + start * n },
                                                into: c + start * n, activation: layer.activation)
                start += m
            }
        }
    }

    /// Squeeze-excitation on `x[pixels x channels]`, whose channel sums the depthwise kernel left in `scratch.sums`.
    func excite(_ squeeze: FoldedMobile.Squeeze, _ x: UnsafeMutablePointer<Float>, pixels: Int, scratch: Scratch, isa: Int32) {
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
