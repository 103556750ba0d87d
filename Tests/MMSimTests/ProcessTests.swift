// Processes and faults on the reference machine, phase by phase, against the counter deltas
// Linux 6.18 produced for the same syscalls (../shared/fidelity/linux-6.18-x86_64.json).

import Testing
import MMSimTestSupport

/// Counter deltas of one phase, as the fidelity file names them.
struct Phase {
    let machine: Machine
    let task: Task
    var before: [String: Int64] = [:]

    init(_ m: Machine, _ t: Task) {
        machine = m
        task = t
        before = Phase.snapshot(m, t)
    }

    static func snapshot(_ m: Machine, _ t: Task) -> [String: Int64] {
        var s: [String: Int64] = [:]
        for (n, v) in m.status(t) { s["status.\(n)_kB"] = v }
        for f in m.meminfo() where f.isKB { s["meminfo.\(f.name)_kB"] = Int64(f.value) }
        for item in VMStat.allCases { s["vmstat.\(item.name)"] = m.vmstatValue(item) }
        s["ru_minflt"] = Int64(t.minFlt)
        s["ru_majflt"] = Int64(t.majFlt)
        s["ruc_minflt"] = Int64(t.cminFlt)
        s["maps.nvma"] = Int64(t.mm?.vmas.count ?? 0)
        return s
    }

    /// Every expected delta equals the model's.
    func expect(_ expected: [String: Int64], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let after = Phase.snapshot(machine, task)
        for (k, v) in expected.sorted(by: { $0.key < $1.key }) {
            let d = (after[k] ?? 0) - (before[k] ?? 0)
            #expect(d == v, "\(label): \(k) changed by \(d), Linux: \(v)", sourceLocation: sourceLocation)
        }
    }
}

let fixedAddr: UInt64 = 0x1000_0000_0000

@Suite struct ProcessTests {
    func machine() throws -> (Machine, Task) {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        return (m, t)
    }

