// The scenario language's syntax tree: what a `.mmsim` file says, statement by statement.
//
// A scenario is a list of statements, each with the place it came from. The parser
// (ScenarioParser.swift) checks everything that can be checked without running: names of
// commands, counters, sysctls, processes, marks and variables, numbers and literal address
// ranges. The runner (ScenarioRunner.swift) executes the statements on a Machine.

/// A place in a scenario file: 1-based line and column.
public struct ScenarioLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    /// "FILE:LINE:COL", as compilers print it.
    public var description: String { "\(file):\(line):\(column)" }
}

/// A scenario that cannot be run: a syntax error, an unknown name, an impossible range.
/// Printed on one line as `FILE:LINE:COL: error: what is wrong`.
public struct ScenarioError: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: ScenarioLocation
    public var message: String
    public init(_ location: ScenarioLocation, _ message: String) {
        self.location = location
        self.message = scenarioPrintable(message)
    }
    public var description: String { "\(location): error: \(message)" }
}

/// A message as a terminal may show it on one line: control characters (C0, DEL, C1) are
/// escaped as `\xNN` so that a NUL, an ESC sequence or a CR echoed from the input cannot
/// colour the terminal or overprint the line, and a word longer than `maxWord` characters
/// (an address expression thousands of characters long) is shortened to its two ends.
public func scenarioPrintable(_ s: String, maxWord: Int = 80) -> String {
    var out = String.UnicodeScalarView()
    var word = String.UnicodeScalarView()
    func flush() {
        defer { word = String.UnicodeScalarView() }
        guard word.count > maxWord else { out.append(contentsOf: word); return }
        let scalars = Array(word)
        out.append(contentsOf: scalars[..<(maxWord / 2)])
        out.append(contentsOf: "...".unicodeScalars)
        out.append(contentsOf: scalars[(scalars.count - maxWord / 4)...])
        out.append(contentsOf: " (\(scalars.count) characters)".unicodeScalars)
    }
    for u in s.unicodeScalars {
        if u.value < 0x20 || (0x7F...0x9F).contains(u.value) {
            let hex = String(u.value, radix: 16)
            word.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" + hex : hex)).unicodeScalars)
        } else if u == " " {
            flush()
            out.append(u)
        } else {
            word.append(u)
        }
    }
    flush()
    return String(out)
}

/// A number in the scenario, with the text it was written as.
public struct ScenarioNumber: Sendable, Hashable {
    public var value: UInt64
    public var location: ScenarioLocation
}

/// An address: a literal, or a variable bound by an earlier `NAME = mmap ...` (plus or minus
/// offsets), such as `buf`, `buf+1M`, `buf+40*4K`.
public struct AddressExpr: Sendable, Hashable, CustomStringConvertible {
    public enum Term: Sendable, Hashable {
        case literal(UInt64)
        case variable(String)
        /// `a*b`: both factors literal (sizes and counts).
        case product(UInt64, UInt64)
        /// `alignup(EXPR,ALIGN)`: EXPR rounded up to a multiple of ALIGN (a power of two).
        case alignUp(AddressExpr, UInt64)
    }
    /// Signed terms: (negative?, term).
    public var terms: [(negative: Bool, term: Term)]
    public var text: String
    public var location: ScenarioLocation

    public init(terms: [(negative: Bool, term: Term)], text: String, location: ScenarioLocation) {
        self.terms = terms
        self.text = text
        self.location = location
    }
    public static func == (a: AddressExpr, b: AddressExpr) -> Bool {
        a.text == b.text && a.location == b.location
    }
    public func hash(into h: inout Hasher) {
        h.combine(text)
        h.combine(location)
    }
    public var description: String { text }

    /// The value when it has no variables (nil on a variable or on overflow).
    public var literalValue: UInt64? {
        try? evaluate { _ in nil }
    }

