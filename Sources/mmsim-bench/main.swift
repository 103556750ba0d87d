// mmsim-bench: release-mode benchmarks guarding the budgets the issues name.
// Run: swift run -c release mmsim-bench [name...]

import Foundation
import MMSim

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Peak resident set of this process in bytes (getrusage ru_maxrss is in KiB on Linux).
func maxRSS() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}

struct Result {
    var name: String
    var value: Double
    var unit: String
    var target: String
    var ok: Bool
}

func report(_ r: Result) {
    let v = r.value >= 1e6 ? String(format: "%.1f M", r.value / 1e6) : String(format: "%.3f", r.value)
    print("\(r.name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(v) \(r.unit)   target \(r.target)  \(r.ok ? "ok" : "MISSED")")
}

func benchAllocFree() throws {
    let m = try Machine(.reference)
    let a = m.allocator
    // Warm the pcp lists.
    for _ in 0..<1000 { if let p = a.allocPages(.highuserMovable) { a.freePages(p) } }
    let n = 5_000_000
    var dt = Double.infinity
    for _ in 0..<5 {   // best of 5: the host is shared
        let t0 = now()
        for _ in 0..<n {
            let p = a.allocPages(.highuserMovable)!
            a.freePages(p)
        }
        dt = min(dt, now() - t0)
    }
    report(Result(name: "order-0 alloc+free pair (pcp hot)", value: Double(n) / dt, unit: "pairs/s", target: ">= 20 M/s", ok: Double(n) / dt >= 20e6))

    // A burst that spills through the pcp high mark into the buddy lists and back.
    var held: [PFN] = []
    held.reserveCapacity(100_000)
    let t1 = now()
    for _ in 0..<20 {
        for _ in 0..<100_000 { held.append(a.allocPages(.highuserMovable)!) }
        for p in held { a.freePages(p) }
        held.removeAll(keepingCapacity: true)
    }
    let dt1 = now() - t1
    report(Result(name: "order-0 alloc+free, 100k bursts (buddy)", value: 2e6 / dt1, unit: "pairs/s", target: "(info)", ok: true))
}

func benchBoot1TiB() throws {
    var c = MachineConfig.large5Level
    c.memory = Size.TiB
    let rss0 = maxRSS()
    let t0 = now()
    let m = try Machine(c)
    let dt = now() - t0
    let rss = maxRSS()
    blackHole(m)
    report(Result(name: "boot a 1 TiB machine", value: dt * 1000, unit: "ms", target: "< 1000 ms", ok: dt < 1))
    report(Result(name: "  host memory (peak RSS of the process)", value: Double(rss) / 1048576, unit: "MiB", target: "< 256 MiB", ok: rss < 256 << 20))
    report(Result(name: "  struct page records materialized", value: Double(m.hostMemoryBytes) / 1048576, unit: "MiB", target: "(info, RSS before boot \(rss0 >> 20) MiB)", ok: true))
}

/// A machine with `pages` 4 KiB pages mapped at `base` in a user page table loaded on CPU 0.
func mappedMachine(arch: Architecture, pages: Int, base: UInt64) throws -> Machine {
    var c = MachineConfig.reference
    c.arch = arch
    let m = try Machine(c)
    let pt = PageTable(arch: arch, frames: m.frames, source: m.allocator)!
    for i in 0..<pages {
        let pfn = m.allocator.allocPages(.highuserMovable)!
        try pt.setLeaf(VirtAddr(base + UInt64(i) * Page.size),
                       LeafEntry(pfn: pfn, writable: true, user: true, accessed: true, dirty: true, noExec: true))
    }
    m.loadPageTable(cpu: 0, root: pt.root, asid: ASID(1))
    return m
}

func seededAddresses(_ n: Int, base: UInt64, pages: Int) -> [VirtAddr] {
    var g = SeededGenerator(seed: 42)
    return (0..<n).map { _ in VirtAddr(base + UInt64.random(in: 0..<UInt64(pages), using: &g) * Page.size + UInt64.random(in: 0..<4096, using: &g)) }
}

