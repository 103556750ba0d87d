// CONFIG_DEBUG_VM for memory pressure: LRU lists and lru_add batches, swap counts and the swap cache, memcg charges.

extension Machine {
    /// Checks the invariants of the reclaim state (run by `checkInvariants()`):
    /// - LRU: every folio with PG_lru is on exactly one list, the one its flags choose
    ///   (folio_lru_list()), of its memcg's lruvec on its node, well linked; list lengths equal
    ///   the lruvec's sizes and folio counts, and their sums the node and zone LRU counters;
    /// - lru_add batches: a batched folio has `.lruBatched` and no PG_lru, is in one batch once,
    ///   and every folio marked batched is in one; every user folio (mapped, in the page cache
    ///   or the swap cache) is on a list or in a batch;
    /// - swap: each slot's swap_map count equals the swap PTEs referring to it, SWAP_HAS_CACHE is
    ///   set exactly when the swap table holds a folio, and that folio has PG_swapcache and the
    ///   slot in `priv`; a free slot holds no shadow and no owner; inuse_pages counts the slots
    ///   in use; nr_swapcached counts the swap-cache pages; MM_SWAPENTS of every mm equals its
    ///   swap PTEs;
    /// - memcg: a group's memory usage is the pages charged to it, its stock, and its children's
    ///   usage; MEMCG_SWAP (and v1's memsw beyond memory) is the swap slots the subtree owns
    ///   whose folio is no longer charged in memory.
    public func checkReclaim() throws {
        var onList: [UInt64: (memcg: Int, node: Int, lru: LRUList)] = [:]
        try checkLRULists(&onList)
        let batched = try checkLRUBatches()
        var charged = [Int64](repeating: 0, count: memcg.groups.count)
        let swapCache = try checkFramesForReclaim(onList, batched, &charged)
        try checkSwapSlots(swapCache)
        try checkMemcgCharges(charged)
    }

    /// The lists of every lruvec, walked from the head.
    private func checkLRULists(_ onList: inout [UInt64: (memcg: Int, node: Int, lru: LRUList)]) throws {
        var nodeSum = [Int64](repeating: 0, count: LRUList.allCases.count)
        var zoneSum = [[Int64]](repeating: [Int64](repeating: 0, count: LRUList.allCases.count), count: zones.count)
        for g in memcg.groups {
            for lv in g.lruvecs {
                for l in LRUList.allCases {
                    let where_ = "the \(l.name) list of memcg \(g.id) ('\(g.path)') node \(lv.node)"
                    var pages: Int64 = 0, folios: Int64 = 0
                    var prev = FrameTable.nil
                    var cur = lv.head(l.rawValue)
                    while cur != FrameTable.nil {
                        let pfn = UInt64(cur)
                        guard pfn < frames.endPFN, let p = frames.peek(PFN(pfn)) else {
                            throw VMBug(rule: "lru-list-linkage", detail: "\(where_) links to pfn \(pfn), which has no struct page")
                        }
                        let f = p.pointee.flags
                        guard p.pointee.state == .allocated, f.contains(.lru), !f.contains(.lruBatched) else {
                            throw VMBug(rule: "lru-flag", detail: "pfn \(pfn) on \(where_) has state \(p.pointee.state), PG_lru \(f.contains(.lru)), batched \(f.contains(.lruBatched)) (expected an allocated folio with PG_lru, not batched)")
                        }
                        guard p.pointee.prev == prev else {
                            throw VMBug(rule: "lru-list-linkage", detail: "pfn \(pfn) on \(where_) has prev \(p.pointee.prev) but follows \(prev)")
                        }
                        let chosen = folioLRUList(p)
                        guard chosen == l else {
                            throw VMBug(rule: "lru-list-choice", detail: "pfn \(pfn) is on \(where_) but its flags choose \(chosen.name)")
                        }
                        let node = Int(p.pointee.zone) / ZoneType.perNode
                        guard folioMemcg(p) == g.id, node == lv.node else {
                            throw VMBug(rule: "lru-lruvec", detail: "pfn \(pfn) is on \(where_) but belongs to memcg \(folioMemcg(p)) node \(node)")
                        }
                        // Flags choose one list of one lruvec, and a folio reached twice on one
                        // list breaks the prev links: a second visit is a linkage error.
                        if onList.updateValue((g.id, lv.node, l), forKey: pfn) != nil {
                            throw VMBug(rule: "lru-list-linkage", detail: "pfn \(pfn) is reached twice (again on \(where_))")
                        }
                        let n = folioPages(p)
                        pages += n
                        folios += 1
                        zoneSum[Int(p.pointee.zone)][l.rawValue] += n
                        prev = cur
                        cur = p.pointee.next
                    }
                    guard prev == lv.tailPFN(l.rawValue) else {
                        throw VMBug(rule: "lru-list-linkage", detail: "\(where_) ends at \(prev) but its tail is \(lv.tailPFN(l.rawValue))")
                    }
                    guard pages == lv.size(l), folios == lv.folioCount(l) else {
                        throw VMBug(rule: "lru-size", detail: "\(where_) holds \(folios) folios, \(pages) pages but records \(lv.folioCount(l)) folios, \(lv.size(l)) pages")
                    }
                    nodeSum[l.rawValue] += pages
                }
            }
        }
        for l in LRUList.allCases {
            guard nodeSum[l.rawValue] == counters[l.nodeStat] else {
                throw VMBug(rule: "lru-node-counter", detail: "\(l.nodeStat.name) = \(counters[l.nodeStat]) but the \(l.name) lists of every lruvec hold \(nodeSum[l.rawValue]) pages")
            }
            for z in zones where z.stats[l.zoneStat.rawValue] != zoneSum[z.index][l.rawValue] {
                throw VMBug(rule: "lru-zone-counter", detail: "\(z.name) \(l.zoneStat.name) = \(z.stats[l.zoneStat.rawValue]) but its folios on \(l.name) lists hold \(zoneSum[z.index][l.rawValue]) pages")
            }
        }
    }

