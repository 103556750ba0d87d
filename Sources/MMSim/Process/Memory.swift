// mm/memory.c: page faults (anonymous, zero page, copy-on-write), zapping ranges, copying page tables at fork.

extension PageFlags {
    /// PG_anon_exclusive (it shares the bit of PG_mappedtodisk for anonymous pages).
    public static let anonExclusive = PageFlags.mappedToDisk
}

/// Why a fault could not be handled (VM_FAULT_SIGSEGV, VM_FAULT_SIGBUS, VM_FAULT_OOM).
public enum FaultError: Error, Sendable, Hashable {
    case sigsegv
    case sigbus
    case oom
}

extension Machine {
    // MARK: LRU and page references

    /// folio_add_lru() for a new anonymous folio: the lru_add batch (then the inactive anon
    /// list), or the unevictable list for a VM_LOCKED mapping (mlock_new_folio()).
    func lruAddAnon(_ pfn: PFN, locked: Bool) { lruAddAnon(pfn, frames[pfn], locked: locked) }

    /// `lruAddAnon` for a caller that holds the frame's record.
    @inline(__always) func lruAddAnon(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, locked: Bool) {
        if locked { return lruAddMlocked(pfn, p) }
        folioAddLRU(pfn, p)
    }

    /// mlock_new_folio() / mlock_folio(): to the unevictable list, counted as mlocked.
    @inline(never) func lruAddMlocked(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let n = folioPages(p)
        p.pointee.flags.remove(.active)
        p.pointee.flags.insert([.mlocked, .unevictable])
        counters.add(.nrMlock, n)
        counters.add(.unevictablePgsMlocked, n)
        counters.add(.unevictablePgsCulled, n)
        allocator.zoneRefs[Int(p.pointee.zone)]._withUnsafeGuaranteedRef { $0.stats[VMStat.nrMlock.rawValue] += n }
        lruvecAdd(folioLruvec(p), pfn, p)
    }

    /// Removes a folio from its LRU list (or lru_add batch) on the final put (__folio_put():
    /// lruvec_del_folio(), mlock count), and uncharges it (mem_cgroup_uncharge()).
    func lruDel(_ pfn: PFN) { lruDel(pfn, frames[pfn]) }

    @inline(__always) func lruDel(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let f = p.pointee.flags
        if f.contains(.lru) || f.contains(.lruBatched) { lruTake(pfn, p) }
        if f.contains(.mlocked) {
            let n = folioPages(p)
            counters.add(.nrMlock, -n)
            allocator.zoneRefs[Int(p.pointee.zone)]._withUnsafeGuaranteedRef { $0.stats[VMStat.nrMlock.rawValue] -= n }
            counters.add(.unevictablePgsCleared, n)
        }
        if f.contains(.memcgCharged) { memcgUncharge(p) }
        p.pointee.flags.remove([.lru, .unevictable, .mlocked, .active])
    }

    /// folio_put(): drop one reference; the last one takes the page off the LRU and frees it.
    func putPage(_ pfn: PFN) { putPage(pfn, frames[pfn]) }

    @inline(__always) func putPage(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        if p.pointee.flags.contains(.swapcache) && p.pointee.mapcount == 0 { freeSwapCache(p) }
        if p.pointee.refcount == 1 { lruDel(pfn, p) }
        allocator.freePages(pfn, p, order: 0)
    }

    /// folios_put_refs() / free_unref_folios() over a run of gathered order-0 pages (encoded
    /// gather slots with no flag bits): one reference each, the last frees the page to this
    /// CPU's pcp list. The batch is one loop with the free path inlined, as the kernel's
    /// batched free does the per-folio work without a call per folio.
    func putPages(_ slots: UnsafePointer<UInt64>, _ n: Int) {
        // The last reference of a plain LRU folio (no mlock, memcg, swap cache or batch):
        // unlinked here and counted per run of one list and zone (host-side batching).
        var runLV: LRUVec? = nil
        var runList = -1, runZone = -1
        var folios: Int64 = 0
        let plain: PageFlags = [.lru]
        let special: PageFlags = [.mlocked, .memcgCharged, .swapcache, .lruBatched, .head, .unevictable]
        for i in 0..<n {
            let pfn = PFN(slots[i] >> 3)
            let p = frames[pfn]
            let f = p.pointee.flags
            guard p.pointee.refcount == 1, f.isSuperset(of: plain), f.isDisjoint(with: special) else {
                putPage(pfn, p)
                continue
            }
            let lv = memcg.lruvec(0, node: Int(p.pointee.zone) / ZoneType.perNode)
            let l = LRUList.of(file: !f.contains(.swapbacked), active: f.contains(.active)).rawValue
            let z = Int(p.pointee.zone)
            if lv != runLV || l != runList || z != runZone {
                if let r = runLV { updateLRUSize(r, runList, zone: runZone, pages: -folios, folios: -folios) }
                runLV = lv; runList = l; runZone = z; folios = 0
            }
            lruvecUnlink(lv, l, p)
            folios &+= 1
            p.pointee.flags.remove(.active)
            allocator.freePages(pfn, p, order: 0)
        }
        if let r = runLV { updateLRUSize(r, runList, zone: runZone, pages: -folios, folios: -folios) }
    }

