// mm/hugetlb.c: HugeTLB pools (one hstate per huge page size), reservations at mmap, the
// hugetlb fault path (PMD or PUD leaves), unmap through the mmu_gather, fork, demote and dissolve.

/// HPG_* bits a hugetlb folio keeps in its head page's private word (folio->private).
public struct HugetlbFolioFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// HPG_restore_reserve: the folio consumed a reservation that must come back if it is freed unused.
    public static let restoreReserve = HugetlbFolioFlags(rawValue: 1 << 0)
    /// HPG_migratable
    public static let migratable = HugetlbFolioFlags(rawValue: 1 << 1)
    /// HPG_freed: on a free list.
    public static let freed = HugetlbFolioFlags(rawValue: 1 << 3)
    /// HPG_vmemmap_optimized: its tail struct pages are remapped (HVO).
    public static let vmemmapOptimized = HugetlbFolioFlags(rawValue: 1 << 4)
}

extension PageFlags {
    /// Not a PG_ bit: the page_type PGTY_hugetlb of a hugetlb folio's head (folio_test_hugetlb()).
    public static let hugetlb = PageFlags(rawValue: 1 << 29)
}

/// struct hstate: one huge page size and its pool.
public final class Hstate {
    /// Index in `HugetlbState.hstates`.
    public let index: Int
    /// huge_page_order()
    public let order: PageOrder
    /// nr_huge_pages: every hugetlb folio of this size, free or in use, surplus included.
    public internal(set) var nrHugePages: UInt64 = 0
    /// free_huge_pages
    public internal(set) var freeHugePages: UInt64 = 0
    /// resv_huge_pages: free pages promised to mappings.
    public internal(set) var resvHugePages: UInt64 = 0
    /// surplus_huge_pages: pages above the persistent pool (overcommit), freed when unused.
    public internal(set) var surplusHugePages: UInt64 = 0
    /// nr_overcommit_huge_pages (vm.nr_overcommit_hugepages for the default size).
    public internal(set) var nrOvercommitHugePages: UInt64 = 0
    /// max_huge_pages: the persistent pool size last asked for.
    public internal(set) var maxHugePages: UInt64 = 0
    /// hugepage_freelists[0]: free folios, most recently freed last (the list head).
    var freeList: [PFN] = []

    /// The page-table level of its leaves (huge_pte_offset()): PMD, PUD, or PTE for arm64's 64 KiB.
    public let level: PageTableLevel
    /// Leaves per huge page: 1, or 16 with arm64's contiguous bit (CONT_PTE, CONT_PMD).
    public let contEntries: Int

    init(index: Int, order: PageOrder, level: PageTableLevel, contEntries: Int = 1) {
        self.index = index
        self.order = order
        self.level = level
        self.contEntries = contEntries
    }

    /// pages_per_huge_page()
    public var pagesPerHugePage: UInt64 { order.pages }
    /// huge_page_size() in KiB.
    public var sizeKB: UInt64 { order.bytes >> 10 }
    /// The sysfs directory name, e.g. "hugepages-2048kB".
    public var name: String { "hugepages-\(sizeKB)kB" }
    /// hstate_is_gigantic(): larger than the buddy allocator's largest block.
    public var isGigantic: Bool { order > PageOrder.max }
    /// persistent_huge_pages()
    public var persistentHugePages: UInt64 { nrHugePages - surplusHugePages }
    /// Bytes of struct pages describing one huge page (hugetlb_vmemmap_size()).
    public var vmemmapBytes: UInt64 { pagesPerHugePage * Page.structPageBytes }
    /// hugetlb_vmemmap_optimizable_size() in pages: all vmemmap pages but the one HVO keeps
    /// (HUGETLB_VMEMMAP_RESERVE_SIZE); 0 when the vmemmap is a single page.
    public var vmemmapOptimizablePages: UInt64 {
        let pages = vmemmapBytes >> Page.shift
        return pages > 1 && vmemmapBytes % Page.size == 0 ? pages - 1 : 0
    }
    /// The size as the boot log prints it, string_get_size() with three significant digits
    /// ("2.00 MiB", "32.0 MiB", "1.00 GiB", "64.0 KiB"). Huge page sizes are powers of two.
    public var sizeString: String {
        let b = order.bytes
        let (v, unit): (UInt64, String) = b >= Size.GiB ? (b / Size.GiB, "GiB") : b >= Size.MiB ? (b / Size.MiB, "MiB") : (b >> 10, "KiB")
        return v >= 100 ? "\(v) \(unit)" : v >= 10 ? "\(v).0 \(unit)" : "\(v).00 \(unit)"
    }
}

/// A hugetlb mapping's reservation map (struct resv_map), and for a shared mapping the
/// hugetlbfs file behind it (MAP_SHARED|MAP_HUGETLB creates an unlinked one).
/// Private: the huge page indices whose reservation a fault consumed, and the mm that owns
/// the reservation (HPAGE_RESV_OWNER: the mm that called mmap; a forked child owns none).
/// Shared: the reserved indices (the inode's region map) and the file's page cache.
final class HugetlbResvMap {
    let hstate: Int
    let ownerMM: Int
    /// The VMA had VM_NORESERVE: nothing was reserved.
    let noReserve: Bool
    let shared: Bool
    /// Private: indices (in huge pages) faulted through the reservation (region_add() at fault).
    var consumed = Set<UInt64>()
    /// Shared: indices reserved at mmap (region_add() at hugetlb_reserve_pages()).
    var regions = Set<UInt64>()
    /// Shared: the page cache of the hugetlbfs file, by index.
    var cache: [UInt64: PFN] = [:]
    /// Private: address spaces whose mapping the owner took pages back from (HPAGE_RESV_UNMAPPED).
    var unmappedMMs: [Int] = []
    init(hstate: Int, ownerMM: Int, noReserve: Bool, shared: Bool) {
        self.hstate = hstate
        self.ownerMM = ownerMM
        self.noReserve = noReserve
        self.shared = shared
    }
}

/// The machine's HugeTLB state: hstates, the HVO switch, reservation maps.
public final class HugetlbState {
    /// hstates[], smallest size first.
    public internal(set) var hstates: [Hstate] = []
    /// default_hstate (the size /proc/meminfo and vm.nr_hugepages speak of).
    public internal(set) var defaultIndex = 0
    /// vm.hugetlb_optimize_vmemmap (vmemmap_optimize_enabled).
    public internal(set) var optimizeVmemmap = false
    /// Reservation maps by id (index + 1); nil once every VMA using it is gone.
    var resvMaps: [HugetlbResvMap?] = []
    /// Successful and failed HVO optimizations and restores (for reports and tests).
    public internal(set) var vmemmapOptimized: UInt64 = 0
    public internal(set) var vmemmapRestored: UInt64 = 0
    public internal(set) var vmemmapRestoreFailed: UInt64 = 0

    init() {}

