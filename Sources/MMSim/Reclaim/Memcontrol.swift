// mm/memcontrol.c, mm/memcontrol-v1.c, mm/page_counter.c: memory cgroups: a hierarchy of page counters, charges, per-CPU charge stocks, limit reclaim and memcg OOM.

/// struct page_counter: usage against a limit, with the high-water mark and the failure count.
public struct PageCounter: Sendable {
    /// PAGE_COUNTER_MAX (LONG_MAX / PAGE_SIZE): "unlimited".
    public static let unlimited = Int64.max / Int64(Page.size)
    public var usage: Int64 = 0
    public var max: Int64 = PageCounter.unlimited
    /// watermark (memory.max_usage_in_bytes, memory.peak)
    public var watermark: Int64 = 0
    /// failcnt: charges refused at this counter (tracked for memory, not memsw, on 6.18).
    public var failcnt: Int64 = 0
    public var high: Int64 = PageCounter.unlimited
    public var low: Int64 = 0
    public var min: Int64 = 0
}

/// memory.events (enum memcg_memory_event).
public enum MemcgEvent: Int, CaseIterable, Sendable {
    case low = 0, high, max, oom, oomKill, oomGroupKill
    public var name: String { ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"][rawValue] }
}

/// struct mem_cgroup: its counters (memory, memsw; v2 swap), per-node lruvecs, statistics
/// (the node_stat_item and vm_event_item subset the kernel keeps per memcg, indexed as VMStat)
/// and its place in the hierarchy.
public final class MemCgroup {
    public let id: Int
    /// Path below the controller's mount point ("" for the root).
    public let path: String
    public let parent: Int?
    public internal(set) var children: [Int] = []
    public internal(set) var memory = PageCounter()
    /// v1 memory+swap (memory.memsw.*); v2 swap (memory.swap.*) counts swap alone.
    public internal(set) var memsw = PageCounter()
    public internal(set) var swap = PageCounter()
    public internal(set) var lruvecs: [LRUVec]
    /// Local statistics (memcg->vmstats), pages or events, indexed by VMStat.rawValue.
    let stats = FixedArray<Int64>(repeating: 0, count: VMStat.allCases.count)
    /// MEMCG_SWAP: swap slots charged here.
    public internal(set) var swapPages: Int64 = 0
    /// memory.events, local.
    public internal(set) var events = [Int64](repeating: 0, count: MemcgEvent.allCases.count)
    /// memory.swappiness (inherits vm.swappiness at creation).
    public var swappiness: Int
    /// memory.oom_control's oom_kill_disable and the oom_kill count.
    public var oomKillDisable = false
    public internal(set) var online = true

    init(id: Int, path: String, parent: Int?, nodes: Int, swappiness: Int) {
        self.id = id
        self.path = path
        self.parent = parent
        self.swappiness = swappiness
        lruvecs = (0..<nodes).map { LRUVec(node: $0, memcg: id) }
    }
    deinit { stats.deallocate() }

    /// A statistic of this group alone.
    public func stat(_ s: VMStat) -> Int64 { stats[s.rawValue] }
    @inline(__always) func addStat(_ s: VMStat, _ n: Int64) { stats[s.rawValue] &+= n }
    @inline(__always) func addEvent(_ s: VMStat, _ n: Int64) { stats[s.rawValue] &+= n }
    /// An LRU list's pages over every node.
    public func lruPages(_ l: LRUList) -> Int64 { lruvecs.reduce(0) { $0 + $1.size(l) } }
}

/// The memory cgroups of the machine (the controller's hierarchy) and every CPU's charge
/// stock (memcg_stock_pcp).
public final class MemcgState {
    /// MEMCG_CHARGE_BATCH
    public static let chargeBatch: Int64 = 64
    /// NR_MEMCG_STOCK: memcgs cached per CPU.
    public static let stockSlots = 7
    /// By id; id 0 is the root. Removed groups stay, offline.
    public internal(set) var groups: [MemCgroup]
    /// Per CPU: (memcg id, pages) slots.
    var stock: [[(memcg: Int, pages: Int64)]]
    /// Deterministic replacement of a full stock (the kernel picks a random slot).
    var stockVictim = 0
    /// cgroup v1 (memory.limit_in_bytes...) or v2 (memory.max...): which files the groups show.
    public var v1 = true

    init(nodes: Int, cpus: Int) {
        groups = [MemCgroup(id: 0, path: "", parent: nil, nodes: nodes, swappiness: 60)]
        stock = Array(repeating: [], count: cpus)
    }

    /// The group at `path` (relative to the mount point, no leading slash), if online.
    public func group(path: String) -> MemCgroup? {
        let p = path.split(separator: "/").joined(separator: "/")
        return groups.first { $0.online && $0.path == p }
    }