    /// The value with variables looked up by `lookup`; nil from `lookup` or an overflow gives nil.
    public func evaluate(_ lookup: (String) throws -> UInt64?) rethrows -> UInt64? {
        var v: UInt64 = 0
        for (neg, t) in terms {
            let x: UInt64
            switch t {
            case .literal(let n): x = n
            case .product(let a, let b):
                let (p, o) = a.multipliedReportingOverflow(by: b)
                if o { return nil }
                x = p
            case .variable(let name):
                guard let b = try lookup(name) else { return nil }
                x = b
            case .alignUp(let e, let align):
                guard let inner = try e.evaluate(lookup) else { return nil }
                let (r, o) = inner.addingReportingOverflow(align - 1)
                if o { return nil }
                x = r & ~(align - 1)
            }
            let (r, o) = neg ? v.subtractingReportingOverflow(x) : v.addingReportingOverflow(x)
            if o { return nil }
            v = r
        }
        return v
    }
    /// Variables the expression reads.
    public var variables: [String] {
        terms.flatMap { t -> [String] in
            switch t.term {
            case .variable(let n): [n]
            case .alignUp(let e, _): e.variables
            default: []
            }
        }
    }
}

/// The end of a memory range: `+LEN` or an end address (exclusive).
public enum RangeEnd: Sendable, Hashable {
    case length(UInt64)
    case end(AddressExpr)
}

/// The machine line: a preset and overrides (`machine x86_64 memory=4G cpus=2`,
/// `machine preset=reference pcid=off`).
public struct MachineSpec: Sendable, Hashable {
    public var config: MachineConfig
    public init(config: MachineConfig) { self.config = config }
}

/// A memory access the program makes: one load, store or instruction fetch every `stride`
/// bytes from `start` up to the end of the range.
public struct AccessSpec: Sendable, Hashable {
    public var kind: AccessKind
    public var start: AddressExpr
    public var end: RangeEnd
    public var stride: UInt64
}

/// brk(2) forms.
public enum BrkSpec: Sendable, Hashable {
    /// sbrk(+N) / sbrk(-N)
    case grow(UInt64)
    case shrink(UInt64)
    /// brk(ADDR)
    case set(AddressExpr)
    /// brk(0): read the break.
    case query
}

/// One system call or program action of a process.
public enum ProcessAction: Sendable, Hashable {
    /// mmap(addr, len, prot, flags, fd, offset); `nohugepage`/`hugepage` in the flags are a
    /// following madvise(), as the fidelity workloads do.
    case mmap(addr: AddressExpr?, length: UInt64, prot: Prot, flags: MapFlags, file: String?, offset: UInt64,
              advice: [Advice])
    case munmap(addr: AddressExpr, length: UInt64)
    case mprotect(addr: AddressExpr, length: UInt64, prot: Prot)
    case madvise(addr: AddressExpr, length: UInt64, advice: Advice)
    case mremap(old: AddressExpr, oldLength: UInt64, newLength: UInt64, flags: MremapFlags, newAddr: AddressExpr?)
    case brk(BrkSpec)
    case mlock(addr: AddressExpr, length: UInt64, onFault: Bool)
    case munlock(addr: AddressExpr, length: UInt64)
    /// mlockall(MCL_CURRENT / MCL_FUTURE / MCL_ONFAULT bits)
    case mlockall(current: Bool, future: Bool, onFault: Bool)
    case munlockall
    /// fork(): the child gets the name.
    case fork(child: String)
    /// clone(CLONE_VM|CLONE_THREAD): a thread of the same address space, on a CPU.
    case thread(name: String, cpu: Int?)
    case exit(code: Int32)
    /// wait4(): a named child, or any child.
    case wait(child: String?)
    case execve
    case access(AccessSpec)
    /// The task blocks: its CPU goes idle (lazy TLB), until the task does something again.
    case sleep
    /// A lock-free page-table walk (gup_fast) of one address, as get_user_pages_fast() does.
    case gup(AddressExpr)
    /// move_pages()/migrate_pages() of the pages mapped in the range (mm/migrate.c), to
    /// any free frame, or with `node` to that NUMA node (__GFP_THISNODE).
    case movePages(addr: AddressExpr, length: UInt64, node: Int?)
    /// madvise(MADV_HWPOISON): inject a memory failure into each page of the range.
    case hwpoison(addr: AddressExpr, length: UInt64)
    /// A write of N to /proc/self/oom_score_adj (-1000 ... 1000).
    case oomScoreAdj(Int)