    /// The default hstate.
    public var defaultHstate: Hstate { hstates[defaultIndex] }
    /// size_to_hstate()
    public func hstate(sizeKB: UInt64) -> Hstate? { hstates.first { $0.sizeKB == sizeKB } }
    /// hstate of a folio head by its order.
    func hstate(order: Int) -> Hstate? { hstates.first { $0.order.raw == order } }
}

/// Why a pool operation failed.
public enum HugetlbError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownSize(UInt64)
    case noMemory
    case busy
    case notSupported(String)
    case invalid(String)
    public var description: String {
        switch self {
        case .unknownSize(let kb): "no hstate of \(kb) kB"
        case .noMemory: "-ENOMEM"
        case .busy: "-EBUSY"
        case .notSupported(let why): "-ENOTSUPP: \(why)"
        case .invalid(let why): "-EINVAL: \(why)"
        }
    }
}

extension Machine {
    // MARK: Setup

    /// hugetlb_add_hstate() for every size the architecture supports with 4 KiB pages (PMD and
    /// PUD leaves), then the boot pools (hugepages=) and the boot log lines of report_hugepages()
    /// and hugetlb_vmemmap_init().
    func hugetlbInit(_ early: EarlyBoot) {
        let h = hugetlb
        // x86-64: 2 MiB and (with gbpages) 1 GiB. arm64 with a 4 KiB granule (hugetlbpage_init()):
        // 64 KiB (CONT_PTE), 2 MiB, 32 MiB (CONT_PMD), 1 GiB.
        if arch.isX86 {
            h.hstates = [Hstate(index: 0, order: .pmd, level: .pmd), Hstate(index: 1, order: .pud, level: .pud)]
        } else {
            h.hstates = [Hstate(index: 0, order: PageOrder(4), level: .pte, contEntries: 16),
                         Hstate(index: 1, order: .pmd, level: .pmd),
                         Hstate(index: 2, order: PageOrder(13), level: .pmd, contEntries: 16),
                         Hstate(index: 3, order: .pud, level: .pud)]
        }
        h.optimizeVmemmap = config.hugetlbOptimizeVmemmap
        h.defaultIndex = h.hstates.firstIndex { $0.sizeKB == config.defaultHugepageSizeKB } ?? 0
        // Boot pools: the gigantic pages memblock reserved (gather_bootmem_prealloc()), then the
        // others from the buddy allocator (hugetlb_hstate_alloc_pages()).
        for hs in h.hstates.reversed() {
            guard let n = config.bootHugepages.first(where: { $0.sizeKB == hs.sizeKB })?.count, n > 0 else { continue }
            if hs.order == .pud {
                gatherBootmemPrealloc(hs, early.bootGiganticPages)
                hs.maxHugePages = hs.persistentHugePages
            } else {
                setMaxHugePages(hs, n)
            }
            if hs.nrHugePages < n {
                log.append("HugeTLB: allocating \(n) of page size \(hs.sizeString) failed.  Only allocated \(hs.nrHugePages) hugepages.")
            }
        }
        for hs in h.hstates.reversed() {
            log.append("HugeTLB: registered \(hs.sizeString) page size, pre-allocated \(hs.nrHugePages) pages")
            log.append("HugeTLB: \((hs.vmemmapOptimizablePages * Page.size) >> 10) KiB vmemmap can be freed for a \(hs.sizeString) page")
        }
    }

    /// gather_bootmem_prealloc(): each memblock-reserved gigantic page becomes a hugetlb folio
    /// (PG_reserved cleared, compound), joins the managed pages (adjust_managed_page_count())
    /// and the pool, its vmemmap optimized as a batch.
    func gatherBootmemPrealloc(_ h: Hstate, _ pages: [UInt64]) {
        var folios: [PFN] = []
        for first in pages {
            let pfn = PFN(first)
            let head = frames[pfn]
            head.pointee = PageMeta(flags: [.head, .hugetlb], state: .allocated, order: UInt8(h.order.raw), zone: head.pointee.zone,
                                    pcpMigratetype: 0, refcount: 0, mapcount: 0, next: FrameTable.nil, prev: FrameTable.nil,
                                    mapping: 0, spare: 0, index: 0, priv: 0, table: nil, content: 0)
            for i in 1..<h.pagesPerHugePage {
                let t = frames[pfn + i]
                t.pointee.state = .allocatedTail
                t.pointee.flags = .tail
                t.pointee.refcount = 0
            }
            allocator.zone(of: pfn).managedPages += h.pagesPerHugePage
            folios.append(pfn)
        }
        if !folios.isEmpty { prepAndAddAllocatedFolios(h, folios) }
    }

    /// hugetlb_total_pages(): base pages held by every pool.
    public var hugetlbTotalPages: UInt64 {
        hugetlb.hstates.reduce(0) { $0 + $1.nrHugePages * $1.pagesPerHugePage }
    }

    /// The hugetlb flags of a folio head (folio_test_hugetlb_*()).
    func hugetlbFlags(_ pfn: PFN) -> HugetlbFolioFlags { HugetlbFolioFlags(rawValue: frames[pfn].pointee.priv) }
    /// folio_set_hugetlb_*() / folio_clear_hugetlb_*(): all of them at once.
    func setHugetlbFlags(_ pfn: PFN, _ f: HugetlbFolioFlags) { frames[pfn].pointee.priv = f.rawValue }

    /// folio_test_hugetlb()
    public func isHugetlbFolio(_ pfn: PFN) -> Bool {
        guard pfn.raw < frames.endPFN else { return false }
        return frames[pfn].pointee.flags.contains(.hugetlb)
    }

    // MARK: Sysctl and sysfs

    /// vm.nr_hugepages (default size) or /sys/kernel/mm/hugepages/hugepages-NkB/nr_hugepages:
    /// __nr_hugepages_store_common().
    public func setNrHugepages(sizeKB: UInt64? = nil, _ count: UInt64) throws(HugetlbError) {
        let hs: Hstate
        if let kb = sizeKB {
            guard let s = hugetlb.hstate(sizeKB: kb) else { throw .unknownSize(kb) }
            hs = s
        } else {
            hs = hugetlb.defaultHstate
        }
        setMaxHugePages(hs, count)
    }

    /// vm.nr_overcommit_hugepages / .../nr_overcommit_hugepages. Gigantic sizes cannot overcommit.
    public func setNrOvercommitHugepages(sizeKB: UInt64? = nil, _ count: UInt64) throws(HugetlbError) {
        let hs = sizeKB.flatMap { hugetlb.hstate(sizeKB: $0) } ?? hugetlb.defaultHstate
        if let kb = sizeKB, hugetlb.hstate(sizeKB: kb) == nil { throw .unknownSize(kb) }
        guard !hs.isGigantic else { throw .invalid("gigantic pages cannot be overcommitted") }
        hs.nrOvercommitHugePages = count
    }

