import Foundation
import PipelineKit

/// A 3x3, stride-1, pad-1 convolution by Winograd's F(2x2, 3x3): each 2x2 block of outputs comes
/// from a 4x4 input tile with 16 multiplications per channel pair instead of 36, so the GEMM work is
/// 2.25 times smaller. Per layer: the input tiles are transformed (V = Bᵀ d B) into 16 matrices
/// `[tiles x in]`, 16 GEMMs multiply them by the transformed filters (U = G g Gᵀ, `[in x out]`, made
/// once at load), and the output transform (Y = Aᵀ M A) adds the bias and applies ReLU on the way out.
struct WinogradConv: Sendable {
    let input: Int, output: Int
    /// 16 matrices `[input x output]`, one per position of the 4x4 transformed tile.
    let filters: [WeightMatrix]
    let bias: [Float]

    /// From a folded 3x3 convolution whose `weights` are `[3*3*input x output]` in (ky, kx, in) order.
    init(weights: [Float], bias: [Float], input: Int, output: Int, kernel: GEMMKernel) {
        precondition(weights.count == 9 * input * output && input % 8 == 0 && output % 8 == 0)
        self.input = input
        self.output = output
        self.bias = bias
        var filters = [Float](repeating: 0, count: 16 * input * output)
        // U = G g Gᵀ, G = [[1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]], in double, with no
        // allocation per channel pair: there are 1.26 million of them, and this runs at every load.
        weights.withUnsafeBufferPointer { w in
            filters.withUnsafeMutableBufferPointer { f in
                for ci in 0 ..< input {
                    for co in 0 ..< output {
                        func row(_ ky: Int) -> SIMD3<Double> {
                            let base = ky * 3 * input + ci
                            return SIMD3(Double(w[base * output + co]), Double(w[(base + input) * output + co]),
                                         Double(w[(base + 2 * input) * output + co]))
                        }
                        let g0 = row(0), g1 = row(1), g2 = row(2)
                        func store(_ r: Int, _ t: SIMD3<Double>) {
                            let u = SIMD4(t.x, (t.x + t.y + t.z) / 2, (t.x - t.y + t.z) / 2, t.z)
                            for c in 0 ..< 4 { f[((r * 4 + c) * input + ci) * output + co] = Float(u[c]) }
                        }
                        store(0, g0)
                        store(1, (g0 + g1 + g2) / 2)
                        store(2, (g0 - g1 + g2) / 2)
                        store(3, g2)
                    }
                }
            }
        }
        self.filters = (0 ..< 16).map { xi in
            WeightMatrix(filters[xi * input * output ..< (xi + 1) * input * output], k: input, n: output, kernel: kernel)
        }
    }

    /// Tiles of a `shape` input: one per 2x2 block of the same-size output.
    static func tiles(_ shape: Shape) -> (rows: Int, columns: Int, count: Int) {
        let rows = (shape.height + 1) / 2, columns = (shape.width + 1) / 2
        return (rows, columns, shape.count * rows * columns)
    }

