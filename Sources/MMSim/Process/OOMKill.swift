// mm/oom_kill.c: the OOM killer: oom_badness(), select_bad_process(), the kill of the whole thread group, the OOM reaper, /proc/PID/oom_score.

/// OOM_SCORE_ADJ_MIN / OOM_SCORE_ADJ_MAX
public let oomScoreAdjMin = -1000
public let oomScoreAdjMax = 1000

/// signal_struct, as far as the OOM killer sees it: what the threads of one process share.
/// fork() copies it (copy_signal()), a thread (CLONE_THREAD) shares it.
public final class SignalStruct {
    /// oom_score_adj (-1000 ... 1000; -1000 = never chosen by the OOM killer).
    public internal(set) var oomScoreAdj: Int16 = 0
    /// oom_score_adj_min: what an unprivileged writer may not go below. Model tasks are
    /// root (CAP_SYS_RESOURCE), which may go anywhere; the field is kept as the kernel does.
    public internal(set) var oomScoreAdjMin: Int16 = 0
    init() {}
    /// copy_signal(): a child starts with its parent's values.
    func copy() -> SignalStruct {
        let s = SignalStruct()
        s.oomScoreAdj = oomScoreAdj
        s.oomScoreAdjMin = oomScoreAdjMin
        return s
    }
}

/// A memory cgroup OOM domain, as the memcg code (Memcontrol.swift) will describe it to the
/// OOM killer: which tasks are in it, its limit, and the lines its header prints.
public struct OOMMemcgDomain {
    /// The cgroup path printed as oom_memcg= and task_memcg= ("/rcl").
    public var path: String
    /// mem_cgroup_get_max(): the limit in pages (the badness scale); 0 counts as 1.
    public var maxPages: UInt64
    /// mem_cgroup_scan_tasks(): whether a process is in the group (or below it).
    public var contains: (Task) -> Bool
    /// mem_cgroup_print_oom_meminfo(): "memory: usage ...kB, limit ...kB, failcnt N" and the rest.
    public var meminfo: () -> [String]
    public init(path: String, maxPages: UInt64, contains: @escaping (Task) -> Bool, meminfo: @escaping () -> [String] = { [] }) {
        self.path = path
        self.maxPages = maxPages
        self.contains = contains
        self.meminfo = meminfo
    }
}

/// enum oom_constraint, for the domains the model has.
public enum OOMConstraint {
    /// CONSTRAINT_NONE: the whole machine.
    case none
    /// CONSTRAINT_MEMCG: a memory cgroup hit its limit.
    case memcg(OOMMemcgDomain)

    public var name: String {
        switch self {
        case .none: "CONSTRAINT_NONE"
        case .memcg: "CONSTRAINT_MEMCG"
        }
    }
}

/// struct oom_control: the failed allocation the OOM killer is asked to make room for.
public struct OOMControl {
    /// The allocation's gfp mask (printed in the header; without __GFP_FS a global OOM kills nobody).
    public var gfp: GFP
    /// Its order (-1 would be a sysrq OOM: not modelled).
    public var order: Int
    public var constraint: OOMConstraint
    /// current: the task whose allocation failed (nil for a kernel context).
    public var task: Task?
    /// The allocating task is inside its fault (a memcg charge): if it is the victim it dies
    /// when the fault unwinds (its SIGKILL pending), not here.
    public var deferCurrent = false
    public init(gfp: GFP, order: Int = 0, constraint: OOMConstraint = .none, task: Task?, deferCurrent: Bool = false) {
        self.gfp = gfp
        self.order = order
        self.constraint = constraint
        self.deferCurrent = deferCurrent
        self.task = task
    }
}

/// mm/oom_kill.c's sysctls and what the OOM killer did.
public final class OOMState {
    /// vm.panic_on_oom: 0, 1 (global OOMs panic), 2 (every OOM panics).
    public var panicOnOOM = 0
    /// vm.oom_kill_allocating_task
    public var killAllocatingTask = false
    /// vm.oom_dump_tasks (default 1)
    public var dumpTasks = true
    /// The panic message when the OOM killer panicked. The model does not halt: the run
    /// goes on, and the failed allocation's task is stopped instead (see faultOutOfMemory).
    public internal(set) var panicMessage: String?
    /// Pids of the tasks the OOM killer chose, in order.
    public internal(set) var victims: [Int] = []
    /// Ids of the mms the reaper has emptied (MMF_OOM_SKIP), while they still exist.
    var reapedMMs: [Int] = []
    init() {}
}

extension Machine {
    // MARK: Badness

