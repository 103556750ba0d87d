// kernel/rcu/tree.c, reduced to what mm/ relies on: call_rcu() callbacks run after a grace
// period, which ends once every CPU has passed a quiescent state.

/// What a callback does when its grace period has ended. Plain values, so the machine runs
/// them without closures holding on to model objects.
enum RCUCallback {
    /// tlb_remove_table_rcu(): free the page-table pages of one table batch, then the batch
    /// page itself (nil when the tables were queued one by one).
    case freeTables(tables: [(PFN, PageTableLevel)], batchPage: PFN?)
}

/// The RCU state of the machine: grace-period sequence, who still owes a quiescent state,
/// read-side sections (rcu_read_lock() or interrupts disabled, as gup_fast runs) and the
/// callbacks waiting.
///
/// Quiescent states in the model: a CPU running user code (each user access, as the tick
/// would see it), a context switch, an idle CPU (extended quiescent state, never waited
/// for), and a scenario's `rcu qs cpu=N` / `rcu sync`. A CPU inside a read-side section
/// cannot report one until the section ends.
public final class RCUState {
    /// Completed grace periods (gp_seq, counted in whole periods).
    public private(set) var completed: UInt64 = 0
    /// A grace period is in progress.
    public private(set) var active = false
    /// CPUs that still owe a quiescent state to the current grace period.
    public private(set) var owes: [Bool]
    /// Read-side nesting per CPU.
    public private(set) var readers: [Int]
    /// CPUs in an extended quiescent state (idle, no task to run).
    public private(set) var idle: [Bool]
    /// Callbacks with the grace period number after which they may run.
    var callbacks: [(gp: UInt64, cb: RCUCallback)] = []
    /// Callbacks run so far.
    public private(set) var invoked: UInt64 = 0

    init(cpus: Int) {
        owes = [Bool](repeating: false, count: cpus)
        readers = [Int](repeating: 0, count: cpus)
        // CPUs start idle; running a task makes them busy (see Machine.switchMM).
        idle = [Bool](repeating: true, count: cpus)
    }

    /// Callbacks still waiting for their grace period.
    public var pendingCallbacks: Int { callbacks.count }

    /// call_rcu(): queue `cb` behind a grace period that starts after now. Returns whether a
    /// new grace period must be started.
    func enqueue(_ cb: RCUCallback) -> Bool {
        // A callback queued during a grace period needs the next one (it may have started
        // before the caller's update was visible).
        callbacks.append((active ? completed + 2 : completed + 1, cb))
        return !active
    }

    /// rcu_gp_init(): every CPU not idle owes a quiescent state.
    func start() {
        active = true
        for c in owes.indices { owes[c] = !idle[c] || readers[c] > 0 }
    }

    /// rcu_report_qs_rdp(): `cpu` passed a quiescent state. False when it is inside a
    /// read-side section (the state is reported when the section ends).
    func report(_ cpu: Int) -> Bool {
        guard readers[cpu] == 0 else { return false }
        owes[cpu] = false
        return true
    }

    /// Whether the current grace period can end now.
    var canEnd: Bool { active && !owes.contains(true) }

    /// rcu_gp_cleanup(): the period ends; returns the callbacks now ready, in queue order.
    func end() -> [RCUCallback] {
        active = false
        completed += 1
        var ready: [RCUCallback] = []
        callbacks.removeAll { item in
            if item.gp <= completed { ready.append(item.cb); return true }
            return false
        }
        invoked += UInt64(ready.count)
        return ready
    }

    func setIdle(_ cpu: Int, _ on: Bool) { idle[cpu] = on }
    func readLock(_ cpu: Int) { readers[cpu] += 1 }
    /// Returns true when the outermost section ended.
    func readUnlock(_ cpu: Int) -> Bool {
        readers[cpu] -= 1
        return readers[cpu] == 0
    }
}

extension Machine {
    /// call_rcu()
    func callRCU(_ cb: RCUCallback) {
        if rcu.enqueue(cb) { startGracePeriod() }
    }

    func startGracePeriod() {
        rcu.start()
        tracer.emit(currentCPU, .rcuGPStart(seq: rcu.completed + 1))
        advanceRCU()
    }

    /// Ends grace periods while every CPU has passed a quiescent state, running the callbacks
    /// each makes ready, and starts the next one while callbacks wait.
    func advanceRCU() {
        while rcu.canEnd {
            let ready = rcu.end()
            tracer.emit(currentCPU, .rcuGPEnd(seq: rcu.completed))
            for cb in ready { runRCUCallback(cb) }
            if rcu.pendingCallbacks > 0 {
                rcu.start()
                tracer.emit(currentCPU, .rcuGPStart(seq: rcu.completed + 1))
            }
        }
    }

    func runRCUCallback(_ cb: RCUCallback) {
        switch cb {
        case .freeTables(let tables, let batch):
            for (pfn, level) in tables { freeTablePage(pfn, level: level) }
            if let batch { allocator.freePages(batch) }
        }
    }

    /// pagetable_free(): a page-table page back to the buddy allocator (NR_PAGETABLE drops).
    func freeTablePage(_ pfn: PFN, level: PageTableLevel) {
        tracer.emit(currentCPU, .tableFree(pfn: pfn.raw, level: level.rawValue))
        frames.detachTable(pfn)
        allocator.freePageTable(pfn, level: level)
    }

    /// rcu_qs() / rcu_note_context_switch(): `cpu` passed a quiescent state.
    public func rcuQuiescentState(cpu: Int) {
        guard cpu >= 0 && cpu < cpuCount else { return }
        if rcu.report(cpu) { advanceRCU() }
    }

    /// synchronize_rcu() as a scenario drives it: every CPU passes a quiescent state now.
    /// Returns the CPUs that could not (inside a read-side section); the grace period then
    /// stays open until they leave it.
    @discardableResult
    public func synchronizeRCU() -> [Int] {
        var blocked: [Int] = []
        for c in 0..<cpuCount where !rcu.report(c) { blocked.append(c) }
        advanceRCU()
        return blocked
    }

    /// rcu_read_lock() / local_irq_save() on `cpu`.
    func rcuReadLock(cpu: Int) { rcu.readLock(cpu) }

    /// rcu_read_unlock() / local_irq_restore(). An idle CPU's extended quiescent state, held
    /// back by the section, counts now; a busy CPU reports at its next quiescent state.
    func rcuReadUnlock(cpu: Int) {
        if rcu.readUnlock(cpu) && rcu.owes[cpu] && rcu.idle[cpu] {
            rcuQuiescentState(cpu: cpu)
        }
    }

    /// rcu_idle_enter() / rcu_idle_exit(): an idle CPU is in an extended quiescent state.
    func rcuSetIdle(cpu: Int, _ idle: Bool) {
        rcu.setIdle(cpu, idle)
        if idle { rcuQuiescentState(cpu: cpu) }
    }
}