    /// vm.hugetlb_optimize_vmemmap: affects folios allocated from now on.
    public func setHugetlbOptimizeVmemmap(_ on: Bool) {
        hugetlb.optimizeVmemmap = on
    }

    // MARK: Pool

    /// set_max_huge_pages(): grow the persistent pool (surplus pages first become persistent),
    /// or shrink it by freeing free folios (restoring their vmemmap) and turning in-use ones
    /// into surplus.
    func setMaxHugePages(_ h: Hstate, _ requested: UInt64) {
        var count = requested
        // Surplus pages become persistent before new ones are allocated (adjust_pool_surplus(-1)).
        while h.surplusHugePages > 0 && count > h.persistentHugePages {
            h.surplusHugePages -= 1
        }
        var allocated: [PFN] = []
        while count > h.persistentHugePages + UInt64(allocated.count) {
            guard let pfn = allocPoolHugeFolio(h) else { break }
            allocated.append(pfn)
        }
        if !allocated.isEmpty { prepAndAddAllocatedFolios(h, allocated) }
        // Decrease: never below what is in use or reserved.
        let minCount = h.resvHugePages + h.nrHugePages - h.freeHugePages
        count = max(count, minCount)
        var toFree: [PFN] = []
        while count < h.persistentHugePages, let pfn = removePoolHugetlbFolio(h, accountSurplus: false) {
            toFree.append(pfn)
        }
        if !toFree.isEmpty { updateAndFreePagesBulk(h, toFree) }
        while count < h.persistentHugePages {
            // adjust_pool_surplus(+1): an in-use page will be freed to the buddy allocator when released.
            guard h.surplusHugePages < h.nrHugePages else { break }
            h.surplusHugePages += 1
        }
        h.maxHugePages = h.persistentHugePages
    }

    /// alloc_pool_huge_folio() -> only_alloc_fresh_hugetlb_folio(): a new folio from the buddy
    /// allocator (alloc_buddy_hugetlb_folio(), counting htlb_buddy_alloc_success/fail) or, for a
    /// gigantic size, from a free contiguous range (alloc_gigantic_folio()). Not yet in the pool.
    func allocPoolHugeFolio(_ h: Hstate) -> PFN? {
        let pfn: PFN
        if h.isGigantic {
            // alloc_contig_pages() with GFP_HIGHUSER (gigantic pages are not movable): the first
            // valid aligned range, cleared by migrating its pages (Hugetlb+Gigantic.swift). A
            // failure counts nothing: htlb_buddy_alloc_* belong to alloc_buddy_hugetlb_folio().
            let gfp: GFP = [.user, .highmem, .comp, .noWarn]
            guard let p = allocContigPages(nrPages: h.pagesPerHugePage, gfp: gfp) else { return nil }
            pfn = p
            // prep_compound_gigantic_folio(): one compound folio of the whole range.
            let head = frames[p]
            head.pointee.order = UInt8(h.order.raw)
            head.pointee.flags = .head
            for i in 1..<h.pagesPerHugePage {
                let t = frames[p + i]
                t.pointee.state = .allocatedTail
                t.pointee.flags = .tail
                t.pointee.refcount = 0
            }
        } else {
            guard let p = allocator.allocPages([.highuserMovable, .comp, .thisNode, .noWarn], order: h.order.raw) else {
                counters.add(.htlbBuddyAllocFail, 1)
                return nil
            }
            counters.add(.htlbBuddyAllocSuccess, 1)
            pfn = p
        }
        // init_new_hugetlb_folio(): PGTY_hugetlb, refcount frozen at zero.
        let head = frames[pfn]
        head.pointee.flags.insert(.hugetlb)
        head.pointee.refcount = 0
        head.pointee.mapcount = 0
        head.pointee.priv = 0
        head.pointee.content = 0
        return pfn
    }

    /// prep_and_add_allocated_folios(): optimize the vmemmap of the batch
    /// (hugetlb_vmemmap_optimize_folios()), account them (__prep_account_new_huge_page())
    /// and put them on the free list.
    func prepAndAddAllocatedFolios(_ h: Hstate, _ folios: [PFN]) {
        hugetlbVmemmapOptimizeFolios(h, folios)
        for pfn in folios {
            h.nrHugePages += 1
            enqueueHugetlbFolio(h, pfn)
        }
    }

    /// enqueue_hugetlb_folio(): onto the free list (its head: the next folio dequeued).
    func enqueueHugetlbFolio(_ h: Hstate, _ pfn: PFN) {
        var f = hugetlbFlags(pfn)
        f.insert(.freed)
        f.remove(.restoreReserve)
        setHugetlbFlags(pfn, f)
        h.freeList.append(pfn)
        h.freeHugePages += 1
    }

    /// dequeue_hugetlb_folio_node_exact(): the head of the free list.
    func dequeueHugetlbFolio(_ h: Hstate) -> PFN? {
        guard let pfn = h.freeList.popLast() else { return nil }
        h.freeHugePages -= 1
        var f = hugetlbFlags(pfn)
        f.remove(.freed)
        setHugetlbFlags(pfn, f)
        frames[pfn].pointee.refcount = 1
        return pfn
    }

    /// remove_pool_hugetlb_folio(): take a free folio out of the pool (counted as surplus when
    /// `accountSurplus`); nil when none is free (or no surplus is left to take).
    func removePoolHugetlbFolio(_ h: Hstate, accountSurplus: Bool) -> PFN? {
        guard !accountSurplus || h.surplusHugePages > 0, let pfn = h.freeList.popLast() else { return nil }
        h.freeHugePages -= 1
        h.nrHugePages -= 1
        if accountSurplus { h.surplusHugePages -= 1 }
        var f = hugetlbFlags(pfn)
        f.remove(.freed)
        setHugetlbFlags(pfn, f)
        return pfn
    }

    /// add_hugetlb_folio(): a folio taken out of the pool comes back (as surplus when
    /// `surplus`), e.g. when its vmemmap could not be restored.
    func addHugetlbFolio(_ h: Hstate, _ pfn: PFN, surplus: Bool) {
        h.nrHugePages += 1
        if surplus { h.surplusHugePages += 1 }
        enqueueHugetlbFolio(h, pfn)
    }

