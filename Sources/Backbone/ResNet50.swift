import Foundation
import Numerical

/// Keras's ResNet50 v1 with `include_top=False` and global average pooling: 224x224x3 (or any size
/// from 32 up) caffe-preprocessed NHWC in, 2048 features out. BatchNorm is folded into each
/// convolution's weights and bias at load time, so inference is convolutions and pooling only.
public final class ResNet50: FeatureNetwork {
    public static let featureCount = 2048
    /// Keras's names of the block outputs, in depth order: where the backbone can be cut.
    public static let blockNames = [(2, 3), (3, 4), (4, 6), (5, 3)].flatMap { stage, count in (1 ... count).map { "conv\(stage)_block\($0)_out" } }
    /// The channels of each block's output (`blockNames` order).
    public static let blockChannels = [(256, 3), (512, 4), (1024, 6), (2048, 3)].flatMap { channels, count in Array(repeating: channels, count: count) }

    /// The side of block `block`'s output for an input of `size`.
    public static func blockSide(_ block: Int, size: Int) -> Int {
        side(size, stage: block < 3 ? 0 : block < 7 ? 1 : block < 13 ? 2 : 3)
    }
    public static let minimumSize = 32
    /// Keras's BatchNorm epsilon in ResNet50.
    public static let batchNormEpsilon = 1.001e-5

    /// How the rest of the tool sees it (`Backbones`).
    public static let architecture = Architecture(
        name: "resnet50", title: "ResNet50 v1 (Keras), include_top=False, global average pooling", preprocessing: .caffe,
        weights: PublishedWeights(fileName: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", md5: "4d473c1dd8becc155b73f8504c6f6626",
                                  folder: "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"),
        nodes: blockNames.indices.map { block in BackboneNode(name: blockNames[block], channels: blockChannels[block]) { blockSide(block, size: $0) } },
        minimumSize: minimumSize,
        // conv5's three bottleneck blocks, on the maps of the block below them.
        fineTunable: FineTunablePart(name: "conv5", input: "conv4_block6_out"),
        bf16: true,
        build: { weights, kernel, size in try ResNet50(weights: weights, kernel: kernel, size: size) },
        randomWeights: { randomWeights(seed: $0) })

    /// ResNet50's seeded random weights: the stem scaled for caffe-range pixels, and each residual
    /// branch's last BatchNorm damped (see `RandomWeights`).
    public static func randomWeights(seed: UInt64) -> RandomWeights {
        RandomWeights(seed: seed, inputLayer: "conv1_conv", branchEnd: { $0.hasSuffix("_3_bn") })
    }
    public var architecture: Architecture { Self.architecture }

    /// A convolution with BatchNorm folded in: `weights[size*size*input x output]` (laid out for the
    /// GEMM kernel), `bias[output]`.
    struct Conv {
        var size: Int, stride: Int, pad: Int, input: Int, output: Int
        var weights: WeightMatrix
        var bias: [Float]

        func outputShape(_ shape: Shape) -> Shape { shape.convolved(size: size, stride: stride, pad: pad, channels: output) }
    }

    /// A bottleneck block: 1x1 reduce, 3x3, 1x1 expand, plus a 1x1 projection on the first block of a
    /// stage. The 3x3 has stride 1 in every block of Keras's ResNet50 and runs by Winograd.
    struct Block {
        var reduce: Conv, spatial: WinogradConv, expand: Conv
        var shortcut: Conv?
    }

    let stem: Conv
    let blocks: [Block]
    /// The GEMM the convolutions run on.
    public let kernel: GEMMKernel

