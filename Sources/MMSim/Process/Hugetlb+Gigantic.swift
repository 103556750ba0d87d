// mm/page_alloc.c (alloc_contig_pages(), alloc_contig_range(), __alloc_contig_migrate_range()),
// mm/page_isolation.c (start_isolate_page_range(), has_unmovable_pages(), test_pages_isolated(),
// undo_isolate_page_range()) and mm/compaction.c (isolate_migratepages_range(),
// isolate_freepages_range()): a contiguous range for a gigantic HugeTLB page, or the pages of a
// memory block going offline, cleared by migrating its pages through the rmap (migrateFolio()).

/// Why alloc_contig_range() could not clear a range (the errno it returns).
enum ContigRangeError: Error, Equatable {
    /// -EBUSY: this frame can be neither moved nor freed (unmovable, pinned, still in use).
    case busy(PFN)
    /// -ENOMEM: no frame to migrate a page to.
    case noMemory
}

/// Who clears the range: alloc_contig_range() isolates pages with the compaction scanners
/// (counted in compact_isolated); offline_pages() with do_migrate_range() (not counted).
enum ContigRangeMode {
    case allocContig, memoryOffline
}

extension Machine {
    /// Tries of one batch of folios before __alloc_contig_migrate_range() gives up with -EBUSY.
    static let contigMigrateTries = 5

    /// alloc_contig_pages(): `nrPages` contiguous frames aligned to `nrPages`. Zones from the
    /// highest the GFP mask allows down; in each, the aligned ranges from the lowest PFN, and for
    /// the first range pfn_range_valid_contig() accepts, alloc_contig_range(), which migrates its
    /// in-use pages away; a range it cannot clear is left and the next one tried. Returns the
    /// range's first PFN with every frame allocated (order 0, one reference); nil when no range
    /// could be cleared.
    func allocContigPages(nrPages: UInt64, gfp: GFP) -> PFN? {
        guard nrPages > 0 else { return nil }
        var zi = gfp.highestZone.rawValue
        while zi >= 0 {
            let zone = zones[zi]
            zi -= 1
            guard zone.isPopulated else { continue }
            var start = (zone.startPFN + nrPages - 1) / nrPages * nrPages
            while start + nrPages <= zone.endPFN {      // zone_spans_last_pfn()
                if pfnRangeValidContig(zone, start, nrPages),
                   case .success = allocContigRange(zone, start, start + nrPages, mode: .allocContig) {
                    return PFN(start)
                }
                start += nrPages
            }
        }
        return nil
    }