    /// Ids of a group and its descendants, the group first (css_for_each_descendant_pre()).
    public func subtree(_ id: Int) -> [Int] {
        var out = [id]
        var i = 0
        while i < out.count {
            out.append(contentsOf: groups[out[i]].children.filter { groups[$0].online })
            i += 1
        }
        return out
    }

    /// True when `id` is `ancestor` or below it (mem_cgroup_is_descendant()).
    public func isDescendant(_ id: Int, of ancestor: Int) -> Bool {
        var c: Int? = id
        while let g = c {
            if g == ancestor { return true }
            c = groups[g].parent
        }
        return false
    }
}

/// Why a memcg charge failed.
public enum ChargeResult { case ok, nomem }

extension Machine {
    // MARK: Hierarchy

    /// mkdir in the memory controller: a new group below `parent`.
    @discardableResult
    public func memcgCreate(path: String) throws(Errno) -> MemCgroup {
        let comps = path.split(separator: "/").map(String.init)
        guard !comps.isEmpty, memcg.group(path: path) == nil else { throw .EEXIST }
        let parentPath = comps.dropLast().joined(separator: "/")
        guard let parent = memcg.group(path: parentPath) else { throw .ENOENT }
        let g = MemCgroup(id: memcg.groups.count, path: comps.joined(separator: "/"), parent: parent.id,
                          nodes: allocator.nodeCount, swappiness: parent.id == 0 ? vmSwappiness : parent.swappiness)
        memcg.groups.append(g)
        parent.children.append(g.id)
        return g
    }

    /// rmdir: only an empty group with no tasks (EBUSY otherwise); its remaining charges
    /// are reparented.
    public func memcgRemove(path: String) throws(Errno) {
        guard let g = memcg.group(path: path), g.id != 0 else { throw .ENOENT }
        guard g.children.allSatisfy({ !memcg.groups[$0].online }),
              !tasks.contains(where: { $0.state != .dead && $0.mm?.memcg == g.id }) else { throw .EBUSY }
        memcgForceEmpty(g)
        drainStock(g.id)
        g.online = false
    }

    /// Moves a task (its mm) to a group (writing cgroup.procs). As with v1's
    /// move_charge_at_immigrate = 0 and always on v2, charges made so far stay where they are.
    public func memcgAttach(_ t: Task, to g: MemCgroup) {
        t.mm?.memcg = g.id
    }

    // MARK: Charging

    /// mem_cgroup_charge() for a new user folio of `mm` (anonymous, page cache, swap-in):
    /// try_charge_memcg(), then commit_charge() (folio->memcg_data) and the v1 event counts.
    /// Root-group tasks are not charged, as the kernel skips the root's page counter.
    @inline(__always) func memcgCharge(_ id: Int, _ p: UnsafeMutablePointer<PageMeta>, gfp: GFP = .highuserMovable) -> ChargeResult {
        if id == 0 { return .ok }
        return memcgChargeSlow(id, p, gfp: gfp)
    }

    @inline(never) func memcgChargeSlow(_ id: Int, _ p: UnsafeMutablePointer<PageMeta>, gfp: GFP) -> ChargeResult {
        let n = folioPages(p)
        guard tryChargeMemcg(id, n, gfp: gfp) == .ok else { return .nomem }
        p.pointee.flags.insert(.memcgCharged)
        p.pointee.spare = UInt32(truncatingIfNeeded: id)
        memcg.groups[id].addEvent(.pgpgin, 1)
        return .ok
    }

    /// try_charge_memcg(): the per-CPU stock first; else the page counters with a batch of
    /// MEMCG_CHARGE_BATCH (the surplus refills the stock), then the exact amount; over the
    /// limit: the max event, limit reclaim, a drain of every stock, retries
    /// (MAX_RECLAIM_RETRIES while reclaim makes progress), then the memcg OOM killer.
    func tryChargeMemcg(_ id: Int, _ nrPages: Int64, gfp: GFP) -> ChargeResult {
        let cpu = currentCPU
        var batch = max(MemcgState.chargeBatch, nrPages)
        var retries = MemcgReclaim.maxRetries
        var drained = false
        var oomTried = false
        while true {
            if consumeStock(cpu, id, nrPages) { return .ok }
            var overLimit: Int
            var maySwap = true
            switch pageCounterTryCharge(id, batch, memsw: memcg.v1 && swapAccounting) {
            case nil:
                if batch > nrPages { refillStock(cpu, id, batch - nrPages) }
                return .ok
            case let (g, viaMemsw)?:
                overLimit = g
                if viaMemsw { maySwap = false }
            }
            if batch > nrPages {
                batch = nrPages
                continue
            }
            let over = memcg.groups[overLimit]
            over.events[MemcgEvent.max.rawValue] += 1
            let reclaimed = tryToFreeMemCgroupPages(over, nrPages, gfp: gfp, maySwap: maySwap)
            if memcgMargin(over) >= nrPages { continue }
            if !drained {
                drainAllStock(overLimit)
                drained = true
                continue
            }
            if reclaimed > 0 && nrPages <= 8 { continue }
            if retries > 0 {
                retries -= 1
                continue
            }
            if oomTried { return .nomem }
            oomTried = true
            guard memcgOOM(over, gfp: gfp, order: 0) else { return .nomem }
            if let t = cpus[cpu].task, t.state == .dead || t.signals.contains(where: { $0.number == 9 }) { return .nomem }
            retries = MemcgReclaim.maxRetries
        }
    }

