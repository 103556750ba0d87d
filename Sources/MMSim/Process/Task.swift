// include/linux/sched.h, kernel/fork.c, kernel/exit.c: tasks, fork, exit, wait, and user memory accesses.

/// A signal delivered to a task by the memory system.
public struct Signal: Sendable, Hashable, CustomStringConvertible {
    public var number: Int32
    public var address: UInt64
    public var name: String { number == 11 ? "SIGSEGV" : number == 7 ? "SIGBUS" : number == 9 ? "SIGKILL" : "SIG\(number)" }
    public static func segv(_ a: UInt64) -> Signal { Signal(number: 11, address: a) }
    public static func bus(_ a: UInt64) -> Signal { Signal(number: 7, address: a) }
    public var description: String { "\(name) at \(String(format0x: address, width: 12))" }
}

/// Life of a task.
public enum TaskState: String, Sendable {
    case running, zombie, dead
}

/// task_struct, as far as memory management sees it.
public final class Task {
    /// The pid (a thread's tid); a thread that execs takes its leader's (de_thread()).
    public internal(set) var pid: Int
    public internal(set) var name: String
    public internal(set) var mm: MM?
    public internal(set) var parent: Int?
    public internal(set) var children: [Int] = []
    /// The CPU the task runs on.
    public internal(set) var cpu: Int
    public internal(set) var state: TaskState = .running
    public internal(set) var exitCode: Int32 = 0
    /// min_flt / maj_flt (getrusage(RUSAGE_SELF)).
    public internal(set) var minFlt: UInt64 = 0
    public internal(set) var majFlt: UInt64 = 0
    /// cmin_flt / cmaj_flt: reaped children's faults (getrusage(RUSAGE_CHILDREN)).
    public internal(set) var cminFlt: UInt64 = 0
    public internal(set) var cmajFlt: UInt64 = 0
    /// The process (thread group leader) a thread belongs to; nil for a process itself.
    public internal(set) var threadGroupLeader: Int?
    /// Signals the memory system delivered, in order.
    public internal(set) var signals: [Signal] = []
    /// The errno of the last memory syscall (nil = it succeeded).
    public internal(set) var lastErrno: Errno?
    /// The OOM killer chose this task while it ran (the kill happens as its fault unwinds).
    var oomKillPending = false
    /// Blocked (its CPU may be idle); the next thing it does wakes it.
    public internal(set) var sleeping = false
    /// signal_struct: shared by the threads of a process (oom_score_adj; OOMKill.swift).
    public internal(set) var signal = SignalStruct()
    /// Counted in nr_threads: from creation until released (reaped, or a thread's exit).
    var holdsPID = false

    init(pid: Int, name: String, cpu: Int) {
        self.pid = pid
        self.name = name
        self.cpu = cpu
    }
}

/// What one `access` call did.
public struct AccessReport: Sendable, Hashable {
    /// Pages (or stride steps) accessed successfully.
    public var accesses: Int = 0
    /// Page faults taken.
    public var faults: Int = 0
    /// The signal that stopped the access, if any (the task was killed by it).
    public var signal: Signal?
}

extension Machine {
    /// The task with `pid`, if any.
    public func task(pid: Int) -> Task? { tasks.first { $0.pid == pid } }

    /// The live task named `name` (the most recent one of that name).
    public func task(named name: String) -> Task? { tasks.last { $0.name == name && $0.state != .dead } }

    func newMM() -> MM? {
        guard let pt = PageTable(arch: arch, frames: frames, source: allocator) else { return nil }
        nextMMID += 1
        let mm = MM(id: nextMMID, pageTable: pt, arch: arch, cpus: cpuCount)
        // Page tables are __GFP_ACCOUNT: charged to the mm's memcg as kernel memory.
        pt.onTablesChanged = { [unowned self, unowned mm] n in self.memcgChargeKmem(mm.memcg, Int64(n)) }
        // init_new_context(): a fresh ctx_id, generation 0.
        lastMMCtxID += 1
        mm.ctxID = lastMMCtxID
        return mm
    }

