// mm/filemap.c, mm/readahead.c: files and their page cache; file faults with fault-around and read-around.

/// A regular file and its page cache (the address_space).
public final class SimFile {
    public let id: Int
    public let name: String
    /// Size in pages.
    public internal(set) var pages: UInt64
    /// Page-cache pages by index (nil = not cached).
    var cache: [PFN?]
    /// Workingset shadows of evicted pages, by index (looked up only, never iterated).
    var shadows: [Int: UInt64] = [:]
    init(id: Int, name: String, pages: UInt64) {
        self.id = id
        self.name = name
        self.pages = pages
        self.cache = [PFN?](repeating: nil, count: Int(pages))
    }
    /// Pages currently in the page cache.
    public var cachedPages: Int { cache.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
}

extension Machine {
    /// /sys/kernel/mm/transparent_hugepage... no: fault_around_bytes (64 KiB) in pages.
    public static let faultAroundPages: UInt64 = 16
    /// The default read-ahead window (VM_READAHEAD_PAGES: 128 KiB).
    public static let readAheadPages: UInt64 = 32

    /// Creates a file of `size` bytes. With `cached`, its pages are in the page cache and
    /// clean, as after writing it, fsync() and reading it back.
    @discardableResult
    public func createFile(name: String, size: UInt64, cached: Bool = true) -> SimFile {
        let f = SimFile(id: files.count, name: name, pages: (size + Page.offsetMask) >> Page.shift)
        files.append(f)
        if cached {
            for i in 0..<f.pages { _ = addToPageCache(f, i) }
        }
        return f
    }

    /// The file named `name`, if any.
    public func file(named name: String) -> SimFile? { files.last { $0.name == name } }

    /// filemap_add_folio(): a new clean, uptodate page at `index` (nr_file_pages, inactive file LRU).
    /// The page is charged to the memcg of the task running on this CPU
    /// (mem_cgroup_charge() in __filemap_add_folio()), its shadow checked for a refault
    /// (workingset_refault()), and it waits in the lru_add batch (folio_add_lru()).
    /// With `readahead` the charge does not retry or OOM (readahead_gfp_mask()'s __GFP_NORETRY).
    func addToPageCache(_ f: SimFile, _ index: UInt64, readahead: Bool = false) -> PFN? {
        if let p = f.cache[Int(index)] { return p }
        guard let pfn = allocator.allocPages(.highuserMovable) else { return nil }
        let m = frames[pfn]
        if let mm = cpus[currentCPU].task?.mm, mm.memcg != 0 {
            guard memcgCharge(mm.memcg, m, noRetry: readahead) == .ok else {
                allocator.freePages(pfn)
                return nil
            }
        }
        m.pointee.flags.insert(.uptodate)
        m.pointee.mapping = UInt32(truncatingIfNeeded: 0x2000_0000 | f.id)
        m.pointee.index = index
        f.cache[Int(index)] = pfn
        modFolioStat(m, .nrFilePages, 1)
        if let shadow = f.shadows.removeValue(forKey: Int(index)) { workingsetRefault(m, shadow: shadow) }
        folioAddLRU(pfn, m)
        return pfn
    }

    /// write(2) through the page cache (generic_perform_write()): every page touched is
    /// found or added and dirtied; the file grows when written past its end.
    public func writeFile(_ f: SimFile, offset: UInt64, length: UInt64) {
        guard length > 0 else { return }
        let first = offset >> Page.shift, last = (offset + length - 1) >> Page.shift
        if last >= f.pages {
            f.cache.append(contentsOf: [PFN?](repeating: nil, count: Int(last + 1 - f.pages)))
            f.pages = last + 1
        }
        for i in first...last {
            guard let pfn = addToPageCache(f, i) else { return }
            frames[pfn].pointee.content &+= 1
            markFileDirty(pfn)
        }
    }

