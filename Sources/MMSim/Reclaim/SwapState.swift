// mm/swap_state.c, mm/page_io.c, mm/memory.c do_swap_page(): the swap cache, swap-out writes and their completion, swap-in with VMA readahead.

extension Machine {
    // MARK: The swap cache (the 6.18 swap table)

    /// swap_cache_add_folio(): the folio is cached at its slot (SWAP_HAS_CACHE is set by the
    /// caller); NR_SWAPCACHE counts it. Returns the shadow the slot held, if any.
    @discardableResult
    func swapCacheAdd(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, _ e: SwapEntry) -> UInt64? {
        let si = swap.areas[e.type]!
        let old = si.table[e.offset]
        si.table[e.offset] = pfn.raw << 1 | 1
        p.pointee.flags.insert(.swapcache)
        p.pointee.priv = e.packed
        modFolioStat(p, .nrSwapcached, folioPages(p))
        counters.add(.nrFilePages, folioPages(p))      // node_stat_mod_folio(NR_FILE_PAGES): not the memcg's
        return old & 1 == 0 && old != 0 ? old >> 1 : nil
    }

    /// __swap_cache_del_folio() + put_swap_folio(): the folio leaves the swap cache, leaving
    /// `shadow` (or nothing) in its slot; the slot's cache bit goes, and a slot nobody refers
    /// to any more is freed.
    func swapCacheDelete(_ p: UnsafeMutablePointer<PageMeta>, shadow: UInt64?) {
        let e = SwapEntry(packed: p.pointee.priv)
        modFolioStat(p, .nrSwapcached, -folioPages(p))
        counters.add(.nrFilePages, -folioPages(p))
        p.pointee.flags.remove(.swapcache)
        p.pointee.priv = 0
        guard let si = swap.areas[e.type] else { return }
        si.table[e.offset] = shadow.map { $0 << 1 } ?? 0
        si.map[e.offset] &= ~SwapInfo.hasCache
        if si.map[e.offset] == 0 { releaseSlot(si, e.offset) }
    }

    /// swap_cache_get_folio(): the folio cached for a slot.
    func swapCacheLookup(_ e: SwapEntry) -> PFN? {
        guard e.type < swap.areas.count, let si = swap.areas[e.type], e.offset < si.pages else { return nil }
        let v = si.table[e.offset]
        return v & 1 == 1 ? PFN(v >> 1) : nil
    }

    /// folio_free_swap(): a swap-cache folio no PTE refers to by swap entry gives up its slot
    /// (not while it is under writeback).
    @discardableResult
    func folioFreeSwap(_ p: UnsafeMutablePointer<PageMeta>) -> Bool {
        guard p.pointee.flags.contains(.swapcache), !p.pointee.flags.contains(.writeback) else { return false }
        let e = SwapEntry(packed: p.pointee.priv)
        guard swapCount(e) == 0 else { return false }
        swapCacheDelete(p, shadow: nil)
        p.pointee.flags.insert(.dirty)
        return true
    }

    /// free_swap_cache() as free_pages_and_swap_cache() does for the gather's pages: an
    /// unmapped swap-cache folio nobody refers to by swap entry leaves the cache with its
    /// reference.
    @inline(never) func freeSwapCache(_ p: UnsafeMutablePointer<PageMeta>) {
        guard p.pointee.refcount > 1, folioFreeSwap(p) else { return }
        p.pointee.refcount -= 1
    }

    /// free_swap_and_cache(): a swap PTE is zapped: the slot's reference goes; a cached folio
    /// left with no reference by swap entry and no mapping leaves the swap cache.
    func freeSwapAndCache(_ e: SwapEntry) {
        guard e.type < swap.areas.count, swap.areas[e.type] != nil else { return }
        swapFree(e)
        if let c = swapCacheLookup(e) {
            let p = frames[c]
            if p.pointee.mapcount == 0 && swapCount(e) == 0 && !p.pointee.flags.contains(.writeback) {
                swapCacheDelete(p, shadow: nil)
                putPage(c, p)
            }
        }
    }

    // MARK: Writeout and completion (the I/O model)

