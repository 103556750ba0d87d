// mm/mmu_gather.c and arch/x86/mm/tlb.c: the unmap contract (unhook, flush, free), the gather's
// batch boundaries, x86 shootdown decisions, lazy CPUs, PCIDs, RCU table freeing, arm64.

@testable import MMSim
import MMSimTestSupport
import Testing

/// A process on CPU 0 with a thread on each other CPU; every task has touched `pages` pages
/// at `base` (the main thread wrote them, the threads read them), so every TLB caches them.
/// The validator and the tracer are on.
private func threaded(cpus: Int = 4, arch: Architecture = .x86_64, pages: Int, base: UInt64 = fixedAddr) throws -> (Machine, Task, [Task]) {
    var c = MachineConfig.reference
    c.cpus = cpus
    c.arch = arch
    let m = try Machine(c)
    m.validateTLB = true
    m.tracer.enabled = true
    let app = m.spawn(name: "app", cpu: 0)
    var threads: [Task] = []
    for cpu in 1..<cpus { threads.append(try #require(m.cloneThread(app, name: "t\(cpu)", cpu: cpu).successValue)) }
    let len = UInt64(pages) * Page.size
    #expect(m.mmap(app, addr: base, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace]).successValue == base)
    _ = m.madvise(app, addr: base, length: len, advice: .nohugepage)
    m.access(app, addr: base, length: len, kind: .write)
    for t in threads { m.access(t, addr: base, length: len, kind: .read) }
    try m.checkInvariants()
    return (m, app, threads)
}

/// The contract in the trace: no page or table is freed while a clear of it has not been
/// followed by a TLB flush.
private func orderingViolations(_ m: Machine) -> [String] {
    var cleared = Set<UInt64>(), queued = Set<UInt64>()
    var bad: [String] = []
    for r in m.tracer.records {
        switch r.event {
        case .clearPTE(_, _, let pfn): cleared.insert(pfn)
        case .tableQueued(let pfn, _): queued.insert(pfn)
        case .tlbFlush:
            cleared.removeAll()
            queued.removeAll()
        case .pageFree(let pfn, _) where cleared.contains(pfn): bad.append("page \(pfn) freed before the flush")
        case .tableFree(let pfn, _) where queued.contains(pfn): bad.append("table \(pfn) freed before the flush")
        default: break
        }
    }
    return bad
}

private func vm(_ m: Machine, _ s: VMStat) -> Int64 { m.vmstatValue(s) }

extension Result {
    var successValue: Success? { try? get() }
}

@Suite struct TLBShootdownTests {
    /// Every unmap path keeps the order, and afterwards the other threads, which had the
    /// translations cached, fault instead of using a stale entry (the validator checks each
    /// access; the checker every TLB entry).
    @Test func orderingHoldsOnEveryUnmapPath() throws {
        let (m, app, threads) = try threaded(pages: 1024)
        let t1 = threads[0]
        func after(_ what: String, _ addr: UInt64, _ len: UInt64) throws {
            #expect(orderingViolations(m).isEmpty, "\(what): \(orderingViolations(m))")
            try m.checkInvariants()
            // t1's MMU translates what it had cached: a hit must be what the page tables map
            // now; an unmapped page must fault. (The MMU alone: a user access that faulted
            // there would kill the whole thread group.)
            let root = try #require(app.mm?.pageTable.root)
            var a = addr
            while a < addr + len {
                if let pa = m.translate(cpu: t1.cpu, VirtAddr(a), .read).physAddr {
                    #expect(m.probe(root: root, VirtAddr(a))?.pfn == pa.pfn, "\(what): stale translation of \(a)")
                }
                a += Page.size
            }
            #expect(m.tlbViolations.isEmpty, "\(what): \(m.tlbViolations)")
        }
        // munmap of 8 pages in the middle.
        _ = try #require(m.munmap(app, addr: fixedAddr + 100 * Page.size, length: 8 * Page.size).successValue)
        try after("munmap", fixedAddr + 96 * Page.size, 16 * Page.size)
        // MADV_DONTNEED of a whole 2 MiB (its PTE table goes too).
        _ = try #require(m.madvise(app, addr: fixedAddr + 512 * Page.size, length: 512 * Page.size, advice: .dontneed).successValue)
        try after("MADV_DONTNEED", fixedAddr + 512 * Page.size, 4 * Page.size)
        // mremap shrink.
        _ = m.mremap(app, oldAddr: fixedAddr + 200 * Page.size, oldLength: 300 * Page.size, newLength: 100 * Page.size, flags: [])
        try after("mremap", fixedAddr + 290 * Page.size, 8 * Page.size)
        // A dirty shared file mapping: the delayed-rmap path.
        let f = m.createFile(name: "f", size: 64 * Page.size)
        let fa = try #require(m.mmap(app, length: 64 * Page.size, prot: .rw, flags: [.shared], file: f.id).successValue)
        m.access(app, addr: fa, length: 64 * Page.size, kind: .write)
        m.access(t1, addr: fa, length: 64 * Page.size, kind: .read)
        _ = try #require(m.munmap(app, addr: fa, length: 64 * Page.size).successValue)
        try after("munmap of a dirty shared file mapping", fa, 4 * Page.size)
        // execve by the main thread, then exit of the new image.
        m.exit(app)
        #expect(orderingViolations(m).isEmpty)
        try m.checkInvariants()
        #expect(m.tlbViolations.isEmpty)
    }

    /// flush_tlb_mm_range(): up to 33 pages page by page, 34 a full flush; one remote flush
    /// per call, an IPI to each of the other three CPUs.
    @Test(arguments: [(1, 1, 0), (16, 16, 0), (33, 33, 0), (34, 0, 1)])
    func ceilingChoosesPerPageOrFull(n: Int, one: Int64, all: Int64) throws {
        let (m, app, _) = try threaded(pages: 512)
        let (o0, a0, r0, rr0) = (vm(m, .nrTlbLocalFlushOne), vm(m, .nrTlbLocalFlushAll), vm(m, .nrTlbRemoteFlush), vm(m, .nrTlbRemoteFlushReceived))
        _ = m.munmap(app, addr: fixedAddr + 64 * Page.size, length: UInt64(n) * Page.size)
        #expect(vm(m, .nrTlbLocalFlushOne) - o0 == one)
        #expect(vm(m, .nrTlbLocalFlushAll) - a0 == all)
        #expect(vm(m, .nrTlbRemoteFlush) - r0 == 1)
        #expect(vm(m, .nrTlbRemoteFlushReceived) - rr0 == 3)
        try m.checkInvariants()
    }

    /// x86 merges VMAs: one munmap over three VMAs (different protections) gathers one
    /// range and flushes it once, page by page.
    @Test func oneFlushForSeveralVMAs() throws {
        let (m, app, _) = try threaded(cpus: 2, pages: 64)
        _ = m.mprotect(app, addr: fixedAddr + 3 * Page.size, length: 3 * Page.size, prot: .read)
        #expect(app.mm!.vmas.filter { $0.start >= fixedAddr && $0.end <= fixedAddr + 64 * Page.size }.count == 3)
        let o0 = vm(m, .nrTlbLocalFlushOne), r0 = vm(m, .nrTlbRemoteFlush)
        _ = m.munmap(app, addr: fixedAddr, length: 9 * Page.size)
        #expect(vm(m, .nrTlbRemoteFlush) - r0 == 1)
        #expect(vm(m, .nrTlbLocalFlushOne) - o0 == 9)
        try m.checkInvariants()
    }

    /// truncate: unmap_mapping_range() zaps the pages past the new end from every mapping of
    /// the file (one gather per VMA, private COW copies too), then they leave the page cache;
    /// a later access there is a SIGBUS.
    @Test
    func truncateUnmapsEveryMapping() throws {
        var c = MachineConfig.reference
        c.cpus = 2
        let m = try Machine(c)
        m.tracer.enabled = true
        let f = m.createFile(name: "f", size: 64 * Page.size)
        let a = m.spawn(name: "a", cpu: 0), b = m.spawn(name: "b", cpu: 1)
        let fa = try #require(m.mmap(a, length: 64 * Page.size, prot: .rw, flags: [.shared], file: f.id).successValue)
        let fb = try #require(m.mmap(b, length: 64 * Page.size, prot: .rw, flags: [.private], file: f.id).successValue)
        m.access(a, addr: fa, length: 64 * Page.size, kind: .write)          // shared: dirty page cache
        m.access(b, addr: fb, length: 64 * Page.size, kind: .read)           // private: page cache mapped
        m.access(b, addr: fb + 40 * Page.size, length: 4 * Page.size, kind: .write)   // 4 COW copies
        let filePages0 = vm(m, .nrFilePages), mapped0 = vm(m, .nrMapped), anon0 = vm(m, .nrAnonPages)
        let received0 = vm(m, .nrTlbRemoteFlushReceived), rssAnon0 = b.mm!.rss[RSSCounter.anonPages.rawValue]
        m.currentCPU = 0
        m.truncateFile(f, size: 32 * Page.size)
        #expect(f.pages == 32)
        #expect(filePages0 - vm(m, .nrFilePages) == 32)
        // Both mappings lose pages 32..63 (the private one 28 page-cache pages + its 4 copies).
        #expect(mapped0 - vm(m, .nrMapped) == 32)
        #expect(anon0 - vm(m, .nrAnonPages) == 4)
        #expect(rssAnon0 - b.mm!.rss[RSSCounter.anonPages.rawValue] == 4)
        // b runs on CPU 1: its mm's flush reached it by IPI.
        #expect(vm(m, .nrTlbRemoteFlushReceived) > received0)
        #expect(orderingViolations(m).isEmpty)
        try m.checkInvariants()
        // Below the end everything is still there; past it, SIGBUS.
        #expect(m.access(b, addr: fb + 8 * Page.size, length: Page.size, kind: .read).signal == nil)
        #expect(m.access(a, addr: fa + 40 * Page.size, length: Page.size, kind: .read).signal?.name == "SIGBUS")
        #expect(m.tlbViolations.isEmpty)
        try m.checkInvariants()
    }

    /// The trace of a munmap reads as the contract: the PTE clears, then one flush, then the
    /// frees (and no page freed before the flush).
    @Test func munmapTraceIsClearFlushFree() throws {
        let (m, app, _) = try threaded(cpus: 1, pages: 64)
        m.tracer.clear()
        _ = m.munmap(app, addr: fixedAddr + 8 * Page.size, length: 16 * Page.size)
        let kinds = m.tracer.records.map { r -> String in
            switch r.event {
            case .clearPTE: return "clear"
            case .tlbFlush(let reason, let pages): return "flush(\(reason.text),\(pages))"
            case .pageFree: return "free"
            case .gatherFree(_, let n): return "gather-free(\(n))"
            case .gatherBatch: return "batch"
            default: return "other"
            }
        }
        // 16 clears; the 7th fills the bundle, so a batch page is taken; one flush of 16 pages
        // on the only CPU; the gather frees its 16 pages (one free call); the batch page goes
        // back at the end.
        #expect(kinds == Array(repeating: "clear", count: 7) + ["batch"] + Array(repeating: "clear", count: 9)
                + ["flush(local mm shootdown,16)"] + Array(repeating: "free", count: 16) + ["gather-free(16)", "free"])
    }

    /// The ceiling is a tunable: 0 makes every flush a full one.
    @Test func ceilingTunable() throws {
        let (m, app, _) = try threaded(pages: 64)
        try m.tunables.set("tlb_single_page_flush_ceiling", 0)
        let a0 = vm(m, .nrTlbLocalFlushAll)
        _ = m.munmap(app, addr: fixedAddr + 8 * Page.size, length: Page.size)
        #expect(vm(m, .nrTlbLocalFlushAll) - a0 == 1)
        #expect(throws: ConfigError.self) { try m.tunables.set("mmu_gather_batch", 1) }
        #expect(throws: ConfigError.self) { try m.tunables.set("no_such_tunable", 1) }
    }

    /// Batch boundaries: the local bundle holds 7 pages (a batch counts as full at
    /// max - 1, room for a page+count pair) and each batch page 509; the next batch page is
    /// taken as soon as one is full, 19 at most: 7 + 19 x 509 = 9678 pages fill the gather,
    /// which then flushes on the way. (Ranges past 1024 pages also free whole PTE tables,
    /// flushed once more at tlb_finish_mmu().)
    @Test(arguments: [(6, 0, 1), (7, 1, 1), (515, 1, 1), (516, 2, 1), (9677, 19, 1), (9678, 19, 2)])
    func batchBoundaries(n: Int, batches: UInt64, flushes: UInt64) throws {
        let (m, app, _) = try threaded(cpus: 2, pages: 10240)
        let b0 = m.shootdown.gatherBatches, f0 = m.shootdown.rangeFlushes
        _ = m.munmap(app, addr: fixedAddr + 16 * Page.size, length: UInt64(n) * Page.size)
        #expect(m.shootdown.gatherBatches - b0 == batches)
        #expect(m.shootdown.rangeFlushes - f0 == flushes)
        #expect(orderingViolations(m).isEmpty)
        try m.checkInvariants()
    }

    /// A failed GFP_NOWAIT batch allocation makes the gather flush at once: with no batch
    /// page, every 7 pages.
    @Test func failedBatchAllocationForcesFlushes() throws {
        let (m, app, _) = try threaded(cpus: 2, pages: 256)
        m.failGatherAllocations = true
        let f0 = m.shootdown.rangeFlushes
        _ = m.munmap(app, addr: fixedAddr + 16 * Page.size, length: 70 * Page.size)
        #expect(m.shootdown.rangeFlushes - f0 == 10)
        #expect(m.shootdown.gatherBatches == 0)
        try m.checkInvariants()
    }

    /// __tlb_batch_free_encoded_pages(): at most 512 folios per free call, never separating a
    /// page from its count; with init_on_free the limit counts pages.
    @Test(arguments: [false, true])
    func freeLimitNeverSplitsAPair(initOnFree: Bool) throws {
        let m = try TestMachines.small()
        let t = m.spawn(name: "p")
        let mm = try #require(t.mm)
        m.tunables.initOnFree = initOnFree
        m.tracer.enabled = true
        var pfns: [PFN] = []
        for _ in 0..<511 { pfns.append(try #require(m.allocator.allocPages([]))) }
        let g = MMUGather(machine: m, mm: mm)
        for p in pfns { _ = g.removePage(p) }
        // A 4-page folio range: one slot for the page, one for the count.
        var range: [PFN] = []
        for _ in 0..<4 { range.append(try #require(m.allocator.allocPages([]))) }
        let slotsBefore = g.slotCount
        // The model's folio: four pages each with its own reference, put one by one.
        _ = g.removeFolioPages(range[0], 1)
        for p in range.dropFirst() { _ = g.removePage(p) }
        #expect(g.slotCount == slotsBefore + 4)
        g.finish()
        let chunks = m.tracer.records.compactMap { r -> Int? in
            if case .gatherFree(_, let n) = r.event { return n }
            return nil
        }
        #expect(chunks == [512, 3])
        try m.checkInvariants()

        // The two-slot encoding with a real count: 511 single pages then a pair of 4.
        m.tracer.clear()
        var more: [PFN] = []
        for _ in 0..<511 { more.append(try #require(m.allocator.allocPages([]))) }
        let big = try #require(m.allocator.allocContigPages(nrPages: 4, gfp: []))
        let g2 = MMUGather(machine: m, mm: mm)
        for p in more { _ = g2.removePage(p) }
        _ = g2.removeFolioPages(big, 4)
        #expect(g2.slotCount == 513)
        g2.finish()
        let chunks2 = m.tracer.records.compactMap { r -> Int? in
            if case .gatherFree(_, let n) = r.event { return n }
            return nil
        }
        // 512 folios fit in one call; counting pages (init_on_free), 511 + 4 > 512 and the
        // pair moves whole to the next call.
        #expect(chunks2 == (initOnFree ? [511, 1] : [512]))
        try m.checkInvariants()
    }

    /// Delayed rmap (dirty file pages): the gather may not go past the local bundle plus one
    /// batch (7 + 509 = 516 pages), and each PTE table's end forces a flush.
    @Test func delayedRmapLimitsTheGather() throws {
        let (m, app, threads) = try threaded(cpus: 2, pages: 16)
        let f = m.createFile(name: "f", size: 600 * Page.size)
        let fa: UInt64 = 0x2000_0000_0000
        _ = try #require(m.mmap(app, addr: fa, length: 600 * Page.size, prot: .rw, flags: [.shared, .fixedNoreplace], file: f.id).successValue)
        m.access(app, addr: fa, length: 600 * Page.size, kind: .write)
        m.access(threads[0], addr: fa, length: 600 * Page.size, kind: .read)
        let mapped0 = vm(m, .nrMapped)
        let f0 = m.shootdown.rangeFlushes, b0 = m.shootdown.gatherBatches
        _ = try #require(m.munmap(app, addr: fa, length: 600 * Page.size).successValue)
        // Flush 1 when the first batch is full (516 pages), flush 2 at the end of the PTE
        // table (the 84 others), flush 3 at tlb_finish_mmu for the freed tables.
        #expect(m.shootdown.rangeFlushes - f0 == 3)
        #expect(m.shootdown.gatherBatches - b0 == 1)
        #expect(mapped0 - vm(m, .nrMapped) == 600)
        #expect(vm(m, .nrDirty) == 600)
        #expect(orderingViolations(m).isEmpty)
        try m.checkInvariants()
    }

    /// tlb_finish_mmu() of a gather that ran while another one on the same mm was active
    /// flushes everything with freed_tables, so even a lazy CPU is interrupted.
    @Test func nestedGatherForcesAFullFlush() throws {
        let (m, app, threads) = try threaded(pages: 64)
        m.sleep(threads[2])
        let mm = try #require(app.mm)
        let outer = MMUGather(machine: m, mm: mm)
        let inner = MMUGather(machine: m, mm: mm)
        let full0 = m.shootdown.fullFlushes, r0 = vm(m, .nrTlbRemoteFlushReceived)
        inner.finish()
        #expect(m.shootdown.fullFlushes - full0 == 1)
        #expect(vm(m, .nrTlbRemoteFlushReceived) - r0 == 3)   // CPUs 1, 2 and the lazy 3
        #expect(m.tlbState[3].loadedMM == nil)                 // the lazy CPU left for init_mm
        // The outer one, alone again, owes nothing.
        let f1 = m.shootdown.rangeFlushes
        outer.finish()
        #expect(m.shootdown.rangeFlushes == f1)
        #expect(mm.flushPending == 0)
    }

    /// A lazy CPU is skipped by flushes that free no page table, and flushed (switching to
    /// init_mm) by one that does; waking up it catches up on what it skipped.
    @Test func lazyCPUs() throws {
        let (m, app, threads) = try threaded(pages: 1024)
        m.sleep(threads[2])
        #expect(m.tlbState[3].isLazy)
        let r0 = vm(m, .nrTlbRemoteFlushReceived)
        _ = m.munmap(app, addr: fixedAddr + 4 * Page.size, length: Page.size)
        #expect(vm(m, .nrTlbRemoteFlushReceived) - r0 == 2)
        // Behind now: its PCID slot's generation is older than the mm's.
        let slot = m.tlbState[3].loadedSlot
        #expect(m.tlbState[3].ctxGen[slot] < app.mm!.tlbGen)
        // Waking: switch_mm_irqs_off() from lazy to the same mm flushes to catch up.
        m.access(threads[2], addr: fixedAddr + 8 * Page.size, length: Page.size, kind: .read)
        #expect(m.tlbState[3].ctxGen[slot] == app.mm!.tlbGen)
        #expect(m.tlbViolations.isEmpty)
        m.sleep(threads[2])
        // Tables freed: the lazy CPU is interrupted and leaves for init_mm.
        let r1 = vm(m, .nrTlbRemoteFlushReceived)
        _ = m.munmap(app, addr: fixedAddr, length: 1024 * Page.size)
        #expect(vm(m, .nrTlbRemoteFlushReceived) - r1 >= 3)
        #expect(m.tlbState[3].loadedMM == nil)
        try m.checkInvariants()
    }

    /// choose_new_asid(): 6 PCID slots per CPU handed out round-robin; a switch back to an mm
    /// whose slot is still current needs no flush.
    @Test func dynamicPCIDsRoundRobin() throws {
        let m = try TestMachines.small()
        m.tracer.enabled = true
        var procs: [Task] = []
        for i in 0..<7 {
            let t = m.spawn(name: "p\(i)", cpu: 0)
            procs.append(t)
        }
        // Each touched its stack at spawn; now run them in order.
        for t in procs { m.access(t, addr: t.mm!.vmas.last!.end - Page.size, length: Page.size, kind: .read) }
        let st = m.tlbState[0]
        // p6 (the seventh) took slot 1 again, evicting the first process that had it.
        #expect(st.loadedSlot == m.tlbState[0].ctxID.firstIndex(of: procs[6].mm!.ctxID))
        #expect(st.ctxID.contains(procs[6].mm!.ctxID))
        #expect(!st.ctxID.contains(procs[0].mm!.ctxID) || !st.ctxID.contains(procs[1].mm!.ctxID))
        // Back to p5, whose slot is still current: no flush on that switch.
        m.tracer.clear()
        m.access(procs[5], addr: procs[5].mm!.vmas.last!.end - Page.size, length: Page.size, kind: .read)
        let switches = m.tracer.records.compactMap { r -> Int64? in
            if case .tlbFlush(.onTaskSwitch, let p) = r.event { return p }
            return nil
        }
        #expect(switches == [0])
        // ...and it still hits its cached translation (no walk).
        let walks = m.cpus[0].walks
        m.access(procs[5], addr: procs[5].mm!.vmas.last!.end - Page.size, length: Page.size, kind: .read)
        #expect(m.cpus[0].walks == walks)
        try m.checkInvariants()
    }

    /// Page-table pages wait for an RCU grace period: a lock-free walker that started before
    /// the unmap can still read them; PageTables falls only when the period ends.
    @Test func lockFreeWalkerNeverReadsAFreedTable() throws {
        let (m, app, threads) = try threaded(cpus: 2, pages: 512, base: 0x3000_0000_0000)
        let t1 = threads[0]
        let w = try #require(m.lockFreeWalkBegin(t1, 0x3000_0000_0000 + 5 * Page.size))
        // Down to the PTE table.
        while let s = m.lockFreeWalkState(w), s.level != .pte { #expect(m.lockFreeWalkStep(w)) }
        let tables0 = vm(m, .nrPageTablePages)
        _ = try #require(m.munmap(app, addr: 0x3000_0000_0000, length: 512 * Page.size).successValue)
        // The PTE, PMD and PUD tables are queued, not freed: the walker's CPU is inside its
        // read-side section.
        #expect(vm(m, .nrPageTablePages) == tables0)
        #expect(m.rcu.pendingCallbacks == 1)
        m.access(app, addr: fixedAddr, length: 0, kind: .read)
        #expect(m.synchronizeRCU() == [1])
        m.lockFreeWalkStep(w)
        m.lockFreeWalkEnd(w)
        #expect(m.tlbViolations.isEmpty)
        // It read the zapped (empty) entry of a table that is still a table: gup_fast then
        // falls back to the slow path, which finds no VMA.
        #expect(m.lockFreeWalkState(w)?.result == nil)
        #expect(m.lockFreeWalkState(w)?.reads == 4)
        // The walk is over: the grace period can end, and the tables go.
        m.synchronizeRCU()
        #expect(m.rcu.pendingCallbacks == 0)
        #expect(tables0 - vm(m, .nrPageTablePages) == 3)
        try m.checkInvariants()
    }

    /// The same interleaving with the RCU wait removed: the walker reads a freed frame and
    /// the check reports it (the test can fail).
    @Test func walkerCheckCatchesTablesFreedWithoutRCU() throws {
        let (m, app, threads) = try threaded(cpus: 2, pages: 512, base: 0x3000_0000_0000)
        m.debugFreeTablesWithoutRCU = true
        let w = try #require(m.lockFreeWalkBegin(threads[0], 0x3000_0000_0000))
        while let s = m.lockFreeWalkState(w), s.level != .pte { m.lockFreeWalkStep(w) }
        _ = m.munmap(app, addr: 0x3000_0000_0000, length: 512 * Page.size)
        m.lockFreeWalkStep(w)
        m.lockFreeWalkEnd(w)
        #expect(m.tlbViolations.count == 1)
        #expect(m.tlbViolations.first?.contains("no longer a page table") == true)
        #expect(throws: VMBug.self) { try m.checkInvariants() }
    }

    /// No table batch page: tlb_remove_table_sync_one() IPIs every CPU and frees at once, but
    /// a CPU inside a lock-free walk answers only when the walk ends.
    @Test func tableSyncWaitsForTheWalker() throws {
        let (m, app, threads) = try threaded(cpus: 2, pages: 512, base: 0x3000_0000_0000)
        m.failGatherAllocations = true
        let tables0 = vm(m, .nrPageTablePages)
        let w = try #require(m.lockFreeWalkBegin(threads[0], 0x3000_0000_0000))
        m.lockFreeWalkStep(w)
        _ = m.munmap(app, addr: 0x3000_0000_0000, length: 512 * Page.size)
        #expect(m.shootdown.tablesSync == 3)
        #expect(vm(m, .nrPageTablePages) == tables0)
        while m.lockFreeWalkStep(w) {}
        m.lockFreeWalkEnd(w)
        #expect(tables0 - vm(m, .nrPageTablePages) == 3)
        #expect(m.tlbViolations.isEmpty)
        try m.checkInvariants()
    }

    /// A grace period waits for every CPU that runs a task; idle CPUs never hold it up.
    @Test func gracePeriodWaitsForBusyCPUs() throws {
        let (m, app, threads) = try threaded(cpus: 3, pages: 512, base: 0x3000_0000_0000)
        let tables0 = vm(m, .nrPageTablePages)
        _ = m.munmap(app, addr: 0x3000_0000_0000, length: 512 * Page.size)
        #expect(vm(m, .nrPageTablePages) == tables0)
        m.access(app, addr: fixedAddr, length: 0, kind: .read)           // CPU 0 in user mode
        m.rcuQuiescentState(cpu: 0)
        m.sleep(threads[1])                                                // CPU 2 goes idle
        #expect(vm(m, .nrPageTablePages) == tables0)                       // CPU 1 still owes one
        m.rcuQuiescentState(cpu: 1)
        #expect(tables0 - vm(m, .nrPageTablePages) == 3)
        #expect(m.rcu.completed >= 1)
        try m.checkInvariants()
    }

    /// The validator: with the flush removed, a thread that had the translation cached keeps
    /// using it after the munmap freed the page; the use is reported with the frame's history.
    @Test func validatorCatchesARemovedFlush() throws {
        let (m, app, threads) = try threaded(cpus: 2, pages: 64)
        m.debugSkipTLBFlush = true
        _ = m.munmap(app, addr: fixedAddr + 4 * Page.size, length: Page.size)
        m.access(threads[0], addr: fixedAddr + 4 * Page.size, length: Page.size, kind: .read)
        #expect(m.tlbViolations.count == 1)
        let v = try #require(m.tlbViolations.first)
        #expect(v.contains("use after free"))
        #expect(v.contains("mm_page_free"))
        #expect(throws: VMBug.self) { try m.checkInvariants() }
    }

    /// The unbatched policy: a flush per page.
    @Test func perPagePolicyFlushesEveryPage() throws {
        let (m, app, _) = try threaded(cpus: 2, pages: 256)
        try m.tunables.set("unmap_flush_per_page", 1)
        let f0 = m.shootdown.rangeFlushes, r0 = vm(m, .nrTlbRemoteFlush)
        _ = m.munmap(app, addr: fixedAddr + 16 * Page.size, length: 100 * Page.size)
        #expect(m.shootdown.rangeFlushes - f0 == 100)
        #expect(vm(m, .nrTlbRemoteFlush) - r0 == 100)
        #expect(orderingViolations(m).isEmpty)
        try m.checkInvariants()
    }

    /// arm64: TLBI ...IS broadcasts reach every CPU, no IPI and no x86 counter; past 512
    /// pages one TLBI ASIDE1IS.
    @Test func arm64BroadcastsWithoutIPIs() throws {
        let (m, app, threads) = try threaded(arch: .arm64, pages: 1024)
        _ = m.munmap(app, addr: fixedAddr + 4 * Page.size, length: Page.size)
        #expect(m.shootdown.tlbiVA == 1)
        #expect(m.shootdown.totalIPIs == 0)
        #expect(vm(m, .nrTlbRemoteFlush) == 0 && vm(m, .nrTlbLocalFlushOne) == 0)
        _ = m.munmap(app, addr: fixedAddr + 8 * Page.size, length: 600 * Page.size)
        #expect(m.shootdown.tlbiASID == 1)
        for t in threads { m.access(t, addr: fixedAddr, length: 1024 * Page.size, kind: .read) }
        #expect(m.tlbViolations.isEmpty)
        try m.checkInvariants()
    }
}
