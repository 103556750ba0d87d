// The MMU end to end on a booted machine: page tables in frames from the buddy allocator,
// TLB hits and misses, faults, and the checker catching a stale TLB entry.

import Testing
import MMSimTestSupport

@Suite struct MMUTests {
    /// Maps `n` 4 KiB pages at `base` in a new user page table whose pages come from the
    /// machine's allocator (pagetable_alloc()), backed by fresh data frames.
    func mapped(_ m: Machine, base: UInt64, n: Int, writable: Bool = true) throws -> (PageTable, [PFN]) {
        let pt = try #require(PageTable(arch: m.arch, frames: m.frames, source: m.allocator))
        var data: [PFN] = []
        for i in 0..<n {
            let pfn = try #require(m.allocator.allocPages(.highuserMovable))
            data.append(pfn)
            try pt.setLeaf(VirtAddr(base + UInt64(i) * Page.size),
                           LeafEntry(pfn: pfn, writable: writable, user: true, accessed: false, dirty: false, noExec: true))
        }
        return (pt, data)
    }

    @Test(arguments: [Architecture.x86_64, .x86_64_5level, .arm64])
    func missThenHit(arch: Architecture) throws {
        let m = try TestMachines.small(arch: arch)
        let base: UInt64 = 0x1000_0000_0000
        let (pt, data) = try mapped(m, base: base, n: 4)
        // One PUD, one PMD, one PTE table below the root (plus the root: 4 or 5 levels).
        #expect(m.counters[.nrPageTablePages] == Int64(arch.levels))
        m.loadPageTable(cpu: 0, root: pt.root, asid: ASID(1))
        let c = m.cpus[0]
        let r1 = m.translate(cpu: 0, VirtAddr(base + 0x123), .read)
        #expect(r1.physAddr == PhysAddr((data[0].raw << 12) | 0x123))
        #expect(c.walks == 1)
        #expect(c.walkReferences == UInt64(arch.levels))
        let r2 = m.translate(cpu: 0, VirtAddr(base + 0x456), .read)
        #expect(r2.physAddr == PhysAddr((data[0].raw << 12) | 0x456))
        #expect(c.walks == 1, "the second access hits the TLB")
        #expect(c.tlb.counters.l1dHits == 1)
        // The walk set the accessed bit (x86 A / arm64 AF with hardware AF).
        if case .leaf(let leaf, _) = pt.lookup(VirtAddr(base)) { #expect(leaf.accessed && !leaf.dirty) }
        // A write through the clean cached entry walks again to set the dirty bit.
        _ = m.translate(cpu: 0, VirtAddr(base), .write)
        #expect(c.walks == 2)
        if case .leaf(let leaf, _) = pt.lookup(VirtAddr(base)) { #expect(leaf.dirty) }
        try m.checkInvariants()
    }

    /// The walker's memo of the upper levels (WalkMemo) never outlives what it recorded: a
    /// PMD entry pointed at another PTE table, and a page table torn down and rebuilt at
    /// the same place (table storage released and reused), are both seen by the next walk,
    /// which still reads every level.
    @Test(arguments: [Architecture.x86_64, .x86_64_5level])
    func walkMemoFollowsTheTables(arch: Architecture) throws {
        let m = try TestMachines.small(arch: arch)
        let base: UInt64 = 0x1000_0000_0000
        let (pt, data) = try mapped(m, base: base, n: 2)
        let (other, otherData) = try mapped(m, base: base, n: 2)
        m.loadPageTable(cpu: 0, root: pt.root, asid: ASID(1))
        let c = m.cpus[0]
        #expect(m.translate(cpu: 0, VirtAddr(base), .read).physAddr == PhysAddr(data[0].raw << 12))
        // Same region, next page: the memo's path, every level still counted.
        #expect(m.translate(cpu: 0, VirtAddr(base + Page.size), .read).physAddr == PhysAddr(data[1].raw << 12))
        #expect(c.walks == 2 && c.walkReferences == 2 * UInt64(arch.levels))
        // Point the PMD entry at the other table's PTE table; flush; walk again.
        let pmd = try #require(pt.slot(VirtAddr(base), level: .pmd))
        let saved = pmd.pointee
        pmd.pointee = try #require(other.slot(VirtAddr(base), level: .pmd)).pointee
        _ = c.tlb.flushASID(ASID(1))
        #expect(m.translate(cpu: 0, VirtAddr(base + Page.size), .read).physAddr == PhysAddr(otherData[1].raw << 12))
        pmd.pointee = saved
        _ = c.tlb.flushASID(ASID(1))
        #expect(m.translate(cpu: 0, VirtAddr(base), .read).physAddr == PhysAddr(data[0].raw << 12))
        // Tear both tables down and build a new one, which reuses their frames and storage.
        m.loadPageTable(cpu: 0, root: nil, asid: ASID(1), flush: true)
        pt.destroy()
        other.destroy()
        let (fresh, freshData) = try mapped(m, base: base, n: 2)
        m.loadPageTable(cpu: 0, root: fresh.root, asid: ASID(1), flush: true)
        #expect(m.translate(cpu: 0, VirtAddr(base + Page.size), .read).physAddr == PhysAddr(freshData[1].raw << 12))
        #expect(c.walkReferences == UInt64(c.walks) * UInt64(arch.levels))
    }

    @Test func faultsArePrecise() throws {
        let m = try TestMachines.small()
        let base: UInt64 = 0x7000_0000_0000
        let (pt, _) = try mapped(m, base: base, n: 1, writable: false)
        m.loadPageTable(cpu: 0, root: pt.root, asid: ASID(1))
        // Not present: x86 #PF error code U/S (4), no P bit.
        let f1 = try #require(m.translate(cpu: 0, VirtAddr(base + 0x10_0000), .read).fault)
        #expect(f1.reason == .notPresent && f1.x86ErrorCode == 0x4)
        // Write to a read-only page: P|W|U = 7.
        let f2 = try #require(m.translate(cpu: 0, VirtAddr(base), .write).fault)
        #expect(f2.reason == .writeToReadOnly && f2.x86ErrorCode == 0x7)
        // Instruction fetch from an NX page: P|U|I = 0x15.
        let f3 = try #require(m.translate(cpu: 0, VirtAddr(base), .execute).fault)
        #expect(f3.reason == .noExec && f3.x86ErrorCode == 0x15)
        // Non-canonical: #GP.
        let f4 = try #require(m.translate(cpu: 0, VirtAddr(0x8000_0000_0000), .read).fault)
        #expect(f4.isGeneralProtection)
        #expect(m.cpus[0].faults == 4)
    }

    /// The checker's TLB rule: change a PTE without flushing and the cached entry is
    /// reported; a pending flush covers it; the flush itself makes the state consistent.
    @Test func checkerCatchesAMissingFlush() throws {
        let m = try TestMachines.small()
        let base: UInt64 = 0x1000_0000_0000
        let (pt, data) = try mapped(m, base: base, n: 2)
        m.loadPageTable(cpu: 0, root: pt.root, asid: ASID(3))
        _ = m.translate(cpu: 0, VirtAddr(base), .read)
        try m.checkInvariants()
        // Unhook the page (ptep_get_and_clear) but "forget" the flush.
        _ = pt.clearEntry(VirtAddr(base), level: .pte)
        #expect(throws: VMBug.self) { try m.checkInvariants() }
        do {
            try m.checkInvariants()
        } catch let bug as VMBug {
            #expect(bug.rule == "tlb-stale")
        }
        // A flush decided but not yet done is tolerated...
        m.notePendingTLBFlush(PendingTLBFlush(asid: ASID(3), start: VirtAddr(base), end: VirtAddr(base + Page.size)))
        try m.checkInvariants()
        // ...and once it is done the TLB agrees with the page table.
        m.completePendingTLBFlushes()
        // A walk fills both the L1 dTLB and the L2: INVLPG drops both copies.
        #expect(m.cpus[0].tlb.flushPage(VirtAddr(base), asid: ASID(3)) == 2)
        try m.checkInvariants()
        m.allocator.freePages(data[0])
        try m.checkInvariants()
    }

    @Test func pcidKeepsOtherAddressSpacesWithoutTaggingFlushes() throws {
        for pcid in [true, false] {
            var c = MachineConfig.small
            c.pcid = pcid
            let m = try Machine(c)
            let (a, _) = try mapped(m, base: 0x1000_0000_0000, n: 1)
            let (b, _) = try mapped(m, base: 0x1000_0000_0000, n: 1)
            m.loadPageTable(cpu: 0, root: a.root, asid: ASID(1))
            _ = m.translate(cpu: 0, VirtAddr(0x1000_0000_0000), .read)
            m.loadPageTable(cpu: 0, root: b.root, asid: ASID(2))
            _ = m.translate(cpu: 0, VirtAddr(0x1000_0000_0000), .read)
            m.loadPageTable(cpu: 0, root: a.root, asid: ASID(1))
            _ = m.translate(cpu: 0, VirtAddr(0x1000_0000_0000), .read)
            // With PCIDs the switch back finds A's entry still cached: 2 walks. Without, 3.
            #expect(m.cpus[0].walks == (pcid ? 2 : 3))
            try m.checkInvariants()
        }
    }
}
