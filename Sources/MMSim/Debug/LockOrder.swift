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
/// Costs a few array operations per acquisition. Like CONFIG_PROVE_LOCKING it is a debug
/// feature: on in debug builds (so in every test) and with `mmsim run --check`, off in
/// release runs, where acquire and release return at once.
public final class LockOrderRecorder {
    /// Recording on (debug builds) or off.
    public var enabled = _isDebugAssertConfiguration()
    /// Deepest nesting kept (the model never holds more than a handful).
    static let depth = 16
    static let classes = KernelLock.allCases.count
    /// The held stack, flat, so that the fault path allocates nothing.
    private let stack = UnsafeMutablePointer<UInt8>.allocate(capacity: LockOrderRecorder.depth)
    private var top = 0
    /// nested[outer * classes + inner]: how often `inner` was taken inside `outer`.
    private let nestedCounts = UnsafeMutablePointer<Int>.allocate(capacity: LockOrderRecorder.classes * LockOrderRecorder.classes)
    private let acquired = UnsafeMutablePointer<Int>.allocate(capacity: LockOrderRecorder.classes)
    public private(set) var violations: [LockOrderViolation] = []

    init() {
        nestedCounts.initialize(repeating: 0, count: Self.classes * Self.classes)
        acquired.initialize(repeating: 0, count: Self.classes)
    }

    deinit {
        stack.deallocate()
        nestedCounts.deallocate()
        acquired.deallocate()
    }

    /// The locks held now, outermost first.
    public var held: [KernelLock] { (0..<top).map { KernelLock(rawValue: Int(stack[$0]))! } }

    /// Acquisitions per lock.
    public func acquisitions(_ l: KernelLock) -> Int { acquired[l.rawValue] }

    /// How often `inner` was taken while `outer` was held.
    public func nested(_ outer: KernelLock, _ inner: KernelLock) -> Int { nestedCounts[outer.rawValue * Self.classes + inner.rawValue] }

    /// down_read()/down_write()/spin_lock(): note the nesting, flag an inversion.
    @inline(__always) public func acquire(_ l: KernelLock) {
        guard enabled else { return }
        let r = l.rawValue
        acquired[r] &+= 1
        var i = 0
        while i < top {
            let h = Int(stack[i])
            if h > r { inversion(h, r) }
            if h != r { nestedCounts[h * Self.classes + r] &+= 1 }
            i += 1
        }
        if top < Self.depth {
            stack[top] = UInt8(r)
            top += 1
        }
    }

    @inline(never) private func inversion(_ held: Int, _ taken: Int) {
        if violations.count < 64 {
            violations.append(LockOrderViolation(held: KernelLock(rawValue: held)!, taken: KernelLock(rawValue: taken)!))
        }
    }

    /// up_read()/up_write()/spin_unlock(): the innermost hold of `l` goes.
    @inline(__always) public func release(_ l: KernelLock) {
        guard enabled else { return }
        var i = top - 1
        while i >= 0 {
            if Int(stack[i]) == l.rawValue {
                var j = i
                while j + 1 < top { stack[j] = stack[j + 1]; j += 1 }
                top -= 1
                return
            }
            i -= 1
        }
    }

    /// Every (outer, inner) pair seen, outermost first.
    public var observedPairs: [(outer: KernelLock, inner: KernelLock, count: Int)] {
        var out: [(KernelLock, KernelLock, Int)] = []
        for o in KernelLock.allCases {
            for i in KernelLock.allCases where nested(o, i) > 0 { out.append((o, i, nested(o, i))) }
        }
        return out
    }

    /// Forget the history (the held stack stays).
    public func reset() {
        nestedCounts.update(repeating: 0, count: Self.classes * Self.classes)
        acquired.update(repeating: 0, count: Self.classes)
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
