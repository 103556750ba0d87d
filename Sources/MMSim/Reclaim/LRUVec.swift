// include/linux/mmzone.h (struct lruvec), include/linux/mm_inline.h: the LRU lists of one node in one memory cgroup.

extension PageFlags {
    /// Not a kernel bit: the folio waits in a CPU's lru_add batch (cpu_fbatches.lru_add), where
    /// the kernel has it off every list with PG_lru clear and a reference held by the batch.
    public static let lruBatched = PageFlags(rawValue: 1 << 28)
    /// Not a kernel bit: folio->memcg_data is set (the folio is charged to the memory cgroup
    /// whose id is in `spare`; without it the folio belongs to the root cgroup).
    public static let memcgCharged = PageFlags(rawValue: 1 << 27)
    /// PG_readahead (the kernel shares PG_reclaim's bit; the model keeps its own): a folio read
    /// ahead and not yet used.
    public static let readahead = PageFlags(rawValue: 1 << 26)
}

/// enum lru_list, in the kernel's order.
public enum LRUList: Int, CaseIterable, Sendable {
    case inactiveAnon = 0, activeAnon, inactiveFile, activeFile, unevictable

    /// is_file_lru()
    @inline(__always) public var isFile: Bool { self == .inactiveFile || self == .activeFile }
    /// is_active_lru()
    @inline(__always) public var isActive: Bool { self == .activeAnon || self == .activeFile }
    /// The list of a type and activity (LRU_BASE + LRU_FILE * file + LRU_ACTIVE * active).
    @inline(__always) public static func of(file: Bool, active: Bool) -> LRUList {
        LRUList(rawValue: (file ? 2 : 0) + (active ? 1 : 0))!
    }
    /// The node_stat_item counting this list (NR_LRU_BASE + lru).
    @inline(__always) public var nodeStat: VMStat { VMStat(rawValue: VMStat.nrInactiveAnon.rawValue + rawValue)! }
    /// The zone_stat_item counting this list (NR_ZONE_LRU_BASE + lru).
    @inline(__always) public var zoneStat: VMStat { VMStat(rawValue: VMStat.nrZoneInactiveAnon.rawValue + rawValue)! }
    /// The name in memory.stat.
    public var name: String {
        switch self {
        case .inactiveAnon: "inactive_anon"
        case .activeAnon: "active_anon"
        case .inactiveFile: "inactive_file"
        case .activeFile: "active_file"
        case .unevictable: "unevictable"
        }
    }
}

/// struct lruvec: five lists of folios, most recently added at the head, scanned from the
/// tail; sizes in pages (lruvec_lru_size()), the reclaim cost balance and the workingset clock.
/// The lists are intrusive through struct page's lru links (`PageMeta.next`/`prev`, PFNs),
/// as the kernel's folio->lru shares its words with the buddy and pcp links.
/// A handle to a flat record that never moves (index handles, not class references, so the
/// LRU paths retain nothing): heads, tails, pages and folios per list, then the scalars.
public struct LRUVec: Equatable {
    let p: UnsafeMutablePointer<Int64>
    static let words = 28
    static let headBase = 0, tailBase = 5, sizeBase = 10, folioBase = 15
    static let anonCostW = 20, fileCostW = 21, ageW = 22, seenAnonW = 23, seenFileW = 24, nodeW = 25, memcgW = 26

    init(node: Int, memcg: Int) {
        p = .allocate(capacity: Self.words)
        p.initialize(repeating: 0, count: Self.words)
        for i in 0..<10 { p[i] = Int64(FrameTable.nil) }
        p[Self.nodeW] = Int64(node)
        p[Self.memcgW] = Int64(memcg)
    }

    public var node: Int { Int(p[Self.nodeW]) }
    public var memcg: Int { Int(p[Self.memcgW]) }
    @inline(__always) func head(_ l: Int) -> UInt32 { UInt32(truncatingIfNeeded: p[Self.headBase + l]) }
    @inline(__always) func setHead(_ l: Int, _ v: UInt32) { p[Self.headBase + l] = Int64(v) }
    @inline(__always) func tailPFN(_ l: Int) -> UInt32 { UInt32(truncatingIfNeeded: p[Self.tailBase + l]) }
    @inline(__always) func setTail(_ l: Int, _ v: UInt32) { p[Self.tailBase + l] = Int64(v) }
    /// Pages on each list (lruvec_lru_size() over every zone).
    @inline(__always) public func size(_ lru: LRUList) -> Int64 { p[Self.sizeBase + lru.rawValue] }
    /// Folios on each list.
    @inline(__always) public func folioCount(_ lru: LRUList) -> Int64 { p[Self.folioBase + lru.rawValue] }
    @inline(__always) func addSize(_ l: Int, pages: Int64, folios: Int64) {
        p[Self.sizeBase + l] &+= pages
        p[Self.folioBase + l] &+= folios
    }
    /// lruvec->anon_cost, file_cost: the reclaim and refault cost of each type (lru_note_cost()).
    var anonCost: UInt64 {
        get { UInt64(bitPattern: p[Self.anonCostW]) }
        nonmutating set { p[Self.anonCostW] = Int64(bitPattern: newValue) }
    }
    var fileCost: UInt64 {
        get { UInt64(bitPattern: p[Self.fileCostW]) }
        nonmutating set { p[Self.fileCostW] = Int64(bitPattern: newValue) }
    }
    /// lruvec->nonresident_age: evictions and activations, the workingset clock (mm/workingset.c).
    var nonresidentAge: UInt64 {
        get { UInt64(bitPattern: p[Self.ageW]) }
        nonmutating set { p[Self.ageW] = Int64(bitPattern: newValue) }
    }
    /// lruvec->refaults[]: the workingset activations seen by the last reclaim (snapshot_refaults()).
    var refaultsSeen: (anon: Int64, file: Int64) {
        get { (p[Self.seenAnonW], p[Self.seenFileW]) }
        nonmutating set { p[Self.seenAnonW] = newValue.anon; p[Self.seenFileW] = newValue.file }
    }

