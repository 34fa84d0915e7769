import Backbone
import Foundation
import Head
import Numerical

/// ResNet50's top stage, conv5 (three bottleneck blocks, 1024 channels in at side h, 2048 out at
/// side (h-1)/2+1), trainable: forward keeping what backward needs, backward to every convolution's
/// raw kernel and bias, then the global average pool. BatchNorm stays frozen (see `TrainableConv`).
///
/// It reads the maps of `conv4_block6_out` that extract keeps, so the 40 frozen blocks below run
/// once per image, not once per epoch.
public struct TopStage: Sendable {
    /// The stage `train --fine-tune` names, the layer it reads and the one it ends with.
    public static let name = "conv5", inputLayer = "conv4_block6_out", outputLayer = "conv5_block3_out"
    /// Its channel counts in ResNet50 (1024 in, 512 inside the blocks, 2048 out), from the plan.
    public static let inputChannels = blocks[0].reduce.input, width = blocks[0].reduce.output, outputChannels = blocks[0].expand.output

    /// The channel counts: ResNet50's, or smaller for a gradient check on a tiny case.
    public struct Channels: Sendable, Equatable {
        public var input: Int, width: Int, output: Int
        public init(input: Int, width: Int, output: Int) {
            self.input = input
            self.width = width
            self.output = output
        }
        public static let resnet50 = Channels(input: TopStage.inputChannels, width: TopStage.width, output: TopStage.outputChannels)
    }

    public let channels: Channels

    /// conv5's blocks as the network has them (`ResNet50.plan`): everything after the input layer.
    static let blocks = Array(ResNet50.plan.blocks[(ResNet50.blockNames.firstIndex(of: inputLayer)! + 1)...])

    /// In Keras's order within each block: block 1's projection `_0`, then `_1`, `_2`, `_3`;
    /// blocks 2 and 3 have no projection.
    public var convs: [TrainableConv]

    /// What every convolution's products multiply (float unless fine-tuning asks for bf16).
    public var precision: FineTunePrecision {
        get { convs.first?.precision ?? .fp32 }
        set { for index in convs.indices { convs[index].precision = newValue } }
    }
    /// The Keras names of its convolutions, in `convs` order.
    public static let convolutionNames = blocks.flatMap(\.convolutions).map { $0.name + "_conv" }
    /// Indices into `convs` of each block's convolutions.
    static let layout: [(shortcut: Int?, reduce: Int, spatial: Int, expand: Int)] = [(0, 1, 2, 3), (nil, 4, 5, 6), (nil, 7, 8, 9)]

    /// conv5's weights from a backbone's weights (raw, with their BatchNorms); with other `channels`,
    /// the same structure narrower (each of ResNet50's counts mapped to the given one).
    public init(weights: any BackboneWeights, channels: Channels = .resnet50) throws {
        self.channels = channels
        let counts = [Self.inputChannels: channels.input, Self.width: channels.width, Self.outputChannels: channels.output]
        convs = try Self.blocks.flatMap(\.convolutions).map { spec in
            let narrowed = ConvolutionSpec(name: spec.name, size: spec.size, stride: spec.stride, pad: spec.pad,
                                           input: counts[spec.input]!, output: counts[spec.output]!)
            let (conv, norm) = try narrowed.read(weights)
            return TrainableConv(narrowed, conv: conv, norm: norm)
        }
        precondition(convs.map(\.name) == Self.convolutionNames && Self.layout.count == Self.blocks.count)
    }

    /// The side of conv5's output for input maps of side `side`.
    public static func outputSide(_ side: Int) -> Int { (side - 1) / 2 + 1 }

    /// Every convolution's raw kernel and bias gradients, in `convs` order.
    public struct Gradients: Sendable {
        public var weights: [[Float]]
        public var bias: [[Float]]
    }

