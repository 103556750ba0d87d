// mm/migrate.c: move a folio to another frame: unmap it everywhere behind migration
// entries (try_to_migrate()), copy it, then point every entry at the new frame
// (remove_migration_ptes()).

/// Why a folio did not migrate (the errno migrate_pages() would see).
public enum MigrateError: Error, Sendable, Hashable {
    /// -EBUSY: not a movable folio (kernel memory, page tables, the zero page).
    case notMovable
    /// -EAGAIN: someone else holds a reference (a pin, a pending gather) or the folio is large.
    case busy
    /// -ENOMEM: no frame to move it to.
    case noMemory
}

extension Machine {
    /// Bits of a migration entry's offset above the PFN: the accessed and dirty bits of the
    /// PTE it replaced (SWP_MIG_YOUNG_BIT, SWP_MIG_DIRTY_BIT; x86-64 has room for them).
    static let migYoungBit: UInt64 = 1 << 46
    static let migDirtyBit: UInt64 = 1 << 47
    static let migPFNMask: UInt64 = (1 << 46) - 1

    /// migrate_folio_unmap() + move_to_new_folio() + remove_migration_ptes() for one order-0
    /// folio (anonymous, page cache or shmem): every PTE mapping it becomes a migration
    /// entry and the TLB entry goes (ptep_clear_flush()), the content, flags, mapping and
    /// page-cache slot move to a new frame, then every
    /// migration entry becomes a PTE of the new frame with the old rights, accessed and
    /// dirty bits (anon-exclusive pages stay exclusive). pgmigrate_success, or
    /// pgmigrate_fail on failure. Returns the new frame. With `toNode` the new frame comes
    /// from that node only (alloc_migration_target() with __GFP_THISNODE, as move_pages(2)
    /// and migrate_pages(2) ask); without it from anywhere, the current CPU's node first.
    @discardableResult
    public func migrateFolio(_ src: PFN, toNode: Int? = nil) -> Result<PFN, MigrateError> {
        let (head, order) = folioHead(src)
        let p = frames[head]
        // migrate_prep(): lru_add_drain_all() so that a new folio is on its list.
        if p.pointee.flags.contains(.lruBatched) { lruAddDrainAll() }
        guard p.pointee.state == .allocated, p.pointee.mapping != 0, p.pointee.flags.contains(.lru),
              head != zeroPage, head != hugeZeroPFN else {
            counters.add(.pgmigrateFail, 1)
            return .failure(.notMovable)
        }
        if order > 0 {
            // A PMD-sized anonymous THP moves whole, behind PMD migration entries
            // (thp_migration_supported() on x86-64 and arm64); other large folios are not modelled.
            guard order == PageOrder.pmd.raw, p.pointee.flags.contains(.head), PageMapping.isAnon(p.pointee.mapping) else {
                counters.add(.pgmigrateFail, Int64(1) << Int64(order))
                return .failure(.busy)
            }
            return migrateHugeFolio(head, toNode: toNode)
        }
        let anon = PageMapping.isAnon(p.pointee.mapping)
        let cache = cacheSlot(head)
        // folio_expected_ref_count(): one per mapping plus the page cache's; anything else
        // is a pin or a transient reference and makes the move fail (folio_migrate_mapping()).
        let expected = p.pointee.mapcount + (cache != nil ? 1 : 0)
        guard p.pointee.refcount == expected else {
            counters.add(.pgmigrateFail, 1)
            return .failure(.busy)
        }
        guard let dst = allocator.allocPages(toNode == nil ? .highuserMovable : [.highuserMovable, .thisNode], node: toNode ?? -1) else {
            counters.add(.pgmigrateFail, 1)
            return .failure(.noMemory)
        }
        // try_to_migrate(): migration entries everywhere, the rmap dropped with each.
        let refsBefore = p.pointee.refcount
        var unmapped: Int32 = 0
        rmapWalk(head) { h in
            guard h.level == .pte, let l = PTEFormat.decode(h.slot.pointee, level: .pte, arch: arch) else { return true }
            let exclusive = anon && p.pointee.flags.contains(.anonExclusive)
            let type: SoftEntryType = l.writable ? .migrationWrite : exclusive ? .migrationReadExclusive : .migrationRead
            var off = head.raw
            if l.accessed { off |= Machine.migYoungBit }
            if l.dirty { off |= Machine.migDirtyBit }
            h.slot.pointee = SoftEntry.make(type, offset: off, arch: arch)
            flushTLBMMRange(h.mm, start: h.address, end: h.address + Page.size, strideShift: Page.shift, freedTables: false)
            if l.dirty && !anon { markFileDirty(head) }
            p.pointee.mapcount -= 1
            if p.pointee.mapcount == 0 {
                counters.add(anon ? .nrAnonPages : .nrMapped, -1)
            }
            p.pointee.refcount -= 1
            unmapped += 1
            return true
        }
        // move_to_new_folio(): content, flags, mapping, index; the page-cache slot.
        let d = frames[dst]
        let carried: PageFlags = [.uptodate, .dirty, .swapbacked, .referenced, .active, .workingset, .lru,
                                  .mlocked, .unevictable]
        d.pointee.content = p.pointee.content
        // folio_isolate_lru() of the old folio; the new one takes its list, flags and memcg.
        lruvecDel(folioLruvec(p), head, p)
        d.pointee.flags = p.pointee.flags.intersection(carried.union(.memcgCharged)).subtracting(.lru)
        d.pointee.spare = p.pointee.spare
        lruvecAdd(folioLruvec(d), dst, d)
        d.pointee.mapping = p.pointee.mapping
        d.pointee.index = p.pointee.index
        d.pointee.refcount = refsBefore - unmapped     // the page cache's reference moves too
        d.pointee.mapcount = 0
        if let c = cache { setCacheSlot(c, dst) }
        moveZoneStats(from: head, to: dst, p.pointee.flags)
        // remove_migration_ptes(): walk the same anon_vma or i_mmap for the entries.
        rmapForEachVMA(dst) { id in
            guard let (mm, i, addr) = vmaAddress(id, pgoff: d.pointee.index),
                  let slot = mm.pageTable.slot(VirtAddr(addr), level: .pte),
                  let e = SoftEntry.decode(slot.pointee, arch: arch), e.type != .hwpoison,
                  e.offset & Machine.migPFNMask == head.raw else { return true }
            rmap.locks.acquire(.pageTableLock)
            defer { rmap.locks.release(.pageTableLock) }
            let v = mm.vmas[i]
            slot.pointee = PTEFormat.encode(LeafEntry(pfn: dst, writable: e.type == .migrationWrite, user: true,
                                                      accessed: e.offset & Machine.migYoungBit != 0,
                                                      dirty: e.offset & Machine.migDirtyBit != 0,
                                                      noExec: !v.flags.contains(.exec)), arch: arch)
            d.pointee.mapcount += 1
            d.pointee.refcount += 1
            if d.pointee.mapcount == 1 { counters.add(anon ? .nrAnonPages : .nrMapped, 1) }
            if anon && e.type != .migrationRead { d.pointee.flags.insert(.anonExclusive) }
            return true
        }
        // The old folio: no mapping, no LRU place (the new one took it), freed.
        p.pointee.flags = []
        p.pointee.mapping = 0
        p.pointee.mapcount = 0
        p.pointee.refcount = 1
        allocator.freePages(head)
        counters.add(.pgmigrateSuccess, 1)
        return .success(dst)
    }