    /// update_and_free_pages_bulk(): restore the vmemmap of every folio (one flush_tlb_all),
    /// free them to the buddy allocator; when a restore cannot allocate, free what can be
    /// freed and retry (bulk_vmemmap_restore_error()), keeping the ones that still fail as
    /// surplus pages.
    func updateAndFreePagesBulk(_ h: Hstate, _ folios: [PFN]) {
        var list = folios
        while !list.isEmpty {
            var nonHVO: [PFN] = []
            var restored = 0
            var failed = false
            var i = 0
            // hugetlb_vmemmap_restore_folios()
            while i < list.count {
                let pfn = list[i]
                if hugetlbFlags(pfn).contains(.vmemmapOptimized) {
                    if hugetlbVmemmapRestoreFolio(h, pfn, flush: false) != nil {
                        failed = true
                        break
                    }
                    restored += 1
                }
                nonHVO.append(pfn)
                i += 1
            }
            if restored > 0 { flushTLBAll() }
            list.removeFirst(i)
            if !failed {
                for pfn in nonHVO { updateAndFreeHugetlbFolio(h, pfn) }
                return
            }
            // bulk_vmemmap_restore_error()
            if !nonHVO.isEmpty {
                for pfn in nonHVO { updateAndFreeHugetlbFolio(h, pfn) }
            } else {
                var rest: [PFN] = []
                var freedOne = false
                for pfn in list {
                    if freedOne {
                        rest.append(pfn)
                    } else if hugetlbVmemmapRestoreFolio(h, pfn, flush: true) != nil {
                        addHugetlbFolio(h, pfn, surplus: true)
                    } else {
                        updateAndFreeHugetlbFolio(h, pfn)
                        freedOne = true
                    }
                }
                list = rest
            }
        }
    }

    /// __update_and_free_hugetlb_folio() for a folio whose vmemmap is intact: back to the
    /// buddy allocator (gigantic ones page by page, free_contig_range()).
    func updateAndFreeHugetlbFolio(_ h: Hstate, _ pfn: PFN) {
        let head = frames[pfn]
        precondition(!hugetlbFlags(pfn).contains(.vmemmapOptimized), "freeing an HVO folio without restoring its vmemmap")
        head.pointee.flags.remove(.hugetlb)
        head.pointee.priv = 0
        head.pointee.mapping = 0
        if h.isGigantic {
            for i in 0..<h.pagesPerHugePage {
                let p = frames[pfn + i]
                p.pointee.state = .allocated
                p.pointee.order = 0
                p.pointee.refcount = 1
                p.pointee.flags = []
            }
            allocator.freeContigRange(pfn, nrPages: h.pagesPerHugePage)
        } else {
            head.pointee.refcount = 1
            allocator.freePages(pfn, order: h.order.raw)
        }
    }

    /// The folio's last reference went (free_huge_folio()): a reservation comes back if it
    /// was taken and not used, NR_HUGETLB drops, and the folio returns to the free list, or to
    /// the buddy allocator when the pool has surplus pages.
    func freeHugeFolio(_ pfn: PFN) {
        guard let h = hugetlb.hstate(order: Int(frames[pfn].pointee.order)) else { return }
        let head = frames[pfn]
        head.pointee.mapping = 0
        head.pointee.mapcount = 0
        head.pointee.refcount = 0
        head.pointee.flags.subtract([.anonExclusive, .dirty, .uptodate])
        let flags = hugetlbFlags(pfn)
        if flags.contains(.restoreReserve) { h.resvHugePages += 1 }
        counters.add(.nrHugetlb, -Int64(h.pagesPerHugePage))
        if h.surplusHugePages > 0 {
            // remove_hugetlb_folio(h, folio, true) + update_and_free_hugetlb_folio()
            h.nrHugePages -= 1
            h.surplusHugePages -= 1
            updateAndFreePagesBulk(h, [pfn])
        } else {
            enqueueHugetlbFolio(h, pfn)
        }
    }

    /// folio_put() of a hugetlb folio: the last reference frees it to its pool.
    func putHugetlbFolio(_ pfn: PFN) {
        let head = frames[pfn]
        head.pointee.refcount -= 1
        if head.pointee.refcount == 0 { freeHugeFolio(pfn) }
    }

    /// alloc_surplus_hugetlb_folio(): a fresh folio beyond the persistent pool, if overcommit
    /// allows (alloc_fresh_hugetlb_folio(): HVO of the single folio, flushing its range).
    func allocSurplusHugetlbFolio(_ h: Hstate) -> PFN? {
        guard !h.isGigantic, h.surplusHugePages < h.nrOvercommitHugePages else { return nil }
        guard let pfn = allocPoolHugeFolio(h) else { return nil }
        hugetlbVmemmapOptimizeFolio(h, pfn)
        h.nrHugePages += 1
        h.surplusHugePages += 1
        return pfn
    }

    /// hugetlb_acct_memory(): reserve `delta` pages (gather_surplus_pages() when the free pool
    /// is short), or give back -delta reservations (return_unused_surplus_pages()).
    func hugetlbAcctMemory(_ h: Hstate, _ delta: Int64) -> Bool {
        if delta > 0 {
            let d = UInt64(delta)
            var needed = Int64(h.resvHugePages + d) - Int64(h.freeHugePages)
            if needed > 0 {
                var got: [PFN] = []
                while needed > 0 {
                    guard let pfn = allocSurplusHugetlbFolio(h) else {
                        // Give back what was gathered.
                        for p in got {
                            h.freeList.removeAll { $0 == p }
                            h.freeHugePages -= 1
                            h.nrHugePages -= 1
                            h.surplusHugePages -= 1
                            updateAndFreePagesBulk(h, [p])
                        }
                        return false
                    }
                    enqueueHugetlbFolio(h, pfn)
                    got.append(pfn)
                    needed -= 1
                }
            }
            h.resvHugePages += d
            return true
        }
        let unused = UInt64(-delta)
        h.resvHugePages -= min(unused, h.resvHugePages)
        var n = min(unused, h.surplusHugePages)
        var list: [PFN] = []
        while n > 0, let pfn = removePoolHugetlbFolio(h, accountSurplus: true) {
            list.append(pfn)
            n -= 1
        }
        if !list.isEmpty { updateAndFreePagesBulk(h, list) }
        return true
    }

    // MARK: Demote and dissolve

    /// /sys/kernel/mm/hugepages/hugepages-NkB/demote: demote_pool_huge_page() `count` times:
    /// a free huge page of `from` has its vmemmap restored and becomes free pages of the next
    /// smaller size (whose vmemmap is optimized again). Returns how many were demoted.
    @discardableResult
    public func demoteHugepages(sizeKB: UInt64, count: UInt64) throws(HugetlbError) -> UInt64 {
        guard let src = hugetlb.hstate(sizeKB: sizeKB) else { throw .unknownSize(sizeKB) }
        guard let dst = hugetlb.hstates.last(where: { $0.order < src.order }) else { throw .invalid("no smaller size to demote to") }
        var done: UInt64 = 0
        while done < count {
            // Only free pages that are not reserved can go.
            guard src.freeHugePages > src.resvHugePages, let pfn = removePoolHugetlbFolio(src, accountSurplus: false) else { break }
            if hugetlbFlags(pfn).contains(.vmemmapOptimized), hugetlbVmemmapRestoreFolio(src, pfn, flush: true) != nil {
                addHugetlbFolio(src, pfn, surplus: false)
                throw .noMemory
            }
            // demote_free_hugetlb_folios(): split into folios of the smaller order.
            frames[pfn].pointee.flags.remove(.hugetlb)
            frames[pfn].pointee.priv = 0
            var small: [PFN] = []
            let step = dst.pagesPerHugePage
            var off: UInt64 = 0
            while off < src.pagesPerHugePage {
                let h = frames[pfn + off]
                h.pointee.state = .allocated
                h.pointee.order = UInt8(dst.order.raw)
                h.pointee.flags = [.head, .hugetlb]
                h.pointee.refcount = 0
                h.pointee.mapcount = 0
                h.pointee.priv = 0
                small.append(pfn + off)
                off += step
            }
            // The folio counted once in its hstate: the smaller folios count in theirs.
            src.maxHugePages = src.persistentHugePages
            prepAndAddAllocatedFolios(dst, small)
            dst.maxHugePages = dst.persistentHugePages
            done += 1
        }
        return done
    }

