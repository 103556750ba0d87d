// mm/hugetlb.c and mm/hugetlb_vmemmap.c: pools, reservations, faults, fork, demote, and HVO
// with the vmemmap in real kernel page tables; a port of tools/testing/selftests/mm/hugepage-vmemmap.c.
// The invariant checker (pool counters, NR_HUGETLB, vmemmap mappings, frame accounting) runs
// after every operation.

import Testing
@testable import MMSim

@Suite struct HugetlbTests {
    static let addr: UInt64 = 0x1000_0000_0000
    static let mb2 = PageOrder.pmd.bytes

    func meminfo(_ m: Machine, _ name: String) -> Int64 {
        Int64(m.meminfo().first { $0.name == name }!.value)
    }

    /// MemFree with the per-CPU lists drained (NR_FREE_PAGES leaves pcp pages out, as the kernel's does).
    func memFreeKB(_ m: Machine) -> Int64 {
        m.allocator.drainPages()
        return meminfo(m, "MemFree")
    }

    func machine(_ cfg: MachineConfig = .reference, hvo: Bool = false) throws -> Machine {
        let m = try Machine(cfg)
        m.setHugetlbOptimizeVmemmap(hvo)
        try m.checkInvariants()
        return m
    }

    // MARK: Boot

    /// hugetlb_init(): the lines the reference kernel printed, 1 GiB first (report_hugepages()).
    @Test func bootLogLines() throws {
        let m = try Machine(.reference)
        let lines = m.log.lines.filter { $0.hasPrefix("HugeTLB:") }
        #expect(lines == [
            "HugeTLB: registered 1.00 GiB page size, pre-allocated 0 pages",
            "HugeTLB: 16380 KiB vmemmap can be freed for a 1.00 GiB page",
            "HugeTLB: registered 2.00 MiB page size, pre-allocated 0 pages",
            "HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page",
        ])
    }

    /// hugepagesz=1G hugepages=2 hugepagesz=2M hugepages=100: boot pools, counted and printed.
    /// The 1 GiB pages come from memblock before the memmap (the `Memory:` line counts them
    /// reserved), then join the managed pages; the 2 MiB ones come from the buddy allocator.
    @Test func bootPools() throws {
        var cfg = MachineConfig.reference
        cfg.bootHugepages = [BootHugepages(sizeKB: 1048576, count: 2), BootHugepages(sizeKB: 2048, count: 100)]
        let m = try Machine(cfg)
        try m.checkInvariants()
        let plain = try Machine(.reference)
        #expect(m.totalRAMPages == plain.totalRAMPages)
        #expect(m.memblock.reserved.filter { $0.name.hasPrefix("hugetlb bootmem") }.count == 2)
        let memLine = { (x: Machine) in x.log.lines.first { $0.hasPrefix("Memory:") }! }
        #expect(memLine(m) != memLine(plain))
        #expect(m.hugetlb.hstates[1].freeList.allSatisfy { $0.raw >= PageOrder.pud.pages * 4 })   // top-down, above 4 GiB
        #expect(m.log.lines.contains("HugeTLB: registered 1.00 GiB page size, pre-allocated 2 pages"))
        #expect(m.log.lines.contains("HugeTLB: registered 2.00 MiB page size, pre-allocated 100 pages"))
        #expect(meminfo(m, "HugePages_Total") == 100)
        #expect(meminfo(m, "Hugetlb") == 2 * 1048576 + 100 * 2048)
        // vm_commit_limit() leaves the pools out.
        #expect(m.commitLimitPages == (m.totalRAMPages - (2 * 262144 + 100 * 512)) / 2)
    }

    /// The vmemmap is a real kernel mapping: PMD leaves onto the boot memmap, 64 bytes per frame.
    @Test(arguments: [Architecture.x86_64, .x86_64_5level, .arm64])
    func vmemmapIsMapped(arch: Architecture) throws {
        var cfg = MachineConfig.small
        cfg.arch = arch
        let m = try Machine(cfg)
        let pfn = m.zones.first { $0.isPopulated }!.startPFN + 4096
        let b = try #require(m.vmemmap.backing(m.vmemmap.address(of: PFN(pfn))))
        #expect(b.level == .pmd && b.writable)
        #expect(m.frames[b.pfn].pointee.state == .reserved)
        // The PFN's struct page is (pfn % 32768) * 64 bytes into its section's 2 MiB block.
        let b0 = try #require(m.vmemmap.backing(m.vmemmap.address(of: PFN(pfn & ~32767))))
        #expect(b.pfn.raw - b0.pfn.raw == (pfn & 32767) * 64 / 4096)
        try m.checkInvariants()
    }

    /// arm64 with a 4 KiB granule registers four sizes (hugetlbpage_init()), largest first.
    @Test func arm64BootLines() throws {
        let m = try Machine(.arm64)
        let lines = m.log.lines.filter { $0.hasPrefix("HugeTLB:") }
        #expect(lines == [
            "HugeTLB: registered 1.00 GiB page size, pre-allocated 0 pages",
            "HugeTLB: 16380 KiB vmemmap can be freed for a 1.00 GiB page",
            "HugeTLB: registered 32.0 MiB page size, pre-allocated 0 pages",
            "HugeTLB: 508 KiB vmemmap can be freed for a 32.0 MiB page",
            "HugeTLB: registered 2.00 MiB page size, pre-allocated 0 pages",
            "HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page",
            "HugeTLB: registered 64.0 KiB page size, pre-allocated 0 pages",
            "HugeTLB: 0 KiB vmemmap can be freed for a 64.0 KiB page",
        ])
    }

    /// arm64's contiguous sizes: 16 PTEs (64 KiB) or 16 PMDs (32 MiB) with PTE_CONT per huge page.
    @Test(arguments: [(UInt64(64), MapFlags.huge64KB, PageTableLevel.pte), (32768, .huge32MB, .pmd)])
    func arm64ContiguousSizes(sizeKB: UInt64, flag: MapFlags, level: PageTableLevel) throws {
        var cfg = MachineConfig.arm64
        cfg.memory = 2 * Size.GiB
        let m = try machine(cfg, hvo: true)
        let t = m.spawn(name: "wl")
        try m.setNrHugepages(sizeKB: sizeKB, 2)
        try m.checkInvariants()
        let size = sizeKB << 10
        let base: UInt64 = 0x1000_0000_0000
        #expect(m.mmap(t, addr: base, length: 2 * size, prot: .rw, flags: [.private, .anonymous, .hugetlb, flag]).failureValue == nil)
        let rep = m.access(t, addr: base, length: 2 * size, kind: .write)
        #expect(rep.faults == 2)
        try m.checkInvariants()
        let slot = try #require(t.mm!.pageTable.slot(VirtAddr(base), level: level))
        for i in 0..<16 {
            #expect(slot[i] & Arm64PTE.cont != 0)
            let l = try #require(PTEFormat.decode(slot[i], level: level, arch: .arm64))
            #expect(l.pfn.raw - PTEFormat.decode(slot[0], level: level, arch: .arm64)!.pfn.raw == UInt64(i) * (size >> 12) / 16)
        }
        #expect(m.status(t).first { $0.name == "HugetlbPages" }!.kB == Int64(2 * sizeKB))
        let h = try #require(m.hugetlb.hstate(sizeKB: sizeKB))
        #expect(m.hugetlb.vmemmapOptimized == (h.vmemmapOptimizablePages > 0 ? 2 : 0))
        let c = try m.fork(t, childName: "child").get()
        _ = m.access(c, addr: base, length: 1, kind: .write)
        try m.checkInvariants()
        m.exit(c)
        _ = m.munmap(t, addr: base, length: 2 * size)
        try m.checkInvariants()
        #expect(h.freeHugePages == 2 && m.vmstatValue(.nrHugetlb) == 0)
        try m.setNrHugepages(sizeKB: sizeKB, 0)
        try m.checkInvariants()
    }

    // MARK: Pools

    /// set_max_huge_pages(): growth from the buddy allocator (order 9, pgalloc counts 512 each),
    /// shrink back; surplus turns persistent first.
    @Test func poolGrowAndShrink() throws {
        let m = try machine()
        let pgalloc = m.vmstatValue(.pgallocNormal)
        try m.setNrHugepages(8)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 8 && meminfo(m, "HugePages_Free") == 8)
        #expect(m.vmstatValue(.htlbBuddyAllocSuccess) == 8)
        #expect(m.vmstatValue(.pgallocNormal) - pgalloc == 8 * 512)
        try m.setNrHugepages(3)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 3 && meminfo(m, "Hugetlb") == 3 * 2048)
        try m.setNrHugepages(0)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 0)
    }

    /// Reservations: mmap reserves every page, a fault consumes one, munmap gives the unused back.
    @Test func reservationsAtMmapAndUnmap() throws {
        let m = try machine()
        let t = m.spawn(name: "wl")
        try m.setNrHugepages(4)
        let r = m.mmap(t, addr: Self.addr, length: 4 * Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb, .fixedNoreplace])
        #expect(r.failureValue == nil)
        #expect(meminfo(m, "HugePages_Rsvd") == 4)
        _ = m.access(t, addr: Self.addr, length: 1, kind: .write)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Rsvd") == 3 && meminfo(m, "HugePages_Free") == 3)
        #expect(m.status(t).first { $0.name == "HugetlbPages" }!.kB == 2048)
        #expect(m.vmstatValue(.nrHugetlb) == 512)
        // A second mapping cannot reserve more than is free: -ENOMEM.
        let r2 = m.mmap(t, length: 4 * Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        #expect(r2.failureValue == .ENOMEM)
        // munmap of a part not on a huge page boundary is refused (hugetlb_vm_op_split()).
        #expect(m.munmap(t, addr: Self.addr + Page.size, length: Page.size).failureValue == .EINVAL)
        #expect(m.munmap(t, addr: Self.addr, length: 4 * Self.mb2).failureValue == nil)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Rsvd") == 0 && meminfo(m, "HugePages_Free") == 4)
        #expect(m.vmstatValue(.nrHugetlb) == 0)
    }

    /// Overcommit: a reservation beyond the pool takes surplus pages, freed when unmapped.
    @Test func surplusByOvercommit() throws {
        let m = try machine()
        let t = m.spawn(name: "wl")
        try m.setNrHugepages(1)
        try m.setNrOvercommitHugepages(2)
        #expect(m.mmap(t, addr: Self.addr, length: 3 * Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb]).failureValue == nil)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 3 && meminfo(m, "HugePages_Surp") == 2 && meminfo(m, "HugePages_Rsvd") == 3)
        _ = m.access(t, addr: Self.addr, length: 3 * Self.mb2, kind: .write)
        try m.checkInvariants()
        _ = m.munmap(t, addr: Self.addr, length: 3 * Self.mb2)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 1 && meminfo(m, "HugePages_Surp") == 0 && meminfo(m, "HugePages_Free") == 1)
    }

    /// A 1 GiB page is a PUD leaf; MAP_HUGE_1GB picks the size.
    @Test func giganticPageFault() throws {
        let m = try machine()
        let t = m.spawn(name: "wl")
        try m.setNrHugepages(sizeKB: 1048576, 1)
        #expect(m.mmap(t, addr: Self.addr, length: Size.GiB, prot: .rw, flags: [.private, .anonymous, .hugetlb, .huge1GB]).failureValue == nil)
        let rep = m.access(t, addr: Self.addr, length: Size.GiB, kind: .write, stride: 64 * Self.mb2)
        #expect(rep.faults == 1)
        guard case .leaf(let leaf, let level) = t.mm!.pageTable.lookup(VirtAddr(Self.addr + 5 * Page.size)) else {
            Issue.record("no leaf")
            return
        }
        #expect(level == .pud && leaf.size == .size1G)
        #expect(m.status(t).first { $0.name == "HugetlbPages" }!.kB == 1048576)
        try m.checkInvariants()
        m.exit(t)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].freeHugePages == 1)
    }

    /// A 1 GiB page where no gigantic range is free: alloc_contig_range() migrates the anonymous
    /// pages out of a range (pgmigrate_success), their contents and mappings intact.
    @Test func giganticByMigration() throws {
        var cfg = MachineConfig.reference
        cfg.memory = 3 * Size.GiB      // [0, 1G) holds the kernel, [2G, 3G) the memmap: [1G, 2G) can be cleared
        cfg.cpus = 1
        let m = try machine(cfg)
        let t = m.spawn(name: "filler")
        let len = 2300 * Size.MiB
        _ = m.mmap(t, addr: Self.addr, length: len, prot: .rw, flags: [.private, .anonymous])
        _ = m.madvise(t, addr: Self.addr, length: len, advice: .nohugepage)
        _ = m.access(t, addr: Self.addr, length: len, kind: .write)
        // Every other 2 MiB goes: free memory everywhere, no free gigantic range.
        var a = Self.addr
        while a < Self.addr + len {
            _ = m.madvise(t, addr: a, length: Self.mb2, advice: .dontneed)
            a += 2 * Self.mb2
        }
        try m.checkInvariants()
        #expect(m.allocator.allocContigPages(nrPages: PageOrder.pud.pages, gfp: [.user, .highmem]) == nil)
        // Contents before: the content word of each remaining page.
        func contents() -> [UInt64] {
            var out: [UInt64] = []
            var va = Self.addr + Self.mb2
            while va < Self.addr + len {
                if case .leaf(let l, _) = t.mm!.pageTable.lookup(VirtAddr(va)) { out.append(m.frames[l.pfn].pointee.content) }
                va += 64 * Page.size
            }
            return out
        }
        let before = contents()
        let rss = m.status(t).first { $0.name == "VmRSS" }!.kB
        try m.setNrHugepages(sizeKB: 1048576, 1)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 1)
        #expect(m.vmstatValue(.pgmigrateSuccess) > 0)
        #expect(contents() == before)
        #expect(m.status(t).first { $0.name == "VmRSS" }!.kB == rss)
        _ = m.access(t, addr: Self.addr + Self.mb2, length: len - Self.mb2, kind: .read, stride: 2 * Self.mb2)
        try m.checkInvariants()
    }

    // MARK: Gigantic pages from a range cleared through the rmap

    /// A machine whose every 1 GiB range that pfn_range_valid_contig() accepts holds, over and
    /// over, a PMD-mapped THP, mapped shared file pages (page cache, written) and anonymous
    /// pages, most of these then freed: free memory everywhere, no free gigantic range.
    struct Fragmented {
        let m: Machine
        let t: Task
        let file: SimFile
        /// The 1 GiB ranges alloc_contig_pages() tries (pfn_range_valid_contig()), in its order.
        let ranges: [UInt64]
        /// Those of them without unmovable pages (page tables, kernel pages), which
        /// start_isolate_page_range() refuses at once.
        var clearable: [UInt64] = []
        /// Every mapped address sampled (THP, file, anon) and the content seen there.
        var samples: [(UInt64, UInt64)] = []
    }

    static let chunk: UInt64 = 16 * Size.MiB

    func fragmented() throws -> Fragmented {
        var cfg = MachineConfig.reference
        cfg.memory = 6 * Size.GiB       // valid 1 GiB ranges: [1G, 2G) in DMA32, [4G, 6G) in Normal
        cfg.cpus = 1
        let m = try machine(cfg)
        let gig = PageOrder.pud.pages
        var ranges: [UInt64] = []
        for z in m.zones.reversed() where z.isPopulated {
            var s = (z.startPFN + gig - 1) / gig * gig
            while s + gig <= z.endPFN {
                if m.pfnRangeValidContig(z, s, gig) { ranges.append(s) }
                s += gig
            }
        }
        // Chunks enough to sweep all free memory but 256 MiB.
        let chunks = (UInt64(memFreeKB(m)) * 1024 - 256 * Size.MiB) / Self.chunk
        let t = m.spawn(name: "frag")
        let filePages: UInt64 = 64, anonPages: UInt64 = 16
        let filler = Self.chunk - Self.mb2
        let f = m.createFile(name: "data", size: chunks * filePages * Page.size, cached: false)
        let thpBase = Self.addr, fileBase = Self.addr + 0x100_0000_0000
        let anonBase = Self.addr + 0x200_0000_0000, fillBase = Self.addr + 0x300_0000_0000
        _ = m.mmap(t, addr: thpBase, length: chunks * Self.mb2, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: thpBase, length: chunks * Self.mb2, advice: .hugepage)
        _ = m.mmap(t, addr: fillBase, length: chunks * filler, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: fillBase, length: chunks * filler, advice: .hugepage)
        _ = m.mmap(t, addr: fileBase, length: chunks * filePages * Page.size, prot: .rw, flags: [.shared, .fixedNoreplace], file: f.id)
        _ = m.mmap(t, addr: anonBase, length: chunks * anonPages * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(t, addr: anonBase, length: chunks * anonPages * Page.size, advice: .nohugepage)
        // Allocation sweeps memory: each 16 MiB gets 7 filler THPs, a THP, 64 file pages, 16 anonymous pages.
        for i in 0..<chunks {
            _ = m.access(t, addr: fillBase + i * filler, length: filler, kind: .write, stride: Self.mb2)
            _ = m.access(t, addr: thpBase + i * Self.mb2, length: Self.mb2, kind: .write, stride: Self.mb2)
            _ = m.access(t, addr: fileBase + i * filePages * Page.size, length: filePages * Page.size, kind: .write)
            _ = m.access(t, addr: anonBase + i * anonPages * Page.size, length: anonPages * Page.size, kind: .write)
        }
        try m.checkInvariants()
        // The fillers go: free 2 MiB blocks everywhere, no free 1 GiB range.
        _ = m.madvise(t, addr: fillBase, length: chunks * filler, advice: .dontneed)
        try m.checkInvariants()
        var fr = Fragmented(m: m, t: t, file: f, ranges: ranges)
        fr.clearable = ranges.filter { census(m, $0).unmovable == 0 }
        for i in stride(from: UInt64(0), to: chunks * Self.mb2, by: Int(64 * Page.size)) {
            if let c = contentAt(m, t, thpBase + i) { fr.samples.append((thpBase + i, c)) }
        }
        for i in stride(from: UInt64(0), to: chunks * filePages * Page.size, by: Int(Page.size)) {
            if let c = contentAt(m, t, fileBase + i) { fr.samples.append((fileBase + i, c)) }
        }
        for i in stride(from: UInt64(0), to: chunks * anonPages * Page.size, by: Int(Page.size)) {
            if let c = contentAt(m, t, anonBase + i) { fr.samples.append((anonBase + i, c)) }
        }
        return fr
    }

    /// The in-use pages of the 1 GiB range at `start`: anonymous order-0, page-cache, THP pages,
    /// and the unmovable ones (page tables, pages off the LRU).
    func census(_ m: Machine, _ start: UInt64, upTo: UInt64? = nil) -> (anon: Int, file: Int, thp: Int, unmovable: Int) {
        var anon = 0, file = 0, thp = 0, unmovable = 0
        var pfn = start
        while pfn < (upTo ?? start + PageOrder.pud.pages) {
            guard let p = m.frames.peek(PFN(pfn)), p.pointee.state == .allocated, p.pointee.flags.contains(.lru) else {
                if let p = m.frames.peek(PFN(pfn)), p.pointee.state == .pageTable
                    || (p.pointee.state == .allocated && p.pointee.refcount > 0) { unmovable += 1 }
                pfn += 1
                continue
            }
            let n = UInt64(1) << UInt64(p.pointee.order)
            if n > 1 { thp += Int(n) } else if PageMapping.isAnon(p.pointee.mapping) { anon += 1 } else { file += 1 }
            pfn += n
        }
        return (anon, file, thp, unmovable)
    }

    func firstFileFrame(_ m: Machine, _ start: UInt64) -> PFN? {
        for pfn in start..<(start + PageOrder.pud.pages) {
            if let p = m.frames.peek(PFN(pfn)), p.pointee.state == .allocated, p.pointee.flags.contains(.lru),
               p.pointee.order == 0, p.pointee.mapping != 0, !PageMapping.isAnon(p.pointee.mapping) { return PFN(pfn) }
        }
        return nil
    }

    func firstAnonFrame(_ m: Machine, _ start: UInt64) -> PFN? {
        for pfn in start..<(start + PageOrder.pud.pages) {
            if let p = m.frames.peek(PFN(pfn)), p.pointee.state == .allocated, p.pointee.flags.contains(.lru),
               p.pointee.order == 0, PageMapping.isAnon(p.pointee.mapping) { return PFN(pfn) }
        }
        return nil
    }

    /// alloc_contig_range() on the first valid range: its anonymous, page-cache and THP pages
    /// migrate through the rmap (pgmigrate_success = the pages moved, compact_isolated = those
    /// plus the range's frames taken free), the process reads the same content everywhere.
    @Test func giganticMigratesAnonFileAndTHP() throws {
        let fr = try fragmented()
        let m = fr.m
        try #require(fr.clearable.count >= 2)
        for r in fr.ranges {
            let c = census(m, r)
            #expect(c.anon > 0 && c.file > 0 && c.thp > 0, "range \(r): \(c)")
        }
        #expect(m.allocator.allocContigPages(nrPages: PageOrder.pud.pages, gfp: [.user, .highmem]) == nil)
        let c = census(m, fr.clearable[0])
        let moved = Int64(c.anon + c.file + c.thp)
        let ok = m.vmstatValue(.pgmigrateSuccess), failed = m.vmstatValue(.pgmigrateFail)
        let thpOK = m.vmstatValue(.thpMigrationSuccess), isolated = m.vmstatValue(.compactIsolated)
        let cached = meminfo(m, "Cached")
        try m.setNrHugepages(sizeKB: 1048576, 1)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 1)
        #expect(m.hugetlbHead(containing: PFN(fr.clearable[0]))?.1 == PFN(fr.clearable[0]))
        #expect(m.vmstatValue(.pgmigrateSuccess) - ok == moved)
        #expect(m.vmstatValue(.pgmigrateFail) == failed)
        #expect(m.vmstatValue(.thpMigrationSuccess) - thpOK == Int64(c.thp / 512))
        #expect(m.vmstatValue(.compactIsolated) - isolated == moved + Int64(PageOrder.pud.pages))
        #expect(meminfo(m, "Cached") == cached)
        for (va, content) in fr.samples { #expect(contentAt(m, fr.t, va) == content) }
        // Still mapped where they were: reading everything takes no fault; writes go on counting.
        let faults = m.vmstatValue(.pgfault)
        _ = m.access(fr.t, addr: fr.samples[0].0, length: Page.size, kind: .read)
        #expect(m.vmstatValue(.pgfault) == faults)
        _ = m.access(fr.t, addr: fr.samples[0].0, length: Page.size, kind: .write)
        #expect(contentAt(m, fr.t, fr.samples[0].0) == fr.samples[0].1 + 1)
        try m.checkInvariants()
        try m.setNrHugepages(sizeKB: 1048576, 0)
        try m.checkInvariants()
    }

    /// A pinned page (an extra reference, as pin_user_pages() leaves) makes alloc_contig_range()
    /// fail on its range: a pinned file page after 5 tries of migrate_pages() (pgmigrate_fail 5),
    /// the rest of the range already moved; the next range is cleared. With a pinned anonymous
    /// page in every range (not even isolated: no pgmigrate_fail) the pool cannot grow, and
    /// alloc_gigantic_folio() counts no htlb_buddy_alloc_fail.
    @Test func giganticSkipsPinnedRange() throws {
        let fr = try fragmented()
        let m = fr.m
        try #require(fr.clearable.count >= 2)
        let r0 = fr.clearable[0], r1 = fr.clearable[1]
        let pinned = try #require(firstFileFrame(m, r0))
        m.frames[pinned].pointee.refcount += 1
        let below = census(m, r0, upTo: pinned.raw), c1 = census(m, r1)
        let ok = m.vmstatValue(.pgmigrateSuccess), failed = m.vmstatValue(.pgmigrateFail)
        try m.setNrHugepages(sizeKB: 1048576, 1)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 1)
        #expect(m.hugetlbHead(containing: PFN(r1))?.1 == PFN(r1))
        #expect(m.vmstatValue(.pgmigrateFail) - failed == Int64(Machine.contigMigrateTries))
        // The first range moved its pages up to the pinned one (lowest first), the next moved whole.
        #expect(below.anon + below.file + below.thp > 0)
        #expect(m.vmstatValue(.pgmigrateSuccess) - ok == Int64(below.anon + below.file + below.thp + c1.anon + c1.file + c1.thp))
        // The range that failed gave its pageblocks back: nothing left isolated.
        for b in stride(from: r0, to: r0 + PageOrder.pud.pages, by: Int(PageOrder.pageblock.pages)) {
            #expect(m.allocator.pageblockMigratetype(PFN(b)) != .isolate)
        }
        for (va, content) in fr.samples { #expect(contentAt(m, fr.t, va) == content) }
        // A pinned anonymous page in every other clearable range: no second gigantic page.
        var pins: [PFN] = []
        for r in fr.clearable.dropFirst(2) {
            let p = try #require(firstAnonFrame(m, r))
            m.frames[p].pointee.refcount += 1
            pins.append(p)
        }
        let failed2 = m.vmstatValue(.pgmigrateFail), buddyFail = m.vmstatValue(.htlbBuddyAllocFail)
        try m.setNrHugepages(sizeKB: 1048576, 2)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 1)
        #expect(m.vmstatValue(.htlbBuddyAllocFail) == buddyFail)
        #expect(m.vmstatValue(.pgmigrateFail) - failed2 == Int64(Machine.contigMigrateTries))   // range 0's file page again
        m.frames[pinned].pointee.refcount -= 1
        for p in pins { m.frames[p].pointee.refcount -= 1 }
        try m.setNrHugepages(sizeKB: 1048576, 2)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 2)
        for (va, content) in fr.samples { #expect(contentAt(m, fr.t, va) == content) }
    }

    /// fork(): the child shares the pages write-protected; its write copies from the unreserved pool.
    @Test func forkCopyOnWrite() throws {
        let m = try machine()
        let p = m.spawn(name: "parent")
        try m.setNrHugepages(2)
        _ = m.mmap(p, addr: Self.addr, length: Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        _ = m.access(p, addr: Self.addr, length: 1, kind: .write)
        let c = try m.fork(p, childName: "child").get()
        try m.checkInvariants()
        #expect(m.status(c).first { $0.name == "HugetlbPages" }!.kB == 2048)
        _ = m.access(c, addr: Self.addr, length: 1, kind: .write)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Free") == 0)
        m.exit(c)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Free") == 1)
    }

    /// mprotect() on a hugetlb mapping rewrites the huge leaves; a cut inside a huge page is -EINVAL.
    @Test func mprotectHugeLeaves() throws {
        let m = try machine()
        let t = m.spawn(name: "wl")
        try m.setNrHugepages(2)
        _ = m.mmap(t, addr: Self.addr, length: 2 * Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        _ = m.access(t, addr: Self.addr, length: 2 * Self.mb2, kind: .write)
        #expect(m.mprotect(t, addr: Self.addr, length: Page.size, prot: .read).failureValue == .EINVAL)
        #expect(m.mprotect(t, addr: Self.addr, length: Self.mb2, prot: .read).failureValue == nil)
        try m.checkInvariants()
        #expect(t.mm!.vmas.filter { $0.flags.contains(.hugetlb) }.count == 2)
        // Read-only now: a write faults and, the VMA forbidding it, is a SIGSEGV.
        #expect(m.mprotect(t, addr: Self.addr, length: Self.mb2, prot: .rw).failureValue == nil)
        // Writable again: the first write takes a fault that reuses the exclusive page.
        let faults = m.vmstatValue(.pgfault)
        _ = m.access(t, addr: Self.addr, length: 1, kind: .write)
        #expect(m.vmstatValue(.pgfault) - faults == 1 && t.state == .running)
        _ = m.access(t, addr: Self.addr + Self.mb2, length: 1, kind: .write)
        #expect(m.vmstatValue(.pgfault) - faults == 1)
        #expect(m.mapsText(t).contains("/anon_hugepage (deleted)"))
        // MADV_DONTNEED drops whole huge pages only (the end rounds down).
        _ = m.madvise(t, addr: Self.addr, length: Self.mb2 + Page.size, advice: .dontneed)
        try m.checkInvariants()
        #expect(m.status(t).first { $0.name == "HugetlbPages" }!.kB == 2048)
        #expect(meminfo(m, "HugePages_Free") == 1)
        try m.checkInvariants()
    }

    /// MAP_SHARED|MAP_HUGETLB: a hugetlbfs file; the child of fork() faults the same pages in
    /// again, and the file (its pages and unused reservations) goes with the last mapping.
    @Test func sharedMapping() throws {
        let m = try machine()
        let p = m.spawn(name: "parent")
        try m.setNrHugepages(3)
        #expect(m.mmap(p, addr: Self.addr, length: 2 * Self.mb2, prot: .rw, flags: [.shared, .anonymous, .hugetlb]).failureValue == nil)
        #expect(meminfo(m, "HugePages_Rsvd") == 2)
        _ = m.access(p, addr: Self.addr, length: 1, kind: .write)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Rsvd") == 1 && meminfo(m, "HugePages_Free") == 2)
        let c = try m.fork(p, childName: "child").get()
        let rep = m.access(c, addr: Self.addr, length: 1, kind: .read)
        #expect(rep.faults == 1)
        guard case .leaf(let lp, _) = p.mm!.pageTable.lookup(VirtAddr(Self.addr)),
              case .leaf(let lc, _) = c.mm!.pageTable.lookup(VirtAddr(Self.addr)) else {
            Issue.record("not mapped")
            return
        }
        #expect(lp.pfn == lc.pfn && lc.writable)
        #expect(m.frames[lp.pfn].pointee.mapcount == 2)
        _ = m.munmap(p, addr: Self.addr, length: 2 * Self.mb2)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Free") == 2 && meminfo(m, "HugePages_Rsvd") == 1)
        m.exit(c)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Free") == 3 && meminfo(m, "HugePages_Rsvd") == 0)
        #expect(m.vmstatValue(.nrHugetlb) == 0)
    }

    /// The owner of the reservation never fails its COW: with no free page it takes the page
    /// back from the child (unmap_ref_private()), whose next fault there is a SIGBUS.
    @Test func ownerTakesPageBackFromChild() throws {
        let m = try machine()
        let p = m.spawn(name: "parent")
        try m.setNrHugepages(1)
        _ = m.mmap(p, addr: Self.addr, length: Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        _ = m.access(p, addr: Self.addr, length: 1, kind: .write)
        let c = try m.fork(p, childName: "child").get()
        #expect(m.status(c).first { $0.name == "HugetlbPages" }!.kB == 2048)
        _ = m.access(p, addr: Self.addr, length: 1, kind: .write)
        try m.checkInvariants()
        #expect(p.state == .running && p.signals.isEmpty)
        #expect(m.status(c).first { $0.name == "HugetlbPages" }!.kB == 0)
        let rep = m.access(c, addr: Self.addr, length: 1, kind: .read)
        #expect(rep.signal?.name == "SIGBUS")
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Free") == 0)
    }

    /// demote: a free 1 GiB page becomes 512 free 2 MiB pages (vmemmap restored, then optimized again).
    @Test(arguments: [false, true])
    func demote(hvo: Bool) throws {
        let m = try machine(hvo: hvo)
        try m.setNrHugepages(sizeKB: 1048576, 1)
        #expect(try m.demoteHugepages(sizeKB: 1048576, count: 1) == 1)
        try m.checkInvariants()
        #expect(m.hugetlb.hstates[1].nrHugePages == 0)
        #expect(meminfo(m, "HugePages_Total") == 512 && meminfo(m, "HugePages_Free") == 512)
        #expect(meminfo(m, "Hugetlb") == 1048576)
    }

    // MARK: HVO

    /// HVO on vs off for `n` pages of `sizeKB`: MemFree is higher by n x (vmemmap pages - 1) x 4 KiB,
    /// less the PTE tables the vmemmap PMD splits took (pte_alloc_one_kernel(): NR_PAGETABLE).
    /// Boot vmemmap pages go back through free_reserved_page(), raising MemTotal by all of them
    /// (the new head page included in the count they replace).
    @Test(arguments: [(UInt64(2048), UInt64(1000), Int64(28)), (1048576, 10, 16380)])
    func hvoSavesVmemmap(sizeKB: UInt64, n: UInt64, savedKB: Int64) throws {
        let off = try machine(hvo: false), on = try machine(hvo: true)
        let free0 = memFreeKB(on), total0 = meminfo(on, "MemTotal"), pt0 = meminfo(on, "PageTables")
        #expect(free0 == memFreeKB(off) && total0 == meminfo(off, "MemTotal"))
        let boot0 = on.vmstatValue(.nrMemmapBootPages), memmap0 = on.vmstatValue(.nrMemmapPages)
        try off.setNrHugepages(sizeKB: sizeKB, n)
        try on.setNrHugepages(sizeKB: sizeKB, n)
        try off.checkInvariants()
        try on.checkInvariants()
        let h = on.hugetlb.hstate(sizeKB: sizeKB)!
        #expect(h.nrHugePages == n && off.hugetlb.hstate(sizeKB: sizeKB)!.nrHugePages == n)
        let vmemmapPages = Int64(h.vmemmapBytes / Page.size)      // 8 or 4096
        let tablesKB = meminfo(on, "PageTables") - pt0
        #expect(tablesKB > 0)
        #expect(memFreeKB(on) - memFreeKB(off) + tablesKB == Int64(n) * savedKB)
        // Every boot vmemmap page of the folios went (free_reserved_page), one new head each came.
        #expect(on.vmstatValue(.nrMemmapBootPages) - boot0 == -Int64(n) * vmemmapPages)
        #expect(on.vmstatValue(.nrMemmapPages) - memmap0 == Int64(n))
        #expect(meminfo(on, "MemTotal") - total0 == Int64(n) * vmemmapPages * 4)
        #expect(meminfo(off, "MemTotal") == total0)

        // Freeing restores the vmemmap (alloc_vmemmap_page_list()) before the pages go back:
        // MemFree returns to where it was, less the PTE tables (the split PMDs stay split) plus
        // the boot pages now managed; MemTotal keeps what free_reserved_page() added.
        try off.setNrHugepages(sizeKB: sizeKB, 0)
        try on.setNrHugepages(sizeKB: sizeKB, 0)
        try on.checkInvariants()
        try off.checkInvariants()
        #expect(memFreeKB(off) == free0)
        #expect(memFreeKB(on) == free0 - tablesKB)
        #expect(on.vmstatValue(.nrMemmapPages) - memmap0 == Int64(n) * vmemmapPages)
        #expect(on.hugetlb.vmemmapRestored == n)
    }

    /// hugepage-vmemmap.c: map a huge page, write it, look its PFN up (pagemap), read the
    /// kpageflags of the head (HEAD|HUGE) and of every tail (TAIL|HUGE); with HVO every tail
    /// struct page is read through a read-only mapping of the head vmemmap page.
    @Test(arguments: [false, true])
    func hugepageVmemmapSelftest(hvo: Bool) throws {
        let m = try machine(hvo: hvo)
        let t = m.spawn(name: "hugepage-vmemmap")
        try m.setNrHugepages(1)
        _ = m.mmap(t, addr: Self.addr, length: Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        _ = m.access(t, addr: Self.addr, length: Self.mb2, kind: .write)
        guard case .leaf(let leaf, .pmd) = t.mm!.pageTable.lookup(VirtAddr(Self.addr)) else {
            Issue.record("no PMD leaf")
            return
        }
        let head = leaf.pfn
        func bit(_ k: KPF) -> UInt64 { 1 << UInt64(k.rawValue) }
        let headFlags = bit(.compoundHead) | bit(.huge), tailFlags = bit(.compoundTail) | bit(.huge)
        #expect(m.kpageflags(head) & headFlags == headFlags)
        for i in 1..<PageOrder.pmd.pages {
            #expect(m.kpageflags(head + i) & tailFlags == tailFlags && m.kpageflags(head + i) & bit(.compoundHead) == 0)
        }
        let map = m.vmemmapMapping(of: head, pages: PageOrder.pmd.pages)
        #expect(map.count == 8)
        #expect(map[0].writable)
        if hvo {
            for v in map.dropFirst() { #expect(v.pfn == map[0].pfn && !v.writable && v.level == .pte) }
            #expect(m.frames[map[0].pfn].pointee.state == .allocated)   // the new head page
        } else {
            #expect(Set(map.map(\.pfn)).count == 8 && map.allSatisfy { $0.writable && $0.level == .pmd })
        }
        try m.checkInvariants()
        m.exit(t)
        try m.setNrHugepages(0)
        try m.checkInvariants()
        // Restored: 7 new writable pages, the head stays the one HVO allocated.
        #expect(m.hugetlb.vmemmapRestored == (hvo ? 1 : 0))
    }

    /// vm.hugetlb_optimize_vmemmap only affects pages allocated afterwards.
    @Test func sysctlAffectsLaterPages() throws {
        let m = try machine(hvo: false)
        try m.setNrHugepages(2)
        m.setHugetlbOptimizeVmemmap(true)
        try m.setNrHugepages(4)
        try m.checkInvariants()
        let h = m.hugetlb.defaultHstate
        let optimized = h.freeList.filter { m.hugetlbFlags($0).contains(.vmemmapOptimized) }.count
        #expect(optimized == 2)
    }

    /// When the restore cannot allocate its vmemmap pages, the page stays in the pool as a
    /// surplus page (bulk_vmemmap_restore_error()); once memory is back it can go.
    @Test func restoreFailureKeepsSurplusPage() throws {
        let m = try machine(.small, hvo: true)
        try m.setNrHugepages(4)
        try m.checkInvariants()
        #expect(m.hugetlb.vmemmapOptimized == 4)
        // Take every page the allocator will give.
        var hog: [PFN] = []
        while let p = m.allocator.allocPages([.kernel, .noWarn]) { hog.append(p) }
        try m.setNrHugepages(0)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Total") == 4 && meminfo(m, "HugePages_Surp") == 4 && meminfo(m, "HugePages_Free") == 4)
        #expect(m.hugetlb.vmemmapRestoreFailed >= 4)
        for p in hog { m.allocator.freePages(p) }
        try m.checkInvariants()
        // Free surplus pages stay until something returns unused reservations
        // (return_unused_surplus_pages()): an unused one-page mapping frees one.
        let t = m.spawn(name: "wl")
        _ = m.mmap(t, addr: Self.addr, length: Self.mb2, prot: .rw, flags: [.private, .anonymous, .hugetlb])
        _ = m.munmap(t, addr: Self.addr, length: Self.mb2)
        try m.checkInvariants()
        #expect(meminfo(m, "HugePages_Surp") == 3 && meminfo(m, "HugePages_Total") == 3)
    }

    /// Memory hot-added with memmap_on_memory holds its own vmemmap: HVO refuses it (-ENOTSUPP)
    /// and the page stays unoptimized; without memmap_on_memory the vmemmap came from the buddy
    /// allocator and HVO frees those pages (nr_memmap_pages).
    @Test(arguments: [true, false])
    func hotplugSelfHostedVmemmap(memmapOnMemory: Bool) throws {
        var cfg = MachineConfig.small
        cfg.hotplugMemory = 128 * Size.MiB
        cfg.memmapOnMemory = memmapOnMemory
        let m = try machine(cfg, hvo: true)
        let base = m.hotplugRange.start
        let memmap0 = m.vmstatValue(.nrMemmapPages)
        let id = try m.addMemory(start: base << Page.shift, size: MachineConfig.memoryBlockBytes)
        try m.checkInvariants()
        #expect(m.vmstatValue(.nrMemmapPages) - memmap0 == 512)
        let total0 = meminfo(m, "MemTotal")
        try m.onlineMemoryBlock(id)
        try m.checkInvariants()
        #expect(meminfo(m, "MemTotal") - total0 == Int64(32768 - (memmapOnMemory ? 512 : 0)) * 4)
        // ZONE_NORMAL is only the new block: huge pages come from it.
        try m.setNrHugepages(2)
        try m.checkInvariants()
        let h = m.hugetlb.defaultHstate
        #expect(h.freeList.allSatisfy { $0.raw >= base })
        let optimized = h.freeList.filter { m.hugetlbFlags($0).contains(.vmemmapOptimized) }.count
        #expect(optimized == (memmapOnMemory ? 0 : 2))
        var freed: [PFN] = []
        let one = try #require(h.freeList.first)
        if memmapOnMemory {
            #expect(m.vmemmapSplit(m.vmemmap.address(of: one), m.vmemmap.address(of: one) + h.vmemmapBytes, flush: true) == .ENOTSUPP)
            #expect(m.hugetlbVmemmapOptimizeFolio(h, one, freed: &freed, flush: true) == .ENOTSUPP)
            #expect(freed.isEmpty)
        } else {
            // 8 buddy vmemmap pages freed, 1 new head allocated, per page.
            #expect(m.vmstatValue(.nrMemmapPages) - memmap0 == 512 - 2 * 7)
        }
        try m.setNrHugepages(0)
        try m.checkInvariants()
        if memmapOnMemory {
            try m.offlineMemoryBlock(id)
            try m.checkInvariants()
            #expect(meminfo(m, "MemTotal") == total0)
        } else {
            // The HVO head pages and the restored tail pages are unmovable kernel pages
            // allocated in the block (ZONE_NORMAL): offlining it fails, as in the kernel
            // without migration of unmovable pages.
            #expect(throws: HotplugError.self) { try m.offlineMemoryBlock(id) }
            try m.checkInvariants()
        }
    }

    /// offline_pages() migrates the anonymous pages out of a hot-added block onlined movable
    /// (ZONE_MOVABLE: user pages land there, page tables do not), contents and mappings intact.
    @Test func offlineMigratesPages() throws {
        var cfg = MachineConfig.small
        cfg.hotplugMemory = 128 * Size.MiB
        cfg.memmapOnMemory = true
        let m = try machine(cfg)
        let id = try m.addMemory(start: m.hotplugRange.start << Page.shift, size: MachineConfig.memoryBlockBytes)
        let total0 = meminfo(m, "MemTotal")
        try m.onlineMemoryBlock(id, movable: true)
        try m.checkInvariants()
        #expect(m.zones[ZoneType.movable.rawValue].managedPages == 32768 - 512)
        let t = m.spawn(name: "wl")
        let len = 32 * Size.MiB
        _ = m.mmap(t, addr: Self.addr, length: len, prot: .rw, flags: [.private, .anonymous])
        _ = m.madvise(t, addr: Self.addr, length: len, advice: .nohugepage)
        _ = m.access(t, addr: Self.addr, length: len, kind: .write)
        guard case .leaf(let l0, _) = t.mm!.pageTable.lookup(VirtAddr(Self.addr)) else { Issue.record("unmapped"); return }
        #expect(l0.pfn.raw >= m.hotplugRange.start)
        let content = m.frames[l0.pfn].pointee.content
        try m.offlineMemoryBlock(id)
        try m.checkInvariants()
        guard case .leaf(let l1, _) = t.mm!.pageTable.lookup(VirtAddr(Self.addr)) else { Issue.record("unmapped"); return }
        #expect(l1.pfn.raw < m.hotplugRange.start && m.frames[l1.pfn].pointee.content == content)
        #expect(m.vmstatValue(.pgmigrateSuccess) > 0)
        #expect(meminfo(m, "MemTotal") == total0)
        let rep = m.access(t, addr: Self.addr, length: len, kind: .read)
        #expect(rep.signal == nil)
        try m.checkInvariants()
    }

    /// A scenario drives it all: boot pool, HVO sysctl, the vmemmap view.
    @Test func scenarioView() throws {
        let text = """
        machine preset=small hugepagesz=2M hugepages=2 hugetlb_free_vmemmap=on
        spawn wl
        wl: buf = mmap 0x100000000000 2M rw private anon hugetlb fixed_noreplace
        wl: write buf +2M
        expect meminfo.HugePages_Free == 1
        expect vmstat.nr_hugetlb == 512
        cat /proc/wl/vmemmap/0x100000000000
        sysctl vm.hugetlb_optimize_vmemmap=0
        sysfs /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages=1
        expect hugepages-1048576kB.nr_hugepages == 0
        expect hugepages-2048kB.free_hugepages == 1
        cat /sys/kernel/mm/hugepages
        sysfs /sys/devices/system/memory/probe=0x1000
        """
        let scenario = try ScenarioParser.parse(text, file: "hvo.mmsim")
        let report = try ScenarioRunner(scenario, options: .init(checkInvariants: true)).run()
        #expect(report.expectations.allSatisfy { $0.passed })
        let view = report.output.compactMap { if case .view(_, let t, _) = $0 { t } else { nil } }.joined()
        #expect(view.contains("optimized (HVO)"))
        #expect(view.contains("vmemmap pages 1-7"))
        #expect(view.contains("ro (pte)"))
        #expect(view.contains("(HEAD|HUGE"))
        #expect(view.contains("kpageflags tails (511)"))
        #expect(view.contains("hugepages-2048kB: nr_hugepages 2 free_hugepages 1 resv_hugepages 0"))
        // A failed write is reported with the kernel's reason, and the run goes on.
        let warnings = report.output.compactMap { if case .warning(_, let w) = $0 { w } else { nil } }
        #expect(warnings.contains { $0.contains("probe failed: -EINVAL") })
    }
}