    /// migrate_folio() of a PMD-mapped anonymous THP: set_pmd_migration_entry() in every
    /// mapping (the deposited page table stays), the 512 pages copied to a new PMD-sized
    /// folio, remove_migration_pmd() maps it back with the old rights. pgmigrate_success
    /// counts 512 pages, thp_migration_success one folio.
    func migrateHugeFolio(_ head: PFN, toNode: Int? = nil) -> Result<PFN, MigrateError> {
        let n = Int64(PageOrder.pmd.pages)
        let p = frames[head]
        guard p.pointee.refcount == largeMapcount(head), largeMapcount(head) == entireMapcount(head) else {
            counters.add(.pgmigrateFail, n)
            counters.add(.thpMigrationFail, 1)
            return .failure(.busy)
        }
        guard let dst = allocator.allocPages(toNode == nil ? [.highuserMovable, .comp, .noWarn] : [.highuserMovable, .comp, .noWarn, .thisNode],
                                             order: PageOrder.pmd.raw, node: toNode ?? -1) else {
            counters.add(.pgmigrateFail, n)
            counters.add(.thpMigrationFail, 1)
            return .failure(.noMemory)
        }
        let exclusive = p.pointee.flags.contains(.anonExclusive)
        rmapWalk(head) { h in
            guard h.level == .pmd, let l = PTEFormat.decode(h.slot.pointee, level: .pmd, arch: arch) else { return true }
            let type: SoftEntryType = l.writable ? .migrationWrite : exclusive ? .migrationReadExclusive : .migrationRead
            var off = head.raw
            if l.accessed { off |= Machine.migYoungBit }
            if l.dirty { off |= Machine.migDirtyBit }
            h.slot.pointee = SoftEntry.make(type, offset: off, arch: arch)
            flushTLBMMRange(h.mm, start: h.address, end: h.address + PageTableLevel.pmd.entrySpan,
                          strideShift: PageTableLevel.pmd.shift, freedTables: false)
            addLargeMapcount(head, entire: -1, large: -1)
            if entireMapcount(head) == 0 {
                counters.add(.nrAnonPages, -n)
                counters.add(.nrAnonTransparentHugepages, -n)
            }
            p.pointee.refcount -= 1
            return true
        }
        let d = frames[dst]
        for i in 0..<PageOrder.pmd.pages { frames[dst + i].pointee.content = frames[head + i].pointee.content }
        lruvecDel(folioLruvec(p), head, p)
        d.pointee.flags = p.pointee.flags.intersection([.uptodate, .dirty, .swapbacked, .referenced, .active, .workingset,
                                                        .mlocked, .unevictable, .memcgCharged]).union(.head)
        d.pointee.spare = p.pointee.spare
        d.pointee.mapping = p.pointee.mapping
        d.pointee.index = p.pointee.index
        d.pointee.refcount = 0
        d.pointee.mapcount = 0
        frames[dst + 1].pointee.mapcount = 0
        frames[dst + 1].pointee.spare = 0
        lruvecAdd(folioLruvec(d), dst, d)
        rmapForEachVMA(dst) { id in
            guard let (mm, i, addr) = vmaAddress(id, pgoff: d.pointee.index),
                  let slot = mm.pageTable.slot(VirtAddr(addr), level: .pmd),
                  let e = SoftEntry.decode(slot.pointee, arch: arch), e.type != .hwpoison,
                  e.offset & Machine.migPFNMask == head.raw else { return true }
            rmap.locks.acquire(.pageTableLock)
            defer { rmap.locks.release(.pageTableLock) }
            slot.pointee = PTEFormat.encode(LeafEntry(pfn: dst, size: .size2M, writable: e.type == .migrationWrite, user: true,
                                                      accessed: e.offset & Machine.migYoungBit != 0,
                                                      dirty: e.offset & Machine.migDirtyBit != 0,
                                                      noExec: !mm.vmas[i].flags.contains(.exec)), arch: arch)
            addLargeMapcount(dst, entire: 1, large: 1)
            d.pointee.refcount += 1
            if entireMapcount(dst) == 1 {
                counters.add(.nrAnonPages, n)
                counters.add(.nrAnonTransparentHugepages, n)
            }
            if e.type != .migrationRead { d.pointee.flags.insert(.anonExclusive) }
            return true
        }
        p.pointee.flags = [.head]
        p.pointee.mapping = 0
        p.pointee.mapcount = 0
        p.pointee.refcount = 1
        allocator.freePages(head, order: PageOrder.pmd.raw)
        counters.add(.pgmigrateSuccess, n)
        counters.add(.thpMigrationSuccess, 1)
        return .success(dst)
    }

