// mm/vmscan.c (classic LRU, CONFIG_LRU_GEN off): scanning the LRU lists, aging, swapping out and dropping folios, limit reclaim, direct reclaim and kswapd.

/// Constants of mm/vmscan.c and the reclaim retry loops.
public enum MemcgReclaim {
    /// SWAP_CLUSTER_MAX
    public static let clusterMax: Int64 = 32
    /// DEF_PRIORITY
    public static let defPriority = 12
    /// MAX_RECLAIM_RETRIES
    public static let maxRetries = 16
    /// MAX_SWAPPINESS
    public static let maxSwappiness: UInt64 = 200
}

/// struct scan_control: one reclaim invocation.
struct ScanControl {
    var nrToReclaim: Int64
    var gfp: GFP
    /// The memcg whose limit is being enforced (cgroup_reclaim()); nil for global reclaim.
    var target: Int?
    var priority = MemcgReclaim.defPriority
    var mayWritepage = true
    var mayUnmap = true
    var maySwap = true
    var kswapd = false
    /// memory.reclaim (MEMCG_RECLAIM_PROACTIVE): counted as pgscan/pgsteal_proactive.
    var proactive = false
    var mayDeactivate: (anon: Bool, file: Bool) = (false, false)
    var forceDeactivate = false
    var skippedDeactivate = false
    var cacheTrimMode = false
    var fileIsTiny = false
    var anonCost: UInt64 = 0
    var fileCost: UInt64 = 0
    var nrScanned: Int64 = 0
    var nrReclaimed: Int64 = 0
    var cgroupReclaim: Bool { target != nil }
}

/// shrink_folio_list()'s tallies (struct reclaim_stat).
struct ReclaimStat {
    var nrPageout: Int64 = 0
    /// Dirty folios not under writeback (nr_unqueued_dirty).
    var nrUnqueuedDirty: Int64 = 0
    var nrActivate: (anon: Int64, file: Int64) = (0, 0)
    var nrImmediate: Int64 = 0
}

extension Machine {
    // MARK: Entry points

    /// try_to_free_mem_cgroup_pages(): limit reclaim of a memcg's subtree, at least
    /// SWAP_CLUSTER_MAX pages. Counted in pgscan_anon/file and pgsteal_anon/file and the
    /// memcg's own events, not in pgscan_direct/pgsteal_direct or pgrefill.
    @discardableResult
    func tryToFreeMemCgroupPages(_ g: MemCgroup, _ nrPages: Int64, gfp: GFP, maySwap: Bool, proactive: Bool = false) -> Int64 {
        var sc = ScanControl(nrToReclaim: max(nrPages, MemcgReclaim.clusterMax), gfp: gfp, target: g.id)
        sc.maySwap = maySwap
        sc.proactive = proactive
        return doTryToFreePages(&sc)
    }

    /// try_to_free_pages(): direct reclaim by an allocating task (allocstall, pgscan_direct).
    @discardableResult
    func tryToFreePages(gfp: GFP, order: Int) -> Int64 {
        var sc = ScanControl(nrToReclaim: MemcgReclaim.clusterMax, gfp: gfp, target: nil)
        counters.add(gfp.highestZoneIndex >= 2 ? .allocstallNormal : .allocstallDma32, 1)
        return doTryToFreePages(&sc)
    }

    /// do_try_to_free_pages(): shrink the zones at falling priority until enough is reclaimed;
    /// when active lists were skipped, once more with deactivation forced.
    func doTryToFreePages(_ sc: inout ScanControl) -> Int64 {
        lruAddDrain()
        while true {
            repeat {
                sc.nrScanned = 0
                for node in 0..<allocator.nodeCount { shrinkNode(node, &sc) }
                completeWrites()
                if sc.nrReclaimed >= sc.nrToReclaim { break }
                sc.priority -= 1
            } while sc.priority >= 0
            if sc.nrReclaimed > 0 { return sc.nrReclaimed }
            if sc.skippedDeactivate && !sc.forceDeactivate {
                sc.priority = MemcgReclaim.defPriority
                sc.forceDeactivate = true
                sc.skippedDeactivate = false
                continue
            }
            return sc.nrReclaimed
        }
    }

