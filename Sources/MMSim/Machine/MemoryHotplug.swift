// mm/memory_hotplug.c, mm/sparse.c, drivers/base/memory.c: hot-adding memory blocks, their
// memmap (in the block itself with memmap_on_memory), onlining and offlining them.

/// One hot-added memory block (struct memory_block).
public struct MemoryBlock: Sendable, Hashable {
    /// memoryN: the block number (start PFN / pages per block).
    public var id: UInt64
    public var startPFN: UInt64
    public var pages: UInt64
    /// Pages at the block's start holding its own memmap (memmap_on_memory), 0 otherwise.
    public var vmemmapPages: UInt64
    public var online = false
    /// The zone it was onlined to (ZONE_NORMAL, or ZONE_MOVABLE with online_movable).
    public var zone: ZoneType = .normal
    /// The buddy block backing its vmemmap when the memmap is not on the memory itself.
    public var vmemmapBlock: PFN?
}

/// Why a hotplug operation failed.
public enum HotplugError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidRange(String)
    case exists(UInt64)
    case noBlock(UInt64)
    case noMemory
    case busy(String)
    public var description: String {
        switch self {
        case .invalidRange(let s): "-EINVAL: \(s)"
        case .exists(let b): "-EEXIST: memory\(b) is already present"
        case .noBlock(let b): "-EINVAL: no memory block memory\(b)"
        case .noMemory: "-ENOMEM"
        case .busy(let s): "-EBUSY: \(s)"
        }
    }
}

extension Machine {
    static var pagesPerMemoryBlock: UInt64 { MachineConfig.memoryBlockBytes >> Page.shift }

    /// The physical range memory may be hot-added in: above RAM, block aligned.
    public var hotplugRange: (start: UInt64, end: UInt64) {
        let base = (maxPFN + Self.pagesPerMemoryBlock - 1) & ~(Self.pagesPerMemoryBlock - 1)
        return (base, base + (config.hotplugMemory >> Page.shift))
    }

    /// add_memory() of one memory block at physical address `start` (the sysfs probe file):
    /// sparse_add_section() maps its memmap in the vmemmap (a PMD leaf), backed by the block's
    /// own first pages with memmap_on_memory (mhp_init_memmap_on_memory(), PageVmemmapSelfHosted)
    /// or by a new order-9 page from the buddy allocator; the block is left offline.
    @discardableResult
    public func addMemory(start: UInt64, size: UInt64) throws(HotplugError) -> UInt64 {
        let n = Self.pagesPerMemoryBlock
        guard size == MachineConfig.memoryBlockBytes, start & (MachineConfig.memoryBlockBytes - 1) == 0 else {
            throw .invalidRange("\(String(hex: start, width: 0)) + \(size) is not one 128 MiB memory block")
        }
        let pfn = start >> Page.shift
        let r = hotplugRange
        guard pfn >= r.start, pfn + n <= r.end else {
            throw .invalidRange("[\(String(hex: start, width: 0)), \(String(hex: start + size, width: 0))) is outside the hot-pluggable range [\(String(hex: r.start << Page.shift, width: 0)), \(String(hex: r.end << Page.shift, width: 0)))")
        }
        let id = pfn / n
        guard !memoryBlocks.contains(where: { $0.id == id }) else { throw .exists(id) }
        let memmapPages = (n * Page.structPageBytes) >> Page.shift
        var block = MemoryBlock(id: id, startPFN: pfn, pages: n, vmemmapPages: 0)
        let backing: PFN
        if config.memmapOnMemory {
            backing = PFN(pfn)
            block.vmemmapPages = memmapPages
        } else {
            // vmemmap_alloc_block(PMD_SIZE): GFP_KERNEL | __GFP_ZERO | __GFP_RETRY_MAYFAIL | __GFP_NOWARN.
            guard let p = allocator.allocPages([.kernel, .zero, .noWarn], order: PageOrder.pmd.raw) else { throw .noMemory }
            backing = p
            block.vmemmapBlock = p
        }
        let va = vmemmap.address(of: PFN(pfn))
        do {
            try vmemmap.table.setLeaf(VirtAddr(va), LeafEntry(pfn: backing, size: .size2M, writable: true, user: false,
                                                             accessed: true, dirty: true, global: true, noExec: true))
        } catch {
            if let b = block.vmemmapBlock { allocator.freePages(b, order: PageOrder.pmd.raw) }
            throw .noMemory
        }
        // section_activate(): memmap_pages_add() for the section's memmap.
        counters.add(.nrMemmapPages, Int64(memmapPages))
        // The block's frames exist now (offline: isolated from the allocator).
        for i in 0..<n {
            let p = frames[PFN(pfn + i)]
            p.pointee.state = .isolated
            p.pointee.zone = UInt8(ZoneType.normal.rawValue)
            p.pointee.flags = i < block.vmemmapPages ? .reserved : []
            p.pointee.refcount = i < block.vmemmapPages ? 1 : 0
        }
        if block.vmemmapPages > 0 {
            for i in 0..<block.vmemmapPages { frames[PFN(pfn + i)].pointee.state = .reserved }
            vmemmap.selfHosted.append((pfn, pfn + block.vmemmapPages))
        }
        memoryBlocks.append(block)
        physPages += n
        log.append("memory\(id): added [mem \(String(format0x: start, width: 16))-\(String(format0x: start + size - 1, width: 16))]\(block.vmemmapPages > 0 ? " (memmap on memory)" : "")")
        return id
    }