    /// dissolve_free_hugetlb_folio(): a free huge page containing `pfn` leaves the pool for the
    /// buddy allocator (memory offline, memory failure). -EBUSY when it is in use or reserved,
    /// -ENOMEM when its vmemmap cannot be restored (it then stays, as the kernel keeps it).
    public func dissolveFreeHugetlbFolio(containing pfn: PFN) throws(HugetlbError) {
        guard let (h, head) = hugetlbHead(containing: pfn) else { return }
        guard hugetlbFlags(head).contains(.freed) else { throw .busy }
        guard h.freeHugePages > h.resvHugePages else { throw .busy }
        h.freeList.removeAll { $0 == head }
        h.freeHugePages -= 1
        h.nrHugePages -= 1
        var f = hugetlbFlags(head)
        f.remove(.freed)
        setHugetlbFlags(head, f)
        if f.contains(.vmemmapOptimized), hugetlbVmemmapRestoreFolio(h, head, flush: true) != nil {
            addHugetlbFolio(h, head, surplus: false)
            throw .noMemory
        }
        // A dissolved page shrinks the persistent pool (the kernel adjusts max_huge_pages).
        h.maxHugePages = h.persistentHugePages
        updateAndFreeHugetlbFolio(h, head)
    }

    /// The hstate and head PFN of the hugetlb folio containing `pfn`, if any.
    public func hugetlbHead(containing pfn: PFN) -> (Hstate, PFN)? {
        for h in hugetlb.hstates.reversed() {
            let head = PFN(pfn.raw & ~(h.pagesPerHugePage - 1))
            if head.raw < frames.endPFN, let p = frames.peek(head), p.pointee.flags.contains(.hugetlb),
               Int(p.pointee.order) == h.order.raw {
                return (h, head)
            }
        }
        return nil
    }

    // MARK: mmap

    /// The hstate a MAP_HUGETLB mmap asks for (MAP_HUGE_SHIFT bits, or the default size).
    func hstate(forMapFlags flags: MapFlags) -> Hstate? {
        let shift = flags.hugeShift
        if shift == 0 { return hugetlb.defaultHstate }
        return hugetlb.hstates.first { UInt32($0.order.raw) + UInt32(Page.shift) == shift }
    }

    /// do_mmap() of MAP_HUGETLB (ksys_mmap_pgoff() -> hugetlb_file_setup() -> hugetlbfs_file_mmap()):
    /// the size from MAP_HUGE_SHIFT (or the default), the length rounded up to it, the address
    /// aligned to it (hugetlb_get_unmapped_area()), the pages reserved now
    /// (hugetlb_reserve_pages()); never charged to Committed_AS.
    func hugetlbMmap(_ t: Task, _ mm: MM, addr: UInt64, length: UInt64, prot: Prot, flags: MapFlags, file: Int?) -> SyscallResult<UInt64> {
        guard let h = hstate(forMapFlags: flags), file == nil else { return .failure(.EINVAL) }
        let size = h.order.bytes
        let (rounded, o) = length.addingReportingOverflow(size - 1)
        guard !o else { return .failure(.ENOMEM) }
        let len = rounded & ~(size - 1)
        guard len <= mm.taskSize else { return .failure(.ENOMEM) }
        let start: UInt64
        if flags.contains(.fixed) || flags.contains(.fixedNoreplace) {
            guard addr & (size - 1) == 0 else { return .failure(.EINVAL) }
            guard addr <= mm.taskSize, len <= mm.taskSize - addr else { return .failure(.ENOMEM) }
            start = addr
            if flags.contains(.fixedNoreplace) && !flags.contains(.fixed) && !vmaRange(mm, start, start + len).isEmpty {
                return .failure(.EEXIST)
            }
        } else if addr != 0, addr & (size - 1) == 0, addr <= mm.taskSize, len <= mm.taskSize - addr, vmaRange(mm, addr, addr + len).isEmpty {
            start = addr
        } else {
            guard let a = unmappedArea(mm, len: len + size, hint: 0) else { return .failure(.ENOMEM) }
            start = (a + size - 1) & ~(size - 1)
        }
        guard mm.vmas.count < Self.maxMapCount else { return .failure(.ENOMEM) }
        if flags.contains(.fixed) && !vmaRange(mm, start, start + len).isEmpty {
            _ = doMunmap(t, mm, start, len)
        }
        let resv: Int
        switch hugetlbReservePages(mm, h, len: len, noReserve: flags.contains(.noreserve), shared: flags.contains(.shared)) {
        case .failure(let e): return .failure(e)
        case .success(let id): resv = id
        }
        var vmFlags = VMFlags(prot: prot).union([.mayRead, .mayWrite, .mayExec, .hugetlb])
        if flags.contains(.shared) { vmFlags.formUnion([.shared, .mayShare]) }
        if flags.contains(.noreserve) { vmFlags.insert(.noreserve) }
        if flags.contains(.locked) || mm.lockFuture { vmFlags.insert(.locked) }
        // A shared mapping's offset is into its file; a private one's is its linear index.
        var vma = VMA(start: start, end: start + len, flags: vmFlags, pgoff: flags.contains(.shared) ? 0 : start >> Page.shift, kind: .anon)
        vma.hugetlbResv = resv
        let at = mm.findVMAIndex(start) ?? mm.vmas.count
        mm.vmas.insert(vma, at: at)
        rmapVMAInserted(mm, at)
        mm.statAccount(vmFlags, Int64(len >> Page.shift))
        if vmFlags.contains(.locked) { mm.lockedVM += Int64(len >> Page.shift) }
        if flags.contains(.populate) || vmFlags.contains(.locked) { populate(t, mm, start, start + len) }
        return .success(start)
    }

    /// hugetlb_reserve_pages() for a new MAP_HUGETLB mapping of `len` bytes (its own new
    /// hugetlbfs file when shared): reserve every huge page now unless MAP_NORESERVE.
    /// Returns the reservation map id.
    func hugetlbReservePages(_ mm: MM, _ h: Hstate, len: UInt64, noReserve: Bool, shared: Bool) -> SyscallResult<Int> {
        let chg = len / h.order.bytes
        if !noReserve {
            guard hugetlbAcctMemory(h, Int64(chg)) else { return .failure(.ENOMEM) }
        }
        let map = HugetlbResvMap(hstate: h.index, ownerMM: mm.id, noReserve: noReserve, shared: shared)
        if shared && !noReserve { for i in 0..<chg { map.regions.insert(i) } }
        hugetlb.resvMaps.append(map)
        return .success(hugetlb.resvMaps.count)
    }