    /// swap_writeout() -> __swap_writepage(): the write is submitted (PG_writeback,
    /// NR_WRITEBACK, pswpout, pgpgout in kB); it completes later (see completeWrites()).
    func swapWriteout(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let n = folioPages(p)
        let e = SwapEntry(packed: p.pointee.priv)
        swap.areas[e.type]?.data[e.offset] = p.pointee.content      // the data reaches the slot
        p.pointee.flags.remove(.dirty)
        p.pointee.flags.insert(.writeback)
        modFolioStat(p, .nrWriteback, n)
        allocator.zones[Int(p.pointee.zone)].stats[VMStat.nrZoneWritePending.rawValue] += n
        counters.add(.pswpout, n)
        counters.add(.pgpgout, 4 * n)
        swap.pendingWrites.append(UInt32(truncatingIfNeeded: pfn.raw))
    }

    /// pageout() of a dirty page-cache folio (kswapd only): the write is submitted as a swap
    /// write is (PG_writeback, NR_WRITEBACK, pgpgout), its dirty count moves to writeback.
    func fileWriteout(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let n = folioPages(p)
        p.pointee.flags.remove(.dirty)
        p.pointee.flags.insert(.writeback)
        modFolioStat(p, .nrDirty, -n)
        modFolioStat(p, .nrWriteback, n)
        counters.add(.pgpgout, 4 * n)
        swap.pendingWrites.append(UInt32(truncatingIfNeeded: pfn.raw))
    }

    /// The I/O model: every write submitted so far completes, in submission order
    /// (end_swap_bio_write() / folio_end_writeback()): PG_writeback clears, NR_WRITTEN counts
    /// it, and a folio written for reclaim (PG_reclaim) rotates to the tail of its inactive
    /// list. Writes issued by a reclaim batch complete once the batch is back on the lists
    /// (before the next batch is isolated), and every write completes at the end of a scenario
    /// statement: the model's disk is fast, but never completes a write while its folio is
    /// still isolated.
    public func completeWrites() {
        guard !swap.pendingWrites.isEmpty else { return }
        let done = swap.pendingWrites
        swap.pendingWrites.removeAll(keepingCapacity: true)
        for v in done {
            let pfn = PFN(UInt64(v))
            let p = frames[pfn]
            guard p.pointee.flags.contains(.writeback) else { continue }
            p.pointee.flags.remove(.writeback)
            let n = folioPages(p)
            modFolioStat(p, .nrWriteback, -n)
            allocator.zones[Int(p.pointee.zone)].stats[VMStat.nrZoneWritePending.rawValue] -= n
            modFolioStat(p, .nrWritten, n)
            if p.pointee.flags.contains(.reclaim) {
                p.pointee.flags.remove(.reclaim)
                folioRotateReclaimable(pfn, p)
            }
        }
    }

    // MARK: Swap-in

