// include/linux/mmzone.h: zones, their free areas per order and migrate type, watermarks and per-CPU page lists.

/// enum migratetype (include/linux/mmzone.h), without CMA.
public enum MigrateType: Int, CaseIterable, Sendable, CustomStringConvertible {
    case unmovable = 0, movable = 1, reclaimable = 2, highAtomic = 3, isolate = 4
    /// MIGRATE_PCPTYPES: the types that have per-CPU lists.
    public static let pcpTypes = 3
    public static let count = 5
    /// migratetype_names[] as /proc/pagetypeinfo prints them.
    public var description: String { ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate"][rawValue] }
    /// fallbacks[]: where __rmqueue_claim()/__rmqueue_steal() look when a type runs dry.
    var fallbacks: (MigrateType, MigrateType)? {
        switch self {
        case .unmovable: (.reclaimable, .movable)
        case .movable: (.reclaimable, .unmovable)
        case .reclaimable: (.unmovable, .movable)
        default: nil
        }
    }
}

/// enum zone_type for the architectures modelled (HIGHMEM does not exist on 64-bit).
public enum ZoneType: Int, CaseIterable, Sendable, CustomStringConvertible {
    case dma = 0, dma32 = 1, normal = 2, movable = 3
    public var description: String { ["DMA", "DMA32", "Normal", "Movable"][rawValue] }
    /// MAX_NR_ZONES: zones per node (a constant, for the hot paths).
    @inline(__always) public static var perNode: Int { 4 }
    /// The vm_event_item PGALLOC_* counter for allocations from this zone.
    @inline(__always) public var pgalloc: VMStat { Self.pgalloc(zoneIndex: rawValue) }
    /// The PGALLOC_* counter of the zone at `zoneIndex` of its node (or of the flat zone
    /// array: the type is the index modulo MAX_NR_ZONES), without building a ZoneType.
    @inline(__always) static func pgalloc(zoneIndex zi: Int) -> VMStat {
        switch zi & (perNode &- 1) {
        case 0: .pgallocDma
        case 1: .pgallocDma32
        case 2: .pgallocNormal
        default: .pgallocMovable
        }
    }
}

/// Watermark indices (enum zone_watermarks).
public enum Watermark: Int, Sendable {
    case min = 0, low = 1, high = 2, promo = 3
}

/// A list of free blocks of one order and migrate type, threaded through struct page
/// `next`/`prev` (the kernel's free_area[order].free_list[mt]). The kernel's list is one
/// list_head; here it has two halves with the never-touched blocks of boot (see
/// `VirginBlocks`) logically between them: the logical list is `front ++ virgin ++ back`.
struct FreeListHalf {
    var head: UInt32 = FrameTable.nil
    var tail: UInt32 = FrameTable.nil
    var count: Int = 0
}

/// MAX_PAGE_ORDER blocks freed at boot and never touched since, kept as sorted PFN runs
/// instead of list nodes, so a large machine's struct pages need not exist. They sit in
/// the middle of free_area[MAX_PAGE_ORDER].free_list[MIGRATE_MOVABLE], in ascending
/// address order, exactly where memblock_free_all()'s FPI_TO_TAIL frees put them.
struct VirginBlocks {
    /// Half-open PFN runs [start, end), each a multiple of MAX_ORDER_NR_PAGES, ascending.
    var runs: [(start: UInt64, end: UInt64)] = []
    /// Index of the first non-empty run.
    var first = 0
    /// Blocks left.
    var count = 0

    static let blockPages = PageOrder.max.pages

    mutating func append(start: UInt64, end: UInt64) {
        if let last = runs.last, last.end == start {
            runs[runs.count - 1].end = end
        } else {
            runs.append((start, end))
        }
        count += Int((end - start) / Self.blockPages)
    }

    /// Takes the lowest block.
    mutating func popFirst() -> UInt64? {
        while first < runs.count, runs[first].start == runs[first].end { first += 1 }
        guard first < runs.count else { return nil }
        let pfn = runs[first].start
        runs[first].start += Self.blockPages
        count -= 1
        return pfn
    }

    /// Index of the run containing `pfn`, if any.
    func runIndex(containing pfn: UInt64) -> Int? {
        var lo = first, hi = runs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if runs[mid].end <= pfn { lo = mid + 1 } else { hi = mid }
        }
        guard lo < runs.count, runs[lo].start <= pfn, pfn < runs[lo].end else { return nil }
        return lo
    }

    func contains(_ pfn: UInt64) -> Bool { runIndex(containing: pfn) != nil }

    /// Removes the block starting at `pfn` (which must be virgin), splitting its run.
    mutating func remove(block pfn: UInt64) {
        guard let i = runIndex(containing: pfn) else { preconditionFailure("block \(pfn) is not virgin") }
        let r = runs[i]
        let blockEnd = pfn + Self.blockPages
        if r.start == pfn {
            runs[i].start = blockEnd
        } else if r.end == blockEnd {
            runs[i].end = pfn
        } else {
            runs[i].end = pfn
            runs.insert((blockEnd, r.end), at: i + 1)
        }
        count -= 1
    }

