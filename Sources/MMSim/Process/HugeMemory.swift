// mm/huge_memory.c: transparent huge pages for anonymous memory: PMD faults, the huge zero
// page, a deposited page table per huge PMD, zap, copy at fork, and splitting.

extension Machine {
    /// /sys/kernel/mm/transparent_hugepage/enabled in force (hugepage_init() may have turned it off).
    public var thpMode: THPMode { thpEnabled ? thpModeSetting : .never }

    /// vma_thp_disabled()/thp_vma_allowable_order() for an anonymous PMD at `haddr`.
    func thpAllowed(_ vma: VMA, _ haddr: UInt64) -> Bool {
        guard vma.isAnonymous, !vma.isShared, !vma.flags.contains(.nohugepage) else { return false }
        switch thpMode {
        case .never: return false
        case .madvise: guard vma.flags.contains(.hugepage) else { return false }
        case .always: break
        }
        return haddr >= vma.start && haddr + PageTableLevel.pmd.entrySpan <= vma.end
    }

    /// The PMD slot for `va`, allocating the tables above it (pmd_alloc()).
    func pmdSlot(_ mm: MM, _ va: UInt64) -> UnsafeMutablePointer<UInt64>? {
        try? mm.pageTable.allocSlot(VirtAddr(va), level: .pmd)
    }

    /// do_huge_pmd_anonymous_page(): a read maps the huge zero page, a write a new
    /// PMD-sized folio; either deposits a page table for a later split. Returns false when
    /// the fault should fall back to 4 KiB pages.
    func doHugePMDAnonymousPage(_ mm: MM, _ vmaIndex: Int, _ haddr: UInt64, _ pmd: UnsafeMutablePointer<UInt64>, write: Bool) throws(FaultError) -> Bool {
        let vma = mm.vmas[vmaIndex]
        guard let deposit = allocator.allocPageTable(level: .pte) else { throw .oom }
        if !write {
            guard let zero = hugeZeroPage() else {
                allocator.freePageTable(deposit, level: .pte)
                return false
            }
            mm.pageTable.depositTable(haddr, deposit)
            pmd.pointee = PTEFormat.encode(LeafEntry(pfn: zero, size: .size2M, writable: false, user: true, accessed: true,
                                                     dirty: false, noExec: !vma.flags.contains(.exec), special: true), arch: arch)
            return true
        }
        prepareAnonVMA(mm, vmaIndex)
        guard let pfn = allocator.allocPages([.highuserMovable, .comp, .zero, .noWarn], order: PageOrder.pmd.raw) else {
            allocator.freePageTable(deposit, level: .pte)
            counters.add(.thpFaultFallback, 1)
            return false
        }
        mm.pageTable.depositTable(haddr, deposit)
        let head = frames[pfn]
        // folio_add_new_anon_rmap(RMAP_LEVEL_PMD): entire and large mapcounts 0 (one
        // mapping), the head page's own _mapcount stays -1.
        head.pointee.mapcount = 0
        frames[pfn + 1].pointee.mapcount = 1
        frames[pfn + 1].pointee.spare = 1
        head.pointee.mapping = PageMapping.anon(mm.vmas[vmaIndex].anonVMA)
        head.pointee.index = vma.pgoff(of: haddr)
        head.pointee.flags.insert([.swapbacked, .anonExclusive, .uptodate])
        let n = Int64(PageOrder.pmd.pages)
        counters.add(.nrAnonPages, n)
        counters.add(.nrAnonTransparentHugepages, n)
        // folio_add_lru_vma(): a large folio drains its batch at once (or mlock_new_folio()).
        lruAddAnon(pfn, head, locked: vma.flags.contains(.locked))
        counters.add(.thpFaultAlloc, 1)
        mm.addRSS(.anonPages, n)
        pmd.pointee = PTEFormat.encode(LeafEntry(pfn: pfn, size: .size2M, writable: vma.flags.contains(.write), user: true,
                                                 accessed: true, dirty: true, noExec: !vma.flags.contains(.exec)), arch: arch)
        return true
    }

