// The page-table tree: populate, look up, split, free by range, count per level, ENOMEM.
import Testing
@testable import MMSim

@Suite struct PageTableTests {
    @Test(arguments: Architecture.allCases)
    func oneMappingCountsEveryLevel(_ arch: Architecture) throws {
        let (_, source, pt) = makeTree(arch)
        try pt.setLeaf(VirtAddr(0x7F00_0000_1000), userRW(0x1234))
        // 4-level: root (PGD with P4D folded) + PUD + PMD + PTE; 5-level adds a real P4D table.
        var want = PageTableCounts()
        want.pud = 1; want.pmd = 1; want.pte = 1
        if arch == .x86_64_5level { want.pgd = 1; want.p4d = 1 } else { want.p4d = 1 }
        #expect(pt.counts == want)
        #expect(pt.tablePages == arch.levels)
        #expect(source.live == arch.levels)
        let levels: [PageTableLevel] = arch == .x86_64_5level ? [.pgd, .p4d, .pud, .pmd, .pte] : [.p4d, .pud, .pmd, .pte]
        #expect(source.allocated.map(\.1) == levels)
        // VmPTE counts PTE, PMD and PUD tables only: the same 12 kB on 4 and 5 levels.
        #expect(pt.pgtablesBytes == 3 * 4096)
        #expect(pt.lookup(VirtAddr(0x7F00_0000_1000)) == .leaf(userRW(0x1234), level: .pte))
        #expect(pt.lookup(VirtAddr(0x7F00_0000_2000)) == .none(level: .pte))
        #expect(pt.lookup(VirtAddr(0x1000)) == .none(level: .p4d))
    }

    @Test func fiveLevelVersusFourLevelTables() throws {
        // 3 mappings 1 TiB apart: separate PUD tables (512 GiB each) under one P4D table.
        for (arch, total) in [(Architecture.x86_64, 1 + 3 * 3), (.x86_64_5level, 2 + 3 * 3)] {
            let (_, _, pt) = makeTree(arch)
            for i in 0..<3 { try pt.setLeaf(VirtAddr(UInt64(i) << 40), userRW(UInt64(i) + 1)) }
            #expect(pt.tablePages == total)
            #expect(pt.counts.pud == 3 && pt.counts.pmd == 3 && pt.counts.pte == 3)
            #expect(pt.pgtablesBytes == 9 * 4096)
        }
    }

