// mm/memcontrol.c, mm/memcontrol-v1.c, mm/page_counter.c: memory cgroups: a hierarchy of page counters, charges, per-CPU charge stocks, limit reclaim and memcg OOM.

/// struct page_counter: usage against a limit, with the high-water mark and the failure count.
public struct PageCounter: Sendable {
    /// The usage rises by `n` unless that passes the limit; the high-water mark follows.
    @inline(__always) mutating func tryCharge(_ n: Int64) -> Bool {
        let new = usage &+ n
        if new > max { return false }
        usage = new
        if new > watermark { watermark = new }
        return true
    }
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

/// The hot part of struct mem_cgroup, in a record that never moves, reached by the group's
/// id through `MemcgState.data` (no reference counting on the charge and statistics paths).
struct MemcgData {
    var memory = PageCounter()
    var memsw = PageCounter()
    var swap = PageCounter()
    /// MEMCG_SWAP: swap slots charged here.
    var swapPages: Int64 = 0
    /// The parent's id, -1 for the root.
    var parent: Int = -1
    var swappiness = 60
    var online = true
    /// Local statistics (memcg->vmstats), pages or events, indexed by VMStat.rawValue.
    var stats: UnsafeMutablePointer<Int64>
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
    let d: UnsafeMutablePointer<MemcgData>
    public let lruvecs: [LRUVec]
    /// memory.events, local.
    public internal(set) var events = [Int64](repeating: 0, count: MemcgEvent.allCases.count)
    /// memory.oom_control's oom_kill_disable.
    public var oomKillDisable = false

    init(id: Int, path: String, parent: Int?, nodes: Int, swappiness: Int) {
        self.id = id
        self.path = path
        self.parent = parent
        let stats = UnsafeMutablePointer<Int64>.allocate(capacity: VMStat.allCases.count)
        stats.initialize(repeating: 0, count: VMStat.allCases.count)
        d = .allocate(capacity: 1)
        d.initialize(to: MemcgData(parent: parent ?? -1, swappiness: swappiness, stats: stats))
        lruvecs = (0..<nodes).map { LRUVec(node: $0, memcg: id) }
    }

    public internal(set) var memory: PageCounter {
        get { d.pointee.memory }
        set { d.pointee.memory = newValue }
    }
    /// v1 memory+swap (memory.memsw.*); v2 swap (memory.swap.*) counts swap alone.
    public internal(set) var memsw: PageCounter {
        get { d.pointee.memsw }
        set { d.pointee.memsw = newValue }
    }
    public internal(set) var swap: PageCounter {
        get { d.pointee.swap }
        set { d.pointee.swap = newValue }
    }
    /// MEMCG_SWAP: swap slots charged here.
    public internal(set) var swapPages: Int64 {
        get { d.pointee.swapPages }
        set { d.pointee.swapPages = newValue }
    }
    /// memory.swappiness (inherits the parent's at creation).
    public var swappiness: Int {
        get { d.pointee.swappiness }
        set { d.pointee.swappiness = newValue }
    }
    public internal(set) var online: Bool {
        get { d.pointee.online }
        set { d.pointee.online = newValue }
    }
    /// A statistic of this group alone.
    public func stat(_ s: VMStat) -> Int64 { d.pointee.stats[s.rawValue] }
    @inline(__always) func addStat(_ s: VMStat, _ n: Int64) { d.pointee.stats[s.rawValue] &+= n }
    @inline(__always) func addEvent(_ s: VMStat, _ n: Int64) { d.pointee.stats[s.rawValue] &+= n }
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
    public internal(set) var groups: [MemCgroup] = []
    /// Each group's hot record and its lruvecs (id * nodes + node), flat.
    private(set) var data: UnsafeMutablePointer<UnsafeMutablePointer<MemcgData>>
    private(set) var lruvecTable: UnsafeMutablePointer<LRUVec>
    private var capacity = 0
    let nodes: Int
    /// Per CPU, NR_MEMCG_STOCK slots of (memcg id or -1, pages), flat.
    let stockMemcg: FixedArray<Int>
    let stockPagesHeld: FixedArray<Int64>
    let cpus: Int
    /// Deterministic replacement of a full stock (the kernel picks a random slot).
    var stockVictim = 0
    /// cgroup v1 (memory.limit_in_bytes...) or v2 (memory.max...): which files the groups show.
    public var v1 = true

