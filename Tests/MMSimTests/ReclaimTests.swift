// Memory pressure: memcg limit reclaim with swap, swap-in with VMA readahead, clean page cache
// dropped at the limit, workingset refaults. Numbers from ../shared/fidelity/reclaim-linux-6.18-x86_64.json
// (anon_swap, file_cache at L = 32 MiB) where the model should repeat the kernel, and kernel rules otherwise.
import Testing
@testable import MMSim

@Suite struct ReclaimTests {
    /// anon_swap_L32: N = 16384 pages touched in a 32 MiB memcg with swap on. Every page is
    /// resident or in swap (RssAnon + VmSwap = N, the kernel's own identity); re-reading every
    /// page swaps each back in (pswpin = N, workingset_refault_anon = N: every slot had a
    /// shadow; the model reads up to 5 of them twice, a readahead page evicted before its own
    /// fault when the scan cycles the whole inactive list, which the kernel never did; none activated because the refault distance exceeds the tiny workingset),
    /// the harness itself mlocked as reclaim.c's is (mlockall(MCL_CURRENT)), mostly through readahead windows of 8 (page-cluster 3: majflt about N/8; the kernel
    /// measured 2050 for N = 16384).
    @Test func memcgSwapsAndReadsBack() throws {
        let r = try ScenarioRunner.run("""
        machine preset=reference
        swapon /swapfile 1G
        cgroup create rcl
        cgroup set rcl memory.limit_in_bytes=32M
        spawn wl cpu=1
        cgroup attach rcl wl
        wl: mlockall current
        wl: buf = mmap 0x100000000000 64M rw private anon fixed_noreplace
        wl: madvise buf 64M nohugepage
        mark touch
        wl: write buf +64M
        expect vmstat.pswpout since touch in 7000..10000
        expect memcg.rcl.max_usage == 32768 kB
        expect vmstat.pgscan_direct since touch == 0
        expect vmstat.pgrefill since touch == 0
        mark reread
        wl: read buf +64M
        expect vmstat.pswpin since reread in 16384..16400
        expect vmstat.workingset_refault_anon since reread in 16384..16400
        expect vmstat.workingset_activate_anon since reread == 0
        expect wl.majflt since reread in 2040..2060
        """, file: "t.mmsim", options: ScenarioOptions(checkInvariants: false))
        #expect(r.passed, "\(r.summaryText())")
    }
}

/// LRU order and aging, from the kernel's rules (mm/swap.c, mm/vmscan.c).
@Suite struct LRUOrderTests {
    /// folio_add_lru(): new folios wait in the CPU's lru_add batch (PAGEVEC_SIZE = 31) and are
    /// on no list until it is full; the 31st moves all of them, in fault order, so the newest
    /// is at the head of the inactive anon list and the oldest at its tail.
    @Test func lruAddBatchDrainsAtThirtyOne() throws {
        let m = try Machine(MachineConfig.preset(named: "small"))
        let t = m.spawn(name: "p", cpu: 0)
        let base: UInt64 = 0x1000_0000_0000
        _ = m.mmap(t, addr: base, length: 64 << 12, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.lruAddDrainAll()
        let before = m.counters[.nrInactiveAnon]
        m.access(t, addr: base, length: 30 << 12, kind: .write)
        #expect(m.counters[.nrInactiveAnon] == before)
        #expect(m.fbatches.count(cpu: 0) == 30)
        m.access(t, addr: base + (30 << 12), length: 1 << 12, kind: .write)
        #expect(m.counters[.nrInactiveAnon] == before + 31)
        #expect(m.fbatches.count(cpu: 0) == 0)
        let list = m.memcg.lruvec(0, node: 0).pfns(.inactiveAnon, frames: m.frames)
        let mapped = (0..<31).map { i -> PFN in
            let slot = t.mm!.pageTable.slot(VirtAddr(base + UInt64(i) << 12), level: .pte)!
            return PTEFormat.decode(slot.pointee, level: .pte, arch: m.arch)!.pfn
        }
        #expect(Array(list.prefix(31)) == mapped.reversed())
        try m.checkInvariants()
    }

    /// shrink_inactive_list() takes folios from the tail: in a memcg whose limit is lowered,
    /// the page cache read first is evicted before the page cache read later, and a clean,
    /// unmapped, unreferenced folio is reclaimed at its first scan (FOLIOREF_RECLAIM).
    @Test func reclaimEvictsTheOldestCleanPageCacheFirst() throws {
        let m = try Machine(MachineConfig.preset(named: "small"))
        let t = m.spawn(name: "p", cpu: 0)
        let g = try m.memcgCreate(path: "g")
        m.memcgAttach(t, to: g)
        _ = m.mmap(t, length: 4096, prot: .rw, flags: [.private, .anonymous])    // t runs on its CPU
        let old = m.createFile(name: "old", size: 4 << 20, cached: false)
        let new = m.createFile(name: "new", size: 4 << 20, cached: false)
        m.readFile(old, offset: 0, length: 4 << 20)
        m.readFile(new, offset: 0, length: 4 << 20)
        m.lruAddDrainAll()
        #expect(old.cachedPages == 1024 && new.cachedPages == 1024)
        // Lower the limit by 2 MiB below the usage: limit reclaim of at least 512 pages.
        try m.memcgWrite(g, "memory.limit_in_bytes", (g.memory.usage - 512) * 4096)
        #expect(old.cachedPages < 1024)
        #expect(new.cachedPages == 1024)
        #expect(m.counters[.pgstealFile] == m.counters[.pgscanFile])
        #expect(m.counters[.pgscanDirect] == 0)
        try m.checkInvariants()
    }
}

/// The ideas of tools/testing/selftests/mm/cow.c and mlock tests with swap in the way.
@Suite struct SwapSemanticsTests {
    static let base: UInt64 = 0x1000_0000_0000