    // MARK: shrink_node

    /// The target lruvec's statistic (lruvec_page_state()): the node's for global reclaim,
    /// the memcg subtree's for limit reclaim.
    func targetLRUSize(_ sc: ScanControl, _ node: Int, _ l: LRUList) -> Int64 {
        guard let t = sc.target else { return counters[l.nodeStat] }
        return memcg.subtree(t).reduce(0) { $0 + memcg.groups[$1].lruvecs[node].size(l) }
    }

    func targetStat(_ sc: ScanControl, _ s: VMStat) -> Int64 {
        guard let t = sc.target else { return counters[s] }
        return memcg.subtree(t).reduce(0) { $0 + memcg.groups[$1].stat(s) }
    }

    /// inactive_is_low(): the inactive list is smaller than active / inactive_ratio
    /// (sqrt(10 * size in GiB), at least 1).
    func inactiveIsLow(inactive: Int64, active: Int64) -> Bool {
        let gb = (inactive + active) >> (30 - Int64(Page.shift))
        let ratio: Int64 = gb > 0 ? Int64(Double(10 * gb).squareRoot()) : 1
        return inactive * ratio < active
    }

    /// shrink_node(): prepare_scan_control() (the target's cost balance, whether active
    /// lists may be deactivated, cache trim mode, file_is_tiny), then shrink_node_memcgs():
    /// every memcg of the target's subtree in pre-order.
    func shrinkNode(_ node: Int, _ sc: inout ScanControl) {
        let targetID = sc.target ?? 0
        let tl = memcg.groups[targetID].lruvecs[node]
        sc.anonCost = tl.anonCost
        sc.fileCost = tl.fileCost
        if !sc.forceDeactivate {
            let ra = targetStat(sc, .workingsetActivateAnon), rf = targetStat(sc, .workingsetActivateFile)
            sc.mayDeactivate.anon = ra != tl.refaultsSeen.anon
                || inactiveIsLow(inactive: targetLRUSize(sc, node, .inactiveAnon), active: targetLRUSize(sc, node, .activeAnon))
            sc.mayDeactivate.file = rf != tl.refaultsSeen.file
                || inactiveIsLow(inactive: targetLRUSize(sc, node, .inactiveFile), active: targetLRUSize(sc, node, .activeFile))
        } else {
            sc.mayDeactivate = (true, true)
        }
        let file = targetLRUSize(sc, node, .inactiveFile)
        sc.cacheTrimMode = (file >> Int64(sc.priority)) > 0 && !sc.mayDeactivate.file
        sc.fileIsTiny = false
        if !sc.cgroupReclaim {
            let free = allocator.zones.filter { $0.node == node }.reduce(Int64(0)) { $0 + $1.freePages }
            let high = allocator.zones.filter { $0.node == node }.reduce(Int64(0)) { $0 + Int64($1.watermarks[Watermark.high.rawValue]) }
            let fileAll = counters[.nrActiveFile] + counters[.nrInactiveFile]
            let anonInactive = counters[.nrInactiveAnon]
            sc.fileIsTiny = fileAll + free <= high && !(anonInactive >> Int64(sc.priority) == 0)
        }
        for id in memcg.subtree(targetID) {
            shrinkLruvec(memcg.groups[id].lruvecs[node], &sc)
        }
        // snapshot_refaults()
        tl.refaultsSeen = (targetStat(sc, .workingsetActivateAnon), targetStat(sc, .workingsetActivateFile))
    }

    /// can_reclaim_anon_pages(): swap space the reclaim may use.
    func canReclaimAnon(_ memcgID: Int, _ sc: ScanControl) -> Bool {
        sc.target == nil ? swap.freePages > 0 : swapPagesAvailable(for: memcgID) > 0
    }

