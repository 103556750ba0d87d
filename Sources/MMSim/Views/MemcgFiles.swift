// mm/memcontrol-v1.c (memcg1_stat_format(), the v1 files) and mm/memcontrol.c (memory.stat, memory.events of v2): what a memory cgroup's files show.

extension Machine {
    /// A group and every group below it, offline ones included: a removed child's events and
    /// remaining charges stay in its ancestors' hierarchical counters (rstat keeps what it flushed).
    func memcgDescendants(_ id: Int) -> [Int] {
        var out = [id]
        var i = 0
        while i < out.count {
            out.append(contentsOf: memcg.groups[out[i]].children)
            i += 1
        }
        return out
    }

    /// memcg_page_state() / memcg_events(): a statistic of the group and its descendants. The
    /// root's is the machine's (every folio the model leaves uncharged belongs to the root).
    func memcgTotal(_ g: MemCgroup, _ s: VMStat) -> Int64 {
        if g.id == 0 { return counters[s] }
        return memcgDescendants(g.id).reduce(0) { $0 + memcg.groups[$1].stat(s) }
    }

    /// memcg_page_state_local() / memcg_events_local(): the group alone (the root: what its
    /// children's subtrees do not hold).
    func memcgLocal(_ g: MemCgroup, _ s: VMStat) -> Int64 {
        if g.id == 0 { return counters[s] - g.children.reduce(0) { $0 + memcgTotal(memcg.groups[$1], s) } }
        return g.stat(s)
    }

    /// MEMCG_SWAP of the subtree (swapPages is kept hierarchically) or of the group alone.
    func memcgSwap(_ g: MemCgroup, local: Bool) -> Int64 {
        let total = g.id == 0 ? Int64(swap.totalPages - swap.freePages) : g.swapPages
        guard local else { return total }
        return total - g.children.reduce(0) { $0 + memcg.groups[$1].swapPages }
    }

    /// The LRU pages of the subtree or of the group alone (lruvec sizes are per group).
    func memcgLRU(_ g: MemCgroup, _ l: LRUList, local: Bool) -> Int64 {
        local ? g.lruPages(l) : memcgDescendants(g.id).reduce(0) { $0 + memcg.groups[$1].lruPages(l) }
    }

    /// memory.stat fields of cgroup v1 in the kernel's order (memcg1_stat_format(): memcg1_stats[],
    /// memcg1_events[], the LRU lists): (name, value in pages or events, is a size), of the group
    /// alone (`local`) or of its subtree (the total_* lines).
    func memcgV1Stat(_ g: MemCgroup, local: Bool = true) -> [(String, Int64, Bool)] {
        func st(_ s: VMStat) -> Int64 { max(0, local ? memcgLocal(g, s) : memcgTotal(g, s)) }
        var out: [(String, Int64, Bool)] = [
            ("cache", st(.nrFilePages), true), ("rss", st(.nrAnonPages), true),
            ("rss_huge", st(.nrAnonTransparentHugepages), true), ("shmem", st(.nrShmem), true),
            ("mapped_file", st(.nrMapped), true), ("dirty", st(.nrDirty), true),
            ("writeback", st(.nrWriteback), true),
            ("workingset_refault_anon", st(.workingsetRefaultAnon), false),
            ("workingset_refault_file", st(.workingsetRefaultFile), false),
            ("swap", max(0, memcgSwap(g, local: local)), true), ("swapcached", st(.nrSwapcached), true),
            ("pgpgin", st(.pgpgin), false), ("pgpgout", st(.pgpgout), false),
            ("pgfault", st(.pgfault), false), ("pgmajfault", st(.pgmajfault), false),
        ]
        for l in LRUList.allCases { out.append((l.name, memcgLRU(g, l, local: local), true)) }
        return out
    }