    /// Per-zone counters that follow a page between zones (NR_MLOCK, NR_ZONE_WRITE_PENDING).
    func moveZoneStats(from src: PFN, to dst: PFN, _ flags: PageFlags) {
        let a = allocator.zone(of: src), b = allocator.zone(of: dst)
        guard a !== b else { return }
        if flags.contains(.mlocked) {
            a.stats[VMStat.nrMlock.rawValue] -= 1
            b.stats[VMStat.nrMlock.rawValue] += 1
        }
        if flags.contains(.dirty) && !flags.contains(.swapbacked) {
            a.stats[VMStat.nrZoneWritePending.rawValue] -= 1
            b.stats[VMStat.nrZoneWritePending.rawValue] += 1
        }
    }

    /// Where a page-cache folio sits in its address_space (file or shmem object, index).
    func cacheSlot(_ pfn: PFN) -> (shmem: Bool, id: Int, index: Int)? {
        let m = frames[pfn].pointee.mapping
        guard m != 0, !PageMapping.isAnon(m) else { return nil }
        let id = Int(m & PageMapping.handleMask), idx = Int(frames[pfn].pointee.index)
        if m & PageMapping.shmemTag != 0 {
            guard id < shmemObjects.count, idx < shmemObjects[id].pages.count, shmemObjects[id].pages[idx] == pfn else { return nil }
            return (true, id, idx)
        }
        guard id < files.count, idx < files[id].cache.count, files[id].cache[idx] == pfn else { return nil }
        return (false, id, idx)
    }