    /// totalram_pages() + total_swap_pages: the global scale of oom_score_adj.
    var oomGlobalTotalPages: UInt64 { totalRAMPages &+ totalSwapPages }

    /// The process a task belongs to (its thread-group leader).
    func threadGroupLeader(_ t: Task) -> Task {
        guard let l = t.threadGroupLeader, let leader = task(pid: l) else { return t }
        return leader
    }

    /// find_lock_task_mm(): a thread of `p`'s group that still has its mm.
    func taskWithMM(_ p: Task) -> Task? {
        let leader = threadGroupLeader(p)
        if leader.state == .running, leader.mm != nil { return leader }
        return tasks.first { ($0.threadGroupLeader ?? $0.pid) == leader.pid && $0.state == .running && $0.mm != nil }
    }

    /// oom_badness(): RSS (anon + file + shmem) + swap entries + page-table pages, plus
    /// oom_score_adj in units of totalpages / 1000. Nil (the kernel's LONG_MIN) for a task
    /// that must not be chosen: no mm left (exited, a kernel thread), oom_score_adj -1000,
    /// or an mm the reaper already emptied (MMF_OOM_SKIP). The model has no init task
    /// (pid 1 is an ordinary process) and no vfork.
    public func oomBadness(_ p: Task, totalPages: UInt64? = nil) -> Int64? {
        guard let t = taskWithMM(p), let mm = t.mm else { return nil }
        let adj = Int64(t.signal.oomScoreAdj)
        if adj == Int64(oomScoreAdjMin) || oom.reapedMMs.contains(mm.id) { return nil }
        let points = mm.rssPages + mm.rss[RSSCounter.swapEnts.rawValue] + Int64(mm.pageTable.pgtablesBytes / Page.size)
        return points + adj * Int64(clamping: (totalPages ?? oomGlobalTotalPages) / 1000)
    }

    /// /proc/PID/oom_score (proc_oom_score()): the badness against RAM + swap, scaled into
    /// 0 ... 2000; 0 for a task that cannot be chosen.
    public func oomScore(_ t: Task) -> Int64 {
        let total = Int64(clamping: max(oomGlobalTotalPages, 1))
        guard let b = oomBadness(t, totalPages: UInt64(total)) else { return 0 }
        return (1000 + b * 1000 / total) * 2 / 3
    }

    /// /proc/PID/oom_score_adj (read).
    public func oomScoreAdj(_ t: Task) -> Int { Int(t.signal.oomScoreAdj) }

    /// A write to /proc/PID/oom_score_adj (oom_score_adj_write() -> __set_oom_adj()):
    /// -1000 ... 1000, else EINVAL; it applies to the whole thread group. A root writer
    /// (the model's tasks) also sets oom_score_adj_min. No mm is shared between processes in
    /// the model, so there is nothing to propagate (MMF_MULTIPROCESS).
    @discardableResult
    public func setOOMScoreAdj(_ t: Task, _ value: Int) -> SyscallResult<Void> {
        guard t.state == .running else { return .failure(.EINVAL) }
        guard (oomScoreAdjMin...oomScoreAdjMax).contains(value) else { return .failure(.EINVAL) }
        t.signal.oomScoreAdj = Int16(value)
        t.signal.oomScoreAdjMin = Int16(value)
        return .success(())
    }

    // MARK: out_of_memory()