    /// Creates a process as execve() leaves a small static binary: its image (ELF header,
    /// text, rodata, data+bss) resident at 0x555555554000, the program break after it, and a
    /// 132 KiB stack with its top pages touched. These pages and their page tables are the
    /// fixed cost every process has; rusage starts at zero afterwards.
    public func spawn(name: String, cpu: Int = 0) -> Task {
        let t = Task(pid: nextPID, name: name, cpu: min(max(cpu, 0), cpuCount - 1))
        nextPID += 1
        tasks.append(t)
        holdPID(t)
        t.mm = newMM()
        if t.mm != nil { setUpImage(t) }
        return t
    }

    /// The exec image and stack of a fresh mm (see `spawn`).
    func setUpImage(_ t: Task) {
        guard let mm = t.mm else { return }
        let base: UInt64 = 0x5555_5555_4000
        let segments: [(UInt64, UInt64, Prot)] = [(0, 1, .read), (1, 2, [.read, .exec]), (3, 1, .read), (4, 1, .rw)]
        for (off, n, prot) in segments {
            _ = mmap(t, addr: base + off * Page.size, length: n * Page.size, prot: prot, flags: [.private, .anonymous, .fixed, .populate])
        }
        mm.startCode = base + Page.size
        mm.endCode = base + 3 * Page.size
        mm.startBrk = base + 5 * Page.size
        mm.brk = mm.startBrk
        // The initial stack VMA (setup_arg_pages(): 128 KiB + the argument page).
        let stackTop = mm.taskSize + Page.size - 0x1000 - Page.size
        let stackStart = stackTop - 33 * Page.size
        _ = mmap(t, addr: stackStart, length: stackTop - stackStart, prot: .rw, flags: [.private, .anonymous, .fixed, .growsdown])
        if let i = mm.vmas.firstIndex(where: { $0.start == stackStart }) {
            mm.vmas[i].kind = .stack
        }
        _ = access(t, addr: stackTop - 2 * Page.size, length: 2 * Page.size, kind: .write)
        t.minFlt = 0
        t.majFlt = 0
        t.lastErrno = nil
    }

    /// execve(): de_thread() first kills every other thread of the group (SIGKILL, as
    /// zap_other_threads() sends it); a thread that execs takes the leader's pid, parent
    /// and children, and the old leader is released. Then a fresh mm replaces the old one
    /// (which is torn down as at exit, its last user gone).
    public func execve(_ t: Task) {
        guard t.state == .running else { return }
        let leaderPID = t.threadGroupLeader ?? t.pid
        for th in tasks where th !== t && th.state == .running && th.threadGroupLeader == leaderPID {
            th.signals.append(Signal(number: 9, address: 0))
            exit(th, code: 128 + 9)
        }
        if t.threadGroupLeader != nil, let leader = task(pid: leaderPID) {
            if leader.state == .running {
                leader.signals.append(Signal(number: 9, address: 0))
                if let mm = leader.mm {
                    run(leader, mm)
                    enterLazyTLB(cpu: leader.cpu)
                    mm.users -= 1
                    leader.mm = nil
                }
            }
            // The exec'ing thread becomes the group leader under the leader's pid.
            leader.exitCode = 128 + 9
            leader.state = .dead
            releasePID(leader)
            (t.pid, leader.pid) = (leader.pid, t.pid)
            t.parent = leader.parent
            t.children = leader.children
            leader.children = []
            leader.parent = nil
            t.threadGroupLeader = nil
        }
        if let old = t.mm {
            old.users -= 1
            if old.users == 0 { releaseMM(t, old) }
        }
        t.mm = newMM()
        setUpImage(t)
    }

