import Foundation
import PipelineKit

/// Keras's ResNet50 v1 with `include_top=False` and global average pooling: 224x224x3 (or any size
/// from 32 up) caffe-preprocessed NHWC in, 2048 features out. BatchNorm is folded into each
/// convolution's weights and bias at load time, so inference is convolutions and pooling only.
public final class ResNet50: Sendable {
    public static let featureCount = 2048
    public static let minimumSize = 32
    static let epsilon = 1.001e-5
    /// Keras "caffe" preprocessing: channels reordered to BGR, then these means subtracted.
    public static let bgrMeans: [Float] = [103.939, 116.779, 123.68]

    /// A convolution with BatchNorm folded in: `weights[size*size*input x output]` (laid out for the
    /// GEMM kernel), `bias[output]`.
    struct Conv {
        var size: Int, stride: Int, pad: Int, input: Int, output: Int
        var weights: WeightMatrix
        var bias: [Float]

        func outputShape(_ shape: Shape) -> Shape {
            Shape(count: shape.count, height: (shape.height + 2 * pad - size) / stride + 1,
                  width: (shape.width + 2 * pad - size) / stride + 1, channels: output)
        }
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
        func read(_ name: String, size: Int, input: Int, output: Int) throws -> () -> (weights: [Float], bias: [Float]) {
            let raw = try weights.conv(name + "_conv", size: size, input: input, output: output)
            let norm = try weights.batchNorm(name + "_bn", channels: output)
            return { Self.fold(raw, norm, rows: size * size * input, output: output) }
        }
        func conv(_ name: String, size: Int, stride: Int, pad: Int, input: Int, output: Int) throws -> Int {
            let folded = try read(name, size: size, input: input, output: output)
            jobs.append {
                let (w, bias) = folded()
                return .conv(Conv(size: size, stride: stride, pad: pad, input: input, output: output,
                                  weights: WeightMatrix(w[...], k: size * size * input, n: output, kernel: kernel), bias: bias))
            }
            return jobs.count - 1
        }
        func spatial(_ name: String, channels: Int, m: Int) throws -> Int {
            let folded = try read(name, size: 3, input: channels, output: channels)
            jobs.append {
                let (w, bias) = folded()
                return .winograd(WinogradConv(weights: w, bias: bias, input: channels, output: channels, m: m, kernel: kernel))
            }
            return jobs.count - 1
        }
        let stemJob = try conv("conv1", size: 7, stride: 2, pad: 3, input: 3, output: 64)
        var blockJobs: [(reduce: Int, spatial: Int, expand: Int, shortcut: Int?)] = []
        var channels = 64
        for (stage, (filters, count)) in [(64, 3), (128, 4), (256, 6), (512, 3)].enumerated() {
            for index in 1 ... count {
                let name = "conv\(stage + 2)_block\(index)"
                let stride = index == 1 && stage > 0 ? 2 : 1
                let shortcut = index == 1 ? try conv(name + "_0", size: 1, stride: stride, pad: 0, input: channels, output: filters * 4) : nil
                blockJobs.append((
                    reduce: try conv(name + "_1", size: 1, stride: stride, pad: 0, input: channels, output: filters),
                    spatial: try spatial(name + "_2", channels: filters, m: WinogradConv.blockSide(forOutputSide: Self.side(size, stage: stage))),
                    expand: try conv(name + "_3", size: 1, stride: 1, pad: 0, input: filters, output: filters * 4),
                    shortcut: shortcut))
                channels = filters * 4
            }
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

    /// BN(conv(x) + b) = conv(x) * s + (b - mean) * s + beta with s = gamma / sqrt(variance + eps),
    /// computed in double so that folding adds no error of its own.
    static func fold(_ conv: ConvWeights, _ norm: BatchNormWeights, rows: Int, output: Int) -> (weights: [Float], bias: [Float]) {
        let scale = (0 ..< output).map { Double(norm.gamma[$0]) / (Double(norm.variance[$0]) + epsilon).squareRoot() }
        var weights = conv.kernel
        weights.withUnsafeMutableBufferPointer { w in
            scale.withUnsafeBufferPointer { scale in
                for row in 0 ..< rows {
                    let line = w.baseAddress! + row * output
                    for o in 0 ..< output { line[o] = Float(Double(line[o]) * scale[o]) }
                }
            }
        }
        let bias = (0 ..< output).map { Float((Double(conv.bias[$0]) - Double(norm.mean[$0])) * scale[$0] + Double(norm.beta[$0])) }
        return (weights, bias)
    }

    /// Buffers for one batch size and image size, allocated once and reused across batches.
    public final class Workspace {
        /// The most images one forward pass takes, and their side.
        public let count: Int, size: Int
        /// Four activation buffers; the first holds the network's input (`count x size x size x 3`).
        public let activations: [UnsafeMutablePointer<Float>]
        let columns: UnsafeMutablePointer<Float>
        /// Winograd's second scratch buffer (its first is `columns`).
        let products: UnsafeMutablePointer<Float>
        let capacity: Int, columnCapacity: Int

        init(network: ResNet50, count: Int, size: Int) {
            self.count = count
            self.size = size
            let (largest, largestColumns, winograd) = network.bufferSizes(count: count, size: size)
            let capacity = max(largest, count * size * size * 3)
            self.capacity = capacity
            columnCapacity = max(largestColumns, winograd, 1)
            activations = (0 ..< 4).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: capacity) }
            columns = UnsafeMutablePointer<Float>.allocate(capacity: columnCapacity)
            products = UnsafeMutablePointer<Float>.allocate(capacity: max(winograd, 1))
        }