    @Test(arguments: [1, 16, 512, 4096])
    func anonTouch(n: Int) throws {
        let (m, t) = try machine()
        let len = UInt64(n) * Page.size
        var p = Phase(m, t)
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: fixedAddr, length: len, advice: .nohugepage)
        p.expect(["status.VmSize_kB": Int64(n) * 4, "status.VmData_kB": Int64(n) * 4, "meminfo.Committed_AS_kB": Int64(n) * 4,
                  "maps.nvma": 1, "ru_minflt": 0, "status.VmRSS_kB": 0], "mmap")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        let ptes = Int64((n + 511) / 512)
        p.expect(["ru_minflt": Int64(n), "status.VmRSS_kB": Int64(n) * 4, "status.RssAnon_kB": Int64(n) * 4,
                  "status.VmPTE_kB": (ptes + 2) * 4, "meminfo.AnonPages_kB": Int64(n) * 4, "vmstat.pgfault": Int64(n),
                  "vmstat.pgalloc_normal": Int64(n) + ptes + 2, "vmstat.nr_anon_pages": Int64(n)], "touch")
        try m.checkInvariants()
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: len)
        let batches: Int64 = n < 7 ? 0 : Int64((n - 7 + 508) / 509)
        p.expect(["status.VmRSS_kB": -Int64(n) * 4, "status.VmPTE_kB": -(ptes + 2) * 4, "status.VmSize_kB": -Int64(n) * 4,
                  "meminfo.Committed_AS_kB": -Int64(n) * 4, "vmstat.pgalloc_normal": batches + 1,
                  "vmstat.nr_anon_pages": -Int64(n), "maps.nvma": -1], "munmap")
        try m.checkInvariants()
    }

    @Test func anonReadMapsTheZeroPageThenCopies() throws {
        let (m, t) = try machine()
        let len = 4096 * Page.size
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        var p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .read)
        p.expect(["ru_minflt": 4096, "status.VmRSS_kB": 0, "status.VmPTE_kB": 40, "vmstat.pgfault": 4096, "vmstat.pgalloc_normal": 10], "read")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        p.expect(["ru_minflt": 4096, "status.VmRSS_kB": 16384, "status.VmPTE_kB": 0, "vmstat.pgfault": 4096,
                  "vmstat.pgalloc_normal": 4096, "vmstat.nr_anon_pages": 4096], "write")
        try m.checkInvariants()
    }

    @Test func mprotectSplitsAndMerges() throws {
        let (m, t) = try machine()
        _ = m.mmap(t, addr: fixedAddr, length: 100 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: 100 * Page.size, kind: .write)
        var p = Phase(m, t)
        _ = m.mprotect(t, addr: fixedAddr + 40 * Page.size, length: 20 * Page.size, prot: .read)
        p.expect(["maps.nvma": 2, "status.VmData_kB": -80, "status.VmRSS_kB": 0], "mprotect_mid_ro")
        p = Phase(m, t)
        _ = m.mprotect(t, addr: fixedAddr + 40 * Page.size, length: 20 * Page.size, prot: .rw)
        p.expect(["maps.nvma": -2, "status.VmData_kB": 80], "mprotect_mid_rw_merge")
        p = Phase(m, t)
        _ = m.mprotect(t, addr: fixedAddr + 40 * Page.size, length: 20 * Page.size, prot: .none)
        p.expect(["maps.nvma": 2, "status.VmData_kB": -80], "mprotect_mid_none")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr + 40 * Page.size, length: 20 * Page.size)
        p.expect(["maps.nvma": -1, "status.VmRSS_kB": -80, "status.VmSize_kB": -80, "status.VmData_kB": 0,
                  "vmstat.pgalloc_normal": 1, "vmstat.nr_anon_pages": -20, "status.VmPTE_kB": 0], "munmap_mid")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: 100 * Page.size)
        p.expect(["maps.nvma": -2, "status.VmRSS_kB": -320, "status.VmPTE_kB": -12, "vmstat.pgalloc_normal": 2], "munmap_all")
        try m.checkInvariants()
    }

    @Test func forkCopyOnWriteAndReuse() throws {
        let (m, parent) = try machine()
        let n: UInt64 = 512
        _ = m.mmap(parent, addr: fixedAddr, length: n * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(parent, addr: fixedAddr, length: n * Page.size, kind: .write)
        let child = try m.fork(parent, childName: "child").get()
        let pc = Phase(m, child)
        m.access(child, addr: fixedAddr, length: n * Page.size, kind: .write)
        pc.expect(["ru_minflt": Int64(n)], "child_write")
        try m.checkInvariants()
        m.exit(child)
        _ = m.wait(parent)
        let p = Phase(m, parent)
        m.access(parent, addr: fixedAddr, length: n * Page.size, kind: .write)
        p.expect(["ru_minflt": Int64(n), "vmstat.pgfault": Int64(n), "vmstat.pgreuse": Int64(n)], "parent_rewrite")
        try m.checkInvariants()
    }

    @Test func onePebibyteIsENOMEM() throws {
        let (m, t) = try machine()
        let r = m.mmap(t, length: 1 << 50, prot: .rw, flags: [.private, .anonymous])
        #expect(r.failureValue == .ENOMEM)
        let s = m.access(t, addr: 0x10, length: 1, kind: .read)
        #expect(s.signal?.name == "SIGSEGV")
        #expect(t.state != .running)
    }
}

@Suite struct ProcessFidelityMoreTests {
    func machine() throws -> (Machine, Task) {
        let m = try Machine(.reference)
        return (m, m.spawn(name: "wl", cpu: 1))
    }