    /// Number of virgin frames inside [start, end).
    func frames(in start: UInt64, _ end: UInt64) -> UInt64 {
        var n: UInt64 = 0
        for r in runs[first...] where r.end > start && r.start < end {
            n += min(r.end, end) - max(r.start, start)
        }
        return n
    }
}

/// struct per_cpu_pages: one CPU's cache of free pages for one zone.
/// Lists are deques of PFNs: frees push at the head, allocations pop at the head,
/// draining takes from the tail, as the kernel's list_add/list_first/list_last do.
public struct PerCPUPages {
    /// NR_PCP_LISTS: MIGRATE_PCPTYPES x (PAGE_ALLOC_COSTLY_ORDER + 1) + 2 THP lists.
    public static let lowOrderLists = MigrateType.pcpTypes * (PageOrder.costly.raw + 1)
    public static let listCount = lowOrderLists + 2
    /// CONFIG_PCP_BATCH_SCALE_MAX
    public static let batchScaleMax = 5

    public internal(set) var count = 0
    public internal(set) var high = 0
    public internal(set) var highMin = 0
    public internal(set) var highMax = 0
    public internal(set) var batch = 0
    var allocFactor = 0
    var freeCount = 0
    /// PCPF_PREV_FREE_HIGH_ORDER
    var prevFreeHighOrder = false

    /// order_to_pindex()
    @inline(__always) static func index(_ mt: MigrateType, _ order: Int) -> Int {
        if order > PageOrder.costly.raw { return lowOrderLists + (mt == .movable ? 1 : 0) }
        return MigrateType.pcpTypes &* order &+ mt.rawValue
    }

    /// pindex_to_order()
    @inline(__always) static func order(ofList pindex: Int) -> Int {
        pindex >= lowOrderLists ? PageOrder.pageblock.raw : pindex / MigrateType.pcpTypes
    }

    /// pcp_allowed_order()
    @inline(__always) static func allowed(_ order: Int) -> Bool {
        order <= PageOrder.costly.raw || order == PageOrder.pageblock.raw
    }
}

/// A growable ring buffer of PFNs (UInt32) in manually managed memory, allocation-free
/// once warm. Owned by its zone, which frees it (`release()`).
public struct PFNDeque {
    private var buf: UnsafeMutablePointer<UInt32>? = nil
    private var capacity = 0
    private var start = 0
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    @inline(__always) private func slot(_ i: Int) -> Int { (start &+ i) & (capacity &- 1) }

    /// Doubles the capacity: the ring's two runs ([start, capacity) then [0, rest)) move
    /// to the front of the new buffer with one block move each.
    @inline(never) private mutating func grow() {
        let newCap = Swift.max(16, capacity &* 2)
        let nb = UnsafeMutablePointer<UInt32>.allocate(capacity: newCap)
        if let old = buf {
            let first = Swift.min(count, capacity &- start)
            nb.moveInitialize(from: old + start, count: first)
            if first < count { (nb + first).moveInitialize(from: old, count: count &- first) }
            old.deallocate()
        }
        buf = nb
        capacity = newCap
        start = 0
    }

    mutating func release() {
        buf?.deallocate()
        buf = nil
        capacity = 0
        count = 0
    }

    @inline(__always) public mutating func pushFront(_ v: UInt32) {
        if count == capacity { grow() }
        start = (start &- 1) & (capacity &- 1)
        buf.unsafelyUnwrapped[start] = v
        count &+= 1
    }

    @inline(__always) public mutating func pushBack(_ v: UInt32) {
        if count == capacity { grow() }
        buf.unsafelyUnwrapped[slot(count)] = v
        count &+= 1
    }

    /// pushBack() of `n` values: `first`, `first + stride`, `first + 2 * stride`...
    @inline(__always) mutating func pushBack(run first: UInt32, count n: Int, stride: UInt32) {
        while capacity &- count < n { grow() }
        let b = buf.unsafelyUnwrapped
        let mask = capacity &- 1
        var i = (start &+ count) & mask
        var v = first
        for _ in 0..<n {
            b[i] = v
            i = (i &+ 1) & mask
            v &+= stride
        }
        count &+= n
    }

    @inline(__always) public mutating func popFront() -> UInt32? {
        count > 0 ? popFrontNonEmpty() : nil
    }

    /// popFront() of a deque known to be non-empty.
    @inline(__always) mutating func popFrontNonEmpty() -> UInt32 {
        let v = buf.unsafelyUnwrapped[start]
        start = (start &+ 1) & (capacity &- 1)
        count &-= 1
        return v
    }

    @inline(__always) public mutating func popBack() -> UInt32? {
        guard count > 0 else { return nil }
        count &-= 1
        return buf.unsafelyUnwrapped[slot(count)]
    }

    /// Elements front to back.
    public var elements: [UInt32] { (0..<count).map { buf![slot($0)] } }
}

