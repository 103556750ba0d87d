// mm/hugetlb_vmemmap.c, mm/sparse-vmemmap.c: the struct page array mapped by kernel page
// tables, and HVO: a huge page's tail struct pages remapped read-only onto one page.

/// The vmemmap: `struct page` of PFN p lives at `base + p * 64`, mapped by init_mm page tables
/// (PMD leaves at boot). The tables are real: frames with 512 entries each, the boot ones
/// taken from memblock (PG_reserved, not in NR_PAGETABLE), later ones from the buddy allocator.
public final class Vmemmap {
    /// VMEMMAP_START
    public let start: UInt64
    /// The address of PFN 0's struct page (arm64 subtracts memstart_addr's PFN).
    public let base: UInt64
    /// The kernel page tables holding the vmemmap mapping.
    public let table: PageTable
    let source: VmemmapTableSource
    /// PFN ranges of vmemmap pages that live in the memory they describe
    /// (PageVmemmapSelfHosted(): hot-added with memmap_on_memory).
    var selfHosted: [(start: UInt64, end: UInt64)] = []

    init(start: UInt64, base: UInt64, table: PageTable, source: VmemmapTableSource) {
        self.start = start
        self.base = base
        self.table = table
        self.source = source
    }

    /// (unsigned long)pfn_to_page(pfn)
    @inline(__always) public func address(of pfn: PFN) -> UInt64 { base &+ pfn.raw &* Page.structPageBytes }

    /// PageVmemmapSelfHosted() of the vmemmap page `pfn`.
    public func isSelfHosted(_ pfn: PFN) -> Bool {
        selfHosted.contains { pfn.raw >= $0.start && pfn.raw < $0.end }
    }

    /// The frame backing the vmemmap page at `va`, and whether it is mapped writable; nil when unmapped.
    public func backing(_ va: UInt64) -> (pfn: PFN, writable: Bool, level: PageTableLevel)? {
        guard case .leaf(let leaf, let level) = table.lookup(VirtAddr(va)), leaf.present else { return nil }
        let off = (va & (leaf.size.bytes - 1)) >> Page.shift
        return (leaf.pfn + off, leaf.writable, level)
    }
}

/// Page-table frames for the vmemmap: the boot ones memblock reserved, then pte_alloc_one_kernel()
/// (a buddy page counted in NR_PAGETABLE).
final class VmemmapTableSource: PageTableFrameSource {
    /// Boot frames not yet used, the next one last.
    var bootFrames: [PFN]
    unowned let allocator: PageAllocator
    init(bootFrames: [PFN], allocator: PageAllocator) {
        self.bootFrames = bootFrames.reversed()
        self.allocator = allocator
    }
    /// vmemmap_alloc_block_zero() at boot (memblock), pte_alloc_one_kernel() after.
    func allocPageTable(level: PageTableLevel) -> PFN? {
        if let f = bootFrames.popLast() { return f }
        return allocator.allocPageTable(level: level)
    }
    /// pte_free_kernel()
    func freePageTable(_ pfn: PFN, level: PageTableLevel) {
        allocator.freePageTable(pfn, level: level)
    }
}

/// One vmemmap page of a huge page, as the vmemmap view shows it.
public struct VmemmapPageMapping: Sendable, Hashable {
    /// Its virtual address in the vmemmap.
    public var address: UInt64
    /// The frame the kernel page tables map it to.
    public var pfn: PFN
    public var writable: Bool
    /// The level of the leaf mapping it (PMD at boot, PTE once split).
    public var level: PageTableLevel
}

extension Machine {
    // MARK: Boot

