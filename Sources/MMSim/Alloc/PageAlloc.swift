// mm/page_alloc.c: the buddy allocator: free lists per order and migrate type, pcp lists, watermarks, fallback.

/// ALLOC_* flags of mm/internal.h that the model acts on.
struct AllocFlags: OptionSet {
    var rawValue: UInt32
    static let wmarkMin = AllocFlags([])
    static let wmarkLow = AllocFlags(rawValue: 1 << 0)
    static let wmarkHigh = AllocFlags(rawValue: 1 << 1)
    static let minReserve = AllocFlags(rawValue: 1 << 3)
    static let nonBlock = AllocFlags(rawValue: 1 << 4)
    static let highAtomic = AllocFlags(rawValue: 1 << 5)
    static let noFragment = AllocFlags(rawValue: 1 << 8)
    static let kswapd = AllocFlags(rawValue: 1 << 9)
    static let reserves: AllocFlags = [.minReserve, .highAtomic]

    var watermark: Watermark {
        if contains(.wmarkHigh) { return .high }
        if contains(.wmarkLow) { return .low }
        return .min
    }
}

/// enum rmqueue_mode: remembers, across one rmqueue_bulk(), which fallback level found pages.
enum RmqueueMode { case normal, claim, steal }

/// The page allocator of every node: zones, free lists, per-CPU lists, pageblock types,
/// zonelists.
public final class PageAllocator {
    public let frames: FrameTable
    public let counters: VMCounters
    /// All zones of every node, node by node, each node's indexed by ZoneType (empty ones
    /// included, as the kernel has them): zone `z` of node `n` is `zones[n * 4 + z]`, so a
    /// single node's zones are indexed by ZoneType alone.
    public let zones: [Zone]
    public let cpuCount: Int
    /// nr_node_ids
    public let nodeCount: Int
    /// cpu_to_node() of every CPU.
    let cpuNodes: FixedArray<Int>
    /// node_zonelists[ZONELIST_FALLBACK] of every node, flat: `zones.count` zone indices per
    /// node, nodes in build_zonelists() order, each node's zones highest first.
    let zonelists: FixedArray<Int>
    /// The numa_stat_item counters (numa_hit, numa_miss, numa_foreign, numa_interleave,
    /// numa_local, numa_other) of every node, [node * 6 + item]: the sums of its zones'
    /// vm_numa_event, as /sys/devices/system/node/nodeN/numastat shows them.
    public let numaEvents: FixedArray<Int64>
    static let numaItems = 6
    /// The zones again, unretained, for the hot paths (kept alive by `zones`).
    let zoneRefs: FixedArray<Unmanaged<Zone>>
    /// For the order-0 fast path on one node (allocOrder0Pcp()): per highest allowed zone
    /// index, the first zone at or below it that get_page_from_freelist() does not skip
    /// (populated, with managed pages), -1 if none, `usableZoneUnknown` when not known.
    /// Every zone forgets it when its present or managed pages change.
    let firstUsableZone = FixedArray<Int>(repeating: PageAllocator.usableZoneUnknown, count: ZoneType.perNode)
    static let usableZoneUnknown = -2
    /// The CPU on whose behalf allocations run (this_cpu for pcp lists).
    public var currentCPU = 0
    /// Pageblock migrate types (the usemap), one byte per pageblock.
    private let pageblockTypes: UnsafeMutablePointer<UInt8>
    private let pageblockCount: Int
    /// The kernel log it reports to (page allocation failures, bad pages).
    public let log: KernelLog
    /// The tracepoint buffer (mm_page_free and the rest of the machine's events).
    public let tracer = Tracer()
    var warnedOrderAboveMax = false
    /// Frames the allocator refused to free because their state was wrong (bad_page()).
    public internal(set) var badPages = 0

    /// The allocator's way into page reclaim (__alloc_pages_slowpath()'s kswapd wake and
    /// direct reclaim), set by the machine: (gfp, order, attempt) -> try the freelists again.
    var reclaimer: ((GFP, Int, Int) -> Bool)?
    /// PF_MEMALLOC: reclaim's own allocations do not recurse into reclaim.
    var inReclaim = false

    init(frames: FrameTable, counters: VMCounters, log: KernelLog = KernelLog(), cpus: Int,
         nodes: Int = 1, cpuToNode: (Int) -> Int = { _ in 0 }) {
        self.frames = frames
        self.counters = counters
        self.log = log
        self.cpuCount = cpus
        self.nodeCount = nodes
        self.zones = (0..<nodes).flatMap { n in ZoneType.allCases.map { Zone(type: $0, node: n, cpus: cpus) } }
        let cpuNodes = (0..<cpus).map(cpuToNode)
        self.cpuNodes = FixedArray(cpuNodes)
        self.zonelists = FixedArray((0..<nodes).flatMap { local in
            PageAllocator.nodeOrder(local: local, nodes: nodes, hasCPUs: { n in cpuNodes.contains(n) }).flatMap { n in
                ZoneType.allCases.reversed().map { n * ZoneType.allCases.count + $0.rawValue }
            }
        })
        self.numaEvents = FixedArray(repeating: 0, count: nodes * PageAllocator.numaItems)
        self.zoneRefs = FixedArray(zones.map { Unmanaged.passUnretained($0) })
        pageblockCount = Int((frames.endPFN + PageOrder.pageblock.pages - 1) >> UInt64(PageOrder.pageblock.raw))
        pageblockTypes = .allocate(capacity: max(1, pageblockCount))
        // memmap_init_zone(): every pageblock starts MIGRATE_MOVABLE.
        pageblockTypes.initialize(repeating: UInt8(MigrateType.movable.rawValue), count: max(1, pageblockCount))
        for z in zones { z.usableZoneCache = firstUsableZone }
    }

    deinit {
        for z in zones { z.usableZoneCache = nil }
        firstUsableZone.deallocate()
        pageblockTypes.deallocate()
        zoneRefs.deallocate()
        cpuNodes.deallocate()
        zonelists.deallocate()
        numaEvents.deallocate()
    }

    // MARK: Nodes

    /// build_zonelists()'s node order for `local`: find_next_best_node() picks, among the
    /// nodes not yet used, the one at the smallest distance (10 for the local node, 20 for
    /// every other one in the model), breaking ties against nodes below the local one and
    /// against nodes with CPUs, then by lowest id. With CPUs on every node that is local,
    /// the nodes above it, then the nodes below it.
    static func nodeOrder(local: Int, nodes: Int, hasCPUs: (Int) -> Bool) -> [Int] {
        var used = [Bool](repeating: false, count: nodes)
        var order: [Int] = []
        for _ in 0..<nodes {
            var best = -1, bestVal = Int.max
            for n in 0..<nodes where !used[n] {
                var val = n == local ? 10 : 20
                if n < local { val += 1 }
                if hasCPUs(n) { val += 1 }
                if val < bestVal { best = n; bestVal = val }
            }
            used[best] = true
            order.append(best)
        }
        return order
    }

    /// numa_node_id() of the CPU allocations run on.
    @inline(__always) public var currentNode: Int { nodeCount == 1 ? 0 : cpuNodes[currentCPU] }

    /// cpu_to_node()
    public func node(ofCPU cpu: Int) -> Int { cpuNodes[cpu] }

    /// page_to_nid(): from the zone link in struct page, as the kernel reads the node
    /// from page->flags (materializes the frame's memmap section).
    @inline(__always) public func nodeOf(_ pfn: PFN) -> Int {
        nodeCount == 1 ? 0 : Int(frames[pfn].pointee.zone) / ZoneType.perNode
    }

    /// NODE_DATA(n)->node_zones
    public func zones(ofNode n: Int) -> ArraySlice<Zone> {
        zones[(n * ZoneType.allCases.count)..<((n + 1) * ZoneType.allCases.count)]
    }

    /// One numa_stat_item of a node.
    /// (One node keeps them only in the machine-wide counters.)
    public func numaEvent(_ item: VMStat, node: Int) -> Int64 {
        if nodeCount == 1 { return counters[item] }
        return numaEvents[node * Self.numaItems + item.rawValue - VMStat.numaHit.rawValue]
    }