    /// Every CPU's lru_add batch. Returns the batched PFNs.
    private func checkLRUBatches() throws -> Set<UInt64> {
        var batched = Set<UInt64>()
        for c in 0..<cpuCount {
            let n = fbatches.counts[c]
            guard n >= 0, n < FolioBatches.size else {
                throw VMBug(rule: "lru-batch-count", detail: "cpu \(c)'s lru_add batch holds \(n) folios (a batch drains at \(FolioBatches.size))")
            }
            for i in 0..<n {
                let pfn = UInt64(fbatches.slots[c * FolioBatches.size + i])
                guard pfn < frames.endPFN, let p = frames.peek(PFN(pfn)), p.pointee.state == .allocated else {
                    throw VMBug(rule: "lru-batch-flag", detail: "cpu \(c)'s lru_add batch slot \(i) holds pfn \(pfn), which is not an allocated folio")
                }
                guard p.pointee.flags.contains(.lruBatched), !p.pointee.flags.contains(.lru) else {
                    throw VMBug(rule: "lru-batch-flag", detail: "pfn \(pfn) in cpu \(c)'s lru_add batch has batched \(p.pointee.flags.contains(.lruBatched)), PG_lru \(p.pointee.flags.contains(.lru)) (expected batched, no PG_lru)")
                }
                // (A folio on a list has PG_lru: the flag test above keeps it out of batches.)
                guard batched.insert(pfn).inserted else {
                    throw VMBug(rule: "lru-batch-twice", detail: "pfn \(pfn) is in lru_add batches twice (again in cpu \(c)'s, slot \(i))")
                }
            }
        }
        return batched
    }