/// struct zone: one physical memory zone of one node (pg_data_t->node_zones[type]).
public final class Zone {
    public let type: ZoneType
    /// zone_to_nid()
    public let node: Int
    /// Index in the allocator's flat zone array: node * ZoneType.count + type (the value
    /// struct page keeps in its zone link).
    @inline(__always) public var index: Int { node &* ZoneType.perNode &+ type.rawValue }
    public var name: String { type.description }
    /// zone_start_pfn and spanned_pages.
    public internal(set) var startPFN: UInt64 = 0
    public internal(set) var spannedPages: UInt64 = 0
    /// Pages of RAM in the zone (holes excluded).
    public internal(set) var presentPages: UInt64 = 0 { didSet { usabilityChanged() } }
    /// Pages the buddy allocator manages (present minus reserved), zone_managed_pages().
    public internal(set) var managedPages: UInt64 = 0 { didSet { usabilityChanged() } }
    /// The allocator's PageAllocator.firstUsableZone, which depends on every zone's present
    /// and managed pages: forgotten whenever they change (nil once the allocator is gone).
    var usableZoneCache: FixedArray<Int>? = nil

    /// Present or managed pages changed: whether get_page_from_freelist() skips this zone
    /// may have changed too.
    private func usabilityChanged() {
        guard let c = usableZoneCache else { return }
        for i in 0..<c.count { c[i] = PageAllocator.usableZoneUnknown }
    }
    /// _watermark[min, low, high, promo]
    public let watermarks = FixedArray<UInt64>(repeating: 0, count: 4)
    /// lowmem_reserve[]: pages kept back from allocations that could use a higher zone.
    public let lowmemReserve = FixedArray<UInt64>(repeating: 0, count: ZoneType.allCases.count)
    /// nr_reserved_highatomic
    public internal(set) var reservedHighAtomic: UInt64 = 0

    /// free_area[order].nr_free
    public let nrFree = FixedArray<Int>(repeating: 0, count: PageOrder.max.raw + 1)
    /// Free lists: [order][migratetype][half].
    let lists = FixedArray<FreeListHalf>(repeating: FreeListHalf(), count: (PageOrder.max.raw + 1) * MigrateType.count * 2)
    var virgin = VirginBlocks()
    /// Zone counters (enum zone_stat_item): NR_FREE_PAGES, NR_FREE_PAGES_BLOCKS, ...
    public let stats = FixedArray<Int64>(repeating: 0, count: VMStat.firstNuma.rawValue)
    /// Per-CPU page list state of this zone, indexed by CPU.
    public let pcp: FixedArray<PerCPUPages>
    /// The pcp lists themselves: [cpu][pindex].
    let pcpLists: FixedArray<PFNDeque>

    init(type: ZoneType, node: Int = 0, cpus: Int) {
        self.type = type
        self.node = node
        self.pcp = FixedArray(repeating: PerCPUPages(), count: cpus)
        self.pcpLists = FixedArray(repeating: PFNDeque(), count: cpus * PerCPUPages.listCount)
    }

    deinit {
        for i in 0..<pcpLists.count { pcpLists[i].release() }
        for a in [watermarks, lowmemReserve] { a.deallocate() }
        nrFree.deallocate()
        lists.deallocate()
        stats.deallocate()
        pcp.deallocate()
        pcpLists.deallocate()
    }

    /// The pcp list `pindex` of `cpu`, front (most recently freed) to back.
    public func pcpList(cpu: Int, _ pindex: Int) -> [UInt32] { pcpLists[cpu * PerCPUPages.listCount + pindex].elements }

    @inline(__always) func pcpListIndex(cpu: Int, _ pindex: Int) -> Int { cpu &* PerCPUPages.listCount &+ pindex }

    @inline(__always) public var endPFN: UInt64 { startPFN &+ spannedPages }
    /// populated_zone()
    public var isPopulated: Bool { presentPages > 0 }
    public var freePages: Int64 { stats[VMStat.nrFreePages.rawValue] }
    public func watermark(_ w: Watermark) -> UInt64 { watermarks[w.rawValue] }
    public func contains(_ pfn: PFN) -> Bool { pfn.raw >= startPFN && pfn.raw < endPFN }

    @inline(__always) static func listIndex(_ order: Int, _ mt: MigrateType, back: Bool) -> Int {
        (order &* MigrateType.count &+ mt.rawValue) &* 2 &+ (back ? 1 : 0)
    }

    /// Number of free blocks in free_list[mt] of `order`, virgin blocks included.
    public func freeBlocks(order: Int, _ mt: MigrateType) -> Int {
        let n = lists[Self.listIndex(order, mt, back: false)].count + lists[Self.listIndex(order, mt, back: true)].count
        return n + (order == PageOrder.max.raw && mt == .movable ? virgin.count : 0)
    }

    /// free_area_empty()
    @inline(__always) func isFreeListEmpty(order: Int, _ mt: MigrateType) -> Bool {
        lists[Self.listIndex(order, mt, back: false)].count == 0
            && lists[Self.listIndex(order, mt, back: true)].count == 0
            && !(order == PageOrder.max.raw && mt == .movable && virgin.count > 0)
    }

    /// Pages sitting on every CPU's pcp lists of this zone.
    public var pcpPages: Int { pcp.reduce(0) { $0 + $1.count } }
}