    /// get_scan_count(): how many pages of each evictable list to scan at this priority.
    func getScanCount(_ lv: LRUVec, _ sc: ScanControl) -> [Int64] {
        enum Balance { case equal, fract, file, anon }
        let g = memcg.groups[lv.memcg]
        let swappiness = UInt64(lv.memcg == 0 ? vmSwappiness : g.swappiness)
        var balance = Balance.fract
        var fraction: (UInt64, UInt64) = (0, 0)
        var denominator: UInt64 = 1
        if !sc.maySwap || !canReclaimAnon(lv.memcg, sc) { balance = .file }
        else if sc.cgroupReclaim && swappiness == 0 { balance = .file }
        else if sc.priority == 0 && swappiness > 0 { balance = .equal }
        else if sc.fileIsTiny { balance = .anon }
        else if sc.cacheTrimMode { balance = .file }
        else {
            var total = sc.anonCost + sc.fileCost
            let anonCost = total + sc.anonCost
            let fileCost = total + sc.fileCost
            total = anonCost + fileCost
            let ap = swappiness * (total + 1) / (anonCost + 1)
            let fp = (MemcgReclaim.maxSwappiness - swappiness) * (total + 1) / (fileCost + 1)
            fraction = (ap, fp)
            denominator = ap + fp
        }
        var nr = [Int64](repeating: 0, count: 4)
        for l in 0..<4 {
            let lru = LRUList(rawValue: l)!
            let size = lv.size(lru)
            var scan = size >> Int64(sc.priority)
            if scan == 0 && !g.online { scan = min(size, MemcgReclaim.clusterMax) }
            switch balance {
            case .equal: break
            case .fract:
                let f = lru.isFile ? fraction.1 : fraction.0
                let prod = UInt64(scan) * f
                scan = Int64(g.online ? prod / denominator : (prod + denominator - 1) / denominator)
            case .file: if !lru.isFile { scan = 0 }
            case .anon: if lru.isFile { scan = 0 }
            }
            nr[l] = scan
        }
        return nr
    }

    /// shrink_lruvec(): scan the lists in SWAP_CLUSTER_MAX batches in the proportions
    /// get_scan_count() chose; once enough is reclaimed (kswapd and limit reclaim), stop the
    /// smaller type and scale the other down; finally rebalance the anon lists.
    func shrinkLruvec(_ lv: LRUVec, _ sc: inout ScanControl) {
        var nr = getScanCount(lv, sc)
        let targets = nr
        let proportional = !sc.cgroupReclaim && !sc.kswapd && sc.priority == MemcgReclaim.defPriority
        var reclaimed: Int64 = 0
        let toReclaim = sc.nrToReclaim - sc.nrReclaimed
        while nr[0] > 0 || nr[2] > 0 || nr[3] > 0 {
            for l in 0..<4 where nr[l] > 0 {
                let n = min(nr[l], MemcgReclaim.clusterMax)
                nr[l] -= n
                reclaimed += shrinkList(LRUList(rawValue: l)!, n, lv, &sc)
            }
            if reclaimed < toReclaim || proportional { continue }
            let nrFile = nr[2] + nr[3], nrAnon = nr[0] + nr[1]
            if nrFile == 0 || nrAnon == 0 { break }
            var lru: Int, percentage: Int64
            if nrFile > nrAnon {
                lru = 0
                percentage = nrAnon * 100 / (targets[0] + targets[1] + 1)
            } else {
                lru = 2
                percentage = nrFile * 100 / (targets[2] + targets[3] + 1)
            }
            nr[lru] = 0
            nr[lru + 1] = 0
            lru = lru == 2 ? 0 : 2
            for k in [lru, lru + 1] {
                let scanned = targets[k] - nr[k]
                nr[k] = targets[k] * (100 - percentage) / 100
                nr[k] -= min(nr[k], scanned)
            }
        }
        sc.nrReclaimed += reclaimed
        if canReclaimAnon(lv.memcg, sc) && inactiveIsLow(inactive: lv.size(.inactiveAnon), active: lv.size(.activeAnon)) {
            shrinkActiveList(MemcgReclaim.clusterMax, lv, &sc, .activeAnon)
        }
    }

