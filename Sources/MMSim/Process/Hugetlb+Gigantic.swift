// mm/page_alloc.c (alloc_contig_pages(), alloc_contig_range()) and mm/migrate.c for gigantic
// HugeTLB pages: a 1 GiB range holding movable anonymous pages is cleared by migrating them.

extension Machine {
    /// alloc_contig_pages() when no range is wholly free: the first aligned range of the zone
    /// (highest zone first) whose frames are all free or movable anonymous pages
    /// (pfn_range_valid_contig()), cleared by alloc_contig_range(): its free blocks isolated,
    /// its pages migrated (__alloc_contig_migrate_range()). Returns the range's first PFN with
    /// every frame allocated (order 0, one reference), as allocContigPages() does; nil when no
    /// range qualifies or a migration target cannot be allocated.
    ///
    /// The model has no rmap walk yet: a page's mappings are found by walking the page tables
    /// of every live address space once (a page is movable only if all its mappings are found).
    func allocContigMigrating(nrPages: UInt64, gfp: GFP) -> PFN? {
        allocator.drainPages()
        var zi = gfp.highestZone.rawValue
        while zi >= 0 {
            let zone = zones[zi]
            zi -= 1
            guard zone.isPopulated, zone.freePages >= Int64(nrPages) + Int64(zone.watermark(.min)) else { continue }
            var start = (zone.startPFN + nrPages - 1) & ~(nrPages - 1)
            while start + nrPages <= zone.endPFN {
                defer { start += nrPages }
                guard let movable = contigMovablePages(zone, start, nrPages) else { continue }
                if let pfn = clearContigRange(zone, start, nrPages, movable) { return pfn }
                return nil
            }
        }
        return nil
    }

    /// pfn_range_valid_contig() + the isolation scan: the in-use pages of [start, start+n) if every
    /// other frame is free and every in-use one is a movable anonymous page (order 0, on the LRU,
    /// swap-backed, mapped); nil otherwise.
    func contigMovablePages(_ zone: Zone, _ start: UInt64, _ n: UInt64) -> [PFN]? {
        var movable: [PFN] = []
        var pfn = start
        let end = start + n
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            guard let p = frames.peek(PFN(pfn)) else { return nil }
            switch p.pointee.state {
            case .buddy, .buddyTail, .pcp:
                break
            case .allocated where p.pointee.order == 0 && p.pointee.mapcount > 0 && p.pointee.table == nil
                && p.pointee.flags.isSuperset(of: [.lru, .swapbacked]) && !p.pointee.flags.contains(.hugetlb):
                movable.append(PFN(pfn))
            default:
                return nil
            }
            pfn += 1
        }
        return movable
    }

    /// alloc_contig_range() for a range contigMovablePages() accepted: find every mapping of its
    /// pages, isolate its free blocks, migrate each page (a new page, the contents and the struct
    /// page state copied, every PTE rewritten and flushed: migrate_pages(), counted in
    /// pgmigrate_success), then own the whole range.
    func clearContigRange(_ zone: Zone, _ start: UInt64, _ n: UInt64, _ movable: [PFN]) -> PFN? {
        let end = start + n
        // The mappings of the pages in the range (what rmap_walk() would find).
        var maps: [UInt64: [(MM, UInt64)]] = [:]
        var seen: [ObjectIdentifier] = []
        if !movable.isEmpty {
            for t in tasks where t.state == .running {
                guard let mm = t.mm, !seen.contains(ObjectIdentifier(mm)) else { continue }
                seen.append(ObjectIdentifier(mm))
                for v in mm.vmas where v.isAnonymous && !v.flags.contains(.hugetlb) {
                    mm.pageTable.forEachEntry(start: VirtAddr(v.start), end: VirtAddr(v.end)) { va, level, slot in
                        guard level == .pte, let l = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), l.present || l.protNone,
                              l.pfn.raw >= start, l.pfn.raw < end else { return }
                        maps[l.pfn.raw, default: []].append((mm, va.raw))
                    }
                }
            }
            for p in movable where maps[p.raw]?.count != Int(frames[p].pointee.mapcount) { return nil }
        }
        // start_isolate_page_range(): the free runs of the range leave the free lists.
        var pfn = start
        while pfn < end {
            if zone.virgin.contains(pfn) || frames[PFN(pfn)].pointee.state != .allocated {
                var e = pfn
                while e < end {
                    if zone.virgin.contains(e) {
                        e = (e | (VirginBlocks.blockPages - 1)) + 1
                        continue
                    }
                    if frames[PFN(e)].pointee.state == .allocated { break }
                    e += 1
                }
                allocator.isolateFreeRange(zone, pfn, min(e, end))
                for q in pfn..<min(e, end) {
                    let f = frames[PFN(q)]
                    f.pointee.state = .allocated
                    f.pointee.order = 0
                    f.pointee.refcount = 1
                    f.pointee.flags = []
                    f.pointee.mapcount = 0
                }
                pfn = e
            } else {
                pfn += 1
            }
        }
        // migrate_pages(): each page to a new home outside the range (its free frames are ours now).
        var migrated = 0
        for old in movable {
            guard let new = allocator.allocPages([.highuserMovable, .noWarn]) else {
                // The migrated pages stay moved; the range is given back.
                for q in start..<end where frames[PFN(q)].pointee.mapcount == 0 { allocator.freePages(PFN(q)) }
                counters.add(.pgmigrateSuccess, Int64(migrated))
                return nil
            }
            let o = frames[old], d = frames[new]
            let zoneFrom = allocator.zone(of: old), zoneTo = allocator.zone(of: new)
            if o.pointee.flags.contains(.mlocked) && zoneFrom !== zoneTo {
                zoneFrom.stats[VMStat.nrMlock.rawValue] -= 1
                zoneTo.stats[VMStat.nrMlock.rawValue] += 1
            }
            d.pointee.flags = o.pointee.flags
            d.pointee.refcount = o.pointee.refcount
            d.pointee.mapcount = o.pointee.mapcount
            d.pointee.mapping = o.pointee.mapping
            d.pointee.index = o.pointee.index
            d.pointee.priv = o.pointee.priv
            d.pointee.content = o.pointee.content
            for (mm, va) in maps[old.raw] ?? [] {
                guard let slot = mm.pageTable.slot(VirtAddr(va), level: .pte), var l = PTEFormat.decode(slot.pointee, level: .pte, arch: arch) else { continue }
                l.pfn = new
                slot.pointee = PTEFormat.encode(l, arch: arch)
                flushTLBMMRange(mm, start: va, end: va + Page.size, strideShift: Page.shift, freedTables: false)
            }
            o.pointee.flags = []
            o.pointee.mapcount = 0
            o.pointee.refcount = 1
            o.pointee.mapping = 0
            o.pointee.priv = 0
            migrated += 1
        }
        counters.add(.pgmigrateSuccess, Int64(migrated))
        counters.add(.compactIsolated, Int64(movable.count))
        return PFN(start)
    }
}