    @Test func tableEntriesUseTheArchitectureFormat() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(9))
        let top = try #require(pt.rawEntry(VirtAddr(0x1000), level: .p4d))
        #expect(top & 0xFFF == 0x067)                        // _PAGE_TABLE
        let (_, _, k) = makeTree(.arm64, kernel: true)
        try k.setLeaf(VirtAddr(0xFFFF_0000_0000_1000), LeafEntry(pfn: PFN(9), writable: true, accessed: true, dirty: true, global: true, noExec: true))
        let d = try #require(k.rawEntry(VirtAddr(0xFFFF_0000_0000_1000), level: .pmd))
        #expect(d & 0xFFFF_0000_0000_0FFF == Arm64PTE.uxnTable | 3)   // PMD_TYPE_TABLE | PMD_TABLE_UXN
    }

    @Test func hugeLeavesAndConflicts() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x4000_0000), userRW(0x40000, .size1G))
        try pt.setLeaf(VirtAddr(0x20_0000), userRW(0x200, .size2M))
        #expect(pt.counts.pmd == 1 && pt.counts.pte == 0)
        #expect(pt.lookup(VirtAddr(0x4123_4567)) == .leaf(userRW(0x40000, .size1G), level: .pud))
        #expect(throws: PageTableError.leafInTheWay(.pmd)) { try pt.setLeaf(VirtAddr(0x20_1000), userRW(1)) }
        #expect(throws: PageTableError.leafInTheWay(.pud)) { try pt.setLeaf(VirtAddr(0x4000_0000), userRW(1)) }
        try pt.setLeaf(VirtAddr(0x40_0000), userRW(1))
        #expect(throws: PageTableError.tableInTheWay(.pmd)) { try pt.setLeaf(VirtAddr(0x40_0000), userRW(0x400, .size2M)) }
        #expect(throws: PageTableError.nonCanonical(VirtAddr(0x8000_0000_0000))) {
            try pt.setLeaf(VirtAddr(0x8000_0000_0000), userRW(1))
        }
    }

    @Test(arguments: Architecture.allCases)
    func enomemWhenTheSourceRefuses(_ arch: Architecture) throws {
        let frames = FrameTable(endPFN: 1 << 20) { _, _ in }
        #expect(PageTable(arch: arch, frames: frames, source: BumpFrameSource(frames: frames, limit: 0)) == nil)
        let source = BumpFrameSource(frames: frames, limit: 2)
        let pt = try #require(PageTable(arch: arch, frames: frames, source: source))
        #expect(throws: PageTableError.noMemory) { try pt.setLeaf(VirtAddr(0x1000), userRW(1)) }
        // The table allocated before the failure stays (as __pud_alloc() left it).
        #expect(pt.tablePages == 2)
        source.limit = nil
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        #expect(pt.tablePages == arch.levels)
    }

    @Test func clearAndFreeByRange() throws {
        let (_, source, pt) = makeTree(.x86_64)
        // Two "VMAs" sharing one PTE table: [0x10000000, 0x10001000) and [0x10002000, 0x10003000).
        try pt.setLeaf(VirtAddr(0x1000_0000), userRW(1))
        try pt.setLeaf(VirtAddr(0x1000_2000), userRW(2))
        #expect(pt.clearEntry(VirtAddr(0x1000_0000), level: .pte) == PTEFormat.encode(userRW(1), arch: .x86_64))
        // free_pgtables() for the first VMA: ceiling = next VMA's start keeps the shared PTE table.
        pt.freeTables(start: VirtAddr(0x1000_0000), end: VirtAddr(0x1000_1000), floor: VirtAddr(0), ceiling: VirtAddr(0x1000_2000))
        #expect(pt.counts.pte == 1 && source.freed.isEmpty)
        pt.clearEntry(VirtAddr(0x1000_2000), level: .pte)
        // Last VMA gone: floor 0, ceiling 0 (top): PTE, PMD and PUD tables go, the root stays.
        var unhooked: [(PFN, PageTableLevel)] = []
        pt.freeTables(start: VirtAddr(0x1000_2000), end: VirtAddr(0x1000_3000)) { unhooked.append(($0, $1)) }
        #expect(unhooked.map(\.1) == [.pte, .pmd, .pud])
        #expect(pt.counts.total == 1 && pt.pgtablesBytes == 0)
        #expect(source.freed.isEmpty)                 // deferred: the caller releases after its flush
        for (pfn, level) in unhooked { pt.releaseTableFrame(pfn, level: level) }
        #expect(source.freed.count == 3)
        #expect(pt.lookup(VirtAddr(0x1000_2000)) == .none(level: .p4d))
    }

    @Test func floorKeepsTablesSharedWithLowerMappings() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x20_0000), userRW(1))          // PMD entry 1
        try pt.setLeaf(VirtAddr(0x40_0000), userRW(2))          // PMD entry 2, own PTE table
        pt.clearEntry(VirtAddr(0x40_0000), level: .pte)
        pt.freeTables(start: VirtAddr(0x40_0000), end: VirtAddr(0x40_1000), floor: VirtAddr(0x20_1000), ceiling: VirtAddr(0))
        // Its PTE table goes; the PMD table (shared with 0x200000) stays.
        #expect(pt.counts.pte == 1 && pt.counts.pmd == 1 && pt.counts.pud == 1)
        #expect(pt.lookup(VirtAddr(0x20_0000)) == .leaf(userRW(1), level: .pte))
    }

    @Test(arguments: Architecture.allCases)
    func splitHugeLeaf(_ arch: Architecture) throws {
        let (_, _, pt) = makeTree(arch, kernel: true)
        let big = LeafEntry(pfn: PFN(0x600), size: .size2M, writable: true, accessed: true, dirty: true,
                            global: true, noExec: true, cache: .uncached)
        let va = VirtAddr(0xFFFF_FF00_0060_0000)
        try pt.setLeaf(va, big)
        try pt.splitLeaf(va, level: .pmd)
        #expect(pt.counts.pte == 1)
        var small = big
        small.size = .size4K
        small.pfn = PFN(0x600 + 0x1FF)
        #expect(pt.lookup(va + 0x1FF_000) == .leaf(small, level: .pte))
        var n = 0
        pt.forEachEntry(start: va, end: va + 0x20_0000) { a, level, _ in
            #expect(level == .pte && a.raw >= va.raw)
            n += 1
        }
        #expect(n == 512)
    }

    @Test func forEachEntryVisitsLeavesOfEveryLevelInOrder() throws {
        let (_, _, pt) = makeTree(.x86_64_5level)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        try pt.setRaw(VirtAddr(0x3000), level: .pte, 0x1234_5000)   // a non-present (swap-like) entry
        try pt.setLeaf(VirtAddr(0x4000_0000), userRW(0x40000, .size1G))
        try pt.setLeaf(VirtAddr(0x80_0000_0000_0000), userRW(2))
        var seen: [(UInt64, PageTableLevel)] = []
        pt.forEachEntry(start: VirtAddr(0), end: VirtAddr(0x80_0000_0000_1000)) { a, l, _ in seen.append((a.raw, l)) }
        #expect(seen.map(\.0) == [0x1000, 0x3000, 0x4000_0000, 0x80_0000_0000_0000])
        #expect(seen.map(\.1) == [.pte, .pte, .pud, .pte])
        #expect(pt.lookup(VirtAddr(0x3000)) == .nonPresent(raw: 0x1234_5000, level: .pte))
    }

    @Test(arguments: Architecture.allCases)
    func freeEmptyAndDestroyReturnEveryFrame(_ arch: Architecture) throws {
        let (frames, source, pt) = makeTree(arch)
        for i in 0..<64 { try pt.setLeaf(VirtAddr(UInt64(i) << 30 | 0x1000), userRW(UInt64(i))) }
        let tables = pt.tablePages
        for i in 0..<32 { pt.clearEntry(VirtAddr(UInt64(i) << 30 | 0x1000), level: .pte) }
        pt.freeEmptyTables()
        #expect(pt.counts.pte == 32 && pt.counts.pmd == 32)
        #expect(source.freed.count == 64)
        pt.destroy()
        #expect(source.freed.count == tables && pt.counts.total == 0)
        #expect(source.allocated.allSatisfy { frames.table($0.0) == nil })
    }
}