    /// mm_get_huge_zero_folio(): allocated on first use (thp_zero_page_alloc).
    func hugeZeroPage() -> PFN? {
        if let z = hugeZeroPFN { return z }
        guard let p = allocator.allocPages([.highuserMovable, .comp, .zero, .noWarn], order: PageOrder.pmd.raw) else {
            counters.add(.thpZeroPageAllocFailed, 1)
            return nil
        }
        counters.add(.thpZeroPageAlloc, 1)
        hugeZeroPFN = p
        return p
    }

    /// zap_huge_pmd(): the whole huge mapping goes; its folio is gathered (two slots), the
    /// deposited table freed at once (zap_deposited_table()).
    func zapHugePMD(_ tlb: MMUGather, _ mm: MM, _ haddr: UInt64, _ pmd: UnsafeMutablePointer<UInt64>) {
        let raw = pmd.pointee
        pmd.pointee = 0
        tlb.noteCleared(haddr, PageTableLevel.pmd.entrySpan, level: .pmd)
        if let deposit = mm.pageTable.withdrawTable(haddr) {
            mm.pageTable.releaseTableFrame(deposit, level: .pte)
        }
        guard let leaf = PTEFormat.decode(raw, level: .pmd, arch: arch), leaf.present, leaf.pfn != hugeZeroPFN else { return }
        let n = Int64(PageOrder.pmd.pages)
        let head = frames[leaf.pfn]
        // folio_remove_rmap_pmd()
        addLargeMapcount(leaf.pfn, entire: -1, large: -1)
        mm.addRSS(.anonPages, -n)
        if entireMapcount(leaf.pfn) == 0 {
            counters.add(.nrAnonPages, -n)
            counters.add(.nrAnonTransparentHugepages, -n)
            head.pointee.flags.remove(.anonExclusive)
        }
        // tlb_remove_page_size(): one slot for the whole folio.
        if tlb.removePage(leaf.pfn, pmdFolio: true) { tlb.flush() }
    }

    /// copy_huge_pmd(): share the huge page with the child (write-protected in both), with
    /// a deposited table of the child's own.
    func copyHugePMD(from src: MM, to dst: MM, _ vma: VMA, _ haddr: UInt64, _ srcPMD: UnsafeMutablePointer<UInt64>) throws(FaultError) {
        guard var leaf = PTEFormat.decode(srcPMD.pointee, level: .pmd, arch: arch) else { return }
        guard let dstPMD = pmdSlot(dst, haddr), let deposit = allocator.allocPageTable(level: .pte) else { throw .oom }
        dst.pageTable.depositTable(haddr, deposit)
        if leaf.pfn != hugeZeroPFN {
            let head = frames[leaf.pfn]
            head.pointee.refcount += 1
            addLargeMapcount(leaf.pfn, entire: 1, large: 1)     // folio_try_dup_anon_rmap_pmd()
            head.pointee.flags.remove(.anonExclusive)
            dst.addRSS(.anonPages, Int64(PageOrder.pmd.pages))
            if leaf.writable {
                leaf.writable = false
                srcPMD.pointee = PTEFormat.encode(leaf, arch: arch)
            }
        }
        dstPMD.pointee = srcPMD.pointee
    }

    /// Sets /sys/kernel/mm/transparent_hugepage/enabled.
    public func setTHPMode(_ mode: THPMode) {
        thpModeSetting = mode
        thpEnabled = mode != .never
    }

    /// The final put of a PMD-sized folio: off the LRU, back to the allocator as one block.
    func putHugePage(_ pfn: PFN) {
        let head = frames[pfn]
        if head.pointee.flags.contains(.hugetlb) { return putHugetlbFolio(pfn) }
        if head.pointee.refcount == 1 { lruDel(pfn, head) }
        allocator.freePages(pfn, order: PageOrder.pmd.raw)
    }