    /// zone_statistics(): numa_hit on the zone when it is on the preferred node, else
    /// numa_miss on it and numa_foreign on the preferred one; numa_local or numa_other by
    /// whether it is on the allocating CPU's node. One event per allocation.
    @inline(__always) func zoneStatistics(preferred: Int, node: Int) {
        if nodeCount == 1 {
            counters.add(.numaHit, 1)
            counters.add(.numaLocal, 1)
            return
        }
        let base = node &* Self.numaItems
        if node == preferred {
            counters.add(.numaHit, 1)
            numaEvents[base] &+= 1
        } else {
            counters.add(.numaMiss, 1)
            numaEvents[base &+ 1] &+= 1
            counters.add(.numaForeign, 1)
            numaEvents[preferred &* Self.numaItems &+ 2] &+= 1
        }
        if node == currentNode {
            counters.add(.numaLocal, 1)
            numaEvents[base &+ 4] &+= 1
        } else {
            counters.add(.numaOther, 1)
            numaEvents[base &+ 5] &+= 1
        }
    }

    // MARK: Pageblocks

    /// get_pfnblock_migratetype()
    @inline(__always) public func pageblockMigratetype(_ pfn: PFN) -> MigrateType {
        MigrateType(rawValue: Int(pageblockTypes[Int(pfn.raw >> UInt64(PageOrder.pageblock.raw))]))!
    }

    /// set_pageblock_migratetype()
    @inline(__always) func setPageblockMigratetype(_ pfn: PFN, _ mt: MigrateType) {
        pageblockTypes[Int(pfn.raw >> UInt64(PageOrder.pageblock.raw))] = UInt8(mt.rawValue)
    }

    /// page_zone()
    /// (By zone span, so that asking never materializes a struct page.)
    public func zone(of pfn: PFN) -> Zone {
        for z in zones where z.isPopulated && z.contains(pfn) { return z }
        return zones[Int(frames[pfn].pointee.zone)]
    }

    // MARK: Free lists

    /// __add_to_free_list(): to the head or, with `tail`, to the tail of free_list[mt].
    ///
    /// Tail frames of a free block are marked `.buddyTail` for the invariant checker (order
    /// 0 has none). Callers whose block is already made of `.buddyTail` frames behind its
    /// head pass `markTails: false`: the halves expand() splits off a free block, blocks
    /// moving between lists, blocks __free_one_page() merged from free buddies. Everything
    /// else (a virgin block materialized, a block whose tails were allocated) marks them.
    @inline(__always) func addToFreeList(_ zone: Zone, _ pfn: PFN, order: Int, _ mt: MigrateType, tail: Bool, markTails: Bool = true) {
        addToFreeList(zone, frames[pfn], UInt32(truncatingIfNeeded: pfn.raw), order: order, mt, tail: tail, markTails: markTails)
    }

    /// __add_to_free_list() for a caller that holds the head's record `p` (frame `v`).
    @inline(__always) func addToFreeList(_ zone: Zone, _ p: UnsafeMutablePointer<PageMeta>, _ v: UInt32, order: Int, _ mt: MigrateType,
                                         tail: Bool, markTails: Bool) {
        p.pointee.state = .buddy
        p.pointee.order = UInt8(truncatingIfNeeded: order)
        p.pointee.pcpMigratetype = UInt8(truncatingIfNeeded: mt.rawValue)
        let li = Zone.listIndex(order, mt, back: tail)
        p.pointee.spare = UInt32(truncatingIfNeeded: li)
        let l = zone.lists.base + li
        if tail {
            let t = l.pointee.tail
            p.pointee.next = FrameTable.nil
            p.pointee.prev = t
            if t != FrameTable.nil { frames[PFN(UInt64(t))].pointee.next = v } else { l.pointee.head = v }
            l.pointee.tail = v
        } else {
            let h = l.pointee.head
            p.pointee.prev = FrameTable.nil
            p.pointee.next = h
            if h != FrameTable.nil { frames[PFN(UInt64(h))].pointee.prev = v } else { l.pointee.tail = v }
            l.pointee.head = v
        }
        l.pointee.count &+= 1
        zone.nrFree[order] &+= 1
        if order >= PageOrder.pageblock.raw && mt != .isolate {
            accountFreeBlocks(zone, Int64(1 << order))
        }
        // A block of MAX_PAGE_ORDER or less never crosses a memmap section: one base pointer.
        if markTails && order > 0 {
            for i in 1..<(1 << order) { (p + i).pointee.state = .buddyTail }
        }
    }

    /// __del_page_from_free_list()
    @inline(__always) func delFromFreeList(_ zone: Zone, _ pfn: PFN, order: Int, _ mt: MigrateType) {
        delFromFreeList(zone, frames[pfn], order: order, mt)
    }

    /// __del_page_from_free_list() for a caller that holds the head's record.
    @inline(__always) func delFromFreeList(_ zone: Zone, _ p: UnsafeMutablePointer<PageMeta>, order: Int, _ mt: MigrateType) {
        let l = zone.lists.base + Int(p.pointee.spare)
        let next = p.pointee.next, prev = p.pointee.prev
        if prev != FrameTable.nil { frames[PFN(UInt64(prev))].pointee.next = next } else { l.pointee.head = next }
        if next != FrameTable.nil { frames[PFN(UInt64(next))].pointee.prev = prev } else { l.pointee.tail = prev }
        p.pointee.next = FrameTable.nil
        p.pointee.prev = FrameTable.nil
        p.pointee.state = .allocated
        l.pointee.count &-= 1
        zone.nrFree[order] &-= 1
        if order >= PageOrder.pageblock.raw && mt != .isolate {
            accountFreeBlocks(zone, -Int64(1 << order))
        }
    }

    /// get_page_from_free_area(): the first block of the logical list front ++ virgin ++ back.
    @inline(__always) func firstFree(_ zone: Zone, order: Int, _ mt: MigrateType) -> PFN? {
        let front = zone.lists[Zone.listIndex(order, mt, back: false)]
        if front.head != FrameTable.nil { return PFN(UInt64(front.head)) }
        if order == PageOrder.max.raw && mt == .movable, zone.virgin.count > 0 {
            // Materialize the lowest virgin block as an ordinary free-list entry at the
            // front, so that deletion below is uniform.
            let pfn = zone.virgin.popFirst()!
            zone.nrFree[order] -= 1
            accountFreeBlocks(zone, -Int64(1 << order))
            addToFreeList(zone, PFN(pfn), order: order, mt, tail: false)
            return PFN(pfn)
        }
        let back = zone.lists[Zone.listIndex(order, mt, back: true)]
        if back.head != FrameTable.nil { return PFN(UInt64(back.head)) }
        return nil
    }

    /// account_freepages(): NR_FREE_PAGES of the zone and the machine (isolated pages excluded).
    @inline(__always) func accountFreepages(_ zone: Zone, _ nr: Int64, _ mt: MigrateType) {
        if mt != .isolate { addFreePages(zone, nr) }
    }

    /// NR_FREE_PAGES += nr for pages already known not to be isolated.
    @inline(__always) func addFreePages(_ zone: Zone, _ nr: Int64) {
        zone.stats[VMStat.nrFreePages.rawValue] &+= nr
        counters.add(.nrFreePages, nr)
    }

    /// NR_FREE_PAGES_BLOCKS of the zone and the machine: free pages in blocks of at least
    /// pageblock_order (__add_to_free_list()/__del_page_from_free_list()).
    @inline(__always) func accountFreeBlocks(_ zone: Zone, _ nr: Int64) {
        zone.stats[VMStat.nrFreePagesBlocks.rawValue] &+= nr
        counters.add(.nrFreePagesBlocks, nr)
    }

    /// __free_one_page(): merge with free buddies up to MAX_PAGE_ORDER and insert.
    /// `tailsFree`: the block's tail frames are already `.buddyTail` (a block coming back
    /// from a pcp list or split off a free block); otherwise they are marked here. Merging
    /// only turns the absorbed head (the buddy's or our own) into a tail: every other frame
    /// of a free buddy is a `.buddyTail` already.
    func freeOneBlock(_ zone: Zone, _ start: PFN, order startOrder: Int, _ startMT: MigrateType, toTail: Bool, tailsFree: Bool = false) {
        accountFreepages(zone, Int64(1 << startOrder), startMT)
        mergeAndInsert(zone, start, order: startOrder, startMT, toTail: toTail, tailsFree: tailsFree)
    }

