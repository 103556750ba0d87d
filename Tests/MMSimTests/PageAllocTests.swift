// mm/page_alloc.c: the buddy allocator on small machines, with the CONFIG_DEBUG_VM-style checker
// after every operation: splitting and merging, zones and fallbacks, migrate types, per-CPU
// lists, watermarks, contiguous ranges, bad frees and page-table pages.

import Testing
import MMSimTestSupport

/// What the kernel would do, worked out from the zone state the model exposes.
enum BuddyRef {
    /// The zone holding `pfn` (page_zone()), from the zone spans.
    static func zone(_ m: Machine, _ pfn: PFN) -> ZoneType? {
        m.zones.first { $0.isPopulated && pfn.raw >= $0.startPFN && pfn.raw < $0.startPFN + $0.spannedPages }?.type
    }

    /// gfp_zone() and the node's zonelist below it, highest first (GFP_ZONE_TABLE).
    static func zonelist(_ gfp: GFP) -> [ZoneType] {
        if gfp.contains(.dma) { return [.dma] }
        if gfp.contains(.dma32) { return [.dma32, .dma] }
        if gfp.contains(.movable) && gfp.contains(.highmem) { return [.movable, .normal, .dma32, .dma] }
        return [.normal, .dma32, .dma]
    }

    static let pcpTypes: [MigrateType] = [.unmovable, .movable, .reclaimable]

    /// __zone_watermark_ok(); `minReserve`/`nonBlock`/`highAtomic` are ALLOC_MIN_RESERVE,
    /// ALLOC_NON_BLOCK and ALLOC_HIGHATOMIC.
    static func watermarkOK(_ z: Zone, order: Int, mark: UInt64, highest: ZoneType,
                            minReserve: Bool = false, nonBlock: Bool = false, highAtomic: Bool = false) -> Bool {
        var minMark = Int64(mark)
        var free = z.freePages - Int64((1 << order) - 1)
        if !(minReserve || nonBlock || highAtomic) {
            for o in 0...10 { free -= Int64(z.freeBlocks(order: o, .highAtomic) << o) }
        }
        if minReserve {
            minMark -= minMark / 2
            if nonBlock { minMark -= minMark / 4 }
        }
        if free <= minMark + Int64(z.lowmemReserve[highest.rawValue]) { return false }
        if order == 0 { return true }
        for o in order...10 {
            if pcpTypes.contains(where: { z.freeBlocks(order: o, $0) > 0 }) { return true }
            if highAtomic && z.freeBlocks(order: o, .highAtomic) > 0 { return true }
        }
        return false
    }

    /// The zone __alloc_pages() takes the allocation from: the first zone of the zonelist over
    /// the low watermark (fast path), else the first over the min watermark as
    /// gfp_to_alloc_flags() lowers it (slow path; no reclaim), else none. Valid while a zone
    /// that passes its watermark can always hand out the page (no ALLOC_NOFRAGMENT detours).
    static func predictZone(_ m: Machine, _ gfp: GFP, order: Int) -> ZoneType? {
        let list = zonelist(gfp)
        let zones = list.map { m.zones[$0.rawValue] }.filter { $0.isPopulated && $0.managedPages > 0 }
        if let z = zones.first(where: { watermarkOK($0, order: order, mark: $0.watermark(.low), highest: list[0]) }) {
            return z.type
        }
        let minReserve = gfp.contains(.high)
        let nonBlock = !gfp.contains(.directReclaim) && !gfp.contains(.noMemalloc)
        return zones.first {
            watermarkOK($0, order: order, mark: $0.watermark(.min), highest: list[0],
                        minReserve: minReserve, nonBlock: nonBlock, highAtomic: nonBlock && order > 0)
        }?.type
    }

    /// The min watermark as ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK (GFP_ATOMIC) sees it.
    static func atomicMark(_ min: UInt64) -> Int64 {
        var m = Int64(min)
        m -= m / 2
        m -= m / 4
        return m
    }

    /// Free blocks per order of one migrate type in one zone (a /proc/pagetypeinfo row).
    static func freeRow(_ z: Zone, _ mt: MigrateType) -> [Int] { (0...10).map { z.freeBlocks(order: $0, mt) } }

    /// Pageblocks of `mt` in a zone (the "Number of blocks type" table).
    static func pageblocks(_ m: Machine, _ z: Zone, _ mt: MigrateType) -> Int {
        var n = 0
        var pfn = z.startPFN & ~511
        while pfn < z.startPFN + z.spannedPages {
            if m.allocator.pageblockMigratetype(PFN(pfn)) == mt { n += 1 }
            pfn += 512
        }
        return n
    }

    /// Allocates with the predictor's check before every call, until the allocation fails.
    /// Returns the blocks obtained.
    static func exhaust(_ m: Machine, _ gfp: GFP, order: Int, check: Bool = true,
                        sourceLocation: SourceLocation = #_sourceLocation) -> [PFN] {
        var got: [PFN] = []
        while true {
            let predicted = predictZone(m, gfp, order: order)
            let pfn = m.allocator.allocPages(gfp, order: order)
            let actual = pfn.flatMap { zone(m, $0) }
            #expect(actual == predicted, "\(gfp) order \(order), allocation #\(got.count)", sourceLocation: sourceLocation)
            guard let p = pfn, actual == predicted else { return got }
            got.append(p)
        }
    }
}