    /// The syscall's name as strace prints it (accesses: "read"/"write"/"exec").
    public var name: String {
        switch self {
        case .mmap: "mmap"
        case .munmap: "munmap"
        case .mprotect: "mprotect"
        case .madvise: "madvise"
        case .mremap: "mremap"
        case .brk: "brk"
        case .mlock(_, _, let f): f ? "mlock2" : "mlock"
        case .munlock: "munlock"
        case .mlockall: "mlockall"
        case .munlockall: "munlockall"
        case .fork: "fork"
        case .thread: "clone"
        case .exit: "exit_group"
        case .wait: "wait4"
        case .execve: "execve"
        case .sleep: "sleep"
        case .gup: "gup_fast"
        case .access(let a): a.kind == .read ? "read" : a.kind == .write ? "write" : "exec"
        case .movePages: "move_pages"
        case .hwpoison: "madvise"
        case .oomScoreAdj: "write"
        }
    }
}

/// Where a counter's value comes from.
public enum CounterSource: Sendable, Hashable {
    /// A /proc/meminfo field (kB for most, a count for HugePages_*).
    case meminfo(String)
    /// A /proc/vmstat item.
    case vmstat(VMStat)
    /// A /proc/PID/status field of a process (kB).
    case status(process: String, field: String)
    /// getrusage(RUSAGE_SELF / RUSAGE_CHILDREN) fields.
    case rusage(process: String, field: RusageField)
    /// Lines of /proc/PID/maps.
    case mapsCount(process: String)
    /// The model's TLB-shootdown, gather and RCU statistics (`tlb.NAME`, `rcu.NAME`).
    case shootdown(String)
    /// /sys/kernel/mm/hugepages/hugepages-NkB/FIELD (nr_hugepages, free_hugepages,
    /// resv_hugepages, surplus_hugepages, nr_overcommit_hugepages).
    case hugepages(sizeKB: UInt64, field: String)
    /// A memory cgroup's value (`memcg.PATH.FIELD`, see Machine.memcgValue()).
    case memcg(path: String, field: String)
    /// /proc/PID/oom_score (adj = false) or /proc/PID/oom_score_adj.
    case oom(process: String, adj: Bool)
}

public enum RusageField: String, Sendable, Hashable, CaseIterable {
    case minflt, majflt, cminflt, cmajflt
}

/// A counter: where it comes from, and whether it is in kB.
public struct CounterRef: Sendable, Hashable, CustomStringConvertible {
    public var source: CounterSource
    public var text: String
    public var isKB: Bool
    public var description: String { text }
}

/// Comparison operators of `expect`.
public enum Comparison: String, Sendable, Hashable, CaseIterable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    public func holds(_ a: Int64, _ b: Int64) -> Bool {
        switch self {
        case .eq: a == b
        case .ne: a != b
        case .lt: a < b
        case .le: a <= b
        case .gt: a > b
        case .ge: a >= b
        }
    }
}

/// What an `expect` checks.
public enum ExpectationKind: Sendable, Hashable {
    /// A counter (or its change since a mark) compared with a value (in the counter's unit).
    case counter(CounterRef, since: String?, Comparison, Int64)
    /// `expect X [since m] in A..B`: inside [A, B] (for counters the kernel does not repeat exactly).
    case counterRange(CounterRef, since: String?, Int64, Int64)
    /// The last syscall's result of a process: nil = success ("ok").
    case errno(process: String, Comparison, Errno?)
    /// The last signal delivered to a process, by name: nil = none.
    case signal(process: String, Comparison, String?)
}

/// Names of the signals the memory model delivers (`expect NAME.signal == SIGSEGV`).
public let scenarioSignalNames = ["SIGSEGV", "SIGBUS", "SIGKILL"]

