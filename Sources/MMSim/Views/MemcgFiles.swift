// mm/memcontrol-v1.c (memcg1_stat_format(), the v1 files) and mm/memcontrol.c (memory.stat, memory.events of v2): what a memory cgroup's files show.

extension Machine {
    /// memory.stat fields of cgroup v1 in the kernel's order: (name, value in pages or events,
    /// is a size). memcg1_stats[] then the events, then the LRU lists.
    func memcgV1Stat(_ g: MemCgroup) -> [(String, Int64, Bool)] {
        let sub = memcg.subtree(g.id)
        func local(_ s: VMStat) -> Int64 { sub.reduce(0) { $0 + memcg.groups[$1].stat(s) } }
        func lru(_ l: LRUList) -> Int64 { sub.reduce(0) { $0 + memcg.groups[$1].lruPages(l) } }
        return [
            ("cache", local(.nrFilePages), true), ("rss", local(.nrAnonPages), true),
            ("rss_huge", local(.nrAnonTransparentHugepages), true), ("shmem", local(.nrShmem), true),
            ("mapped_file", local(.nrMapped), true), ("dirty", local(.nrDirty), true),
            ("writeback", local(.nrWriteback), true),
            ("workingset_refault_anon", local(.workingsetRefaultAnon), false),
            ("workingset_refault_file", local(.workingsetRefaultFile), false),
            ("swap", g.swapPages, true), ("swapcached", local(.nrSwapcached), true),
            ("pgpgin", local(.pgpgin), false), ("pgpgout", local(.pgpgout), false),
            ("pgfault", local(.pgfault), false), ("pgmajfault", local(.pgmajfault), false),
            ("inactive_anon", lru(.inactiveAnon), true), ("active_anon", lru(.activeAnon), true),
            ("inactive_file", lru(.inactiveFile), true), ("active_file", lru(.activeFile), true),
            ("unevictable", lru(.unevictable), true),
        ]
    }

    /// One value of a group, by the name the scenario language gives it: a memory.stat field
    /// (sizes in kB), `usage`/`max_usage`/`memsw_usage`/`memsw_max_usage`/`limit` (kB, as
    /// usage_in_bytes and friends), `failcnt`, `oom_kill`, `events.NAME`, or a reclaim event
    /// (`pgscan_anon`, `pgsteal_file`, `pgactivate`, ...). Nil for an unknown name.
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
        if let s = memcgV1Stat(g).first(where: { $0.0 == field }) { return s.2 ? s.1 * 4 : s.1 }
        if let item = VMStat(name: field) { return memcg.subtree(g.id).reduce(0) { $0 + memcg.groups[$1].stat(item) } }
        return nil
    }

    /// The text of a group's file (memory.stat, memory.usage_in_bytes, ... or v2's
    /// memory.current, memory.max, memory.events).
    public func memcgFile(_ g: MemCgroup, _ name: String) -> String? {
        func bytes(_ pages: Int64) -> String { pages >= PageCounter.unlimited ? "9223372036854771712" : String(pages * 4096) }
        switch name {
        case "memory.stat":
            var out = ""
            for (n, v, size) in memcgV1Stat(g) { out += "\(n) \(size ? v * 4096 : v)\n" }
            out += "hierarchical_memory_limit \(bytes(g.memory.max))\nhierarchical_memsw_limit \(bytes(g.memsw.max))\n"
            return out
        case "memory.usage_in_bytes", "memory.current": return bytes(g.memory.usage) + "\n"
        case "memory.max_usage_in_bytes", "memory.peak": return bytes(g.memory.watermark) + "\n"
        case "memory.limit_in_bytes", "memory.max": return (name == "memory.max" && g.memory.max >= PageCounter.unlimited ? "max" : bytes(g.memory.max)) + "\n"
        case "memory.memsw.usage_in_bytes": return bytes(g.memsw.usage) + "\n"
        case "memory.memsw.limit_in_bytes": return bytes(g.memsw.max) + "\n"
        case "memory.failcnt": return "\(g.memory.failcnt)\n"
        case "memory.swappiness": return "\(g.swappiness)\n"
        case "memory.oom_control":
            return "oom_kill_disable \(g.oomKillDisable ? 1 : 0)\nunder_oom 0\noom_kill \(g.events[MemcgEvent.oomKill.rawValue])\n"
        case "memory.events":
            return MemcgEvent.allCases.map { "\($0.name) \(g.events[$0.rawValue])" }.joined(separator: "\n") + "\n"
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
        case "memory.swappiness":
            guard (0...200).contains(value) else { throw .EINVAL }
            g.swappiness = Int(value)
        case "memory.force_empty": memcgForceEmpty(g)
        case "memory.oom_control": g.oomKillDisable = value != 0
        default: throw .EINVAL
        }
    }
}