    /// shrink_list(): active lists are aged only when deactivation is allowed for their type.
    func shrinkList(_ lru: LRUList, _ n: Int64, _ lv: LRUVec, _ sc: inout ScanControl) -> Int64 {
        if lru.isActive {
            if lru.isFile ? sc.mayDeactivate.file : sc.mayDeactivate.anon {
                shrinkActiveList(n, lv, &sc, lru)
            } else {
                sc.skippedDeactivate = true
            }
            return 0
        }
        return shrinkInactiveList(n, lv, &sc, lru)
    }

    /// isolate_lru_folios(): up to `n` pages' worth of folios from the tail of a list, oldest
    /// first, taken off it. Returns them and the pages scanned.
    func isolateLRUFolios(_ n: Int64, _ lv: LRUVec, _ lru: LRUList) -> (folios: [PFN], scanned: Int64) {
        var out: [PFN] = []
        var scanned: Int64 = 0, taken: Int64 = 0
        while scanned < n && taken < n, let pfn = lv.tail(lru) {
            let p = frames[pfn]
            let np = folioPages(p)
            scanned += np
            lruvecDel(lv, pfn, p)
            taken += np
            out.append(pfn)
        }
        return (out, scanned)
    }

    /// move_folios_to_lru(): isolated folios back at the head of the lists their flags choose,
    /// in order; active ones age the workingset clock. Returns the pages moved.
    @discardableResult
    func moveFoliosToLRU(_ lv: LRUVec, _ list: [PFN]) -> Int64 {
        var moved: Int64 = 0
        for pfn in list {
            let p = frames[pfn]
            lruAdd(pfn, p)
            let n = folioPages(p)
            moved += n
            if p.pointee.flags.contains(.active) { workingsetAge(lv, n) }
        }
        return moved
    }

    /// shrink_active_list(): age folios off the active list. Referenced executable file
    /// folios get another trip; every other folio goes inactive with PG_workingset
    /// (pgdeactivate); pgrefill counts the scan (only outside limit reclaim).
    func shrinkActiveList(_ n: Int64, _ lv: LRUVec, _ sc: inout ScanControl, _ lru: LRUList) {
        lruAddDrain()
        let (hold, scanned) = isolateLRUFolios(n, lv, lru)
        if !sc.cgroupReclaim { counters.add(.pgrefill, scanned) }
        memcg.d(lv.memcg).pointee.stats[VMStat.pgrefill.rawValue] &+= scanned
        var active: [PFN] = [], inactive: [PFN] = []
        var rotated: Int64 = 0
        for pfn in hold {
            let p = frames[pfn]
            if p.pointee.flags.contains(.mlocked) || p.pointee.flags.contains(.unevictable) {
                inactive.append(pfn)
                continue
            }
            let r = folioReferenced(pfn)
            if r.referenced > 0 && r.vmFlags.contains(.exec) && !p.pointee.flags.contains(.swapbacked) {
                rotated += folioPages(p)
                active.append(pfn)
                continue
            }
            p.pointee.flags.remove(.active)
            p.pointee.flags.insert(.workingset)
            inactive.append(pfn)
        }
        moveFoliosToLRU(lv, active)
        let deactivated = moveFoliosToLRU(lv, inactive)
        counters.add(.pgdeactivate, deactivated)
        memcg.d(lv.memcg).pointee.stats[VMStat.pgdeactivate.rawValue] &+= deactivated
        lruNoteCost(lv, file: lru.isFile, UInt64(rotated))
    }