    /// out_of_memory(): choose a victim for the failed allocation `oc` and kill it.
    ///
    /// In the kernel's order: a global OOM for an allocation without __GFP_FS kills nobody
    /// (the caller retries); constrained_alloc() sets the scale (RAM + swap, or the memcg
    /// limit); check_panic_on_oom(); vm.oom_kill_allocating_task kills the allocating task
    /// if it can be killed; otherwise select_bad_process() picks the highest oom_badness()
    /// among the processes in task-list order (a later process with equal points replaces
    /// the one chosen: the kernel skips only `points < chosen_points`), and
    /// oom_kill_process() kills it. With nothing to kill, a global OOM panics.
    ///
    /// Returns the task killed (a process, whose threads died with it); nil when nobody was
    /// killed (no __GFP_FS, a panic, or no killable task: `oom.panicMessage` says which).
    /// The victim's memory is freed before this returns (the model's victims exit at once).
    @discardableResult
    public func outOfMemory(_ oc: OOMControl) -> Task? {
        var memcg: OOMMemcgDomain?
        if case .memcg(let d) = oc.constraint { memcg = d }
        if memcg == nil && !oc.gfp.contains(.fs) { return nil }
        // (task_will_free_mem(current) cannot hold: a model task exits in one step.)
        let totalPages = memcg.map { max($0.maxPages, 1) } ?? oomGlobalTotalPages
        // check_panic_on_oom()
        if oom.panicOnOOM == 2 || (oom.panicOnOOM == 1 && memcg == nil) {
            dumpOOMHeader(oc, totalPages: totalPages)
            oomPanic("Out of memory: \(oom.panicOnOOM == 2 ? "compulsory" : "system-wide") panic_on_oom is enabled")
            return nil
        }
        if memcg == nil, oom.killAllocatingTask, let cur = oc.task, cur.state == .running, cur.mm != nil,
           cur.signal.oomScoreAdj != Int16(oomScoreAdjMin) {
            let victim = threadGroupLeader(cur)
            oomKillProcess(oc, victim, totalPages: totalPages, message: "Out of memory (oom_kill_allocating_task)")
            return victim
        }
        guard let victim = selectBadProcess(memcg, totalPages: totalPages) else {
            dumpOOMHeader(oc, totalPages: totalPages)
            log.append("Out of memory and no killable processes...")
            if memcg == nil { oomPanic("System is deadlocked on memory") }
            return nil
        }
        oomKillProcess(oc, victim, totalPages: totalPages, message: memcg == nil ? "Out of memory" : "Memory cgroup out of memory")
        resumeAllocatingTask(oc)
        return victim
    }

    /// The victim's exit ran on its own CPU with its mm loaded; the allocating task (if it
    /// lives) is the one running again afterwards, on its CPU with its mm.
    func resumeAllocatingTask(_ oc: OOMControl) {
        if let cur = oc.task, cur.state == .running, let mm = cur.mm { run(cur, mm) }
    }

    /// select_bad_process(): for_each_process() (or the memcg's tasks) through
    /// oom_evaluate_task(): the highest badness, later ones winning ties.
    func selectBadProcess(_ memcg: OOMMemcgDomain?, totalPages: UInt64) -> Task? {
        var chosen: Task?
        var chosenPoints = Int64.min
        for p in tasks where p.threadGroupLeader == nil && p.state == .running {
            if let m = memcg, !m.contains(p) { continue }
            guard let points = oomBadness(p, totalPages: totalPages), points >= chosenPoints else { continue }
            chosen = p
            chosenPoints = points
        }
        return chosen
    }

    /// panic(): printed as the kernel does; the model records it and goes on.
    func oomPanic(_ message: String) {
        log.append("Kernel panic - not syncing: \(message)")
        if oom.panicMessage == nil { oom.panicMessage = message }
    }

    /// oom_kill_process() -> dump_header(), dump_oom_victim(), __oom_kill_process(): the
    /// report, then SIGKILL for the victim's thread group and every process sharing its mm,
    /// oom_kill counted, and the victim's exit. A victim blocked in the kernel (a sleeping
    /// task) cannot run its exit path before the OOM reaper's timer fires
    /// (OOM_REAPER_DELAY): the reaper empties its private memory first and logs its line.
    /// Any other victim exits at once, its exit_mmap() sets MMF_OOM_SKIP and the reaper
    /// has nothing to do (no reaper line, as in the reference kernel's logs).
    func oomKillProcess(_ oc: OOMControl, _ victim: Task, totalPages: UInt64, message: String) {
        guard let v = taskWithMM(victim), let mm = v.mm else {
            log.append("\(message): OOM victim \(victim.pid) (\(victim.name)) is already exiting. Skip killing the task")
            return
        }
        dumpOOMHeader(oc, totalPages: totalPages)
        dumpOOMVictim(oc, v)
        counters.add(.oomKill, 1)
        func kb(_ pages: Int64) -> Int64 { pages * Int64(Page.size >> 10) }
        log.append("\(message): Killed process \(v.pid) (\(v.name)) total-vm:\(kb(mm.totalVM))kB, "
            + "anon-rss:\(kb(mm.rss[RSSCounter.anonPages.rawValue]))kB, file-rss:\(kb(mm.rss[RSSCounter.filePages.rawValue]))kB, "
            + "shmem-rss:\(kb(mm.rss[RSSCounter.shmemPages.rawValue]))kB, UID:0 pgtables:\(mm.pageTable.pgtablesBytes >> 10)kB "
            + "oom_score_adj:\(v.signal.oomScoreAdj)")
        oom.victims.append(threadGroupLeader(v).pid)
        // do_send_sig_info(SIGKILL, ..., PIDTYPE_TGID) to the victim and to every other process
        // using the mm; the model's processes never share one, so that is the thread group.
        let doomed = tasks.filter { $0.state == .running && $0.mm === mm }
        for t in doomed { t.signals.append(Signal(number: 9, address: 0)) }
        if oc.deferCurrent, let cur = oc.task, cur.mm === mm {
            // The victim is the charging task (or shares its mm): it exits as its fault unwinds.
            for t in doomed { t.oomKillPending = true }
            return
        }
        let blocked = doomed.contains { $0.sleeping }
        if blocked { oomReap(v, mm) }
        for leader in doomed where leader.threadGroupLeader == nil { exit(leader, code: 128 + 9) }
        // A thread whose leader is not among them (cannot happen in the model) dies too.
        for t in doomed where t.state == .running { exit(t, code: 128 + 9) }
        oom.reapedMMs.removeAll { $0 == mm.id }     // the mm is gone
    }

