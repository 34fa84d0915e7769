import CKernels
import Foundation
import Numerical

/// A 3x3, stride-1, pad-1 convolution by Winograd's F(m x m, 3x3), m = 2 or 4: each m x m block of
/// outputs comes from an (m+2) x (m+2) input tile, with (m+2)² multiplications per channel pair
/// instead of 9m² (F(2x2): 16 for 36, F(4x4): 36 for 144). Per layer: the input tiles are transformed
/// (V = Bᵀ d B) into (m+2)² matrices `[tiles x in]`, as many GEMMs multiply them by the transformed
/// filters (U = G g Gᵀ, `[in x out]`, made once at load), and the output transform (Y = Aᵀ M A) adds
/// the bias and applies ReLU on the way out. The transforms are in Sources/CKernels/winograd.c.
struct WinogradConv: Sendable {
    let input: Int, output: Int
    /// The output block's side, 2 or 4.
    let m: Int
    /// (m+2)² matrices `[input x output]`, one per position of the transformed tile.
    let filters: [WeightMatrix]
    let bias: [Float]
    let kernel: GEMMKernel

    /// The block side for an output of `side x side`: F(4x4) needs 2.25 times fewer multiplications
    /// than F(2x2) per output, but its 6x6 tile over a 2x2 or 1x1 output is mostly padding.
    static func blockSide(forOutputSide side: Int) -> Int { side >= 4 ? 4 : 2 }

    /// From a folded 3x3 convolution whose `weights` are `[3*3*input x output]` in (ky, kx, in) order.
    init(weights: [Float], bias: [Float], input: Int, output: Int, m: Int, kernel: GEMMKernel) {
        precondition(weights.count == 9 * input * output && (m == 2 || m == 4))
        self.input = input
        self.output = output
        self.m = m
        self.bias = bias
        self.kernel = kernel
        let plane = input * output
        var u = [Float](repeating: 0, count: plane)
        filters = weights.withUnsafeBufferPointer { w in
            (0 ..< (m + 2) * (m + 2)).map { xi in
                u.withUnsafeMutableBufferPointer { st_winograd_filter(kernel.isa, Int32(m), Int32(xi), w.baseAddress!, Int32(input), Int32(output), $0.baseAddress!) }
                return WeightMatrix(u[...], k: input, n: output, kernel: kernel)
            }
        }
    }

    /// Tiles of a `shape` input: one per m x m block of the same-size output.
    func tiles(_ shape: Shape) -> Int { shape.count * ((shape.height + m - 1) / m) * ((shape.width + m - 1) / m) }

    /// How the tiles are shared out: one range per core, each done in chunks whose transformed
    /// tiles and products (about 2 MB each) stay in cache between the input transform, the GEMMs and
    /// the output transform. Done for the whole layer at once, they went through memory: at 224 and
    /// batch 32 the first stage's were 103 MB each.
    func plan(_ shape: Shape) -> (parts: Int, chunk: Int) {
        let tiles = tiles(shape)
        let parts = max(1, min(coreCount, tiles / 8))
        let perPart = (tiles + parts - 1) / parts
        return (parts, min(perPart, max(8, (1 << 19) / ((m + 2) * (m + 2) * max(input, output)))))
    }

    /// Floats each of the two scratch buffers needs for `shape`: the transformed tiles or products,
    /// plus a zero row and a junk row per core.
    func scratch(_ shape: Shape) -> Int {
        let (parts, chunk) = plan(shape)
        return parts * ((m + 2) * (m + 2) * chunk + 1) * max(input, output)
    }

    /// `out = relu(conv(x) + bias)`, with `transformed` and `products` as scratch (`scratch(shape)` each).
    func run(_ x: UnsafePointer<Float>, _ shape: Shape, into out: UnsafeMutablePointer<Float>,
             transformed: UnsafeMutablePointer<Float>, products: UnsafeMutablePointer<Float>) {
        let tiles = tiles(shape)
        let (parts, chunk) = plan(shape)
        let positions = (m + 2) * (m + 2), width = max(input, output)
        let share = (positions * chunk + 1) * width
        let (m, height, imageWidth) = (Int32(m), Int32(shape.height), Int32(shape.width))
        let isa = kernel.isa
        bias.withUnsafeBufferPointer { bias in
            parallelFor(parts) { part in
                let v = transformed + part * share, p = products + part * share
                // The last row of each share: zeros (the padding) in `v`'s, junk (outputs past the edge) in `p`'s.
                let zero = v + positions * chunk * width, junk = p + positions * chunk * width
                zero.update(repeating: 0, count: input)
                var start = tiles * part / parts
                let end = tiles * (part + 1) / parts
                while start < end {
                    let count = min(chunk, end - start)
                    st_winograd_input(isa, m, x, height, imageWidth, Int32(input), Int32(start), Int32(count), zero, v)
                    for xi in 0 ..< positions {
                        filters[xi].multiplyOneThread(m: count, a: v + xi * count * input, into: p + xi * count * output)
                    }
                    st_winograd_output(isa, m, p, height, imageWidth, Int32(output), Int32(start), Int32(count), bias.baseAddress!, junk, out)
                    start += count
                }
            }
        }
    }
}