    /// The hierarchical limits of memcg1_stat_format(): the smallest limit on the way to the root.
    func memcgHierarchicalLimits(_ g: MemCgroup) -> (memory: Int64, memsw: Int64) {
        var m = PageCounter.unlimited, s = PageCounter.unlimited
        var c: Int? = g.id
        while let id = c {
            m = min(m, memcg.groups[id].memory.max)
            s = min(s, memcg.groups[id].memsw.max)
            c = memcg.groups[id].parent
        }
        return (m, s)
    }

    /// memory.stat of cgroup v2 (memcg_stat_format()): memory_stats[] in its order (sizes in
    /// bytes, the workingset and demotion items as counts), pgscan and pgsteal, then
    /// memcg_vm_event_stat[] without pgpgin/pgpgout; all hierarchical. Items the model does
    /// not keep (kernel memory, sockets, zswap, demotion...) are 0.
    func memcgV2StatText(_ g: MemCgroup) -> String {
        func v(_ name: String) -> Int64 { VMStat(name: name).map { max(0, memcgTotal(g, $0)) } ?? 0 }
        func lru(_ l: LRUList) -> Int64 { memcgLRU(g, l, local: false) * 4096 }
        var out = ""
        func line(_ n: String, _ x: Int64) { out += "\(n) \(x)\n" }
        line("anon", v("nr_anon_pages") * 4096)
        line("file", v("nr_file_pages") * 4096)
        for n in ["kernel", "kernel_stack"] { line(n, 0) }
        line("pagetables", 0)
        for n in ["sec_pagetables", "percpu", "sock", "vmalloc"] { line(n, 0) }
        line("shmem", v("nr_shmem") * 4096)
        for n in ["zswap", "zswapped"] { line(n, 0) }
        line("file_mapped", v("nr_mapped") * 4096)
        line("file_dirty", v("nr_dirty") * 4096)
        line("file_writeback", v("nr_writeback") * 4096)
        line("swapcached", v("nr_swapcached") * 4096)
        line("anon_thp", v("nr_anon_transparent_hugepages") * 4096)
        line("file_thp", v("nr_file_hugepages") * 4096)
        line("shmem_thp", v("nr_shmem_hugepages") * 4096)
        for l in LRUList.allCases { line(l.name, lru(l)) }
        line("slab_reclaimable", 0)
        line("slab_unreclaimable", 0)
        line("slab", 0)
        for n in ["workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
                  "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
                  "workingset_nodereclaim", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
                  "pgdemote_proactive", "pgpromote_success"] { line(n, v(n)) }
        line("pgscan", v("pgscan_kswapd") + v("pgscan_direct") + v("pgscan_proactive") + v("pgscan_khugepaged"))
        line("pgsteal", v("pgsteal_kswapd") + v("pgsteal_direct") + v("pgsteal_proactive") + v("pgsteal_khugepaged"))
        for n in ["pswpin", "pswpout", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_proactive",
                  "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgsteal_proactive", "pgfault",
                  "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed",
                  "swpin_zero", "swpout_zero", "zswpin", "zswpout", "zswpwb", "thp_fault_alloc",
                  "thp_collapse_alloc", "thp_swpout", "thp_swpout_fallback", "numa_pages_migrated",
                  "numa_pte_updates", "numa_hint_faults"] { line(n, v(n)) }
        return out
    }