    /// oom_reap_task_mm() -> __oom_reap_task_mm(): unmap the anonymous and private VMAs
    /// (not hugetlb, not shared file mappings) from the top of the address space down, then
    /// "oom_reaper: reaped process ..." with what is left, and MMF_OOM_SKIP.
    func oomReap(_ t: Task, _ mm: MM) {
        currentCPU = t.cpu
        rmap.locks.acquire(.mmapLock)       // mmap_read_trylock()
        let tlb = MMUGather(machine: self, mm: mm)
        for v in mm.vmas.reversed() where !v.flags.contains(.hugetlb) && (v.isAnonymous || !v.flags.contains(.shared)) {
            zapRange(tlb, mm, v, start: v.start, end: v.end)
        }
        tlb.finish()
        rmap.locks.release(.mmapLock)
        func kb(_ c: RSSCounter) -> Int64 { mm.rss[c.rawValue] * Int64(Page.size >> 10) }
        log.append("oom_reaper: reaped process \(t.pid) (\(t.name)), now anon-rss:\(kb(.anonPages))kB, file-rss:\(kb(.filePages))kB, shmem-rss:\(kb(.shmemPages))kB")
        oom.reapedMMs.append(mm.id)
    }

    // MARK: The report

    /// dump_header(): the "invoked oom-killer" line, the memory report (the memcg's, or
    /// __show_mem()'s summary as the model has it) and, with vm.oom_dump_tasks, dump_tasks().
    /// dump_stack()'s CPU/Call Trace lines are not modelled.
    func dumpOOMHeader(_ oc: OOMControl, totalPages: UInt64) {
        let cur = oc.task
        log.append("\(cur?.name ?? "swapper/0") invoked oom-killer: gfp_mask=\(oc.gfp.kernelDescription), order=\(oc.order), oom_score_adj=\(cur?.signal.oomScoreAdj ?? 0)")
        if case .memcg(let d) = oc.constraint {
            for l in d.meminfo() { log.append(l) }
        } else {
            for l in showMemLines() { log.append(l) }
        }
        if oom.dumpTasks { dumpTasks(oc) }
    }

    /// __show_mem() -> show_free_areas(): the global summary and the totals. The per-node and
    /// per-zone lines (free areas by order, lowmem_reserve, hugepages per node) are left out.
    func showMemLines() -> [String] {
        let c = counters
        var pcp = 0
        for z in zones { pcp += z.pcpPages }
        var out = ["Mem-Info:"]
        out.append("active_anon:\(c[.nrActiveAnon]) inactive_anon:\(c[.nrInactiveAnon]) isolated_anon:\(c[.nrIsolatedAnon])")
        out.append(" active_file:\(c[.nrActiveFile]) inactive_file:\(c[.nrInactiveFile]) isolated_file:\(c[.nrIsolatedFile])")
        out.append(" unevictable:\(c[.nrUnevictable]) dirty:\(c[.nrDirty]) writeback:\(c[.nrWriteback])")
        out.append(" slab_reclaimable:\(c[.nrSlabReclaimable]) slab_unreclaimable:\(c[.nrSlabUnreclaimable])")
        out.append(" mapped:\(c[.nrMapped]) shmem:\(c[.nrShmem]) pagetables:\(c[.nrPageTablePages])")
        out.append(" sec_pagetables:\(c[.nrSecPageTablePages]) bounce:\(c[.nrBounce])")
        out.append(" kernel_misc_reclaimable:\(c[.nrKernelMiscReclaimable])")
        out.append(" free:\(c[.nrFreePages]) free_pcp:\(pcp) free_cma:\(c[.nrFreeCma])")
        out.append("\(c[.nrFilePages]) total pagecache pages")
        // show_swap_cache_info()
        out.append("0 pages in swap cache")
        out.append("Free swap  = \(totalSwapPages * (Page.size >> 10))kB")
        out.append("Total swap = \(totalSwapPages * (Page.size >> 10))kB")
        var present: UInt64 = 0, managed: UInt64 = 0
        for z in zones where z.isPopulated {
            present += z.presentPages
            managed += z.managedPages
        }
        out.append("\(present) pages RAM")
        out.append("0 pages HighMem/MovableOnly")
        out.append("\(present - min(managed, present)) pages reserved")
        out.append("\(hardwareCorruptedPages) pages hwpoisoned")
        return out
    }

