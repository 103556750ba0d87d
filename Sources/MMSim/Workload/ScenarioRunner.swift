// Runs a Scenario on a Machine: processes act, marks snapshot counters, expectations are
// checked, `cat` prints /proc views; the result is a ScenarioReport (text or JSON).
//
// A failing syscall does not stop the run: like a real program, the process gets an errno
// (`expect NAME.errno == ENOMEM`) and carries on. A refused memory access delivers SIGSEGV
// or SIGBUS to the task (which dies of it, as the default action does) and the run goes on.
// Only a scenario that cannot mean anything (a process that is gone, a variable whose mmap
// failed, a call the model lacks) stops the run with a ScenarioError.

public struct ScenarioOptions: Sendable {
    /// Print every process action as strace would (`parent[1]: mmap(...) = 0x...`).
    public var trace = false
    /// Run the CONFIG_DEBUG_VM-style invariant checker after every statement.
    public var checkInvariants = false
    /// A deliberate bug switched on in the machine, for tests (and `mmsim random --inject`)
    /// that prove the checker and the minimizer can catch one. Nil in every normal run.
    public var injectBug: InjectedBug?
    public init(trace: Bool = false, checkInvariants: Bool = false, injectBug: InjectedBug? = nil) {
        self.trace = trace
        self.checkInvariants = checkInvariants
        self.injectBug = injectBug
    }
}

/// The deliberate bugs the machine has for tests (Machine.debugSkipTLBFlush and friends).
public enum InjectedBug: String, Sendable, CaseIterable {
    /// Skip every user TLB flush (the TLB validator must find stale entries).
    case skipTLBFlush = "skip-tlb-flush"
    /// Free page tables without waiting for RCU (a lock-free walker must notice).
    case freeTablesWithoutRCU = "free-tables-without-rcu"
}

/// What one `expect` found.
public struct ExpectationResult: Sendable {
    public var location: ScenarioLocation
    public var statement: String
    public var passed: Bool
    /// "== 512", "!= ok", ...
    public var expected: String
    /// The value found; for `since`, the change (now and at the mark follow in `detail`).
    public var actual: String
    public var detail: String?
}

/// A syscall that returned an error.
public struct FailedSyscall: Sendable {
    public var location: ScenarioLocation
    public var process: String
    public var pid: Int
    public var call: String
    public var errno: Errno
}

/// A signal the model delivered to a task.
public struct DeliveredSignal: Sendable {
    public var location: ScenarioLocation
    public var process: String
    public var pid: Int
    public var signal: String
    public var address: UInt64
}

/// One thing the run printed, in order.
public enum ScenarioOutput: Sendable {
    /// `cat PATH`: the view's text.
    case view(path: String, text: String, location: ScenarioLocation)
    case echo(String)
    /// A --trace line.
    case trace(String)
    /// Something the reader should know (a sysctl the model does not apply, a skipped action).
    case warning(ScenarioLocation, String)
}

/// A process at the end of the run.
public struct ProcessSummary: Sendable {
    public var name: String
    public var pid: Int
    public var parent: Int?
    public var state: String
    public var exitCode: Int32?
    public var minflt: UInt64
    public var majflt: UInt64
    public var cminflt: UInt64
    public var cmajflt: UInt64
    public var status: [String: Int64]
    public var vmas: Int64
    public var signal: String?
}

/// Everything a run produced.
public struct ScenarioReport: Sendable {
    public var file: String
    public var config: MachineConfig
    public var output: [ScenarioOutput] = []
    public var expectations: [ExpectationResult] = []
    public var failedSyscalls: [FailedSyscall] = []
    public var signals: [DeliveredSignal] = []
    public var processes: [ProcessSummary] = []
    /// Final /proc/meminfo (name -> value in its unit) and /proc/vmstat.
    public var meminfo: [(name: String, value: UInt64)] = []
    public var vmstat: [(name: String, value: Int64)] = []
    public var failedCount: Int { expectations.filter { !$0.passed }.count }
    public var passed: Bool { failedCount == 0 }
}

public final class ScenarioRunner {
    public let scenario: Scenario
    public let options: ScenarioOptions
    /// The machine, booted by `run()`.
    public private(set) var machine: Machine!

    /// The task each process name refers to now (the latest of that name).
    private var procs: [String: Task] = [:]
    /// Why a name has no task: its fork failed (location, errno).
    private var failedForks: [String: (ScenarioLocation, Errno)] = [:]
    /// Why a name has no task: the fork or thread that would have made it was not run, its
    /// parent being gone (location, "NAME[PID] was killed by SIGSEGV" or "... has exited").
    private var skippedForks: [String: (ScenarioLocation, String)] = [:]
    /// The result of each process's last syscall (nil = success).
    private var lastErrno: [String: Errno] = [:]
    /// Address variables.
    private var variables: [String: UInt64] = [:]
    private var variableFailures: [String: ScenarioLocation] = [:]
    /// File names -> the model's file handles.
    private var files: [String: Int] = [:]
    /// Marks: for each, the value of every counter an expectation reads `since` it.
    private var markValues: [String: [CounterRef: Int64]] = [:]
    private var sinceCounters: [String: [CounterRef]] = [:]
    private var report: ScenarioReport
    /// How far `cat /dev/kmsg` has read the kernel log (the boot messages are skipped).
    private var kmsgRead = 0
    /// Whether the OOM killer's panic has been reported.
    private var panicReported = false

