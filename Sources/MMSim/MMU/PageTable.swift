// mm/memory.c (__pud_alloc/__pmd_alloc/__pte_alloc, free_pgd_range), kernel/fork.c (mm_alloc_pgd): one address space's page-table tree, held in simulated frames in the architecture's own format.

/// Why a page-table update could not be made.
public enum PageTableError: Error, Hashable, Sendable {
    /// -ENOMEM: the frame source refused a page-table page.
    case noMemory
    /// A leaf (huge page or non-present entry) already covers the address at this level,
    /// so no table can hang there.
    case leafInTheWay(PageTableLevel)
    /// A table hangs at this level where a huge leaf was asked for.
    case tableInTheWay(PageTableLevel)
    /// No leaf of this size exists on this architecture/level.
    case unsupportedLeafLevel(PageTableLevel)
    /// The address cannot be translated on this architecture.
    case nonCanonical(VirtAddr)
}

/// Page-table pages per level. A table is named by the level of the entries it holds, so the
/// root is `arch.topLevel`: `.pgd` on 5-level x86, `.p4d` on 4-level x86 and arm64 (the PGD
/// with the P4D folded into it, indexed by VA bits 39-47).
public struct PageTableCounts: Hashable, Sendable, CustomStringConvertible {
    public var pte = 0, pmd = 0, pud = 0, p4d = 0, pgd = 0
    public init() {}
    public subscript(level: PageTableLevel) -> Int {
        get {
            switch level {
            case .pte: pte
            case .pmd: pmd
            case .pud: pud
            case .p4d: p4d
            case .pgd: pgd
            }
        }
        set {
            switch level {
            case .pte: pte = newValue
            case .pmd: pmd = newValue
            case .pud: pud = newValue
            case .p4d: p4d = newValue
            case .pgd: pgd = newValue
            }
        }
    }
    public var total: Int { pte + pmd + pud + p4d + pgd }
    public var description: String { "pgd \(pgd) p4d \(p4d) pud \(pud) pmd \(pmd) pte \(pte)" }
}

/// What a software lookup (follow_page()-like, no accessed/dirty side effects) finds.
public enum PageTableLookup: Hashable, Sendable {
    /// Nothing mapped: the entry at `level` is none (a missing table stops the lookup there).
    case none(level: PageTableLevel)
    /// A leaf (present or PROT_NONE) at `level`.
    case leaf(LeafEntry, level: PageTableLevel)
    /// A non-zero, non-leaf entry (swap/migration entry or a rejected encoding) at `level`.
    case nonPresent(raw: UInt64, level: PageTableLevel)
}

/// The page tables of one address space (an mm's pgd, or init_mm's for kernel tables).
///
/// Every table is a frame from `source` whose 512 entries live in `frames` (FrameTable host
/// storage); nothing keeps a shadow map. This type attaches table storage to frames it gets
/// from the source (unless the source already did) and detaches it before giving them back.
public final class PageTable {
    public let arch: Architecture
    public let frames: FrameTable
    public let source: any PageTableFrameSource
    /// Kernel (init_mm) tables: x86 _KERNPG_TABLE intermediates, arm64 UXNTable.
    /// User tables: x86 _PAGE_TABLE, arm64 PXNTable.
    public let isKernel: Bool
    /// The top-level table (what CR3 / TTBR0_EL1, or TTBR1_EL1 for kernel tables, points at).
    public let root: PFN
    /// Live page-table pages per level, the root included.
    public private(set) var counts = PageTableCounts() {
        didSet { if let f = onTablesChanged { f(counts.total - oldValue.total) } }
    }
    /// Told the change in table pages (the memcg kmem charge of GFP_PGTABLE_USER tables).
    var onTablesChanged: ((Int) -> Void)?

    /// pgd_alloc(): a new, empty root. Nil when the source has no frame (-ENOMEM).
    public init?(arch: Architecture, frames: FrameTable, source: any PageTableFrameSource, kernel: Bool = false) {
        self.arch = arch
        self.frames = frames
        self.source = source
        self.isKernel = kernel
        guard let pfn = source.allocPageTable(level: arch.topLevel) else { return nil }
        self.root = pfn
        _ = attach(pfn)
        counts[arch.topLevel] = 1
    }

