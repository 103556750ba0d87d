// mm/truncate.c (truncate_setsize(), truncate_pagecache(), truncate_inode_pages_range()) and
// mm/memory.c unmap_mapping_range(): shrinking a file unmaps its pages from every mapping,
// through an mmu_gather per VMA, before they leave the page cache.

extension Machine {
    /// truncate(2) / ftruncate(2) to `size` bytes: truncate_setsize() -> truncate_pagecache():
    /// the pages past the new end are unmapped from every mapping of the file, private
    /// copy-on-write copies included (even_cows), then removed from the page cache (a dirty
    /// one is cleaned without writeback), then unmapped again for pages a racing fault mapped
    /// meanwhile (none in the model). A later access there is a SIGBUS. Growing only sets the
    /// size.
    public func truncateFile(_ f: SimFile, size: UInt64) {
        let newPages = (size + Page.offsetMask) >> Page.shift
        guard newPages < f.pages else {
            f.cache.append(contentsOf: [PFN?](repeating: nil, count: Int(newPages - f.pages)))
            f.pages = newPages
            return
        }
        unmapMappingRange(f, from: newPages, evenCows: true)
        truncateInodePages(f, from: newPages)
        f.pages = newPages
        f.cache.removeLast(f.cache.count - Int(newPages))
    }

    /// unmap_mapping_range() -> unmap_mapping_range_tree(): for every VMA of the file's i_mmap
    /// that maps an index at or past `from`, zap_page_range_single() over that part of the VMA,
    /// each with its own gather (tlb_gather_mmu() .. tlb_finish_mmu()). Without `evenCows`
    /// (not modelled separately) private COW copies would stay.
    func unmapMappingRange(_ f: SimFile, from index: UInt64, evenCows: Bool) {
        let key = Int32(f.id) * 2
        guard Int(key) < rmap.iMmap.count else { return }
        var targets: [(MM, UInt32)] = []
        rmap.locks.acquire(.iMmapRwsem)
        let tree = rmap.tree
        tree.forEachOverlap(rmap.iMmap[Int(key)].treeRoot, index, .max) { n in
            let id = tree.nodes[Int(n)].payload
            let s = rmap.vmas[Int(id)]
            if s.live, let mm = rmap.mms[Int(s.mm)] { targets.append((mm, id)) }
            return true
        }
        rmap.locks.release(.iMmapRwsem)
        for (mm, id) in targets {
            guard let i = mm.vmas.firstIndex(where: { $0.id == id }) else { continue }
            let v = mm.vmas[i]
            let first = max(index, v.pgoff)
            let start = v.start + ((first - v.pgoff) << Page.shift)
            guard start < v.end else { continue }
            let tlb = MMUGather(machine: self, mm: mm)
            zapRange(tlb, mm, v, start: start, end: v.end)
            tlb.finish()
        }
    }

    /// truncate_inode_pages_range(): every cached page from `index` on leaves the page cache
    /// (folio_cancel_dirty() for a dirty one, filemap_remove_folio(), the cache's reference
    /// dropped). They are unmapped already.
    func truncateInodePages(_ f: SimFile, from index: UInt64) {
        guard index < UInt64(f.cache.count) else { return }
        for i in Int(index)..<f.cache.count {
            guard let pfn = f.cache[i] else { continue }
            let m = frames[pfn]
            if m.pointee.flags.contains(.dirty) {
                // account_page_cleaned()
                m.pointee.flags.remove(.dirty)
                counters.add(.nrDirty, -1)
                allocator.zone(of: pfn).stats[VMStat.nrZoneWritePending.rawValue] -= 1
            }
            f.cache[i] = nil
            f.shadows[i] = nil
            modFolioStat(m, .nrFilePages, -1)
            lruDel(pfn, m)
            m.pointee.mapping = 0
            allocator.freePages(pfn)
        }
    }
}