    /// do_swap_page(): a fault on a swap PTE. A folio in the swap cache is mapped (a minor
    /// fault; a readahead hit counts swap_ra_hit); otherwise swap_vma_readahead() reads the
    /// window around the fault and the fault is major. The slot's PTE reference goes
    /// (swap_free()); the folio keeps the slot while it stays in the swap cache, unless
    /// should_try_to_free_swap() (swap more than half full, a locked VMA, or a write fault on
    /// an exclusive folio) frees it.
    func doSwapPage(_ task: Task, _ mm: MM, _ vmaIndex: Int, _ va: VirtAddr, _ slot: UnsafeMutablePointer<UInt64>,
                    _ e: SwapEntry, write: Bool) throws(FaultError) {
        var major = false
        var pfn: PFN
        if let c = swapCacheLookup(e) {
            pfn = c
            let p = frames[pfn]
            if p.pointee.flags.contains(.readahead) {
                p.pointee.flags.remove(.readahead)
                counters.add(.swapRaHit, 1)
                mm.vmas[vmaIndex].swapRA.hits = min(mm.vmas[vmaIndex].swapRA.hits + 1, 0xff)
            }
            mm.vmas[vmaIndex].swapRA.page = va.raw >> Page.shift
        } else {
            guard let got = try swapVMAReadahead(mm, vmaIndex, va, e) else { throw .oom }
            pfn = got
            major = true
        }
        let p = frames[pfn]
        if major {
            counters.add(.pgmajfault, 1)
            memcgEvent(mm, .pgmajfault)
            task.majFlt &+= 1
            task.minFlt &-= 1
        }
        // Map it: the page comes back exclusive (this mm held the only reference).
        let vma = mm.vmas[vmaIndex]
        let exclusive = swapCount(e) <= 1
        p.pointee.refcount += 1
        if p.pointee.mapping == 0 || !PageMapping.isAnon(p.pointee.mapping) {
            // __folio_set_anon(): a folio other processes may map too takes the oldest
            // possible anon_vma, the root, so that every sharer's rmap walk finds it.
            let av = exclusive || vma.anonVMA == 0 ? vma.anonVMA : Int(rmap.anonVMAs[Int(Machine.anonIndex(vma.anonVMA))].root) + 1
            newAnonRmap(p, anonVMA: av, index: vma.pgoff(of: va.raw))
            if !exclusive { p.pointee.flags.remove(.anonExclusive) }
        } else {
            p.pointee.mapcount += 1
            if p.pointee.mapcount == 1 {
                modFolioStat(p, .nrAnonPages, 1)
                if exclusive { p.pointee.flags.insert(.anonExclusive) }
            }
        }
        mm.addRSS(.anonPages, 1)
        mm.addRSS(.swapEnts, -1)
        swapFree(e)
        var writable = false, dirty = false
        let tryFree = vmSwapFull || vma.flags.contains(.locked) || p.pointee.flags.contains(.mlocked)
            || (write && exclusive)
        if tryFree { folioFreeSwap(p) }
        if write && exclusive && vma.flags.contains(.write) {
            writable = true
            dirty = true
            p.pointee.flags.insert(.dirty)
        }
        slot.pointee = anonPTE(pfn, vma, writable: writable, dirty: dirty)
        if write && !writable { try doWPPage(task, mm, vmaIndex, mm.vmas[vmaIndex], va, slot, PTEFormat.decode(slot.pointee, level: .pte, arch: arch)!) }
    }

    /// swap_vma_ra_win() + swap_vma_readahead(): the window (hits + 2 rounded up to a power
    /// of two, at most 2^page-cluster, shrinking by at most half; 1 for a fault that is not
    /// next to the previous one) placed after a forward fault, before a backward one, else
    /// around it, clamped to the VMA and the PMD; every swap PTE in it whose slot is not
    /// cached is read (__read_swap_cache_async() + swap_read_folio()), the others marked
    /// PG_readahead (swap_ra). Returns the faulting page's folio.
    func swapVMAReadahead(_ mm: MM, _ vmaIndex: Int, _ va: VirtAddr, _ e: SwapEntry) throws(FaultError) -> PFN? {
        let vma = mm.vmas[vmaIndex]
        let fpfn = va.raw >> Page.shift
        let ra = vma.swapRA
        let maxWin = swap.vmaReadahead ? 1 << min(swap.pageCluster, 5) : 1
        var win = 1
        if maxWin > 1 {
            var pages = ra.hits + 2
            if pages == 2 {
                if fpfn != ra.page &+ 1 && fpfn != ra.page &- 1 { pages = 1 }
            } else {
                var r = 4
                while r < pages { r <<= 1 }
                pages = r
            }
            pages = min(pages, maxWin)
            pages = max(pages, ra.win / 2)
            win = pages
        }
        mm.vmas[vmaIndex].swapRA = SwapReadahead(page: fpfn, win: win, hits: 0)
        var lo = fpfn, hi = fpfn + 1
        if win > 1 {
            let w = UInt64(win)
            if fpfn == ra.page &+ 1 { lo = fpfn; hi = fpfn + w }
            else if ra.page == fpfn &+ 1 { lo = fpfn + 1 - min(w, fpfn + 1); hi = fpfn + 1 }
            else { let left = (w - 1) / 2; lo = fpfn - min(left, fpfn); hi = lo + w }
            let pmdStart = (va.raw & ~(PageTableLevel.pmd.entrySpan - 1)) >> Page.shift
            lo = max(lo, vma.start >> Page.shift, pmdStart)
            hi = min(hi, vma.end >> Page.shift, pmdStart + 512)
        }
        var result: PFN?
        let table = mm.pageTable.slot(va, level: .pte).map { $0 - va.index(at: .pte) }
        // The folios read here stay locked until their reads complete, when the fault is
        // done (reclaim's folio_trylock() fails on them meanwhile).
        var locked: [PFN] = []
        defer { for pfn in locked { frames[pfn].pointee.flags.remove(.locked) } }
        for page in lo..<hi {
            let addr = page << Page.shift
            let entry: SwapEntry
            if page == fpfn {
                entry = e
            } else {
                guard let t = table, let d = SoftEntry.decodeSwap(t[VirtAddr(addr).index(at: .pte)], arch: arch) else { continue }
                entry = d
            }
            if let c = swapCacheLookup(entry) {
                if page == fpfn { result = c }
                continue
            }
            guard let pfn = readSwapCacheAsync(mm, entry) else { continue }
            frames[pfn].pointee.flags.insert(.locked)
            locked.append(pfn)
            if page == fpfn { result = pfn } else {
                frames[pfn].pointee.flags.insert(.readahead)
                counters.add(.swapRa, 1)
            }
        }
        // swap_vma_readahead()'s final __read_swap_cache_async() of the target: found in the
        // swap cache, or read now if it could not be read in the window.
        if let r = result, swapCacheLookup(e) == r { return r }
        return swapCacheLookup(e) ?? readSwapCacheAsync(mm, e)
    }