    /// One pass over the frames: PG_lru and batched folios were found on a list or in a batch,
    /// user folios are on one of them, swap-cache folios are where their slot says, charges.
    /// Returns the swap-cache folios (PFN -> entry).
    private func checkFramesForReclaim(_ onList: [UInt64: (memcg: Int, node: Int, lru: LRUList)], _ batched: Set<UInt64>,
                                       _ charged: inout [Int64]) throws -> [UInt64: UInt64] {
        var swapCache: [UInt64: UInt64] = [:]
        var swapCachePages: Int64 = 0
        for s in 0..<frames.sectionCount where frames.isMaterialized(section: s) {
            let first = UInt64(s) << FrameTable.sectionShift
            let end = min(first + UInt64(FrameTable.framesPerSection), frames.endPFN)
            var pfn = first
            while pfn < end {
                let p = frames[PFN(pfn)]
                guard p.pointee.state == .allocated else { pfn += 1; continue }
                let f = p.pointee.flags
                let n = folioPages(p)
                defer { pfn += UInt64(n) }
                if f.contains(.hugetlb) || PFN(pfn) == zeroPage || PFN(pfn) == hugeZeroPFN { continue }
                if f.contains(.lru) && onList[pfn] == nil {
                    throw VMBug(rule: "lru-unreachable", detail: "pfn \(pfn) has PG_lru but is on no list (its flags choose \(folioLRUList(p).name) of memcg \(folioMemcg(p)))")
                }
                if f.contains(.lruBatched) && !batched.contains(pfn) {
                    throw VMBug(rule: "lru-batch-lost", detail: "pfn \(pfn) is marked batched but is in no lru_add batch")
                }
                let user = p.pointee.mapping != 0 || f.contains(.swapcache)
                if user && !f.contains(.lru) && !f.contains(.lruBatched) {
                    throw VMBug(rule: "lru-lost-folio", detail: "pfn \(pfn) (mapping \(String(p.pointee.mapping, radix: 16)), mapcount \(p.pointee.mapcount), swapcache \(f.contains(.swapcache))) is a user folio on no LRU list and in no batch")
                }
                if f.contains(.swapcache) {
                    swapCache[pfn] = p.pointee.priv
                    swapCachePages += n
                }
                if f.contains(.memcgCharged) {
                    let id = Int(p.pointee.spare)
                    guard id > 0, id < charged.count else {
                        throw VMBug(rule: "memcg-charge-id", detail: "pfn \(pfn) is charged to memcg \(id), which does not exist (or is the root)")
                    }
                    charged[id] += n
                }
            }
        }
        guard swapCachePages == counters[.nrSwapcached] else {
            throw VMBug(rule: "nr-swapcached", detail: "nr_swapcached = \(counters[.nrSwapcached]) but \(swapCachePages) pages have PG_swapcache")
        }
        return swapCache
    }

    /// swap_map, the swap table and the swap PTEs of every mm.
    private func checkSwapSlots(_ swapCache: [UInt64: UInt64]) throws {
        var ptes: [UInt64: Int] = [:]
        for mm in liveMMs() {
            var n: Int64 = 0
            for v in mm.vmas {
                mm.pageTable.forEachEntry(start: VirtAddr(v.start), end: VirtAddr(v.end)) { _, level, slot in
                    guard level == .pte, let e = SoftEntry.decodeSwap(slot.pointee, arch: arch) else { return }
                    ptes[e.packed, default: 0] += 1
                    n += 1
                }
            }
            guard n == mm.rss[RSSCounter.swapEnts.rawValue] else {
                throw VMBug(rule: "mm-swapents", detail: "mm of \(tasks.first { $0.mm === mm }.map { "\($0.name) (pid \($0.pid))" } ?? "?") has MM_SWAPENTS \(mm.rss[RSSCounter.swapEnts.rawValue]) but \(n) swap PTEs")
            }
        }
        for key in ptes.keys.sorted() {
            let e = SwapEntry(packed: key)
            guard e.type < swap.areas.count, let si = swap.areas[e.type], e.offset > 0, e.offset < si.pages,
                  si.map[e.offset] & ~SwapInfo.hasCache > 0 else {
                throw VMBug(rule: "swap-pte-dangling", detail: "\(ptes[key]!) swap PTEs refer to type \(e.type) slot \(e.offset), which is not in use")
            }
        }
        var cached = Set<UInt64>()
        for case let si? in swap.areas {
            var inuse = 0
            for s in 1..<si.pages {
                let m = si.map[s], t = si.table[s]
                let slot = "swap type \(si.type) slot \(s)"
                if m == 0 {
                    guard t == 0, si.cgroup[s] == 0 else {
                        throw VMBug(rule: "swap-free-slot", detail: "\(slot) is free but its swap table holds \(String(t, radix: 16)) and its owner is memcg \(si.cgroup[s])")
                    }
                    continue
                }
                inuse += 1
                let count = Int(m & ~SwapInfo.hasCache)
                let refs = ptes[SwapEntry(type: si.type, offset: s).packed] ?? 0
                guard count == refs else {
                    throw VMBug(rule: "swap-map-count", detail: "\(slot) has swap_map count \(count) but \(refs) swap PTEs refer to it")
                }
                let hasCache = m & SwapInfo.hasCache != 0, holdsFolio = t & 1 == 1
                guard hasCache == holdsFolio else {
                    throw VMBug(rule: "swap-has-cache", detail: "\(slot) has SWAP_HAS_CACHE \(hasCache) but its swap table holds \(holdsFolio ? "folio \(t >> 1)" : t == 0 ? "nothing" : "shadow \(String(t >> 1, radix: 16))")")
                }
                if holdsFolio {
                    let pfn = t >> 1
                    guard swapCache[pfn] == SwapEntry(type: si.type, offset: s).packed else {
                        let state = frames.peek(PFN(pfn)).map { "state \($0.pointee.state), PG_swapcache \($0.pointee.flags.contains(.swapcache)), priv \(String($0.pointee.priv, radix: 16))" } ?? "no struct page"
                        throw VMBug(rule: "swap-cache-folio", detail: "\(slot)'s swap table holds folio \(pfn), which has \(state)")
                    }
                    cached.insert(pfn)
                }
            }
            guard inuse == si.inuse else {
                throw VMBug(rule: "swap-inuse", detail: "swap type \(si.type) ('\(si.name)') has inuse_pages \(si.inuse) but \(inuse) slots in use")
            }
        }
        for pfn in swapCache.keys.sorted() where !cached.contains(pfn) {
            let e = SwapEntry(packed: swapCache[pfn]!)
            throw VMBug(rule: "swap-cache-folio", detail: "pfn \(pfn) has PG_swapcache for type \(e.type) slot \(e.offset), whose swap table does not hold it")
        }
    }