    /// `freeOneBlock` without the NR_FREE_PAGES update (free_pcppages_bulk() accounts its
    /// whole batch once), inlined into the drain loop.
    @inline(__always)
    func mergeAndInsert(_ zone: Zone, _ start: PFN, order startOrder: Int, _ startMT: MigrateType, toTail: Bool, tailsFree: Bool) {
        var pfn = start, order = startOrder
        let mt = startMT
        var p = frames[pfn]
        if !tailsFree && order > 0 {
            for i in 1..<(1 << order) { (p + i).pointee.state = .buddyTail }
        }
        let lo = zone.startPFN, hi = zone.endPFN
        var lastBuddy = PFN(0)
        var haveLastBuddy = false
        while order < PageOrder.max.raw {
            let buddy = pfn.buddy(PageOrder(order))
            guard let bp = Self.buddyRecord(p, pfn, buddy, order: order, lo: lo, hi: hi) else {
                lastBuddy = buddy
                haveLastBuddy = true
                break
            }
            let listMT = MigrateType(rawValue: Int(bp.pointee.pcpMigratetype)).unsafelyUnwrapped
            var buddyMT = listMT
            if order >= PageOrder.pageblock.raw {
                // Never merge an isolated/highatomic block with a normal one.
                buddyMT = pageblockMigratetype(buddy)
                if buddyMT != mt && (!isMergeable(mt) || !isMergeable(buddyMT)) { break }
            }
            delFromFreeList(zone, bp, order: order, listMT)
            if buddyMT != mt {
                // Match buddy type so expand() later puts sub-blocks on the right lists.
                setPageblockMigratetype(buddy, mt)
            }
            // The higher of the two heads becomes a tail of the merged block.
            if buddy.raw < pfn.raw {
                p.pointee.state = .buddyTail
                p = bp
                pfn = buddy
            } else {
                bp.pointee.state = .buddyTail
            }
            order += 1
        }
        var tail = toTail
        if !toTail && haveLastBuddy && order < PageOrder.max.raw - 1 {
            // buddy_merge_likely(): the parent's buddy is free.
            let higher = PFN(lastBuddy.raw & pfn.raw)
            let parentBuddy = higher.buddy(PageOrder(order + 1))
            tail = Self.buddyRecord(p, pfn, parentBuddy, order: order + 1, lo: lo, hi: hi) != nil
        }
        addToFreeList(zone, p, UInt32(truncatingIfNeeded: pfn.raw), order: order, mt, tail: tail, markTails: false)
    }

    /// find_buddy_page_pfn() inside one memmap section: `b` is the buddy (or the parent's
    /// buddy) of the block at `pfn`, whose record is `p`. A block of MAX_PAGE_ORDER or less
    /// and its buddies lie in one aligned 2^11-frame range, so in `p`'s section: the record
    /// is `p` moved by the PFN difference, no section lookup.
    @inline(__always)
    static func buddyRecord(_ p: UnsafeMutablePointer<PageMeta>, _ pfn: PFN, _ b: PFN, order: Int,
                            lo: UInt64, hi: UInt64) -> UnsafeMutablePointer<PageMeta>? {
        guard b.raw >= lo, b.raw < hi else { return nil }
        let bp = p + (Int(truncatingIfNeeded: b.raw) &- Int(truncatingIfNeeded: pfn.raw))
        guard bp.pointee.state == .buddy, Int(bp.pointee.order) == order else { return nil }
        return bp
    }

    /// migratetype_is_mergeable()
    @inline(__always) func isMergeable(_ mt: MigrateType) -> Bool { mt.rawValue < MigrateType.pcpTypes }

    /// expand(): split a block of order `high` down to `low`, upper halves to the heads of the lower lists.
    @inline(__always) func expand(_ zone: Zone, _ pfn: PFN, low: Int, high: Int, _ mt: MigrateType) -> Int64 {
        var h = high
        var added: Int64 = 0
        while h > low {
            h -= 1
            let half = pfn + (UInt64(1) << UInt64(h))
            // The half's frames were tails of the free block being split.
            addToFreeList(zone, half, order: h, mt, tail: false, markTails: false)
            added += Int64(1 << h)
        }
        return added
    }

    /// page_del_and_expand()
    @inline(__always) func delAndExpand(_ zone: Zone, _ pfn: PFN, low: Int, high: Int, _ mt: MigrateType) {
        delFromFreeList(zone, pfn, order: high, mt)
        let added = expand(zone, pfn, low: low, high: high, mt)
        accountFreepages(zone, added - Int64(1 << high), mt)
    }

    /// __rmqueue_smallest()
    func rmqueueSmallest(_ zone: Zone, order: Int, _ mt: MigrateType) -> PFN? {
        guard let (pfn, o) = smallestFree(zone, order: order, mt) else { return nil }
        delAndExpand(zone, pfn, low: order, high: o, mt)
        return pfn
    }

    /// __rmqueue_smallest()'s search: the first block on the lowest non-empty free list of
    /// `mt` at `order` or above, and that list's order.
    @inline(__always) func smallestFree(_ zone: Zone, order: Int, _ mt: MigrateType) -> (PFN, Int)? {
        var o = order
        while o <= PageOrder.max.raw {
            if let pfn = firstFree(zone, order: o, mt) { return (pfn, o) }
            o &+= 1
        }
        return nil
    }

    /// should_try_claim_block()
    func shouldTryClaimBlock(order: Int, _ startMT: MigrateType) -> Bool {
        if order >= PageOrder.pageblock.raw / 2 { return true }
        return startMT == .reclaimable || startMT == .unmovable
    }

    /// find_suitable_fallback(): -1 none at this order, -2 too small to claim.
    func findSuitableFallback(_ zone: Zone, order: Int, _ mt: MigrateType, claimable: Bool) -> Int {
        if claimable && !shouldTryClaimBlock(order: order, mt) { return -2 }
        guard let (a, b) = mt.fallbacks else { return -1 }
        if !zone.isFreeListEmpty(order: order, a) { return a.rawValue }
        if !zone.isFreeListEmpty(order: order, b) { return b.rawValue }
        return -1
    }

    /// Frames of pageblock `start` that are free in the buddy allocator, and those that are movable (on an LRU).
    func pageblockCensus(_ start: PFN) -> (free: UInt64, movable: UInt64) {
        var free: UInt64 = 0, movable: UInt64 = 0
        var pfn = start
        let end = start + PageOrder.pageblock.pages
        while pfn < end {
            let p = frames[pfn]
            if p.pointee.state == .buddy {
                let n = UInt64(1) << UInt64(p.pointee.order)
                free += n
                pfn = pfn + n
                continue
            }
            if p.pointee.flags.contains(.lru) { movable += 1 }
            pfn = pfn + 1
        }
        return (free, movable)
    }

    /// __move_freepages_block(): every free block of the pageblock to the lists of `to`.
    func moveFreepagesBlock(_ zone: Zone, _ start: PFN, from: MigrateType, to: MigrateType) {
        var pfn = start
        let end = start + PageOrder.pageblock.pages
        while pfn < end {
            let p = frames[pfn]
            if p.pointee.state == .buddy {
                let order = Int(p.pointee.order)
                let mt = MigrateType(rawValue: Int(p.pointee.pcpMigratetype))!
                delFromFreeList(zone, p, order: order, mt)
                accountFreepages(zone, -Int64(1 << order), mt)
                addToFreeList(zone, p, UInt32(truncatingIfNeeded: pfn.raw), order: order, to, tail: false, markTails: false)
                accountFreepages(zone, Int64(1 << order), to)
                pfn = pfn + (UInt64(1) << UInt64(order))
            } else {
                pfn = pfn + 1
            }
        }
    }