    public init(_ scenario: Scenario, options: ScenarioOptions = ScenarioOptions()) {
        self.scenario = scenario
        self.options = options
        report = ScenarioReport(file: scenario.file, config: scenario.machine)
        for s in scenario.statements {
            if case .expect(.counter(let c, let since?, _, _)) = s.kind, !(sinceCounters[since]?.contains(c) ?? false) {
                sinceCounters[since, default: []].append(c)
            }
            if case .expect(.counterRange(let c, let since?, _, _)) = s.kind, !(sinceCounters[since]?.contains(c) ?? false) {
                sinceCounters[since, default: []].append(c)
            }
        }
    }

    /// Parses and runs a scenario text.
    public static func run(_ text: String, file: String, options: ScenarioOptions = ScenarioOptions()) throws -> ScenarioReport {
        let s = try ScenarioParser.parse(text, file: file)
        return try ScenarioRunner(s, options: options).run()
    }

    /// Boots the machine and executes every statement. Throws `ScenarioError` when the
    /// scenario cannot go on.
    public func run() throws -> ScenarioReport {
        try start()
        for s in scenario.statements { try step(s) }
        return end()
    }

    /// Boots the machine (the first part of `run()`, for a caller that feeds statements one
    /// at a time with `step(_:)`, such as RandomWorkload).
    public func start() throws {
        let bootLoc = ScenarioLocation(file: scenario.file, line: 1, column: 1)
        do {
            machine = try Machine(scenario.machine)
        } catch let e as ConfigError {
            throw ScenarioError(scenario.statements.first(where: { if case .machine = $0.kind { true } else { false } })?.location ?? bootLoc, "machine: \(e)")
        }
        if let bug = options.injectBug {
            switch bug {
            case .skipTLBFlush: machine.debugSkipTLBFlush = true
            case .freeTablesWithoutRCU: machine.debugFreeTablesWithoutRCU = true
            }
        }
        // The checker mode validates every user access against the page tables too.
        if options.checkInvariants {
            machine.validateTLB = true
            machine.lockOrder.enabled = true
        }
        // --trace prints the tracepoints after each statement; the checker keeps a ring of
        // them so a violation can show the history of its frame.
        machine.tracer.enabled = options.trace || options.checkInvariants
        if options.trace { machine.tracer.keep = Int.max / 4 }
        kmsgRead = machine.log.count
    }

    /// Executes one statement (after `start()`), then completes its writes and, with
    /// `checkInvariants`, runs the checker. Throws `ScenarioError` when the scenario cannot go on.
    public func step(_ s: Statement) throws {
        try execute(s)
        // The I/O model: writes submitted during a statement complete at its end.
        machine.completeWrites()
        if !panicReported, let p = machine.oom.panicMessage {
            panicReported = true
            report.output.append(.warning(s.location, "Kernel panic - not syncing: \(p) (the model goes on; the machine would have stopped here)"))
        }
        if options.trace {
            for r in machine.tracer.drain() { report.output.append(.trace(r.text)) }
        }
        if options.checkInvariants {
            do {
                try machine.checkInvariants()
            } catch {
                throw ScenarioError(s.location, "the model broke an invariant after this statement: \(error)")
            }
        }
    }

    /// The report of the statements run so far (the last part of `run()`).
    public func end() -> ScenarioReport {
        finish()
        return report
    }

    /// The task a process name refers to now (nil before it exists, or when its fork failed).
    public func task(named name: String) -> Task? { procs[name] }

    /// The address a variable holds now (nil before it is bound, or when its call failed).
    public func variable(_ name: String) -> UInt64? { variables[name] }

    // MARK: Statements