    /// mm_pgtables_bytes() (VmPTE): bytes of PTE, PMD and PUD tables. Neither the PGD nor a
    /// P4D table is counted (__p4d_alloc() does no mm_inc_nr_*()).
    public var pgtablesBytes: UInt64 {
        UInt64(counts.pte + counts.pmd + counts.pud) * Page.size
    }

    /// Page-table pages in use, root included (what NR_PAGETABLE would count for this tree).
    public var tablePages: Int { counts.total }

    // MARK: Frames

    @inline(__always) private func attach(_ pfn: PFN) -> UnsafeMutablePointer<UInt64> {
        if let t = frames.table(pfn) {
            assert((0..<Page.entriesPerTable).allSatisfy { t[$0] == 0 }, "page-table frame \(pfn) is not zeroed")
            return t
        }
        return frames.attachTable(pfn)
    }

    @inline(__always) private func entries(_ pfn: PFN) -> UnsafeMutablePointer<UInt64> {
        guard let t = frames.table(pfn) else { preconditionFailure("frame \(pfn) holds no page table") }
        return t
    }

    /// pte_free()/pmd_free()/...: detaches the storage of table `pfn` and gives the frame back
    /// to the source. Use after a deferred free (`freeTables(..., unhooked:)`).
    public func releaseTableFrame(_ pfn: PFN, level: PageTableLevel) {
        frames.detachTable(pfn)
        source.freePageTable(pfn, level: level)
    }

    /// Page tables deposited under huge PMDs (pgtable_trans_huge_deposit()), by PMD address.
    public private(set) var deposited: [UInt64: PFN] = [:]

    /// pgtable_trans_huge_deposit(): keep a PTE table for a later split of the huge PMD at
    /// `haddr`; it counts in VmPTE like a table in use (mm_inc_nr_ptes()).
    public func depositTable(_ haddr: UInt64, _ pfn: PFN) {
        _ = attach(pfn)
        deposited[haddr] = pfn
        counts[.pte] += 1
    }

    /// pgtable_trans_huge_withdraw(): take the deposited table back (it stops counting).
    public func withdrawTable(_ haddr: UInt64) -> PFN? {
        guard let p = deposited.removeValue(forKey: haddr) else { return nil }
        counts[.pte] -= 1
        return p
    }

    /// The caller installed a table of `level` itself.
    public func noteTableHooked(level: PageTableLevel) { counts[level] += 1 }

    /// The caller cleared the entry that pointed at a table of `level` and frees the table
    /// itself (through an mmu_gather): the table no longer counts (mm_dec_nr_ptes()).
    public func noteTableUnhooked(level: PageTableLevel) { counts[level] -= 1 }

    // MARK: Slots

    /// The entry slot for `va` at `level` if every table above exists (pgd_offset(),
    /// p4d_offset(), ... pte_offset_map()); nil when a table is missing or a leaf sits above.
    @inline(__always)
    public func slot(_ va: VirtAddr, level: PageTableLevel) -> UnsafeMutablePointer<UInt64>? {
        var table = entries(root)
        var l = arch.topLevel
        while l != level {
            let e = table[va.index(at: l)]
            guard case .table(let next) = PTEFormat.classify(e, level: l, arch: arch),
                  let t = frames.table(next) else { return nil }
            table = t
            l = l.below!
        }
        return table + va.index(at: level)
    }