    @Test func populateFaultsEverythingIn() throws {
        let (m, t) = try machine()
        let p = Phase(m, t)
        _ = m.mmap(t, addr: fixedAddr, length: 4096 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace, .populate])
        p.expect(["ru_minflt": 4096, "status.VmRSS_kB": 16384, "status.VmPTE_kB": 40, "vmstat.pgfault": 4096,
                  "vmstat.pgalloc_normal": 4106, "maps.nvma": 1, "meminfo.Committed_AS_kB": 16384], "mmap_populate")
        let q = Phase(m, t)
        m.access(t, addr: fixedAddr, length: 4096 * Page.size, kind: .write)
        q.expect(["ru_minflt": 0, "vmstat.pgfault": 0], "touch")
    }

    @Test
    func mlockThenMunlock() throws {
        let (m, t) = try machine()
        _ = m.mmap(t, addr: fixedAddr, length: 4096 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        var p = Phase(m, t)
        _ = m.mlock(t, addr: fixedAddr, length: 4096 * Page.size)
        p.expect(["ru_minflt": 4096, "status.VmRSS_kB": 16384, "status.VmLck_kB": 16384, "meminfo.Unevictable_kB": 16384,
                  "meminfo.Mlocked_kB": 16384, "vmstat.nr_mlock": 4096, "vmstat.nr_unevictable": 4096,
                  "vmstat.unevictable_pgs_mlocked": 4096, "vmstat.unevictable_pgs_culled": 4096, "vmstat.pgalloc_normal": 4106], "mlock")
        p = Phase(m, t)
        _ = m.munlock(t, addr: fixedAddr, length: 4096 * Page.size)
        p.expect(["status.VmLck_kB": -16384, "meminfo.Unevictable_kB": -16384, "meminfo.Mlocked_kB": -16384,
                  "vmstat.nr_mlock": -4096, "vmstat.unevictable_pgs_munlocked": 4096], "munlock")
        try m.checkInvariants()
    }

    @Test(arguments: [16, 4096])
    func madviseDontneed(n: Int) throws {
        let (m, t) = try machine()
        let len = UInt64(n) * Page.size
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        var p = Phase(m, t)
        _ = m.madvise(t, addr: fixedAddr, length: len, advice: .dontneed)
        // Linux 6.18: N=16 -> 1 batch page, no table freed; N=4096 -> 9 batches + 1 table batch, 8 PTE tables freed.
        p.expect(["status.VmRSS_kB": -Int64(n) * 4, "status.VmPTE_kB": n == 16 ? 0 : -32,
                  "vmstat.pgalloc_normal": n == 16 ? 1 : 10, "vmstat.nr_anon_pages": -Int64(n)], "madv_dontneed")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        p.expect(["ru_minflt": Int64(n), "status.VmPTE_kB": n == 16 ? 0 : 32, "vmstat.pgalloc_normal": Int64(n) + (n == 16 ? 0 : 8)], "retouch")
        try m.checkInvariants()
    }

    @Test func mremapGrowsInPlace() throws {
        let (m, t) = try machine()
        let len = 4096 * Page.size
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        var p = Phase(m, t)
        #expect(m.mremap(t, oldAddr: fixedAddr, oldLength: len, newLength: 2 * len) == .success(fixedAddr))
        p.expect(["status.VmSize_kB": 16384, "status.VmData_kB": 16384, "meminfo.Committed_AS_kB": 16384, "maps.nvma": 0], "mremap_grow_inplace")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr + len, length: len, kind: .write)
        p.expect(["ru_minflt": 4096, "status.VmPTE_kB": 32, "vmstat.pgalloc_normal": 4104], "touch_new_half")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: 2 * len)
        p.expect(["status.VmRSS_kB": -32768, "status.VmPTE_kB": -72, "vmstat.pgalloc_normal": 18], "munmap")
    }

    @Test func brkGrowsAndShrinks() throws {
        let (m, t) = try machine()
        let mm = try #require(t.mm)
        // wl.c's setup: align the break up to 2 MiB.
        m.brk(t, (mm.brk + 2 * Size.MiB - 1) & ~(2 * Size.MiB - 1))
        let base = mm.brk
        var p = Phase(m, t)
        m.brk(t, base + 4096 * Page.size)
        p.expect(["status.VmSize_kB": 16384, "status.VmData_kB": 16384, "meminfo.Committed_AS_kB": 16384, "maps.nvma": 0], "brk_grow")
        p = Phase(m, t)
        m.access(t, addr: base, length: 4096 * Page.size, kind: .write)
        p.expect(["ru_minflt": 4096, "status.VmPTE_kB": 32, "vmstat.pgalloc_normal": 4104], "touch")
        p = Phase(m, t)
        m.brk(t, base)
        p.expect(["status.VmRSS_kB": -16384, "status.VmPTE_kB": -32, "status.VmData_kB": -16384, "vmstat.pgalloc_normal": 10, "maps.nvma": 0], "brk_shrink")
        try m.checkInvariants()
    }

    @Test
    func sharedAnonymousIsShmem() throws {
        let (m, t) = try machine()
        let len = 16 * Page.size
        var p = Phase(m, t)
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.shared, .anonymous, .fixedNoreplace])
        p.expect(["status.VmSize_kB": 64, "status.VmData_kB": 0, "meminfo.Committed_AS_kB": 64, "maps.nvma": 1], "mmap")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        p.expect(["ru_minflt": 16, "status.RssShmem_kB": 64, "status.RssAnon_kB": 0, "status.VmPTE_kB": 12, "meminfo.Mapped_kB": 64,
                  "meminfo.Cached_kB": 64, "meminfo.Shmem_kB": 64, "vmstat.pgalloc_normal": 19, "vmstat.nr_mapped": 16,
                  "vmstat.nr_file_pages": 16, "vmstat.nr_shmem": 16], "touch")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: len)
        p.expect(["status.RssShmem_kB": -64, "meminfo.Shmem_kB": -64, "meminfo.Cached_kB": -64, "meminfo.Committed_AS_kB": -64,
                  "vmstat.pgalloc_normal": 2, "vmstat.nr_mapped": -16, "vmstat.nr_shmem": -16, "maps.nvma": -1], "munmap")
        try m.checkInvariants()
    }
}