    /// One value of a group, by the name the scenario language gives it: a memory.stat field
    /// of v1 (the group alone, or its subtree as total_*; sizes in kB), `usage`/`max_usage`/
    /// `memsw_usage`/`memsw_max_usage`/`limit` (kB, as usage_in_bytes and friends), `failcnt`,
    /// `oom_kill`, `events.NAME`, or a reclaim event of the subtree (`pgscan_anon`,
    /// `pgsteal_file`, `pgactivate`, ...). Nil for an unknown name.
    public func memcgValue(_ g: MemCgroup, _ field: String) -> Int64? {
        switch field {
        case "usage": return g.memory.usage * 4
        case "max_usage": return g.memory.watermark * 4
        case "memsw_usage": return (memcg.v1 ? g.memsw.usage : g.memory.usage + g.swap.usage) * 4
        case "memsw_max_usage": return g.memsw.watermark * 4
        case "limit": return g.memory.max * 4
        case "failcnt": return g.memory.failcnt
        case "memsw_failcnt": return 0
        case "oom_kill", "oom_control.oom_kill": return g.events[MemcgEvent.oomKill.rawValue]
        default: break
        }
        if field.hasPrefix("events."), let e = MemcgEvent.allCases.first(where: { "events." + $0.name == field }) {
            return g.events[e.rawValue]
        }
        let total = field.hasPrefix("total_")
        let name = total ? String(field.dropFirst(6)) : field
        if let s = memcgV1Stat(g, local: !total).first(where: { $0.0 == name }) { return s.2 ? s.1 * 4 : s.1 }
        if !total, let item = VMStat(name: field) { return memcgTotal(g, item) }
        return nil
    }

    /// memory.events (hierarchical: memcg_memory_event() counts up to the root's children)
    /// or memory.events.local.
    func memcgEvents(_ g: MemCgroup, local: Bool) -> [Int64] {
        let ids = local ? [g.id] : memcgDescendants(g.id)
        return MemcgEvent.allCases.map { e in ids.reduce(0) { $0 + memcg.groups[$1].events[e.rawValue] } }
    }

    /// The text of a cgroup v1 file of a group (/sys/fs/cgroup/memory/PATH/FILE): memory.stat
    /// (memcg1_stat_format()), memory.usage_in_bytes, ..., memory.oom_control. Nil for a file
    /// the model does not show.
    public func memcgFile(_ g: MemCgroup, _ name: String) -> String? {
        func bytes(_ pages: Int64) -> String { pages >= PageCounter.unlimited ? "9223372036854771712" : String(pages * 4096) }
        switch name {
        case "memory.stat":
            var out = ""
            for (n, v, size) in memcgV1Stat(g, local: true) { out += "\(n) \(size ? v * 4096 : v)\n" }
            let (lm, ls) = memcgHierarchicalLimits(g)
            out += "hierarchical_memory_limit \(bytes(lm))\nhierarchical_memsw_limit \(bytes(ls))\n"
            for (n, v, size) in memcgV1Stat(g, local: false) { out += "total_\(n) \(size ? v * 4096 : v)\n" }
            return out
        case "memory.usage_in_bytes":
            // mem_cgroup_usage(): the root has no page counter of its own; file + anon pages.
            if g.id == 0 { return bytes(max(0, counters[.nrFilePages] + counters[.nrAnonPages])) + "\n" }
            return bytes(g.memory.usage) + "\n"
        case "memory.memsw.usage_in_bytes":
            if g.id == 0 { return bytes(max(0, counters[.nrFilePages] + counters[.nrAnonPages]) + memcgSwap(g, local: false)) + "\n" }
            return bytes(g.memsw.usage) + "\n"
        case "memory.max_usage_in_bytes": return bytes(g.memory.watermark) + "\n"
        case "memory.memsw.max_usage_in_bytes": return bytes(g.memsw.watermark) + "\n"
        case "memory.limit_in_bytes": return bytes(g.memory.max) + "\n"
        case "memory.memsw.limit_in_bytes": return bytes(g.memsw.max) + "\n"
        case "memory.failcnt": return "\(g.memory.failcnt)\n"
        case "memory.memsw.failcnt": return "\(g.memsw.failcnt)\n"
        case "memory.swappiness": return "\(g.swappiness)\n"
        case "memory.use_hierarchy": return "1\n"
        case "memory.oom_control":
            return "oom_kill_disable \(g.oomKillDisable ? 1 : 0)\nunder_oom 0\noom_kill \(g.events[MemcgEvent.oomKill.rawValue])\n"
        default: return nil
        }
    }