    /// The slot for `va` at `level`, allocating any missing table above it (p4d_alloc(),
    /// pud_alloc(), pmd_alloc(), pte_alloc()). Throws `.noMemory` when the source refuses a
    /// frame (tables allocated before the failure stay, as in the kernel).
    public func allocSlot(_ va: VirtAddr, level: PageTableLevel) throws(PageTableError) -> UnsafeMutablePointer<UInt64> {
        guard arch.isCanonical(va) else { throw .nonCanonical(va) }
        guard level <= arch.topLevel else { throw .unsupportedLeafLevel(level) }
        var table = entries(root)
        var l = arch.topLevel
        while l != level {
            let p = table + va.index(at: l)
            let below = l.below!
            switch PTEFormat.classify(p.pointee, level: l, arch: arch) {
            case .table(let next):
                table = entries(next)
            case .none:
                guard let pfn = source.allocPageTable(level: below) else { throw .noMemory }
                let t = attach(pfn)
                counts[below] += 1
                p.pointee = PTEFormat.tableEntry(pfn, kernel: isKernel, arch: arch)
                table = t
            case .leaf, .nonPresent:
                throw .leafInTheWay(l)
            }
            l = below
        }
        return table + va.index(at: level)
    }

    // MARK: Leaves

    /// set_pte_at()/set_pmd_at()/set_pud_at(): installs `entry` for `va` at the level its size
    /// names, allocating missing tables. Replaces a leaf or none entry; refuses to overwrite a table.
    public func setLeaf(_ va: VirtAddr, _ entry: LeafEntry) throws(PageTableError) {
        let level = entry.size.level
        precondition(va.raw & (entry.size.bytes - 1) == 0, "\(va) not aligned to \(entry.size)")
        precondition(entry.pfn.raw & ((entry.size.bytes >> Page.shift) - 1) == 0, "pfn \(entry.pfn) not aligned to \(entry.size)")
        let p = try allocSlot(va, level: level)
        if level != .pte, case .table = PTEFormat.classify(p.pointee, level: level, arch: arch) {
            throw .tableInTheWay(level)
        }
        p.pointee = PTEFormat.encode(entry, arch: arch)
    }

    /// Writes a raw entry (e.g. a swap or migration entry) at `level`, allocating tables above.
    public func setRaw(_ va: VirtAddr, level: PageTableLevel, _ raw: UInt64) throws(PageTableError) {
        let p = try allocSlot(va, level: level)
        if level != .pte, case .table = PTEFormat.classify(p.pointee, level: level, arch: arch) {
            throw .tableInTheWay(level)
        }
        p.pointee = raw
    }

    /// The raw entry for `va` at `level`, or nil when a table above is missing.
    public func rawEntry(_ va: VirtAddr, level: PageTableLevel) -> UInt64? {
        slot(va, level: level)?.pointee
    }

    /// A software walk (follow_page()): finds the leaf mapping `va` at any level, without
    /// touching accessed/dirty bits.
    public func lookup(_ va: VirtAddr) -> PageTableLookup {
        guard arch.isCanonical(va) else { return .none(level: arch.topLevel) }
        var table = entries(root)
        var l = arch.topLevel
        while true {
            let e = table[va.index(at: l)]
            switch PTEFormat.classify(e, level: l, arch: arch) {
            case .none: return .none(level: l)
            case .nonPresent: return .nonPresent(raw: e, level: l)
            case .leaf: return .leaf(PTEFormat.decode(e, level: l, arch: arch)!, level: l)
            case .table(let next):
                guard l != .pte, let t = frames.table(next) else { return .nonPresent(raw: e, level: l) }
                table = t
                l = l.below!
            }
        }
    }

    /// ptep_get_and_clear()/pmdp_huge_get_and_clear(): clears the entry for `va` at `level` and
    /// returns its old raw value (0 when nothing was there). Tables are left in place.
    @discardableResult
    public func clearEntry(_ va: VirtAddr, level: PageTableLevel) -> UInt64 {
        guard let p = slot(va, level: level) else { return 0 }
        if level != .pte, case .table = PTEFormat.classify(p.pointee, level: level, arch: arch) { return 0 }
        let old = p.pointee
        p.pointee = 0
        return old
    }