@Suite struct FileMappingTests {
    func machine() throws -> (Machine, Task) {
        let m = try Machine(.reference)
        return (m, m.spawn(name: "wl", cpu: 1))
    }

    /// file_map / file_map_shared_read: fault-around maps 16 pages per read fault.
    @Test(arguments: [false, true])
    func readFaultsMapSixteenPages(shared: Bool) throws {
        let (m, t) = try machine()
        let f = m.createFile(name: "f4k_4096.bin", size: 4096 * Page.size)
        let len = 4096 * Page.size
        var p = Phase(m, t)
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .read, flags: [shared ? .shared : .private, .fixedNoreplace], file: f.id)
        p.expect(["status.VmSize_kB": 16384, "status.VmData_kB": 0, "meminfo.Committed_AS_kB": 0, "maps.nvma": 1], "mmap")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .read)
        p.expect(["ru_minflt": 256, "ru_majflt": 0, "status.RssFile_kB": 16384, "status.VmPTE_kB": 40, "meminfo.Mapped_kB": 16384,
                  "vmstat.pgfault": 256, "vmstat.pgalloc_normal": 10, "vmstat.nr_mapped": 4096], "read")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: len)
        p.expect(["status.RssFile_kB": -16384, "status.VmPTE_kB": -40, "vmstat.pgalloc_normal": 10, "vmstat.nr_mapped": -4096], "munmap")
        try m.checkInvariants()
    }

    /// file_map_private_write: every write copies the page into a new anonymous page.
    @Test func privateWriteCopies() throws {
        let (m, t) = try machine()
        let f = m.createFile(name: "f4k_16.bin", size: 16 * Page.size)
        _ = m.mmap(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw, flags: [.private, .fixedNoreplace], file: f.id)
        let p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .write)
        p.expect(["ru_minflt": 16, "status.RssAnon_kB": 64, "status.RssFile_kB": 0, "vmstat.pgalloc_normal": 19,
                  "vmstat.nr_anon_pages": 16, "vmstat.nr_mapped": 0], "write")
        try m.checkInvariants()
    }

    /// file_map_shared_write: every write dirties its page; the unmap's gather stops at one
    /// batch page because dirty file pages delay their rmap removal.
    @Test func sharedWriteDirties() throws {
        let (m, t) = try machine()
        let f = m.createFile(name: "fsw_4096.bin", size: 4096 * Page.size)
        let len = 4096 * Page.size
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.shared, .fixedNoreplace], file: f.id)
        var p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        p.expect(["ru_minflt": 4096, "status.RssFile_kB": 16384, "meminfo.Dirty_kB": 16384, "meminfo.Mapped_kB": 16384,
                  "vmstat.pgalloc_normal": 10, "vmstat.nr_dirty": 4096], "write")
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: len)
        p.expect(["status.RssFile_kB": -16384, "meminfo.Mapped_kB": -16384, "vmstat.pgalloc_normal": 2,
                  "vmstat.nr_mapped": -4096, "meminfo.Dirty_kB": 0], "munmap")
        m.syncFile(f)
        #expect(m.counters[.nrDirty] == 0)
        try m.checkInvariants()
    }

    /// A cold page cache: the fault is major and reads the window around it.
    @Test func coldCacheFaultIsMajor() throws {
        let (m, t) = try machine()
        let f = m.createFile(name: "cold.bin", size: 64 * Page.size, cached: false)
        _ = m.mmap(t, addr: fixedAddr, length: 64 * Page.size, prot: .read, flags: [.private, .fixedNoreplace], file: f.id)
        let p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: Page.size, kind: .read)
        // do_sync_mmap_readahead(): ra_pages (32) starting at max(0, index - 16): pages 0..31.
        p.expect(["ru_majflt": 1, "ru_minflt": 0, "vmstat.pgmajfault": 1, "vmstat.nr_file_pages": 32], "read")
        try m.checkInvariants()
    }
}