    /// vmemmap_populate() for every present section (sparse_init()): a PMD leaf per section
    /// mapping its 2 MiB of struct pages, in kernel page tables whose frames memblock reserved;
    /// the top-level table is the kernel image's (init_top_pgt / swapper_pg_dir).
    func vmemmapInit(_ early: EarlyBoot) {
        let start: UInt64, base: UInt64
        switch arch {
        case .x86_64:
            start = 0xffff_ea00_0000_0000
            base = start
        case .x86_64_5level:
            start = 0xffd4_0000_0000_0000
            base = start
        case .arm64:
            // VMEMMAP_END = -1 GiB, VMEMMAP_START = VMEMMAP_END - VMEMMAP_SIZE; vmemmap is
            // offset by memstart_addr so that RAM's first PFN maps at VMEMMAP_START.
            start = 0xffff_fdff_c000_0000
            base = start &- (Machine.arm64RAMBase >> Page.shift) * Page.structPageBytes
        }
        let source = VmemmapTableSource(bootFrames: [PFN(early.kernelPgdPFN)] + early.vmemmapTableFrames.map { PFN($0) },
                                        allocator: allocator)
        guard let table = PageTable(arch: arch, frames: frames, source: source, kernel: true) else { return }
        let vm = Vmemmap(start: start, base: base, table: table, source: source)
        let memmapFirst = early.memmapBase >> Page.shift
        for (i, sec) in early.presentSectionList.enumerated() {
            let va = vm.address(of: PFN(sec << FrameTable.sectionShift))
            let leaf = LeafEntry(pfn: PFN(memmapFirst + UInt64(i) * PageOrder.pmd.pages), size: .size2M, writable: true,
                                 user: false, accessed: true, dirty: true, global: true, noExec: true)
            try? table.setLeaf(VirtAddr(va), leaf)
        }
        vmemmap = vm
    }

    // MARK: TLB
    // Kernel-range flushes go through MMU/TLBShootdown.swift (flushTLBKernelRange(),
    // flushTLBAll()), which count the IPIs each CPU receives.

    // MARK: HVO

    /// vmemmap_should_optimize_folio(): HVO on, the size optimizable, the folio not done yet.
    func vmemmapShouldOptimizeFolio(_ h: Hstate, _ pfn: PFN) -> Bool {
        hugetlb.optimizeVmemmap && h.vmemmapOptimizablePages > 0 && vmemmap != nil
            && !hugetlbFlags(pfn).contains(.vmemmapOptimized)
    }

    /// vmemmap_pmd_entry() + vmemmap_split_pmd() over the vmemmap of [start, end): refuse a
    /// self-hosted vmemmap (-ENOTSUPP, checked on the first page), split every PMD leaf into
    /// a PTE table (split_page() first when the block came from the buddy allocator), flush
    /// each split PMD's range unless batching.
    func vmemmapSplit(_ start: UInt64, _ end: UInt64, flush: Bool) -> Errno? {
        let vm = vmemmap!
        if let b = vm.backing(start), vm.isSelfHosted(b.pfn) { return .ENOTSUPP }
        let span = PageTableLevel.pmd.entrySpan
        var a = start & ~(span - 1)
        while a < end {
            defer { a += span }
            guard let slot = vm.table.slot(VirtAddr(a), level: .pmd),
                  case .leaf = PTEFormat.classify(slot.pointee, level: .pmd, arch: arch),
                  let leaf = PTEFormat.decode(slot.pointee, level: .pmd, arch: arch) else { continue }
            let head = frames[leaf.pfn]
            if head.pointee.state == .allocated && head.pointee.order == UInt8(PageOrder.pmd.raw) {
                // split_page(): 512 order-0 pages.
                for i in 0..<PageOrder.pmd.pages {
                    let p = frames[leaf.pfn + i]
                    p.pointee.state = .allocated
                    p.pointee.order = 0
                    p.pointee.refcount = 1
                    p.pointee.flags = []
                }
            }
            do { try vm.table.splitLeaf(VirtAddr(a), level: .pmd) } catch { return .ENOMEM }
            if flush { flushTLBKernelRange(start: a, end: a + span) }
        }
        return nil
    }