    /// The folios on a list, head (newest) first. For views and the checker.
    public func pfns(_ lru: LRUList, frames: FrameTable) -> [PFN] {
        var out: [PFN] = []
        var c = head(lru.rawValue)
        while c != FrameTable.nil {
            out.append(PFN(UInt64(c)))
            c = frames[PFN(UInt64(c))].pointee.next
        }
        return out
    }
    /// The oldest folio of a list (lru_to_folio() of the tail), if any.
    @inline(__always) func tail(_ lru: LRUList) -> PFN? {
        let t = tailPFN(lru.rawValue)
        return t == FrameTable.nil ? nil : PFN(UInt64(t))
    }
    public static func == (a: LRUVec, b: LRUVec) -> Bool { a.p == b.p }
}

extension Machine {
    /// folio_lru_list(): the list a folio belongs on from its flags.
    @inline(__always) func folioLRUList(_ p: UnsafeMutablePointer<PageMeta>) -> LRUList {
        let f = p.pointee.flags
        if f.contains(.unevictable) { return .unevictable }
        return LRUList.of(file: !f.contains(.swapbacked), active: f.contains(.active))
    }

    /// The memory cgroup a folio is charged to (folio_memcg(); the root when uncharged).
    @inline(__always) func folioMemcg(_ p: UnsafeMutablePointer<PageMeta>) -> Int {
        p.pointee.flags.contains(.memcgCharged) ? Int(p.pointee.spare) : 0
    }

    /// folio_lruvec(): the folio's memory cgroup's lruvec on the folio's node.
    @inline(__always) func folioLruvec(_ p: UnsafeMutablePointer<PageMeta>) -> LRUVec {
        memcg.lruvec(folioMemcg(p), node: Int(p.pointee.zone) / ZoneType.perNode)
    }

    /// Pages in the folio whose head record is `p`.
    @inline(__always) func folioPages(_ p: UnsafeMutablePointer<PageMeta>) -> Int64 {
        p.pointee.flags.contains(.head) ? Int64(1) << Int64(p.pointee.order) : 1
    }

    /// update_lru_size(): the list's size, the node's and the zone's LRU counters, for a run of
    /// `folios` folios of `pages` pages on one list of one zone (the batched paths count a
    /// run at once; single moves count one folio).
    @inline(__always) func updateLRUSize(_ lv: LRUVec, _ l: Int, zone: Int, pages: Int64, folios: Int64) {
        guard folios != 0 else { return }
        lv.addSize(l, pages: pages, folios: folios)
        let lru = LRUList(rawValue: l)!
        counters.add(lru.nodeStat, pages)
        allocator.zoneRefs[zone]._withUnsafeGuaranteedRef { $0.stats[lru.zoneStat.rawValue] &+= pages }
    }

    /// lruvec_add_folio(): at the head of its list (or the tail: lruvec_add_folio_tail()), PG_lru set.
    @inline(__always) func lruvecAdd(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, tail: Bool = false) {
        let l = folioLRUList(p).rawValue
        if tail {
            let v = UInt32(truncatingIfNeeded: pfn.raw)
            let t = lv.tailPFN(l)
            p.pointee.next = FrameTable.nil
            p.pointee.prev = t
            if t != FrameTable.nil { frames[PFN(UInt64(t))].pointee.next = v } else { lv.setHead(l, v) }
            lv.setTail(l, v)
            p.pointee.flags.insert(.lru)
        } else {
            lruvecLinkHead(lv, l, pfn, p)
        }
        updateLRUSize(lv, l, zone: Int(p.pointee.zone), pages: folioPages(p), folios: 1)
    }

    /// lruvec_del_folio(): off its list, PG_lru cleared (the flags that chose the list stay).
    @inline(__always) func lruvecDel(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let l = folioLRUList(p).rawValue
        lruvecUnlink(lv, l, p)
        updateLRUSize(lv, l, zone: Int(p.pointee.zone), pages: -folioPages(p), folios: -1)
    }

    /// The list links of lruvec_del_folio() alone (PG_lru cleared); the caller counts.
    @inline(__always) func lruvecUnlink(_ lv: LRUVec, _ l: Int, _ p: UnsafeMutablePointer<PageMeta>) {
        let n = p.pointee.next, pr = p.pointee.prev
        if pr != FrameTable.nil { frames[PFN(UInt64(pr))].pointee.next = n } else { lv.setHead(l, n) }
        if n != FrameTable.nil { frames[PFN(UInt64(n))].pointee.prev = pr } else { lv.setTail(l, pr) }
        p.pointee.next = FrameTable.nil
        p.pointee.prev = FrameTable.nil
        p.pointee.flags.remove(.lru)
    }

    /// The list links of lruvec_add_folio() alone (at the head, PG_lru set); the caller counts.
    @inline(__always) func lruvecLinkHead(_ lv: LRUVec, _ l: Int, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let v = UInt32(truncatingIfNeeded: pfn.raw)
        let h = lv.head(l)
        p.pointee.prev = FrameTable.nil
        p.pointee.next = h
        if h != FrameTable.nil { frames[PFN(UInt64(h))].pointee.prev = v } else { lv.setTail(l, v) }
        lv.setHead(l, v)
        p.pointee.flags.insert(.lru)
    }

    /// Moves a folio on its list to the head (list_move()), or to the tail.
    @inline(__always) func lruvecMove(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, tail: Bool) {
        lruvecDel(lv, pfn, p)
        lruvecAdd(lv, pfn, p, tail: tail)
    }
}