    private func execute(_ s: Statement) throws {
        let loc = s.location
        switch s.kind {
        case .machine:
            break // folded into scenario.machine by the parser
        case .sysctl(let name, let value):
            let ints = value.split(separator: " ").compactMap { parseSignedInteger(String($0)) }
            if let error = modelHugetlbWrite(name, value) {
                if !error.isEmpty { report.output.append(.warning(loc, error)) }
            } else if !modelSysctl(name, ints) {
                report.output.append(.warning(loc, "\(name) is not modelled yet; the write has no effect"))
            }
        case .sysfs(let path, let value):
            if let error = modelHugetlbWrite(path, value) {
                if !error.isEmpty { report.output.append(.warning(loc, error)) }
            } else if !modelSysfs(path, value) {
                report.output.append(.warning(loc, "\(path) is not modelled after boot yet; the write has no effect"))
            }
        case .spawn(let name, let cpu):
            if let t = procs[name], t.state != .dead {
                throw ScenarioError(loc, "process '\(name)' already exists (pid \(t.pid))")
            }
            let t = machine.spawn(name: name, cpu: cpu ?? 0)
            procs[name] = t
            failedForks[name] = nil
            skippedForks[name] = nil
            if t.mm == nil {
                throw ScenarioError(loc, "the machine has no memory left to create process '\(name)'")
            }
            if options.trace { report.output.append(.trace("\(name)[\(t.pid)]: spawned on cpu \(t.cpu)")) }
        case .fileCreate(let name, let size, let cold):
            files[name] = modelCreateFile(name: name, size: size, cold: cold)
        case .fileIO(let name, let verb, let offset, let length):
            guard let id = files[name] else { throw ScenarioError(loc, "file '\(name)' does not exist") }
            modelFileIO(id, verb: verb, offset: offset, length: length)
        case .mark(let name):
            var values: [CounterRef: Int64] = [:]
            for c in sinceCounters[name] ?? [] { values[c] = try read(c, at: loc) }
            markValues[name] = values
        case .expect(let e):
            report.expectations.append(try check(e, s))
        case .cat(let view, let path):
            report.output.append(.view(path: path, text: try render(view, path, loc), location: loc))
        case .echo(let text):
            report.output.append(.echo(text))
        case .swap(let on, let name, let size, let prio):
            do {
                if on { try machine.swapon(name: name, size: size, priority: prio) } else { try machine.swapoff(name: name) }
            } catch {
                throw ScenarioError(loc, "\(on ? "swapon" : "swapoff") \(name): \(error)")
            }
        case .cgroup(let verb, let path, let key, let value):
            do {
                switch verb {
                case "create": try machine.memcgCreate(path: path)
                case "remove": try machine.memcgRemove(path: path)
                default:
                    guard let g = machine.memcg.group(path: path) else { throw Errno.ENOENT }
                    if verb == "attach" {
                        guard let t = procs[key] else { throw Errno.EINVAL }
                        machine.memcgAttach(t, to: g)
                    } else {
                        let v: Int64 = value == "max" || value == "-1" ? -1 : Int64(clamping: parseNumber(value) ?? 0)
                        try machine.memcgWrite(g, key, v)
                    }
                }
            } catch {
                throw ScenarioError(loc, "cgroup \(verb) \(path): \(error)")
            }
        case .tunable(let name, let value):
            do {
                try machine.tunables.set(name, value)
            } catch {
                throw ScenarioError(loc, "tunable \(error)")
            }
        case .rcu(let cpu):
            if let cpu {
                machine.rcuQuiescentState(cpu: cpu)
            } else {
                let blocked = machine.synchronizeRCU()
                if !blocked.isEmpty {
                    report.output.append(.warning(loc, "the grace period waits for CPU \(blocked.map(String.init).joined(separator: ", ")) (inside a read-side section)"))
                }
            }
        case .poison(let pfn):
            let running = machine.tasks.filter { $0.state == .running }
            let r = machine.memoryFailure(PFN(pfn))
            if options.trace { report.output.append(.trace("memory_failure(\(hex(pfn))) = \(r.rawValue)")) }
            noteKilled(running, loc)
        case .poisonAt(let who, let e):
            let t = try task(who, loc)
            let a = try value(e)
            guard t.state == .running, let mm = t.mm,
                  case .leaf(let l, let level) = mm.pageTable.lookup(VirtAddr(a & ~Page.offsetMask)), l.present || l.protNone else {
                throw ScenarioError(loc, "poison: '\(who)' maps no page at \(hex(a))")
            }
            let running = machine.tasks.filter { $0.state == .running }
            let pfn = l.pfn + ((a & (level.entrySpan - 1)) >> Page.shift)
            let r = machine.memoryFailure(pfn)
            if options.trace { report.output.append(.trace("memory_failure(\(hex(pfn.raw))) = \(r.rawValue)")) }
            noteKilled(running, loc)
        case .action(let name, let action, let bind):
            try perform(name, action, bind: bind, s)
        }
    }

    /// The live task a statement names.
    private func task(_ name: String, _ loc: ScenarioLocation) throws -> Task {
        guard let t = procs[name] else {
            if let (floc, e) = failedForks[name] {
                throw ScenarioError(loc, "process '\(name)' does not exist: its fork at line \(floc.line) failed with \(e.name)")
            }
            if let (floc, why) = skippedForks[name] {
                throw ScenarioError(loc, "process '\(name)' does not exist: the statement at line \(floc.line) that would create it was not run, because \(why)")
            }
            throw ScenarioError(loc, "process '\(name)' has not been created yet")
        }
        return t
    }

