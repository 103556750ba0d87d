// mm/mmu_gather.c, include/asm-generic/tlb.h: batch the pages and page tables an unmap removes;
// flush the TLB, then free.

/// struct mmu_gather: collects what an unmap took out of the page tables so that the TLB
/// is flushed once before any of it is freed (the contract: unhook, invalidate, free).
///
/// Layout: the slots of every batch live in one flat array of encoded entries
/// (`slots`), the local bundle first, then each batch page's share; `batchPages` holds the
/// frames the kernel would use as batch storage (taken with GFP_NOWAIT, which is what makes
/// munmap show up in pgalloc_normal). An entry is `pfn << 3 | bits` (ENCODED_PAGE_BIT_DELAY_RMAP,
/// ENCODED_PAGE_BIT_NR_PAGES_NEXT, and the model's PMD-folio bit) or, after a NR_PAGES_NEXT
/// entry, a page count `nr << 2`.
final class MMUGather {
    /// ENCODED_PAGE_BIT_DELAY_RMAP: remove the rmap only after the TLB flush.
    static let delayRmapBit: UInt64 = 1
    /// ENCODED_PAGE_BIT_NR_PAGES_NEXT: the next slot holds a page count.
    static let nrPagesNextBit: UInt64 = 2
    /// The model's mark for a PMD-mapped folio (the kernel reads the size from the folio).
    static let pmdFolioBit: UInt64 = 4

    /// The machine outlives every gather (one unmap or exit): no reference counting per page.
    unowned(unsafe) let machine: Machine
    let mm: MM
    var fullmm: Bool
    let tunables: UnmapTunables
    /// Flush range (tlb->start, tlb->end) and what was cleared.
    var start: UInt64 = .max
    var end: UInt64 = 0
    /// cleared_ptes, cleared_pmds, cleared_puds, cleared_p4ds as bits (1 << level).
    var clearedLevels: UInt8 = 0
    var freedTables = false
    /// tlb->delayed_rmap: some gathered entry carries the delay-rmap bit.
    var delayedRmap = false
    /// Batch pages allocated so far (reused after a flush; freed at finish).
    var batchPages: [PFN] = []
    /// -1 = the local bundle, else the index into `batchPages`.
    var active = -1 {
        didSet { activeLimit = Self.limit(active: active, tunables) }
    }
    /// Entries in the active batch.
    var activeCount = 0
    /// The count at which the active batch is full (max - 1, room for a two-slot pair gone);
    /// 0 with the per-page policy, which flushes after every page.
    private(set) var activeLimit: Int

    private static func limit(active: Int, _ t: UnmapTunables) -> Int {
        t.perPageFlush ? 0 : (active < 0 ? t.bundle : t.batchSlots) - 1
    }
    /// Every gathered entry since the last flush, in order (bundle, then batch after batch):
    /// a buffer of its own, grown by doubling, so adding a page is a store and a count.
    private(set) var slots: UnsafeMutablePointer<UInt64>
    private(set) var slotCount = 0
    private var slotCapacity: Int
    /// The current table batch (a page) and the tables in it.
    var tableBatch: PFN?
    var tables: [(PFN, PageTableLevel)] = []

    /// tlb_gather_mmu() / tlb_gather_mmu_fullmm(): also raises the mm's tlb_flush_pending
    /// (inc_tlb_flush_pending()), which tells a parallel gather that it is nested.
    init(machine: Machine, mm: MM, fullmm: Bool = false) {
        self.machine = machine
        self.mm = mm
        self.fullmm = fullmm
        self.tunables = machine.tunables
        self.activeLimit = Self.limit(active: -1, machine.tunables)
        if fullmm {
            start = 0
            end = .max
        }
        slotCapacity = 64
        slots = .allocate(capacity: 64)
        mm.flushPending += 1
        machine.gathersInFlight.append(Unmanaged.passUnretained(self))
    }

    deinit { slots.deallocate() }

    @inline(__always) private func append(_ e: UInt64) {
        if slotCount == slotCapacity { growSlots() }
        slots[slotCount] = e
        slotCount &+= 1
    }

    @inline(never) private func growSlots() {
        let n = UnsafeMutablePointer<UInt64>.allocate(capacity: slotCapacity * 2)
        n.update(from: slots, count: slotCount)
        slots.deallocate()
        slots = n
        slotCapacity *= 2
    }

    /// Whether a flush this gather still owes covers `va` (the validator's allowance).
    func covers(_ va: UInt64) -> Bool {
        fullmm || (clearedLevels != 0 && va >= start && va < end)
    }

    /// tlb_flush_pte_range() and friends: widen the flush range for a cleared entry.
    @inline(__always)
    func noteCleared(_ addr: UInt64, _ size: UInt64, level: PageTableLevel) {
        if addr < start { start = addr }
        if addr &+ size > end { end = addr &+ size }
        clearedLevels |= 1 << UInt8(level.rawValue)
    }