    /// free_vmemmap_page(): a boot (memblock) vmemmap page goes through free_bootmem_page() ->
    /// free_reserved_page(), raising MemTotal; one from the buddy allocator is freed.
    func freeVmemmapPage(_ pfn: PFN) {
        if frames[pfn].pointee.state == .reserved {
            counters.add(.nrMemmapBootPages, -1)
            allocator.freeReservedPage(pfn)
        } else {
            counters.add(.nrMemmapPages, -1)
            allocator.freePages(pfn)
        }
    }

    /// __hugetlb_vmemmap_optimize_folio() -> vmemmap_remap_free(): allocate a new head vmemmap
    /// page and copy the old one (or keep the old one when that fails), map it read-write at
    /// the head address and read-only at every tail address, and queue the replaced frames in
    /// `freed` (freed by the caller after the TLB flush). Returns the error that stopped it.
    func hugetlbVmemmapOptimizeFolio(_ h: Hstate, _ pfn: PFN, freed: inout [PFN], flush: Bool) -> Errno? {
        guard vmemmapShouldOptimizeFolio(h, pfn) else { return nil }
        let vm = vmemmap!
        let reuse = vm.address(of: pfn)
        let end = reuse + h.vmemmapBytes
        if let e = vmemmapSplit(reuse, end, flush: flush) { return e }
        // walk.reuse_page: a new page (GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN), memmap_pages_add(1).
        var reusePage = allocator.allocPages([.kernel, .noWarn])
        if reusePage != nil { counters.add(.nrMemmapPages, 1) }
        setHugetlbFlags(pfn, hugetlbFlags(pfn).union(.vmemmapOptimized))
        var a = reuse
        while a < end {
            defer { a += Page.size }
            guard let slot = vm.table.slot(VirtAddr(a), level: .pte),
                  let leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch) else { continue }
            if a == reuse {
                guard let newHead = reusePage else {
                    // No new page: the old head page is reused and stays.
                    reusePage = leaf.pfn
                    continue
                }
                frames[newHead].pointee.content = frames[leaf.pfn].pointee.content   // copy_page()
                var l = leaf
                l.pfn = newHead
                slot.pointee = PTEFormat.encode(l, arch: arch)
                freed.append(leaf.pfn)
                continue
            }
            // vmemmap_remap_pte(): PAGE_KERNEL_RO onto the reuse page.
            var l = leaf
            l.pfn = reusePage!
            l.writable = false
            slot.pointee = PTEFormat.encode(l, arch: arch)
            freed.append(leaf.pfn)
        }
        if flush { flushTLBKernelRange(start: reuse, end: end) }
        hugetlb.vmemmapOptimized += 1
        return nil
    }

    /// hugetlb_vmemmap_optimize_folio(): one folio, flushing its range, freeing at once.
    func hugetlbVmemmapOptimizeFolio(_ h: Hstate, _ pfn: PFN) {
        var freed: [PFN] = []
        _ = hugetlbVmemmapOptimizeFolio(h, pfn, freed: &freed, flush: true)
        for p in freed { freeVmemmapPage(p) }
    }

    /// hugetlb_vmemmap_optimize_folios(): split every folio's vmemmap PMDs (stopping at the
    /// first -ENOMEM), one flush_tlb_all(), remap them all without flushing, one final
    /// flush_tlb_all(), then free the replaced pages. A folio whose remap ran out of memory is
    /// retried once after the pages gathered so far are freed. The two flushes happen even
    /// when HVO is off (every folio counts in nr_to_optimize unless pre-optimized at boot).
    func hugetlbVmemmapOptimizeFolios(_ h: Hstate, _ folios: [PFN]) {
        guard !folios.isEmpty, let vm = vmemmap else { return }
        for pfn in folios where vmemmapShouldOptimizeFolio(h, pfn) {
            let s = vm.address(of: pfn)
            if vmemmapSplit(s, s + h.vmemmapBytes, flush: false) == .ENOMEM { break }
        }
        flushTLBAll()
        var freed: [PFN] = []
        for pfn in folios {
            if hugetlbVmemmapOptimizeFolio(h, pfn, freed: &freed, flush: false) == .ENOMEM, !freed.isEmpty {
                flushTLBAll()
                for p in freed { freeVmemmapPage(p) }
                freed.removeAll()
                _ = hugetlbVmemmapOptimizeFolio(h, pfn, freed: &freed, flush: false)
            }
        }
        flushTLBAll()
        for p in freed { freeVmemmapPage(p) }
    }

    /// __hugetlb_vmemmap_restore_folio() -> vmemmap_remap_alloc(): allocate the tail vmemmap
    /// pages again (alloc_vmemmap_page_list(), all or nothing), copy the head page into them and
    /// map them read-write. Returns .ENOMEM when the pages cannot be had (the folio stays optimized).
    func hugetlbVmemmapRestoreFolio(_ h: Hstate, _ pfn: PFN, flush: Bool) -> Errno? {
        guard hugetlbFlags(pfn).contains(.vmemmapOptimized) else { return nil }
        let vm = vmemmap!
        let reuse = vm.address(of: pfn)
        let n = Int(h.vmemmapOptimizablePages)
        var pages: [PFN] = []
        pages.reserveCapacity(n)
        for _ in 0..<n {
            // GFP_KERNEL | __GFP_RETRY_MAYFAIL
            guard let p = allocator.allocPages([.kernel, .noWarn]) else {
                for q in pages { allocator.freePages(q) }
                hugetlb.vmemmapRestoreFailed += 1
                return .ENOMEM
            }
            pages.append(p)
        }
        counters.add(.nrMemmapPages, Int64(n))
        var a = reuse + Page.size
        var i = 0
        let headContent = vm.backing(reuse).map { frames[$0.pfn].pointee.content } ?? 0
        while i < n {
            if let slot = vm.table.slot(VirtAddr(a), level: .pte), var l = PTEFormat.decode(slot.pointee, level: .pte, arch: arch) {
                // vmemmap_restore_pte(): copy the head page, map PAGE_KERNEL.
                frames[pages[i]].pointee.content = headContent
                l.pfn = pages[i]
                l.writable = true
                slot.pointee = PTEFormat.encode(l, arch: arch)
            }
            a += Page.size
            i += 1
        }
        if flush { flushTLBKernelRange(start: reuse, end: reuse + h.vmemmapBytes) }
        setHugetlbFlags(pfn, hugetlbFlags(pfn).subtracting(.vmemmapOptimized))
        hugetlb.vmemmapRestored += 1
        return nil
    }

    // MARK: Views

    /// The vmemmap pages describing the huge page at `pfn`: where each is mapped and how.
    public func vmemmapMapping(of pfn: PFN, pages: UInt64) -> [VmemmapPageMapping] {
        guard let vm = vmemmap else { return [] }
        let start = vm.address(of: pfn)
        let n = max(1, (pages * Page.structPageBytes) >> Page.shift)
        var out: [VmemmapPageMapping] = []
        for i in 0..<n {
            let va = start + i * Page.size
            if let b = vm.backing(va) {
                out.append(VmemmapPageMapping(address: va, pfn: b.pfn, writable: b.writable, level: b.level))
            }
        }
        return out
    }

    /// The text of the vmemmap view of the hugetlb folio containing `pfn`.
    public func vmemmapText(pfn: PFN) -> String {
        guard let (h, head) = hugetlbHead(containing: pfn) else {
            return "pfn \(pfn): not a hugetlb page\n"
        }
        let map = vmemmapMapping(of: head, pages: h.pagesPerHugePage)
        let opt = hugetlbFlags(head).contains(.vmemmapOptimized)
        var out = "hugetlb \(h.sizeKB) kB page at pfn \(head): vmemmap \(String(hex: vmemmap.address(of: head), width: 16)), \(map.count) pages, \(opt ? "optimized (HVO)" : "not optimized")\n"
        var i = 0
        while i < map.count {
            // Runs of tail pages mapped to the same frame print once.
            var j = i + 1
            while j < map.count && i > 0 && map[j].pfn == map[i].pfn && map[j].writable == map[i].writable { j += 1 }
            let m = map[i]
            let what = j - i > 1 ? "vmemmap pages \(i)-\(j - 1)" : "vmemmap page \(i)"
            out += "  \(what) \(String(hex: m.address, width: 16)) -> pfn \(m.pfn) \(m.writable ? "rw" : "ro") (\(m.level == .pte ? "pte" : "pmd"))\n"
            i = j
        }
        return out
    }

    /// The kpageflags of the head and of every tail of the hugetlb folio containing `pfn`
    /// (what tools/testing/selftests/mm/hugepage-vmemmap.c reads from /proc/kpageflags).
    public func kpageflagsSummary(pfn: PFN) -> String {
        guard let (h, head) = hugetlbHead(containing: pfn) else { return "kpageflags \(pfn): \(String(hex: kpageflags(pfn), width: 0))\n" }
        let hf = kpageflags(head)
        var tails: [UInt64: UInt64] = [:]
        for i in 1..<h.pagesPerHugePage { tails[kpageflags(head + i), default: 0] += 1 }
        var out = "kpageflags head pfn \(head): \(String(hex: hf, width: 0))\(Self.kpfNames(hf))\n"
        for (v, n) in tails.sorted(by: { $0.key < $1.key }) {
            out += "kpageflags tails (\(n)): \(String(hex: v, width: 0))\(Self.kpfNames(v))\n"
        }
        return out
    }

    /// The KPF_* names page-types(1) prints for the bits the view shows.
    static func kpfNames(_ bits: UInt64) -> String {
        let names: [(KPF, String)] = [(.compoundHead, "HEAD"), (.compoundTail, "TAIL"), (.huge, "HUGE"), (.mmap, "MMAP"),
                                      (.anon, "ANON"), (.uptodate, "UPTODATE"), (.buddy, "BUDDY")]
        let s = names.filter { bits & (1 << UInt64($0.0.rawValue)) != 0 }.map(\.1)
        return s.isEmpty ? "" : " (" + s.joined(separator: "|") + ")"
    }

    /// The pools as /sys/kernel/mm/hugepages/hugepages-NkB/ shows them, one line per size.
    public func hugepagesText() -> String {
        var out = ""
        for h in hugetlb.hstates.reversed() {
            out += "\(h.name): nr_hugepages \(h.persistentHugePages) free_hugepages \(h.freeHugePages) resv_hugepages \(h.resvHugePages) surplus_hugepages \(h.surplusHugePages) nr_overcommit_hugepages \(h.nrOvercommitHugePages)\n"
        }
        out += "hugetlb_optimize_vmemmap \(hugetlb.optimizeVmemmap ? 1 : 0): \(hugetlb.vmemmapOptimized) optimized, \(hugetlb.vmemmapRestored) restored, \(hugetlb.vmemmapRestoreFailed) restores failed; nr_memmap_pages \(counters[.nrMemmapPages]) nr_memmap_boot_pages \(counters[.nrMemmapBootPages])\n"
        return out
    }

    // MARK: Checking

    /// The HugeTLB and vmemmap invariants: pool counters equal what the folios show, free
    /// lists hold free folios, NR_HUGETLB counts the folios in use, and every hugetlb folio's
    /// vmemmap is either intact (distinct writable pages) or optimized (the head page
    /// writable, every tail address read-only onto it), never mapping a free frame.
    public func checkHugetlb() throws {
        var inUsePages: Int64 = 0
        for h in hugetlb.hstates {
            guard h.freeList.count == Int(h.freeHugePages) else {
                throw VMBug(rule: "hugetlb-free-count", detail: "\(h.name): free_huge_pages \(h.freeHugePages) but the free list holds \(h.freeList.count)")
            }
            guard h.surplusHugePages <= h.nrHugePages, h.freeHugePages <= h.nrHugePages, h.resvHugePages <= h.freeHugePages else {
                throw VMBug(rule: "hugetlb-pool", detail: "\(h.name): nr \(h.nrHugePages) free \(h.freeHugePages) resv \(h.resvHugePages) surplus \(h.surplusHugePages)")
            }
            for pfn in h.freeList {
                let p = frames[pfn].pointee
                guard p.flags.contains(.hugetlb), Int(p.order) == h.order.raw, p.refcount == 0, p.mapcount == 0,
                      hugetlbFlags(pfn).contains(.freed) else {
                    throw VMBug(rule: "hugetlb-free-folio", detail: "\(h.name): free folio \(pfn) has order \(p.order) refcount \(p.refcount) mapcount \(p.mapcount) flags \(p.flags.rawValue)")
                }
            }
        }
        var found = [UInt64](repeating: 0, count: hugetlb.hstates.count)
        for s in 0..<frames.sectionCount where frames.isMaterialized(section: s) {
            var pfn = UInt64(s) << FrameTable.sectionShift
            let end = min(pfn + UInt64(FrameTable.framesPerSection), frames.endPFN)
            while pfn < end {
                let p = frames[PFN(pfn)].pointee
                guard p.state == .allocated, p.flags.contains(.hugetlb), let h = hugetlb.hstate(order: Int(p.order)) else {
                    // Any other allocated block is skipped whole.
                    pfn += p.state == .allocated && p.order <= UInt8(PageOrder.max.raw) ? UInt64(1) << UInt64(p.order) : 1
                    continue
                }
                found[h.index] += 1
                if !hugetlbFlags(PFN(pfn)).contains(.freed) { inUsePages += Int64(h.pagesPerHugePage) }
                try checkVmemmap(h, PFN(pfn))
                pfn += h.pagesPerHugePage
            }
        }
        for h in hugetlb.hstates where found[h.index] != h.nrHugePages {
            throw VMBug(rule: "hugetlb-nr", detail: "\(h.name): nr_huge_pages \(h.nrHugePages) but \(found[h.index]) hugetlb folios exist")
        }
        guard inUsePages == counters[.nrHugetlb] else {
            throw VMBug(rule: "nr-hugetlb", detail: "nr_hugetlb \(counters[.nrHugetlb]) but \(inUsePages) pages of hugetlb folios are in use")
        }
    }

    /// The vmemmap half of checkHugetlb() for one folio (what hugetlb_vmemmap.c guarantees).
    func checkVmemmap(_ h: Hstate, _ pfn: PFN) throws {
        guard vmemmap != nil else { return }
        let map = vmemmapMapping(of: pfn, pages: h.pagesPerHugePage)
        guard map.count == Int(h.vmemmapBytes >> Page.shift) || h.vmemmapBytes < Page.size else {
            throw VMBug(rule: "vmemmap-hole", detail: "hugetlb folio \(pfn): \(map.count) of its vmemmap pages are mapped")
        }
        for m in map {
            let st = frames[m.pfn].pointee.state
            guard st == .reserved || st == .allocated else {
                throw VMBug(rule: "vmemmap-backing", detail: "vmemmap page \(String(hex: m.address, width: 16)) of folio \(pfn) maps frame \(m.pfn) in state \(st)")
            }
        }
        guard let head = map.first else { return }
        guard head.writable else { throw VMBug(rule: "vmemmap-head", detail: "folio \(pfn): head vmemmap page is read-only") }
        if hugetlbFlags(pfn).contains(.vmemmapOptimized) {
            for m in map.dropFirst() where m.pfn != head.pfn || m.writable || m.level != .pte {
                throw VMBug(rule: "vmemmap-hvo", detail: "folio \(pfn) is optimized but \(String(hex: m.address, width: 16)) maps pfn \(m.pfn) \(m.writable ? "rw" : "ro") (head page \(head.pfn))")
            }
        } else {
            for (i, m) in map.enumerated() where !m.writable || (i > 0 && m.pfn == map[i - 1].pfn) {
                throw VMBug(rule: "vmemmap-intact", detail: "folio \(pfn) is not optimized but \(String(hex: m.address, width: 16)) maps pfn \(m.pfn) \(m.writable ? "rw" : "ro")")
            }
        }
    }
}