    private func perform(_ name: String, _ action: ProcessAction, bind: String?, _ s: Statement) throws {
        let loc = s.location
        let t = try task(name, loc)
        if t.state != .running {
            let why = t.signals.last.map { "was killed by \($0.name)" } ?? "has exited"
            report.output.append(.warning(loc, "\(name)[\(t.pid)] \(why); '\(action.name)' not run"))
            switch action {
            case .fork(let child), .thread(let child, _):
                if procs[child] == nil { skippedForks[child] = (loc, "\(name)[\(t.pid)] \(why)") }
            default: break
            }
            return
        }
        var result: ModelResult
        var call = ""
        switch action {
        case .mmap(let addrExpr, let length, let prot, let flags, let file, let offset, let advice):
            let addr = try addrExpr.map { try value($0) } ?? 0
            var fileID: Int?
            if let f = file {
                guard let id = files[f] else { throw ScenarioError(loc, "file '\(f)' does not exist") }
                fileID = id
            }
            call = "mmap(\(addrExpr == nil ? "NULL" : hex(addr)), \(length), \(protName(prot)), \(flagNames(flags)), \(file ?? "-1"), \(offset))"
            result = modelMmap(t, addr: addr, length: length, prot: prot, flags: flags, file: fileID, offset: offset)
            if case .ok(let a?) = result, !advice.isEmpty {
                // The mapping exists whatever the advice does: bind it now.
                if let b = bind {
                    variables[b] = a
                    variableFailures[b] = nil
                }
                trace(t, call, result)
                for adv in advice {
                    guard let r = modelMadvise(t, addr: a, length: length, advice: adv) else {
                        throw ScenarioError(loc, "madvise is not modelled yet (needed for '\(adv == .hugepage ? "hugepage" : "nohugepage")')")
                    }
                    // The madvise() the flag stands for returns 0 (or its errno), as strace shows it.
                    call = "madvise(\(hex(a)), \(length), \(adviceName(adv)))"
                    trace(t, call, r)
                    if case .failed(let e) = r {
                        lastErrno[name] = e
                        report.failedSyscalls.append(FailedSyscall(location: loc, process: name, pid: t.pid, call: call, errno: e))
                        return
                    }
                }
                lastErrno[name] = nil
                return
            }
        case .munmap(let a, let len):
            let addr = try rangeStart(a, len)
            call = "munmap(\(hex(addr)), \(len))"
            result = modelMunmap(t, addr: addr, length: len)
        case .mprotect(let a, let len, let prot):
            let addr = try rangeStart(a, len)
            call = "mprotect(\(hex(addr)), \(len), \(protName(prot)))"
            result = try need(modelMprotect(t, addr: addr, length: len, prot: prot), "mprotect", loc)
        case .madvise(let a, let len, let adv):
            let addr = try rangeStart(a, len)
            call = "madvise(\(hex(addr)), \(len), \(adviceName(adv)))"
            result = try need(modelMadvise(t, addr: addr, length: len, advice: adv), "madvise", loc)
        case .mremap(let a, let oldLen, let newLen, let flags, let newExpr):
            let addr = try rangeStart(a, oldLen)
            let newAddr = try newExpr.map { try value($0) } ?? 0
            call = "mremap(\(hex(addr)), \(oldLen), \(newLen), \(mremapFlagNames(flags))\(newExpr == nil ? "" : ", " + hex(newAddr)))"
            result = try need(modelMremap(t, old: addr, oldLength: oldLen, newLength: newLen, flags: flags, newAddr: newAddr), "mremap", loc)
        case .brk(let spec):
            let old = modelCurrentBrk(t)
            var requested: UInt64
            switch spec {
            case .query:
                call = "brk(NULL)"
                requested = old
            case .grow(let n):
                let (r, o) = old.addingReportingOverflow(n)
                requested = o ? .max : r
                call = "sbrk(+\(n)) [brk(\(hex(requested)))]"
            case .shrink(let n):
                requested = n > old ? 0 : old - n
                call = "sbrk(-\(n)) [brk(\(hex(requested)))]"
            case .set(let e):
                requested = try value(e)
                call = "brk(\(hex(requested)))"
            }
            if case .query = spec {
                result = .ok(old)
            } else {
                let now = modelBrk(t, requested)
                // glibc's brk()/sbrk(): a break short of the request is ENOMEM.
                result = now == requested ? .ok(old) : .failed(.ENOMEM)
            }
        case .mlock(let a, let len, let onFault):
            let addr = try rangeStart(a, len)
            call = onFault ? "mlock2(\(hex(addr)), \(len), MLOCK_ONFAULT)" : "mlock(\(hex(addr)), \(len))"
            result = try need(modelMlock(t, addr: addr, length: len, onFault: onFault), "mlock", loc)
        case .munlock(let a, let len):
            let addr = try rangeStart(a, len)
            call = "munlock(\(hex(addr)), \(len))"
            result = try need(modelMunlock(t, addr: addr, length: len), "munlock", loc)
        case .mlockall(let cur, let fut, let onf):
            let names = [cur ? "MCL_CURRENT" : nil, fut ? "MCL_FUTURE" : nil, onf ? "MCL_ONFAULT" : nil].compactMap { $0 }
            call = "mlockall(\(names.joined(separator: "|")))"
            result = try need(modelMlockall(t, current: cur, future: fut, onFault: onf), "mlockall", loc)
        case .munlockall:
            call = "munlockall()"
            result = try need(modelMunlockall(t), "munlockall", loc)
        case .fork(let child):
            if let c = procs[child], c.state == .running {
                throw ScenarioError(loc, "process '\(child)' already exists (pid \(c.pid)); give the child another name")
            }
            call = "fork()"
            switch machine.fork(t, childName: child) {
            case .success(let c):
                procs[child] = c
                failedForks[child] = nil
                skippedForks[child] = nil
                result = .ok(UInt64(c.pid))
            case .failure(let e):
                failedForks[child] = (loc, e)
                procs[child] = nil
                result = .failed(e)
            }
        case .thread(let child, let cpu):
            if let c = procs[child], c.state == .running {
                throw ScenarioError(loc, "process '\(child)' already exists (pid \(c.pid)); give the thread another name")
            }
            call = "clone(CLONE_VM|CLONE_THREAD)"
            switch machine.cloneThread(t, name: child, cpu: cpu) {
            case .success(let c):
                procs[child] = c
                result = .ok(UInt64(c.pid))
            case .failure(let e):
                result = .failed(e)
            }
        case .exit(let code):
            call = "exit_group(\(code))"
            trace(t, call, .ok(nil))
            machine.exitGroup(t, code: code)
            lastErrno[name] = nil
            return
        case .wait(let childName):
            var child: Task?
            if let c = childName {
                let ct = try task(c, loc)
                guard ct.parent == t.pid else {
                    throw ScenarioError(loc, "'\(c)' is not a child of '\(name)'")
                }
                if ct.state == .running {
                    throw ScenarioError(loc, "wait would block forever: '\(c)' is still running (make it exit first)")
                }
                if ct.state == .dead {
                    throw ScenarioError(loc, "'\(c)' has already been reaped")
                }
                child = ct
            } else {
                let kids = t.children.compactMap { machine.task(pid: $0) }
                if kids.isEmpty {
                    throw ScenarioError(loc, "'\(name)' has no child to wait for (wait would fail with ECHILD)")
                }
                if !kids.contains(where: { $0.state == .zombie }) {
                    throw ScenarioError(loc, "wait would block forever: no child of '\(name)' has exited")
                }
            }
            call = "wait4(\(child.map { String($0.pid) } ?? "-1"))"
            guard let reaped = modelWait(t, child: child) else {
                throw ScenarioError(loc, "wait found no child to reap")
            }
            result = .ok(UInt64(reaped.pid))
        case .execve:
            call = "execve()"
            machine.execve(t)
            result = .ok(nil)
        case .sleep:
            call = "sleep()"
            machine.sleep(t)
            result = .ok(nil)
        case .gup(let e):
            let a = try value(e)
            call = "gup_fast(\(hex(a)))"
            result = machine.lockFreeWalk(t, a).map { .ok($0.raw) } ?? .failed(.EFAULT)
        case .movePages(let a, let len, let node):
            let addr = try rangeStart(a, len)
            call = node.map { "move_pages(\(hex(addr)), \(len), node=\($0))" } ?? "move_pages(\(hex(addr)), \(len))"
            let r = machine.migrateRange(t, addr: addr, length: len, toNode: node)
            result = .ok(UInt64(r.failed))       // move_pages() returns the pages not moved
        case .hwpoison(let a, let len):
            let addr = try rangeStart(a, len)
            call = "madvise(\(hex(addr)), \(len), MADV_HWPOISON)"
            let running = machine.tasks.filter { $0.state == .running }
            var page = addr & ~Page.offsetMask
            while page < addr + len && t.state == .running {
                machine.injectHWPoison(t, addr: page)
                page += Page.size
            }
            noteKilled(running, loc)
            result = .ok(nil)
        case .oomScoreAdj(let n):
            call = "write(\"/proc/self/oom_score_adj\", \"\(n)\")"
            switch machine.setOOMScoreAdj(t, n) {
            case .success: result = .ok(nil)
            case .failure(let e): result = .failed(e)
            }
        case .access(let spec):
            let start = try value(spec.start)
            let length: UInt64
            switch spec.end {
            case .length(let n): length = n
            case .end(let e):
                let end = try value(e)
                guard end > start else { throw ScenarioError(e.location, "the end address \(hex(end)) is not above the start \(hex(start))") }
                length = end - start
            }
            try checkRange(start, length, spec.start.location)
            let others = machine.tasks.filter { $0.state == .running && $0 !== t }
            let r = machine.access(t, addr: start, length: length, kind: spec.kind, stride: spec.stride)
            // The OOM killer may have chosen another process for this task's fault.
            noteKilled(others, loc)
            if options.trace {
                var line = "\(t.name)[\(t.pid)]: \(action.name) \(hex(start))..\(hex(start &+ length)) stride \(spec.stride): \(r.accesses) accesses, \(r.faults) faults"
                if let sig = r.signal { line += ", --- \(sig.name) {si_addr=\(hex(sig.address))} --- +++ killed by \(sig.name) +++" }
                report.output.append(.trace(line))
            }
            if let sig = r.signal {
                report.signals.append(DeliveredSignal(location: loc, process: name, pid: t.pid, signal: sig.name, address: sig.address))
            }
            return
        }
        trace(t, call, result)
        switch result {
        case .ok(let v):
            lastErrno[name] = nil
            if let b = bind {
                variables[b] = v
                variableFailures[b] = nil
            }
        case .failed(let e):
            lastErrno[name] = e
            report.failedSyscalls.append(FailedSyscall(location: loc, process: name, pid: t.pid, call: call, errno: e))
            if let b = bind {
                variables[b] = nil
                variableFailures[b] = loc
            }
        }
    }