    /// shrink_inactive_list(): isolate a batch from the tail, shrink_folio_list() it, put the
    /// survivors back; pgscan/pgsteal by type always, by reclaimer (kswapd/direct) only
    /// outside limit reclaim; the cost of what was written and rotated is noted.
    func shrinkInactiveList(_ n: Int64, _ lv: LRUVec, _ sc: inout ScanControl, _ lru: LRUList) -> Int64 {
        lruAddDrain()
        let (list, scanned) = isolateLRUFolios(n, lv, lru)
        let g = memcg.groups[lv.memcg]
        // reclaimer_offset(): kswapd, direct, or proactive.
        let scanItem: VMStat = sc.kswapd ? .pgscanKswapd : sc.proactive ? .pgscanProactive : .pgscanDirect
        if !sc.cgroupReclaim { counters.add(scanItem, scanned) }
        g.addEvent(scanItem, scanned)
        counters.add(lru.isFile ? .pgscanFile : .pgscanAnon, scanned)
        g.addEvent(lru.isFile ? .pgscanFile : .pgscanAnon, scanned)
        sc.nrScanned += scanned
        guard !list.isEmpty else { return 0 }
        var stat = ReclaimStat()
        let (kept, reclaimed) = shrinkFolioList(list, lv, &sc, &stat)
        moveFoliosToLRU(lv, kept)
        // Only dirty file folios not queued for I/O: nudge the flushers.
        if stat.nrUnqueuedDirty == Int64(list.count) { wakeupFlusherThreads() }
        // The I/O model: the batch's writes complete before the next batch is isolated (the
        // disk outpaces the scan), so their folios rotate to the tail and the next batch
        // finds them clean.
        completeWrites()
        let stealItem: VMStat = sc.kswapd ? .pgstealKswapd : sc.proactive ? .pgstealProactive : .pgstealDirect
        if !sc.cgroupReclaim { counters.add(stealItem, reclaimed) }
        g.addEvent(stealItem, reclaimed)
        counters.add(lru.isFile ? .pgstealFile : .pgstealAnon, reclaimed)
        g.addEvent(lru.isFile ? .pgstealFile : .pgstealAnon, reclaimed)
        // lru_note_cost(): each page written costs SWAP_CLUSTER_MAX, each one rotated 1.
        lruNoteCost(lv, file: lru.isFile, UInt64(stat.nrPageout * MemcgReclaim.clusterMax + scanned - reclaimed))
        return reclaimed
    }

    /// folio_check_references(): what the rmap's accessed bits and PG_referenced say.
    enum FolioReferences { case activate, keep, reclaim, reclaimClean }

    func folioCheckReferences(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) -> FolioReferences {
        // folio_test_clear_referenced() reads the flag as it was before the rmap walk (the
        // model's folioReferenced() sets it for a young PTE).
        let wasReferenced = p.pointee.flags.contains(.referenced)
        let r = folioReferenced(pfn)
        p.pointee.flags.remove(.referenced)
        if r.vmFlags.contains(.locked) { return .activate }
        let file = !p.pointee.flags.contains(.swapbacked)
        if r.referenced > 0 {
            p.pointee.flags.insert(.referenced)
            if wasReferenced || r.referenced > 1 { return .activate }
            if r.vmFlags.contains(.exec) && file { return .activate }
            return .keep
        }
        if wasReferenced && file { return .reclaimClean }
        return .reclaim
    }