    /// dump_tasks(): "Tasks state (memory values in pages):", the header, then one row per
    /// eligible process that still has an mm (dump_task(), the kernel's printf widths).
    func dumpTasks(_ oc: OOMControl) {
        log.append("Tasks state (memory values in pages):")
        log.append("[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name")
        var memcg: OOMMemcgDomain?
        if case .memcg(let d) = oc.constraint { memcg = d }
        for p in tasks where p.threadGroupLeader == nil {
            if let m = memcg, !m.contains(p) { continue }
            guard let t = taskWithMM(p), let mm = t.mm else { continue }
            func n(_ v: Int64, _ w: Int) -> String { leftPad(v, w) }
            let rss = mm.rss
            log.append("[" + n(Int64(t.pid), 7) + "] " + n(0, 5) + " " + n(Int64(threadGroupLeader(t).pid), 5)
                + " " + n(mm.totalVM, 8) + " " + n(mm.rssPages, 8) + " " + n(rss[RSSCounter.anonPages.rawValue], 8)
                + " " + n(rss[RSSCounter.filePages.rawValue], 8) + " " + n(rss[RSSCounter.shmemPages.rawValue], 9)
                + " " + n(Int64(mm.pageTable.pgtablesBytes), 8) + " " + n(rss[RSSCounter.swapEnts.rawValue], 8)
                + "         " + n(Int64(t.signal.oomScoreAdj), 5) + " " + t.name)
        }
    }

    /// dump_oom_victim(): the one-line summary, with cpuset_print_current_mems_allowed() and
    /// mem_cgroup_print_oom_context() (every task is in the root cpuset and, outside a memcg
    /// OOM, shown in the root memory cgroup).
    func dumpOOMVictim(_ oc: OOMControl, _ victim: Task) {
        let nodes = config.nodes
        let mems = nodes <= 1 ? "0" : "0-\(nodes - 1)"
        var line = "oom-kill:constraint=\(oc.constraint.name),nodemask=(null),cpuset=/,mems_allowed=\(mems)"
        if case .memcg(let d) = oc.constraint {
            line += ",oom_memcg=\(d.path),task_memcg=\(d.path)"
        } else {
            line += ",global_oom,task_memcg=/"
        }
        line += ",task=\(victim.name),pid=\(victim.pid),uid=0"
        log.append(line)
    }

    // MARK: The fault path

    /// What a page fault does when its allocation fails (VM_FAULT_OOM). The model's fault
    /// allocations have no slow path of their own yet, so this does what
    /// __alloc_pages_may_oom() would have done inside the allocator: out_of_memory() for the
    /// fault's allocation (GFP_HIGHUSER_MOVABLE | __GFP_ZERO | __GFP_COMP, order 0, global),
    /// after which the fault is retried, as the allocator retries after an OOM kill. When
    /// the faulting task is the victim (or shares its mm) it is dead: SIGKILL. When nobody
    /// could be killed (a panic or no candidate) the machine would be stopped; the model
    /// stops the faulting task with SIGKILL instead, so that the run can go on.
    /// Returns nil to retry the fault, or the signal that ended the task.
    func faultOutOfMemory(_ t: Task) -> Signal? {
        let victim = outOfMemory(OOMControl(gfp: [.highuserMovable, .zero, .comp], order: 0, task: t))
        if t.state != .running { return t.signals.last ?? Signal(number: 9, address: 0) }
        if victim != nil { return nil }
        let s = Signal(number: 9, address: 0)
        t.signals.append(s)
        exit(threadGroupLeader(t), code: 128 + 9)
        return s
    }

    /// A victim chosen while it charged outside a fault (a read() filling the page cache)
    /// dies when its syscall returns: the SIGKILL pending since then is delivered.
    public func deliverPendingOOMKills() {
        for t in tasks where t.oomKillPending && t.state == .running {
            t.oomKillPending = false
            exit(threadGroupLeader(t), code: 128 + 9)
        }
    }
}