    /// read(2) through the page cache (filemap_read()): missing pages are read with the
    /// read-ahead window (pgpgin), cached ones are just copied.
    public func readFile(_ f: SimFile, offset: UInt64, length: UInt64) {
        guard length > 0, offset < f.pages << Page.shift else { return }
        let first = offset >> Page.shift, last = min((offset + length - 1) >> Page.shift, f.pages - 1)
        var i = first
        // Folios being read stay locked until the copy (reclaim's folio_trylock() fails).
        var locked: [PFN] = []
        defer { for pfn in locked { frames[pfn].pointee.flags.remove(.locked) } }
        while i <= last {
            if f.cache[Int(i)] == nil {
                // page_cache_sync_ra(): the window from here, ra_pages long.
                let end = min(i + Self.readAheadPages, f.pages)
                for j in i..<end where f.cache[Int(j)] == nil {
                    guard let pfn = addToPageCache(f, j, readahead: j != i) else {
                        if j == i { return }
                        break           // the readahead stops; the page is read when the copy gets to it
                    }
                    frames[pfn].pointee.flags.insert(.locked)
                    locked.append(pfn)
                    counters.add(.pgpgin, 4)
                }
            }
            i += 1
            if locked.count > 4 * Int(Self.readAheadPages) {
                // Copied: the folios behind are unlocked.
                for pfn in locked { frames[pfn].pointee.flags.remove(.locked) }
                locked.removeAll(keepingCapacity: true)
            }
        }
        // filemap_read(): the first folio of the batch copied is marked accessed.
        if let pfn = f.cache[Int(first)] { folioMarkAccessed(pfn) }
    }

    /// POSIX_FADV_DONTNEED: drop the clean, unmapped pages from the cache.
    public func dropCache(_ f: SimFile) {
        for i in 0..<f.cache.count {
            guard let pfn = f.cache[i] else { continue }
            let m = frames[pfn]
            if m.pointee.mapcount > 0 || m.pointee.flags.contains(.dirty) { continue }
            f.cache[i] = nil
            f.shadows[i] = nil
            modFolioStat(m, .nrFilePages, -1)
            lruDel(pfn, m)
            m.pointee.mapping = 0
            allocator.freePages(pfn)
        }
    }

    /// echo 1 > /proc/sys/vm/drop_caches (drop_pagecache_sb() -> invalidate_mapping_pages()):
    /// every clean, unmapped page-cache page of every file leaves the cache (drop_pagecache).
    public func dropCaches() {
        for f in files { dropCache(f) }
        counters.add(.dropPagecache, 1)
    }

    /// fsync(): write back every dirty page (nr_dirty down, nr_written up).
    public func syncFile(_ f: SimFile) {
        for case let pfn? in f.cache where frames[pfn].pointee.flags.contains(.dirty) {
            frames[pfn].pointee.flags.remove(.dirty)
            counters.add(.nrDirty, -1)
            counters.add(.nrWritten, 1)
            counters.add(.pgpgout, 4)
            allocator.zone(of: pfn).stats[VMStat.nrZoneWritePending.rawValue] -= 1
        }
    }

    /// folio_mark_dirty() for a page-cache page.
    func markFileDirty(_ pfn: PFN) {
        let m = frames[pfn]
        guard !m.pointee.flags.contains(.dirty) else { return }
        m.pointee.flags.insert(.dirty)
        counters.add(.nrDirty, 1)
        counters.add(.nrDirtied, 1)
        allocator.zone(of: pfn).stats[VMStat.nrZoneWritePending.rawValue] += 1
    }