    init(nodes: Int, cpus: Int) {
        self.nodes = nodes
        data = .allocate(capacity: 1)
        lruvecTable = .allocate(capacity: 1)
        self.cpus = cpus
        stockMemcg = FixedArray(repeating: -1, count: cpus * Self.stockSlots)
        stockPagesHeld = FixedArray(repeating: 0, count: cpus * Self.stockSlots)
        add(MemCgroup(id: 0, path: "", parent: nil, nodes: nodes, swappiness: 60))
    }

    deinit {
        for g in groups {
            for lv in g.lruvecs { lv.p.deallocate() }
            g.d.pointee.stats.deallocate()
            g.d.deallocate()
        }
        data.deallocate()
        lruvecTable.deallocate()
        stockMemcg.deallocate()
        stockPagesHeld.deallocate()
    }

    /// Registers a new group in the flat tables.
    func add(_ g: MemCgroup) {
        if groups.count == capacity {
            let cap = max(8, capacity * 2)
            let nd = UnsafeMutablePointer<UnsafeMutablePointer<MemcgData>>.allocate(capacity: cap)
            let nl = UnsafeMutablePointer<LRUVec>.allocate(capacity: cap * nodes)
            if capacity > 0 {
                nd.moveInitialize(from: data, count: groups.count)
                nl.moveInitialize(from: lruvecTable, count: groups.count * nodes)
            }
            data.deallocate()
            lruvecTable.deallocate()
            data = nd
            lruvecTable = nl
            capacity = cap
        }
        (data + groups.count).initialize(to: g.d)
        for n in 0..<nodes { (lruvecTable + groups.count * nodes + n).initialize(to: g.lruvecs[n]) }
        groups.append(g)
    }

    /// mem_cgroup_lruvec()
    @inline(__always) func lruvec(_ id: Int, node: Int) -> LRUVec { lruvecTable[id &* nodes &+ node] }
    /// The hot record of group `id`.
    @inline(__always) func d(_ id: Int) -> UnsafeMutablePointer<MemcgData> { data[id] }

    /// The group at `path` (relative to the mount point, no leading slash), if online.
    public func group(path: String) -> MemCgroup? {
        let p = path.split(separator: "/").joined(separator: "/")
        return groups.first { $0.online && $0.path == p }
    }

