import CKernels
import Dispatch
import Foundation

/// The cores this process may use, read once: its CPU affinity where the system says (so `taskset`
/// or a Slurm allocation of fewer CPUs than the machine has is obeyed), else every online core.
/// (`ProcessInfo.activeProcessorCount` counts the machine's, and costs about 16 µs a call; the
/// backbone asks for every layer of every batch.)
public let coreCount: Int = {
    let allowed = Int(st_usable_cores())
    return allowed > 0 ? min(allowed, ProcessInfo.processInfo.activeProcessorCount) : ProcessInfo.processInfo.activeProcessorCount
}()

/// Runs `body(0..<iterations)` across the machine's cores and returns when all are done. The body
/// may capture pointers: callers promise that iterations touch disjoint memory.
public func parallelFor(_ iterations: Int, _ body: (Int) -> Void) {
    if iterations == 1 {
        body(0)
        return
    }
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: iterations) { shared.value($0) }
    }
}

/// Wraps a value whose concurrent use is safe by construction (disjoint slots, read-only bytes).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public var value: T
    public init(_ value: T) { self.value = value }
}