    /// __split_huge_pmd() followed at once by split_folio(): the PMD becomes a table of 512
    /// PTEs (the deposited one) and the folio 512 ordinary pages. The kernel splits only this
    /// PMD and defers the folio split; the model splits the folio now, so every other PMD
    /// mapping of it (a forked copy at the same address) is split too. Counters end where
    /// the kernel's deferred split leaves them, except AnonHugePages of those other mappings.
    func splitHugePMD(_ mm: MM, _ vma: VMA, _ haddr: UInt64, _ pmd: UnsafeMutablePointer<UInt64>) {
        guard let leaf = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch) else { return }
        if leaf.pfn == hugeZeroPFN {
            splitPMDMapping(mm, vma, haddr, pmd, leaf)
            return
        }
        for t in tasks where t.state == .running {
            guard let other = t.mm, other !== mm, let v = other.vma(containing: haddr),
                  let op = other.pageTable.slot(VirtAddr(haddr), level: .pmd),
                  case .leaf = PTEFormat.classify(op.pointee, level: .pmd, arch: arch),
                  let ol = PTEFormat.decode(op.pointee, level: .pmd, arch: arch), ol.pfn == leaf.pfn else { continue }
            splitPMDMapping(other, v, haddr, op, ol)
        }
        splitPMDMapping(mm, vma, haddr, pmd, leaf)
        // split_folio(): every page its own order-0 page, mapped as often as the folio was.
        counters.add(.thpSplitPage, 1)
        counters.add(.nrAnonTransparentHugepages, -Int64(PageOrder.pmd.pages))
        let head = frames[leaf.pfn]
        // __split_huge_page(): the folio leaves its list and each page goes back on it
        // (lru_add_split_folio()), the head first.
        let onLRU = lruTake(leaf.pfn, head) != nil
        let flags = head.pointee.flags.subtracting([.head, .tail, .lru, .lruBatched])
        let memcgID = head.pointee.spare
        let mapping = head.pointee.mapping
        let index = head.pointee.index
        let maps = entireMapcount(leaf.pfn)
        let refs = head.pointee.refcount
        frames[leaf.pfn + 1].pointee.spare = 0
        for i in 0..<PageOrder.pmd.pages {
            let p = frames[leaf.pfn + i]
            p.pointee.state = .allocated
            p.pointee.order = 0
            p.pointee.flags = flags
            p.pointee.mapping = mapping
            p.pointee.index = index + i
            p.pointee.mapcount = maps
            p.pointee.refcount = refs
            p.pointee.spare = memcgID
        }
        if onLRU {
            for i in stride(from: PageOrder.pmd.pages - 1, through: 0, by: -1) {
                let p = frames[leaf.pfn + i]
                lruvecAdd(folioLruvec(p), leaf.pfn + i, p)
            }
        }
    }

    /// The mapping half of __split_huge_pmd(): the deposited table gets 512 PTEs.
    func splitPMDMapping(_ mm: MM, _ vma: VMA, _ haddr: UInt64, _ pmd: UnsafeMutablePointer<UInt64>, _ leaf: LeafEntry) {
        guard let deposit = mm.pageTable.withdrawTable(haddr), let table = frames.table(deposit) else { return }
        counters.add(.thpSplitPmd, 1)
        let zero = leaf.pfn == hugeZeroPFN
        for i in 0..<Page.entriesPerTable {
            if zero {
                table[i] = anonPTE(zeroPage, vma, writable: false, dirty: false, special: true)
            } else {
                table[i] = PTEFormat.encode(LeafEntry(pfn: leaf.pfn + UInt64(i), writable: leaf.writable, user: true, accessed: true,
                                                      dirty: leaf.dirty, noExec: leaf.noExec), arch: arch)
            }
        }
        pmd.pointee = PTEFormat.tableEntry(deposit, kernel: false, arch: arch)
        mm.pageTable.noteTableHooked(level: .pte)
        flushTLBMMRange(mm, start: haddr, end: haddr + PageTableLevel.pmd.entrySpan, strideShift: PageTableLevel.pmd.shift, freedTables: false)
    }
}