    /// shrink_folio_list(): decide each isolated folio's fate. Returns the folios to put back
    /// and the pages freed.
    func shrinkFolioList(_ list: [PFN], _ lv: LRUVec, _ sc: inout ScanControl, _ stat: inout ReclaimStat,
                         ignoreReferences: Bool = false) -> ([PFN], Int64) {
        var keep: [PFN] = []
        var freed: Int64 = 0
        for pfn in list {
            let p = frames[pfn]
            let n = folioPages(p)
            func activate() {
                if p.pointee.flags.contains(.swapcache) && p.pointee.flags.contains(.mlocked) { folioFreeSwap(p) }
                if !p.pointee.flags.contains(.mlocked) {
                    p.pointee.flags.insert(.active)
                    if p.pointee.flags.contains(.swapbacked) { stat.nrActivate.anon += n } else { stat.nrActivate.file += n }
                    modFolioEvent(p, .pgactivate, n)
                    counters.add(.pgactivate, n)
                }
                keep.append(pfn)
            }
            // folio_trylock() fails on a folio under I/O: it goes back untouched.
            if p.pointee.flags.contains(.locked) { keep.append(pfn); continue }
            if p.pointee.flags.contains(.mlocked) || p.pointee.flags.contains(.unevictable) { keep.append(pfn); continue }
            if !sc.mayUnmap && p.pointee.mapcount > 0 { keep.append(pfn); continue }
            // Large folios and shmem are not split or swapped by the model's reclaim yet.
            let anon = PageMapping.isAnon(p.pointee.mapping)
            let shmem = p.pointee.mapping & PageMapping.shmemTag != 0
            if p.pointee.order > 0 || shmem { activate(); continue }
            if p.pointee.flags.contains(.writeback) {
                // Case 2 (PG_reclaim not yet set, or writeback throttling sane) marks it and
                // moves on; case 3 (legacy memcg reclaim) waits for the write to finish.
                if sc.cgroupReclaim && memcg.v1 && p.pointee.flags.contains(.reclaim) {
                    completeWrites()
                } else {
                    p.pointee.flags.insert(.reclaim)
                    activate()
                    continue
                }
            }
            // folio_check_dirty_writeback()
            if p.pointee.flags.contains(.dirty) && !p.pointee.flags.contains(.writeback) && !p.pointee.flags.contains(.swapbacked) {
                stat.nrUnqueuedDirty += n
            }
            let refs = ignoreReferences ? FolioReferences.reclaim : folioCheckReferences(pfn, p)
            switch refs {
            case .activate: activate(); continue
            case .keep: keep.append(pfn); continue
            case .reclaim, .reclaimClean: break
            }
            if anon && p.pointee.flags.contains(.swapbacked) && !p.pointee.flags.contains(.swapcache) {
                guard sc.maySwap, let e = allocSwapSlot(memcg: folioMemcg(p)) else { activate(); continue }
                p.pointee.refcount += 1          // the swap cache's reference
                swapCacheAdd(pfn, p, e)
                p.pointee.flags.insert(.dirty)
            }
            if p.pointee.mapcount > 0 {
                guard reclaimUnmap(pfn, p) else { activate(); continue }
            }
            if p.pointee.flags.contains(.dirty) {
                if !p.pointee.flags.contains(.swapbacked) {
                    // Only kswapd writes file folios, and only ones seen dirty before.
                    if !sc.kswapd || !p.pointee.flags.contains(.reclaim) {
                        modFolioStat(p, .nrVmscanImmediateReclaim, n)
                        p.pointee.flags.insert(.reclaim)
                        activate()
                        continue
                    }
                }
                if refs == .reclaimClean || !sc.mayWritepage { keep.append(pfn); continue }
                // pageout(): PG_reclaim, the write submitted, nr_vmscan_write.
                p.pointee.flags.insert(.reclaim)
                if p.pointee.flags.contains(.swapbacked) { swapWriteout(pfn, p) } else { fileWriteout(pfn, p) }
                modFolioStat(p, .nrVmscanWrite, n)
                stat.nrPageout += n
                keep.append(pfn)
                continue
            }
            guard removeMapping(pfn, p) else { keep.append(pfn); continue }
            freed += n
        }
        return (keep, freed)
    }