/// The views `cat` can print.
public enum ProcView: Sendable, Hashable {
    case meminfo, vmstat, zoneinfo, buddyinfo, pagetypeinfo
    /// /sys/kernel/debug/mmsim/tlb: each CPU's TLB state and the shootdown statistics.
    case tlbState
    /// /sys/kernel/mm/hugepages: every pool, and the HVO counters.
    case hugepages
    case status(process: String)
    case maps(process: String)
    /// `/proc/kpageflags/PFN`: the flags, counts and rmap of one frame (kpageflags,
    /// kpagecount and a page-owner-like list of its mappings).
    case kpage(pfn: UInt64)
    /// `/proc/NAME/pagemap/ADDR`: the same for the frame NAME maps at ADDR.
    case pagemap(process: String, addr: AddressExpr)
    /// The vmemmap of the hugetlb page a process maps at `address`: where each struct-page page
    /// is mapped (HVO), with the kpageflags of its head and tails.
    case vmemmap(process: String, address: UInt64)
    /// `/sys/devices/system/node/nodeN/meminfo` (numastat = false) or `.../numastat`.
    case node(Int, numastat: Bool)
    /// `/proc/NAME/oom_score` (adj = false) or `/proc/NAME/oom_score_adj`.
    case oomScore(process: String, adj: Bool)
    /// `/dev/kmsg`: the kernel messages logged since boot, or since the last `cat /dev/kmsg`.
    case kmsg
    /// `/proc/swaps`: the swap areas in use.
    case swaps
    /// A memory cgroup's file: `/sys/fs/cgroup/memory/PATH/FILE` (cgroup v1 names, v2 = false)
    /// or `/sys/fs/cgroup/PATH/FILE` (cgroup v2 names). PATH is "" for the root.
    case memcg(path: String, file: String, v2: Bool)

    /// The path as written in the file (process views keep the name or PID written).
    public func path(written: String) -> String { written }
}

/// One statement of a scenario.
public enum StatementKind: Sendable, Hashable {
    case machine(MachineSpec)
    /// A sysctl by its kernel name (`vm.overcommit_memory`), value as written.
    case sysctl(name: String, value: String)
    /// A write to a sysfs file.
    case sysfs(path: String, value: String)
    /// A new process with nothing mapped but what exec gives it.
    case spawn(name: String, cpu: Int?)
    /// A process acts; `bind` names a variable that receives the result (an address).
    case action(process: String, ProcessAction, bind: String?)
    /// `file create NAME SIZE`
    case fileCreate(name: String, size: UInt64, cold: Bool)
    /// file read|write NAME OFFSET LEN, file drop NAME (POSIX_FADV_DONTNEED), file sync NAME (fsync).
    case fileIO(name: String, verb: String, offset: UInt64, length: UInt64)
    case mark(String)
    case expect(ExpectationKind)
    case cat(ProcView, path: String)
    /// `echo TEXT`: a line in the output.
    case echo(String)
    /// `tunable NAME=VALUE`: one of the unmap path's knobs (UnmapTunables).
    case tunable(name: String, value: UInt64)
    /// `rcu sync` (synchronize_rcu()) or `rcu qs cpu=N` (one CPU passes a quiescent state).
    case rcu(cpu: Int?)
    /// swapon NAME SIZE [prio=N] / swapoff NAME
    case swap(on: Bool, name: String, size: UInt64, priority: Int?)
    /// cgroup create PATH / cgroup set PATH FILE=VALUE / cgroup attach PATH PROC / cgroup remove PATH
    case cgroup(verb: String, path: String, key: String, value: String)
    /// `poison PFN`: memory_failure() on a frame (as /sys/devices/system/memory/hard_offline_page).
    case poison(pfn: UInt64)
    /// `poison NAME ADDR`: memory_failure() on the frame NAME maps at ADDR (an error found by
    /// the hardware, not consumed by NAME: no action required).
    case poisonAt(process: String, addr: AddressExpr)
}

public struct Statement: Sendable, Hashable {
    public var kind: StatementKind
    public var location: ScenarioLocation
    /// The statement's source text (for messages and the JSON report).
    public var text: String
    public init(kind: StatementKind, location: ScenarioLocation, text: String) {
        self.kind = kind
        self.location = location
        self.text = text
    }
}

/// A parsed scenario.
public struct Scenario: Sendable {
    public var file: String
    /// The machine to boot (the `machine` line, sysctls and sysfs writes that precede the
    /// first process folded in as boot parameters where the model takes them that way).
    public var machine: MachineConfig
    public var statements: [Statement]
    public init(file: String, machine: MachineConfig, statements: [Statement]) {
        self.file = file
        self.machine = machine
        self.statements = statements
    }
}