    /// The default value of kernel.threads-max: set_max_threads() with no suggestion, as many
    /// threads as 1/8 of RAM holds THREAD_SIZE (16 KiB) stacks, within MIN_THREADS (20) and
    /// FUTEX_TID_MASK. The model counts totalram_pages() at fork_init() (the kernel's is a
    /// little smaller, before the init sections are freed: 192736 on a 24 GiB machine whose
    /// MemTotal/32 is 192842).
    public static func defaultMaxThreads(totalRAMPages: UInt64) -> Int {
        let threadSize: UInt64 = 16 * 1024
        let threads = totalRAMPages * Page.size / (8 * threadSize)
        return Int(min(max(threads, 20), 0x3fff_ffff))
    }

    /// kernel.pid_max's default: PID_MAX_DEFAULT (32768), or 1024 per CPU on larger machines.
    public var pidMax: Int { max(32768, 1024 * cpuCount) }

    /// copy_process()'s limits, as the model applies them to fork() and clone(): EAGAIN when
    /// nr_threads has reached kernel.threads-max, or when alloc_pid() finds no free pid (pids
    /// 1 ... pid_max-1 all held). RLIMIT_NPROC (max_threads/2 by default) is not applied: the
    /// scenario's processes run as root, which CAP_SYS_RESOURCE exempts from it.
    func forkLimit() -> Errno? {
        threads.nr >= threads.max || threads.nr >= pidMax - 1 ? .EAGAIN : nil
    }

    /// kernel.threads-max written (proc_dointvec_minmax(): 20 ... FUTEX_TID_MASK).
    public func setMaxThreads(_ n: Int) {
        threads.max = min(max(n, 20), 0x3fff_ffff)
    }

    func holdPID(_ t: Task) {
        guard !t.holdsPID else { return }
        t.holdsPID = true
        threads.nr += 1
    }

    /// release_task(): the task leaves nr_threads and its pid is free again.
    func releasePID(_ t: Task) {
        guard t.holdsPID else { return }
        t.holdsPID = false
        threads.nr -= 1
    }

    /// fork(): the child gets a copy of the address space (dup_mmap()), sharing every page
    /// copy-on-write. Returns the child, or ENOMEM.
    public func fork(_ parent: Task, childName: String, cpu: Int? = nil) -> SyscallResult<Task> {
        guard parent.state == .running, let src = parent.mm else { return .failure(.EINVAL) }
        if let e = forkLimit() { return .failure(e) }
        guard let dst = newMM() else { return .failure(.ENOMEM) }
        dst.memcg = src.memcg       // the child is in its parent's memory cgroup (cgroup_fork())
        memcgChargeKmem(dst.memcg, Int64(dst.pageTable.counts.total))     // its new PGD
        let child = Task(pid: nextPID, name: childName, cpu: min(max(cpu ?? parent.cpu, 0), cpuCount - 1))
        nextPID += 1
        run(parent, src)
        dst.startBrk = src.startBrk
        dst.brk = src.brk
        rmap.locks.acquire(.mmapLock)       // mmap_write_lock(oldmm), then the new mm nested
        defer { rmap.locks.release(.mmapLock) }
        for v in src.vmas where !v.flags.contains(.dontcopy) {
            // dup_mmap(): an accounted VMA is charged again for the child first.
            if v.flags.contains(.account) && !vmEnoughMemory(UInt64(v.pages), task: parent, mm: src) {
                releaseMM(child, dst)
                return .failure(.ENOMEM)
            }
            var copy = v
            copy.id = 0
            dst.vmas.append(copy)
            rmapVMAInserted(dst, dst.vmas.count - 1)
            anonVMAFork(dst, dst.vmas.count - 1, parent: v)
            dst.statAccount(v.flags, Int64(v.pages))
            if v.flags.contains(.locked) {
                // VM_LOCKED is not inherited (dup_mmap() clears it with VM_LOCKONFAULT).
                dst.vmas[dst.vmas.count - 1].flags.remove(.locked)
            }
            if v.flags.contains(.account) { committedAS += Int64(v.pages) }
            if case .shmem(let id) = v.kind { retainShmemMapping(id) }
            // vma_needs_copy(): only VMAs with an anon_vma have entries fork must copy;
            // shared and untouched private file mappings fault again in the child.
            guard v.anonVMA != 0 else { continue }
            do {
                try copyPageRange(from: src, to: dst, v)
            } catch {
                releaseMM(child, dst)
                return .failure(.ENOMEM)
            }
        }
        // The parent's write-protected entries must leave every TLB: flush_tlb_mm(oldmm),
        // which on x86 is flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL, 0, true).
        flushTLBMMRange(src, start: 0, end: .max, strideShift: Page.shift, freedTables: true)
        child.mm = dst
        child.signal = parent.signal.copy()     // copy_signal(): oom_score_adj is inherited
        child.parent = parent.pid
        parent.children.append(child.pid)
        tasks.append(child)
        holdPID(child)
        return .success(child)
    }