    /// Swap slots whose memsw/swap charge belongs to each memcg (by id, local): owned per
    /// swap_cgroup and not held by a folio still charged in memory.
    func memcgSwapSlots() -> [Int64] {
        var owned = [Int64](repeating: 0, count: memcg.groups.count)
        for case let si? in swap.areas {
            for s in 1..<si.pages where si.map[s] != 0 && si.cgroup[s] != 0 {
                let t = si.table[s]
                if t & 1 == 1, let p = frames.peek(PFN(t >> 1)), p.pointee.flags.contains(.memcgCharged) { continue }
                let id = Int(si.cgroup[s])
                if id < owned.count { owned[id] += 1 }
            }
        }
        return owned
    }

    /// Page counters against the charges that back them.
    private func checkMemcgCharges(_ charged: [Int64]) throws {
        let swapLocal = memcgSwapSlots()
        // Post-order sums over the whole hierarchy (offline groups still hold what they hold).
        var usageSum = [Int64](repeating: 0, count: memcg.groups.count)
        // Page tables are charged to the group of the mm they belong to (kmem).
        var tables = [Int64](repeating: 0, count: memcg.groups.count)
        var seen = Set<ObjectIdentifier>()
        for t in tasks where t.state != .dead {
            guard let mm = t.mm, seen.insert(ObjectIdentifier(mm)).inserted else { continue }
            tables[mm.memcg] += Int64(mm.pageTable.counts.total)
        }
        var swapSum = [Int64](repeating: 0, count: memcg.groups.count)
        for g in memcg.groups.reversed() where g.id != 0 {
            let stock = stockPages(g.id)
            let kids = g.children.reduce(Int64(0)) { $0 + memcg.groups[$1].memory.usage }
            swapSum[g.id] += swapLocal[g.id]
            if let p = g.parent { swapSum[p] += swapSum[g.id] }
            usageSum[g.id] = charged[g.id] + stock + kids + tables[g.id]
            guard g.memory.usage == usageSum[g.id] else {
                throw VMBug(rule: "memcg-usage", detail: "memcg \(g.id) ('\(g.path)') has memory usage \(g.memory.usage) pages but \(charged[g.id]) are charged to its folios, \(stock) are in stocks, \(tables[g.id]) are its mms' page tables and its children use \(kids)")
            }
            guard g.swapPages == swapSum[g.id] else {
                throw VMBug(rule: "memcg-swap", detail: "memcg \(g.id) ('\(g.path)') counts \(g.swapPages) swap pages (MEMCG_SWAP) but its subtree owns \(swapSum[g.id]) swap slots")
            }
            if memcg.v1 {
                guard g.memsw.usage == g.memory.usage + swapSum[g.id] else {
                    throw VMBug(rule: "memcg-memsw", detail: "memcg \(g.id) ('\(g.path)') has memsw usage \(g.memsw.usage) pages but memory \(g.memory.usage) + swap \(swapSum[g.id]) = \(g.memory.usage + swapSum[g.id])")
                }
            }
        }
    }
}