    /// tlb_flush_pte_range() for the PTEs a zap loop cleared since its last note.
    @inline(__always)
    func noteClearedRun(_ tlb: MMUGather, _ from: inout UInt64, _ to: UInt64) {
        guard from != .max else { return }
        tlb.noteCleared(from, to &- from, level: .pte)
        from = .max
    }

    /// add_mm_rss_vec(): the RSS counts a zap loop gathered, then zeroed.
    @inline(__always)
    func applyZapRSS(_ mm: MM, _ d: inout (anon: Int64, file: Int64, shmem: Int64)) {
        if d.anon != 0 { mm.addRSS(.anonPages, d.anon) }
        if d.file != 0 { mm.addRSS(.filePages, d.file) }
        if d.shmem != 0 { mm.addRSS(.shmemPages, d.shmem) }
        d = (0, 0, 0)
    }

    /// folio_remove_rmap_pte() for an anonymous page: one mapping fewer.
    func removeAnonRmap(_ pfn: PFN) { removeAnonRmap(frames[pfn]) }

    @inline(__always) func removeAnonRmap(_ p: UnsafeMutablePointer<PageMeta>) {
        p.pointee.mapcount -= 1
        if p.pointee.mapcount == 0 {
            modFolioStat(p, .nrAnonPages, -1)
            p.pointee.flags.remove(.anonExclusive)
        }
    }

    // MARK: Faults

    /// The leaf entry for an anonymous page of `vma`.
    @inline(__always)
    func anonPTE(_ pfn: PFN, _ vma: VMA, writable: Bool, dirty: Bool, special: Bool = false) -> UInt64 {
        PTEFormat.encode(LeafEntry(pfn: pfn, writable: writable, user: true, accessed: true, dirty: dirty,
                                   noExec: !vma.flags.contains(.exec), special: special), arch: arch)
    }

    /// handle_mm_fault(): resolve a fault at `addr` in `vma` for `access`. Counts pgfault and
    /// the task's min_flt, then dispatches to the anonymous, file, shmem, THP or HugeTLB
    /// handler. `pteSlot`, when the faulting hardware walk reached the PTE level, is that
    /// entry: the PMD then holds a PTE table and __handle_mm_fault()'s software walk
    /// (pmd_alloc(), pte_offset_map()) would arrive at the same slot.
    func handleMMFault(_ task: Task, _ mm: MM, _ vmaIndex: Int, _ addr: UInt64, _ access: AccessKind,
                       pteSlot: UnsafeMutablePointer<UInt64>? = nil) throws(FaultError) {
        counters.add(.pgfault, 1)
        task.minFlt &+= 1
        if mm.memcg != 0 { memcgEvent(mm, .pgfault) }
        let vma = mm.vmas[vmaIndex]
        let va = VirtAddr(addr & ~Page.offsetMask)
        if vma.flags.contains(.hugetlb) { return try hugetlbFault(task, mm, vmaIndex, addr, access) }
        let slot: UnsafeMutablePointer<UInt64>
        if let s = pteSlot {
            slot = s
        } else {
            guard let s = try faultPTESlot(mm, vma, vmaIndex, addr, va, access) else { return }
            slot = s
        }
        let pte = slot.pointee
        if pte == 0 {
            if case .shmem(let id) = vma.kind {
                try shmemFault(mm, vma, id, va, slot, write: access == .write)
                return
            }
            if case .file(let f) = vma.kind {
                try fileFault(task, mm, vmaIndex, files[f], va, slot, write: access == .write)
                return
            }
            guard vma.isAnonymous else { throw .sigbus }
            try doAnonymousPage(mm, vmaIndex, vma, va, slot, write: access == .write)
            return
        }
        if let e = SoftEntry.decodeSwap(pte, arch: arch) {
            return try doSwapPage(task, mm, vmaIndex, va, slot, e, write: access == .write)
        }
        guard let leaf = PTEFormat.decode(pte, level: .pte, arch: arch), leaf.present else { throw .sigbus }
        if access == .write && !leaf.writable {
            try doWPPage(task, mm, vmaIndex, vma, va, slot, leaf)
            return
        }
        // A spurious fault (the TLB held an older entry): the walk will see the new one.
        cpus[currentCPU].tlb.flushPage(va, asid: cpuASIDs[currentCPU])
    }

