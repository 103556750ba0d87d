// The reclaim invariant checker (DebugVM+Reclaim.swift): every rule fires on the corruption it
// names, and a memory-pressure scenario passes it after every statement.
import Testing
@testable import MMSim

@Suite struct ReclaimCheckerTests {
    /// A memcg of 4 MiB with swap, 12 MiB written: folios on the lists, some in the swap cache,
    /// most in swap; the checker finds nothing.
    static func pressured() throws -> Machine {
        let s = try ScenarioParser.parse("""
        machine preset=reference
        swapon /swapfile 256M
        cgroup create rcl
        cgroup set rcl memory.limit_in_bytes=4M
        spawn wl cpu=1
        cgroup attach rcl wl
        wl: buf = mmap 0x100000000000 12M rw private anon fixed_noreplace
        wl: madvise buf 12M nohugepage
        wl: write buf +12M
        """, file: "pressure.mmsim")
        let r = ScenarioRunner(s)
        _ = try r.run()
        let m = r.machine!
        try m.checkReclaim()
        return m
    }

    /// The oldest folio on memcg 1's inactive anon list, and that lruvec.
    static func listed(_ m: Machine) -> (PFN, UnsafeMutablePointer<PageMeta>, LRUVec) {
        let lv = m.memcg.groups[1].lruvecs[0]
        let pfn = lv.tail(.inactiveAnon)!
        return (pfn, m.frames[pfn], lv)
    }

    /// A folio taken off its list and put in cpu 0's lru_add batch by hand.
    static func batched(_ m: Machine, flag: Bool = true) -> (PFN, UnsafeMutablePointer<PageMeta>) {
        let (pfn, p, lv) = listed(m)
        m.lruvecDel(lv, pfn, p)
        m.fbatches.slots[m.fbatches.counts[0]] = UInt32(pfn.raw)
        m.fbatches.counts[0] += 1
        if flag { p.pointee.flags.insert(.lruBatched) }
        return (pfn, p)
    }

    /// A slot in use of the swap area, and one that holds a swap-cache folio.
    static func slots(_ m: Machine) -> (si: SwapInfo, swapped: Int, cached: Int, free: Int) {
        let si = m.swap.areas[0]!
        let swapped = (1..<si.pages).first { si.map[$0] != 0 && si.map[$0] & SwapInfo.hasCache == 0 }!
        let cached = (1..<si.pages).first { si.table[$0] & 1 == 1 }!
        let free = (1..<si.pages).first { si.map[$0] == 0 }!
        return (si, swapped, cached, free)
    }

    static let corruptions: [(rule: String, corrupt: @Sendable (Machine) -> Void)] = [
        ("lru-list-choice", { m in listed(m).1.pointee.flags.insert(.active) }),
        ("lru-lruvec", { m in listed(m).1.pointee.flags.remove(.memcgCharged) }),
        ("lru-flag", { m in listed(m).1.pointee.flags.remove(.lru) }),
        ("lru-list-linkage", { m in listed(m).1.pointee.prev = FrameTable.nil }),
        ("lru-size", { m in listed(m).2.addSize(LRUList.inactiveAnon.rawValue, pages: 1, folios: 0) }),
        ("lru-node-counter", { m in m.counters.add(.nrInactiveAnon, 1) }),
        ("lru-zone-counter", { m in
            let p = listed(m).1
            m.allocator.zones[Int(p.pointee.zone)].stats[VMStat.nrZoneInactiveAnon.rawValue] += 1
        }),
        ("lru-unreachable", { m in
            let (pfn, p, lv) = listed(m)
            m.lruvecDel(lv, pfn, p)
            p.pointee.flags.insert(.lru)
        }),
        ("lru-lost-folio", { m in
            let (pfn, p, lv) = listed(m)
            m.lruvecDel(lv, pfn, p)
        }),
        ("lru-batch-flag", { m in _ = batched(m, flag: false) }),
        // A folio on a list and in a batch: its PG_lru betrays it.
        ("lru-batch-flag", { m in
            let (pfn, _, _) = listed(m)
            m.fbatches.slots[m.fbatches.counts[0]] = UInt32(pfn.raw)
            m.fbatches.counts[0] += 1
        }),
        ("lru-batch-twice", { m in
            let (pfn, _) = batched(m)
            m.fbatches.slots[m.fbatches.counts[0]] = UInt32(pfn.raw)
            m.fbatches.counts[0] += 1
        }),
        ("lru-batch-lost", { m in
            let (pfn, p, lv) = listed(m)
            m.lruvecDel(lv, pfn, p)
            p.pointee.flags.insert(.lruBatched)
        }),
        ("lru-batch-count", { m in m.fbatches.counts[0] = FolioBatches.size }),
        ("memcg-charge-id", { m in batched(m).1.pointee.spare = 99 }),
        ("nr-swapcached", { m in m.counters.add(.nrSwapcached, 1) }),
        ("swap-map-count", { m in let s = slots(m); s.si.map[s.swapped] += 1 }),
        ("swap-has-cache", { m in let s = slots(m); s.si.map[s.swapped] |= SwapInfo.hasCache }),
        ("swap-cache-folio", { m in
            let s = slots(m)
            m.frames[PFN(s.si.table[s.cached] >> 1)].pointee.priv = SwapEntry(type: 0, offset: s.free).packed
        }),
        ("swap-cache-folio", { m in let s = slots(m); s.si.table[s.cached] = (s.si.table[s.cached] >> 1 + 1) << 1 | 1 }),
        ("swap-free-slot", { m in let s = slots(m); s.si.table[s.free] = 5 << 1 }),
        ("swap-inuse", { m in slots(m).si.inuse += 1 }),
        ("swap-pte-dangling", { m in let s = slots(m); s.si.map[s.swapped] = 0 }),
        ("mm-swapents", { m in m.tasks.first { $0.name == "wl" }!.mm!.addRSS(.swapEnts, -1) }),
        ("memcg-usage", { m in m.memcg.groups[1].memory.usage += 1 }),
        ("memcg-swap", { m in m.memcg.groups[1].swapPages += 1 }),
        ("memcg-memsw", { m in m.memcg.groups[1].memsw.usage -= 1 }),
    ]