    /// pfn_range_valid_contig(): every frame of [start, start+n) is online memory of `zone`, not
    /// PG_reserved and not part of a HugeTLB folio. In-use pages are allowed: they may move.
    /// (Offline and hwpoisoned frames, both isolated in the model, make the range invalid.)
    func pfnRangeValidContig(_ zone: Zone, _ start: UInt64, _ n: UInt64) -> Bool {
        var pfn = start
        let end = start + n
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            guard let p = frames.peek(PFN(pfn)), zones[Int(p.pointee.zone)] === zone else { return false }
            switch p.pointee.state {
            case .pristine, .hole, .reserved, .isolated:
                return false
            case .allocated where p.pointee.flags.contains(.hugetlb):
                // A HugeTLB folio in an aligned range starts inside it: its head is seen first.
                return false
            default:
                pfn += 1
            }
        }
        return true
    }

    /// alloc_contig_range(): isolate the pageblocks of [start, end) (start_isolate_page_range()),
    /// drain the per-CPU lists, migrate every in-use page away (__alloc_contig_migrate_range()),
    /// check that every frame is now free (test_pages_isolated()), take them all
    /// (isolate_freepages_range(): allocated, order 0, one reference each) and give the
    /// pageblocks their migrate types back (undo_isolate_page_range()). On failure the pages
    /// already migrated stay where they went and the range's free pages go back to the free lists.
    func allocContigRange(_ zone: Zone, _ start: UInt64, _ end: UInt64, mode: ContigRangeMode) -> Result<Void, ContigRangeError> {
        let saved: [MigrateType]
        switch startIsolatePageRange(zone, start, end) {
        case .success(let s): saved = s
        case .failure(let e): return .failure(e)
        }
        defer { undoIsolatePageRange(zone, start, end, saved) }
        allocator.drainPages()
        if case .failure(let e) = allocContigMigrateRange(zone, start, end, mode: mode), e == .noMemory {
            return .failure(e)
        }
        if let busy = testPagesIsolated(zone, start, end) { return .failure(.busy(busy)) }
        // isolate_freepages_range(): the whole range leaves the (isolated) free lists.
        allocator.isolateFreeRange(zone, start, end)
        for q in start..<end {
            let f = frames[PFN(q)]
            f.pointee.state = .allocated
            f.pointee.order = 0
            f.pointee.refcount = 1
            f.pointee.flags = []
            f.pointee.mapcount = 0
        }
        if mode == .allocContig { counters.add(.compactIsolated, Int64(end - start)) }
        return .success(())
    }

    /// start_isolate_page_range(): each pageblock of [start, end) (pageblock aligned) becomes
    /// MIGRATE_ISOLATE with its free blocks moved to the isolate lists (set_migratetype_isolate(),
    /// move_freepages_block_isolate()), unless has_unmovable_pages() finds a page that cannot
    /// move or the block is already isolated: -EBUSY, the blocks done so far restored. Returns
    /// the migrate type each pageblock had (the kernel keeps it beside the isolate bit).
    func startIsolatePageRange(_ zone: Zone, _ start: UInt64, _ end: UInt64) -> Result<[MigrateType], ContigRangeError> {
        let pb = PageOrder.pageblock.pages
        precondition(start % pb == 0 && end % pb == 0, "isolating a range that is not pageblock aligned")
        var saved: [MigrateType] = []
        var block = start
        while block < end {
            let old = allocator.pageblockMigratetype(PFN(block))
            let unmovable = old == .isolate ? block : hasUnmovablePages(zone, block, block + pb)
            if let bad = unmovable {
                undoIsolatePageRange(zone, start, block, saved)
                return .failure(.busy(PFN(bad)))
            }
            // A virgin MAX_PAGE_ORDER block joins the movable free list so that it can move.
            if zone.virgin.contains(block) {
                let v = block & ~(VirginBlocks.blockPages - 1)
                zone.virgin.remove(block: v)
                zone.nrFree[PageOrder.max.raw] -= 1
                allocator.accountFreeBlocks(zone, -Int64(VirginBlocks.blockPages))
                allocator.addToFreeList(zone, PFN(v), order: PageOrder.max.raw, .movable, tail: false)
            }
            allocator.moveFreepagesBlock(zone, PFN(block), from: old, to: .isolate)
            allocator.setPageblockMigratetype(PFN(block), .isolate)
            saved.append(old)
            block += pb
        }
        return .success(saved)
    }

    /// undo_isolate_page_range(): the pageblocks of [start, end) get back the types in `saved`,
    /// their free blocks with them (unset_migratetype_isolate()).
    func undoIsolatePageRange(_ zone: Zone, _ start: UInt64, _ end: UInt64, _ saved: [MigrateType]) {
        let pb = PageOrder.pageblock.pages
        for (i, mt) in saved.enumerated() where start + UInt64(i) * pb < end {
            let block = PFN(start + UInt64(i) * pb)
            allocator.moveFreepagesBlock(zone, block, from: .isolate, to: mt)
            allocator.setPageblockMigratetype(block, mt)
        }
    }

    /// has_unmovable_pages(): the first frame of [start, end) in use by something that cannot
    /// migrate: PG_reserved, a page table, a hwpoisoned or offline frame, a HugeTLB folio (its
    /// migration is not modelled), any other page off the LRU (kernel allocations). Free frames
    /// and LRU folios pass; in ZONE_MOVABLE every non-reserved page is taken for movable. Pins
    /// are not seen here: they make the migration fail.
    func hasUnmovablePages(_ zone: Zone, _ start: UInt64, _ end: UInt64) -> UInt64? {
        var pfn = start
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            let p = frames[PFN(pfn)]
            switch p.pointee.state {
            case .reserved:
                return pfn
            case .buddy:
                pfn += UInt64(1) << UInt64(p.pointee.order)
                continue
            case .buddyTail, .pcp:
                pfn += 1
                continue
            default:
                break
            }
            if zone.type == .movable {
                pfn += 1
                continue
            }
            switch p.pointee.state {
            case .allocated, .allocatedTail:
                let (head, order) = folioHead(PFN(pfn))
                let h = frames[head].pointee
                if h.flags.contains(.hugetlb) { return pfn }
                if order > 0 || h.refcount > 0 {
                    if !h.flags.contains(.lru) { return pfn }
                }
                pfn = head.raw + (UInt64(1) << UInt64(order))
            default:
                return pfn
            }
        }
        return nil
    }

    /// __alloc_contig_migrate_range(): every in-use folio of [start, end), lowest first, isolated
    /// (isolate_migratepages_range(), counted in compact_isolated) and migrated (migrate_pages()
    /// with MIGRATE_SYNC, MR_CONTIG_RANGE: migrateFolio(), pgmigrate_success/fail). A folio that
    /// keeps failing is tried 5 times, then -EBUSY and the rest of the range is left; -ENOMEM
    /// stops at once. An anonymous folio with more references than mappings (a pin) is not
    /// isolated at all: it stays, and test_pages_isolated() finds it.
    ///
    /// Not modelled: reclaim_clean_pages_from_list(), which drops clean page-cache pages of the
    /// batch instead of migrating them (here they migrate like dirty ones), and the batches of 32.
    func allocContigMigrateRange(_ zone: Zone, _ start: UInt64, _ end: UInt64, mode: ContigRangeMode) -> Result<Void, ContigRangeError> {
        var pfn = start
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            let p = frames[PFN(pfn)]
            switch p.pointee.state {
            case .buddy:
                pfn += UInt64(1) << UInt64(p.pointee.order)
                continue
            case .allocated, .allocatedTail:
                break
            default:
                pfn += 1
                continue
            }
            let (head, order) = folioHead(PFN(pfn))
            let h = frames[head].pointee
            pfn = max(pfn + 1, head.raw + (UInt64(1) << UInt64(order)))
            guard h.refcount > 0, h.flags.contains(.lru), !h.flags.contains(.hugetlb) else { continue }
            if PageMapping.isAnon(h.mapping) && Int(h.refcount) > folioMapcount(head) { continue }
            if mode == .allocContig { counters.add(.compactIsolated, Int64(1) << Int64(order)) }
            var tries = 0
            while true {
                switch migrateFolio(head) {
                case .success:
                    break
                case .failure(.noMemory):
                    return .failure(.noMemory)
                case .failure:
                    tries += 1
                    if tries < Machine.contigMigrateTries { continue }
                    return .failure(.busy(head))
                }
                break
            }
        }
        return .success(())
    }

    /// test_pages_isolated(): the first frame of [start, end) that is not free in the buddy
    /// allocator (after the drain nothing free is left on a per-CPU list), or nil.
    func testPagesIsolated(_ zone: Zone, _ start: UInt64, _ end: UInt64) -> PFN? {
        var pfn = start
        while pfn < end {
            if zone.virgin.contains(pfn) {
                pfn = (pfn | (VirginBlocks.blockPages - 1)) + 1
                continue
            }
            let p = frames[PFN(pfn)]
            switch p.pointee.state {
            case .buddy: pfn += UInt64(1) << UInt64(p.pointee.order)
            case .buddyTail: pfn += 1
            default: return PFN(pfn)
            }
        }
        return nil
    }
}