    /// clone(CLONE_VM | CLONE_THREAD): a thread sharing `parent`'s address space, running on
    /// `cpu`. The mm's users and CPU mask grow with it; its own faults count in its rusage.
    public func cloneThread(_ parent: Task, name: String, cpu: Int? = nil) -> SyscallResult<Task> {
        guard parent.state == .running, let mm = parent.mm else { return .failure(.EINVAL) }
        if let e = forkLimit() { return .failure(e) }
        let t = Task(pid: nextPID, name: name, cpu: min(max(cpu ?? parent.cpu, 0), cpuCount - 1))
        nextPID += 1
        t.mm = mm
        t.threadGroupLeader = parent.threadGroupLeader ?? parent.pid
        t.signal = parent.signal                // CLONE_THREAD shares signal_struct
        mm.users += 1
        tasks.append(t)
        holdPID(t)
        return .success(t)
    }

    /// exit(): the last user of the address space tears it down (exit_mmap()); a process
    /// waits as a zombie for its parent, a thread is reaped at once.
    public func exit(_ t: Task, code: Int32 = 0) {
        guard t.state == .running else { return }
        // exit_group(): a process takes its threads with it.
        if t.threadGroupLeader == nil {
            for th in tasks where th.threadGroupLeader == t.pid && th.state == .running { exit(th, code: code) }
        }
        if let mm = t.mm {
            // exit_mm(): the task lets go of the mm and its CPU goes lazy on it, then mmput();
            // the last user tears it down (exit_mmap()) from that lazy CPU.
            run(t, mm)
            t.mm = nil
            enterLazyTLB(cpu: t.cpu)
            mm.users -= 1
            if mm.users == 0 { releaseMM(t, mm) }
        }
        t.mm = nil
        if t.threadGroupLeader != nil {
            t.exitCode = code
            t.state = .dead
            releasePID(t)
            return
        }
        t.exitCode = code
        t.state = .zombie
        if t.parent == nil || task(pid: t.parent!)?.state != .running {
            t.state = .dead
            releasePID(t)
        }
        // forget_original_parent(): zombie children go to init, which reaps them (their
        // state stays what the parent last saw; they no longer hold a pid).
        for pid in t.children { if let c = task(pid: pid), c.state == .zombie { releasePID(c) } }
    }

    /// exit_group(): the whole thread group exits with `code`, whichever thread calls it.
    public func exitGroup(_ t: Task, code: Int32 = 0) {
        guard t.state == .running else { return }
        let leaderPID = t.threadGroupLeader ?? t.pid
        for th in tasks where th !== t && th.state == .running && th.threadGroupLeader == leaderPID { exit(th, code: code) }
        exit(t, code: code)
        if let leader = task(pid: leaderPID), leader !== t { exit(leader, code: code) }
    }