@Suite struct TransparentHugePageTests {
    /// thp_touch: one fault per 2 MiB, a PMD-mapped folio and a deposited table each.
    @Test(arguments: [1, 4])
    func thpTouch(regions: Int) throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        let len = UInt64(regions) * 2 * Size.MiB
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: fixedAddr, length: len, advice: .hugepage)
        var p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write, stride: 2 * Size.MiB)
        let r = Int64(regions)
        p.expect(["ru_minflt": r, "status.RssAnon_kB": r * 2048, "status.VmPTE_kB": (2 + r) * 4, "meminfo.AnonHugePages_kB": r * 2048,
                  "vmstat.pgalloc_normal": r * 512 + 2 + r, "vmstat.nr_anon_pages": r * 512,
                  "vmstat.nr_anon_transparent_hugepages": r, "vmstat.thp_fault_alloc": r], "touch_first_byte_each_2M")
        p = Phase(m, t)
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        p.expect(["ru_minflt": 0, "vmstat.pgfault": 0], "touch_all_4k_pages")
        try m.checkInvariants()
        p = Phase(m, t)
        _ = m.munmap(t, addr: fixedAddr, length: len)
        p.expect(["status.RssAnon_kB": -r * 2048, "status.VmPTE_kB": -(2 + r) * 4, "meminfo.AnonHugePages_kB": -r * 2048,
                  "vmstat.pgalloc_normal": 1, "vmstat.nr_anon_transparent_hugepages": -r], "munmap")
        try m.checkInvariants()
    }

    /// A partial unmap splits the PMD and the folio; fork shares a huge page copy-on-write.
    @Test func splitAndFork() throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        _ = m.mmap(t, addr: fixedAddr, length: 4 * Size.MiB, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: fixedAddr, length: 4 * Size.MiB, advice: .hugepage)
        m.access(t, addr: fixedAddr, length: 4 * Size.MiB, kind: .write)
        #expect(m.counters[.thpFaultAlloc] == 2)
        let c = try m.fork(t, childName: "c").get()
        try m.checkInvariants()
        m.access(c, addr: fixedAddr, length: Page.size, kind: .write)   // split + COW of one page
        #expect(m.counters[.thpSplitPmd] >= 1)
        try m.checkInvariants()
        m.exit(c)
        _ = m.wait(t)
        _ = m.munmap(t, addr: fixedAddr + Size.MiB, length: Size.MiB)
        try m.checkInvariants()
        _ = m.munmap(t, addr: fixedAddr, length: 4 * Size.MiB)
        #expect(m.counters[.nrAnonTransparentHugepages] == 0)
        #expect(m.counters[.nrAnonPages] == Int64(t.mm!.rss[RSSCounter.anonPages.rawValue]))
        try m.checkInvariants()
    }
}

@Suite struct MremapMoveTests {
    /// mremap(MREMAP_MAYMOVE) of a PMD-aligned range moves whole PTE tables: no new table
    /// is allocated for the destination, the pages follow, nothing is copied or faulted.
    @Test func alignedMoveTakesTheTables() throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        let len = 4 * Size.MiB
        _ = m.mmap(t, addr: fixedAddr, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.mmap(t, addr: fixedAddr + len, length: Page.size, prot: .read, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: len, kind: .write)
        let before = m.counters[.pgallocNormal]
        let ptes = t.mm!.pageTable.counts.pte
        let dest = fixedAddr + Size.GiB
        let r = m.mremap(t, oldAddr: fixedAddr, oldLength: len, newLength: 2 * len, flags: .maymove, newAddr: 0)
        let newAddr = try r.get()
        #expect(newAddr != fixedAddr)
        _ = dest
        #expect(t.mm!.pageTable.counts.pte == ptes, "the two PTE tables moved with their entries")
        #expect(m.counters[.pgallocNormal] - before <= 4, "only upper tables and gather pages, no PTE copies")
        let p = Phase(m, t)
        m.access(t, addr: newAddr, length: len, kind: .read)
        p.expect(["ru_minflt": 0, "status.VmRSS_kB": 0], "read moved pages")
        try m.checkInvariants()
    }
}

