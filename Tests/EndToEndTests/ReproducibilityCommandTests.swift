import Foundation
import Testing

/// "Same seed, same head": through the real executables, a head and a fine-tuned conv5 trained on
/// the same features with the same seed are the same bytes whatever OpenBLAS kernel the process
/// would get (OPENBLAS_CORETYPE), whichever of our instruction sets the products run on
/// (SIGNTRANSFER_GEMM), and on one core or all of them. Under OpenBLAS the head changed with its
/// kernel, and under its Haswell kernel from one run to the next.
@Suite struct SameSeedSameHead {
    /// The environments a user's machine may give the process; SkylakeX only where the CPU runs it.
    static let environments: [[String: String]] = {
        var list: [[String: String]] = [[:]]
        for core in ["Haswell", "Zen", "Sandybridge"] + (cpuHasAVX512 ? ["SkylakeX"] : []) { list.append(["OPENBLAS_CORETYPE": core]) }
        if cpuHasAVX2 { list.append(["SIGNTRANSFER_GEMM": "avx2", "OPENBLAS_CORETYPE": "Haswell"]) }
        list.append(["SIGNTRANSFER_GEMM": "blas"])
        list.append(["OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Zen"])
        return list
    }()

    @Test func oneSeedOneHeadEverywhere() throws {
        let folder = try preprocessedSample(size: 32)
        defer { try? FileManager.default.removeItem(at: folder) }
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        let extract = try runTool("extract", ["--input", path("preprocessed.sqlite"), "--output", path("features.sqlite"), "--weights", "random:4",
                                              "--keep", "conv4_block6_out"])
        #expect(extract.status == 0, "\(extract.stderr)")
        var heads: [String: Set<String>] = ["head": [], "fine-tuned": []]
        var runs: [(environment: [String: String], cores: Int?)] = Self.environments.map { ($0, nil) }
        // One core: the products are shared out among fewer threads (and not at all).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") { runs.append(([:], 1)) }
        for (index, run) in runs.enumerated() {
            for (kind, extra) in [("head", ["--hidden", "32", "--epochs", "3"]),
                                  ("fine-tuned", ["--hidden", "32", "--epochs", "2", "--fine-tune", "conv5", "--fine-tune-epochs", "2"])] {
                let head = path("\(kind)-\(index).sqlite")
                let arguments = ["--input", path("features.sqlite"), "--output", head, "--seed", "7"] + extra
                let result = try run.cores == nil ? runTool("train", arguments, environment: run.environment)
                                                  : runCommand("/usr/bin/taskset", ["-c", "0", productsFolder.appendingPathComponent("train").path] + arguments)
                #expect(result.status == 0, "\(kind), \(run): \(result.stderr)")
                let content = try sqliteValue(URL(fileURLWithPath: head), "SELECT value FROM meta WHERE key = 'content_sha256'") ?? "none"
                heads[kind]!.insert(content)
            }
        }
        #expect(heads["head"]!.count == 1, "heads differ: \(heads["head"]!)")
        #expect(heads["fine-tuned"]!.count == 1, "fine-tuned heads differ: \(heads["fine-tuned"]!)")
    }
}

/// Whether this CPU has AVX2 and FMA (the flags Linux lists in /proc/cpuinfo).
let cpuHasAVX2: Bool = {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    return info.contains(" avx2") && info.contains(" fma")
}()