    /// try_to_claim_block(): take over a whole pageblock (or several) of another type.
    func tryToClaimBlock(_ zone: Zone, _ pfn: PFN, currentOrder: Int, order: Int, start startMT: MigrateType, block blockMT: MigrateType) -> PFN? {
        if currentOrder >= PageOrder.pageblock.raw {
            delFromFreeList(zone, pfn, order: currentOrder, blockMT)
            accountFreepages(zone, -Int64(1 << currentOrder), blockMT)
            // change_pageblock_range()
            var b = pfn
            while b < pfn + (UInt64(1) << UInt64(currentOrder)) {
                setPageblockMigratetype(b, startMT)
                b = b + PageOrder.pageblock.pages
            }
            let added = expand(zone, pfn, low: order, high: currentOrder, startMT)
            accountFreepages(zone, added, startMT)
            return pfn
        }
        // The block straddles no zone boundary in this model (zones are pageblock aligned).
        let blockStart = PFN(pfn.raw & ~(PageOrder.pageblock.pages - 1))
        let (free, movable) = pageblockCensus(blockStart)
        let alike: UInt64
        if startMT == .movable {
            alike = movable
        } else {
            alike = blockMT == .movable ? PageOrder.pageblock.pages - (free + movable) : 0
        }
        if free + alike >= PageOrder.pageblock.pages / 2 {
            moveFreepagesBlock(zone, blockStart, from: blockMT, to: startMT)
            setPageblockMigratetype(blockStart, startMT)
            return rmqueueSmallest(zone, order: order, startMT)
        }
        return nil
    }

    /// __rmqueue_claim(): the largest block of a fallback type, claiming its pageblock.
    func rmqueueClaim(_ zone: Zone, order: Int, _ mt: MigrateType, _ flags: AllocFlags) -> PFN? {
        let minOrder = (order < PageOrder.pageblock.raw && flags.contains(.noFragment)) ? PageOrder.pageblock.raw : order
        var current = PageOrder.max.raw
        while current >= minOrder {
            let f = findSuitableFallback(zone, order: current, mt, claimable: true)
            if f == -2 { break }
            if f >= 0 {
                let fmt = MigrateType(rawValue: f)!
                let pfn = firstFree(zone, order: current, fmt)!
                if let got = tryToClaimBlock(zone, pfn, currentOrder: current, order: order, start: mt, block: fmt) {
                    return got
                }
            }
            current -= 1
        }
        return nil
    }

    /// __rmqueue_steal(): the smallest block of a fallback type, without claiming its pageblock.
    func rmqueueSteal(_ zone: Zone, order: Int, _ mt: MigrateType) -> PFN? {
        var current = order
        while current <= PageOrder.max.raw {
            let f = findSuitableFallback(zone, order: current, mt, claimable: false)
            if f >= 0 {
                let fmt = MigrateType(rawValue: f)!
                let pfn = firstFree(zone, order: current, fmt)!
                delAndExpand(zone, pfn, low: order, high: current, fmt)
                return pfn
            }
            current += 1
        }
        return nil
    }

    /// __rmqueue()
    func rmqueue(_ zone: Zone, order: Int, _ mt: MigrateType, _ flags: AllocFlags, mode: inout RmqueueMode) -> PFN? {
        if mode == .normal, let p = rmqueueSmallest(zone, order: order, mt) { return p }
        if mode != .steal, let p = rmqueueClaim(zone, order: order, mt, flags) {
            mode = .normal
            return p
        }
        if !flags.contains(.noFragment), let p = rmqueueSteal(zone, order: order, mt) {
            mode = .steal
            return p
        }
        return nil
    }

    // MARK: Per-CPU lists

    /// nr_pcp_alloc(): how many pages one refill of an empty pcp list takes from the buddy lists.
    func nrPcpAlloc(_ pcp: inout PerCPUPages, order: Int) -> Int {
        let baseBatch = pcp.batch
        pcp.high = min(max(pcp.high, pcp.highMin), pcp.highMax)
        var high = pcp.high
        if high < baseBatch { return 1 }
        var batch = order > 0 ? baseBatch : baseBatch << pcp.allocFactor
        if pcp.highMin != pcp.highMax {
            high = min(high + batch, pcp.highMax)
            pcp.high = high
        }
        if order == 0 {
            let maxNrAlloc = max(high - pcp.count - baseBatch, baseBatch)
            if batch <= maxNrAlloc && pcp.allocFactor < PerCPUPages.batchScaleMax { pcp.allocFactor += 1 }
            batch = min(batch, maxNrAlloc)
        }
        if batch > 1 { batch = max(batch >> order, 2) }
        return batch
    }

    /// rmqueue_pcplist()
    @inline(__always) func rmqueuePcplist(_ zone: Zone, order: Int, _ mt: MigrateType, _ flags: AllocFlags) -> PFN? {
        let cpu = currentCPU
        let pcp = zone.pcp.base + cpu
        let list = zone.pcpLists.base + zone.pcpListIndex(cpu: cpu, PerCPUPages.index(mt, order))
        pcp.pointee.freeCount >>= 1
        if list.pointee.isEmpty {
            let batch = nrPcpAlloc(&pcp.pointee, order: order)
            let got = rmqueueBulk(zone, order: order, count: batch, mt, flags, list)
            pcp.pointee.count &+= got << order
            if got == 0 { return nil }
        }
        let v = list.pointee.popFront().unsafelyUnwrapped
        pcp.pointee.count &-= 1 << order
        return PFN(UInt64(v))
    }

    /// rmqueue_bulk(): up to `count` blocks of `order` to the tail of a pcp list, in the
    /// order the buddy lists give them. Returns how many.
    func rmqueueBulk(_ zone: Zone, order: Int, count: Int, _ mt: MigrateType, _ flags: AllocFlags,
                     _ list: UnsafeMutablePointer<PFNDeque>) -> Int {
        var mode = RmqueueMode.normal
        var got = 0
        while got < count {
            if mode == .normal {
                let n = rmqueueSmallestRun(zone, order: order, mt, max: count &- got, list)
                if n > 0 {
                    got &+= n
                    continue
                }
            }
            // Nothing of `mt` left: __rmqueue()'s fallbacks (its __rmqueue_smallest() finds nothing again).
            guard let pfn = rmqueue(zone, order: order, mt, flags, mode: &mode) else { break }
            let p = frames[pfn]
            p.pointee.state = .pcp
            p.pointee.order = UInt8(order)
            list.pointee.pushBack(UInt32(truncatingIfNeeded: pfn.raw))
            got &+= 1
        }
        return got
    }

    /// rmqueue_bulk()'s successive __rmqueue_smallest() calls while they split one block:
    /// takes up to `max` blocks of order `low` from the smallest free block of `mt`, in
    /// the state those calls leave. When the smallest block has order `high` > `low`, every
    /// list of `mt` from `low` to `high - 1` is empty, so each expand() leaves exactly one
    /// block on each of them, all inside this block, and the next call takes the lowest of
    /// them: the blocks come out in address order, until the block is used up. Each taken
    /// block was last the head of a free block of order `low + ctz(i)` (i its index in the
    /// block; the block's own head keeps its list), and what stays free is the buddy
    /// decomposition of the rest, at most one block per order, each alone on its list.
    /// (Orders and spans are at most MAX_PAGE_ORDER, so the shifts use the masking `&<<`:
    /// no over-shift checks in the per-page loop.)
    @inline(__always) func rmqueueSmallestRun(_ zone: Zone, order low: Int, _ mt: MigrateType, max n: Int,
                                              _ list: UnsafeMutablePointer<PFNDeque>) -> Int {
        guard let (start, high) = smallestFree(zone, order: low, mt) else { return 0 }
        let p = frames[start]
        delFromFreeList(zone, p, order: high, mt)
        let span = high &- low
        let k = Swift.min(n, 1 &<< span)
        let v = UInt32(truncatingIfNeeded: start.raw)
        p.pointee.state = .pcp
        p.pointee.order = UInt8(truncatingIfNeeded: low)
        if k > 1 {
            let lowOrder = UInt8(truncatingIfNeeded: low)
            let mtRaw = UInt8(truncatingIfNeeded: mt.rawValue)
            // Zone.listIndex(low + t, mt, back: false) is listIndex(low, mt, back: false)
            // plus t times the lists of one order.
            let li0 = Zone.listIndex(low, mt, back: false)
            let perOrder = MigrateType.count &* 2
            let stride = 1 &<< low
            var q = p
            var i = 1
            while i < k {
                q += stride
                q.pointee.state = .pcp
                q.pointee.order = lowOrder
                q.pointee.pcpMigratetype = mtRaw
                q.pointee.spare = UInt32(truncatingIfNeeded: li0 &+ i.trailingZeroBitCount &* perOrder)
                q.pointee.next = FrameTable.nil
                q.pointee.prev = FrameTable.nil
                i &+= 1
            }
        }
        list.pointee.pushBack(run: v, count: k, stride: UInt32(truncatingIfNeeded: 1 &<< low))
        var added: Int64 = 0
        if k < 1 &<< span {
            // The rest of the block, [k, 2^span) in blocks of `low`, smallest pieces first:
            // where the position has bit j set, a block of order low + j starts there.
            var pos = k
            var j = 0
            while j < span {
                if pos & (1 &<< j) != 0 {
                    let off = pos &<< low
                    addToFreeList(zone, p + off, v &+ UInt32(truncatingIfNeeded: off), order: low &+ j, mt, tail: false, markTails: false)
                    added &+= Int64(1) << Int64(low &+ j)
                    pos &+= 1 &<< j
                }
                j &+= 1
            }
        }
        accountFreepages(zone, added &- (Int64(1) << Int64(high)), mt)
        return k
    }