    /// Ids of a group and its descendants, the group first (css_for_each_descendant_pre()).
    public func subtree(_ id: Int) -> [Int] {
        if groups[id].children.isEmpty { return [id] }
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
        var c = id
        while c >= 0 {
            if c == ancestor { return true }
            c = data[c].pointee.parent
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
        memcg.add(g)
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
    /// The mm's page tables move with it: the model's tasks start in the root group, where the
    /// kernel's would have been charged to their group since exec.
    public func memcgAttach(_ t: Task, to g: MemCgroup) {
        guard let mm = t.mm else { return }
        let tables = Int64(mm.pageTable.counts.total)
        memcgChargeKmem(mm.memcg, -tables)
        mm.memcg = g.id
        memcgChargeKmem(g.id, tables)
    }

    /// obj_cgroup_charge() of user page tables (GFP_PGTABLE_USER has __GFP_ACCOUNT): a charge
    /// like a folio's (stock, limit reclaim), forced past the limit when it cannot be had
    /// (the model's page-table allocations do not fail for the memcg); freed tables uncharge.
    func memcgChargeKmem(_ id: Int, _ n: Int64) {
        guard id != 0, n != 0 else { return }
        if n < 0 {
            memcgUncharge(id, -n)
        } else if tryChargeMemcg(id, n, gfp: .kernel) != .ok {
            var c = id
            while c > 0 {
                let d = memcg.d(c)
                d.pointee.memory.usage += n
                if d.pointee.memory.usage > d.pointee.memory.watermark { d.pointee.memory.watermark = d.pointee.memory.usage }
                if memcg.v1 { d.pointee.memsw.usage += n; d.pointee.memsw.watermark = max(d.pointee.memsw.watermark, d.pointee.memsw.usage) }
                c = d.pointee.parent
            }
        }
        memcg.d(id).pointee.stats[VMStat.nrPageTablePages.rawValue] += n
    }

    // MARK: Charging

    /// mem_cgroup_charge() for a new user folio of `mm` (anonymous, page cache, swap-in):
    /// try_charge_memcg(), then commit_charge() (folio->memcg_data) and the v1 event counts.
    /// Root-group tasks are not charged, as the kernel skips the root's page counter.
    @inline(__always) func memcgCharge(_ id: Int, _ p: UnsafeMutablePointer<PageMeta>, gfp: GFP = .kernel,
                                       noRetry: Bool = false) -> ChargeResult {
        if id == 0 { return .ok }
        return memcgChargeSlow(id, p, gfp: gfp, noRetry: noRetry)
    }

    @inline(never) func memcgChargeSlow(_ id: Int, _ p: UnsafeMutablePointer<PageMeta>, gfp: GFP, noRetry: Bool) -> ChargeResult {
        let n = folioPages(p)
        guard tryChargeMemcg(id, n, gfp: gfp, noRetry: noRetry) == .ok else { return .nomem }
        p.pointee.flags.insert(.memcgCharged)
        p.pointee.spare = UInt32(truncatingIfNeeded: id)
        memcg.d(id).pointee.stats[VMStat.pgpgin.rawValue] &+= 1
        return .ok
    }

    /// try_charge_memcg(): the per-CPU stock first; else the page counters with a batch of
    /// MEMCG_CHARGE_BATCH (the surplus refills the stock), then the exact amount; over the
    /// limit: the max event, limit reclaim, a drain of every stock, retries
    /// (MAX_RECLAIM_RETRIES while reclaim makes progress), then the memcg OOM killer.
    func tryChargeMemcg(_ id: Int, _ nrPages: Int64, gfp: GFP, noRetry: Bool = false) -> ChargeResult {
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
                reclaimOverHigh(id, batch)       // memcg_nr_pages_over_high += batch
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
            if noRetry { return .nomem }     // __GFP_NORETRY
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

    /// mem_cgroup_handle_over_high() -> reclaim_high() as the charging task returns to user
    /// space: every group (or ancestor) over memory.high reclaims the charge's worth (at least
    /// SWAP_CLUSTER_MAX) and counts memory.events high. The kernel then throttles the task
    /// for a while (the overage penalty); the model has no clock, so only the reclaim is done.
    @inline(__always) func reclaimOverHigh(_ id: Int, _ nrPages: Int64) {
        var c = id
        while c > 0 {
            let d = memcg.d(c)
            if d.pointee.memory.usage > d.pointee.memory.high {
                let g = memcg.groups[c]
                g.events[MemcgEvent.high.rawValue] += 1
                tryToFreeMemCgroupPages(g, nrPages, gfp: .kernel, maySwap: true)
            }
            c = d.pointee.parent
        }
    }

    /// page_counter_try_charge() up the hierarchy on memsw (v1 with swap accounting) then
    /// memory: nil on success, else the group whose counter refused (and whether it was memsw).
    func pageCounterTryCharge(_ id: Int, _ n: Int64, memsw: Bool) -> (Int, Bool)? {
        if memsw {
            if let g = chargeLevel(id, n, memsw: true) { return (g, true) }
        }
        if let g = chargeLevel(id, n, memsw: false) {
            if memsw { unchargeLevel(id, n, memsw: true) }
            return (g, false)
        }
        return nil
    }

    /// One counter (memory or memsw) up the hierarchy: charged everywhere, or nowhere and the
    /// refusing group (whose failcnt grows when it is the memory counter).
    private func chargeLevel(_ id: Int, _ n: Int64, memsw: Bool) -> Int? {
        var c = id
        while c > 0 {
            let d = memcg.d(c)
            let ok: Bool = memsw ? d.pointee.memsw.tryCharge(n) : d.pointee.memory.tryCharge(n)
            if !ok {
                if !memsw { d.pointee.memory.failcnt += 1 }
                var u = id
                while u != c { let du = memcg.d(u); if memsw { du.pointee.memsw.usage -= n } else { du.pointee.memory.usage -= n }; u = du.pointee.parent }
                return c
            }
            c = d.pointee.parent
        }
        return nil
    }

    func unchargeLevel(_ id: Int, _ n: Int64, memsw: Bool) {
        var c = id
        while c > 0 {
            let d = memcg.d(c)
            if memsw { d.pointee.memsw.usage -= n } else { d.pointee.memory.usage -= n }
            c = d.pointee.parent
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
        let base = cpu &* MemcgState.stockSlots
        for i in base..<(base + MemcgState.stockSlots) where memcg.stockMemcg[i] == id {
            if memcg.stockPagesHeld[i] >= n {
                memcg.stockPagesHeld[i] -= n
                return true
            }
            return false
        }
        return false
    }

    /// refill_stock(): the surplus of a batch charge stays on this CPU for the group; more than
    /// MEMCG_CHARGE_BATCH is given back (drain_stock()). A full stock gives up one slot.
    private func refillStock(_ cpu: Int, _ id: Int, _ n: Int64) {
        let base = cpu &* MemcgState.stockSlots
        var free = -1
        for i in base..<(base + MemcgState.stockSlots) {
            if memcg.stockMemcg[i] == id {
                memcg.stockPagesHeld[i] += n
                if memcg.stockPagesHeld[i] > MemcgState.chargeBatch {
                    memcgUncharge(id, memcg.stockPagesHeld[i])
                    memcg.stockPagesHeld[i] = 0
                }
                return
            }
            if free < 0 && memcg.stockMemcg[i] < 0 { free = i }
        }
        if free < 0 {
            free = base + memcg.stockVictim % MemcgState.stockSlots
            memcg.stockVictim += 1
            memcgUncharge(memcg.stockMemcg[free], memcg.stockPagesHeld[free])
        }
        memcg.stockMemcg[free] = id
        memcg.stockPagesHeld[free] = n
    }

    /// drain_all_stock() for the groups below `root`: every CPU's cached charge given back.
    func drainAllStock(_ root: Int) {
        for i in 0..<memcg.stockMemcg.count where memcg.stockMemcg[i] >= 0 && memcg.isDescendant(memcg.stockMemcg[i], of: root) {
            memcgUncharge(memcg.stockMemcg[i], memcg.stockPagesHeld[i])
            memcg.stockMemcg[i] = -1
            memcg.stockPagesHeld[i] = 0
        }
    }

    /// Drops every stock of one group (offlining).
    func drainStock(_ id: Int) {
        for i in 0..<memcg.stockMemcg.count where memcg.stockMemcg[i] == id {
            memcgUncharge(id, memcg.stockPagesHeld[i])
            memcg.stockMemcg[i] = -1
            memcg.stockPagesHeld[i] = 0
        }
    }

    /// Pages held in stocks for a group (part of its usage, not of any folio).
    func stockPages(_ id: Int) -> Int64 {
        var n: Int64 = 0
        for i in 0..<memcg.stockMemcg.count where memcg.stockMemcg[i] == id { n += memcg.stockPagesHeld[i] }
        return n
    }

    /// memcg_uncharge(): memory (and memsw) counters up the hierarchy.
    func memcgUncharge(_ id: Int, _ n: Int64, memsw: Bool = true) {
        guard id != 0, n > 0 else { return }
        unchargeLevel(id, n, memsw: false)
        if memsw && memcg.v1 { unchargeLevel(id, n, memsw: true) }
    }

    /// mem_cgroup_uncharge() of a folio being freed: counters and the v1 pgpgout event.
    @inline(__always) func memcgUncharge(_ p: UnsafeMutablePointer<PageMeta>) {
        guard p.pointee.flags.contains(.memcgCharged) else { return }
        let id = Int(p.pointee.spare)
        p.pointee.flags.remove(.memcgCharged)
        memcgUncharge(id, folioPages(p))
        memcg.d(id).pointee.stats[VMStat.pgpgout.rawValue] &+= 1
    }

    /// mem_cgroup_swapout(): a folio leaving memory for its swap slot `e` gives up its memory
    /// charge; on v1 its memsw charge moves to the slot (swap_cgroup_record(), MEMCG_SWAP).
    func memcgSwapout(_ p: UnsafeMutablePointer<PageMeta>, _ e: SwapEntry) {
        guard p.pointee.flags.contains(.memcgCharged) else { return }
        let id = Int(p.pointee.spare)
        let n = folioPages(p)
        p.pointee.flags.remove(.memcgCharged)
        unchargeLevel(id, n, memsw: false)
        memcg.d(id).pointee.stats[VMStat.pgpgout.rawValue] &+= 1
        guard memcg.v1, let si = swap.areas[e.type] else { return }
        si.cgroup[e.offset] = UInt16(truncatingIfNeeded: id)
        var c = id
        while c > 0 {
            memcg.d(c).pointee.swapPages += n
            c = memcg.d(c).pointee.parent
        }
    }

    /// mem_cgroup_try_charge_swap() on cgroup v2: the swap counter up the hierarchy.
    func memcgChargeSwap(_ id: Int) -> Bool {
        var c = id
        while c > 0 {
            guard memcg.d(c).pointee.swap.usage + 1 <= memcg.d(c).pointee.swap.max else {
                var u = id
                while u != c { memcg.d(u).pointee.swap.usage -= 1; memcg.d(u).pointee.swapPages -= 1; u = memcg.d(u).pointee.parent }
                return false
            }
            memcg.d(c).pointee.swap.usage += 1
            memcg.d(c).pointee.swapPages += 1
            c = memcg.d(c).pointee.parent
        }
        return true
    }

    /// mem_cgroup_uncharge_swap(): the charge a swap slot holds for `id` goes (memsw on v1,
    /// swap on v2) with its MEMCG_SWAP count.
    func memcgUnchargeSwap(_ id: Int, _ n: Int64) {
        var c = id
        while c > 0 {
            let d = memcg.d(c)
            d.pointee.swapPages -= n
            if memcg.v1 { d.pointee.memsw.usage -= n } else { d.pointee.swap.usage -= n }
            c = d.pointee.parent
        }
    }

    /// mod_lruvec_page_state(): a node statistic and the folio's memcg's copy of it.
    @inline(__always) func modFolioStat(_ p: UnsafeMutablePointer<PageMeta>, _ s: VMStat, _ n: Int64) {
        counters.add(s, n)
        if p.pointee.flags.contains(.memcgCharged) { memcg.d(Int(p.pointee.spare)).pointee.stats[s.rawValue] &+= n }
    }

    /// count_memcg_events() for the group of `mm` (faults).
    @inline(__always) func memcgEvent(_ mm: MM, _ s: VMStat, _ n: Int64 = 1) {
        if mm.memcg != 0 { memcg.d(mm.memcg).pointee.stats[s.rawValue] &+= n }
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

    /// mem_cgroup_oom() -> mem_cgroup_out_of_memory(): the OOM killer (OOMKill.swift)
    /// constrained to the group's subtree (CONSTRAINT_MEMCG), with the group's meminfo lines
    /// (mem_cgroup_print_oom_meminfo()). Returns true when a task was killed.
    func memcgOOM(_ g: MemCgroup, gfp: GFP, order: Int) -> Bool {
        g.events[MemcgEvent.oom.rawValue] += 1
        if g.oomKillDisable { return false }
        let ids = Set(memcg.subtree(g.id))
        let unlimited = PageCounter.unlimited * 4
        let domain = OOMMemcgDomain(path: "/" + g.path, maxPages: UInt64(max(1, g.memory.max)),
                                    contains: { ids.contains($0.mm?.memcg ?? -1) }, meminfo: { [unowned self] in
            func lim(_ v: Int64) -> Int64 { v >= PageCounter.unlimited ? unlimited : v * 4 }
            return ["memory: usage \(g.memory.usage * 4)kB, limit \(lim(g.memory.max))kB, failcnt \(g.memory.failcnt)",
                    "memory+swap: usage \((self.memcg.v1 ? g.memsw.usage : g.memory.usage + g.swap.usage) * 4)kB, limit \(lim(g.memsw.max))kB, failcnt 0",
                    "kmem: usage \(g.stat(.nrPageTablePages) * 4)kB, limit \(unlimited)kB, failcnt 0"]
        })
        let victim = outOfMemory(OOMControl(gfp: gfp, order: order, constraint: .memcg(domain), task: cpus[currentCPU].task,
                                            deferCurrent: true))
        if victim != nil { g.events[MemcgEvent.oomKill.rawValue] += 1 }
        return victim != nil
    }
}