    /// Tasks that were running before a memory failure and were killed by it (SIGBUS).
    private func noteKilled(_ before: [Task], _ loc: ScenarioLocation) {
        for t in before where t.state != .running {
            let name = procs.first { $0.value === t }?.key ?? t.name
            report.signals.append(DeliveredSignal(location: loc, process: name, pid: t.pid, signal: t.signals.last?.name ?? "SIGBUS",
                                                  address: t.signals.last?.address ?? 0))
        }
    }

    private func need(_ r: ModelResult?, _ what: String, _ loc: ScenarioLocation) throws -> ModelResult {
        guard let r else { throw ScenarioError(loc, "\(what) is not modelled yet") }
        return r
    }

    private func trace(_ t: Task, _ call: String, _ r: ModelResult) {
        guard options.trace else { return }
        let res: String
        switch r {
        case .ok(let v?): res = call.hasPrefix("fork") || call.hasPrefix("clone") || call.hasPrefix("wait") ? String(v) : hex(v)
        case .ok(nil): res = "0"
        case .failed(let e): res = "-1 \(e.name)"
        }
        report.output.append(.trace("\(t.name)[\(t.pid)]: \(call) = \(res)"))
    }

    // MARK: Addresses

    /// An address expression's value now.
    private func value(_ e: AddressExpr) throws -> UInt64 {
        let v = try e.evaluate { name in
            guard let bound = variables[name] else {
                if let f = variableFailures[name] {
                    throw ScenarioError(e.location, "'\(name)' has no address: the call that binds it at line \(f.line) failed")
                }
                throw ScenarioError(e.location, "'\(name)' has no address yet")
            }
            return bound
        }
        guard let v else { throw ScenarioError(e.location, "address overflow: \(e.text) is outside 0 ... 2^64-1") }
        return v
    }