    /// nr_pcp_high()
    @inline(__always) func nrPcpHigh(_ pcp: inout PerCPUPages, batch: Int, freeHigh: Bool) -> Int {
        let high = min(max(pcp.high, pcp.highMin), pcp.highMax)
        pcp.high = high
        if high == 0 { return 0 }
        if freeHigh {
            pcp.high = max(high - (batch << PerCPUPages.batchScaleMax), pcp.highMin)
            return 0
        }
        if pcp.highMin == pcp.highMax { return high }
        if pcp.count >= high {
            let need = pcp.freeCount + batch
            if pcp.high < need { pcp.high = min(max(need, pcp.highMin), pcp.highMax) }
        }
        return high
    }

    /// nr_pcp_free()
    @inline(__always) func nrPcpFree(_ pcp: PerCPUPages, batch: Int, high: Int, freeHigh: Bool) -> Int {
        if freeHigh { return min(pcp.count, batch << PerCPUPages.batchScaleMax) }
        if high < batch { return 1 }
        return min(max(pcp.freeCount, batch), max(high - batch, batch))
    }

    /// free_unref_page_commit(): put a page on this CPU's list, drain a batch past high.
    @inline(__always) func freeToPcp(_ zone: Zone, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, order: Int, _ mt: MigrateType) {
        let cpu = currentCPU
        let pindex = PerCPUPages.index(mt, order)
        let pcp = zone.pcp.base + cpu
        pcp.pointee.allocFactor >>= 1
        p.pointee.state = .pcp
        p.pointee.order = UInt8(truncatingIfNeeded: order)
        if order > 0 {
            // The block is free again: its tails are free tails (the checker counts the head).
            for i in 1..<(1 << order) { (p + i).pointee.state = .buddyTail }
        }
        (zone.pcpLists.base + zone.pcpListIndex(cpu: cpu, pindex)).pointee.pushFront(UInt32(truncatingIfNeeded: pfn.raw))
        pcp.pointee.count &+= 1 << order
        let batch = pcp.pointee.batch
        var freeHigh = false
        if order > 0 && order <= PageOrder.costly.raw {
            freeHigh = pcp.pointee.freeCount >= batch + pcp.pointee.highMin / 2 && pcp.pointee.prevFreeHighOrder && pcp.pointee.count >= batch
            pcp.pointee.prevFreeHighOrder = true
        } else if pcp.pointee.prevFreeHighOrder {
            pcp.pointee.prevFreeHighOrder = false
        }
        if pcp.pointee.freeCount < batch << PerCPUPages.batchScaleMax { pcp.pointee.freeCount &+= 1 << order }
        let high = nrPcpHigh(&pcp.pointee, batch: batch, freeHigh: freeHigh)
        if pcp.pointee.count >= high {
            let n = nrPcpFree(pcp.pointee, batch: batch, high: high, freeHigh: freeHigh)
            freePcppagesBulk(zone, cpu: cpu, count: n, pindex: pindex)
        }
    }

    /// free_pcppages_bulk(): give `count` pages back to the buddy lists, round-robin over the lists, oldest first.
    func freePcppagesBulk(_ zone: Zone, cpu: Int, count requested: Int, pindex start: Int) {
        let pcp = zone.pcp.base + cpu
        let lists = zone.pcpLists.base + zone.pcpListIndex(cpu: cpu, 0)
        var count = min(pcp.pointee.count, requested)
        var pindex = start - 1
        var freed: Int64 = 0
        while count > 0 {
            repeat {
                pindex += 1
                if pindex > PerCPUPages.listCount - 1 { pindex = 0 }
            } while lists[pindex].isEmpty
            let list = lists + pindex
            let order = PerCPUPages.order(ofList: pindex)
            let nr = 1 << order
            repeat {
                let pfn = PFN(UInt64(list.pointee.popBack().unsafelyUnwrapped))
                count &-= nr
                pcp.pointee.count &-= nr
                let mt = pageblockMigratetype(pfn)
                if mt != .isolate { freed &+= Int64(nr) }
                // A pcp block's tails are free tails already (freeToPcp(), rmqueue_bulk()).
                mergeAndInsert(zone, pfn, order: order, mt, toTail: false, tailsFree: true)
            } while count > 0 && !list.pointee.isEmpty
        }
        // account_freepages() of every block, once for the batch (isolated ones excluded).
        if freed != 0 { addFreePages(zone, freed) }
    }

    /// drain_pages_zone() for one CPU, or every CPU (drain_all_pages()).
    public func drainPages(cpu: Int? = nil) {
        for z in zones where z.isPopulated {
            for c in 0..<cpuCount where cpu == nil || cpu == c {
                let n = z.pcp[c].count
                if n > 0 { freePcppagesBulk(z, cpu: c, count: n, pindex: 0) }
            }
        }
    }

    // MARK: Allocation

    /// zone_watermark_ok() / __zone_watermark_ok()
    func watermarkOK(_ zone: Zone, order: Int, mark: UInt64, highest: ZoneType, _ flags: AllocFlags) -> Bool {
        var minMark = Int64(truncatingIfNeeded: mark)
        var free = zone.freePages &- ((Int64(1) &<< Int64(order)) &- 1)
        if !flags.contains(.minReserve) && !flags.contains(.highAtomic) { free &-= Int64(truncatingIfNeeded: zone.reservedHighAtomic) }
        if flags.contains(.minReserve) {
            minMark &-= minMark / 2
            if flags.contains(.nonBlock) { minMark &-= minMark / 4 }
        }
        if free <= minMark &+ Int64(truncatingIfNeeded: zone.lowmemReserve[highest.rawValue]) { return false }
        if order == 0 { return true }
        for o in order...PageOrder.max.raw where zone.nrFree[o] > 0 {
            for mt in 0..<MigrateType.pcpTypes where !zone.isFreeListEmpty(order: o, MigrateType(rawValue: mt)!) {
                return true
            }
            if flags.contains(.highAtomic) && !zone.isFreeListEmpty(order: o, .highAtomic) { return true }
        }
        return false
    }