extension Machine {
    var dma: Zone { zones[ZoneType.dma.rawValue] }
    var dma32: Zone { zones[ZoneType.dma32.rawValue] }
    var normal: Zone { zones[ZoneType.normal.rawValue] }
    var pgallocTotal: Int64 {
        counters[.pgallocDma] + counters[.pgallocDma32] + counters[.pgallocNormal] + counters[.pgallocMovable]
    }
    func meminfoValue(_ name: String) -> UInt64? { meminfo().first { $0.name == name }?.value }
}

@Suite struct PageAllocTests {
    // MARK: Random sequences

    /// Seeded random alloc/free sequences over orders 0...10 and six GFP masks on two CPUs, the
    /// checker after every operation; then everything is freed and the pcp lists drained: the
    /// buddy lists are back to the fully merged boot state and PGALLOC/PGFREE add up.
    /// `pcpHighOrders: false` leaves out orders 1...3 and 9 (the high-order pcp lists).
    @Test(arguments: [UInt64(1), 2, 3, 0xdead_beef], [true, false])
    func randomAllocFreeReturnsToMergedState(seed: UInt64, pcpHighOrders: Bool) throws {
        let m = try TestMachines.small(cpus: 2, memory: 128 << 20)
        m.allocator.drainPages()
        try m.checkInvariants()
        // After boot and a drain, every managed page is free and merged.
        #expect(m.allocator.freePagesTotal == Int64(m.totalRAMPages))
        let baseNrFree = m.zones.map { Array($0.nrFree) }
        let baseFree = m.zones.map(\.freePages)
        let baseBuddyinfo = m.buddyinfoText()
        let pgfree0 = m.counters[.pgfree]
        #expect(pgfree0 == Int64(m.totalRAMPages), "boot's frees are counted in pgfree")

        let masks: [GFP] = [.kernel, .highuserMovable, .atomic, .nowait, .kernelDMA32, [.kernel, .dma]]
        var rng = SeededGenerator(seed: seed)
        var live: [(pfn: PFN, order: Int)] = []
        var owned = Set<UInt64>()
        var pgalloc = [Int64](repeating: 0, count: 4)
        var freed: Int64 = 0
        var failures = 0
        for step in 0..<300 {
            m.allocator.currentCPU = Int.random(in: 0..<2, using: &rng)
            if live.isEmpty || Int.random(in: 0..<100, using: &rng) < 60 {
                let gfp = masks[Int.random(in: 0..<masks.count, using: &rng)]
                var order = Int.random(in: 0..<10, using: &rng) < 7 ? Int.random(in: 0...3, using: &rng) : Int.random(in: 4...10, using: &rng)
                if !pcpHighOrders && (1...3).contains(order) { order = 0 }
                if !pcpHighOrders && order == 9 { order = 8 }
                guard let pfn = try m.checked({ m.allocator.allocPages(gfp.union(.noWarn), order: order) }) else {
                    failures += 1
                    continue
                }
                #expect(pfn.raw & ((1 << UInt64(order)) - 1) == 0, "step \(step): order-\(order) block at \(pfn) is misaligned")
                let z = try #require(BuddyRef.zone(m, pfn))
                #expect(BuddyRef.zonelist(gfp).contains(z), "step \(step): \(gfp) got a page from \(z)")
                var overlap = false
                for i in 0..<(UInt64(1) << UInt64(order)) where !owned.insert(pfn.raw + i).inserted { overlap = true }
                #expect(!overlap, "step \(step): block \(pfn) order \(order) overlaps a live allocation")
                pgalloc[z.rawValue] += 1 << order
                live.append((pfn, order))
            } else {
                let (pfn, order) = live.remove(at: Int.random(in: 0..<live.count, using: &rng))
                try m.checked { m.allocator.freePages(pfn, order: order) }
                for i in 0..<(UInt64(1) << UInt64(order)) { owned.remove(pfn.raw + i) }
                freed += 1 << order
            }
            #expect(m.counters[.pgallocDma] == pgalloc[0] && m.counters[.pgallocDma32] == pgalloc[1]
                    && m.counters[.pgallocNormal] == pgalloc[2] && m.counters[.pgallocMovable] == pgalloc[3], "step \(step)")
            #expect(m.counters[.pgfree] == pgfree0 + freed, "step \(step)")
        }
        #expect(pgalloc.reduce(0, +) > 1000, "the sequence must allocate real memory")
        for (pfn, order) in live {
            try m.checked { m.allocator.freePages(pfn, order: order) }
            freed += 1 << order
        }
        try m.checked { m.allocator.drainPages() }
        #expect(m.allocator.badPages == 0)
        #expect(m.counters[.pgfree] == pgfree0 + freed)
        #expect(m.pgallocTotal == freed, "every page allocated was freed once")
        #expect(m.zones.map { Array($0.nrFree) } == baseNrFree)
        #expect(m.zones.map(\.freePages) == baseFree)
        #expect(m.buddyinfoText() == baseBuddyinfo)
        #expect(m.allocator.freePagesTotal == Int64(m.totalRAMPages))
    }

    // MARK: Splitting and merging

    /// expand(): an order-4 unmovable allocation on a fresh machine claims a MAX_ORDER movable
    /// block and leaves one unmovable free block at each order 4...9.
    @Test func splitLeavesOneBlockPerOrder() throws {
        let m = try TestMachines.small()
        let movable10 = m.dma32.freeBlocks(order: 10, .movable)
        let p = try #require(try m.checked { m.allocator.allocPages(.kernel, order: 4) })
        #expect(BuddyRef.zone(m, p) == .dma32)
        #expect(p.raw % 1024 == 0)
        #expect(BuddyRef.freeRow(m.dma32, .unmovable) == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
        #expect(m.dma32.freeBlocks(order: 10, .movable) == movable10 - 1)
        // Each free block is the upper half split off: p + 2^o at order o.
        for o in 4...9 {
            let f = m.frames[p + (UInt64(1) << UInt64(o))].pointee
            #expect(f.state == .buddy && Int(f.order) == o)
        }
        let row = m.pagetypeinfoText().split(separator: "\n").first { $0.contains("DMA32") && $0.contains("Unmovable") }
        #expect(row.map { $0.split(separator: " ").suffix(11).map { Int($0)! } } == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
    }

    /// An order-0 allocation on a fresh CPU: rmqueue_bulk() takes `batch` pages from one claimed
    /// MAX_ORDER block, lowest first; the pcp list keeps batch - 1 and the unmovable free lists
    /// hold the rest of the block, one block per set bit of 1024 - batch.
    @Test func orderZeroSplitThroughPcp() throws {
        let m = try TestMachines.small(cpus: 2)
        m.allocator.currentCPU = 1
        let batch = m.dma32.pcp[1].batch
        let p = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(p.raw % 1024 == 0)
        let rest = 1024 - batch
        #expect(BuddyRef.freeRow(m.dma32, .unmovable) == (0...10).map { (rest >> $0) & 1 })
        #expect(m.dma32.pcp[1].count == batch - 1)
    }

    /// __free_one_page(): two free buddies of order k (buddy = pfn ^ 2^k) become one block of
    /// order k + 1, and merging stops at a buddy that is in use.
    @Test func buddiesMerge() throws {
        let m = try TestMachines.small()
        let k = 5
        let a = try #require(try m.checked { m.allocator.allocPages(.kernel, order: k) })
        let b = try #require(try m.checked { m.allocator.allocPages(.kernel, order: k) })
        let c = try #require(try m.checked { m.allocator.allocPages(.kernel, order: k) })
        #expect(b == a.buddy(PageOrder(k)), "the split-off upper half is at the head of the order-\(k) list")
        #expect(c == a + 64)
        try m.checked { m.allocator.freePages(a, order: k) }
        #expect(m.frames[a].pointee.state == .buddy && Int(m.frames[a].pointee.order) == k)
        let before = BuddyRef.freeRow(m.dma32, .unmovable)
        try m.checked { m.allocator.freePages(b, order: k) }
        #expect(m.frames[a].pointee.state == .buddy && Int(m.frames[a].pointee.order) == k + 1)
        #expect(m.frames[b].pointee.state == .buddyTail)
        var after = before
        after[k] -= 1
        after[k + 1] += 1
        #expect(BuddyRef.freeRow(m.dma32, .unmovable) == after)
        // Freeing c completes the block: everything merges back into one MAX_ORDER block.
        try m.checked { m.allocator.freePages(c, order: k) }
        #expect(BuddyRef.freeRow(m.dma32, .unmovable) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(m.frames[a].pointee.state == .buddy && Int(m.frames[a].pointee.order) == 10)
    }

    /// Order-0 buddies merge once they leave the pcp list (free_pcppages_bulk()).
    @Test func orderZeroBuddiesMergeAfterDrain() throws {
        let m = try TestMachines.small()
        m.allocator.drainPages()
        let baseline = m.zones.map { Array($0.nrFree) }
        let x = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        let y = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(y == x.buddy(PageOrder(0)))
        try m.checked { m.allocator.freePages(y) }
        try m.checked { m.allocator.freePages(x) }
        #expect(m.frames[x].pointee.state == .pcp, "order-0 frees stop on the pcp list")
        try m.checked { m.allocator.drainPages() }
        #expect(m.zones.map { Array($0.nrFree) } == baseline)
        #expect(m.frames[x].pointee.state == .buddy && m.frames[x].pointee.order == 10)
    }

    /// __alloc_pages(): orders above MAX_PAGE_ORDER fail (and warn unless __GFP_NOWARN).
    @Test func orderAboveMaxFails() throws {
        let m = try TestMachines.small()
        let free = m.allocator.freePagesTotal
        #expect(try m.checked { m.allocator.allocPages(.kernel, order: 11) } == nil)
        #expect(try m.checked { m.allocator.allocPages(.highuserMovable, order: 18) } == nil)
        #expect(m.allocator.freePagesTotal == free)
        let n = m.allocator.log.count
        #expect(m.allocator.allocPages([.kernel, .noWarn], order: 11) == nil)
        #expect(m.allocator.log.count == n, "WARN_ON_ONCE_GFP() is silenced by __GFP_NOWARN")
    }

    /// WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER): one warning per boot, not one per call.
    @Test func orderAboveMaxWarnsOnce() throws {
        let m = try TestMachines.small()
        let n = m.allocator.log.count
        #expect(m.allocator.allocPages(.kernel, order: 11) == nil)
        #expect(m.allocator.log.count == n + 1)
        #expect(m.allocator.allocPages(.kernel, order: 12) == nil)
        #expect(m.allocator.log.count == n + 1)
    }

    // MARK: Zones

    @Test func zonesForGFPOnSmallMachine() throws {
        let m = try TestMachines.small()
        #expect(!m.normal.isPopulated, "256 MiB has no ZONE_NORMAL")
        let cases: [(GFP, ZoneType)] = [(.kernel, .dma32), (.highuserMovable, .dma32), (.atomic, .dma32),
                                        (.kernelDMA32, .dma32), ([.kernel, .dma], .dma), (.nowait, .dma32)]
        for (gfp, zone) in cases {
            for order in [0, 4, 9] {
                let p = try #require(try m.checked { m.allocator.allocPages(gfp, order: order) })
                #expect(BuddyRef.zone(m, p) == zone, "\(gfp) order \(order)")
            }
        }
        #expect(m.counters[.pgallocNormal] == 0)
        #expect(m.counters[.pgallocDma] == 1 + 16 + 512)
        #expect(m.counters[.pgallocDma32] == 5 * (1 + 16 + 512))
    }

    @Test func zonesForGFPWithNormalZone() throws {
        let m = try TestMachines.small(memory: 4 << 30)
        #expect(m.normal.isPopulated)
        let cases: [(GFP, ZoneType)] = [(.kernel, .normal), (.highuserMovable, .normal), (.atomic, .normal),
                                        (.kernelDMA32, .dma32), ([.kernel, .dma], .dma), (.pgtableUser, .normal)]
        for (gfp, zone) in cases {
            let p = try #require(m.allocator.allocPages(gfp))
            #expect(BuddyRef.zone(m, p) == zone, "\(gfp)")
        }
        #expect(m.counters[.pgallocNormal] == 4 && m.counters[.pgallocDma32] == 1 && m.counters[.pgallocDma] == 1)
        try m.checkInvariants()
    }

    /// Zone fallback and lowmem_reserve on a machine with ZONE_NORMAL: GFP_KERNEL fills Normal,
    /// then falls back to DMA32 and DMA, each time to the first zone whose watermark plus
    /// lowmem_reserve[Normal] allows it; DMA32 keeps its lowmem_reserve, which a GFP_DMA32
    /// allocation (lowmem_reserve[DMA32] = 0) may still take.
    @Test func lowmemReserveProtectsDMA32() throws {
        let m = try TestMachines.small(memory: 4 << 30)
        let big = BuddyRef.exhaust(m, [.kernel, .noWarn], order: 10)
        #expect(big.contains { BuddyRef.zone(m, $0) == .normal } && big.contains { BuddyRef.zone(m, $0) == .dma32 })
        _ = BuddyRef.exhaust(m, [.highuserMovable, .noWarn], order: 4)
        let d32 = m.dma32
        let reserve = Int64(d32.lowmemReserve[ZoneType.movable.rawValue])
        #expect(reserve == Int64((m.normal.managedPages - m.kernelInitPagesIn(.normal)) / 256))
        let min = Int64(d32.watermark(.min))
        let f2 = d32.freePages
        #expect(f2 - 15 <= min + reserve, "GFP_HIGHUSER_MOVABLE failed only once DMA32 reached min + lowmem_reserve")
        #expect(f2 > min + reserve - 16, "and not much below it")
        let low = BuddyRef.exhaust(m, [.kernelDMA32, .movable, .noWarn], order: 4)
        let fromDMA32 = low.filter { BuddyRef.zone(m, $0) == .dma32 }.count * 16
        #expect(Int64(fromDMA32) >= reserve - 32, "GFP_DMA32 may use DMA32's lowmem_reserve")
        #expect(d32.freePages - 15 <= min)
        try m.checkInvariants()
    }

    /// alloc_flags_nofragment(): ALLOC_NOFRAGMENT is set only when the preferred zone is
    /// ZONE_NORMAL. On 256 MiB (no Normal) an unmovable allocation claims a fragmented movable
    /// pageblock of DMA32 instead of skipping to ZONE_DMA.
    @Test func nofragmentOnlyWhenPreferredZoneIsNormal() throws {
        var c = MachineConfig.small
        c.minFreeKbytes = 128
        let m = try Machine(c)
        var inDMA32: [PFN] = [], inDMA: [PFN] = []
        while let p = m.allocator.allocPages([.highuserMovable, .noWarn]) {
            if BuddyRef.zone(m, p) == .dma32 { inDMA32.append(p) } else { inDMA.append(p) }
        }
        for p in inDMA { m.allocator.freePages(p) }
        for p in inDMA32 where p.raw & 1 == 1 { m.allocator.freePages(p) }
        m.allocator.drainPages()
        try m.checkInvariants()
        // DMA32: thousands of free pages, none in a block of pageblock size or more.
        #expect(m.dma32.freePages > 20_000)
        for o in 9...10 { #expect(MigrateType.allCases.allSatisfy { m.dma32.freeBlocks(order: o, $0) == 0 }) }
        #expect(m.dma.freePages == Int64(m.dma.managedPages))
        let p = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(BuddyRef.zone(m, p) == .dma32, "GFP_KERNEL must not skip DMA32 for DMA when DMA32 is the preferred zone")
        #expect(m.allocator.pageblockMigratetype(p) == .unmovable)
    }

    /// The other side of alloc_flags_nofragment(): when the preferred zone is ZONE_NORMAL the
    /// kernel sets ALLOC_NOFRAGMENT (on a single node, whether or not DMA32 is populated), so an
    /// unmovable allocation leaves Normal's fragmented movable pageblocks alone and claims a
    /// whole block from the next zone down: DMA32 on x86-64, DMA on arm64 (no DMA32 there).
    @Test(arguments: [Architecture.x86_64, .arm64])
    func nofragmentKeepsNormalUnfragmented(arch: Architecture) throws {
        var c = MachineConfig.small
        c.arch = arch
        c.memory = (3 << 30) + (128 << 20)
        c.minFreeKbytes = 128   // small watermarks: Normal is nearly empty when allocations move down
        let m = try Machine(c)
        let normal = m.normal
        #expect(normal.isPopulated)
        var mine: [PFN] = []
        while true {
            let p = try #require(m.allocator.allocPages(.highuserMovable))
            if BuddyRef.zone(m, p) != .normal {
                m.allocator.freePages(p)
                break
            }
            mine.append(p)
        }
        for p in mine where p.raw & 1 == 1 { m.allocator.freePages(p) }
        m.allocator.drainPages()
        try m.checkInvariants()
        for o in 9...10 { #expect(MigrateType.allCases.allSatisfy { normal.freeBlocks(order: o, $0) == 0 }) }
        #expect(normal.freePages > Int64(normal.watermark(.high)))
        let p = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(BuddyRef.zone(m, p) == (arch == .arm64 ? .dma : .dma32), "\(arch)")
        #expect(BuddyRef.pageblocks(m, normal, .unmovable) == 0)
    }

    // MARK: Migrate types

    /// Only MOVABLE pageblocks exist after boot; the first unmovable allocation claims a whole
    /// MAX_ORDER block (change_pageblock_range(): two pageblocks); movable allocations never
    /// take pages from unmovable pageblocks while movable memory is free; later unmovable
    /// allocations come from the claimed blocks.
    @Test func unmovableClaimsMovableBlocks() throws {
        let m = try TestMachines.small()
        let d32 = m.dma32
        for mt in MigrateType.allCases where mt != .movable {
            #expect(BuddyRef.pageblocks(m, d32, mt) == 0 && BuddyRef.pageblocks(m, m.dma, mt) == 0)
        }
        let p = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(m.allocator.pageblockMigratetype(p) == .unmovable)
        #expect(m.allocator.pageblockMigratetype(p.buddy(PageOrder(9))) == .unmovable)
        #expect(BuddyRef.pageblocks(m, d32, .unmovable) == 2)
        let table = m.pagetypeinfoText().split(separator: "\n").last { $0.hasPrefix("Node 0, zone    DMA32") }
        #expect(table.map { Int($0.split(separator: " ")[4])! } == 2, "pagetypeinfo: \(table ?? "")")

        for i in 0..<2000 {
            let q = try #require(m.allocator.allocPages(.highuserMovable))
            if m.allocator.pageblockMigratetype(q) != .movable {
                Issue.record("movable allocation #\(i) at \(q) came from a \(m.allocator.pageblockMigratetype(q)) pageblock")
                break
            }
        }
        #expect(BuddyRef.pageblocks(m, d32, .unmovable) == 2)
        for i in 0..<300 {
            let q = try #require(m.allocator.allocPages(.kernel))
            if m.allocator.pageblockMigratetype(q) != .unmovable {
                Issue.record("unmovable allocation #\(i) at \(q) is in a \(m.allocator.pageblockMigratetype(q)) pageblock")
                break
            }
        }
        try m.checkInvariants()
    }

    // MARK: Per-CPU lists

    /// nr_pcp_alloc(): the first refill of an empty list takes `batch` pages; MemFree
    /// (NR_FREE_PAGES) no longer counts them; `currentCPU` picks the list.
    @Test func pcpFirstRefillTakesBatch() throws {
        let m = try TestMachines.small(cpus: 2)
        let d32 = m.dma32
        let cpu0 = d32.pcp[0].count
        m.allocator.currentCPU = 1
        let batch = d32.pcp[1].batch
        let free0 = m.allocator.freePagesTotal
        _ = try #require(try m.checked { m.allocator.allocPages(.kernel) })
        #expect(d32.pcp[1].count == batch - 1)
        #expect(d32.pcp[0].count == cpu0, "CPU 0's lists are untouched")
        #expect(free0 - m.allocator.freePagesTotal == Int64(batch))
        #expect(m.meminfoValue("MemFree") == UInt64(m.allocator.freePagesTotal) * 4)
        #expect(m.vmstatValue(.nrFreePages) == m.allocator.freePagesTotal)
        // drain_pages() for CPU 1 only.
        try m.checked { m.allocator.drainPages(cpu: 1) }
        #expect(d32.pcp[1].count == 0 && d32.pcp[0].count == cpu0)
        #expect(free0 - m.allocator.freePagesTotal == 1)
    }

    /// The kernel's pcp bookkeeping for one order-0 list (mm/page_alloc.c, 6.8+): nr_pcp_alloc()
    /// with alloc_factor, free_frozen_page_commit() with free_count, nr_pcp_high(), nr_pcp_free().
    struct KernelPCP {
        var count = 0, high = 0, freeCount = 0, allocFactor = 0
        let batch: Int, highMin: Int, highMax: Int
        static let scaleMax = 5

        /// rmqueue_pcplist(): returns the pages taken from the buddy lists.
        mutating func alloc() -> Int {
            freeCount >>= 1
            var moved = 0
            if count == 0 {
                high = Swift.min(Swift.max(high, highMin), highMax)
                var b = 1
                if high >= batch {
                    b = batch << allocFactor
                    if highMin != highMax { high = Swift.min(high + b, highMax) }
                    let maxNrAlloc = Swift.max(high - count - batch, batch)
                    if b <= maxNrAlloc && allocFactor < Self.scaleMax { allocFactor += 1 }
                    b = Swift.min(b, maxNrAlloc)
                }
                moved = b
                count += b
            }
            count -= 1
            return moved
        }

        /// free_frozen_page_commit(): returns the pages given back to the buddy lists.
        mutating func free() -> Int {
            allocFactor >>= 1
            count += 1
            if freeCount < batch << Self.scaleMax { freeCount += 1 }
            let h = Swift.min(Swift.max(high, highMin), highMax)
            high = h
            if highMin != highMax && count >= h {
                let need = freeCount + batch
                if high < need { high = Swift.min(Swift.max(need, highMin), highMax) }
            }
            guard count >= h else { return 0 }
            let n = Swift.min(Swift.max(freeCount, batch), h - batch)
            let drained = Swift.min(n, count)
            count -= drained
            return drained
        }
    }

    /// Frees fill the pcp list up to `high`, then nr_pcp_free() pages go back; allocations refill
    /// in growing batches. Every step matches the kernel's arithmetic, and NR_FREE_PAGES moves
    /// only by what crosses between the pcp list and the buddy lists.
    @Test func pcpHighAndBatchArithmetic() throws {
        let m = try TestMachines.small(cpus: 2)
        let d32 = m.dma32
        m.allocator.currentCPU = 1
        let pcp0 = d32.pcp[1]
        #expect(pcp0.count == 0)
        var ref = KernelPCP(count: 0, high: pcp0.high, batch: pcp0.batch, highMin: pcp0.highMin, highMax: pcp0.highMax)
        let n = pcp0.highMax + 4000   // enough frees to overflow even the largest `high` several times
        var pages: [PFN] = []
        var refills = 0, drains = 0
        for i in 0..<n {
            let free = m.allocator.freePagesTotal
            let moved = ref.alloc()
            pages.append(try #require(m.allocator.allocPages(.kernel)))
            if moved > 0 { refills += 1 }
            #expect(d32.pcp[1].count == ref.count && d32.pcp[1].high == ref.high, "alloc #\(i)")
            #expect(free - m.allocator.freePagesTotal == Int64(moved), "alloc #\(i)")
            if d32.pcp[1].count != ref.count { break }
            if i % 500 == 0 { try m.checkInvariants() }
        }
        for (i, p) in pages.enumerated() {
            let free = m.allocator.freePagesTotal
            let drained = ref.free()
            m.allocator.freePages(p)
            if drained > 0 { drains += 1 }
            #expect(d32.pcp[1].count == ref.count && d32.pcp[1].high == ref.high, "free #\(i)")
            #expect(m.allocator.freePagesTotal - free == Int64(drained), "free #\(i)")
            if d32.pcp[1].count != ref.count { break }
            if i % 500 == 0 { try m.checkInvariants() }
        }
        #expect(refills > 5 && drains >= 3, "refills \(refills), drains \(drains)")
        #expect(d32.pcp[1].count <= d32.pcp[1].high)
        try m.checkInvariants()
    }

    // MARK: Watermarks

    /// ZONE_DMA alone (__GFP_DMA): GFP_KERNEL fails at the min watermark; GFP_NOWAIT gets no
    /// reserves either; GFP_ATOMIC (ALLOC_MIN_RESERVE: half of min, ALLOC_NON_BLOCK: a further
    /// quarter) goes deeper. Every allocation is checked against __zone_watermark_ok().
    @Test func watermarksKernelNowaitAtomic() throws {
        let m = try TestMachines.small()
        let dma = m.dma
        let min = Int64(dma.watermark(.min))
        let kernel = BuddyRef.exhaust(m, [.kernel, .dma, .noWarn], order: 1)
        #expect(kernel.count > 100)
        #expect(dma.freePages - 1 <= min, "GFP_KERNEL stops at min")
        #expect(dma.freePages - 1 >= min - 2)
        try m.checkInvariants()
        #expect(m.allocator.allocPages([.nowait, .dma], order: 1) == nil, "GFP_NOWAIT has no access to the min reserve")
        let atomic = BuddyRef.exhaust(m, [.atomic, .dma, .noWarn], order: 1)
        #expect(atomic.count >= 1, "GFP_ATOMIC goes below min")
        let mark = BuddyRef.atomicMark(dma.watermark(.min))
        #expect(dma.freePages - 1 <= mark)
        #expect(dma.freePages - 1 > mark - 2)
        try m.checkInvariants()
        // warn_alloc(): a failing allocation warns unless __GFP_NOWARN.
        let n = m.allocator.log.count
        #expect(m.allocator.allocPages([.atomic, .dma], order: 1) == nil)
        #expect(m.allocator.log.count == n + 1)
        #expect(m.allocator.log.last?.contains("page allocation failure: order:1") == true)
        #expect(m.allocator.allocPages([.atomic, .dma, .noWarn], order: 1) == nil)
        #expect(m.allocator.log.count == n + 1)
    }

    /// Order-0 GFP_DMA32 allocations on 64 MiB through the pcp lists: DMA32 first, DMA when DMA32
    /// is below its low watermark, then both down to min (+ lowmem_reserve[DMA32] in DMA), then
    /// GFP_ATOMIC below min. Each allocation is checked against the zone the kernel would pick.
    @Test func zoneFallbackOrderZero() throws {
        let m = try TestMachines.small(memory: 64 << 20)
        let got = BuddyRef.exhaust(m, [.kernelDMA32, .noWarn], order: 0)
        #expect(got.contains { BuddyRef.zone(m, $0) == .dma } && got.contains { BuddyRef.zone(m, $0) == .dma32 })
        for z in [m.dma, m.dma32] {
            #expect(z.freePages <= Int64(z.watermark(.min) + z.lowmemReserve[ZoneType.dma32.rawValue]), "\(z.name)")
        }
        try m.checkInvariants()
        #expect(m.allocator.allocPages([.nowait, .dma32]) == nil)
        let atomic = BuddyRef.exhaust(m, [.atomic, .dma32, .noWarn], order: 0)
        #expect(atomic.count >= 1)
        #expect(m.dma32.freePages <= BuddyRef.atomicMark(m.dma32.watermark(.min)))
        #expect(m.allocator.log.allSatisfy { !$0.contains("page allocation failure") }, "__GFP_NOWARN")
        try m.checkInvariants()
    }

    /// reserve_highatomic_pageblock(): a high-order atomic allocation that needed the reserves
    /// (ALLOC_HIGHATOMIC) reserves its pageblock as MIGRATE_HIGHATOMIC when 1% of the zone is at
    /// least a pageblock (DMA32 of 256 MiB: 52k pages).
    @Test func highOrderAtomicReservesPageblock() throws {
        let m = try TestMachines.small()
        while m.allocator.allocPages([.highuserMovable, .noWarn], order: 4) != nil {}
        #expect(BuddyRef.predictZone(m, [.atomic, .movable], order: 1) == .dma32)
        let p = try #require(try m.checked { m.allocator.allocPages([.atomic, .movable], order: 1) })
        #expect(BuddyRef.zone(m, p) == .dma32)
        #expect(m.allocator.pageblockMigratetype(p) == .highAtomic)
        #expect(m.dma32.reservedHighAtomic == 512)
    }

    // MARK: Contiguous ranges

    /// alloc_contig_pages()/free_contig_range(): 512 aligned pages, then freed: fully merged again.
    @Test func contigRange512() throws {
        let m = try TestMachines.small()
        m.allocator.drainPages()
        let base = m.zones.map { Array($0.nrFree) }
        let free = m.allocator.freePagesTotal
        let p = try #require(try m.checked { m.allocator.allocContigPages(nrPages: 512, gfp: .kernel) })
        #expect(p.raw % 512 == 0)
        #expect(free - m.allocator.freePagesTotal == 512)
        for i in 0..<UInt64(512) where m.frames[p + i].pointee.state != .allocated {
            Issue.record("frame \(p + i) is \(m.frames[p + i].pointee.state)")
            break
        }
        try m.checked { m.allocator.freeContigRange(p, nrPages: 512) }
        try m.checked { m.allocator.drainPages() }
        #expect(m.zones.map { Array($0.nrFree) } == base)
        #expect(m.allocator.freePagesTotal == free)
        #expect(m.allocator.allocContigPages(nrPages: 262_144, gfp: .kernel) == nil, "256 MiB has no free 1 GiB")
        try m.checkInvariants()
    }

    /// A 1 GiB (262144-page) contiguous range on a 4 GiB machine, 1 GiB aligned, then freed.
    @Test func contigRangeOneGiB() throws {
        let m = try TestMachines.small(memory: 4 << 30)
        m.allocator.drainPages()
        let base = m.zones.map { Array($0.nrFree) }
        let free = m.allocator.freePagesTotal
        let p = try #require(m.allocator.allocContigPages(nrPages: 262_144, gfp: .kernel))
        #expect(p.raw % 262_144 == 0)
        #expect(free - m.allocator.freePagesTotal == 262_144)
        #expect(m.frames[p].pointee.state == .allocated && m.frames[p + 262_143].pointee.state == .allocated)
        try m.checkInvariants()
        m.allocator.freeContigRange(p, nrPages: 262_144)
        m.allocator.drainPages()
        #expect(m.zones.map { Array($0.nrFree) } == base)
        #expect(m.allocator.freePagesTotal == free)
        try m.checkInvariants()
    }

    // MARK: Bad frees

    /// free_pages_prepare() / bad_page(): a double free and a free of a reserved frame are
    /// reported as "Bad page state" and leaked; nothing is counted and the checker is happy.
    @Test func badFreesAreReported() throws {
        let m = try TestMachines.small()
        let p = try #require(m.allocator.allocPages(.kernel))
        try m.checked { m.allocator.freePages(p) }
        let pgfree = m.counters[.pgfree]
        let free = m.allocator.freePagesTotal
        try m.checked { m.allocator.freePages(p) }
        #expect(m.allocator.badPages == 1)
        #expect(m.allocator.log.last?.contains("Bad page state") == true)
        #expect(m.counters[.pgfree] == pgfree && m.allocator.freePagesTotal == free)

        let q = try #require(m.allocator.allocPages(.kernel, order: 4))
        try m.checked { m.allocator.freePages(q, order: 4) }
        let pgfree2 = m.counters[.pgfree]
        try m.checked { m.allocator.freePages(q, order: 4) }
        #expect(m.allocator.badPages == 2)
        #expect(m.counters[.pgfree] == pgfree2)

        let total = m.totalRAMPages
        let free2 = m.allocator.freePagesTotal
        let text = PFN(m.kernelImage.start)
        #expect(m.frames[text].pointee.state == .reserved)
        try m.checked { m.allocator.freePages(text) }
        #expect(m.allocator.badPages == 3)
        #expect(m.allocator.log.last?.contains("Bad page state") == true)
        #expect(m.frames[text].pointee.state == .reserved)
        try m.checked { m.allocator.freePages(m.zeroPage) }
        #expect(m.allocator.badPages == 4)
        // A frame in the e820 hole below 1 MiB.
        try m.checked { m.allocator.freePages(PFN(0xa0)) }
        #expect(m.allocator.badPages == 5)
        #expect(m.totalRAMPages == total)
        #expect(m.allocator.freePagesTotal == free2)
        #expect(m.counters[.pgfree] == pgfree2)
    }

    // MARK: Page-table pages

    /// pagetable_alloc(): zeroed unmovable pages counted in NR_PAGETABLE and meminfo PageTables.
    @Test func pageTablePagesAreCounted() throws {
        let m = try TestMachines.small()
        #expect(m.counters[.nrPageTablePages] == 0)
        var tables: [PFN] = []
        for level in [PageTableLevel.pte, .pmd, .pud, .pte, .pte] {
            tables.append(try #require(try m.checked { m.allocator.allocPageTable(level: level) }))
        }
        #expect(m.counters[.nrPageTablePages] == 5)
        #expect(m.meminfoValue("PageTables") == 20)
        #expect(m.vmstatValue(.nrPageTablePages) == 5)
        for t in tables {
            #expect(m.frames[t].pointee.state == .pageTable)
            #expect(m.allocator.pageblockMigratetype(t) == .unmovable)
            #expect(m.frames.table(t).map { p in (0..<512).allSatisfy { p[$0] == 0 } } == true)
        }
        try m.checked { m.allocator.freePageTable(tables[0], level: .pte) }
        try m.checked { m.allocator.freePageTable(tables[1], level: .pmd) }
        #expect(m.counters[.nrPageTablePages] == 3)
        #expect(m.meminfoValue("PageTables") == 12)
        for t in tables[2...] { try m.checked { m.allocator.freePageTable(t, level: .pte) } }
        #expect(m.counters[.nrPageTablePages] == 0 && m.meminfoValue("PageTables") == 0)
        #expect(m.allocator.badPages == 0)
    }
}

extension Machine {
    /// Init pages freed into zone `z` after boot's watermark setup.
    func kernelInitPagesIn(_ z: ZoneType) -> UInt64 {
        zones[z.rawValue].isPopulated && zones[z.rawValue].contains(PFN(kernelInit.start)) ? kernelInit.end - kernelInit.start : 0
    }
}