func benchTLBHit() throws {
    let base: UInt64 = 0x1000_0000_0000
    // 32 pages: fits the 64-entry L1 dTLB, so every lookup after warm-up hits.
    let m = try mappedMachine(arch: .x86_64, pages: 32, base: base)
    let vas = seededAddresses(1 << 16, base: base, pages: 32)
    for va in vas { _ = m.translate(cpu: 0, va, .read) }
    let rounds = 100
    var sum: UInt64 = 0
    var dt = Double.infinity
    for _ in 0..<5 {   // best of 5: the host is shared
        let t0 = now()
        vas.withUnsafeBufferPointer { v in
            for _ in 0..<rounds {
                for va in v {
                    if case .ok(let p) = m.translate(cpu: 0, va, .read) { sum &+= p.raw }
                }
            }
        }
        dt = min(dt, now() - t0)
    }
    blackHole(sum)
    let rate = Double(rounds * vas.count) / dt
    precondition(m.cpus[0].walks <= 32)
    report(Result(name: "TLB-hit translation (Machine.translate)", value: rate, unit: "lookups/s", target: ">= 100 M/s", ok: rate >= 100e6))
    // The TLB alone, without the MMU glue around it.
    let tlb = m.cpus[0].tlb
    var dt1 = Double.infinity
    for _ in 0..<5 {
        let t1 = now()
        vas.withUnsafeBufferPointer { v in
            for _ in 0..<rounds {
                for va in v {
                    if let t = tlb.lookup(va, asid: ASID(1), access: .read) { sum &+= t.basePFN.raw }
                }
            }
        }
        dt1 = min(dt1, now() - t1)
    }
    blackHole(sum)
    let rate1 = Double(rounds * vas.count) / dt1
    report(Result(name: "  TLB.lookup alone (L1 dTLB 4K hit)", value: rate1, unit: "lookups/s", target: "(info)", ok: true))
}

func benchWalk() throws {
    let base: UInt64 = 0x1000_0000_0000
    let pages = 1 << 14   // 64 MiB of 4 KiB pages: 10x the TLB reach
    for arch in Architecture.allCases {
        let m = try mappedMachine(arch: arch, pages: pages, base: base)
        let vas = seededAddresses(1 << 20, base: base, pages: pages)
        let c = m.cpus[0]
        let rounds = 4
        var sum: UInt64 = 0
        let t0 = now()
        vas.withUnsafeBufferPointer { v in
            for _ in 0..<rounds {
                for va in v {
                    if case .ok(let p) = m.translate(cpu: 0, va, .read) { sum &+= p.raw }
                }
            }
        }
        let dt = now() - t0
        blackHole(sum)
        // Random pages over 256 MiB miss the TLB almost always; count the walks actually done.
        let rate = Double(c.walks) / dt
        let target = "(info)"
        report(Result(name: "TLB miss + \(arch.levels)-level walk + refill (\(arch.rawValue))", value: rate, unit: "walks/s (\(Int(100 * Double(c.walks) / Double(rounds * vas.count)))% of accesses walked)", target: target, ok: true))
        // The hardware walk alone (PageWalk.walk): what the 20 M/s budget is about.
        let walker = PageWalk(arch: arch, frames: m.frames)
        let root = c.root!
        var refs = 0
        let t1 = now()
        vas.withUnsafeBufferPointer { v in
            for _ in 0..<rounds {
                for va in v { refs &+= walker.walk(root: root, va: va, access: .read, privilege: .user).memoryReferences }
            }
        }
        let dt1 = now() - t1
        blackHole(refs)
        let wrate = Double(rounds * vas.count) / dt1
        report(Result(name: "  \(arch.levels)-level page walk alone (\(arch.rawValue))", value: wrate, unit: "walks/s", target: ">= 20 M/s", ok: wrate >= 20e6))
    }
}