    /// folio_migrate_mapping(): the page cache now holds `pfn` at that slot.
    func setCacheSlot(_ c: (shmem: Bool, id: Int, index: Int), _ pfn: PFN?) {
        if c.shmem { shmemObjects[c.id].pages[c.index] = pfn } else { files[c.id].cache[c.index] = pfn }
    }

    /// migrate_pages() over the folios `t` maps in [addr, addr + length) (what move_pages(2)
    /// does page by page): each present, movable page moves to a new frame. With `toNode`
    /// (do_pages_move() with every node[i] == toNode) the new frames are on that node and a
    /// page already there is left alone (add_page_for_migration()), counted neither moved
    /// nor failed. Returns how many moved and how many failed.
    public func migrateRange(_ t: Task, addr: UInt64, length: UInt64, toNode: Int? = nil) -> (moved: Int, failed: Int) {
        guard t.state == .running, let mm = t.mm else { return (0, 0) }
        run(t, mm)
        var moved = 0, failed = 0
        rmap.locks.acquire(.mmapLock)
        defer { rmap.locks.release(.mmapLock) }
        var a = addr & ~Page.offsetMask
        while a < addr + length {
            if let pmd = mm.pageTable.slot(VirtAddr(a), level: .pmd), case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch),
               let l = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch) {
                // A PMD-mapped THP: one folio for the whole 2 MiB.
                if l.pfn != hugeZeroPFN && (toNode == nil || allocator.nodeOf(l.pfn) != toNode) {
                    switch migrateFolio(l.pfn, toNode: toNode) {
                    case .success: moved += Int(PageOrder.pmd.pages)
                    case .failure: failed += Int(PageOrder.pmd.pages)
                    }
                }
                a = (a | (PageTableLevel.pmd.entrySpan - 1)) &+ 1
                continue
            }
            defer { a += Page.size }
            guard let slot = mm.pageTable.slot(VirtAddr(a), level: .pte),
                  let l = presentOrProtNone(slot.pointee), !(l.special && l.pfn == zeroPage) else { continue }
            if let n = toNode, allocator.nodeOf(l.pfn) == n { continue }
            switch migrateFolio(l.pfn, toNode: toNode) {
            case .success: moved += 1
            case .failure: failed += 1
            }
        }
        return (moved, failed)
    }
}