    /// How the tiles are shared out: one range per core, each done in chunks whose transformed
    /// tiles and products (16 x chunk x channels floats each, about 2 MB) stay in cache between the
    /// input transform, the GEMMs and the output transform. Done for the whole layer at once, they
    /// went through memory: at 224 and batch 32 the first stage's were 103 MB each.
    func plan(_ shape: Shape) -> (parts: Int, chunk: Int) {
        let tiles = Self.tiles(shape).count
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, tiles / 16))
        let perPart = (tiles + parts - 1) / parts
        return (parts, min(perPart, max(16, 32768 / max(input, output))))
    }

    /// Floats each of the two scratch buffers needs for `shape`.
    func scratch(_ shape: Shape) -> Int {
        let (parts, chunk) = plan(shape)
        return parts * 16 * chunk * max(input, output)
    }

    /// `out = relu(conv(x) + bias)`, with `transformed` and `products` as scratch (`scratch(shape)` each).
    func run(_ x: UnsafePointer<Float>, _ shape: Shape, into out: UnsafeMutablePointer<Float>,
             transformed v: UnsafeMutablePointer<Float>, products m: UnsafeMutablePointer<Float>) {
        let tiles = Self.tiles(shape).count
        let (parts, chunk) = plan(shape)
        let share = 16 * chunk * max(input, output)
        parallelFor(parts) { part in
            let v = v + part * share, m = m + part * share
            var zeros = [Float](repeating: 0, count: input)
            zeros.withUnsafeMutableBufferPointer { zero in
                var start = tiles * part / parts
                let end = tiles * (part + 1) / parts
                while start < end {
                    let range = start ..< min(start + chunk, end)
                    transformInput(x, shape, range, zero: zero.baseAddress!, into: v)
                    for xi in 0 ..< 16 {
                        filters[xi].multiplyOneThread(m: range.count, a: v + xi * range.count * input, into: m + xi * range.count * output)
                    }
                    transformOutput(m, shape, range, into: out)
                    start = range.upperBound
                }
            }
        }
    }

    /// V[ξ][t x in] = (Bᵀ d B)[ξ] for the tiles t in `range` (rows counted from its start),
    /// Bᵀ = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]]. `zero` is `input` zeros, for the padding.
    private func transformInput(_ x: UnsafePointer<Float>, _ shape: Shape, _ range: Range<Int>, zero: UnsafePointer<Float>,
                                into v: UnsafeMutablePointer<Float>) {
        let (tileRows, tileColumns, _) = Self.tiles(shape)
        let (height, width, channels) = (shape.height, shape.width, input)
                var d = [UnsafePointer<Float>](repeating: zero, count: 16)
                for t in range {
                    let n = t / (tileRows * tileColumns), ty = (t / tileColumns) % tileRows, tx = t % tileColumns
                    for r in 0 ..< 4 {
                        let iy = 2 * ty - 1 + r
                        for c in 0 ..< 4 {
                            let ix = 2 * tx - 1 + c
                            d[r * 4 + c] = iy >= 0 && iy < height && ix >= 0 && ix < width
                                ? x + ((n * height + iy) * width + ix) * channels : zero
                        }
                    }
                    let base = (t - range.lowerBound) * channels, stride = range.count * channels
                    let (p0, p1, p2, p3, p4, p5, p6, p7) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7])
                    let (p8, p9, p10, p11, p12, p13, p14, p15) = (d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15])
                    // Eight channels at a time (every layer has a multiple of 64): the compiler would
                    // not vectorise a scalar loop over pointers it cannot prove apart.
                    let o = UnsafeMutableRawPointer(v + base)
                    var ci = 0
                    while ci < channels {
                        let offset = ci * 4
                        func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) }
                        func store(_ value: SIMD8<Float>, _ xi: Int) { o.storeBytes(of: value, toByteOffset: (xi * stride) * 4 + offset, as: SIMD8<Float>.self) }
                        // Rows first: b = Bᵀ d.
                        let d4 = load(p4), d5 = load(p5), d6 = load(p6), d7 = load(p7)
                        let d8 = load(p8), d9 = load(p9), d10 = load(p10), d11 = load(p11)
                        let b0 = load(p0) - d8, b1 = load(p1) - d9, b2 = load(p2) - d10, b3 = load(p3) - d11
                        let b4 = d4 + d8, b5 = d5 + d9, b6 = d6 + d10, b7 = d7 + d11
                        let b8 = d8 - d4, b9 = d9 - d5, b10 = d10 - d6, b11 = d11 - d7
                        let b12 = d4 - load(p12), b13 = d5 - load(p13), b14 = d6 - load(p14), b15 = d7 - load(p15)
                        // Then columns: V = b B.
                        store(b0 - b2, 0); store(b1 + b2, 1); store(b2 - b1, 2); store(b1 - b3, 3)
                        store(b4 - b6, 4); store(b5 + b6, 5); store(b6 - b5, 6); store(b5 - b7, 7)
                        store(b8 - b10, 8); store(b9 + b10, 9); store(b10 - b9, 10); store(b9 - b11, 11)
                        store(b12 - b14, 12); store(b13 + b14, 13); store(b14 - b13, 14); store(b13 - b15, 15)
                        ci += 8
                    }
                }
    }

    /// Y = Aᵀ M A for the tiles in `range`, Aᵀ = [[1,1,1,0], [0,1,-1,-1]], plus bias, ReLU, cropped to the image.
    private func transformOutput(_ m: UnsafePointer<Float>, _ shape: Shape, _ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let (tileRows, tileColumns, _) = Self.tiles(shape)
        let (height, width, outputs) = (shape.height, shape.width, output)
        bias.withUnsafeBufferPointer { bias in
                for t in range {
                    let n = t / (tileRows * tileColumns), ty = (t / tileColumns) % tileRows, tx = t % tileColumns
                    let base = (t - range.lowerBound) * outputs, stride = range.count * outputs
                    let y0 = 2 * ty, x0 = 2 * tx
                    let hasRight = x0 + 1 < width, hasBottom = y0 + 1 < height
                    let out00 = out + ((n * height + y0) * width + x0) * outputs
                    let out01 = out00 + outputs
                    let out10 = out + ((n * height + y0 + 1) * width + x0) * outputs
                    let out11 = out10 + outputs
                    let p = UnsafeRawPointer(m + base)
                    let biasBase = UnsafeRawPointer(bias.baseAddress!)
                    let zero = SIMD8<Float>(repeating: 0)
                    var co = 0
                    while co < outputs {
                        let offset = co * 4
                        func load(_ xi: Int) -> SIMD8<Float> { p.loadUnaligned(fromByteOffset: (xi * stride) * 4 + offset, as: SIMD8<Float>.self) }
                        func store(_ value: SIMD8<Float>, _ out: UnsafeMutablePointer<Float>) {
                            UnsafeMutableRawPointer(out).storeBytes(of: value.replacing(with: zero, where: value .< zero), toByteOffset: offset, as: SIMD8<Float>.self)
                        }
                        let m4 = load(4), m5 = load(5), m6 = load(6), m7 = load(7)
                        let m8 = load(8), m9 = load(9), m10 = load(10), m11 = load(11)
                        // Rows: a = Aᵀ M (2 x 4).
                        let a0 = load(0) + m4 + m8, a1 = load(1) + m5 + m9, a2 = load(2) + m6 + m10, a3 = load(3) + m7 + m11
                        let a4 = m4 - m8 - load(12), a5 = m5 - m9 - load(13), a6 = m6 - m10 - load(14), a7 = m7 - m11 - load(15)
                        let b = biasBase.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                        store(a0 + a1 + a2 + b, out00)
                        if hasRight { store(a1 - a2 - a3 + b, out01) }
                        if hasBottom {
                            store(a4 + a5 + a6 + b, out10)
                            if hasRight { store(a5 - a6 - a7 + b, out11) }
                        }
                        co += 8
                    }
                }
        }
    }
}