    /// Some VMA of a live address space still uses map `id` (ignoring `mm`'s when it is going away).
    func hugetlbMapInUse(_ id: Int, except mm: MM?) -> Bool {
        for t in tasks where t.state != .dead {
            guard let other = t.mm, other !== mm else { continue }
            if other.vmas.contains(where: { $0.hugetlbResv == id }) { return true }
        }
        return false
    }

    /// The hstate of a hugetlb VMA.
    func hstate(of vma: VMA) -> Hstate {
        if vma.hugetlbResv > 0, let m = hugetlb.resvMaps[vma.hugetlbResv - 1] { return hugetlb.hstates[m.hstate] }
        return hugetlb.defaultHstate
    }

    /// hugetlb_vm_op_close(): the owner of a private mapping gives back the reservations its VMA
    /// did not use. A shared mapping's file goes with its last mapping (the unlinked inode is
    /// evicted: remove_inode_hugepages() frees its pages, hugetlb_unreserve_pages() returns the
    /// reservations no page consumed). `exiting`: the whole mm is being torn down.
    func hugetlbVMAClose(_ mm: MM, _ vma: VMA, exiting: Bool = false) {
        guard vma.hugetlbResv > 0, let m = hugetlb.resvMaps[vma.hugetlbResv - 1] else { return }
        let h = hugetlb.hstates[m.hstate]
        if m.shared {
            guard !hugetlbMapInUse(vma.hugetlbResv, except: exiting ? mm : nil) else { return }
            if exiting && mm.vmas.contains(where: { $0.hugetlbResv == vma.hugetlbResv && $0.start > vma.start }) { return }
            let unused = Int64(m.regions.count) - Int64(m.regions.filter { m.cache[$0] != nil }.count)
            let pages = m.cache.keys.sorted().map { m.cache[$0]! }
            m.cache.removeAll()
            m.regions.removeAll()
            for pfn in pages { putHugetlbFolio(pfn) }   // the page cache's reference
            if unused > 0 { _ = hugetlbAcctMemory(h, -unused) }
            hugetlb.resvMaps[vma.hugetlbResv - 1] = nil
            return
        }
        if m.ownerMM == mm.id && !m.noReserve {
            let first = vma.pgoff(of: vma.start) >> UInt64(h.order.raw)
            let n = vma.length / h.order.bytes
            var unused: Int64 = 0
            for i in first..<(first + n) {
                if m.consumed.remove(i) == nil { unused += 1 }
            }
            if unused > 0 { _ = hugetlbAcctMemory(h, -unused) }
        }
        // resv_map_release(): the map goes with the last VMA using it (split pieces and fork
        // copies share it); during exit the mm's later pieces still need it for their zap.
        if exiting && mm.vmas.contains(where: { $0.hugetlbResv == vma.hugetlbResv && $0.start > vma.start }) { return }
        if !hugetlbMapInUse(vma.hugetlbResv, except: exiting ? mm : nil) { hugetlb.resvMaps[vma.hugetlbResv - 1] = nil }
    }

    /// hugetlb_vm_op_split(): a hugetlb VMA in [start, end) may be cut only at its huge page boundaries.
    func hugetlbSplitAllowed(_ mm: MM, _ start: UInt64, _ end: UInt64) -> Bool {
        for v in mm.vmas[vmaRange(mm, start, end)] where v.flags.contains(.hugetlb) {
            let sz = hstate(of: v).order.bytes
            if (start > v.start && start & (sz - 1) != 0) || (end < v.end && end & (sz - 1) != 0) { return false }
        }
        return true
    }

    /// hugetlb_change_protection(): rewrite the huge leaves of `v` for its new flags. A private
    /// mapping's vm_page_prot is read-only (PAGE_COPY): a page it makes writable again waits
    /// for the write fault (hugetlb_wp() reuses it); one that stays writable keeps its entry.
    /// Flushes the range itself (at the huge page stride) and returns false.
    func hugetlbChangeProtection(_ mm: MM, _ v: VMA) -> Bool {
        let h = hstate(of: v)
        let level = h.level
        var lost = false
        var a = v.start
        while a < v.end {
            defer { a += h.order.bytes }
            guard let slot = mm.pageTable.slot(VirtAddr(a), level: level), slot.pointee != 0,
                  let first = PTEFormat.decode(slot.pointee, level: level, arch: arch), first.present || first.protNone else { continue }
            let accessible = v.flags.contains(.read) || v.flags.contains(.write) || v.flags.contains(.exec)
            let wasWritable = first.writable && first.present
            let writable = accessible && v.flags.contains(.write) && (wasWritable || v.flags.contains(.shared))
            // A lost exec right needs the flush too (rx -> r): the TLB may hold an executable entry.
            let wasExec = first.present && !first.noExec
            if (wasWritable && !writable) || !accessible || (wasExec && !v.flags.contains(.exec)) { lost = true }
            modifyHugePTE(slot, h) { leaf in
                leaf.present = accessible
                leaf.protNone = !accessible
                leaf.user = accessible
                leaf.writable = writable
                leaf.noExec = !v.flags.contains(.exec)
            }
        }
        if lost { flushTLBMMRange(mm, start: v.start, end: v.end, strideShift: level.shift, freedTables: false) }
        return false
    }

    // MARK: Faults

    /// hugetlb_fault(): find or allocate the PMD/PUD entry; a none entry gets a new page
    /// (hugetlb_no_page()), a write to a read-only one goes to hugetlb_wp().
    func hugetlbFault(_ task: Task, _ mm: MM, _ vmaIndex: Int, _ addr: UInt64, _ access: AccessKind) throws(FaultError) {
        let vma = mm.vmas[vmaIndex]
        let h = hstate(of: vma)
        let level = h.level
        let haddr = addr & ~(h.order.bytes - 1)
        // huge_pte_alloc()
        let slot: UnsafeMutablePointer<UInt64>
        do { slot = try mm.pageTable.allocSlot(VirtAddr(haddr), level: level) } catch { throw .oom }
        if slot.pointee == 0 {
            // HPAGE_RESV_UNMAPPED: the owner took this mapping's pages for its own COW.
            if vma.hugetlbResv > 0, let m = hugetlb.resvMaps[vma.hugetlbResv - 1], m.unmappedMMs.contains(mm.id) { throw .sigbus }
            try hugetlbNoPage(mm, vmaIndex, h, haddr, slot, level: level, write: access == .write)
            return
        }
        guard let leaf = PTEFormat.decode(slot.pointee, level: level, arch: arch), leaf.present else { throw .sigbus }
        if access == .write && !leaf.writable {
            try hugetlbWP(mm, vmaIndex, h, haddr, slot, level: level, leaf)
            return
        }
        cpus[currentCPU].tlb.flushPage(VirtAddr(addr & ~Page.offsetMask), asid: cpus[currentCPU].asid)   // the tag the entry was loaded with
    }