    /// Replaces the leaf at `level` covering `va` with a table of 512 leaves one level down
    /// mapping the same frames with the same attributes (__split_huge_pmd_locked(),
    /// split_vmemmap_huge_pmd()). The caller flushes the TLB.
    public func splitLeaf(_ va: VirtAddr, level: PageTableLevel) throws(PageTableError) {
        guard level == .pmd || level == .pud, let p = slot(va, level: level),
              PTEFormat.classify(p.pointee, level: level, arch: arch) == .leaf,
              let big = PTEFormat.decode(p.pointee, level: level, arch: arch) else {
            throw .unsupportedLeafLevel(level)
        }
        let below = level.below!
        guard let pfn = source.allocPageTable(level: below) else { throw .noMemory }
        let t = attach(pfn)
        counts[below] += 1
        var small = big
        small.size = below.leafSize!
        let step = small.size.bytes >> Page.shift
        for i in 0..<Page.entriesPerTable {
            small.pfn = big.pfn + UInt64(i) * step
            t[i] = PTEFormat.encode(small, arch: arch)
        }
        p.pointee = PTEFormat.tableEntry(pfn, kernel: isKernel, arch: arch)
    }

    /// walk_page_range(): calls `body` for every non-none entry that is not a table (leaves at any
    /// level, and non-present entries) whose span intersects [start, end), top-down in address order.
    public func forEachEntry(start: VirtAddr, end: VirtAddr,
                             _ body: (VirtAddr, PageTableLevel, UnsafeMutablePointer<UInt64>) -> Void) {
        guard start < end else { return }
        let vaMask: UInt64 = (1 << UInt64(arch.vaBits)) &- 1
        visit(entries(root), level: arch.topLevel, base: 0, start: start.raw & vaMask, end: (end.raw &- 1) & vaMask, body)
    }

    private func visit(_ table: UnsafeMutablePointer<UInt64>, level: PageTableLevel, base: UInt64,
                       start: UInt64, end last: UInt64,
                       _ body: (VirtAddr, PageTableLevel, UnsafeMutablePointer<UInt64>) -> Void) {
        let span = level.entrySpan
        let levelMask = span &* 512 &- 1
        let lo = Int((max(start, base) & levelMask) >> level.shift)
        let hi = Int((min(last, base | levelMask) & levelMask) >> level.shift)
        guard max(start, base) <= min(last, base | levelMask) else { return }
        for i in lo...hi {
            let e = table[i]
            let va = base | (UInt64(i) << level.shift)
            switch PTEFormat.classify(e, level: level, arch: arch) {
            case .none: continue
            case .table(let next):
                if level != .pte, let t = frames.table(next) {
                    visit(t, level: level.below!, base: va, start: start, end: last, body)
                } else {
                    body(VirtAddr(canonical(va)), level, table + i)
                }
            case .leaf, .nonPresent:
                body(VirtAddr(canonical(va)), level, table + i)
            }
        }
    }

    /// An index-built address in canonical form: x86 sign-extends; arm64 kernel (TTBR1) tables
    /// map the upper half.
    @inline(__always) private func canonical(_ raw: UInt64) -> UInt64 {
        if arch == .arm64 { return isKernel ? raw | 0xFFFF_0000_0000_0000 : raw }
        let s = UInt64(64 - arch.vaBits)
        return UInt64(bitPattern: Int64(bitPattern: raw << s) >> Int64(s))
    }

    // MARK: Freeing tables

    /// free_pgd_range(): unhooks and frees the page-table pages that map only [start, end),
    /// never one that also covers addresses below `floor` or at/above `ceiling` (0 = the top of
    /// the address space), with the kernel's rounding: PTE tables are freed at PMD granularity,
    /// a PMD table only when its whole PUD span fits, and so on up to (not including) the root.
    /// The leaves must already be zapped. Counts drop at unhook time (mm_dec_nr_ptes()...).
    ///
    /// - Parameter unhooked: when given, receives each unhooked table instead of it being freed
    ///   now (pte_free_tlb() into an mmu_gather); call `releaseTableFrame` later.
    public func freeTables(start: VirtAddr, end: VirtAddr, floor: VirtAddr = VirtAddr(0), ceiling: VirtAddr = VirtAddr(0),
                           unhooked: ((PFN, PageTableLevel) -> Void)? = nil) {
        var addr = start.raw, end = end.raw, ceiling = ceiling.raw
        let pmdMask = ~(PageTableLevel.pmd.entrySpan - 1)
        addr &= pmdMask
        if addr < floor.raw {
            addr &+= PageTableLevel.pmd.entrySpan
            if addr == 0 { return }
        }
        if ceiling != 0 {
            ceiling &= pmdMask
            if ceiling == 0 { return }
        }
        if end &- 1 > ceiling &- 1 { end &-= PageTableLevel.pmd.entrySpan }
        if addr > end &- 1 { return }
        let release: (PFN, PageTableLevel) -> Void = unhooked ?? { [unowned self] in self.releaseTableFrame($0, level: $1) }
        freeLevel(entries(root), level: arch.topLevel, addr: addr, end: end,
                  floor: floor.raw, ceiling: ceiling, release: release)
    }