    /// __handle_mm_fault()'s software walk: the PMD level first (pmd_alloc()), where a
    /// transparent huge page is faulted, reused or split; then the PTE table (pte_alloc())
    /// and the slot for `va`. Returns nil when the PMD level resolved the fault.
    func faultPTESlot(_ mm: MM, _ vma: VMA, _ vmaIndex: Int, _ addr: UInt64, _ va: VirtAddr,
                      _ access: AccessKind) throws(FaultError) -> UnsafeMutablePointer<UInt64>? {
        guard let pmd = pmdSlot(mm, va.raw) else { throw .oom }
        if vma.isAnonymous && !vma.isShared {
            let haddr = addr & ~(PageTableLevel.pmd.entrySpan - 1)
            if pmd.pointee == 0 && thpAllowed(vma, haddr) {
                if try doHugePMDAnonymousPage(mm, vmaIndex, haddr, pmd, write: access == .write) { return nil }
            } else if case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch) {
                guard access == .write, let leaf = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch) else {
                    cpus[currentCPU].tlb.flushPage(va, asid: cpuASIDs[currentCPU])
                    return nil
                }
                // do_huge_pmd_wp_page(): reuse an exclusive folio, else split and COW one page.
                if leaf.pfn != hugeZeroPFN, vma.flags.contains(.write),
                   frames[leaf.pfn].pointee.flags.contains(.anonExclusive) || frames[leaf.pfn].pointee.refcount == 1 {
                    var l = leaf
                    l.writable = true
                    l.dirty = true
                    frames[leaf.pfn].pointee.flags.insert(.anonExclusive)
                    pmd.pointee = PTEFormat.encode(l, arch: arch)
                    flushTLBMMRange(mm, start: haddr, end: haddr + PageTableLevel.pmd.entrySpan, strideShift: PageTableLevel.pmd.shift, freedTables: false)
                    return nil
                }
                splitHugePMD(mm, vma, haddr, pmd)
            }
        }
        // pte_alloc() + pte_offset_map(): reuse the PMD slot found above.
        if case .table(let t) = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch), let table = frames.table(t) {
            return table + va.index(at: .pte)
        }
        do {
            return try mm.pageTable.allocSlot(va, level: .pte)
        } catch {
            throw .oom
        }
    }

    /// do_anonymous_page(): a read maps the shared zero page; a write gets a new zeroed page.
    /// `vma` is `mm.vmas[vmaIndex]` as the caller read it.
    func doAnonymousPage(_ mm: MM, _ vmaIndex: Int, _ vma: VMA, _ va: VirtAddr, _ slot: UnsafeMutablePointer<UInt64>, write: Bool) throws(FaultError) {
        if !write {
            slot.pointee = anonPTE(zeroPage, vma, writable: false, dirty: false, special: true)
            return
        }
        prepareAnonVMA(mm, vmaIndex)
        guard let pfn = allocator.allocPages([.highuserMovable, .zero]) else { throw .oom }
        let p = frames[pfn]
        if mm.memcg != 0 { try chargeNewFolio(mm, pfn, p) }
        // The anon_vma is the one anon_vma_prepare() may just have set.
        newAnonRmap(p, anonVMA: mm.vmas[vmaIndex].anonVMA, index: vma.pgoff(of: va.raw))
        lruAddAnon(pfn, p, locked: vma.flags.contains(.locked))
        mm.addRSS(.anonPages, 1)
        slot.pointee = anonPTE(pfn, vma, writable: vma.flags.contains(.write), dirty: true)
    }

    /// mem_cgroup_charge() of a new user folio; a failed charge frees it (VM_FAULT_OOM).
    @inline(never) func chargeNewFolio(_ mm: MM, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) throws(FaultError) {
        guard memcgCharge(mm.memcg, p) == .ok else {
            allocator.freePages(pfn, p, order: 0)
            throw .oom
        }
    }

    /// folio_add_new_anon_rmap(): first mapping of a new anonymous page, exclusive to this mm.
    func newAnonRmap(_ pfn: PFN, _ vma: VMA, _ va: VirtAddr) {
        newAnonRmap(frames[pfn], anonVMA: vma.anonVMA, index: vma.pgoff(of: va.raw))
    }

    /// `newAnonRmap` on the frame's record, with the VMA's anon_vma and the page's index.
    @inline(__always) func newAnonRmap(_ p: UnsafeMutablePointer<PageMeta>, anonVMA: Int, index: UInt64) {
        p.pointee.mapcount = 1
        p.pointee.mapping = PageMapping.anon(anonVMA)
        p.pointee.index = index
        p.pointee.flags.insert([.swapbacked, .anonExclusive, .uptodate])
        modFolioStat(p, .nrAnonPages, 1)
    }

    /// do_wp_page(): a write to a read-only present page. The zero page and shared pages are
    /// copied (wp_page_copy()); an anonymous page nobody else holds is reused in place
    /// (wp_page_reuse(), pgreuse).
    func doWPPage(_ task: Task, _ mm: MM, _ i: Int, _ vma: VMA, _ va: VirtAddr, _ slot: UnsafeMutablePointer<UInt64>, _ leaf: LeafEntry) throws(FaultError) {
        guard vma.flags.contains(.write) else { throw .sigsegv }
        let old = leaf.pfn
        let isZero = leaf.special && old == zeroPage
        if case .file = vma.kind, vma.isShared {
            // wp_page_shared(): page_mkwrite, then the entry becomes writable and dirty.
            markFileDirty(old)
            slot.pointee = PTEFormat.encode(LeafEntry(pfn: old, writable: true, user: true, accessed: true, dirty: true,
                                                      noExec: !vma.flags.contains(.exec)), arch: arch)
            flushTLBMMRange(mm, start: va.raw, end: va.raw + Page.size, strideShift: Page.shift, freedTables: false)
            return
        }
        let fileBacked = !isZero && !frames[old].pointee.flags.contains(.swapbacked)
        if !isZero && !fileBacked {
            let p = frames[old]
            if p.pointee.flags.contains(.anonExclusive) || (p.pointee.refcount == 1 && p.pointee.mapcount == 1) {
                // wp_page_reuse(): make it writable again, exclusive, dirty; a folio that was
                // not yet exclusive moves to this VMA's anon_vma (folio_move_anon_rmap()).
                if !p.pointee.flags.contains(.anonExclusive) { moveAnonRmap(old, vma) }
                p.pointee.flags.insert(.anonExclusive)
                slot.pointee = anonPTE(old, vma, writable: true, dirty: true)
                counters.add(.pgreuse, 1)
                flushTLBMMRange(mm, start: va.raw, end: va.raw + Page.size, strideShift: Page.shift, freedTables: false)
                return
            }
        }
        // wp_page_copy()
        prepareAnonVMA(mm, i)
        guard let new = allocator.allocPages(isZero ? [.highuserMovable, .zero] : .highuserMovable) else { throw .oom }
        if !isZero { frames[new].pointee.content = frames[old].pointee.content }
        newAnonRmap(new, mm.vmas[i], va)
        lruAddAnon(new, locked: vma.flags.contains(.locked))
        if isZero || fileBacked { mm.addRSS(.anonPages, 1) }
        if fileBacked { mm.addRSS(.filePages, -1) }
        // ptep_clear_flush(): the old translation must leave every TLB before the new one goes in.
        slot.pointee = 0
        flushTLBMMRange(mm, start: va.raw, end: va.raw + Page.size, strideShift: Page.shift, freedTables: false)
        slot.pointee = anonPTE(new, vma, writable: true, dirty: true)
        if fileBacked {
            removeFileRmap(old)
            putPage(old)
        } else if !isZero {
            removeAnonRmap(old)
            putPage(old)
        }
    }

    // MARK: Zap and free page tables

    /// pte_present() for the loops that walk every entry: the fields of a present PTE
    /// (read without building a LeafEntry) or of a PROT_NONE one (decoded); nil for none.
    @inline(__always)
    func presentOrProtNone(_ pte: UInt64) -> (pfn: PFN, special: Bool, dirty: Bool, writable: Bool)? {
        if let q = PTEFormat.presentPTE(pte, arch: arch) { return q }
        return protNoneEntry(pte)
    }

    @inline(never)
    func protNoneEntry(_ pte: UInt64) -> (pfn: PFN, special: Bool, dirty: Bool, writable: Bool)? {
        guard let l = PTEFormat.decode(pte, level: .pte, arch: arch), l.protNone else { return nil }
        return (l.pfn, l.special, l.dirty, l.writable)
    }

    /// zap_pte_range() over [start, end) of one VMA: clear every entry, account RSS and rmap,
    /// and hand normal pages to the gather. With `reclaimTables` (CONFIG_PT_RECLAIM, used by
    /// MADV_DONTNEED) a PTE table whose whole 2 MiB span is zapped is freed too.
    func zapRange(_ tlb: MMUGather, _ mm: MM, _ vma: VMA, start: UInt64, end: UInt64, reclaimTables: Bool = false) {
        if vma.flags.contains(.hugetlb) { return unmapHugepageRange(tlb, mm, vma, start: start, end: end) }
        let isShmem: Bool
        if case .shmem = vma.kind { isShmem = true } else { isShmem = false }
        var a = start
        let span = PageTableLevel.pmd.entrySpan
        while a < end {
            let next = min((a | (span - 1)) &+ 1, end)
            guard let pmdSlot = mm.pageTable.slot(VirtAddr(a), level: .pmd) else {
                a = next
                continue
            }
            if case .leaf = PTEFormat.classify(pmdSlot.pointee, level: .pmd, arch: arch) {
                if a & (span - 1) == 0 && next - a == span {
                    zapHugePMD(tlb, mm, a, pmdSlot)
                    a = next
                    continue
                }
                splitHugePMD(mm, vma, a & ~(span - 1), pmdSlot)
            }
            guard case .table(let ptePFN) = PTEFormat.classify(pmdSlot.pointee, level: .pmd, arch: arch),
                  let table = frames.table(ptePFN) else {
                a = next
                continue
            }
            var b = a
            var forceFlush = false
            // RSS of this table's pages, applied once per table (add_mm_rss_vec()) and before
            // any flush in the middle.
            var rssDelta: (anon: Int64, file: Int64, shmem: Int64) = (0, 0, 0)
            // The PTEs cleared since the last note to the gather, as one range (the gather
            // keeps only the lowest and highest address: tlb_flush_pte_range()).
            var clearedFrom = UInt64.max, clearedTo: UInt64 = 0
            while b < next {
                let idx = VirtAddr(b).index(at: .pte)
                let pte = table[idx]
                if pte != 0 {
                    table[idx] = 0
                    if b < clearedFrom { clearedFrom = b }
                    clearedTo = b &+ Page.size
                    if let leaf = presentOrProtNone(pte), !(leaf.special && leaf.pfn == zeroPage) {
                        let pfn = leaf.pfn
                        tracer.emit(currentCPU, .clearPTE(mm: mm.id, addr: b, pfn: pfn.raw))
                        var delay = false
                        let page = frames[pfn]
                        if isShmem {
                            // zap_present_folio_ptes() treats shmem like any file folio: a dirty
                            // PTE dirties the folio (shmem counts no dirty pages) and delays the rmap.
                            rssDelta.shmem &-= 1
                            if leaf.dirty {
                                page.pointee.flags.insert(.dirty)
                                delay = true
                            } else {
                                removeFileRmap(pfn)
                            }
                        } else if page.pointee.flags.contains(.swapbacked) {
                            rssDelta.anon &-= 1
                            removeAnonRmap(page)
                        } else {
                            // zap_present_folio_ptes(): a dirty PTE dirties the file page, and
                            // its rmap goes only after the TLB flush (delayed rmap).
                            rssDelta.file &-= 1
                            if leaf.dirty {
                                markFileDirty(pfn)
                                delay = true
                            } else {
                                removeFileRmap(pfn)
                            }
                        }
                        // A delayed rmap forces a flush at the end of this table
                        // (force_flush in zap_pte_range()).
                        forceFlush = forceFlush || delay
                        if tlb.removePage(pfn, delayRmap: delay) {
                            // The gather is full: flush before going on (the kernel leaves
                            // the PTE loop, flushes, and comes back).
                            applyZapRSS(mm, &rssDelta)
                            noteClearedRun(tlb, &clearedFrom, clearedTo)
                            tlb.flush()
                            forceFlush = false
                        }
                    } else if let e = SoftEntry.decodeSwap(pte, arch: arch) {
                        // zap_nonpresent_ptes(): free_swap_and_cache().
                        mm.addRSS(.swapEnts, -1)
                        freeSwapAndCache(e)
                    }
                }
                b += Page.size
            }
            applyZapRSS(mm, &rssDelta)
            noteClearedRun(tlb, &clearedFrom, clearedTo)
            // zap_pte_range()'s end with force_flush: TLB, delayed rmaps, then (after the
            // page-table lock) the frees.
            if forceFlush { tlb.flush() }
            if reclaimTables && a & (span - 1) == 0 && next - a == span {
                // try_get_and_clear_pmd(): the emptied PTE table goes, VmPTE drops now.
                pmdSlot.pointee = 0
                tlb.noteCleared(a, span, level: .pmd)
                mm.pageTable.noteTableUnhooked(level: .pte)
                tlb.removeTable(ptePFN, level: .pte)
            }
            a = next
        }
    }

    /// unmap_region() core: zap the VMAs in `range` of `mm.vmas`, then free_pgtables()
    /// between the neighbours (floor = previous VMA's end, ceiling = next VMA's start).
    func unmapRegion(_ tlb: MMUGather, _ mm: MM, _ removed: [VMA], floor: UInt64, ceiling: UInt64) {
        for v in removed { zapRange(tlb, mm, v, start: v.start, end: v.end) }
        guard let first = removed.first, let last = removed.last else { return }
        mm.pageTable.freeTables(start: VirtAddr(first.start), end: VirtAddr(last.end), floor: VirtAddr(floor),
                                ceiling: VirtAddr(ceiling)) { pfn, level in
            tlb.removeTable(pfn, level: level)
        }
    }

    // MARK: Fork

    /// copy_page_range(): share every present page of `vma` with the child; a COW mapping
    /// write-protects both copies, and anonymous pages lose their exclusive flag.
    func copyPageRange(from src: MM, to dst: MM, _ vma: VMA) throws(FaultError) {
        if vma.flags.contains(.hugetlb) { return try copyHugetlbPageRange(from: src, to: dst, vma) }
        var a = vma.start
        while a < vma.end {
            let span = PageTableLevel.pmd.entrySpan
            let next = min((a | (span - 1)) &+ 1, vma.end)
            if let srcPMD = src.pageTable.slot(VirtAddr(a), level: .pmd),
               case .leaf = PTEFormat.classify(srcPMD.pointee, level: .pmd, arch: arch) {
                try copyHugePMD(from: src, to: dst, vma, a & ~(span - 1), srcPMD)
                a = next
                continue
            }
            guard let srcTable = src.pageTable.slot(VirtAddr(a), level: .pmd).flatMap({ s -> UnsafeMutablePointer<UInt64>? in
                if case .table(let t) = PTEFormat.classify(s.pointee, level: .pmd, arch: arch) { return frames.table(t) }
                return nil
            }) else {
                a = next
                continue
            }
            var b = a
            var dstTable: UnsafeMutablePointer<UInt64>? = nil
            while b < next {
                let idx = VirtAddr(b).index(at: .pte)
                var pte = srcTable[idx]
                if pte != 0 {
                    if dstTable == nil {
                        // One pte_alloc() per PTE table, as copy_pte_range() does.
                        do { dstTable = try dst.pageTable.allocSlot(VirtAddr(b), level: .pte) - idx } catch { throw .oom }
                    }
                    if let leaf = presentOrProtNone(pte), !(leaf.special && leaf.pfn == zeroPage) {
                        let p = frames[leaf.pfn]
                        p.pointee.refcount += 1
                        p.pointee.mapcount += 1
                        p.pointee.flags.remove(.anonExclusive)
                        // folio_dup_file_rmap_pte()/folio_try_dup_anon_rmap_pte(): already
                        // mapped, so nr_mapped and nr_anon_pages do not change.
                        if case .shmem = vma.kind {
                            dst.addRSS(.shmemPages, 1)
                        } else if p.pointee.flags.contains(.swapbacked) {
                            dst.addRSS(.anonPages, 1)
                        } else {
                            dst.addRSS(.filePages, 1)
                        }
                        if vma.isCOW && leaf.writable {
                            pte = PTEFormat.wrprotect(pte, arch: arch)
                            srcTable[idx] = pte
                        }
                    } else if let e = SoftEntry.decodeSwap(pte, arch: arch) {
                        // copy_nonpresent_pte(): the child refers to the slot too.
                        swapDuplicate(e)
                        dst.addRSS(.swapEnts, 1)
                    }
                    dstTable![idx] = pte
                }
                b += Page.size
            }
            a = next
        }
    }
}