    /// filemap_fault(): the page at `index`, reading it (and the read-around window) on a
    /// miss, which makes the fault major.
    func filemapFault(_ task: Task, _ f: SimFile, _ index: UInt64) throws(FaultError) -> PFN {
        if let p = f.cache[Int(index)] { return p }
        // do_sync_mmap_readahead(): read around the fault, ra_pages centred on it.
        let start = index >= Self.readAheadPages / 2 ? index - Self.readAheadPages / 2 : 0
        let end = min(start + Self.readAheadPages, f.pages)
        // The window's folios stay locked while they are read (reclaim leaves them).
        var locked: [PFN] = []
        defer { for pfn in locked { frames[pfn].pointee.flags.remove(.locked) } }
        for i in start..<end where f.cache[Int(i)] == nil {
            guard let pfn = addToPageCache(f, i, readahead: true) else { break }
            frames[pfn].pointee.flags.insert(.locked)
            locked.append(pfn)
            counters.add(.pgpgin, 4)
        }
        counters.add(.pgmajfault, 1)
        task.majFlt &+= 1
        task.minFlt &-= 1
        // filemap_fault(): the target again, read on its own if the readahead did not get it.
        if let p = f.cache[Int(index)] { return p }
        guard let p = addToPageCache(f, index) else { throw .oom }
        counters.add(.pgpgin, 4)
        return p
    }

    /// Maps page-cache page `pfn` at `va` (set_pte_range() + folio_add_file_rmap_pte()).
    func mapFilePage(_ mm: MM, _ vma: VMA, _ pfn: PFN, _ slot: UnsafeMutablePointer<UInt64>, writable: Bool, dirty: Bool) {
        let m = frames[pfn]
        m.pointee.refcount += 1
        m.pointee.mapcount += 1
        // __folio_add_file_rmap(): NR_FILE_MAPPED counts pages mapped at least once.
        if m.pointee.mapcount == 1 { counters.add(.nrMapped, 1) }
        mm.addRSS(.filePages, 1)
        slot.pointee = PTEFormat.encode(LeafEntry(pfn: pfn, writable: writable, user: true, accessed: true, dirty: dirty,
                                                  noExec: !vma.flags.contains(.exec)), arch: arch)
    }

    /// do_fault(): read faults go through fault-around (filemap_map_pages() over the 64 KiB
    /// window, clamped to the VMA and the PTE table); private write faults copy the page into a
    /// new anonymous page (do_cow_fault()); shared write faults dirty the page (do_shared_fault()).
    func fileFault(_ task: Task, _ mm: MM, _ vmaIndex: Int, _ f: SimFile, _ va: VirtAddr, _ slot: UnsafeMutablePointer<UInt64>, write: Bool) throws(FaultError) {
        let vma = mm.vmas[vmaIndex]
        let index = vma.pgoff(of: va.raw)
        guard index < f.pages else { throw .sigbus }
        if !write {
            // do_fault_around()
            let nr = Self.faultAroundPages
            let pteOff = UInt64(va.index(at: .pte))
            let vmaOff = index - vma.pgoff
            let fromPTE = max(pteOff & ~(nr - 1), pteOff - min(pteOff, vmaOff))
            let toPTE = min(fromPTE + nr, 512, pteOff + vma.pages - vmaOff) - 1
            let table = slot - Int(pteOff)
            var p = fromPTE
            while p <= toPTE {
                let idx = index + p - pteOff
                if idx < f.pages, table[Int(p)] == 0, let pfn = f.cache[Int(idx)] {
                    mapFilePage(mm, vma, pfn, table + Int(p), writable: false, dirty: false)
                }
                p += 1
            }
            if slot.pointee != 0 { return }
            let pfn = try filemapFault(task, f, index)
            mapFilePage(mm, vma, pfn, slot, writable: false, dirty: false)
            return
        }
        let page = try filemapFault(task, f, index)
        if !vma.isShared {
            // do_cow_fault()
            prepareAnonVMA(mm, vmaIndex)
            guard let new = allocator.allocPages(.highuserMovable) else { throw .oom }
            frames[new].pointee.content = frames[page].pointee.content
            newAnonRmap(new, mm.vmas[vmaIndex], va)
            lruAddAnon(new, locked: vma.flags.contains(.locked))
            mm.addRSS(.anonPages, 1)
            slot.pointee = anonPTE(new, vma, writable: true, dirty: true)
            return
        }
        markFileDirty(page)
        mapFilePage(mm, vma, page, slot, writable: true, dirty: true)
    }
}
