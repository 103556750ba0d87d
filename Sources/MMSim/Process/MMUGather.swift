// mm/mmu_gather.c: batch the pages and page tables an unmap removes; flush the TLB, then free.

/// struct mmu_gather: collects what an unmap took out of the page tables so that the TLB
/// is flushed once before any of it is freed. Batch pages come from the buddy allocator
/// without waiting (GFP_NOWAIT), which is what makes munmap show up in pgalloc_normal.
final class MMUGather {
    /// MMU_GATHER_BUNDLE: slots in the on-stack local batch.
    static let bundle = 8
    /// MAX_GATHER_BATCH: slots in a batch page ((PAGE_SIZE - header) / sizeof(void *)).
    static let batchSlots = 510
    /// MAX_GATHER_BATCH_COUNT
    static let maxBatchCount = 19
    /// MAX_TABLE_BATCH
    static let tableBatchSlots = 509

    /// The machine outlives every gather (one unmap or exit): no reference counting per page.
    unowned(unsafe) let machine: Machine
    let mm: MM
    let fullmm: Bool
    /// Flush range and what was cleared.
    var start: UInt64 = .max
    var end: UInt64 = 0
    /// cleared_ptes, cleared_pmds, cleared_puds, cleared_p4ds as bits (1 << level).
    var clearedLevels: UInt8 = 0
    var freedTables = false
    /// Batch pages allocated so far (reused after a flush; freed at finish).
    var batchPages: [PFN] = []
    /// -1 = the local bundle, else the index into `batchPages`.
    var active = -1
    var activeCount = 0
    /// Pages whose rmap removal waits for the TLB flush (dirty file pages).
    var delayedRmaps: [PFN] = []
    /// The pages gathered since the last flush, with their sizes.
    var pending: [(pfn: PFN, huge: Bool)] = []
    /// The current table batch (a page) and the tables in it.
    var tableBatch: PFN?
    var tableCount = 0
    /// Tables waiting for the RCU grace period (freed at finish: the model's grace period).
    var tablesToFree: [(PFN, PageTableLevel)] = []
    /// Batch pages whose tables were handed to RCU.
    var retiredTableBatches: [PFN] = []

    /// tlb_gather_mmu() / tlb_gather_mmu_fullmm()
    init(machine: Machine, mm: MM, fullmm: Bool = false) {
        self.machine = machine
        self.mm = mm
        self.fullmm = fullmm
        if fullmm {
            start = 0
            end = .max
        }
    }

    /// tlb_flush_pte_range() and friends: widen the flush range for a cleared entry.
    func noteCleared(_ addr: UInt64, _ size: UInt64, level: PageTableLevel) {
        start = min(start, addr)
        end = max(end, addr &+ size)
        clearedLevels |= 1 << UInt8(level.rawValue)
    }

    /// __tlb_remove_folio_pages_size(): one slot per page or PMD folio. Returns true
    /// when the caller must flush now (no next batch could be had).
    /// `huge`: a PMD-mapped folio, one slot whose free releases the whole folio. (The
    /// two-slot page+count encoding is for PTE-mapped large folios, which are not modelled.)
    func removePage(_ pfn: PFN, huge: Bool = false) -> Bool {
        pending.append((pfn, huge))
        activeCount += 1
        let max = active < 0 ? Self.bundle : Self.batchSlots
        if activeCount >= max - 1 {
            return !nextBatch()
        }
        return false
    }

    /// __tlb_remove_folio_pages_size() with ENCODED_PAGE_BIT_DELAY_RMAP: the rmap of this
    /// page is removed after the flush (the caller then adds the page itself).
    func delayRmap(_ pfn: PFN) { delayedRmaps.append(pfn) }

    /// tlb_next_batch()
    func nextBatch() -> Bool {
        // With delayed rmaps pending, never go past the local batch plus one.
        if !delayedRmaps.isEmpty && active >= 0 { return false }
        if active + 1 < batchPages.count {
            active += 1
            activeCount = 0
            return true
        }
        if batchPages.count == Self.maxBatchCount { return false }
        guard let page = machine.allocator.allocPages(.nowait) else { return false }
        batchPages.append(page)
        active = batchPages.count - 1
        activeCount = 0
        return true
    }

    /// tlb_remove_table(): a page-table page unhooked from the tree; freed after RCU.
    func removeTable(_ pfn: PFN, level: PageTableLevel) {
        freedTables = true
        if tableBatch == nil {
            guard let page = machine.allocator.allocPages([.nowait, .noWarn]) else {
                // tlb_table_invalidate() + tlb_remove_table_one(): flush, sync all CPUs, free now.
                flushTLB()
                mm.pageTable.releaseTableFrame(pfn, level: level)
                return
            }
            tableBatch = page
            tableCount = 0
        }
        tablesToFree.append((pfn, level))
        tableCount += 1
        if tableCount == Self.tableBatchSlots { tableFlush() }
    }

    /// tlb_table_flush(): hand the batch to RCU; the next table needs a new batch page.
    func tableFlush() {
        guard let b = tableBatch else { return }
        flushTLB()
        retiredTableBatches.append(b)
        tableBatch = nil
        tableCount = 0
    }

    /// tlb_flush_mmu_tlbonly(): flush the TLB range if anything was cleared or freed.
    func flushTLB() {
        guard clearedLevels != 0 || freedTables || fullmm else { return }
        // tlb_get_unmap_shift(): the stride of the lowest level cleared.
        let stride: UInt64 = clearedLevels & 1 != 0 ? Page.shift
            : clearedLevels & 2 != 0 ? PageTableLevel.pmd.shift : PageTableLevel.pud.shift
        // Tables freed without a cleared range (their pages were flushed already): the model
        // flushes the whole mm, where the kernel flushes the tables' own small ranges.
        let whole = fullmm || start >= end
        machine.flushTLBRange(mm, start: whole ? 0 : start, end: whole ? .max : end, strideShift: stride, freedTables: freedTables)
        if !fullmm {
            start = .max
            end = 0
        }
        clearedLevels = 0
        freedTables = false
    }

    /// tlb_flush_mmu(): TLB first, then the tables to RCU, then the pages.
    func flush() {
        flushTLB()
        // tlb_flush_rmaps(): after the flush, before the pages can go.
        for pfn in delayedRmaps { machine.removeFileRmap(pfn) }
        delayedRmaps.removeAll(keepingCapacity: true)
        tableFlush()
        for (pfn, huge) in pending {
            if !huge {
                machine.putPage(pfn)
            } else if machine.frames[pfn].pointee.order >= UInt8(PageOrder.pmd.raw) || machine.isHugetlbFolio(pfn) {
                machine.putHugePage(pfn)
            } else {
                // The folio was split since it was gathered: 512 order-0 pages now.
                for i in 0..<PageOrder.pmd.pages { machine.putPage(pfn + i) }
            }
        }
        pending.removeAll(keepingCapacity: true)
        active = -1
        activeCount = 0
    }

    /// tlb_finish_mmu(): the last flush, the RCU grace period, the batch pages back.
    func finish() {
        flush()
        for (pfn, level) in tablesToFree { mm.pageTable.releaseTableFrame(pfn, level: level) }
        tablesToFree.removeAll()
        for b in retiredTableBatches { machine.allocator.freePages(b) }
        retiredTableBatches.removeAll()
        for b in batchPages { machine.allocator.freePages(b) }
        batchPages.removeAll()
    }
}
