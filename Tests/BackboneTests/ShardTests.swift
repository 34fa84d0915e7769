import Artifacts
import Backbone
import Fixtures
import Foundation
import GRDB
import Numerical
import PipelineKit
import Stages
import Testing
import WeightsFetch

@Suite struct Sharding {
    @Test func shardsMergeToTheOneProcessFile() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let whole = folder.appendingPathComponent("whole.sqlite")
        _ = try Extract.run(.init(input: preprocessed, output: whole, weights: .random(seed: 2), batch: 8, showProgress: false))
        let output = folder.appendingPathComponent("features.sqlite")
        var counted = 0
        for index in 0 ..< 3 {
            let shard = try Extract.Shard(index: index, count: 3)
            counted += try Extract.run(.init(input: preprocessed, output: output, weights: .random(seed: 2), batch: 8, showProgress: false), shard: shard).images
            #expect(FileManager.default.fileExists(atPath: shard.file(for: output).path))
        }
        #expect(counted == 199)
        #expect(!FileManager.default.fileExists(atPath: output.path))
        let merged = try Extract.merge(input: preprocessed, output: output, shards: 3)
        #expect(merged.images == 199)
        if GEMMKernel.preferred != .blas {
            // Our kernels: the merged file is the one-process file, byte for byte.
            #expect(try Data(contentsOf: output) == Data(contentsOf: whole))
        } else {
            // OpenBLAS promises no bits from one call to the next (its Haswell kernels gave other
            // last bits for the same batch in another process): the same images, splits, labels and
            // layers; the values are its own.
            let sql = "SELECT group_concat(id || split || label || layer || length(vector), ',') FROM (SELECT * FROM features ORDER BY id, layer)"
            #expect(try DatabaseQueue(path: output.path).read { try String.fetchOne($0, sql: sql) }
                    == DatabaseQueue(path: whole.path).read { try String.fetchOne($0, sql: sql) })
        }
    }

    @Test func mergeNamesMissingAndMismatchedShards() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("features.sqlite")
        for index in [0, 2] {
            _ = try Extract.run(.init(input: preprocessed, output: output, weights: .random(seed: 2), batch: 8, showProgress: false),
                                shard: try Extract.Shard(index: index, count: 3))
        }
        let missing = #expect(throws: StageError.self) { try Extract.merge(input: preprocessed, output: output, shards: 3) }
        #expect(missing?.description.contains("shard 1 of 3 is missing") == true)
        _ = try Extract.run(.init(input: preprocessed, output: output, weights: .random(seed: 9), batch: 8, showProgress: false),
                            shard: try Extract.Shard(index: 1, count: 3))
        let mixed = #expect(throws: StageError.self) { try Extract.merge(input: preprocessed, output: output, shards: 3) }
        #expect(mixed?.description.contains("weights_md5") == true)
        #expect(!FileManager.default.fileExists(atPath: output.path))
    }

    /// Shards made on our AVX-512 and AVX2 kernels merge to the one-process features (the same bits);
    /// a shard made on OpenBLAS does not merge with them, and nothing is written.
    @Test(.enabled(if: GEMMKernel.available.contains(.avx2), "needs a CPU with AVX2 (one of our kernels besides OpenBLAS)"))
    func shardsMergeOnlyWhereTheKernelsGiveTheSameBits() throws {
        let (folder, preprocessed) = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        let ours = GEMMKernel.available.filter { $0 == .avx512 || $0 == .avx2 }
        let output = folder.appendingPathComponent("features.sqlite")
        func shards(_ kernels: [GEMMKernel]) throws {
            for (index, kernel) in kernels.enumerated() {
                _ = try Extract.run(.init(input: preprocessed, output: output, weights: .random(seed: 2), batch: 8, showProgress: false, kernel: kernel),
                                    shard: try Extract.Shard(index: index, count: kernels.count))
            }
        }
        try shards([ours[0], .blas])
        let refused = #expect(throws: StageError.self) { try Extract.merge(input: preprocessed, output: output, shards: 2) }
        #expect(refused?.description.contains("shard 1 blas") == true, "\(refused?.description ?? "")")
        #expect(!FileManager.default.fileExists(atPath: output.path))
        guard ours.count == 2 else { return }
        let whole = folder.appendingPathComponent("whole.sqlite")
        _ = try Extract.run(.init(input: preprocessed, output: whole, weights: .random(seed: 2), batch: 8, showProgress: false, kernel: .avx512))
        try shards([.avx512, .avx2])
        _ = try Extract.merge(input: preprocessed, output: output, shards: 2)
        let queue = try DatabaseQueue(path: output.path), wholeQueue = try DatabaseQueue(path: whole.path)
        #expect(try queue.read { try String.fetchOne($0, sql: "SELECT value FROM backbone WHERE key = 'gemm'") } == "avx2, avx512")
        let sql = "SELECT group_concat(hex(vector), '') FROM (SELECT vector FROM features ORDER BY id, layer)"
        #expect(try queue.read { try String.fetchOne($0, sql: sql) } == wholeQueue.read { try String.fetchOne($0, sql: sql) })
    }

    @Test func shardSyntax() throws {
        #expect(try Extract.Shard("1/4") == Extract.Shard(index: 1, count: 4))
        for bad in ["4/4", "-1/4", "1", "a/b", "1/0"] {
            #expect(throws: StageError.self) { try Extract.Shard(bad) }
        }
        let shard = try Extract.Shard(index: 2, count: 8)
        #expect(shard.file(for: URL(fileURLWithPath: "/a/features.sqlite")).path == "/a/features.shard-2-of-8.sqlite")
    }
}
