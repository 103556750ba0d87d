// A fixed-size array in manually managed memory: no copy-on-write, no ARC on the hot path.

/// Fixed-size storage whose elements are mutated in place through addressors. The owner
/// allocates it once and calls `deallocate()` in its deinit; copies alias the same storage.
public struct FixedArray<Element>: RandomAccessCollection {
    public let base: UnsafeMutablePointer<Element>
    public let count: Int

    public init(repeating value: Element, count: Int) {
        self.count = count
        base = .allocate(capacity: Swift.max(count, 1))
        base.initialize(repeating: value, count: count)
    }

    public init(_ values: [Element]) {
        count = values.count
        base = .allocate(capacity: Swift.max(count, 1))
        for (i, v) in values.enumerated() { (base + i).initialize(to: v) }
    }

    public func deallocate() {
        base.deinitialize(count: count)
        base.deallocate()
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    @inline(__always) public subscript(i: Int) -> Element {
        unsafeAddress { UnsafePointer(base + i) }
        nonmutating unsafeMutableAddress { base + i }
    }
}
