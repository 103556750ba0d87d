// mm/rmap.c (the lock-order comment at its top), lockdep: the mm locks as data, and a
// recorder that proves each path takes them in the kernel's order.

/// The locks of the rmap's documented order, outermost first (mm/rmap.c):
/// mmap_lock -> i_mmap_rwsem -> anon_vma->rwsem (of the root) -> page table lock.
/// (The full comment lists more: mapping->invalidate_lock, folio_lock, swap_lock,
/// i_pages lock...; the model takes only these four.)
public enum KernelLock: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case mmapLock = 0
    case iMmapRwsem = 1
    case anonVMARootRwsem = 2
    case pageTableLock = 3

    public static func < (a: KernelLock, b: KernelLock) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .mmapLock: "mmap_lock"
        case .iMmapRwsem: "i_mmap_rwsem"
        case .anonVMARootRwsem: "anon_vma->rwsem"
        case .pageTableLock: "ptl"
        }
    }
}

/// One out-of-order acquisition: `taken` was acquired while `held` (a later lock in the
/// order) was held.
public struct LockOrderViolation: Sendable, Hashable, CustomStringConvertible {
    public var held: KernelLock
    public var taken: KernelLock
    public var description: String { "acquired \(taken) while holding \(held)" }
}

/// A lockdep-like recorder: the locks held now (a stack), every (outer, inner) pair ever
/// nested, and violations of the order. Recursion on the same class is allowed (the
/// kernel nests the same class only with lock subclasses, e.g. two mmap_locks at fork).
/// Costs a few array operations per acquisition; the order checks are always on.
public final class LockOrderRecorder {
    public private(set) var held: [KernelLock] = []
    /// nested[outer][inner]: how often `inner` was taken inside `outer`.
    public private(set) var nested = [[Int]](repeating: [Int](repeating: 0, count: KernelLock.allCases.count),
                                             count: KernelLock.allCases.count)
    /// Acquisitions per lock.
    public private(set) var acquisitions = [Int](repeating: 0, count: KernelLock.allCases.count)
    public private(set) var violations: [LockOrderViolation] = []

    init() {}

    /// down_read()/down_write()/spin_lock(): note the nesting, flag an inversion.
    @inline(__always) public func acquire(_ l: KernelLock) {
        acquisitions[l.rawValue] &+= 1
        for h in held {
            if h > l && violations.count < 64 { violations.append(LockOrderViolation(held: h, taken: l)) }
            if h != l { nested[h.rawValue][l.rawValue] &+= 1 }
        }
        held.append(l)
    }

    /// up_read()/up_write()/spin_unlock()
    @inline(__always) public func release(_ l: KernelLock) {
        if let i = held.lastIndex(of: l) { held.remove(at: i) }
    }

    /// Every (outer, inner) pair seen, outermost first.
    public var observedPairs: [(outer: KernelLock, inner: KernelLock, count: Int)] {
        var out: [(KernelLock, KernelLock, Int)] = []
        for o in KernelLock.allCases {
            for i in KernelLock.allCases where nested[o.rawValue][i.rawValue] > 0 {
                out.append((o, i, nested[o.rawValue][i.rawValue]))
            }
        }
        return out
    }

    /// Forget the history (the held stack stays).
    public func reset() {
        for o in 0..<nested.count { for i in 0..<nested.count { nested[o][i] = 0 } }
        for i in 0..<acquisitions.count { acquisitions[i] = 0 }
        violations.removeAll()
    }
}

extension Machine {
    /// The lock-order recorder of this machine.
    public var lockOrder: LockOrderRecorder { rmap.locks }

    /// mmap_read_lock()/mmap_write_lock() around a syscall or fault body.
    @inline(__always) func withMmapLock<T>(_ body: () -> T) -> T {
        rmap.locks.acquire(.mmapLock)
        defer { rmap.locks.release(.mmapLock) }
        return body()
    }
}