    func content(_ m: Machine, _ t: Task, _ i: Int) -> UInt64? {
        guard let slot = t.mm?.pageTable.slot(VirtAddr(Self.base + UInt64(i) << 12), level: .pte),
              let l = PTEFormat.decode(slot.pointee, level: .pte, arch: m.arch), l.present else { return nil }
        return m.frames[l.pfn].pointee.content
    }

    /// MADV_PAGEOUT, limit reclaim evicting the now clean swap-cache folios, fork, then the
    /// child reads the pages back from swap (swap-in with readahead): the data is what the
    /// parent wrote. The child's write after that gets its own copy (do_wp_page(): the slot
    /// is still referenced by the parent's swap PTE), and the parent reads its own data.
    @Test func pageoutThenSwapInInAForkChildKeepsTheData() throws {
        let m = try Machine(MachineConfig.preset(named: "small"))
        try m.swapon(name: "/swapfile", size: 64 << 20)
        let p = m.spawn(name: "p", cpu: 0)
        let g = try m.memcgCreate(path: "g")
        m.memcgAttach(p, to: g)
        _ = m.mmap(p, addr: Self.base, length: 16 << 12, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: Self.base, length: 16 << 12, kind: .write)
        m.access(p, addr: Self.base, length: 8 << 12, kind: .write)      // pages 0-7 written twice
        let before = (0..<16).map { content(m, p, $0)! }
        _ = m.madvise(p, addr: Self.base, length: 16 << 12, advice: .pageout)
        m.completeWrites()
        #expect(m.counters[.pswpout] == 16)
        #expect(p.mm!.rss[RSSCounter.swapEnts.rawValue] == 16)
        // Evict the clean swap-cache copies: reclaim everything the group holds.
        m.memcgForceEmpty(g)
        #expect(m.counters[.nrSwapcached] == 0)
        try m.checkInvariants()
        let c = try m.fork(p, childName: "c").get()
        #expect(c.mm!.rss[RSSCounter.swapEnts.rawValue] == 16)
        let pswpin = m.counters[.pswpin]
        m.access(c, addr: Self.base, length: 16 << 12, kind: .read)
        #expect(m.counters[.pswpin] - pswpin == 16)
        #expect((0..<16).map { content(m, c, $0)! } == before)
        try m.checkInvariants()
        m.access(c, addr: Self.base, length: 1 << 12, kind: .write)
        #expect(content(m, c, 0) == before[0] &+ 1)
        m.access(p, addr: Self.base, length: 16 << 12, kind: .read)
        #expect((0..<16).map { content(m, p, $0)! } == before)
        try m.checkInvariants()
    }

    /// mlocked pages are never reclaimed: they sit on the unevictable list, and limit reclaim
    /// swaps out the other pages around them (unevictable_pgs_scanned stays 0, as in the
    /// reference data's mlock_pressure).
    @Test func mlockedPagesAreNeverReclaimed() throws {
        let m = try Machine(MachineConfig.preset(named: "small"))
        try m.swapon(name: "/swapfile", size: 64 << 20)
        let p = m.spawn(name: "p", cpu: 0)
        let g = try m.memcgCreate(path: "g")
        try m.memcgWrite(g, "memory.limit_in_bytes", 4 << 20)
        m.memcgAttach(p, to: g)
        _ = m.mmap(p, addr: Self.base, length: 256 << 12, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.mlock(p, addr: Self.base, length: 256 << 12)
        let other = Self.base + (1 << 30)
        _ = m.mmap(p, addr: other, length: 2048 << 12, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: other, length: 2048 << 12, kind: .write)
        #expect(m.counters[.pswpout] > 1000)
        #expect(m.counters[.unevictablePgsScanned] == 0)
        #expect((0..<256).allSatisfy { content(m, p, $0) != nil })
        try m.checkInvariants()
    }
}

/// cgroup v2's memory.high and memory.reclaim (mm/memcontrol.c memory_high_write(),
/// mem_cgroup_handle_over_high(), memory_reclaim()).
@Suite struct MemcgV2ReclaimTests {
    /// Writing memory.high reclaims down to it; charges past it reclaim on the way back to
    /// user space (memory.events high) and keep the group near its high mark; memory.reclaim
    /// reclaims what it is asked, counted as proactive reclaim in the group only (cgroup
    /// reclaim leaves the machine's pgsteal_proactive alone).
    @Test func memoryHighAndMemoryReclaim() throws {
        let r = try ScenarioRunner.run("""
        machine preset=reference
        swapon /swapfile 1G
        spawn wl cpu=1
        cgroup create g
        cgroup attach g wl
        wl: mlockall current
        wl: buf = mmap 0x100000000000 32M rw private anon fixed_noreplace
        wl: madvise buf 32M nohugepage
        wl: write buf +32M
        expect memcg.g.usage_kB >= 32768
        cgroup set g memory.high=24M
        expect memcg.g.usage_kB <= 24576
        mark fresh
        wl: b2 = mmap 0x100100000000 16M rw private anon fixed_noreplace
        wl: madvise b2 16M nohugepage
        wl: write b2 +16M
        expect memcg.g.usage_kB <= 24832
        expect memcg.g.events.high since fresh > 0
        expect memcg.g.events.max since fresh == 0
        mark r
        cgroup set g memory.reclaim=8M
        expect memcg.g.pgsteal_proactive since r >= 2048
        expect memcg.g.pgsteal_direct since r == 0
        expect vmstat.pgsteal_proactive since r == 0
        expect memcg.g.usage_kB <= 16640
        """, file: "t.mmsim", options: ScenarioOptions(checkInvariants: true))
        #expect(r.passed, "\(r.summaryText())")
    }
}