    private func rangeStart(_ e: AddressExpr, _ length: UInt64) throws -> UInt64 {
        let v = try value(e)
        try checkRange(v, length, e.location)
        return v
    }

    private func checkRange(_ start: UInt64, _ length: UInt64, _ loc: ScenarioLocation) throws {
        if let why = ScenarioParser.rangeProblem(start: start, length: length, arch: machine.arch) {
            throw ScenarioError(loc, "address overflow: \(hex(start)) + \(formatLength(length)) \(why)")
        }
    }

    // MARK: Counters and expectations

    /// A counter's value now. A process that does not exist (yet, or any more) counts zero.
    private func read(_ c: CounterRef, at loc: ScenarioLocation) throws -> Int64 {
        switch c.source {
        case .meminfo(let field):
            guard let f = machine.meminfo().first(where: { $0.name == field }) else {
                throw ScenarioError(loc, "/proc/meminfo has no \(field) on \(machine.arch.rawValue)")
            }
            return Int64(f.value)
        case .vmstat(let item):
            return machine.vmstatValue(item)
        case .memcg(let path, let field):
            guard let g = machine.memcg.group(path: path) else { throw ScenarioError(loc, "no memory cgroup '\(path)' (create it with 'cgroup create')") }
            guard let v = machine.memcgValue(g, field) else { throw ScenarioError(loc, "memory cgroup '\(path)' has no value '\(field)'") }
            return v
        case .status(let p, let field):
            guard let t = procs[p] else { return 0 }
            return modelStatus(t)[field] ?? 0
        case .rusage(let p, let field):
            guard let t = procs[p] else { return 0 }
            switch field {
            case .minflt: return Int64(t.minFlt)
            case .majflt: return Int64(t.majFlt)
            case .cminflt: return Int64(t.cminFlt)
            case .cmajflt: return Int64(t.cmajFlt)
            }
        case .mapsCount(let p):
            guard let t = procs[p] else { return 0 }
            return modelMapsCount(t)
        case .shootdown(let name):
            return machine.shootdownCounter(name) ?? 0
        case .hugepages(let kb, let field):
            guard let h = machine.hugetlb.hstate(sizeKB: kb) else {
                throw ScenarioError(loc, "/sys/kernel/mm/hugepages has no hugepages-\(kb)kB on \(machine.arch.rawValue)")
            }
            switch field {
            case "nr_hugepages": return Int64(h.persistentHugePages)
            case "free_hugepages": return Int64(h.freeHugePages)
            case "resv_hugepages": return Int64(h.resvHugePages)
            case "surplus_hugepages": return Int64(h.surplusHugePages)
            default: return Int64(h.nrOvercommitHugePages)
            }
        case .oom(let p, let adj):
            guard let t = procs[p], t.state == .running else { return 0 }
            return adj ? Int64(machine.oomScoreAdj(t)) : machine.oomScore(t)
        }
    }