    /// set_huge_pte_at(): the leaf (or, for a contiguous size, the 16 leaves with PTE_CONT)
    /// mapping the huge page `pfn` in `vma`, from `slot` on.
    func setHugePTE(_ slot: UnsafeMutablePointer<UInt64>, _ h: Hstate, _ pfn: PFN, _ vma: VMA, writable: Bool) {
        let step = h.pagesPerHugePage / UInt64(h.contEntries)
        for i in 0..<h.contEntries {
            var e = PTEFormat.encode(LeafEntry(pfn: pfn + UInt64(i) * step, size: h.level.leafSize!, writable: writable, user: true,
                                               accessed: true, dirty: writable, noExec: !vma.flags.contains(.exec)), arch: arch)
            if h.contEntries > 1 { e |= Arm64PTE.cont }
            slot[i] = e
        }
    }

    /// huge_ptep_modify_prot_commit() and friends: the same change to every leaf of the huge page.
    func modifyHugePTE(_ slot: UnsafeMutablePointer<UInt64>, _ h: Hstate, _ change: (inout LeafEntry) -> Void) {
        for i in 0..<h.contEntries {
            guard var l = PTEFormat.decode(slot[i], level: h.level, arch: arch) else { continue }
            change(&l)
            slot[i] = PTEFormat.encode(l, arch: arch) | (h.contEntries > 1 ? Arm64PTE.cont : 0)
        }
    }

    /// alloc_hugetlb_folio(): a folio for a fault in `vma` at huge page index `idx`: from the
    /// reservation if the mapping holds one for it, else from the free pages nobody reserved,
    /// else a surplus page. Counts NR_HUGETLB.
    func allocHugetlbFolio(_ mm: MM, _ vma: VMA, _ h: Hstate, idx: UInt64, avoidReserve: Bool) -> PFN? {
        let map = vma.hugetlbResv > 0 ? hugetlb.resvMaps[vma.hugetlbResv - 1] : nil
        // vma_has_reserves(): a shared mapping's file has the index reserved; the owner of a
        // private mapping has an index not yet faulted.
        let hasReserve = !avoidReserve && map.map {
            $0.shared ? $0.regions.contains(idx) : ($0.ownerMM == mm.id && !$0.noReserve && !$0.consumed.contains(idx))
        } ?? false
        var pfn: PFN?
        if hasReserve || h.freeHugePages > h.resvHugePages {
            pfn = dequeueHugetlbFolio(h)
            if pfn != nil && hasReserve {
                h.resvHugePages -= 1
                setHugetlbFlags(pfn!, hugetlbFlags(pfn!).union(.restoreReserve))
            }
        }
        if pfn == nil, let p = allocSurplusHugetlbFolio(h) {
            frames[p].pointee.refcount = 1
            pfn = p
        }
        guard let got = pfn else { return nil }
        if hasReserve, let m = map, !m.shared { m.consumed.insert(idx) }
        counters.add(.nrHugetlb, Int64(h.pagesPerHugePage))
        return got
    }

    /// hugetlb_no_page(): a shared mapping maps the file's page, adding a zeroed one to its
    /// page cache first if missing; a private mapping gets a zeroed anonymous folio, mapped
    /// writable at once for a write (the COW done without a second fault). HugetlbPages counts it.
    func hugetlbNoPage(_ mm: MM, _ vmaIndex: Int, _ h: Hstate, _ haddr: UInt64, _ slot: UnsafeMutablePointer<UInt64>,
                       level: PageTableLevel, write: Bool) throws(FaultError) {
        if let m = hugetlb.resvMaps[mm.vmas[vmaIndex].hugetlbResv - 1], m.shared {
            let vma = mm.vmas[vmaIndex]
            let idx = vma.pgoff(of: haddr) >> UInt64(h.order.raw)
            let pfn: PFN
            if let p = m.cache[idx] {
                pfn = p
                frames[p].pointee.refcount += 1
            } else {
                guard let p = allocHugetlbFolio(mm, vma, h, idx: idx, avoidReserve: false) else { throw .sigbus }
                // hugetlb_add_to_page_cache(): the cache holds one reference, the mapping another.
                frames[p].pointee.content = 0
                frames[p].pointee.refcount = 2
                frames[p].pointee.index = idx * h.pagesPerHugePage
                frames[p].pointee.flags.insert(.uptodate)
                setHugetlbFlags(p, hugetlbFlags(p).subtracting(.restoreReserve))
                m.cache[idx] = p
                pfn = p
            }
            frames[pfn].pointee.mapcount += 1
            mm.hugetlbUsage += Int64(h.pagesPerHugePage)
            setHugePTE(slot, h, pfn, vma, writable: vma.flags.contains(.write))
            return
        }
        prepareAnonVMA(mm, vmaIndex)
        let vma = mm.vmas[vmaIndex]
        let idx = vma.pgoff(of: haddr) >> UInt64(h.order.raw)
        // An -ENOSPC allocation failure is a SIGBUS (vmf_error()).
        guard let pfn = allocHugetlbFolio(mm, vma, h, idx: idx, avoidReserve: false) else { throw .sigbus }
        let head = frames[pfn]
        head.pointee.content = 0   // folio_zero_user()
        // hugetlb_add_new_anon_rmap(): the reservation is now owned by the mapping.
        head.pointee.mapcount = 1
        head.pointee.mapping = UInt32(truncatingIfNeeded: vma.anonVMA)
        head.pointee.index = vma.pgoff(of: haddr)
        head.pointee.flags.insert([.anonExclusive, .uptodate])
        setHugetlbFlags(pfn, hugetlbFlags(pfn).subtracting(.restoreReserve))
        mm.hugetlbUsage += Int64(h.pagesPerHugePage)
        setHugePTE(slot, h, pfn, vma, writable: write && vma.flags.contains(.write))
    }