    /// __tlb_remove_folio_pages_size() for one page (or, with `pmdFolio`, a PMD-mapped folio
    /// in one slot). Returns true when the caller must flush now: the batch is full and no
    /// next batch could be had.
    @inline(__always)
    func removePage(_ pfn: PFN, delayRmap: Bool = false, pmdFolio: Bool = false) -> Bool {
        var e = pfn.raw << 3
        if delayRmap {
            e |= Self.delayRmapBit
            delayedRmap = true
        }
        if pmdFolio { e |= Self.pmdFolioBit }
        append(e)
        activeCount += 1
        return afterAdd()
    }

    /// __tlb_remove_folio_pages(): `nr` pages of one folio from `pfn` in two slots (the page
    /// with NR_PAGES_NEXT, then the count), as zap_present_folio_ptes() batches a
    /// PTE-mapped large folio.
    func removeFolioPages(_ pfn: PFN, _ nr: Int, delayRmap: Bool = false) -> Bool {
        guard nr > 1 else { return removePage(pfn, delayRmap: delayRmap) }
        var e = pfn.raw << 3 | Self.nrPagesNextBit
        if delayRmap {
            e |= Self.delayRmapBit
            delayedRmap = true
        }
        append(e)
        append(UInt64(nr) << 2)
        activeCount += 2
        return afterAdd()
    }

    /// The tail of __tlb_remove_folio_pages_size(): with `nr >= max - 1` (room for one more
    /// two-slot pair is gone) move to the next batch, or report the gather full.
    @inline(__always)
    private func afterAdd() -> Bool {
        if activeCount >= activeLimit { return tunables.perPageFlush || !nextBatch() }
        return false
    }

    /// tlb_next_batch()
    func nextBatch() -> Bool {
        // With delayed rmaps pending, never go past the local bundle plus one batch.
        if delayedRmap && active >= 0 { return false }
        if active + 1 < batchPages.count {
            active += 1
            activeCount = 0
            return true
        }
        if batchPages.count >= tunables.maxBatchCount { return false }
        guard let page = machine.allocGatherPage() else {
            machine.tracer.emit(machine.currentCPU, .gatherBatchFailed(mm: mm.id))
            return false
        }
        batchPages.append(page)
        machine.shootdown.gatherBatches += 1
        machine.tracer.emit(machine.currentCPU, .gatherBatch(mm: mm.id, pfn: page.raw, count: batchPages.count))
        active = batchPages.count - 1
        activeCount = 0
        return true
    }

    /// tlb_remove_table(): a page-table page unhooked from the tree; it is freed after an RCU
    /// grace period, so lock-free walkers (gup_fast) never read a freed table.
    func removeTable(_ pfn: PFN, level: PageTableLevel) {
        freedTables = true
        machine.tracer.emit(machine.currentCPU, .tableQueued(pfn: pfn.raw, level: level.rawValue))
        if tableBatch == nil {
            guard let page = machine.allocGatherPage() else {
                // tlb_table_invalidate() + tlb_remove_table_one(): flush, then an IPI to every
                // CPU (tlb_remove_table_sync_one()) so no walker is left inside, then free.
                flushTLB()
                machine.tableSyncOne(pfn, level: level)
                return
            }
            tableBatch = page
        }
        tables.append((pfn, level))
        if tables.count >= tunables.tableBatchSlots { tableFlush() }
    }

    /// tlb_table_flush(): invalidate (the TLB and the paging-structure caches), then hand the
    /// batch to RCU (tlb_remove_table_rcu() frees the tables and the batch page).
    func tableFlush() {
        guard let b = tableBatch else { return }
        flushTLB()
        machine.shootdown.tablesRCU += UInt64(tables.count)
        if machine.debugFreeTablesWithoutRCU {
            for (pfn, level) in tables { machine.freeTablePage(pfn, level: level) }
            machine.allocator.freePages(b)
        } else {
            machine.callRCU(.freeTables(tables: tables, batchPage: b))
        }
        tables.removeAll(keepingCapacity: true)
        tableBatch = nil
    }

    /// tlb_flush_mmu_tlbonly(): flush the TLB range if anything was cleared or freed.
    func flushTLB() {
        guard clearedLevels != 0 || freedTables else { return }
        // tlb_get_unmap_shift(): the stride of the lowest level cleared.
        let stride: UInt64 = clearedLevels & 1 != 0 ? Page.shift
            : clearedLevels & 2 != 0 ? PageTableLevel.pmd.shift
            : clearedLevels & 4 != 0 ? PageTableLevel.pud.shift : Page.shift
        // tlb_flush(): fullmm flushes everything (need_flush_all, set by some architectures'
        // PMD updates, is not modelled). Tables freed without a cleared range: the model
        // flushes the whole mm (the kernel the tables' own spans).
        let whole = fullmm || start >= end
        machine.flushTLBMMRange(mm, start: whole ? 0 : start, end: whole ? .max : end, strideShift: stride, freedTables: freedTables)
        // __tlb_reset_range()
        if !fullmm {
            start = .max
            end = 0
        }
        clearedLevels = 0
        freedTables = false
    }

