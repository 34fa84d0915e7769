import Foundation
import Numerical

/// One convolution exactly as the network runs it, BatchNorm already folded into `kernel` and `bias`:
/// a single GEMM for a 1x1 stride-1 kernel, im2col and a GEMM for larger or strided ones, or Winograd
/// F(m x m, 3x3) for a 3x3 stride-1 pad-1 one when `winogradTile` is 2 or 4; on either GEMM kernel.
/// The tests check every path against a plain loop, as llm.c checks its kernels.
public struct ConvolutionLayer: Sendable {
    public let size: Int, stride: Int, pad: Int, input: Int, output: Int
    let conv: ResNet50.Conv?
    let winograd: WinogradConv?

    /// `kernel` is HWIO, `[size][size][input][output]` as Keras stores it.
    public init(kernel: [Float], bias: [Float], size: Int, stride: Int, pad: Int, input: Int, output: Int,
                gemm: GEMMKernel = .preferred, winogradTile: Int? = nil) {
        precondition(kernel.count == size * size * input * output && bias.count == output)
        (self.size, self.stride, self.pad, self.input, self.output) = (size, stride, pad, input, output)
        if let m = winogradTile {
            precondition(size == 3 && stride == 1 && pad == 1, "Winograd here is for 3x3, stride 1, pad 1")
            winograd = WinogradConv(weights: kernel, bias: bias, input: input, output: output, m: m, kernel: gemm)
            conv = nil
        } else {
            conv = ResNet50.Conv(size: size, stride: stride, pad: pad, input: input, output: output,
                                 weights: WeightMatrix(kernel[...], k: size * size * input, n: output, kernel: gemm), bias: bias)
            winograd = nil
        }
    }

    public func outputShape(_ shape: Shape) -> Shape { shape.convolved(size: size, stride: stride, pad: pad, channels: output) }

    /// `relu?(conv(x) + bias [+ residual])` for `x[shape]` (NHWC). The Winograd path always applies
    /// the ReLU and takes no residual, as in the network.
    public func apply(_ x: [Float], _ shape: Shape, residual: [Float]? = nil, relu: Bool = true) -> [Float] {
        precondition(x.count == shape.elements && shape.channels == input)
        let out = outputShape(shape)
        var result = [Float](repeating: 0, count: out.elements)
        var input = x
        withSingleThreadedBLAS {
            input.withUnsafeMutableBufferPointer { x in
                result.withUnsafeMutableBufferPointer { y in
                    if let winograd {
                        precondition(relu && residual == nil, "the Winograd path applies the ReLU and takes no residual")
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * winograd.scratch(shape))
                        defer { scratch.deallocate() }
                        winograd.run(x.baseAddress!, shape, into: y.baseAddress!, transformed: scratch, products: scratch + winograd.scratch(shape))
                    } else if let conv {
                        let (parts, chunk) = ResNet50.columnPlan(rows: out.rows, k: size * size * self.input)
                        let columns = UnsafeMutablePointer<Float>.allocate(capacity: max(1, parts * chunk * size * size * self.input))
                        defer { columns.deallocate() }
                        if let residual {
                            residual.withUnsafeBufferPointer { r in
                                _ = ResNet50.run(conv, x.baseAddress!, shape, into: y.baseAddress!, columns: columns, residual: r.baseAddress!, relu: relu)
                            }
                        } else {
                            _ = ResNet50.run(conv, x.baseAddress!, shape, into: y.baseAddress!, columns: columns, relu: relu)
                        }
                    }
                }
            }
        }
        return result
    }
}