/// One run of the issue-3 sequence on a fresh reference machine: first-touch faults over
/// 1 GiB (A); the same via MAP_POPULATE (B); munmap of B, the fidelity workload anon_touch's
/// munmap (the pcp list has room: the frees stay on it, as on the kernel the 36 ms figure
/// comes from); munmap of A, now with the pcp list full (most frees drain to the buddy
/// lists and merge); then fork + the child's rewrite + exit of a touched GiB.
func faultsRun() throws -> (touch: Double, populate: Double, munmap: Double, munmapFull: Double, fork: Double) {
    let m = try Machine(.reference)
    let t = m.spawn(name: "bench", cpu: 0)
    let base: UInt64 = 0x1000_0000_0000
    let len: UInt64 = 1 << 30
    _ = m.mmap(t, addr: base, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    _ = m.madvise(t, addr: base, length: len, advice: .nohugepage)
    let t0 = now()
    let r = m.access(t, addr: base, length: len, kind: .write)
    let dt = now() - t0
    precondition(r.faults == Int(len >> 12))
    // The same faults without the MMU around them (MAP_POPULATE: get_user_pages()).
    let base2: UInt64 = 0x2000_0000_0000
    let tp = now()
    _ = m.mmap(t, addr: base2, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace, .populate])
    let dtp = now() - tp
    let t1 = now()
    _ = m.munmap(t, addr: base2, length: len)
    let dt1 = now() - t1
    let t1f = now()
    _ = m.munmap(t, addr: base, length: len)
    let dt1f = now() - t1f
    _ = m.mmap(t, addr: base, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    m.access(t, addr: base, length: len, kind: .write)
    let t2 = now()
    let child = try m.fork(t, childName: "child").get()
    m.access(child, addr: base, length: len, kind: .write)
    m.exit(child)
    _ = m.wait(t)
    let dt2 = now() - t2
    let pages = Double(len >> 12)
    return (pages / dt, pages / dtp, dt1, dt1f, dt2)
}

func benchFaults() throws {
    // Each run boots a fresh machine (so every run pays the first touch of its memmap in
    // host memory); the best of the runs is the figure, the median is printed beside it:
    // the shared host makes single runs vary by up to 2x.
    let runs = 7
    var rs: [(touch: Double, populate: Double, munmap: Double, munmapFull: Double, fork: Double)] = []
    for _ in 0..<runs { rs.append(try faultsRun()) }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let touch = rs.map(\.touch), pop = rs.map(\.populate), unmap = rs.map(\.munmap)
    let unmapFull = rs.map(\.munmapFull), fork = rs.map(\.fork)
    report(Result(name: "first-touch anonymous faults (1 GiB)", value: touch.max()!,
                  unit: String(format: "faults/s (median %.1f M)", median(touch) / 1e6), target: ">= 10 M/s", ok: touch.max()! >= 10e6))
    report(Result(name: "  the same faults via MAP_POPULATE (no MMU/TLB)", value: pop.max()!,
                  unit: String(format: "faults/s (median %.1f M)", median(pop) / 1e6), target: "(info)", ok: true))
    report(Result(name: "munmap of 1 GiB touched (mmu_gather)", value: unmap.min()! * 1000,
                  unit: String(format: "ms (median %.1f)", median(unmap) * 1000), target: "< 10 ms (Linux: 36 ms)", ok: unmap.min()! < 0.010))
    report(Result(name: "  the same with the pcp list full (buddy merging)", value: unmapFull.min()! * 1000,
                  unit: String(format: "ms (median %.1f)", median(unmapFull) * 1000), target: "(info)", ok: true))
    report(Result(name: "fork 1 GiB + child rewrites it + exit", value: fork.min()! * 1000,
                  unit: String(format: "ms (median %.1f)", median(fork) * 1000), target: "< 80 ms (Linux: 800 ms)", ok: fork.min()! < 0.080))
}

/// munmap and exit of 1 GiB touched by a process whose threads run on every CPU, batched
/// (mmu_gather) versus a flush per page: flushes, IPIs and host time.
func benchShootdown() throws {
    print("shootdown: 1 GiB touched by a process with a thread on every CPU (x86-64, PCID)")
    print("  cpus  policy     op      flush_tlb_mm_range  nr_tlb_remote_flush  IPIs sent  host ms")
    for cpus in [2, 8, 64] {
        for perPage in [false, true] {
            for op in ["munmap", "exit"] {
                var c = MachineConfig.reference
                c.cpus = cpus
                let m = try Machine(c)
                m.tunables.perPageFlush = perPage
                let app = m.spawn(name: "app", cpu: 0)
                var threads: [Task] = []
                for cpu in 1..<cpus { threads.append(try m.cloneThread(app, name: "t\(cpu)", cpu: cpu).get()) }
                let base: UInt64 = 0x1000_0000_0000
                let len: UInt64 = 1 << 30
                _ = m.mmap(app, addr: base, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
                _ = m.madvise(app, addr: base, length: len, advice: .nohugepage)
                m.access(app, addr: base, length: len, kind: .write)
                // Every thread runs on its CPU and caches a little of the buffer.
                for t in threads { m.access(t, addr: base, length: 64 * 4096, kind: .read) }
                let f0 = m.shootdown.rangeFlushes, r0 = m.vmstatValue(.nrTlbRemoteFlush), i0 = m.shootdown.totalIPIs
                let t0 = now()
                if op == "munmap" { _ = m.munmap(app, addr: base, length: len) } else { m.exit(app) }
                let dt = now() - t0
                let line = String(format: "  %4d  %-9@  %-6@  %18llu  %19lld  %9llu  %7.1f", cpus, (perPage ? "per-page" : "batched") as NSString,
                                  op as NSString, m.shootdown.rangeFlushes - f0, m.vmstatValue(.nrTlbRemoteFlush) - r0,
                                  m.shootdown.totalIPIs - i0, dt * 1000)
                print(line)
            }
        }
    }
}

/// rmap_walk() of one anonymous page mapped by 1000 processes (a parent and 999 forked
/// children), and folio_referenced() over the same page.
func benchRmap() throws {
    var c = MachineConfig.small
    c.memory = 2 * Size.GiB
    let m = try Machine(c)
    let p = m.spawn(name: "p")
    let base: UInt64 = 0x1000_0000_0000
    _ = m.mmap(p, addr: base, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    m.access(p, addr: base, length: Page.size, kind: .write)
    let tf = now()
    for i in 0..<999 { _ = try m.fork(p, childName: "c\(i)").get() }
    let dtf = now() - tf
    guard let mm = p.mm, case .leaf(let l, _) = mm.pageTable.lookup(VirtAddr(base)) else { fatalError("not mapped") }
    let pfn = l.pfn
    precondition(m.rmapWalk(pfn) == 1000)
    let n = 200
    var dt = Double.infinity
    for _ in 0..<5 {
        let t0 = now()
        var found = 0
        for _ in 0..<n { found &+= m.rmapWalk(pfn) }
        dt = min(dt, now() - t0)
        blackHole(found)
    }
    report(Result(name: "rmap walk of a page mapped by 1000 processes", value: dt / Double(n) * 1e6, unit: "us/walk", target: "(info)", ok: true))
    report(Result(name: "  per mapping found", value: dt / Double(n) / 1000 * 1e9, unit: "ns", target: "(info)", ok: true))
    var dr = Double.infinity
    for _ in 0..<5 {
        let t0 = now()
        for _ in 0..<n { blackHole(m.folioReferenced(pfn)) }
        dr = min(dr, now() - t0)
    }
    report(Result(name: "  folio_referenced() of that page", value: dr / Double(n) * 1e6, unit: "us", target: "(info)", ok: true))
    report(Result(name: "  999 forks of a small process (anon_vma_fork)", value: dtf * 1000, unit: "ms", target: "(info)", ok: true))
}

/// Migration of 1 GiB of touched anonymous memory (262144 pages) between NUMA nodes: the
/// reference machine split into 2 nodes (CPU 0 on node 0, CPU 1 on node 1), the memory
/// faulted in on node 0, then move_pages(2) to node 1 (__GFP_THISNODE targets): per page
/// migration entries, copy, restored PTEs. Then the same gigabyte as 512 PMD-mapped THPs.
func benchMigrate() throws {
    var cfg = MachineConfig.reference
    cfg.nodes = 2
    let m = try Machine(cfg)
    let t = m.spawn(name: "bench", cpu: 0)
    let base: UInt64 = 0x1000_0000_0000
    let len: UInt64 = 1 << 30
    _ = m.mmap(t, addr: base, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    _ = m.madvise(t, addr: base, length: len, advice: .nohugepage)
    m.access(t, addr: base, length: len, kind: .write)
    let t0 = now()
    let r = m.migrateRange(t, addr: base, length: len, toNode: 1)
    let dt = now() - t0
    precondition(r.moved == Int(len >> 12) && r.failed == 0)
    precondition(m.allocator.numaEvent(.numaHit, node: 1) >= Int64(r.moved))
    report(Result(name: "migrate 1 GiB node 0 -> 1 (262144 pages)", value: dt * 1000, unit: "ms", target: "(info)", ok: true))
    report(Result(name: "  pages migrated per second", value: Double(r.moved) / dt, unit: "pages/s", target: "(info)", ok: true))
    // The same gigabyte as 512 PMD-mapped THPs: PMD migration entries, one folio each.
    let base2: UInt64 = 0x2000_0000_0000
    _ = m.mmap(t, addr: base2, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    _ = m.madvise(t, addr: base2, length: len, advice: .hugepage)
    m.access(t, addr: base2, length: len, kind: .write, stride: 2 * Size.MiB)
    let t1 = now()
    let r2 = m.migrateRange(t, addr: base2, length: len, toNode: 1)
    let dt1 = now() - t1
    precondition(r2.moved == Int(len >> 12) && r2.failed == 0)
    report(Result(name: "migrate 1 GiB of THPs node 0 -> 1 (512 PMD folios)", value: dt1 * 1000, unit: "ms", target: "(info)", ok: true))
}

/// Growing the HugeTLB pool by 10,000 2 MiB pages (vm.nr_hugepages), with HVO off and on,
/// then shrinking it back to 0 (with HVO on this restores every page's vmemmap).
func benchHugetlb() throws {
    var freeAfter: [Int64] = [0, 0], tables: [Int64] = [0, 0]
    for hvo in [false, true] {
        var grow = Double.infinity, shrink = Double.infinity, regrow = Double.infinity
        for _ in 0..<3 {   // best of 3: each run on a fresh machine
            let m = try Machine(.reference)
            m.setHugetlbOptimizeVmemmap(hvo)
            let pt0 = m.counters[.nrPageTablePages]
            let t0 = now()
            try m.setNrHugepages(10_000)
            grow = min(grow, now() - t0)
            precondition(m.hugetlb.defaultHstate.nrHugePages == 10_000)
            m.allocator.drainPages()
            freeAfter[hvo ? 1 : 0] = m.allocator.freePagesTotal
            tables[hvo ? 1 : 0] = m.counters[.nrPageTablePages] - pt0
            let t1 = now()
            try m.setNrHugepages(0)
            shrink = min(shrink, now() - t1)
            // Again, with the struct page records of those 20 GiB already in host memory.
            let t2 = now()
            try m.setNrHugepages(10_000)
            regrow = min(regrow, now() - t2)
        }
        let tag = hvo ? "HVO on " : "HVO off"
        report(Result(name: "hugetlb pool +10,000 x 2 MiB, \(tag)", value: grow * 1000, unit: "ms", target: "(info)", ok: true))
        report(Result(name: "  pool back to 0, \(tag)", value: shrink * 1000, unit: "ms", target: "(info)", ok: true))
        report(Result(name: "  grow again (memmap records warm), \(tag)", value: regrow * 1000, unit: "ms", target: "(info)", ok: true))
    }
    let saved = (freeAfter[1] - freeAfter[0]) * 4, pt = (tables[1] - tables[0]) * 4
    report(Result(name: "  MemFree, HVO on - off (+ vmemmap PTE tables)", value: Double(saved + pt), unit: "KiB", target: "= 10,000 x 28 KiB", ok: saved + pt == 280_000))
}

/// Memory pressure (issue 12): reclaim of 1 GiB of clean page cache and swap-out of 1 GiB of
/// anonymous memory, each done in one go by lowering a memcg's limit under it
/// (mem_cgroup_resize_max() -> limit reclaim), and a workload thrashing at 4x its memcg limit
/// (every access a fault: swap-out, swap-in with readahead, refaults).
func reclaimRun() throws -> (cache: Double, swapout: Double, thrash: Double) {
    let pages = 1 << 18
    // 1 GiB of clean page cache charged to a memcg, then the limit drops to 64 MiB.
    let m = try Machine(.reference)
    let t = m.spawn(name: "bench", cpu: 0)
    let g = try m.memcgCreate(path: "b")
    m.memcgAttach(t, to: g)
    _ = m.mmap(t, length: 4096, prot: .rw, flags: [.private, .anonymous])
    let f = m.createFile(name: "data", size: 1 << 30, cached: true)
    m.lruAddDrainAll()
    let c0 = m.counters[.pgstealFile]
    let t0 = now()
    try m.memcgWrite(g, "memory.limit_in_bytes", 64 << 20)
    let dtc = now() - t0
    let cacheRate = Double(m.counters[.pgstealFile] - c0) / dtc
    precondition(m.counters[.pgstealFile] - c0 > Int64(pages) - 20000)
    blackHole(f)
    // 1 GiB of anonymous memory, then the limit drops to 64 MiB with 2 GiB of swap.
    let m2 = try Machine(.reference)
    try m2.swapon(name: "/swapfile", size: 2 << 30)
    let t2 = m2.spawn(name: "bench", cpu: 0)
    let g2 = try m2.memcgCreate(path: "b")
    m2.memcgAttach(t2, to: g2)
    let base: UInt64 = 0x1000_0000_0000
    _ = m2.mmap(t2, addr: base, length: 1 << 30, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    _ = m2.madvise(t2, addr: base, length: 1 << 30, advice: .nohugepage)
    m2.access(t2, addr: base, length: 1 << 30, kind: .write)
    let s0 = m2.counters[.pgstealAnon]
    let t1 = now()
    try m2.memcgWrite(g2, "memory.limit_in_bytes", 64 << 20)
    let dts = now() - t1
    let swapRate = Double(m2.counters[.pgstealAnon] - s0) / dts
    precondition(m2.counters[.pswpout] > Int64(pages) - 20000)
    // Thrashing: a 256 MiB buffer in a 64 MiB memcg, written once, then read twice.
    let m3 = try Machine(.reference)
    try m3.swapon(name: "/swapfile", size: 1 << 30)
    let t3 = m3.spawn(name: "bench", cpu: 0)
    let g3 = try m3.memcgCreate(path: "b")
    try m3.memcgWrite(g3, "memory.limit_in_bytes", 64 << 20)
    m3.memcgAttach(t3, to: g3)
    _ = m3.mmap(t3, addr: base, length: 256 << 20, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
    _ = m3.madvise(t3, addr: base, length: 256 << 20, advice: .nohugepage)
    let t4 = now()
    var faults = m3.access(t3, addr: base, length: 256 << 20, kind: .write).faults
    faults += m3.access(t3, addr: base, length: 256 << 20, kind: .read).faults
    faults += m3.access(t3, addr: base, length: 256 << 20, kind: .read).faults
    let dtt = now() - t4
    return (cacheRate, swapRate, Double(faults) / dtt)
}

func benchReclaim() throws {
    let runs = 3
    var rs: [(cache: Double, swapout: Double, thrash: Double)] = []
    for _ in 0..<runs { rs.append(try reclaimRun()) }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let c = rs.map(\.cache), s = rs.map(\.swapout), t = rs.map(\.thrash)
    report(Result(name: "reclaim 1 GiB of clean page cache", value: c.max()!,
                  unit: String(format: "pages/s (median %.1f M)", median(c) / 1e6), target: ">= 5 M/s", ok: c.max()! >= 5e6))
    report(Result(name: "swap-out of 1 GiB anonymous memory", value: s.max()!,
                  unit: String(format: "pages/s (median %.1f M)", median(s) / 1e6), target: ">= 5 M/s", ok: s.max()! >= 5e6))
    report(Result(name: "thrashing at 4x the memcg limit", value: t.max()!,
                  unit: String(format: "faults/s (median %.1f M)", median(t) / 1e6), target: ">= 2 M/s", ok: t.max()! >= 2e6))
}

// boot first: its peak-RSS figure is the process's high-water mark, which the other
// benchmarks' machines would raise.
let all: [(String, () throws -> Void)] = [
    ("boot", benchBoot1TiB),
    ("shootdown", benchShootdown),
    ("rmap", benchRmap),
    ("migrate", benchMigrate),
    ("hugetlb", benchHugetlb),
    ("faults", benchFaults),
    ("reclaim", benchReclaim),
    ("tlb", benchTLBHit),
    ("walk", benchWalk),
    ("alloc", benchAllocFree),
]
let wanted = CommandLine.arguments.dropFirst()
print("mmsim-bench (release: \(_isDebugAssertConfiguration() ? "NO, debug build" : "yes"))")
for (name, f) in all where wanted.isEmpty || wanted.contains(name) {
    try f()
}