    /// tlb_flush_rmaps(): after the flush, while the page-table lock is still held, remove
    /// the delayed rmaps (only the local bundle and the first batch can hold them).
    func flushRmaps() {
        guard delayedRmap else { return }
        var i = 0
        while i < slotCount {
            let e = slots[i]
            if e & Self.delayRmapBit != 0 { machine.removeFileRmap(PFN(e >> 3)) }
            i += e & Self.nrPagesNextBit != 0 ? 2 : 1
        }
        delayedRmap = false
    }

    /// tlb_flush_mmu(): TLB first, then the delayed rmaps, then the tables to RCU, then the
    /// pages (tlb_batch_pages_flush()).
    func flush() {
        flushTLB()
        flushRmaps()
        tableFlush()
        freePages()
        machine.shootdown.gatherFlushes += 1
    }

    /// __tlb_batch_free_encoded_pages(): free the gathered folios, at most `freeLimit` per
    /// call (cond_resched() between), never separating a page from its count; with
    /// init_on_free the limit counts pages, since clearing them is the cost.
    func freePages() {
        guard slotCount > 0 else { return }
        // One strong reference for the whole loop (not one per page).
        let machine = self.machine
        let limit = tunables.freeLimit
        let n = slotCount
        var i = 0
        while i < n {
            var taken = 0, folios = 0
            // The common run: plain order-0 pages, one slot each, one folio each.
            if !tunables.initOnFree {
                let stop = min(n, i + limit)
                var j = i
                while j < stop && slots[j] & 7 == 0 { j += 1 }
                machine.putPages(slots + i, j - i)
                taken = j - i
                i = j
                folios = taken
            }
            while i < n {
                let e = slots[i]
                let pair = e & Self.nrPagesNextBit != 0
                let nr = pair ? Int(slots[i + 1] >> 2) : (e & Self.pmdFolioBit != 0 ? Int(PageOrder.pmd.pages) : 1)
                let cost = tunables.initOnFree ? nr : 1
                if taken > 0 && taken + cost > limit { break }
                taken += cost
                folios += 1
                Self.putEntry(machine, e, nr: pair ? nr : 1)
                i += pair ? 2 : 1
            }
            machine.tracer.emit(machine.currentCPU, .gatherFree(mm: mm.id, folios: folios))
        }
        slotCount = 0
        active = -1
        activeCount = 0
    }

    /// free_pages_and_swap_cache() for one entry: drop the reference(s) it holds.
    @inline(__always)
    private static func putEntry(_ machine: Machine, _ e: UInt64, nr: Int) {
        let pfn = PFN(e >> 3)
        if e & Self.pmdFolioBit == 0 {
            for k in 0..<UInt64(nr) { machine.putPage(pfn + k) }
        } else if machine.frames[pfn].pointee.order >= UInt8(PageOrder.pmd.raw) || machine.isHugetlbFolio(pfn) {
            // A PMD-mapped THP, or a hugetlb folio of any size (PUD, or contiguous PTEs).
            machine.putHugePage(pfn)
        } else {
            // The folio was split since it was gathered: 512 order-0 pages now.
            for k in 0..<PageOrder.pmd.pages { machine.putPage(pfn + k) }
        }
    }

    /// tlb_finish_mmu(): a nested gather (another one on this mm ran meanwhile) forces a full
    /// flush with freed_tables; then the last flush; the batch pages go back; the mm's
    /// tlb_flush_pending drops.
    func finish() {
        if mm.flushPending > 1 {
            // mm_tlb_flush_nested(): the other gather may have cleared entries this one has
            // not seen; flush everything, including paging-structure caches.
            fullmm = true
            start = 0
            end = .max
            freedTables = true
        }
        flush()
        for b in batchPages { machine.allocator.freePages(b) }
        batchPages.removeAll()
        mm.flushPending -= 1
        machine.shootdown.gathers += 1
        machine.gathersInFlight.removeAll { $0.toOpaque() == Unmanaged.passUnretained(self).toOpaque() }
    }
}

extension Machine {
    /// __get_free_page(GFP_NOWAIT | __GFP_NOWARN) for a gather batch or table batch.
    func allocGatherPage() -> PFN? {
        failGatherAllocations ? nil : allocator.allocPages([.nowait, .noWarn])
    }

    /// tlb_remove_table_sync_one() + __tlb_remove_table(): IPI every CPU, which cannot
    /// answer while it runs a lock-free walk with interrupts off; the table is freed once
    /// all have answered (at once when no walker is active).
    func tableSyncOne(_ pfn: PFN, level: PageTableLevel) {
        shootdown.tablesSync += 1
        tracer.emit(currentCPU, .tableSyncIPI)
        for c in 0..<cpuCount where c != currentCPU {
            shootdown.ipisSent[currentCPU] += 1
            shootdown.ipisReceived[c] += 1
        }
        if lockFreeWalkers.contains(where: { $0.active && $0.cpu != currentCPU }) {
            tablesAwaitingIPI.append((pfn, level))
        } else {
            freeTablePage(pfn, level: level)
        }
    }
}