    private func check(_ e: ExpectationKind, _ s: Statement) throws -> ExpectationResult {
        switch e {
        case .counter(let c, let since, let op, let expected):
            let now = try read(c, at: s.location)
            let unit = c.isKB ? " kB" : ""
            if let m = since {
                guard let at = markValues[m]?[c] else {
                    throw ScenarioError(s.location, "mark '\(m)' has not been set yet when this runs")
                }
                let delta = now - at
                return ExpectationResult(location: s.location, statement: s.text, passed: op.holds(delta, expected),
                                         expected: "\(op.rawValue) \(expected)\(unit)", actual: "\(delta)\(unit)",
                                         detail: "now \(now)\(unit), at mark \(m) \(at)\(unit)")
            }
            return ExpectationResult(location: s.location, statement: s.text, passed: op.holds(now, expected),
                                     expected: "\(op.rawValue) \(expected)\(unit)", actual: "\(now)\(unit)", detail: nil)
        case .counterRange(let c, let since, let lo, let hi):
            let now = try read(c, at: s.location)
            var v = now
            if let m = since {
                guard let at = markValues[m]?[c] else {
                    throw ScenarioError(s.location, "mark '\(m)' has not been set yet when this runs")
                }
                v = now - at
            }
            let unit = c.isKB ? " kB" : ""
            return ExpectationResult(location: s.location, statement: s.text, passed: v >= lo && v <= hi,
                                     expected: "in \(lo)..\(hi)\(unit)", actual: "\(v)\(unit)", detail: nil)
        case .errno(let p, let op, let want):
            _ = try task(p, s.location)
            let got = lastErrno[p]
            let same = got == want
            return ExpectationResult(location: s.location, statement: s.text, passed: op == .eq ? same : !same,
                                     expected: "\(op.rawValue) \(want?.name ?? "ok")", actual: got?.name ?? "ok", detail: nil)
        case .signal(let p, let op, let want):
            let t = try task(p, s.location)
            let got = t.signals.last?.name
            let same = got == want
            return ExpectationResult(location: s.location, statement: s.text, passed: op == .eq ? same : !same,
                                     expected: "\(op.rawValue) \(want ?? "none")", actual: got ?? "none", detail: nil)
        }
    }

    // MARK: Views