    /// try_to_unmap() for reclaim: every PTE mapping the folio is cleared (an anonymous one
    /// becomes its swap entry, swap_duplicate()); false if a locked VMA keeps it mapped.
    func reclaimUnmap(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) -> Bool {
        let anon = PageMapping.isAnon(p.pointee.mapping)
        guard anon else { return tryToUnmap(pfn) }
        let e = SwapEntry(packed: p.pointee.priv)
        rmapWalk(pfn) { h in
            let v = h.mm.vmas[h.vmaIndex]
            if v.flags.contains(.locked) { return false }
            guard let l = PTEFormat.decode(h.slot.pointee, level: .pte, arch: arch) else { return true }
            if l.dirty { p.pointee.flags.insert(.dirty) }
            swapDuplicate(e)
            unmapPTE(h, pfn, l, anon: true, replacement: SoftEntry.swapPTE(e, arch: arch))
            h.mm.addRSS(.swapEnts, 1)
            putPage(pfn, p)
            return true
        }
        return p.pointee.mapcount == 0
    }

    /// __remove_mapping(): an unmapped, clean folio nobody else holds leaves the swap cache or
    /// the page cache, leaving a workingset shadow (workingset_eviction()), and is freed;
    /// a swap-cache folio's charge moves to its swap slot (mem_cgroup_swapout()).
    func removeMapping(_ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) -> Bool {
        guard p.pointee.refcount == 1, p.pointee.mapcount == 0 else { return false }
        let shadow = workingsetEviction(p)
        if p.pointee.flags.contains(.swapcache) {
            // __remove_mapping(): out of the swap cache (NR_SWAPCACHE, the memcg's too), the
            // charge to the slot (memcg1_swapout()) while PTEs still refer to it.
            let e = SwapEntry(packed: p.pointee.priv)
            swapCacheDelete(p, shadow: shadow)
            if let si = swap.areas[e.type], si.map[e.offset] != 0 { memcgSwapout(p, e) } else { memcgUncharge(p) }
        } else if p.pointee.mapping & PageMapping.fileTag != 0 {
            let f = files[Int(p.pointee.mapping & PageMapping.handleMask)]
            let i = Int(p.pointee.index)
            guard i < f.cache.count, f.cache[i] == pfn else { return false }
            f.cache[i] = nil
            f.shadows[i] = shadow
            modFolioStat(p, .nrFilePages, -1)
            memcgUncharge(p)
        } else {
            memcgUncharge(p)
        }
        p.pointee.mapping = 0
        p.pointee.flags.remove([.active, .referenced, .workingset, .swapbacked, .dirty])
        allocator.freePages(pfn, p, order: 0)
        return true
    }

    /// count_memcg_folio_events()
    @inline(__always) func modFolioEvent(_ p: UnsafeMutablePointer<PageMeta>, _ s: VMStat, _ n: Int64) {
        if p.pointee.flags.contains(.memcgCharged) { memcg.d(Int(p.pointee.spare)).pointee.stats[s.rawValue] &+= n }
    }

    // MARK: Global reclaim

    /// The allocator's slow path could not find a page (__alloc_pages_slowpath()): wake
    /// kswapd, which balances the node to the high watermark at once (the model's kswapd runs
    /// synchronously), then direct reclaim while it makes progress (should_reclaim_retry(),
    /// MAX_RECLAIM_RETRIES). Returns true when the caller should try the freelists again.
    func allocSlowpathReclaim(gfp: GFP, order: Int, attempt: Int) -> Bool {
        // Nothing on any LRU list or batch to reclaim: skip the reclaim paths (the model
        // counts no stall for a machine with no user pages, e.g. the allocator's own tests).
        let lru = counters[.nrInactiveFile] + counters[.nrActiveFile] + counters[.nrInactiveAnon] + counters[.nrActiveAnon]
        if lru == 0 && (0..<cpuCount).allSatisfy({ fbatches.counts[$0] == 0 }) { return false }
        if attempt == 0 && gfp.contains(.kswapdReclaim) {
            kswapdBalance(order: order)
            return true
        }
        guard gfp.contains(.directReclaim), attempt <= MemcgReclaim.maxRetries else { return false }
        let got = tryToFreePages(gfp: gfp, order: order)
        return got > 0
    }