    /// Builds the network from `weights`, checking every layer's presence and shape. `size` is the
    /// input side the network will mostly see: it picks each stage's Winograd variant (any size works).
    public init(weights: BackboneWeights, kernel: GEMMKernel = .preferred, size: Int = 224) throws {
        self.kernel = kernel
        // First every layer's arrays are read, in order (HDF5 is not thread-safe); then the layers are
        // folded and laid out for the GEMM on all cores at once (the Winograd filter transforms and the
        // packing are most of a load's time).
        enum Layer { case conv(Conv), winograd(WinogradConv) }
        var jobs: [() -> Layer] = []
        func conv(_ spec: ConvolutionSpec) throws -> Int {
            let (raw, norm) = try spec.read(weights)
            jobs.append {
                let (w, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
                return .conv(Conv(size: spec.size, stride: spec.stride, pad: spec.pad, input: spec.input, output: spec.output,
                                  weights: WeightMatrix(w[...], k: spec.size * spec.size * spec.input, n: spec.output, kernel: kernel), bias: bias))
            }
            return jobs.count - 1
        }
        // In bf16 the Winograd GEMMs run in bf16 too (the transforms stay float). Measured both ways
        // on the sample's real images with the parity weights: the features' cosine to float was at
        // least 0.999991 (64 and 224) with bf16 Winograd and 0.999994 without, and bf16 Winograd was
        // the faster (50 against 42 images/s at 224). On random data one F(4x4) layer alone misses
        // float by 5.6% of its largest value (its output transform cancels large terms), so the
        // fidelity gate is the network's features, not a layer (BackboneTests, PrecisionGate).
        let spatialKernel = kernel
        func spatial(_ spec: ConvolutionSpec, m: Int) throws -> Int {
            let (raw, norm) = try spec.read(weights)
            jobs.append {
                let (w, bias) = norm.fold(kernel: raw.kernel, bias: raw.bias)
                return .winograd(WinogradConv(weights: w, bias: bias, input: spec.input, output: spec.output, m: m, kernel: spatialKernel))
            }
            return jobs.count - 1
        }
        let stemJob = try conv(Self.plan.stem)
        var blockJobs: [(reduce: Int, spatial: Int, expand: Int, shortcut: Int?)] = []
        for (index, block) in Self.plan.blocks.enumerated() {
            let shortcut = try block.shortcut.map(conv)
            blockJobs.append((
                reduce: try conv(block.reduce),
                spatial: try spatial(block.spatial, m: WinogradConv.blockSide(forOutputSide: Self.blockSide(index, size: size))),
                expand: try conv(block.expand),
                shortcut: shortcut))
        }
        var layers = [Layer?](repeating: nil, count: jobs.count)
        layers.withUnsafeMutableBufferPointer { slots in
            let slots = UncheckedSendable(slots)
            parallelFor(jobs.count) { slots.value[$0] = jobs[$0]() }
        }
        func conv(_ index: Int) -> Conv {
            guard case let .conv(conv) = layers[index] else { preconditionFailure("layer \(index) is not a plain convolution") }
            return conv
        }
        stem = conv(stemJob)
        blocks = blockJobs.map { job in
            guard case let .winograd(spatial) = layers[job.spatial] else { preconditionFailure("layer \(job.spatial) is not a 3x3 convolution") }
            return Block(reduce: conv(job.reduce), spatial: spatial, expand: conv(job.expand), shortcut: job.shortcut.map(conv))
        }
    }

    /// The side of stage `stage`'s activations (0 = conv2, at a quarter of the input) for an input of `size`.
    static func side(_ size: Int, stage: Int) -> Int {
        var side = (size - 1) / 2 + 1  // conv1, stride 2
        side = (side - 1) / 2 + 1  // max pool, stride 2
        for _ in 0 ..< stage { side = (side - 1) / 2 + 1 }
        return side
    }

    /// Buffers for one batch size and image size, allocated once and reused across batches.
    public final class Workspace: NetworkWorkspace {
        /// The most images one forward pass takes, and their side.
        public let count: Int, size: Int
        /// The network's input, `count x size x size x 3` floats.
        public let input: UnsafeMutablePointer<Float>
        /// Images per pass through the first stages (see `forward`).
        let step: Int
        /// Four buffers for the first stages' activations (`step` images), and four for the rest's
        /// (`count` images; the first receives the first stages' output).
        let early: [UnsafeMutablePointer<Float>], late: [UnsafeMutablePointer<Float>]
        let columns: UnsafeMutablePointer<Float>
        /// Winograd's second scratch buffer (its first is `columns`).
        let products: UnsafeMutablePointer<Float>

        init(network: ResNet50, count: Int, size: Int) {
            self.count = count
            self.size = size
            input = allocateAligned(floats: count * size * size * 3)
            let perImage = network.bufferSizes(count: 1, size: size)
            step = max(1, min(count, ResNet50.earlyBudget / perImage.early))
            let early = network.bufferSizes(count: step, size: size), late = network.bufferSizes(count: count, size: size)
            self.early = (0 ..< 4).map { _ in allocateAligned(floats: early.early) }
            self.late = [allocateAligned(floats: late.handover)] + (1 ..< 4).map { _ in allocateAligned(floats: late.late) }
            columns = allocateAligned(floats: max(early.columns, late.columns, early.winograd, late.winograd, 1))
            products = allocateAligned(floats: max(early.winograd, late.winograd, 1))
        }

        deinit {
            ([input, columns, products] + early + late).forEach(deallocateAligned)
        }
    }

    /// Blocks run `step` images at a time (the first stage, conv2): their activations are the
    /// largest (3.2 MB an image at 224), and a few images' worth stays in cache from one layer to the
    /// next where a whole batch's went through memory. Later stages run on the whole batch, where
    /// their GEMMs have rows enough to amortise their larger weights.
    static let earlyBlocks = 3
    /// Floats the largest activation of a step may take (16 MB).
    static let earlyBudget = 1 << 22

    /// Cores and rows per chunk for a convolution that needs im2col: chunks of about 256 KB of patches.
    static func columnPlan(rows: Int, k: Int) -> (parts: Int, chunk: Int) {
        let parts = max(1, min(coreCount, rows / 64))
        return (parts, min((rows + parts - 1) / parts, max(14, (1 << 16) / k / 14 * 14)))
    }

    /// For `count` images of `size`: the largest activation of the first stages (`earlyBlocks`),
    /// the largest of the later ones, the size of the first stages' output, and the largest im2col
    /// and Winograd scratch, in floats.
    func bufferSizes(count: Int, size: Int) -> (early: Int, late: Int, handover: Int, columns: Int, winograd: Int) {
        var largest = [0, 0], columns = 0, winograd = 0, phase = 0
        func visit(_ conv: Conv, _ input: Shape) -> Shape {
            let out = conv.outputShape(input)
            largest[phase] = max(largest[phase], out.elements)
            if conv.size > 1 || conv.stride > 1 {
                let k = conv.size * conv.size * conv.input
                let (parts, chunk) = Self.columnPlan(rows: out.rows, k: k)
                columns = max(columns, parts * chunk * k)
            }
            return out
        }
        var shape = visit(stem, Shape(count: count, height: size, width: size, channels: 3))
        var handover = 0
        for (index, block) in blocks.enumerated() {
            if index == Self.earlyBlocks { phase = 1 }
            if let shortcut = block.shortcut { _ = visit(shortcut, shape) }
            let reduced = visit(block.reduce, shape)
            winograd = max(winograd, block.spatial.scratch(reduced))
            shape = visit(block.expand, reduced)
            if index == Self.earlyBlocks - 1 { handover = shape.elements }
        }
        return (largest[0], largest[1], handover, columns, winograd)
    }

    public func makeWorkspace(count: Int, size: Int) -> any NetworkWorkspace { makeResNetWorkspace(count: count, size: size) }

    public func makeResNetWorkspace(count: Int, size: Int) -> Workspace {
        precondition(size >= Self.minimumSize, "ResNet50 needs inputs of at least \(Self.minimumSize)x\(Self.minimumSize)")
        return Workspace(network: self, count: count, size: size)
    }

    /// `output = relu?(conv(input) + bias [+ residual])`: the residual add rides on the GEMM (in
    /// its tiles' epilogue, or sgemm's beta), so the shortcut costs no pass of its own.
    static func run(_ conv: Conv, _ input: UnsafeMutablePointer<Float>, _ shape: Shape, into output: UnsafeMutablePointer<Float>,
                    columns: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil, relu: Bool) -> Shape {
        let out = conv.outputShape(shape)
        let k = conv.size * conv.size * conv.input
        precondition(conv.weights.k == k)
        conv.bias.withUnsafeBufferPointer { b in
            let bias = b.baseAddress!
            guard conv.size > 1 || conv.stride > 1 else {
                conv.weights.multiply(m: out.rows, a: input, bias: bias, residual: residual, into: output, relu: relu)
                return
            }
            // Patches gathered and multiplied a chunk at a time on each core, so that they are still
            // in cache when the GEMM reads them (the stem's whole im2col matrix is 236 MB at 224, batch 32).
            let (parts, chunk) = Self.columnPlan(rows: out.rows, k: k)
            parallelFor(parts) { part in
                let patches = columns + part * chunk * k
                var start = out.rows * part / parts
                let end = out.rows * (part + 1) / parts
                while start < end {
                    let rows = start ..< min(start + chunk, end)
                    Kernels.im2col(input, shape, size: conv.size, stride: conv.stride, pad: conv.pad, output: out, rows: rows, into: patches)
                    conv.weights.multiplyOneThread(m: rows.count, a: patches, bias: bias, residual: residual.map { $0 + rows.lowerBound * conv.output },
                                                   into: output + rows.lowerBound * conv.output, relu: relu)
                    start = rows.upperBound
                }
            }
        }
        return out
    }

    /// Features of `count` images (`count x size x size x 3` floats, caffe-preprocessed, in
    /// `workspace.input`) into `features[count x 2048]`.
    public func forward(_ workspace: Workspace, count: Int, into features: UnsafeMutablePointer<Float>) {
        forward(workspace, count: count, taps: [Self.blockNames.count - 1], into: [features])
    }

    /// The globally average-pooled output of each block in `taps` (indices into `blockNames`,
    /// ascending, no repeats) into `pooled[t][count x channels(taps[t])]`; the network stops after
    /// the deepest. With `keep`, that block's whole output `[count, h, w, c]` is copied out too.
    public func forward(_ workspace: any NetworkWorkspace, count: Int, taps: [Int], into pooled: [UnsafeMutablePointer<Float>],
                        keep: (block: Int, into: UnsafeMutablePointer<Float>)? = nil) {
        guard let workspace = workspace as? Workspace else { preconditionFailure("a workspace of another network") }
        precondition(!taps.isEmpty && taps.count == pooled.count && zip(taps, taps.dropFirst()).allSatisfy { $0 < $1 })
        precondition(taps.allSatisfy { blocks.indices.contains($0) })
        withSingleThreadedBLAS { forwardAlone(workspace, count: count, taps: taps, into: pooled, keep: keep) }
    }

    func forwardAlone(_ workspace: Workspace, count: Int, taps: [Int], into pooled: [UnsafeMutablePointer<Float>],
                      keep: (block: Int, into: UnsafeMutablePointer<Float>)?) {
        precondition(count <= workspace.count)
        let columns = workspace.columns, side = workspace.size
        let deepest = max(taps.last!, keep?.block ?? 0)
        // Called after every block with its output for the images from `first` on.
        let emit = { (block: Int, output: UnsafeMutablePointer<Float>, shape: Shape, first: Int) in
            if let tap = taps.firstIndex(of: block) {
                Kernels.globalAveragePool(output, shape, into: pooled[tap] + first * shape.channels)
            }
            if let keep, keep.block == block {
                let perImage = shape.height * shape.width * shape.channels
                (keep.into + first * perImage).update(from: output, count: shape.count * perImage)
            }
        }
        // The stem and the first stage, `step` images at a time (n <= step), their output gathered
        // in late[0] for the whole batch:
        //   input     [n, side, side, 3]            workspace.input + first image
        //   stem      [n, side/2, side/2, 64]       7x7/2 conv + bias + ReLU         early[1]
        //   pooled    [n, side/4, side/4, 64]       3x3/2 max pool                   early[0]
        //   conv2     [n, side/4, side/4, 256]      three bottleneck blocks          late[0] + first image
        let stemOutput = workspace.early[1], pooledOutput = workspace.early[0]
        var handedOver = Shape(count: 0, height: 0, width: 0, channels: 0)
        for first in stride(from: 0, to: count, by: workspace.step) {
            let input = Shape(count: min(workspace.step, count - first), height: side, width: side, channels: 3)
            let stemmed = Self.run(stem, workspace.input + first * side * side * 3, input, into: stemOutput, columns: columns, relu: true)
            let pooled = stemmed.convolved(size: 3, stride: 2, pad: 1, channels: stemmed.channels)
            Kernels.maxPool3x3s2(stemOutput, stemmed, output: pooled, into: pooledOutput)
            // When the cut is within conv2, its last block's output stays in the early buffers.
            let handover = deepest >= Self.earlyBlocks
                ? workspace.late[0] + first * pooled.height * pooled.width * blocks[Self.earlyBlocks - 1].expand.output : nil
            handedOver = runBlocks(blocks[..<min(Self.earlyBlocks, deepest + 1)], workspace.early, input: 0, shape: pooled, workspace: workspace,
                                   handover: handover) { emit($0, $1, $2, first) }.shape
        }
        guard deepest >= Self.earlyBlocks else { return }
        // conv3 onwards on the whole batch, from late[0], as far as the deepest block asked for.
        handedOver.count = count
        _ = runBlocks(blocks[Self.earlyBlocks ... deepest], workspace.late, input: 0, shape: handedOver, workspace: workspace, handover: nil) {
            emit($0, $1, $2, 0)
        }
    }

    /// Runs `blocks` on the activation in `buffers[input]`; returns which buffer holds the output, and
    /// its shape. With `handover`, the last block writes its output there instead.
    private func runBlocks(_ blocks: ArraySlice<Block>, _ buffers: [UnsafeMutablePointer<Float>], input: Int, shape: Shape, workspace: Workspace,
                           handover: UnsafeMutablePointer<Float>?,
                           after: (_ block: Int, _ output: UnsafeMutablePointer<Float>, _ shape: Shape) -> Void) -> (buffer: Int, shape: Shape) {
        let columns = workspace.columns
        var current = input, shape = shape
        for (index, block) in zip(blocks.indices, blocks) {
            // Each block, its four buffers named by role (s = 2 on the first block of conv3-conv5):
            //   block input  [n, h, w, c]              buffers[current]
            //   reduced      [n, h/s, w/s, f]          1x1/s conv + bias + ReLU            a free buffer
            //   spatial      [n, h/s, w/s, f]          3x3 Winograd + bias + ReLU          another
            //   shortcut     [n, h/s, w/s, 4f]         1x1/s projection (first block of a stage), the third;
            //                                          else the block input itself
            //   output       [n, h/s, w/s, 4f]         1x1 expand + bias + shortcut + ReLU, over the shortcut
            // so the output lands where the shortcut is, and nothing is ever copied.
            let free = (0 ..< 4).filter { $0 != current }
            let reducedBuffer = buffers[free[0]], spatialBuffer = buffers[free[1]]
            let shortcut = block.shortcut == nil ? current : free[2]
            if let projection = block.shortcut {
                _ = Self.run(projection, buffers[current], shape, into: buffers[shortcut], columns: columns, relu: false)
            }
            let reduced = Self.run(block.reduce, buffers[current], shape, into: reducedBuffer, columns: columns, relu: true)
            block.spatial.run(reducedBuffer, reduced, into: spatialBuffer, transformed: columns, products: workspace.products)
            let output = index == blocks.indices.last ? handover ?? buffers[shortcut] : buffers[shortcut]
            shape = Self.run(block.expand, spatialBuffer, reduced, into: output, columns: columns, residual: UnsafePointer(buffers[shortcut]), relu: true)
            after(index, output, shape)
            current = shortcut
        }
        return (current, shape)
    }

    /// Convenience for whole arrays: RGB bytes of `count` images in, `count x 2048` features out.
    public func features(rgb: [UInt8], count: Int, size: Int, workspace: Workspace? = nil) -> [Float] {
        let workspace = workspace ?? makeResNetWorkspace(count: count, size: size)
        rgb.withUnsafeBufferPointer { Self.architecture.preprocessing.apply(rgb: $0, into: workspace.input) }
        var out = [Float](repeating: 0, count: count * Self.featureCount)
        out.withUnsafeMutableBufferPointer { forward(workspace, count: count, into: $0.baseAddress!) }
        return out
    }
}