    /// get_page_from_freelist(): walk the zonelist from the highest allowed zone down.
    /// Returns the frame and the index of its zone in `zones`.
    func getPageFromFreelist(order: Int, gfp: GFP, _ flagsIn: AllocFlags, highest: ZoneType, preferred: Int) -> (PFN, Int)? {
        if nodeCount > 1 { return getPageFromZonelist(order: order, gfp: gfp, flagsIn, highest: highest, preferred: preferred) }
        var flags = flagsIn
        let mt = gfp.migratetype
        while true {
            var zi = highest.rawValue
            while zi >= 0 {
                let got: PFN? = zoneRefs[zi]._withUnsafeGuaranteedRef { zone in
                    tryZone(zone, order: order, mt: mt, flags, highest: highest)
                }
                if let pfn = got {
                    if flags.contains(.highAtomic) {
                        zoneRefs[zi]._withUnsafeGuaranteedRef { reserveHighAtomicPageblock($0, pfn, order: order) }
                    }
                    return (pfn, zi)
                }
                zi -= 1
            }
            // Retry without ALLOC_NOFRAGMENT before giving up, as the kernel does.
            if flags.contains(.noFragment) {
                flags.remove(.noFragment)
                continue
            }
            return nil
        }
    }

    /// get_page_from_freelist() on a machine with several nodes: the preferred node's
    /// zonelist (its own zones, then the other nodes' by distance), zones above `highest`
    /// skipped. __GFP_THISNODE stops at the end of the preferred node's zones
    /// (ZONELIST_NOFALLBACK). Before leaving the preferred node with ALLOC_NOFRAGMENT the
    /// walk starts over without it: locality matters more than fragmentation.
    func getPageFromZonelist(order: Int, gfp: GFP, _ flagsIn: AllocFlags, highest: ZoneType, preferred: Int) -> (PFN, Int)? {
        var flags = flagsIn
        let mt = gfp.migratetype
        let thisNode = gfp.contains(.thisNode)
        let perNode = ZoneType.perNode
        let n = zones.count
        let base = preferred &* n
        retry: while true {
            var i = 0
            while i < n {
                let zi = zonelists[base &+ i]
                i &+= 1
                if zi % perNode > highest.rawValue { continue }
                if zi / perNode != preferred {
                    if thisNode { break }
                    if flags.contains(.noFragment) {
                        flags.remove(.noFragment)
                        continue retry
                    }
                }
                let got: PFN? = zoneRefs[zi]._withUnsafeGuaranteedRef { zone in
                    tryZone(zone, order: order, mt: mt, flags, highest: highest)
                }
                if let pfn = got {
                    if flags.contains(.highAtomic) {
                        zoneRefs[zi]._withUnsafeGuaranteedRef { reserveHighAtomicPageblock($0, pfn, order: order) }
                    }
                    return (pfn, zi)
                }
            }
            if flags.contains(.noFragment) {
                flags.remove(.noFragment)
                continue
            }
            return nil
        }
    }

    /// One zone of the zonelist walk: watermark check, then rmqueue().
    @inline(__always) func tryZone(_ zone: Zone, order: Int, mt: MigrateType, _ flags: AllocFlags, highest: ZoneType) -> PFN? {
        if !zone.isPopulated || zone.managedPages == 0 { return nil }
        let mark = zone.watermark(flags.watermark)
        if !watermarkOK(zone, order: order, mark: mark, highest: highest, flags) { return nil }
        if PerCPUPages.allowed(order) && zone.pcp[currentCPU].highMax > 0 {
            return rmqueuePcplist(zone, order: order, mt, flags)
        }
        var mode = RmqueueMode.normal
        let got: PFN?
        if order > 0 && flags.contains(.highAtomic) {
            got = rmqueueSmallest(zone, order: order, .highAtomic) ?? rmqueue(zone, order: order, mt, flags, mode: &mode)
        } else {
            got = rmqueue(zone, order: order, mt, flags, mode: &mode)
        }
        return got
    }

    /// reserve_highatomic_pageblock(): a successful high-order atomic allocation keeps its
    /// pageblock for later ones, up to about 1% of the zone (none if 1% is under a pageblock).
    func reserveHighAtomicPageblock(_ zone: Zone, _ pfn: PFN, order: Int) {
        let pb = PageOrder.pageblock.pages
        guard zone.managedPages / 100 >= pb else { return }
        let maxManaged = (zone.managedPages / 100 + pb - 1) / pb * pb
        guard zone.reservedHighAtomic < maxManaged else { return }
        let mt = pageblockMigratetype(pfn)
        guard isMergeable(mt) else { return }
        if order < PageOrder.pageblock.raw {
            let start = PFN(pfn.raw & ~(pb - 1))
            guard start.raw >= zone.startPFN, start.raw + pb <= zone.endPFN else { return }
            moveFreepagesBlock(zone, start, from: mt, to: .highAtomic)
            setPageblockMigratetype(start, .highAtomic)
            zone.reservedHighAtomic += pb
        } else {
            var b = pfn
            while b < pfn + (UInt64(1) << UInt64(order)) {
                setPageblockMigratetype(b, .highAtomic)
                b = b + pb
            }
            zone.reservedHighAtomic += UInt64(1) << UInt64(order)
        }
    }

    /// alloc_flags_nofragment(): Normal-zone allocations avoid fragmenting pageblocks while DMA32 exists.
    /// The preferred zone is the first populated zone of the zonelist at or below the
    /// highest allowed one; only a Normal preferred zone avoids fragmenting (on one node
    /// the kernel assumes DMA32 then exists).
    /// With several nodes the preferred zone is on the preferred node, and a Normal zone
    /// avoids fragmenting only when its node has a populated DMA32 below it.
    @inline(__always) func noFragmentFlags(highest: ZoneType, node: Int) -> AllocFlags {
        let base = nodeCount == 1 ? 0 : node &* ZoneType.perNode
        var zi = highest.rawValue
        while zi > 0 && !zoneRefs[base &+ zi]._withUnsafeGuaranteedRef({ $0.isPopulated }) { zi -= 1 }
        guard zi == ZoneType.normal.rawValue else { return [] }
        if nodeCount > 1 && !zoneRefs[base &+ ZoneType.dma32.rawValue]._withUnsafeGuaranteedRef({ $0.isPopulated }) { return [] }
        return .noFragment
    }

    /// __alloc_pages(): the fast path at the low watermark, then the slow path at the min
    /// watermark with the reserves the GFP flags allow. Reclaim, compaction and the OOM
    /// killer are not modelled yet: when the slow path finds nothing the allocation fails,
    /// with the kernel's warning unless __GFP_NOWARN. `node` is the preferred node
    /// (__alloc_pages_node(); default numa_node_id() of the current CPU); with
    /// __GFP_THISNODE the allocation stays on it.
    public func allocPages(_ gfp: GFP, order: Int = 0, node: Int = -1) -> PFN? {
        if order == 0 && node < 1 && nodeCount == 1 {
            let v = allocOrder0Pcp(gfp)
            if v != Self.noPage { return PFN(v) }
        }
        return allocPagesSlow(gfp, order: order, node: node)
    }

    /// allocOrder0Pcp()'s "no page here": take the general path.
    static let noPage = UInt64.max

    /// The common case of get_page_from_freelist() for an order-0 allocation on a machine
    /// with one node: the first usable zone of the zonelist passes the order-0 check of
    /// zone_watermark_fast() at the low watermark and this CPU's pcp list of the migrate
    /// type has a page (rmqueue_pcplist() without a refill). It takes that page exactly as
    /// allocPagesSlow() would (pcp counts, PGALLOC, zone_statistics(), prep_new_page()) and
    /// returns its PFN; in every other case it changes nothing and returns `noPage`.
    /// ALLOC_NOFRAGMENT and ALLOC_KSWAPD play no part in taking a page off a pcp list.
    /// The zones skipped before the first usable one come from firstUsableZone.
    @inline(__always) func allocOrder0Pcp(_ gfp: GFP) -> UInt64 {
        let highest = gfp.highestZoneIndex
        var zi = firstUsableZone[highest]
        if zi < 0 {
            if zi != Self.usableZoneUnknown { return Self.noPage }
            zi = findFirstUsableZone(highest)
            if zi < 0 { return Self.noPage }
        }
        return zoneRefs[zi]._withUnsafeGuaranteedRef { zone -> UInt64 in
            // __zone_watermark_ok() at order 0 with ALLOC_WMARK_LOW, no reserves (watermarkOK()'s
            // first test with those flags, written out: calling it costs ~20 instructions here).
            let free = zone.stats[VMStat.nrFreePages.rawValue] &- Int64(truncatingIfNeeded: zone.reservedHighAtomic)
            let mark = Int64(truncatingIfNeeded: zone.watermarks[Watermark.low.rawValue])
            if free <= mark &+ Int64(truncatingIfNeeded: zone.lowmemReserve[highest]) { return Self.noPage }
            let cpu = currentCPU
            let pcp = zone.pcp.base + cpu
            if pcp.pointee.highMax <= 0 { return Self.noPage }
            // order_to_pindex() of order 0 is the migrate type.
            let list = zone.pcpLists.base + (cpu &* PerCPUPages.listCount &+ gfp.migratetypeIndex)
            if list.pointee.isEmpty { return Self.noPage }
            pcp.pointee.freeCount >>= 1
            let v = list.pointee.popFrontNonEmpty()
            pcp.pointee.count &-= 1
            counters.add(ZoneType.pgalloc(zoneIndex: zi), 1)
            zoneStatistics(preferred: 0, node: 0)
            prepNewPage(PFN(UInt64(v)), order: 0, gfp: gfp)
            return UInt64(v)
        }
    }