@Suite struct ForkRegressionTests {
    /// copy_pte_range() must take a reference for PROT_NONE entries too (pte_present() is
    /// true for them): otherwise the child's exit drops references it never had.
    @Test func forkOfProtNoneRangeKeepsReferences() throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        _ = m.mmap(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .write)
        _ = m.mprotect(t, addr: fixedAddr, length: 16 * Page.size, prot: .none)
        let c = try m.fork(t, childName: "c").get()
        #expect(c.mm!.rss[RSSCounter.anonPages.rawValue] == t.mm!.rss[RSSCounter.anonPages.rawValue])
        m.exit(c)
        _ = m.wait(t)
        try m.checkInvariants()
        _ = m.mprotect(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw)
        let r = m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .read)
        #expect(r.signal == nil)
        _ = m.munmap(t, addr: fixedAddr, length: 16 * Page.size)
        #expect(m.allocator.badPages == 0)
        try m.checkInvariants()
    }
}

@Suite struct MprotectRegressionTests {
    /// A PROT_NONE range refuses every access (access_error(): no VM_READ/WRITE/EXEC).
    @Test func protNoneRefusesAccess() throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        _ = m.mmap(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .write)
        _ = m.mprotect(t, addr: fixedAddr, length: 16 * Page.size, prot: .none)
        #expect(m.access(t, addr: fixedAddr, length: Page.size, kind: .read).signal?.name == "SIGSEGV")
    }

    /// pte_modify(): leaving PROT_NONE restores the user bit; the pages are readable again
    /// without faults (they stayed mapped).
    @Test func protNoneThenReadWriteAgain() throws {
        let m = try Machine(.reference)
        let t = m.spawn(name: "wl", cpu: 1)
        _ = m.mmap(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .write)
        _ = m.mprotect(t, addr: fixedAddr, length: 16 * Page.size, prot: .none)
        _ = m.mprotect(t, addr: fixedAddr, length: 16 * Page.size, prot: .rw)
        let p = Phase(m, t)
        let r = m.access(t, addr: fixedAddr, length: 16 * Page.size, kind: .read)
        #expect(r.signal == nil)
        p.expect(["ru_minflt": 0], "read after PROT_NONE and back")
        try m.checkInvariants()
    }
}

@Suite struct ThreadTests {
    /// Two threads of one mm on two CPUs: an unmap by one flushes the other CPU by IPI
    /// (flush_tlb_mm_range(): nr_tlb_remote_flush once per call, _received once per CPU).
    @Test func unmapByOneThreadShootsDownTheOther() throws {
        let m = try Machine(.reference)
        let a = m.spawn(name: "a", cpu: 0)
        let b = try m.cloneThread(a, name: "b", cpu: 1).get()
        #expect(a.mm === b.mm && a.mm!.users == 2)
        _ = m.mmap(a, addr: fixedAddr, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(a, addr: fixedAddr, length: 16 * Page.size, kind: .write)
        let r = m.access(b, addr: fixedAddr, length: 16 * Page.size, kind: .read)
        #expect(r.faults == 0, "the other thread sees the same page tables: no fault, only TLB misses")
        let before = (m.counters[.nrTlbRemoteFlush], m.counters[.nrTlbRemoteFlushReceived])
        _ = m.munmap(a, addr: fixedAddr, length: 16 * Page.size)
        #expect(m.counters[.nrTlbRemoteFlush] - before.0 == 1)
        #expect(m.counters[.nrTlbRemoteFlushReceived] - before.1 == 1)
        try m.checkInvariants()
        // exit_group(): the process takes its thread along, and the mm goes with the last user.
        m.exit(a)
        #expect(b.state == .dead && b.mm == nil)
        try m.checkInvariants()
    }
}