    /// A fatal signal's default action: `t` takes `signal` and its whole thread group dies
    /// (get_signal() -> do_group_exit()). The process exits with the signal (what wait()
    /// reports, so the leader records it too); the other threads are zapped with SIGKILL
    /// (zap_other_threads()).
    func killThreadGroup(_ t: Task, _ signal: Signal) {
        t.signals.append(signal)
        let leaderPID = t.threadGroupLeader ?? t.pid
        for th in tasks where th !== t && th.state == .running {
            if th.pid == leaderPID {
                th.signals.append(signal)
            } else if th.threadGroupLeader == leaderPID {
                th.signals.append(Signal(number: 9, address: 0))
            }
        }
        exitGroup(t, code: 128 + signal.number)
    }

    /// wait4(): reap a zombie child (`child`, or the oldest one); its faults join the
    /// parent's children rusage. Nil when there is none to reap.
    public func wait(_ t: Task, child: Int? = nil) -> Task? {
        for pid in t.children where child == nil || child == pid {
            guard let c = task(pid: pid), c.state == .zombie else { continue }
            c.state = .dead
            releasePID(c)
            t.cminFlt += c.minFlt + c.cminFlt
            t.cmajFlt += c.majFlt + c.cmajFlt
            t.children.removeAll { $0 == pid }
            return c
        }
        return nil
    }

    /// mmput() -> exit_mmap(): unmap everything through a full-mm gather, free every page
    /// table, give back the accounted memory, drop the CPUs' references to it.
    func releaseMM(_ t: Task, _ mm: MM) {
        currentCPU = t.cpu
        rmap.locks.acquire(.mmapLock)       // exit_mmap(): mmap_write_lock
        defer { rmap.locks.release(.mmapLock) }
        let tlb = MMUGather(machine: self, mm: mm, fullmm: true)
        let all = mm.vmas
        for v in all {
            zapRange(tlb, mm, v, start: v.start, end: v.end)
            if v.flags.contains(.account) { committedAS -= Int64(v.pages) }
            if v.flags.contains(.locked) { mm.lockedVM -= Int64(v.pages) }
            if case .shmem(let id) = v.kind { releaseShmemMapping(id) }
            if v.flags.contains(.hugetlb) { hugetlbVMAClose(mm, v, exiting: true) }
        }
        if let first = all.first, let last = all.last {
            mm.pageTable.freeTables(start: VirtAddr(first.start), end: VirtAddr(last.end)) { pfn, level in
                tlb.removeTable(pfn, level: level)
            }
        }
        tlb.finish()
        // free_pgtables() -> unlink_anon_vmas() and unlink_file_vma() for every VMA.
        for v in all { rmapVMARemoved(v) }
        rmap.forgetMM(mm)
        mm.vmas.removeAll()
        mm.totalVM = 0
        mm.dataVM = 0
        mm.execVM = 0
        mm.stackVM = 0
        // __mmdrop(): a CPU still lazily holding the mm lets go of it before its page
        // directory is freed. (x86: exit_mmap()'s freed_tables flush already sent every lazy
        // CPU in the mask to init_mm.)
        for c in 0..<cpuCount where cpuHasLoaded(c, mm) { switchMM(nil, cpu: c) }
        // arm64: the ASID can be handed out again; the model flushes it everywhere now, where
        // the kernel does so at the ASID generation rollover (flush_context()).
        if !arch.isX86 { for c in 0..<cpuCount { _ = cpus[c].tlb.flushASID(arm64Tag(mm)) } }
        mm.pageTable.destroy()
    }