    /// __read_swap_cache_async() + swap_read_folio(): a new folio charged to `mm`'s memcg
    /// (mem_cgroup_swapin_charge_folio()), cached at the slot, its refault checked against
    /// the slot's shadow, put on the LRU, and read (pswpin, pgpgin; reads complete at once).
    func readSwapCacheAsync(_ mm: MM, _ e: SwapEntry) -> PFN? {
        guard let si = swap.areas[e.type], si.map[e.offset] & ~SwapInfo.hasCache > 0,
              si.map[e.offset] & SwapInfo.hasCache == 0 else { return nil }
        guard let pfn = allocator.allocPages(.highuserMovable) else { return nil }
        let p = frames[pfn]
        let owner = Int(si.cgroup[e.offset])
        guard memcgCharge(owner != 0 ? owner : mm.memcg, p) == .ok else {
            allocator.freePages(pfn)
            return nil
        }
        p.pointee.flags.insert([.swapbacked, .uptodate])
        p.pointee.content = si.data[e.offset]                        // swap_read_folio()
        // mem_cgroup_swapin_uncharge_swap(): on v1 the folio's new memsw charge replaces the
        // slot's; v2 keeps the swap charge until the slot is freed.
        if owner != 0 && memcg.v1 {
            memcgUnchargeSwap(owner, 1)
            si.cgroup[e.offset] = 0
        }
        si.map[e.offset] |= SwapInfo.hasCache
        if let shadow = swapCacheAdd(pfn, p, e) { workingsetRefault(p, shadow: shadow) }
        folioAddLRU(pfn, p)
        counters.add(.pswpin, 1)
        counters.add(.pgpgin, 4)
        return pfn
    }

    /// try_to_unuse() for swapoff: every swap PTE of the area is faulted back in (as
    /// unuse_pte() does), then the swap cache of the area is emptied.
    func tryToUnuse(_ si: SwapInfo) throws(Errno) {
        for t in tasks where t.state != .dead && t.threadGroupLeader == nil {
            guard let mm = t.mm else { continue }
            var i = 0
            while i < mm.vmas.count {
                let v = mm.vmas[i]
                var a = v.start
                while a < v.end {
                    if let s = mm.pageTable.slot(VirtAddr(a), level: .pte), let d = SoftEntry.decodeSwap(s.pointee, arch: arch),
                       d.type == si.type {
                        do { try doSwapPage(t, mm, i, VirtAddr(a), s, d, write: false) }
                        catch { throw .ENOMEM }
                        t.majFlt &-= 1
                        t.minFlt &+= 1
                    }
                    a += Page.size
                }
                i += 1
            }
        }
        for s in 1..<si.pages where si.table[s] & 1 == 1 {
            let p = frames[PFN(si.table[s] >> 1)]
            if p.pointee.flags.contains(.writeback) { completeWrites() }
            swapCacheDelete(p, shadow: nil)
            p.pointee.flags.insert(.dirty)
        }
    }
}
