// mm/workingset.c: shadow entries left where evicted folios were, and refault distance against the workingset.

/// A shadow entry (pack_shadow()): the memcg id, the node, the lruvec's eviction clock at
/// eviction time and whether the folio was in the workingset.
struct Shadow {
    var memcg: Int
    var node: Int
    var eviction: UInt64
    var workingset: Bool
    static let ageBits: UInt64 = 40
    var packed: UInt64 {
        (UInt64(memcg) << 47) | (UInt64(node) << 41) | (workingset ? 1 << 40 : 0) | (eviction & ((1 << Self.ageBits) - 1))
    }
    init(memcg: Int, node: Int, eviction: UInt64, workingset: Bool) {
        self.memcg = memcg; self.node = node; self.eviction = eviction; self.workingset = workingset
    }
    init(packed v: UInt64) {
        memcg = Int(v >> 47)
        node = Int((v >> 41) & 0x3f)
        workingset = v & (1 << 40) != 0
        eviction = v & ((1 << Self.ageBits) - 1)
    }
}

extension Machine {
    /// workingset_age_nonresident(): the clock of a lruvec and of its ancestors' lruvecs.
    func workingsetAge(_ lv: LRUVec, _ n: Int64) {
        var g = lv.memcg
        while g >= 0 {
            let l = memcg.lruvec(g, node: lv.node)
            l.nonresidentAge &+= UInt64(n)
            g = memcg.d(g).pointee.parent
        }
    }

    /// workingset_activation(): a folio promoted by folio_mark_accessed() ages the clock.
    func workingsetActivation(_ p: UnsafeMutablePointer<PageMeta>) {
        workingsetAge(folioLruvec(p), folioPages(p))
    }

    /// workingset_eviction(): the shadow of a folio leaving memory; ages the clock.
    func workingsetEviction(_ p: UnsafeMutablePointer<PageMeta>) -> UInt64 {
        let lv = folioLruvec(p)
        let s = Shadow(memcg: lv.memcg, node: lv.node, eviction: lv.nonresidentAge,
                       workingset: p.pointee.flags.contains(.workingset))
        workingsetAge(lv, folioPages(p))
        return s.packed
    }

    /// workingset_refault(): a folio read back where a shadow was. The refault is counted in
    /// the folio's lruvec; when the refault distance fits in the workingset
    /// (workingset_test_recent()), the folio starts active (workingset_activate_*), and if it
    /// was in the workingset when evicted, PG_workingset is restored (workingset_restore_*).
    func workingsetRefault(_ p: UnsafeMutablePointer<PageMeta>, shadow v: UInt64) {
        let s = Shadow(packed: v)
        let file = !p.pointee.flags.contains(.swapbacked)
        guard s.memcg < memcg.groups.count, s.node < allocator.nodeCount else { return }
        let ev = memcg.groups[s.memcg].lruvecs[s.node]
        let distance = (ev.nonresidentAge &- s.eviction) & ((1 << Shadow.ageBits) - 1)
        var ws = ev.size(.activeFile)
        if !file { ws += ev.size(.inactiveFile) }
        if swapPagesAvailable(for: s.memcg) > 0 {
            ws += ev.size(.activeAnon)
            if file { ws += ev.size(.inactiveAnon) }
        }
        let n = folioPages(p)
        let lv = folioLruvec(p)
        modLruvecStat(lv, file ? .workingsetRefaultFile : .workingsetRefaultAnon, n)
        guard distance <= UInt64(max(0, ws)) else { return }
        p.pointee.flags.insert(.active)
        workingsetAge(lv, n)
        modLruvecStat(lv, file ? .workingsetActivateFile : .workingsetActivateAnon, n)
        if s.workingset {
            p.pointee.flags.insert(.workingset)
            modLruvecStat(lv, file ? .workingsetRestoreFile : .workingsetRestoreAnon, n)
        }
    }

    /// mod_lruvec_state(): a node statistic counted in a lruvec (the node and its memcg).
    func modLruvecStat(_ lv: LRUVec, _ s: VMStat, _ n: Int64) {
        counters.add(s, n)
        if lv.memcg != 0 { memcg.d(lv.memcg).pointee.stats[s.rawValue] &+= n }
    }

    /// mem_cgroup_get_nr_swap_pages(): free swap the group may still use.
    func swapPagesAvailable(for id: Int) -> Int64 {
        var n = Int64(swap.freePages)
        // do_memsw_account(): v1 limits memory+swap together, so all free swap counts.
        if memcg.v1 { return n }
        var c: Int? = id
        while let g = c, g != 0 {
            let grp = memcg.groups[g]
            n = min(n, max(0, grp.swap.max - grp.swap.usage))
            c = grp.parent
        }
        return n
    }
}