    /// online_pages(): the block's pages (all but its own memmap) join ZONE_NORMAL, or
    /// ZONE_MOVABLE with online_movable (only movable allocations use it), whose span grows to
    /// cover them, and go to the buddy allocator; watermarks are recomputed
    /// (init_per_zone_wmark_min()). -EINVAL when the zone's span would take in another zone's.
    public func onlineMemoryBlock(_ id: UInt64, movable: Bool = false) throws(HotplugError) {
        guard let i = memoryBlocks.firstIndex(where: { $0.id == id }) else { throw .noBlock(id) }
        guard !memoryBlocks[i].online else { return }
        let b = memoryBlocks[i]
        let type: ZoneType = movable ? .movable : .normal
        let zone = zones[type.rawValue]
        let s = b.startPFN + b.vmemmapPages, e = b.startPFN + b.pages
        let spanStart = zone.isPopulated ? min(zone.startPFN, b.startPFN) : b.startPFN
        let spanEnd = zone.isPopulated ? max(zone.endPFN, e) : e
        for z in zones where z !== zone && z.isPopulated && z.startPFN < spanEnd && spanStart < z.endPFN {
            throw .invalidRange("memory\(id) in \(zone.name) would overlap \(z.name)")
        }
        // move_pfn_range_to_zone(): the zone spans the block.
        if !zone.isPopulated {
            zone.startPFN = b.startPFN
            zone.spannedPages = b.pages
        } else {
            let newStart = min(zone.startPFN, b.startPFN), newEnd = max(zone.endPFN, e)
            zone.startPFN = newStart
            zone.spannedPages = newEnd - newStart
        }
        zone.presentPages += b.pages
        for pfn in b.startPFN..<e { frames[PFN(pfn)].pointee.zone = UInt8(type.rawValue) }
        for pfn in s..<e {
            let p = frames[PFN(pfn)]
            p.pointee.state = .pristine
            p.pointee.flags = []
            p.pointee.refcount = 0
        }
        for pfn in stride(from: b.startPFN, to: e, by: Int(PageOrder.pageblock.pages)) {
            allocator.setPageblockMigratetype(PFN(pfn), .movable)
        }
        allocator.freeBootRange(s, e)
        zone.managedPages += e - s
        memoryBlocks[i].online = true
        memoryBlocks[i].zone = type
        recomputeWatermarksAfterHotplug()
        log.append("memory\(id): online, \(e - s) pages to \(zone.name)")
    }

    /// offline_pages(): dissolve the free hugetlb pages in the block, isolate its pageblocks and
    /// migrate its in-use LRU pages elsewhere through the rmap (do_migrate_range(), as
    /// alloc_contig_range() does for gigantic pages), then take every page out of the allocator.
    /// -EBUSY when a page can be neither freed nor moved (kernel allocations, page tables, pinned
    /// pages, in-use hugetlb pages); the kernel retries until a signal, the model gives up after
    /// alloc_contig_range()'s 5 tries.
    public func offlineMemoryBlock(_ id: UInt64) throws(HotplugError) {
        guard let i = memoryBlocks.firstIndex(where: { $0.id == id }) else { throw .noBlock(id) }
        guard memoryBlocks[i].online else { return }
        let b = memoryBlocks[i]
        let zone = zones[b.zone.rawValue]
        let s = b.startPFN + b.vmemmapPages, e = b.startPFN + b.pages
        // dissolve_free_hugetlb_folios()
        var pfn = s
        while pfn < e {
            if let (h, head) = hugetlbHead(containing: PFN(pfn)) {
                do { try dissolveFreeHugetlbFolio(containing: head) } catch { throw .busy("hugetlb page at pfn \(head) is in use") }
                pfn = head.raw + h.pagesPerHugePage
            } else {
                pfn += 1
            }
        }
        // start_isolate_page_range(), do_migrate_range(), test_pages_isolated(): the steps of
        // alloc_contig_range() (Hugetlb+Gigantic.swift), without its compaction counters;
        // lru_add_drain_all() first, as migrate_prep() does.
        lruAddDrainAll()
        switch allocContigRange(zone, s, e, mode: .memoryOffline) {
        case .success: break
        case .failure(.noMemory): throw .busy("memory\(id): no memory to migrate its pages to")
        case .failure(.busy(let pfn)): throw .busy("memory\(id): pfn \(pfn) is in use and cannot move")
        }
        for p in s..<e {
            let f = frames[PFN(p)]
            f.pointee.state = .isolated
            f.pointee.refcount = 0
            f.pointee.order = 0
        }
        zone.managedPages -= e - s
        zone.presentPages -= b.pages
        memoryBlocks[i].online = false
        recomputeWatermarksAfterHotplug()
        log.append("memory\(id): offline")
    }

    /// init_per_zone_wmark_min() after a hotplug event (a user-set min_free_kbytes stays).
    func recomputeWatermarksAfterHotplug() {
        if config.minFreeKbytes == nil { minFreeKbytes = max(minFreeKbytes, calculateMinFreeKbytes()) }
        setupPerZoneWatermarks()
        setupPerZoneLowmemReserve()
    }
}