    /// Buffers for up to `capacity` images whose input maps have side `side`, reused across steps:
    /// each block's activations (kept for backward) and the gradients flowing back.
    public final class Workspace {
        public let capacity: Int, side: Int, outSide: Int
        /// The input maps, `[capacity, side, side, channels.input]`: fill before `forward`.
        public let input: UnsafeMutablePointer<Float>
        /// The pooled output `[capacity x channels.output]` after `forward`.
        public let pooled: UnsafeMutablePointer<Float>
        let strided: UnsafeMutablePointer<Float>, projection: UnsafeMutablePointer<Float>
        let reduced: [UnsafeMutablePointer<Float>], spatial: [UnsafeMutablePointer<Float>]
        let outputs: [UnsafeMutablePointer<Float>]
        let delta: UnsafeMutablePointer<Float>, deltaInput: UnsafeMutablePointer<Float>
        let deltaSpatial: UnsafeMutablePointer<Float>, deltaReduced: UnsafeMutablePointer<Float>
        /// The 3x3s' gathered rows and their products (`TapPlan`).
        let gathered: UnsafeMutablePointer<Float>, product: UnsafeMutablePointer<Float>
        /// The taps' pixel pairs for the last forward's image count (made again only when it changes:
        /// the last batch of an epoch).
        var plan: TapPlan?
        /// The folded weights' gradients after `backward` (Adam scales them to the raw ones as it
        /// goes). Two properties, not one struct: backward writes a kernel's and a bias's at once.
        var weightGradients: [[Float]], biasGradients: [[Float]]
        /// Each convolution's BatchNorm scale per output channel: raw gradient = scale * folded one.
        let scales: [[Float]]
        /// Every convolution's raw kernel and bias gradients after `backward`, as Keras computes them.
        public var gradients: Gradients {
            var weights = weightGradients, bias = biasGradients
            for (index, scale) in scales.enumerated() {
                for i in weights[index].indices { weights[index][i] *= scale[i % scale.count] }
                for o in bias[index].indices { bias[index][o] *= scale[o] }
            }
            return Gradients(weights: weights, bias: bias)
        }
        var all: [UnsafeMutablePointer<Float>] = []

        init(stage: TopStage, capacity: Int, side: Int) {
            scales = stage.convs.map { $0.norm.scale.map(Float.init) }
            self.capacity = capacity
            self.side = side
            outSide = TopStage.outputSide(side)
            let pixels = capacity * outSide * outSide
            let (c, f) = (stage.channels.output, stage.channels.width)
            var all: [UnsafeMutablePointer<Float>] = []
            func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
                let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
                pointer.initialize(repeating: 0, count: max(count, 1))
                all.append(pointer)
                return pointer
            }
            input = buffer(capacity * side * side * stage.channels.input)
            pooled = buffer(capacity * c)
            strided = buffer(pixels * stage.channels.input)
            projection = buffer(pixels * c)
            reduced = (0 ..< 3).map { _ in buffer(pixels * f) }
            spatial = (0 ..< 3).map { _ in buffer(pixels * f) }
            outputs = (0 ..< 3).map { _ in buffer(pixels * c) }
            delta = buffer(pixels * c)
            deltaInput = buffer(pixels * c)
            deltaSpatial = buffer(pixels * f)
            gathered = buffer(pixels * f)
            product = buffer(pixels * f)
            deltaReduced = buffer(pixels * f)
            weightGradients = stage.convs.map { [Float](repeating: 0, count: $0.kernel.count) }
            biasGradients = stage.convs.map { [Float](repeating: 0, count: $0.bias.count) }
            self.all = all
        }

