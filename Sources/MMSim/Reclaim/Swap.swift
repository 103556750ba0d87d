// mm/swap.c: putting folios on the LRU lists through per-CPU batches, marking them accessed, activating and rotating them.

/// cpu_fbatches.lru_add of every CPU: folios waiting to go on an LRU list
/// (PAGEVEC_SIZE = 31 per batch, struct folio_batch).
public final class FolioBatches {
    /// PAGEVEC_SIZE
    public static let size = 31
    let slots: FixedArray<UInt32>
    let counts: FixedArray<Int>
    init(cpus: Int) {
        slots = FixedArray(repeating: FrameTable.nil, count: cpus * Self.size)
        counts = FixedArray(repeating: 0, count: cpus)
    }
    deinit {
        slots.deallocate()
        counts.deallocate()
    }
    /// Folios waiting on `cpu`.
    public func count(cpu: Int) -> Int { counts[cpu] }
}

extension Machine {
    /// folio_add_lru(): the folio waits in this CPU's lru_add batch; a full batch (or a large
    /// folio) moves the whole batch to the lists (folio_batch_add_and_move()).
    @inline(__always) func folioAddLRU(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let cpu = currentCPU
        let n = fbatches.counts[cpu]
        fbatches.slots[cpu &* FolioBatches.size &+ n] = UInt32(truncatingIfNeeded: pfn.raw)
        fbatches.counts[cpu] = n &+ 1
        p.pointee.flags.insert(.lruBatched)
        if n &+ 1 == FolioBatches.size || p.pointee.order > 0 { lruAddDrain(cpu: cpu) }
    }

    /// lru_add_drain() / lru_add_drain_cpu(): this CPU's batch goes on the lists, in order
    /// (folio_batch_move_lru() with lru_add()).
    @inline(never) public func lruAddDrain(cpu: Int? = nil) {
        let c = cpu ?? currentCPU
        let n = fbatches.counts[c]
        guard n > 0 else { return }
        fbatches.counts[c] = 0
        // Runs of folios going to the same list of the same zone are counted once (host-side).
        var runLV: LRUVec? = nil
        var runList = -1, runZone = -1
        var pages: Int64 = 0, folios: Int64 = 0
        for i in 0..<n {
            let pfn = PFN(UInt64(fbatches.slots[c &* FolioBatches.size &+ i]))
            let p = frames[pfn]
            lruAddPrepare(p)
            let lv = folioLruvec(p), l = folioLRUList(p).rawValue, z = Int(p.pointee.zone)
            if lv != runLV || l != runList || z != runZone {
                if let r = runLV { updateLRUSize(r, runList, zone: runZone, pages: pages, folios: folios) }
                runLV = lv; runList = l; runZone = z; pages = 0; folios = 0
            }
            lruvecLinkHead(lv, l, pfn, p)
            pages &+= folioPages(p)
            folios &+= 1
        }
        if let r = runLV { updateLRUSize(r, runList, zone: runZone, pages: pages, folios: folios) }
    }

    /// lru_add_drain_all(): every CPU's batch.
    public func lruAddDrainAll() {
        for c in 0..<cpuCount { lruAddDrain(cpu: c) }
    }

    /// lru_add(): an mlocked folio goes to the unevictable list (unevictable_pgs_culled),
    /// any other to the list its flags choose.
    @inline(__always) func lruAdd(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        lruAddPrepare(p)
        lruvecAdd(folioLruvec(p), pfn, p)
    }

    /// lru_add()'s flag work before the folio is linked.
    @inline(__always) func lruAddPrepare(_ p: UnsafeMutablePointer<PageMeta>) {
        p.pointee.flags.remove(.lruBatched)
        if p.pointee.flags.contains(.mlocked) {
            if !p.pointee.flags.contains(.unevictable) {
                p.pointee.flags.remove(.active)
                p.pointee.flags.insert(.unevictable)
                counters.add(.unevictablePgsCulled, folioPages(p))
            }
        } else {
            p.pointee.flags.remove(.unevictable)
        }
    }