    /// free_p4d_range()/free_pud_range()/free_pmd_range()/free_pte_range(): for the entries
    /// of `table` (holding entries of `level`) covering [addr, end), frees what hangs below.
    private func freeLevel(_ table: UnsafeMutablePointer<UInt64>, level: PageTableLevel, addr: UInt64, end: UInt64,
                           floor: UInt64, ceiling: UInt64, release: (PFN, PageTableLevel) -> Void) {
        let span = level.entrySpan
        var a = addr
        repeat {
            let next = min((a | (span - 1)) &+ 1, end) // pXd_addr_end()
            let p = table + Int((a >> level.shift) & 511)
            if case .table(let child) = PTEFormat.classify(p.pointee, level: level, arch: arch), level != .pte {
                let below = level.below!
                if below == .pte {
                    // free_pte_range(): the PTE table goes unconditionally (range already clipped).
                    assertEmpty(child)
                    p.pointee = 0
                    counts[.pte] -= 1
                    release(child, .pte)
                } else {
                    freeLevel(entries(child), level: below, addr: a, end: next, floor: floor, ceiling: ceiling, release: release)
                    // The child table goes only if its whole span (one entry of `level`) is
                    // inside [floor, ceiling).
                    var ok = a & ~(span - 1) >= floor
                    if ok, ceiling != 0 {
                        let c = ceiling & ~(span - 1)
                        ok = c != 0 && !(next &- 1 > c &- 1)
                    }
                    if ok {
                        assertEmpty(child)
                        p.pointee = 0
                        counts[below] -= 1
                        release(child, below)
                    }
                }
            }
            a = next
        } while a != end && a != 0
    }

    @inline(__always) private func assertEmpty(_ pfn: PFN) {
        assert({
            guard let t = frames.table(pfn) else { return false }
            return (0..<Page.entriesPerTable).allSatisfy { t[$0] == 0 }
        }(), "freeing page-table page \(pfn) that still has entries")
    }

    /// Frees every table below the root whose entries are all none, bottom-up (a model-level
    /// tidy-up; the kernel only frees by range).
    public func freeEmptyTables() {
        _ = pruneEmpty(entries(root), level: arch.topLevel)
    }

    private func pruneEmpty(_ table: UnsafeMutablePointer<UInt64>, level: PageTableLevel) -> Bool {
        var empty = true
        for i in 0..<Page.entriesPerTable {
            let e = table[i]
            if e == 0 { continue }
            if level != .pte, case .table(let child) = PTEFormat.classify(e, level: level, arch: arch) {
                let below = level.below!
                if pruneEmpty(entries(child), level: below) {
                    table[i] = 0
                    counts[below] -= 1
                    releaseTableFrame(child, level: below)
                    continue
                }
            }
            empty = false
        }
        return empty
    }

    /// exit_mmap() + pgd_free(): frees every table including the root, whatever leaves remain
    /// (the caller has dealt with the pages they map). The tree is unusable afterwards.
    public func destroy() {
        func drop(_ pfn: PFN, _ level: PageTableLevel) {
            if level != .pte, let t = frames.table(pfn) {
                for i in 0..<Page.entriesPerTable {
                    if case .table(let child) = PTEFormat.classify(t[i], level: level, arch: arch) {
                        drop(child, level.below!)
                    }
                    t[i] = 0
                }
            }
            counts[level] -= 1
            releaseTableFrame(pfn, level: level)
        }
        drop(root, arch.topLevel)
    }
}