    /// Loads, stores or instruction fetches by `t` over [addr, addr+length), one per `stride`
    /// bytes (default: one per page). Each goes through the MMU of the task's CPU; a fault
    /// runs the kernel's handler and retries; an access the kernel refuses delivers SIGSEGV
    /// (or SIGBUS) and kills the task, as the default action does.
    @discardableResult
    public func access(_ t: Task, addr: UInt64, length: UInt64, kind: AccessKind, stride: UInt64 = Page.size) -> AccessReport {
        var report = AccessReport()
        guard t.state == .running, let mm = t.mm, length > 0 else { return report }
        let step = max(stride, 1)
        run(t, mm)
        // Running user code: the tick sees a quiescent state.
        rcuQuiescentState(cpu: t.cpu)
        let validate = validateTLB
        var a = addr
        let end = addr &+ length
        while a < end || (end < addr && a >= addr) {
            var tries = 0
            while true {
                if let pa = userTranslate(cpu: t.cpu, VirtAddr(a), kind, retry: tries > 0) {
                    if validate { validateAccess(t, mm, a, kind, pa) }
                    if kind == .write { frames[pa.pfn].pointee.content &+= 1 }
                    report.accesses += 1
                    break
                }
                tries += 1
                report.faults += 1
                if let sig = userFault(t, mm, a, kind, retry: tries > 1, pteSlot: cpuRefs[t.cpu]._withUnsafeGuaranteedRef { $0.faultPTESlot }) {
                    report.signal = sig
                    return report
                }
            }
            let (n, o) = a.addingReportingOverflow(step)
            if o { break }
            a = n
        }
        return report
    }

    /// do_user_addr_fault(): find the VMA, check the access against it, handle the fault.
    /// Returns the signal delivered when the kernel refuses. `pteSlot` is the entry the
    /// faulting walk stopped at (see `CPU.faultPTESlot`), when it reached the PTE level.
    func userFault(_ t: Task, _ mm: MM, _ addr: UInt64, _ kind: AccessKind, retry: Bool,
                   pteSlot: UnsafeMutablePointer<UInt64>? = nil) -> Signal? {
        func kill(_ s: Signal) -> Signal {
            log.append("\(t.name)[\(t.pid)]: \(s.name == "SIGSEGV" ? "segfault" : "bus error") at \(String(hex: addr, width: 0)) error \(kind == .write ? 6 : kind == .execute ? 0x15 : 4)")
            killThreadGroup(t, s)
            return s
        }
        guard !retry else { return kill(.segv(addr)) }
        guard let i = mm.findVMAIndex(addr), mm.vmas[i].start <= addr else { return kill(.segv(addr)) }
        let f = mm.vmas[i].flags
        let allowed: Bool
        switch kind {
        case .read: allowed = f.contains(.read) || f.contains(.write) || f.contains(.exec)
        case .write: allowed = f.contains(.write)
        case .execute: allowed = f.contains(.exec)
        }
        guard allowed else { return kill(.segv(addr)) }
        var slot = pteSlot
        while true {
            do {
                rmap.locks.acquire(.mmapLock)       // lock_mm_and_find_vma(): mmap_read_lock
                defer { rmap.locks.release(.mmapLock) }
                try handleMMFault(t, mm, i, addr, kind, pteSlot: slot)
            } catch .sigbus {
                noteHWPoisonFault(t, mm, addr)
                return kill(.bus(addr))
            } catch .oom where t.oomKillPending {
                // The memcg OOM killer chose this task while it was charging: SIGKILL.
                t.oomKillPending = false
                exit(t, code: 137)
                return t.signals.last
            } catch .oom {
                // VM_FAULT_OOM: the OOM killer picks a victim (OOMKill.swift); the fault is
                // retried unless this task died. Each round kills a process, so it ends.
                if let s = faultOutOfMemory(t) { return s }
                slot = nil
                continue
            } catch {
                return kill(.segv(addr))
            }
            return nil
        }
    }
}

/// kernel/fork.c's nr_threads (tasks that hold a pid: running or zombie, threads included)
/// and max_threads (kernel.threads-max, set_max_threads() at fork_init()).
public struct ThreadCount: Sendable {
    public internal(set) var nr = 0
    public internal(set) var max = 0
}