    /// balance_pgdat(): kswapd reclaims until every zone is above its high watermark
    /// (pageoutrun, pgscan_kswapd/pgsteal_kswapd), at falling priority.
    func kswapdBalance(order: Int) {
        counters.add(.pageoutrun, 1)
        func balanced() -> Bool {
            allocator.zones.allSatisfy { z in
                z.managedPages == 0 || z.freePages > Int64(z.watermarks[Watermark.high.rawValue])
            }
        }
        if balanced() { return }
        var sc = ScanControl(nrToReclaim: 0, gfp: .kernel, target: nil)
        sc.kswapd = true
        lruAddDrainAll()
        while sc.priority >= 0 && !balanced() {
            let need = allocator.zones.reduce(Int64(0)) { $0 + max(0, Int64($1.watermarks[Watermark.high.rawValue]) - $1.freePages) }
            sc.nrToReclaim = max(MemcgReclaim.clusterMax, need)
            let before = sc.nrReclaimed
            for node in 0..<allocator.nodeCount { shrinkNode(node, &sc) }
            completeWrites()
            if sc.nrReclaimed == before { sc.priority -= 1 }
        }
    }
}


extension Machine {
    /// madvise_cold_or_pageout_pte_range(): every present page mapped only here has its
    /// accessed bit and PG_referenced cleared; MADV_COLD deactivates it (lru_deactivate()),
    /// MADV_PAGEOUT isolates it and reclaim_pages() runs shrink_folio_list() on the batch
    /// ignoring references (an anonymous page is added to swap and written out; it stays in
    /// the swap cache until its write completes and reclaim finds it again).
    func madviseColdOrPageout(_ mm: MM, _ start: UInt64, _ end: UInt64, pageout: Bool) {
        lruAddDrain()
        var isolated: [PFN] = []
        var a = start
        while a < end {
            if let slot = mm.pageTable.slot(VirtAddr(a), level: .pte),
               var leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), leaf.present,
               !(leaf.special && leaf.pfn == zeroPage) {
                let p = frames[leaf.pfn]
                if p.pointee.order == 0 && p.pointee.mapcount == 1 {
                    if leaf.accessed {
                        leaf.accessed = false
                        slot.pointee = PTEFormat.encode(leaf, arch: arch)
                        flushTLBMMRange(mm, start: a, end: a + Page.size, strideShift: Page.shift, freedTables: false)
                    }
                    p.pointee.flags.remove(.referenced)
                    if pageout {
                        if p.pointee.flags.contains(.lru) && !p.pointee.flags.contains(.unevictable) {
                            lruvecDel(folioLruvec(p), leaf.pfn, p)
                            isolated.append(leaf.pfn)
                        }
                    } else if p.pointee.flags.contains(.lru) && p.pointee.flags.contains(.active) {
                        let lv = folioLruvec(p)
                        lruvecDel(lv, leaf.pfn, p)
                        p.pointee.flags.remove(.active)
                        lruvecAdd(lv, leaf.pfn, p)
                        counters.add(.pgdeactivate, 1)
                        memcg.groups[lv.memcg].addEvent(.pgdeactivate, 1)
                    }
                }
            }
            a += Page.size
        }
        guard !isolated.isEmpty else { return }
        // reclaim_pages() -> reclaim_folio_list(): may_writepage, may_unmap, may_swap,
        // no_demotion; references ignored; survivors go back (move_folios_to_lru()).
        var sc = ScanControl(nrToReclaim: Int64.max, gfp: .kernel, target: nil)
        var stat = ReclaimStat()
        let (kept, _) = shrinkFolioList(isolated, memcg.groups[0].lruvecs[0], &sc, &stat, ignoreReferences: true)
        for pfn in kept { lruAdd(pfn, frames[pfn]) }
        completeWrites()
    }
}