        deinit { all.forEach { $0.deallocate() } }
    }

    public func makeWorkspace(capacity: Int, side: Int) -> Workspace { Workspace(stage: self, capacity: capacity, side: side) }

    static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count where x[i] < 0 { x[i] = 0 }
    }

    /// conv5 on the `count` maps in `workspace.input`, keeping every activation; the pooled output
    /// lands in `workspace.pooled[count x 2048]`.
    /// `input` (same layout) instead of `workspace.input`: a batch loaded while the last one trained.
    public func forward(_ workspace: Workspace, count: Int, input: UnsafePointer<Float>? = nil) {
        precondition(count <= workspace.capacity)
        withSingleThreadedBLAS { forwardAlone(workspace, count: count, input: input ?? UnsafePointer(workspace.input)) }
    }

    func forwardAlone(_ ws: Workspace, count n: Int, input maps: UnsafePointer<Float>) {
        let (side, out) = (ws.side, ws.outSide)
        let m = n * out * out
        let (c, f) = (channels.output, channels.width)
        // Block 1 reads the stride-2 pixels of the input (both its 1x1 convolutions have stride 2).
        //   strided    [n, out, out, 1024]   the input's even pixels
        //   projection [n, out, out, 2048]   1x1 + bias (no ReLU)                 the shortcut
        Spatial.subsample(maps, n: n, h: side, w: side, c: channels.input, stride: 2, into: ws.strided)
        if ws.plan?.count != n { ws.plan = TapPlan(count: n, side: out) }
        let plan = ws.plan!
        for (block, layout) in Self.layout.enumerated() {
            // Each block, on m = n*out*out pixels:
            //   input   [m x cin]        strided (block 1) or the previous block's output
            //   reduced [m x 512]        1x1 + bias + ReLU
            //   spatial [m x 512]        3x3 (padding 1, tap by tap) + bias + ReLU
            //   output  [m x 2048]       1x1 + bias + shortcut + ReLU
            let input = block == 0 ? ws.strided : ws.outputs[block - 1]
            let shortcut = block == 0 ? ws.projection : ws.outputs[block - 1]
            if let index = layout.shortcut { convs[index].affine(ws.strided, rows: m, into: ws.projection) }
            convs[layout.reduce].affine(input, rows: m, into: ws.reduced[block])
            Self.relu(ws.reduced[block], count: m * f)
            convs[layout.spatial].spatialForward(ws.reduced[block], plan: plan, rows: m, into: ws.spatial[block], gathered: ws.gathered, product: ws.product)
            Self.relu(ws.spatial[block], count: m * f)
            let output = ws.outputs[block]
            convs[layout.expand].affine(ws.spatial[block], rows: m, into: output)
            for i in 0 ..< m * c { output[i] = max(output[i] + shortcut[i], 0) }
        }
        // Global average: [n, out, out, 2048] -> [n, 2048].
        let last = ws.outputs[2], pixels = out * out, scale = 1 / Float(pixels)
        for image in 0 ..< n {
            let destination = ws.pooled + image * c
            destination.update(repeating: 0, count: c)
            for p in 0 ..< pixels {
                let source = last + (image * pixels + p) * c
                for channel in 0 ..< c { destination[channel] += source[channel] }
            }
            for channel in 0 ..< c { destination[channel] *= scale }
        }
    }

    /// From the loss's gradient at the pooled output (`pooledGradient[count x 2048]`), after
    /// `forward` on the same workspace: every convolution's raw gradients into `workspace.gradients`.
    /// The input maps are constant: no gradient is taken for them.
    public func backward(_ workspace: Workspace, count: Int, pooledGradient: UnsafePointer<Float>) {
        withSingleThreadedBLAS { backwardAlone(workspace, count: count, pooledGradient: pooledGradient) }
    }

    func backwardAlone(_ ws: Workspace, count n: Int, pooledGradient: UnsafePointer<Float>) {
        let out = ws.outSide, pixels = out * out
        let m = n * pixels
        let (c, f) = (channels.output, channels.width)
        // Through the average: every pixel of an image gets its pooled gradient / pixels.
        let scale = 1 / Float(pixels)
        for image in 0 ..< n {
            for p in 0 ..< pixels {
                let destination = ws.delta + (image * pixels + p) * c
                for channel in 0 ..< c { destination[channel] = pooledGradient[image * c + channel] * scale }
            }
        }
        guard let plan = ws.plan, plan.count == n else {
            preconditionFailure("backward without a forward of the same images")
        }
        var delta = ws.delta, deltaInput = ws.deltaInput
        for block in stride(from: 2, through: 0, by: -1) {
            let layout = Self.layout[block]
            // delta: [m x 2048] at the block's output; through its ReLU to the sum of expand and shortcut.
            let output = ws.outputs[block]
            for i in 0 ..< m * c where output[i] <= 0 { delta[i] = 0 }
            convs[layout.expand].backward(delta, input: ws.spatial[block], rows: m, foldedWeights: &ws.weightGradients[layout.expand],
                                          foldedBias: &ws.biasGradients[layout.expand], inputGradient: ws.deltaSpatial)
            for i in 0 ..< m * f where ws.spatial[block][i] <= 0 { ws.deltaSpatial[i] = 0 }
            convs[layout.spatial].spatialBackward(ws.deltaSpatial, input: ws.reduced[block], plan: plan, rows: m,
                                                  foldedWeights: &ws.weightGradients[layout.spatial], foldedBias: &ws.biasGradients[layout.spatial],
                                                  inputGradient: ws.deltaReduced, gathered: ws.gathered, product: ws.product)
            for i in 0 ..< m * f where ws.reduced[block][i] <= 0 { ws.deltaReduced[i] = 0 }
            if block == 0 {
                // Block 1's input is the kept maps: its convolutions need their weights' gradients only.
                convs[layout.reduce].backward(ws.deltaReduced, input: ws.strided, rows: m, foldedWeights: &ws.weightGradients[layout.reduce],
                                              foldedBias: &ws.biasGradients[layout.reduce], inputGradient: nil)
                let projection = layout.shortcut!
                convs[projection].backward(delta, input: ws.strided, rows: m, foldedWeights: &ws.weightGradients[projection],
                                           foldedBias: &ws.biasGradients[projection], inputGradient: nil)
            } else {
                // The block's input feeds reduce and, unchanged, the shortcut: both gradients add up.
                convs[layout.reduce].backward(ws.deltaReduced, input: ws.outputs[block - 1], rows: m, foldedWeights: &ws.weightGradients[layout.reduce],
                                              foldedBias: &ws.biasGradients[layout.reduce], inputGradient: deltaInput)
                for i in 0 ..< m * c { deltaInput[i] += delta[i] }
                swap(&delta, &deltaInput)
            }
        }
    }

    /// The raw weights in the form `BackboneWeights` gives them, for a backbone that runs with them
    /// (predict, evaluation) and for storage.
    public var weights: [String: ConvWeights] {
        Dictionary(uniqueKeysWithValues: convs.map { ($0.name, ConvWeights(kernel: $0.kernel, bias: $0.bias)) })
    }

    /// After the raw parameters changed: the folded forms every convolution runs with.
    public mutating func refold() {
        for index in convs.indices { convs[index].refold() }
    }

    /// Adam's moving averages for every convolution.
    public struct Moments {
        var convs: [TrainableConv.Moments]
        public init(_ stage: TopStage) { convs = stage.convs.map(TrainableConv.Moments.init) }
    }

    /// One Adam step on every convolution's raw kernel and bias from `workspace`'s gradients (after
    /// `backward`), with `adam`'s step size and constants; the folded weights follow in the same pass.
    public mutating func adamStep(_ workspace: Workspace, adam: inout Adam, moments: inout Moments) {
        let alpha = adam.beginStep()
        for index in convs.indices {
            convs[index].adam(workspace.weightGradients[index], workspace.biasGradients[index], moments: &moments.convs[index], alpha: alpha,
                              beta1: adam.beta1, beta2: adam.beta2, epsilon: adam.epsilon)
        }
    }
}