    /// The text of a cgroup v2 file of a group (/sys/fs/cgroup/PATH/FILE): memory.current,
    /// memory.peak, memory.min/low/high/max, memory.events(.local), memory.stat
    /// (memcg_stat_format()), memory.swap.current, memory.swap.max. The root has only
    /// memory.stat (the others are CFTYPE_NOT_ON_ROOT). Nil for a file the model does not show.
    public func memcgFileV2(_ g: MemCgroup, _ name: String) -> String? {
        func tunable(_ pages: Int64) -> String { (pages >= PageCounter.unlimited ? "max" : String(pages * 4096)) + "\n" }
        if name == "memory.stat" { return memcgV2StatText(g) }
        guard g.id != 0 else { return nil }
        switch name {
        case "memory.current": return "\(g.memory.usage * 4096)\n"
        case "memory.peak": return "\(g.memory.watermark * 4096)\n"
        case "memory.min": return tunable(g.memory.min)
        case "memory.low": return tunable(g.memory.low)
        case "memory.high": return tunable(g.memory.high)
        case "memory.max": return tunable(g.memory.max)
        case "memory.events", "memory.events.local":
            let ev = memcgEvents(g, local: name == "memory.events.local")
            return MemcgEvent.allCases.map { "\($0.name) \(ev[$0.rawValue])\n" }.joined() + "sock_throttled 0\n"
        case "memory.swap.current": return "\(g.swapPages * 4096)\n"
        case "memory.swap.max": return tunable(g.swap.max)
        default: return nil
        }
    }

    /// Writes a group's file (memory.limit_in_bytes, memory.memsw.limit_in_bytes, memory.max,
    /// memory.swap.max, memory.swappiness, memory.force_empty, memory.oom_control). A limit
    /// below the usage reclaims down to it first (mem_cgroup_resize_max()); EBUSY if it cannot.
    public func memcgWrite(_ g: MemCgroup, _ name: String, _ value: Int64) throws(Errno) {
        let pages = value < 0 ? PageCounter.unlimited : value / 4096
        switch name {
        case "memory.limit_in_bytes", "memory.max":
            if memcg.v1 && g.memsw.max < pages { throw .EINVAL }
            var tries = 5
            while g.memory.usage > pages {
                drainAllStock(g.id)
                if g.memory.usage <= pages { break }
                if tryToFreeMemCgroupPages(g, g.memory.usage - pages, gfp: .kernel, maySwap: true) == 0 { tries -= 1 }
                if tries == 0 { throw .EBUSY }
            }
            g.memory.max = pages
        case "memory.memsw.limit_in_bytes":
            if pages < g.memory.max { throw .EINVAL }
            g.memsw.max = pages
        case "memory.swap.max": g.swap.max = pages
        case "memory.high":
            // memory_high_write(): the new high, then reclaim down to it.
            g.memory.high = pages
            drainAllStock(g.id)
            var retries = MemcgReclaim.maxRetries
            while g.memory.usage > pages {
                if tryToFreeMemCgroupPages(g, g.memory.usage - pages, gfp: .kernel, maySwap: true) == 0 {
                    if retries == 0 { break }
                    retries -= 1
                }
            }
        case "memory.reclaim":
            // memory_reclaim(): proactive reclaim of the amount asked, in rounds of at most
            // 4 x SWAP_CLUSTER_MAX, MAX_RECLAIM_RETRIES rounds without progress: EAGAIN.
            guard value >= 0 else { throw .EINVAL }
            let want = value / 4096
            var got: Int64 = 0, retries = MemcgReclaim.maxRetries
            while got < want {
                let r = tryToFreeMemCgroupPages(g, min(want - got, 4 * MemcgReclaim.clusterMax), gfp: .kernel,
                                                maySwap: true, proactive: true)
                got += r
                if r == 0 {
                    if retries == 0 { throw .EAGAIN }
                    retries -= 1
                }
            }
        case "memory.swappiness":
            guard (0...200).contains(value) else { throw .EINVAL }
            g.swappiness = Int(value)
        case "memory.force_empty": memcgForceEmpty(g)
        case "memory.oom_control": g.oomKillDisable = value != 0
        default: throw .EINVAL
        }
    }
}