    /// tryZone()'s skip of empty zones, from zone `highest` of node 0 down: the first zone
    /// it does not skip, or -1; remembered in firstUsableZone.
    @inline(never) func findFirstUsableZone(_ highest: Int) -> Int {
        var zi = highest
        while zi >= 0 && (zones[zi].presentPages == 0 || zones[zi].managedPages == 0) { zi -= 1 }
        firstUsableZone[highest] = zi
        return zi
    }

    /// allocPages() in general: any order, any node, a pcp list to refill, a zone to fall
    /// back to, the slow path.
    @inline(never)
    func allocPagesSlow(_ gfp: GFP, order: Int, node: Int) -> PFN? {
        guard order >= 0, order <= PageOrder.max.raw else {
            // WARN_ON_ONCE_GFP(): once per boot, and never with __GFP_NOWARN.
            if !gfp.contains(.noWarn) && !warnedOrderAboveMax {
                warnedOrderAboveMax = true
                log.append("WARNING: CPU: \(currentCPU) at mm/page_alloc.c: __alloc_pages_noprof: order \(order) > MAX_PAGE_ORDER")
            }
            return nil
        }
        // __alloc_pages_node() has VM_BUG_ON(nid >= MAX_NUMNODES): no node, no page.
        guard node < nodeCount else { return nil }
        let highest = gfp.highestZone
        let preferred = node >= 0 ? node : currentNode
        var flags: AllocFlags = [.wmarkLow]
        if gfp.contains(.kswapdReclaim) { flags.insert(.kswapd) }
        flags.formUnion(noFragmentFlags(highest: highest, node: preferred))
        var result = getPageFromFreelist(order: order, gfp: gfp, flags, highest: highest, preferred: preferred)
        if result == nil {
            // gfp_to_alloc_flags()
            var slow: AllocFlags = [.wmarkMin]
            if gfp.contains(.high) { slow.insert(.minReserve) }
            if !gfp.contains(.directReclaim) && !gfp.contains(.noMemalloc) {
                slow.insert(.nonBlock)
                if order > 0 { slow.insert(.highAtomic) }
            }
            result = getPageFromFreelist(order: order, gfp: gfp, slow, highest: highest, preferred: preferred)
            // __alloc_pages_slowpath(): kswapd, then direct reclaim, each followed by a retry
            // (the reclaim itself lives in mm/vmscan.c: Vmscan.swift).
            var attempt = 0
            while result == nil, let reclaim = reclaimer, !inReclaim {
                inReclaim = true
                let again = reclaim(gfp, order, attempt)
                inReclaim = false
                guard again else { break }
                attempt += 1
                result = getPageFromFreelist(order: order, gfp: gfp, slow, highest: highest, preferred: preferred)
            }
        }
        guard let (pfn, zi) = result else {
            if !gfp.contains(.noWarn) {
                log.append("page allocation failure: order:\(order), mode:(\(gfp)), nodemask=(null)")
            }
            return nil
        }
        // rmqueue(): PGALLOC per zone in pages; zone_statistics() one event per allocation.
        counters.add(ZoneType.pgalloc(zoneIndex: zi), Int64(1 << order))
        zoneStatistics(preferred: preferred, node: zi / ZoneType.perNode)
        prepNewPage(pfn, order: order, gfp: gfp)
        return pfn
    }

    /// prep_new_page() / post_alloc_hook(): refcount 1, clean flags, zeroed when asked, compound when asked.
    @inline(__always) func prepNewPage(_ pfn: PFN, order: Int, gfp: GFP) {
        let p = frames[pfn]
        p.pointee.state = .allocated
        p.pointee.order = UInt8(order)
        p.pointee.refcount = 1
        p.pointee.mapcount = 0
        p.pointee.flags = gfp.contains(.comp) && order > 0 ? .head : []
        p.pointee.mapping = 0
        p.pointee.index = 0
        p.pointee.priv = 0
        p.pointee.next = FrameTable.nil
        p.pointee.prev = FrameTable.nil
        if gfp.contains(.zero) { p.pointee.content = 0 }
        if order > 0 {
            for i in 1..<(1 << order) {
                let t = p + i
                t.pointee.state = .allocatedTail
                t.pointee.flags = gfp.contains(.comp) ? .tail : []
                t.pointee.refcount = 0
                if gfp.contains(.zero) { t.pointee.content = 0 }
            }
        }
    }

    // MARK: Freeing

    /// __free_pages(): drop the reference; the last one frees to the pcp list or the buddy lists.
    public func freePages(_ pfn: PFN, order: Int = 0) {
        guard pfn.raw < frames.endPFN else { return badPage(pfn, "freeing a PFN beyond the end of memory") }
        freePages(pfn, frames[pfn], order: order)
    }

    /// `freePages` for a caller that already holds the frame's record.
    @inline(__always)
    func freePages(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, order: Int) {
        guard p.pointee.state == .allocated, Int(p.pointee.order) == order else {
            return badPage(pfn, "freeing a page in state \(p.pointee.state) order \(p.pointee.order) as order \(order)")
        }
        p.pointee.refcount -= 1
        if p.pointee.refcount > 0 { return }
        guard p.pointee.mapcount == 0, p.pointee.table == nil else {
            return badPage(pfn, p.pointee.table != nil ? "page-table page freed as data" : "nonzero mapcount")
        }
        freeFrozenPages(pfn, p, order: order)
    }

    /// free_frozen_pages(): the page has no references left.
    @inline(__always) func freeFrozenPages(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, order: Int) {
        p.pointee.flags = []
        p.pointee.mapping = 0
        if order > 0 {
            for i in 1..<(1 << order) { (p + i).pointee.flags = [] }
        }
        counters.add(.pgfree, Int64(1 << order))
        tracer.emit(currentCPU, .pageFree(pfn: pfn.raw, order: order))
        zoneRefs[Int(p.pointee.zone)]._withUnsafeGuaranteedRef { zone in
            freeFrozenToZone(zone, pfn, p, order: order)
        }
    }

    /// The zone part of free_frozen_pages(): pcp list or buddy lists.
    @inline(__always) func freeFrozenToZone(_ zone: Zone, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, order: Int) {
        var mt = pageblockMigratetype(pfn)
        if PerCPUPages.allowed(order) && zone.pcp[currentCPU].highMax > 0 {
            if mt.rawValue > MigrateType.reclaimable.rawValue {
                if mt == .isolate {
                    freeOneBlock(zone, pfn, order: order, mt, toTail: false)
                    return
                }
                mt = .movable
            }
            freeToPcp(zone, pfn, p, order: order, mt)
        } else {
            freeOneBlock(zone, pfn, order: order, mt, toTail: false)
        }
    }

    /// bad_page(): report and leak the page, as the kernel does.
    func badPage(_ pfn: PFN, _ reason: String) {
        badPages += 1
        log.append("BUG: Bad page state: pfn:\(String(pfn.raw, radix: 16)) \(reason)")
    }