    private func render(_ view: ProcView, _ path: String, _ loc: ScenarioLocation) throws -> String {
        switch view {
        case .meminfo: return machine.meminfoText()
        case .vmstat: return machine.vmstatText()
        case .zoneinfo: return machine.zoneinfoText()
        case .buddyinfo: return machine.buddyinfoText()
        case .pagetypeinfo: return machine.pagetypeinfoText()
        case .tlbState: return machine.tlbStateText()
        case .hugepages: return machine.hugepagesText()
        case .node(let n, let numastat): return numastat ? machine.nodeNumastatText(node: n) : machine.nodeMeminfoText(node: n)
        case .status(let who), .maps(let who):
            let t: Task
            if let pid = parseNumber(who) {
                guard let found = machine.task(pid: Int(truncatingIfNeeded: pid)), found.state != .dead else {
                    throw ScenarioError(loc, "cat: \(path): No such file or directory (no process with pid \(who))")
                }
                t = found
            } else {
                t = try task(who, loc)
                guard t.state != .dead else {
                    throw ScenarioError(loc, "cat: \(path): No such file or directory ('\(who)' has been reaped)")
                }
            }
            if case .status = view { return modelStatusText(t) }
            return modelMapsText(t)
        case .oomScore(let who, let adj):
            let t: Task
            if let pid = parseNumber(who), let found = machine.task(pid: Int(truncatingIfNeeded: pid)) { t = found } else { t = try task(who, loc) }
            guard t.state != .dead else {
                throw ScenarioError(loc, "cat: \(path): No such file or directory ('\(who)' has been reaped)")
            }
            // A zombie has no mm: oom_score 0, its oom_score_adj as it was.
            return "\(adj ? Int64(machine.oomScoreAdj(t)) : machine.oomScore(t))\n"
        case .swaps: return machine.procSwaps()
        case .memcg(let cg, let file, let v2):
            guard let g = machine.memcg.group(path: cg) else {
                throw ScenarioError(loc, "cat: \(path): No such file or directory (no memory cgroup '\(cg)'; create it with 'cgroup create')")
            }
            guard let text = v2 ? machine.memcgFileV2(g, file) : machine.memcgFile(g, file) else {
                throw ScenarioError(loc, "cat: \(path): No such file or directory (the root cgroup has no \(file))")
            }
            return text
        case .kmsg:
            let lines = machine.log.lines[min(kmsgRead, machine.log.count)...]
            kmsgRead = machine.log.count
            return lines.map { $0 + "\n" }.joined()
        case .kpage(let pfn):
            guard pfn < machine.maxPFN else { throw ScenarioError(loc, "cat: \(path): PFN \(hex(pfn)) is beyond the end of memory (max_pfn \(hex(machine.maxPFN)))") }
            return machine.pageReport(PFN(pfn))
        case .pagemap(let who, let e):
            let t = try task(who, loc)
            guard t.state == .running, let mm = t.mm else { throw ScenarioError(loc, "cat: \(path): '\(who)' has no address space") }
            let a = try value(e)
            guard case .leaf(let l, let level) = mm.pageTable.lookup(VirtAddr(a & ~Page.offsetMask)), l.present || l.protNone else {
                return "\(hex(a)): not present\n"
            }
            return machine.pageReport(l.pfn + ((a & (level.entrySpan - 1)) >> Page.shift))
        case .vmemmap(let who, let address):
            let t: Task
            if let pid = parseNumber(who), let found = machine.task(pid: Int(truncatingIfNeeded: pid)) { t = found } else { t = try task(who, loc) }
            guard let mm = t.mm else { throw ScenarioError(loc, "cat: \(path): '\(who)' has no address space") }
            guard case .leaf(let leaf, _) = mm.pageTable.lookup(VirtAddr(address)), leaf.present else {
                throw ScenarioError(loc, "cat: \(path): nothing is mapped at \(String(hex: address, width: 0)) in '\(who)'")
            }
            let pfn = leaf.pfn + ((address & (leaf.size.bytes - 1)) >> Page.shift)
            return machine.vmemmapText(pfn: pfn) + machine.kpageflagsSummary(pfn: pfn)
        }
    }

    // MARK: Summary

    private func finish() {
        for t in machine.tasks {
            report.processes.append(ProcessSummary(
                name: t.name, pid: t.pid, parent: t.parent, state: t.state.rawValue,
                exitCode: t.state == .running ? nil : t.exitCode,
                minflt: t.minFlt, majflt: t.majFlt, cminflt: t.cminFlt, cmajflt: t.cmajFlt,
                status: modelStatus(t), vmas: modelMapsCount(t), signal: t.signals.last?.name))
        }
        report.meminfo = machine.meminfo().map { ($0.name, $0.value) }
        report.vmstat = VMStat.allCases.map { ($0.name, machine.vmstatValue($0)) }
    }
}

// MARK: Names as strace prints them

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func protName(_ p: Prot) -> String {
    if p.isEmpty { return "PROT_NONE" }
    return [p.contains(.read) ? "PROT_READ" : nil, p.contains(.write) ? "PROT_WRITE" : nil, p.contains(.exec) ? "PROT_EXEC" : nil]
        .compactMap { $0 }.joined(separator: "|")
}

func flagNames(_ f: MapFlags) -> String {
    let names: [(MapFlags, String)] = [(.shared, "MAP_SHARED"), (.private, "MAP_PRIVATE"), (.fixed, "MAP_FIXED"),
                                       (.anonymous, "MAP_ANONYMOUS"), (.growsdown, "MAP_GROWSDOWN"), (.locked, "MAP_LOCKED"),
                                       (.noreserve, "MAP_NORESERVE"), (.populate, "MAP_POPULATE"), (.stack, "MAP_STACK"),
                                       (.hugetlb, "MAP_HUGETLB"), (.fixedNoreplace, "MAP_FIXED_NOREPLACE")]
    let s = names.filter { f.contains($0.0) }.map(\.1).joined(separator: "|")
    return s.isEmpty ? "0" : s
}

func mremapFlagNames(_ f: MremapFlags) -> String {
    let s = [(MremapFlags.maymove, "MREMAP_MAYMOVE"), (.fixed, "MREMAP_FIXED"), (.dontunmap, "MREMAP_DONTUNMAP")]
        .filter { f.contains($0.0) }.map(\.1).joined(separator: "|")
    return s.isEmpty ? "0" : s
}

func adviceName(_ a: Advice) -> String {
    "MADV_" + (ScenarioCatalog.advice.first { $0.advice == a }?.name.uppercased() ?? String(a.rawValue))
}