    /// A folio still in an lru_add batch is being freed or taken: out of its batch. (The
    /// kernel's batch holds a reference, so the folio cannot be freed before the batch
    /// drains; the model holds none and takes the folio out instead.)
    @inline(never) func lruBatchRemove(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        p.pointee.flags.remove(.lruBatched)
        let v = UInt32(truncatingIfNeeded: pfn.raw)
        for c in 0..<cpuCount {
            let n = fbatches.counts[c], base = c &* FolioBatches.size
            for i in 0..<n where fbatches.slots[base &+ i] == v {
                for j in i..<(n - 1) { fbatches.slots[base &+ j] = fbatches.slots[base &+ j &+ 1] }
                fbatches.counts[c] = n - 1
                return
            }
        }
    }

    /// Takes a folio off the LRU machinery wherever it is (a list or a batch), as
    /// folio_isolate_lru() after lru_add_drain() or the final put's lruvec_del_folio() do.
    /// Returns the list it was on (nil when it was on none).
    @inline(__always) @discardableResult
    func lruTake(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) -> LRUList? {
        if p.pointee.flags.contains(.lru) {
            let l = folioLRUList(p)
            lruvecDel(folioLruvec(p), pfn, p)
            return l
        }
        if p.pointee.flags.contains(.lruBatched) { lruBatchRemove(pfn, p) }
        return nil
    }

    /// folio_mark_accessed(): the first access sets PG_referenced, the second activates
    /// an inactive folio (folio_activate(), or in its lru_add batch __lru_cache_activate_folio())
    /// and clears PG_referenced; workingset_activation() ages the workingset clock.
    func folioMarkAccessed(_ pfn: PFN) {
        let p = frames[pfn]
        let f = p.pointee.flags
        if !f.contains(.referenced) {
            p.pointee.flags.insert(.referenced)
        } else if f.contains(.unevictable) {
            // Unevictable folios are not on an evictable list: nothing to promote.
        } else if !f.contains(.active) {
            if f.contains(.lru) {
                folioActivate(pfn, p)
            } else {
                p.pointee.flags.insert(.active)
            }
            p.pointee.flags.remove(.referenced)
            workingsetActivation(p)
        }
    }

    /// folio_activate() / lru_activate(): an inactive folio on an evictable list moves to the
    /// head of the active list of its type (pgactivate).
    func folioActivate(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        guard p.pointee.flags.contains(.lru), !p.pointee.flags.contains(.active),
              !p.pointee.flags.contains(.unevictable) else { return }
        let lv = folioLruvec(p)
        lruvecDel(lv, pfn, p)
        p.pointee.flags.insert(.active)
        lruvecAdd(lv, pfn, p)
        let n = folioPages(p)
        counters.add(.pgactivate, n)
        memcg.d(lv.memcg).pointee.stats[VMStat.pgactivate.rawValue] &+= n
    }

    /// folio_rotate_reclaimable(): a folio whose writeback for reclaim (PG_reclaim) ended goes
    /// to the tail of its inactive list, to be reclaimed first (pgrotated).
    func folioRotateReclaimable(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        guard p.pointee.flags.contains(.lru), !p.pointee.flags.contains(.unevictable),
              !p.pointee.flags.contains(.active), !p.pointee.flags.contains(.locked) else { return }
        lruvecMove(folioLruvec(p), pfn, p, tail: true)
        counters.add(.pgrotated, folioPages(p))
    }

    /// lru_note_cost(): reclaim and refault cost, charged to the lruvec and its ancestors.
    func lruNoteCost(_ lv: LRUVec, file: Bool, _ pages: UInt64) {
        var g = lv.memcg
        while g >= 0 {
            let l = memcg.lruvec(g, node: lv.node)
            if file { l.fileCost &+= pages } else { l.anonCost &+= pages }
            // Decay: halve both when the sum outgrows a quarter of the lists (lru_note_cost_unlock_irq()).
            let lrusize = l.size(.inactiveAnon) + l.size(.activeAnon) + l.size(.inactiveFile) + l.size(.activeFile)
            if l.anonCost + l.fileCost > UInt64(max(0, lrusize / 4)) {
                l.anonCost /= 2
                l.fileCost /= 2
            }
            g = memcg.d(g).pointee.parent
        }
    }
}