    @Test(arguments: 0..<corruptions.count)
    func everyRuleCanFail(_ i: Int) throws {
        let (rule, corrupt) = Self.corruptions[i]
        let m = try Self.pressured()
        corrupt(m)
        do {
            try m.checkReclaim()
            Issue.record("\(rule): the corruption went unnoticed")
        } catch let bug as VMBug {
            #expect(bug.rule == rule, "\(bug)")
        }
        // The whole checker runs the rules too.
        #expect(throws: VMBug.self) { try m.checkInvariants() }
    }

    /// memcg 16M with swap: touch 64M, reread it, fork a child that reads it, munmap half,
    /// the child and the parent exit; the checker (--check) runs after every statement and
    /// the accounting ends where it started.
    @Test
    func pressureScenarioPassesTheChecker() throws {
        let r = try ScenarioRunner.run(Self.pressureScenario, file: "pressure.mmsim", options: ScenarioOptions(checkInvariants: true))
        #expect(r.passed, "\(r.summaryText())")
    }

    static let pressureScenario = """
    machine preset=reference
    swapon /swapfile 1G
    cgroup create rcl
    cgroup set rcl memory.limit_in_bytes=16M
    spawn wl cpu=1
    cgroup attach rcl wl
    wl: buf = mmap 0x100000000000 64M rw private anon fixed_noreplace
    wl: madvise buf 64M nohugepage
    wl: write buf +64M
    expect memcg.rcl.usage <= 16384 kB
    wl: read buf +64M
    wl: fork child
    child: read buf +64M
    wl: munmap buf 32M
    child: exit 0
    wl: wait child
    wl: exit 0
    expect meminfo.SwapFree == 1048572 kB
    expect memcg.rcl.usage == 0 kB
    expect memcg.rcl.memsw_usage == 0 kB
    """

    /// The first half of the scenario (touch 64M in 16M with swap) passes every rule today.
    @Test func swapOutPassesTheChecker() throws {
        let first = Self.pressureScenario.split(separator: "\n").prefix(10).joined(separator: "\n")
        let r = try ScenarioRunner.run(first, file: "pressure.mmsim", options: ScenarioOptions(checkInvariants: true))
        #expect(r.passed, "\(r.summaryText())")
    }

    /// The views: /proc/swaps as swap_show() prints it, SwapTotal/SwapFree, memcg files.
    @Test func views() throws {
        let r = try ScenarioRunner.run("""
        machine preset=reference
        swapon /swapfile 64M
        swapon /a\\b 16M prio=5
        cgroup create rcl
        spawn wl cpu=1
        cgroup attach rcl wl
        cat /proc/swaps
        expect meminfo.SwapTotal == 81912 kB
        expect meminfo.SwapFree == 81912 kB
        cat /sys/fs/cgroup/memory/rcl/memory.stat /sys/fs/cgroup/rcl/memory.current /sys/fs/cgroup/rcl/memory.max
        """, file: "views.mmsim")
        #expect(r.passed, "\(r.summaryText())")
        let texts = r.output.compactMap { if case .view(_, let text, _) = $0 { text } else { nil } }
        #expect(texts[0] == "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
            + "/swapfile" + String(repeating: " ", count: 31) + "file\t\t65532\t\t0\t\t-2\n"
            + "/a\\134b" + String(repeating: " ", count: 33) + "file\t\t16380\t\t0\t\t5\n")
        let stat = texts[1].split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        let v1 = ["cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback", "workingset_refault_anon",
                  "workingset_refault_file", "swap", "swapcached", "pgpgin", "pgpgout", "pgfault", "pgmajfault",
                  "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable"]
        #expect(stat == v1 + ["hierarchical_memory_limit", "hierarchical_memsw_limit"] + v1.map { "total_" + $0 })
        // memory.current: the attached task's page tables (kmem) were charged with it, through
        // the per-CPU stock: one MEMCG_CHARGE_BATCH of 64 pages (try_charge_memcg()).
        #expect(texts[2] == "262144\n")
        #expect(texts[3] == "max\n")
    }
}
