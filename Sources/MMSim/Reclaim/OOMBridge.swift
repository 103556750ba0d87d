// Temporary bridge: the OOM killer call used by reclaim until mm/oom_kill.c's model lands.

extension Machine {
    /// out_of_memory(): pick the eligible task with the most memory (RSS + swap entries +
    /// page tables, oom_badness() without oom_score_adj) and kill it with SIGKILL.
    @discardableResult
    func outOfMemory(gfp: GFP, order: Int, memcg g: MemCgroup?, eligible: (Task) -> Bool) -> Task? {
        var best: Task?
        var bestPoints: Int64 = -1
        for t in tasks where t.state == .running && t.threadGroupLeader == nil && eligible(t) {
            guard let mm = t.mm else { continue }
            let points = mm.rssPages + mm.rss[RSSCounter.swapEnts.rawValue] + Int64(mm.pageTable.tablePages)
            if points > bestPoints { best = t; bestPoints = points }
        }
        guard let v = best, let mm = v.mm else { return nil }
        if let g = g {
            log.append("memory: usage \(g.memory.usage * 4)kB, limit \(g.memory.max * 4)kB, failcnt \(g.memory.failcnt)")
            g.events[MemcgEvent.oomKill.rawValue] += 1
        }
        log.append("Out of memory: Killed process \(v.pid) (\(v.name)) total-vm:\(mm.totalVM * 4)kB, anon-rss:\(mm.rss[RSSCounter.anonPages.rawValue] * 4)kB, file-rss:\(mm.rss[RSSCounter.filePages.rawValue] * 4)kB, shmem-rss:\(mm.rss[RSSCounter.shmemPages.rawValue] * 4)kB, UID:0")
        counters.add(.oomKill, 1)
        v.signals.append(Signal(number: 9, address: 0))
        // The task running this fault dies when the fault unwinds (its SIGKILL is pending);
        // any other victim goes now.
        if let cur = cpus[currentCPU].task, cur === v || cur.mm === mm { v.oomKillPending = true } else { exit(v, code: 137) }
        return v
    }
}