    /// __free_pages_core() with FPI_TO_TAIL: boot-time release of a free memblock range,
    /// split into the largest aligned blocks (__free_pages_memory()). Whole MAX_PAGE_ORDER
    /// blocks become virgin blocks without touching their struct pages.
    func freeBootRange(_ start: UInt64, _ end: UInt64) {
        var pfn = start
        while pfn < end {
            var order = min(PageOrder.max.raw, pfn == 0 ? PageOrder.max.raw : pfn.trailingZeroBitCount)
            while pfn + (UInt64(1) << UInt64(order)) > end { order -= 1 }
            let zone = zone(of: PFN(pfn))
            let n = UInt64(1) << UInt64(order)
            if order == PageOrder.max.raw && pageblockMigratetype(PFN(pfn)) == .movable {
                zone.virgin.append(start: pfn, end: pfn + n)
                zone.nrFree[order] += 1
                accountFreeBlocks(zone, Int64(n))
                accountFreepages(zone, Int64(n), .movable)
            } else {
                for i in 0..<n {
                    let f = frames[PFN(pfn + i)]
                    f.pointee.flags = []
                    f.pointee.refcount = 0
                    f.pointee.state = .allocated
                }
                freeOneBlock(zone, PFN(pfn), order: order, pageblockMigratetype(PFN(pfn)), toTail: true)
            }
            counters.add(.pgfree, Int64(n))
            pfn += n
        }
    }

    /// free_reserved_page(): a reserved frame (e.g. freed init memory) joins the managed pages.
    func freeReservedPage(_ pfn: PFN) {
        let p = frames[pfn]
        precondition(p.pointee.state == .reserved, "free_reserved_page on a non-reserved frame")
        p.pointee.flags.remove(.reserved)
        p.pointee.state = .allocated
        p.pointee.order = 0
        p.pointee.refcount = 1
        zone(of: pfn).managedPages += 1
        freePages(pfn)
    }

    // MARK: Contiguous ranges (alloc_contig_range)

    /// True when every frame of [start, start+n) is free in the buddy lists, on a pcp list, or virgin.
    func rangeIsFree(_ zone: Zone, _ start: UInt64, _ n: UInt64) -> Bool {
        var pfn = start
        let end = start + n
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            guard let p = frames.peek(PFN(pfn)) else { return false }
            switch p.pointee.state {
            case .buddy, .buddyTail, .pcp: pfn += 1
            default: return false
            }
        }
        return true
    }

    /// Takes every free block inside [start, end) out of the free lists (splitting blocks that straddle it).
    func isolateFreeRange(_ zone: Zone, _ start: UInt64, _ end: UInt64) {
        var pfn = start
        while pfn < end {
            if zone.virgin.contains(pfn) {
                let block = pfn & ~(VirginBlocks.blockPages - 1)
                zone.virgin.remove(block: block)
                zone.nrFree[PageOrder.max.raw] -= 1
                accountFreeBlocks(zone, -Int64(VirginBlocks.blockPages))
                addToFreeList(zone, PFN(block), order: PageOrder.max.raw, .movable, tail: false)
                continue
            }
            // Find the head of the free block containing pfn.
            var head = pfn
            var order = 0
            var found = false
            while order <= PageOrder.max.raw {
                let h = pfn & ~((UInt64(1) << UInt64(order)) - 1)
                if let p = frames.peek(PFN(h)), p.pointee.state == .buddy, Int(p.pointee.order) >= order,
                   h + (UInt64(1) << UInt64(p.pointee.order)) > pfn {
                    head = h
                    order = Int(p.pointee.order)
                    found = true
                    break
                }
                order += 1
            }
            precondition(found, "frame \(pfn) in a free range is not in a free block")
            let mt = MigrateType(rawValue: Int(frames[PFN(head)].pointee.pcpMigratetype))!
            delFromFreeList(zone, PFN(head), order: order, mt)
            accountFreepages(zone, -Int64(1 << order), mt)
            // Give back the parts outside [start, end) (split_free_page()).
            let blockEnd = head + (UInt64(1) << UInt64(order))
            var q = head
            while q < blockEnd {
                var o = min(order, q == 0 ? order : q.trailingZeroBitCount)
                while q + (UInt64(1) << UInt64(o)) > blockEnd { o -= 1 }
                let inside = q >= start && q < end
                if inside && q + (UInt64(1) << UInt64(o)) <= end {
                    for i in 0..<(UInt64(1) << UInt64(o)) { frames[PFN(q + i)].pointee.state = .allocated }
                    q += UInt64(1) << UInt64(o)
                } else if !inside && (q + (UInt64(1) << UInt64(o)) <= start || q >= end) {
                    freeOneBlock(zone, PFN(q), order: o, mt, toTail: false, tailsFree: true)
                    q += UInt64(1) << UInt64(o)
                } else {
                    // straddles a boundary: split further
                    var oo = o
                    while oo > 0 && !(q + (UInt64(1) << UInt64(oo)) <= start || q >= end || (q >= start && q + (UInt64(1) << UInt64(oo)) <= end)) { oo -= 1 }
                    if q >= start && q < end {
                        for i in 0..<(UInt64(1) << UInt64(oo)) { frames[PFN(q + i)].pointee.state = .allocated }
                    } else {
                        freeOneBlock(zone, PFN(q), order: oo, mt, toTail: false, tailsFree: true)
                    }
                    q += UInt64(1) << UInt64(oo)
                }
            }
            pfn = max(pfn + 1, min(blockEnd, end))
        }
    }

    /// alloc_contig_pages(): `nrPages` contiguous frames, naturally aligned to the power of
    /// two at or above `nrPages`, from the highest zone the GFP mask allows. Only free
    /// memory is used: migrating movable pages out of the way arrives with rmap.
    public func allocContigPages(nrPages: UInt64, gfp: GFP) -> PFN? {
        guard nrPages > 0 else { return nil }
        let align = UInt64(1) << UInt64(64 - (nrPages - 1).leadingZeroBitCount)
        drainPages()
        var zi = gfp.highestZone.rawValue
        while zi >= 0 {
            let zone = zones[zi]
            zi -= 1
            guard zone.isPopulated, zone.freePages >= Int64(nrPages) + Int64(zone.watermark(.min)) else { continue }
            var start = (zone.startPFN + align - 1) & ~(align - 1)
            while start + nrPages <= zone.endPFN {
                if rangeIsFree(zone, start, nrPages) {
                    isolateFreeRange(zone, start, start + nrPages)
                    for i in 0..<nrPages {
                        let p = frames[PFN(start + i)]
                        p.pointee.state = .allocated
                        p.pointee.order = 0
                        p.pointee.refcount = 1
                        p.pointee.flags = []
                        p.pointee.mapcount = 0
                    }
                    return PFN(start)
                }
                start += align
            }
        }
        return nil
    }

    /// free_contig_range(): every page freed on its own.
    public func freeContigRange(_ pfn: PFN, nrPages: UInt64) {
        for i in 0..<nrPages { freePages(pfn + i) }
    }

    // MARK: Page-table pages

    /// pagetable_alloc() + pagetable_*_ctor(): a zeroed unmovable page accounted in NR_PAGETABLE.
    public func allocPageTable(level: PageTableLevel) -> PFN? {
        guard let pfn = allocPages(.pgtableUser) else { return nil }
        frames[pfn].pointee.state = .pageTable
        frames.attachTable(pfn)
        counters.add(.nrPageTablePages, 1)
        return pfn
    }

    /// pagetable_dtor() + pagetable_free()
    public func freePageTable(_ pfn: PFN, level: PageTableLevel) {
        let p = frames[pfn]
        guard p.pointee.state == .pageTable else { return badPage(pfn, "freeing a non-table frame as a page table") }
        frames.detachTable(pfn)
        p.pointee.state = .allocated
        counters.add(.nrPageTablePages, -1)
        freePages(pfn)
    }

    /// Free pages of the node (MemFree): NR_FREE_PAGES, pcp pages excluded.
    public var freePagesTotal: Int64 { counters[.nrFreePages] }
    /// totalram_pages(): managed pages of every zone.
    public var totalRAMPages: UInt64 { zones.reduce(0) { $0 + $1.managedPages } }
}

extension PageAllocator: PageTableFrameSource {}