    /// page_counter_try_charge() up the hierarchy on memsw (v1 with swap accounting) then
    /// memory: nil on success, else the group whose counter refused (and whether it was memsw).
    func pageCounterTryCharge(_ id: Int, _ n: Int64, memsw: Bool) -> (Int, Bool)? {
        if memsw {
            if let g = chargeLevel(id, n, \.memsw) { return (g, true) }
        }
        if let g = chargeLevel(id, n, \.memory) {
            if memsw { unchargeLevel(id, n, \.memsw) }
            return (g, false)
        }
        return nil
    }

    /// One counter up the hierarchy: charged everywhere, or nowhere and the refusing group
    /// (whose failcnt grows when it is the memory counter).
    private func chargeLevel(_ id: Int, _ n: Int64, _ kp: ReferenceWritableKeyPath<MemCgroup, PageCounter>) -> Int? {
        var c: Int? = id
        var done: [Int] = []
        while let g = c, g != 0 {
            let grp = memcg.groups[g]
            let new = grp[keyPath: kp].usage + n
            if new > grp[keyPath: kp].max {
                if kp == \MemCgroup.memory { grp.memory.failcnt += 1 }
                for d in done { memcg.groups[d][keyPath: kp].usage -= n }
                return g
            }
            grp[keyPath: kp].usage = new
            if new > grp[keyPath: kp].watermark { grp[keyPath: kp].watermark = new }
            done.append(g)
            c = grp.parent
        }
        return nil
    }

    private func unchargeLevel(_ id: Int, _ n: Int64, _ kp: ReferenceWritableKeyPath<MemCgroup, PageCounter>) {
        var c: Int? = id
        while let g = c, g != 0 {
            memcg.groups[g][keyPath: kp].usage -= n
            c = memcg.groups[g].parent
        }
    }

    /// mem_cgroup_margin(): pages that can still be charged below the limit(s).
    func memcgMargin(_ g: MemCgroup) -> Int64 {
        var m = max(0, g.memory.max - g.memory.usage)
        if memcg.v1 && swapAccounting { m = min(m, max(0, g.memsw.max - g.memsw.usage)) }
        return m
    }

    /// Whether memsw (v1) accounting is on: swap accounting needs a swap device to matter,
    /// but the counter is kept either way (cgroup.memory=noswap is not set).
    var swapAccounting: Bool { true }

    /// consume_stock()
    private func consumeStock(_ cpu: Int, _ id: Int, _ n: Int64) -> Bool {
        guard n <= MemcgState.chargeBatch else { return false }
        for i in memcg.stock[cpu].indices where memcg.stock[cpu][i].memcg == id {
            if memcg.stock[cpu][i].pages >= n {
                memcg.stock[cpu][i].pages -= n
                return true
            }
            return false
        }
        return false
    }

    /// refill_stock(): the surplus of a batch charge stays on this CPU for the group; more than
    /// MEMCG_CHARGE_BATCH is given back (drain_stock()).
    private func refillStock(_ cpu: Int, _ id: Int, _ n: Int64) {
        if let i = memcg.stock[cpu].firstIndex(where: { $0.memcg == id }) {
            memcg.stock[cpu][i].pages += n
            if memcg.stock[cpu][i].pages > MemcgState.chargeBatch {
                memcgUncharge(id, memcg.stock[cpu][i].pages)
                memcg.stock[cpu][i].pages = 0
            }
            return
        }
        if memcg.stock[cpu].count >= MemcgState.stockSlots {
            let v = memcg.stockVictim % MemcgState.stockSlots
            memcg.stockVictim += 1
            memcgUncharge(memcg.stock[cpu][v].memcg, memcg.stock[cpu][v].pages)
            memcg.stock[cpu].remove(at: v)
        }
        memcg.stock[cpu].append((id, n))
    }

    /// drain_all_stock() for the groups below `root`: every CPU's cached charge given back.
    func drainAllStock(_ root: Int) {
        for c in memcg.stock.indices {
            memcg.stock[c].removeAll { s in
                guard memcg.isDescendant(s.memcg, of: root) else { return false }
                memcgUncharge(s.memcg, s.pages)
                return true
            }
        }
    }

