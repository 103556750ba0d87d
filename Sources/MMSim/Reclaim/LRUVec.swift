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
public final class LRUVec {
    public let node: Int
    public let memcg: Int
    let heads = FixedArray<UInt32>(repeating: FrameTable.nil, count: 5)
    let tails = FixedArray<UInt32>(repeating: FrameTable.nil, count: 5)
    /// Pages on each list.
    let sizes = FixedArray<Int64>(repeating: 0, count: 5)
    /// Folios on each list.
    let folios = FixedArray<Int64>(repeating: 0, count: 5)
    /// lruvec->anon_cost, file_cost: the reclaim and refault cost of each type (lru_note_cost()).
    var anonCost: UInt64 = 0
    var fileCost: UInt64 = 0
    /// lruvec->nonresident_age: evictions and activations, the workingset clock (mm/workingset.c).
    var nonresidentAge: UInt64 = 0
    /// lruvec->refaults[]: the refault counters seen by the last reclaim (snapshot_refaults()).
    var refaultsSeen: (anon: Int64, file: Int64) = (0, 0)
    /// workingset_refault_* and friends of this lruvec (the memcg's per-node stats).
    var refaults: (anon: Int64, file: Int64) = (0, 0)

    init(node: Int, memcg: Int) {
        self.node = node
        self.memcg = memcg
    }

    deinit {
        heads.deallocate()
        tails.deallocate()
        sizes.deallocate()
        folios.deallocate()
    }

    /// lruvec_lru_size() over every zone.
    @inline(__always) public func size(_ lru: LRUList) -> Int64 { sizes[lru.rawValue] }
    /// The folios on a list, head (newest) first. For views and the checker.
    public func pfns(_ lru: LRUList, frames: FrameTable) -> [PFN] {
        var out: [PFN] = []
        var c = heads[lru.rawValue]
        while c != FrameTable.nil {
            out.append(PFN(UInt64(c)))
            c = frames[PFN(UInt64(c))].pointee.next
        }
        return out
    }
    /// The oldest folio of a list (lru_to_folio() of the tail), if any.
    @inline(__always) func tail(_ lru: LRUList) -> PFN? {
        let t = tails[lru.rawValue]
        return t == FrameTable.nil ? nil : PFN(UInt64(t))
    }
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
        memcg.groups[folioMemcg(p)].lruvecs[Int(p.pointee.zone) / ZoneType.perNode]
    }

    /// Pages in the folio whose head record is `p`.
    @inline(__always) func folioPages(_ p: UnsafeMutablePointer<PageMeta>) -> Int64 {
        p.pointee.flags.contains(.head) ? Int64(1) << Int64(p.pointee.order) : 1
    }

    /// update_lru_size(): the list's size, the node's and the zone's LRU counters.
    @inline(__always) func updateLRUSize(_ lv: LRUVec, _ lru: LRUList, zone: Int, _ n: Int64) {
        lv.sizes[lru.rawValue] &+= n
        lv.folios[lru.rawValue] &+= n > 0 ? 1 : -1
        counters.add(lru.nodeStat, n)
        allocator.zones[zone].stats[lru.zoneStat.rawValue] &+= n
    }

    /// lruvec_add_folio(): at the head of its list (or the tail: lruvec_add_folio_tail()), PG_lru set.
    @inline(__always) func lruvecAdd(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, tail: Bool = false) {
        let lru = folioLRUList(p)
        let l = lru.rawValue, v = UInt32(truncatingIfNeeded: pfn.raw)
        if tail {
            p.pointee.next = FrameTable.nil
            p.pointee.prev = lv.tails[l]
            if lv.tails[l] != FrameTable.nil { frames[PFN(UInt64(lv.tails[l]))].pointee.next = v } else { lv.heads[l] = v }
            lv.tails[l] = v
        } else {
            p.pointee.prev = FrameTable.nil
            p.pointee.next = lv.heads[l]
            if lv.heads[l] != FrameTable.nil { frames[PFN(UInt64(lv.heads[l]))].pointee.prev = v } else { lv.tails[l] = v }
            lv.heads[l] = v
        }
        p.pointee.flags.insert(.lru)
        updateLRUSize(lv, lru, zone: Int(p.pointee.zone), folioPages(p))
    }

    /// lruvec_del_folio(): off its list, PG_lru cleared (the flags that chose the list stay).
    @inline(__always) func lruvecDel(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>) {
        let lru = folioLRUList(p)
        let l = lru.rawValue
        let n = p.pointee.next, pr = p.pointee.prev
        if pr != FrameTable.nil { frames[PFN(UInt64(pr))].pointee.next = n } else { lv.heads[l] = n }
        if n != FrameTable.nil { frames[PFN(UInt64(n))].pointee.prev = pr } else { lv.tails[l] = pr }
        p.pointee.next = FrameTable.nil
        p.pointee.prev = FrameTable.nil
        p.pointee.flags.remove(.lru)
        updateLRUSize(lv, lru, zone: Int(p.pointee.zone), -folioPages(p))
    }

    /// Moves a folio on its list to the head (list_move()), or to the tail.
    @inline(__always) func lruvecMove(_ lv: LRUVec, _ pfn: PFN, _ p: UnsafeMutablePointer<PageMeta>, tail: Bool) {
        lruvecDel(lv, pfn, p)
        lruvecAdd(lv, pfn, p, tail: tail)
    }
}