        deinit {
            activations.forEach { $0.deallocate() }
            columns.deallocate()
            products.deallocate()
        }
    }

    /// Cores and rows per chunk for a convolution that needs im2col: chunks of about 256 KB of patches.
    static func columnPlan(rows: Int, k: Int) -> (parts: Int, chunk: Int) {
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, rows / 64))
        return (parts, min((rows + parts - 1) / parts, max(14, (1 << 16) / k / 14 * 14)))
    }

    /// The largest activation, the largest im2col matrix and Winograd's scratch, in floats, for a batch.
    func bufferSizes(count: Int, size: Int) -> (activation: Int, columns: Int, winograd: Int) {
        var largest = 0, largestColumns = 0, winograd = 0
        func visit(_ conv: Conv, _ input: Shape) -> Shape {
            let out = conv.outputShape(input)
            largest = max(largest, out.elements)
            if conv.size > 1 || conv.stride > 1 {
                let k = conv.size * conv.size * conv.input
                let (parts, chunk) = Self.columnPlan(rows: out.rows, k: k)
                largestColumns = max(largestColumns, parts * chunk * k)
            }
            return out
        }
        var shape = visit(stem, Shape(count: count, height: size, width: size, channels: 3))
        for block in blocks {
            if let shortcut = block.shortcut { _ = visit(shortcut, shape) }
            let reduced = visit(block.reduce, shape)
            winograd = max(winograd, block.spatial.scratch(reduced))
            shape = visit(block.expand, reduced)
        }
        return (largest, largestColumns, winograd)
    }

    public func makeWorkspace(count: Int, size: Int) -> Workspace {
        precondition(size >= Self.minimumSize, "ResNet50 needs inputs of at least \(Self.minimumSize)x\(Self.minimumSize)")
        return Workspace(network: self, count: count, size: size)
    }

    /// `output = relu?(conv(input) + bias [+ output when accumulate])`: the residual add rides on
    /// the GEMM (in its tiles' epilogue, or sgemm's beta), so the shortcut already in `output` costs no pass.
    func run(_ conv: Conv, _ input: UnsafeMutablePointer<Float>, _ shape: Shape, into output: UnsafeMutablePointer<Float>,
             columns: UnsafeMutablePointer<Float>, accumulate: Bool = false, relu: Bool) -> Shape {
        let out = conv.outputShape(shape)
        let k = conv.size * conv.size * conv.input
        precondition(conv.weights.k == k)
        conv.bias.withUnsafeBufferPointer { b in
            let bias = b.baseAddress!
            guard conv.size > 1 || conv.stride > 1 else {
                conv.weights.multiply(m: out.rows, a: input, bias: bias, into: output, accumulate: accumulate, relu: relu)
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
                    conv.weights.multiplyOneThread(m: rows.count, a: patches, bias: bias, into: output + rows.lowerBound * conv.output,
                                                   accumulate: accumulate, relu: relu)
                    start = rows.upperBound
                }
            }
        }
        return out
    }

    /// Features of `count` images (`count x size x size x 3` floats, caffe-preprocessed, in
    /// `workspace.activations[0]`) into `features[count x 2048]`.
    public func forward(_ workspace: Workspace, count: Int, into features: UnsafeMutablePointer<Float>) {
        withSingleThreadedBLAS { forwardAlone(workspace, count: count, into: features) }
    }

    func forwardAlone(_ workspace: Workspace, count: Int, into features: UnsafeMutablePointer<Float>) {
        precondition(count <= workspace.count)
        let buffers = workspace.activations
        let columns = workspace.columns
        var shape = Shape(count: count, height: workspace.size, width: workspace.size, channels: 3)
        shape = run(stem, buffers[0], shape, into: buffers[1], columns: columns, relu: true)
        let pooled = Shape(count: count, height: (shape.height - 1) / 2 + 1, width: (shape.width - 1) / 2 + 1, channels: shape.channels)
        Kernels.maxPool3x3s2(buffers[1], shape, output: pooled, into: buffers[0])
        shape = pooled
        // x: the block input; the block output lands in the shortcut's buffer (or in x's own, for an
        // identity shortcut), so nothing is ever copied.
        var x = 0
        for block in blocks {
            let free = (0 ..< 4).filter { $0 != x }
            var residual = x
            if let shortcut = block.shortcut {
                residual = free[2]
                _ = run(shortcut, buffers[x], shape, into: buffers[residual], columns: columns, relu: false)
            }
            let reduced = run(block.reduce, buffers[x], shape, into: buffers[free[0]], columns: columns, relu: true)
            block.spatial.run(buffers[free[0]], reduced, into: buffers[free[1]], transformed: columns, products: workspace.products)
            shape = run(block.expand, buffers[free[1]], reduced, into: buffers[residual], columns: columns, accumulate: true, relu: true)
            x = residual
        }
        Kernels.globalAveragePool(buffers[x], shape, into: features)
    }

    /// Caffe preprocessing of RGB bytes (`pixels x 3`) into the network's input floats: BGR order,
    /// ImageNet means subtracted, no scaling.
    public static func preprocess(rgb: UnsafeBufferPointer<UInt8>, into input: UnsafeMutablePointer<Float>) {
        for pixel in 0 ..< rgb.count / 3 {
            input[pixel * 3] = Float(rgb[pixel * 3 + 2]) - bgrMeans[0]
            input[pixel * 3 + 1] = Float(rgb[pixel * 3 + 1]) - bgrMeans[1]
            input[pixel * 3 + 2] = Float(rgb[pixel * 3]) - bgrMeans[2]
        }
    }

    /// Convenience for whole arrays: RGB bytes of `count` images in, `count x 2048` features out.
    public func features(rgb: [UInt8], count: Int, size: Int, workspace: Workspace? = nil) -> [Float] {
        let workspace = workspace ?? makeWorkspace(count: count, size: size)
        rgb.withUnsafeBufferPointer { ResNet50.preprocess(rgb: $0, into: workspace.activations[0]) }
        var out = [Float](repeating: 0, count: count * Self.featureCount)
        out.withUnsafeMutableBufferPointer { forward(workspace, count: count, into: $0.baseAddress!) }
        return out
    }
}
