// mm/memblock.c: the boot-time allocator: memory regions, reservations, top-down allocation.

/// One reserved byte range with the name of its owner (memblock=debug style).
public struct MemblockReservation: Sendable, Hashable {
    public var start: UInt64
    public var end: UInt64
    public var name: String
    public var size: UInt64 { end - start }
}

/// memblock: physical memory regions and boot reservations, in bytes. After boot it
/// stays as the record of what the firmware reported and what the kernel kept.
public struct Memblock: Sendable {
    /// memblock.memory: usable RAM as page-aligned half-open byte ranges, ascending.
    public private(set) var memory: [(start: UInt64, end: UInt64)] = []
    /// memblock.reserved, ascending by start; ranges never overlap.
    public private(set) var reserved: [MemblockReservation] = []
    /// memblock.current_limit: allocations stay below it.
    public var currentLimit: UInt64 = .max

    public init() {}

    /// memblock_add()
    public mutating func add(_ start: UInt64, _ end: UInt64) {
        let s = (start + Page.size - 1) & ~Page.offsetMask, e = end & ~Page.offsetMask
        guard e > s else { return }
        memory.append((s, e))
        memory.sort { $0.start < $1.start }
    }

    /// memblock_reserve()
    public mutating func reserve(_ start: UInt64, _ end: UInt64, _ name: String) {
        guard end > start else { return }
        reserved.append(MemblockReservation(start: start, end: end, name: name))
        reserved.sort { $0.start < $1.start }
    }

    /// Byte ranges of memory not reserved, ascending (for_each_free_mem_range()).
    public func freeRanges() -> [(start: UInt64, end: UInt64)] {
        var out: [(UInt64, UInt64)] = []
        for m in memory {
            var cur = m.start
            for r in reserved where r.end > cur && r.start < m.end {
                if r.start > cur { out.append((cur, r.start)) }
                cur = max(cur, r.end)
            }
            if cur < m.end { out.append((cur, m.end)) }
        }
        return out
    }

    /// memblock_alloc_range(): top-down, `align` aligned, below `limit` and at or above `floor`.
    public mutating func alloc(_ size: UInt64, align: UInt64, name: String, floor: UInt64 = 0, limit: UInt64? = nil) -> UInt64? {
        let top = min(limit ?? currentLimit, currentLimit)
        for r in freeRanges().reversed() {
            let end = min(r.end, top)
            guard end > r.start, end - r.start >= size else { continue }
            let base = (end - size) & ~(align - 1)
            if base >= r.start && base >= floor {
                reserve(base, base + size, name)
                return base
            }
        }
        return nil
    }

    /// True when `pfn` is RAM (memblock_is_memory()).
    public func isMemory(_ pfn: UInt64) -> Bool {
        let a = pfn << Page.shift
        return memory.contains { a >= $0.start && a < $0.end }
    }

    /// The reservation covering any byte of page `pfn`, if any.
    public func reservation(of pfn: UInt64) -> MemblockReservation? {
        let a = pfn << Page.shift, b = a + Page.size
        return reserved.first { $0.start < b && $0.end > a }
    }

    /// Total RAM pages (present pages).
    public var memoryPages: UInt64 { memory.reduce(0) { $0 + ($1.end - $1.start) >> Page.shift } }

    /// Pages fully free of reservations (what memblock_free_all() hands to the buddy allocator).
    public var freePages: UInt64 {
        freeRanges().reduce(0) { acc, r in
            let s = (r.start + Page.size - 1) >> Page.shift, e = r.end >> Page.shift
            return acc + (e > s ? e - s : 0)
        }
    }
}