    /// Drops every stock of one group (offlining).
    func drainStock(_ id: Int) {
        for c in memcg.stock.indices {
            memcg.stock[c].removeAll { s in
                guard s.memcg == id else { return false }
                memcgUncharge(s.memcg, s.pages)
                return true
            }
        }
    }

    /// Pages held in stocks for a group (part of its usage, not of any folio).
    func stockPages(_ id: Int) -> Int64 {
        memcg.stock.reduce(0) { $0 + $1.filter { $0.memcg == id }.reduce(0) { $0 + $1.pages } }
    }

    /// memcg_uncharge(): memory (and memsw) counters up the hierarchy.
    func memcgUncharge(_ id: Int, _ n: Int64, memsw: Bool = true) {
        guard id != 0, n > 0 else { return }
        unchargeLevel(id, n, \.memory)
        if memsw && memcg.v1 { unchargeLevel(id, n, \.memsw) }
    }

    /// mem_cgroup_uncharge() of a folio being freed: counters and the v1 pgpgout event.
    @inline(__always) func memcgUncharge(_ p: UnsafeMutablePointer<PageMeta>) {
        guard p.pointee.flags.contains(.memcgCharged) else { return }
        let id = Int(p.pointee.spare)
        p.pointee.flags.remove(.memcgCharged)
        memcgUncharge(id, folioPages(p))
        memcg.groups[id].addEvent(.pgpgout, 1)
    }

    /// mem_cgroup_swapout(): a folio leaving memory for swap keeps its memsw charge on the
    /// swap entry (swap_cgroup) and gives up its memory charge; MEMCG_SWAP counts it.
    func memcgSwapout(_ p: UnsafeMutablePointer<PageMeta>) -> Int {
        guard p.pointee.flags.contains(.memcgCharged) else { return 0 }
        let id = Int(p.pointee.spare)
        let n = folioPages(p)
        p.pointee.flags.remove(.memcgCharged)
        unchargeLevel(id, n, \.memory)
        if !memcg.v1 { unchargeLevel(id, n, \.memsw) }
        var c: Int? = id
        while let g = c, g != 0 {
            memcg.groups[g].swapPages += n
            if !memcg.v1 { memcg.groups[g].swap.usage += n }
            c = memcg.groups[g].parent
        }
        memcg.groups[id].addEvent(.pgpgout, 1)
        return id
    }

    /// mem_cgroup_uncharge_swap(): a swap slot charged to `id` is freed.
    func memcgUnchargeSwap(_ id: Int, _ n: Int64) {
        guard id != 0 else { return }
        var c: Int? = id
        while let g = c, g != 0 {
            memcg.groups[g].swapPages -= n
            if memcg.v1 { memcg.groups[g].memsw.usage -= n } else { memcg.groups[g].swap.usage -= n }
            c = memcg.groups[g].parent
        }
    }

    /// mod_lruvec_page_state(): a node statistic and the folio's memcg's copy of it.
    @inline(__always) func modFolioStat(_ p: UnsafeMutablePointer<PageMeta>, _ s: VMStat, _ n: Int64) {
        counters.add(s, n)
        if p.pointee.flags.contains(.memcgCharged) { memcg.groups[Int(p.pointee.spare)].addStat(s, n) }
    }

    /// count_memcg_events() for the group of `mm` (faults).
    @inline(__always) func memcgEvent(_ mm: MM, _ s: VMStat, _ n: Int64 = 1) {
        if mm.memcg != 0 { memcg.groups[mm.memcg].addEvent(s, n) }
    }

    /// memory.force_empty (v1) / offlining: reclaim everything the group holds.
    public func memcgForceEmpty(_ g: MemCgroup) {
        lruAddDrainAll()
        drainAllStock(g.id)
        var loops = 5
        while g.memory.usage > 0 && loops > 0 {
            let got = tryToFreeMemCgroupPages(g, g.memory.usage, gfp: .kernel, maySwap: true)
            if got == 0 { loops -= 1 }
        }
    }

    /// mem_cgroup_oom() -> mem_cgroup_out_of_memory(): the OOM killer constrained to the
    /// group's subtree (CONSTRAINT_MEMCG). Returns true when a task was killed.
    func memcgOOM(_ g: MemCgroup, gfp: GFP, order: Int) -> Bool {
        g.events[MemcgEvent.oom.rawValue] += 1
        if g.oomKillDisable { return false }
        let ids = Set(memcg.subtree(g.id))
        return outOfMemory(gfp: gfp, order: order, memcg: g) { t in ids.contains(t.mm?.memcg ?? -1) } != nil
    }
}