    /// hugetlb_wp(): a write to a write-protected huge page: reuse it when this mapping is its
    /// only user, else copy it into a new folio (no reservation: a forked child owns none).
    func hugetlbWP(_ mm: MM, _ vmaIndex: Int, _ h: Hstate, _ haddr: UInt64, _ slot: UnsafeMutablePointer<UInt64>,
                   level: PageTableLevel, _ leaf: LeafEntry) throws(FaultError) {
        let vma = mm.vmas[vmaIndex]
        guard vma.flags.contains(.write) else { throw .sigsegv }
        let old = frames[leaf.pfn]
        if old.pointee.mapcount == 1 && old.pointee.refcount == 1 {
            old.pointee.flags.insert(.anonExclusive)
            setHugePTE(slot, h, leaf.pfn, vma, writable: true)
            flushTLBMMRange(mm, start: haddr, end: haddr + h.order.bytes, strideShift: level.shift, freedTables: false)
            return
        }
        let idx = vma.pgoff(of: haddr) >> UInt64(h.order.raw)
        let map = vma.hugetlbResv > 0 ? hugetlb.resvMaps[vma.hugetlbResv - 1] : nil
        let owner = map.map { !$0.shared && $0.ownerMM == mm.id } ?? false
        guard let pfn = allocHugetlbFolio(mm, vma, h, idx: idx, avoidReserve: owner) else {
            // The owner of the reservation must not fail: it takes the page back from the
            // other mappings (unmap_ref_private()) and, alone with it now, reuses it.
            guard owner, let m = map else { throw .oom }
            unmapRefPrivate(mm, vma, m, h, leaf.pfn, haddr)
            guard old.pointee.mapcount == 1 else { throw .oom }
            old.pointee.flags.insert(.anonExclusive)
            setHugePTE(slot, h, leaf.pfn, vma, writable: true)
            flushTLBMMRange(mm, start: haddr, end: haddr + h.order.bytes, strideShift: level.shift, freedTables: false)
            return
        }
        let head = frames[pfn]
        head.pointee.content = old.pointee.content   // copy_user_large_folio()
        head.pointee.mapcount = 1
        head.pointee.mapping = UInt32(truncatingIfNeeded: vma.anonVMA)
        head.pointee.index = vma.pgoff(of: haddr)
        head.pointee.flags.insert([.anonExclusive, .uptodate])
        setHugetlbFlags(pfn, hugetlbFlags(pfn).subtracting(.restoreReserve))
        setHugePTE(slot, h, pfn, vma, writable: true)
        flushTLBMMRange(mm, start: haddr, end: haddr + h.order.bytes, strideShift: level.shift, freedTables: false)
        // hugetlb_remove_rmap() + folio_put() of the old page.
        old.pointee.mapcount -= 1
        putHugetlbFolio(leaf.pfn)
    }

    /// unmap_ref_private(): unmap the huge page at `haddr` from every other address space
    /// mapping it through the same private mapping (the fork children), which are marked
    /// HPAGE_RESV_UNMAPPED: a later fault there is a SIGBUS.
    func unmapRefPrivate(_ mm: MM, _ vma: VMA, _ map: HugetlbResvMap, _ h: Hstate, _ pfn: PFN, _ haddr: UInt64) {
        var seen: [ObjectIdentifier] = [ObjectIdentifier(mm)]
        for t in tasks where t.state == .running {
            guard let other = t.mm, !seen.contains(ObjectIdentifier(other)) else { continue }
            seen.append(ObjectIdentifier(other))
            guard other.vmas.contains(where: { $0.hugetlbResv == vma.hugetlbResv && $0.contains(haddr) }),
                  let slot = other.pageTable.slot(VirtAddr(haddr), level: h.level), slot.pointee != 0,
                  let l = PTEFormat.decode(slot.pointee, level: h.level, arch: arch), l.pfn == pfn else { continue }
            for i in 0..<h.contEntries { slot[i] = 0 }
            flushTLBMMRange(other, start: haddr, end: haddr + h.order.bytes, strideShift: h.level.shift, freedTables: false)
            other.hugetlbUsage -= Int64(h.pagesPerHugePage)
            frames[pfn].pointee.mapcount -= 1
            putHugetlbFolio(pfn)
            if !map.unmappedMMs.contains(other.id) { map.unmappedMMs.append(other.id) }
        }
    }

    // MARK: Unmap and fork

    /// __unmap_hugepage_range(): clear every huge entry of [start, end) in `vma`, give the
    /// folios to the gather (tlb_remove_page_size()), uncount HugetlbPages. Only whole huge
    /// pages go: MADV_DONTNEED's end is rounded down to a huge page (madvise_dontneed_free_valid_vma()).
    func unmapHugepageRange(_ tlb: MMUGather, _ mm: MM, _ vma: VMA, start: UInt64, end: UInt64) {
        let h = hstate(of: vma)
        let level = h.level
        let size = h.order.bytes
        var a = (start + size - 1) & ~(size - 1)
        while a + size <= end {
            defer { a += size }
            guard let slot = mm.pageTable.slot(VirtAddr(a), level: level), slot.pointee != 0 else { continue }
            let raw = slot.pointee
            for i in 0..<h.contEntries { slot[i] = 0 }   // huge_ptep_get_and_clear()
            tlb.noteCleared(a, size, level: level)
            guard let leaf = PTEFormat.decode(raw, level: level, arch: arch), leaf.present else { continue }
            mm.hugetlbUsage -= Int64(h.pagesPerHugePage)
            frames[leaf.pfn].pointee.mapcount -= 1
            if tlb.removePage(leaf.pfn, pmdFolio: true) { tlb.flush() }
        }
    }

    /// copy_hugetlb_page_range(): the child shares every huge page of a private mapping,
    /// write-protected in both.
    func copyHugetlbPageRange(from src: MM, to dst: MM, _ vma: VMA) throws(FaultError) {
        let h = hstate(of: vma)
        let level = h.level
        var a = vma.start
        while a < vma.end {
            defer { a += h.order.bytes }
            guard let s = src.pageTable.slot(VirtAddr(a), level: level), s.pointee != 0,
                  var leaf = PTEFormat.decode(s.pointee, level: level, arch: arch), leaf.present else { continue }
            let d: UnsafeMutablePointer<UInt64>
            do { d = try dst.pageTable.allocSlot(VirtAddr(a), level: level) } catch { throw .oom }
            let p = frames[leaf.pfn]
            p.pointee.refcount += 1
            p.pointee.mapcount += 1
            p.pointee.flags.remove(.anonExclusive)
            if vma.isCOW && leaf.writable {
                leaf.writable = false
                modifyHugePTE(s, h) { $0.writable = false }
            }
            for i in 0..<h.contEntries { d[i] = s[i] }
            dst.hugetlbUsage += Int64(h.pagesPerHugePage)
        }
    }
}

extension MapFlags {
    /// MAP_HUGE_SHIFT: log2 of the huge page size asked for (0 = the default size).
    public var hugeShift: UInt32 { (rawValue >> 26) & 0x3f }
    /// MAP_HUGE_2MB
    public static let huge2MB = MapFlags(rawValue: 21 << 26)
    /// MAP_HUGE_1GB
    public static let huge1GB = MapFlags(rawValue: 30 << 26)
    /// MAP_HUGE_64KB (arm64 CONT_PTE)
    public static let huge64KB = MapFlags(rawValue: 16 << 26)
    /// MAP_HUGE_32MB (arm64 CONT_PMD)
    public static let huge32MB = MapFlags(rawValue: 25 << 26)
}
