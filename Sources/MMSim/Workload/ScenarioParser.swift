// The scenario language: a line-oriented parser from `.mmsim` text to a Scenario, with
// FILE:LINE:COL errors in plain sentences.
//
// Lexical rules: `#` starts a comment (at the start of a word), `;` separates statements on
// one line, words are separated by blanks. A statement acted by a process starts with
// `NAME:`; one that binds its result starts `NAME: VAR = ...`.

/// One word of a statement and its column.
struct ScenarioToken {
    var text: String
    var column: Int
}

public struct ScenarioParser {
    public let file: String

    // What the statements seen so far have declared.
    private var config = MachineConfig.reference
    private var machineLine: ScenarioLocation?
    private var booted = false
    private var processes: [String] = []
    private var marks: Set<String> = []
    private var variables: Set<String> = []
    private var files: Set<String> = []
    private var statements: [Statement] = []

    public init(file: String) {
        self.file = file
    }

    /// Parses a whole scenario. Throws the first `ScenarioError`.
    public static func parse(_ text: String, file: String = "<scenario>") throws -> Scenario {
        var p = ScenarioParser(file: file)
        return try p.parse(text)
    }

    public mutating func parse(_ text: String) throws -> Scenario {
        var lineNo = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            try parseLine(String(rawLine), number: lineNo)
        }
        return Scenario(file: file, machine: config, statements: statements)
    }

    /// Parses one more line (numbered `number`), for a caller that feeds a scenario as it is
    /// written (RandomWorkload); returns the statements the line added.
    @discardableResult
    public mutating func parseLine(_ rawLine: String, number: Int) throws -> ArraySlice<Statement> {
        var line = rawLine
        if line.hasSuffix("\r") { line.removeLast() }
        let before = statements.count
        for stmt in Self.tokenize(line) where !stmt.isEmpty {
            try parseStatement(stmt, line: number)
        }
        return statements[before...]
    }

    /// The machine the lines so far describe (the `machine` line and the boot-time sysctls).
    public var machineConfig: MachineConfig { config }

    /// Splits a line into statements (at `;`) of words, dropping the comment.
    static func tokenize(_ line: String) -> [[ScenarioToken]] {
        var out: [[ScenarioToken]] = [[]]
        var word = ""
        var start = 0
        var column = 0
        func flush() {
            if !word.isEmpty { out[out.count - 1].append(ScenarioToken(text: word, column: start)) }
            word = ""
        }
        for ch in line {
            column += 1
            if ch == "#" && word.isEmpty { break }
            if ch == " " || ch == "\t" {
                flush()
            } else if ch == ";" {
                flush()
                out.append([])
            } else {
                if word.isEmpty { start = column }
                word.append(ch)
            }
        }
        flush()
        return out
    }

    // MARK: Statements

    private mutating func parseStatement(_ tokens: [ScenarioToken], line: Int) throws {
        var c = Cursor(tokens: tokens, file: file, line: line)
        let text = tokens.map(\.text).joined(separator: " ")
        let first = c.peek!
        let loc = c.location(of: first)

        // `NAME: ...` (or `NAME:action`): a process acts.
        if let colon = first.text.firstIndex(of: ":"), !first.text.hasPrefix("/") {
            let name = String(first.text[..<colon])
            let rest = String(first.text[first.text.index(after: colon)...])
            c.advance()
            if !rest.isEmpty {
                c.insert(ScenarioToken(text: rest, column: first.column + name.count + 1))
            }
            try checkIdentifier(name, loc, what: "process name")
            guard processes.contains(name) else {
                throw unknownProcess(name, loc)
            }
            guard c.peek != nil else { throw c.missing("a system call or memory access after '\(name):'") }
            try boot(loc)
            var bind: String?
            if c.tokens.count >= c.index + 2, c.tokens[c.index + 1].text == "=" {
                let v = c.next()!
                try checkIdentifier(v.text, c.location(of: v), what: "variable name")
                c.advance()
                bind = v.text
                guard c.peek != nil else { throw c.missing("mmap, mremap or brk after '\(v.text) ='") }
            }
            let actionTok = c.peek
            let action = try parseAction(&c, process: name)
            if let b = bind {
                switch action {
                case .mmap, .mremap, .brk: break
                default:
                    throw ScenarioError(c.location(of: actionTok!), "'\(b) = \(action.name)': only mmap, mremap and brk return an address to bind")
                }
                variables.insert(b)
            }
            try c.expectEnd()
            append(.action(process: name, action, bind: bind), loc, text)
            return
        }

        c.advance()
        switch first.text {
        case "machine":
            try parseMachine(&c, loc)
        case "sysctl":
            try parseSysctl(&c, loc, text)
        case "sysfs":
            try parseSysfs(&c, loc, text)
        case "spawn":
            let n = try c.word("a process name after 'spawn'")
            try checkIdentifier(n.text, c.location(of: n), what: "process name")
            if processes.contains(n.text) {
                throw ScenarioError(c.location(of: n), "process '\(n.text)' already exists; give the new one another name")
            }
            var cpu: Int?
            while let t = c.next() {
                let (k, v) = try keyValue(t, &c)
                guard k == "cpu" else { throw ScenarioError(c.location(of: t), "unknown spawn option '\(k)'; known: cpu=N") }
                guard let n = parseNumber(v.text), n < UInt64(config.cpus) else {
                    throw ScenarioError(c.location(of: v), "cpu=\(v.text): this machine has CPUs 0...\(config.cpus - 1)")
                }
                cpu = Int(n)
            }
            try boot(loc)
            processes.append(n.text)
            append(.spawn(name: n.text, cpu: cpu), loc, text)
        case "file":
            let verb = try c.word("'create' after 'file'")
            let known = "file create NAME SIZE [cold], file read|write NAME OFFSET LEN, file drop NAME, file sync NAME, file truncate NAME SIZE"
            switch verb.text {
            case "create":
                let n = try c.word("a file name after 'file create'")
                let sizeTok = c.peek
                let size = try parseLength(&c, "the file size")
                if size > UInt64(Int64.max) {
                    throw ScenarioError(c.location(of: sizeTok!), "file create \(n.text) \(size): a file size is a signed loff_t (at most 2^63-1)")
                }
                var cold = false
                if let w = c.peek, w.text == "cold" {
                    _ = c.next()
                    cold = true
                }
                try c.expectEnd()
                try boot(loc)
                files.insert(n.text)
                append(.fileCreate(name: n.text, size: size, cold: cold), loc, text)
            case "truncate":
                let n = try c.word("a file name after 'file truncate'")
                guard files.contains(n.text) else { throw ScenarioError(c.location(of: n), "file '\(n.text)' does not exist; create it with 'file create'") }
                let sizeTok = c.peek
                let size = try parseLength(&c, "the new size")
                if size > UInt64(Int64.max) {
                    throw ScenarioError(c.location(of: sizeTok!), "file truncate \(n.text) \(size): a file size is a signed loff_t (at most 2^63-1), so ftruncate(2) would fail with EINVAL")
                }
                try c.expectEnd()
                try boot(loc)
                append(.fileIO(name: n.text, verb: "truncate", offset: size, length: 0), loc, text)
            case "read", "write", "drop", "sync":
                let n = try c.word("a file name after 'file \(verb.text)'")
                guard files.contains(n.text) else { throw ScenarioError(c.location(of: n), "file '\(n.text)' does not exist; create it with 'file create'") }
                var offset: UInt64 = 0, length: UInt64 = 0
                if verb.text == "read" || verb.text == "write" {
                    let offTok = c.peek
                    offset = try parseLength(&c, "the offset")
                    length = try parseLength(&c, "the length")
                    // rw_verify_area(): a file position is a signed loff_t, and so is its end.
                    if let why = Self.fileRangeProblem(offset: offset, length: length) {
                        throw ScenarioError(c.location(of: offTok!), "file \(verb.text) \(n.text) \(offset) \(formatLength(length)): \(why), so \(verb.text)(2) would fail with EINVAL")
                    }
                }
                try c.expectEnd()
                try boot(loc)
                append(.fileIO(name: n.text, verb: verb.text, offset: offset, length: length), loc, text)
            default:
                throw ScenarioError(c.location(of: verb), "unknown file command '\(verb.text)'; known: \(known)")
            }
        case "swapon", "swapoff":
            let n = try c.word("a swap file name after '\(first.text)'")
            var size: UInt64 = 0
            var prio: Int?
            if first.text == "swapon" {
                size = try parseLength(&c, "the swap area size")
                while let t = c.next() {
                    let (k, v) = try keyValue(t, &c)
                    guard k == "prio", let n = Int(v.text), (-1...32767).contains(n) else {
                        throw ScenarioError(c.location(of: t), "unknown swapon option '\(t.text)'; known: prio=N (-1...32767)")
                    }
                    prio = n
                }
            }
            try c.expectEnd()
            try boot(loc)
            append(.swap(on: first.text == "swapon", name: n.text, size: size, priority: prio), loc, text)
        case "cgroup":
            let verb = try c.word("create, set, attach or remove after 'cgroup'")
            guard ["create", "set", "attach", "remove"].contains(verb.text) else {
                throw ScenarioError(c.location(of: verb), "unknown cgroup command '\(verb.text)'; known: cgroup create PATH, cgroup set PATH FILE=VALUE, cgroup attach PATH PROCESS, cgroup remove PATH")
            }
            let path = try c.word("a cgroup path after 'cgroup \(verb.text)'")
            var key = "", value = ""
            if verb.text == "set" {
                guard let t = c.next() else { throw c.missing("FILE=VALUE, such as memory.limit_in_bytes=64M") }
                let (k, v) = try keyValue(t, &c)
                guard v.text == "max" || v.text == "-1" || parseNumber(v.text) != nil else { throw badNumber(v.text, c.location(of: v)) }
                key = k
                value = v.text
            } else if verb.text == "attach" {
                let p = try c.word("a process name after the cgroup path")
                guard processes.contains(p.text) else { throw unknownProcess(p.text, c.location(of: p)) }
                key = p.text
            }
            try c.expectEnd()
            try boot(loc)
            append(.cgroup(verb: verb.text, path: path.text, key: key, value: value), loc, text)
        case "mark":
            let n = try c.word("a mark name after 'mark'")
            try checkIdentifier(n.text, c.location(of: n), what: "mark name")
            try c.expectEnd()
            try boot(loc)
            marks.insert(n.text)
            append(.mark(n.text), loc, text)
        case "expect":
            let e = try parseExpect(&c)
            try c.expectEnd()
            try boot(loc)
            append(.expect(e), loc, text)
        case "cat":
            guard c.peek != nil else { throw c.missing("a path after 'cat', such as /proc/meminfo") }
            try boot(loc)
            while let t = c.next() {
                let view = try parseView(t, c.location(of: t))
                append(.cat(view, path: t.text), c.location(of: t), "cat " + t.text)
            }
        case "echo":
            let rest = c.rest().map(\.text).joined(separator: " ")
            append(.echo(rest), loc, text)
        case "tunable":
            guard let t = c.next() else { throw c.missing("NAME=VALUE after 'tunable' (\(UnmapTunables.names.joined(separator: ", ")))") }
            let (k, v) = try keyValue(t, &c)
            guard let n = parseNumber(v.text) else { throw badNumber(v.text, c.location(of: v)) }
            var probe = UnmapTunables()
            do {
                try probe.set(k, n)
            } catch {
                throw ScenarioError(c.location(of: t), "tunable \(error)")
            }
            try c.expectEnd()
            try boot(loc)
            append(.tunable(name: k, value: n), loc, text)
        case "rcu":
            let verb = try c.word("'sync' or 'qs cpu=N' after 'rcu'")
            switch verb.text {
            case "sync":
                try c.expectEnd()
                try boot(loc)
                append(.rcu(cpu: nil), loc, text)
            case "qs":
                guard let t = c.next() else { throw c.missing("cpu=N after 'rcu qs'") }
                let (k, v) = try keyValue(t, &c)
                guard k == "cpu" else { throw ScenarioError(c.location(of: t), "unknown rcu qs option '\(k)'; known: cpu=N") }
                guard let num = parseNumber(v.text), num < UInt64(config.cpus) else {
                    throw ScenarioError(c.location(of: v), "cpu=\(v.text): this machine has CPUs 0...\(config.cpus - 1)")
                }
                try c.expectEnd()
                try boot(loc)
                append(.rcu(cpu: Int(num)), loc, text)
            default:
                throw ScenarioError(c.location(of: verb), "unknown rcu command '\(verb.text)'; known: rcu sync, rcu qs cpu=N")
            }
        case "poison":
            guard let v = c.peek else { throw c.missing("a page frame number or 'NAME ADDR' after 'poison', such as poison 0x12345") }
            if processes.contains(v.text) {
                c.advance()
                let a = try parseAddress(&c, "the address whose frame to poison")
                try c.expectEnd()
                append(.poisonAt(process: v.text, addr: a), loc, text)
                return
            }
            c.advance()
            guard let pfn = parseNumber(v.text) else {
                if parseNumber(v.text.filter { $0.isNumber }) == nil, v.text.first?.isLetter == true { throw unknownProcess(v.text, c.location(of: v)) }
                throw badNumber(v.text, c.location(of: v))
            }
            try c.expectEnd()
            try boot(loc)
            append(.poison(pfn: pfn), loc, text)
        default:
            if Self.actionWords.contains(first.text) {
                let hint = processes.first.map { "'\($0): \(first.text) ...'" } ?? "'spawn NAME' first, then 'NAME: \(first.text) ...'"
                throw ScenarioError(loc, "'\(first.text)' needs a process to run it: write \(hint)")
            }
            let all = Self.commandWords + Self.actionWords
            let hint = ScenarioCatalog.suggestion(for: first.text, in: all).map { " (did you mean '\($0)'?)" } ?? ""
            throw ScenarioError(loc, "unknown command '\(first.text)'\(hint)")
        }
    }

    static let commandWords = ["machine", "sysctl", "sysfs", "spawn", "file", "mark", "expect", "cat", "echo", "tunable", "rcu", "poison"]
    static let actionWords = ["mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mlock", "munlock",
                              "mlockall", "munlockall", "fork", "thread", "exit", "wait", "execve", "read", "write",
                              "exec", "touch", "sleep", "gup", "move_pages", "migrate", "hwpoison", "oom_score_adj"]

    private mutating func append(_ kind: StatementKind, _ loc: ScenarioLocation, _ text: String) {
        statements.append(Statement(kind: kind, location: loc, text: text))
    }

    /// The machine boots at the first statement that needs it; `machine` must come before.
    private mutating func boot(_ loc: ScenarioLocation) throws {
        if booted { return }
        do {
            try config.validate()
        } catch let e as ConfigError {
            throw ScenarioError(machineLine ?? loc, "machine: \(e)")
        }
        booted = true
    }

    private func unknownProcess(_ name: String, _ loc: ScenarioLocation) -> ScenarioError {
        let known = processes.isEmpty ? "none yet (create one with 'spawn NAME')" : processes.joined(separator: ", ")
        return ScenarioError(loc, "unknown process '\(name)'; processes so far: \(known)")
    }

    private func checkIdentifier(_ s: String, _ loc: ScenarioLocation, what: String) throws {
        guard let f = s.first, f.isLetter || f == "_",
              s.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw ScenarioError(loc, "'\(s)' is not a valid \(what): use letters, digits, '_' and '-', starting with a letter")
        }
        if ["meminfo", "vmstat", "self"].contains(s) {
            throw ScenarioError(loc, "'\(s)' is reserved and cannot be a \(what)")
        }
    }

    // MARK: machine, sysctl, sysfs

    private mutating func parseMachine(_ c: inout Cursor, _ loc: ScenarioLocation) throws {
        if let prev = machineLine {
            throw ScenarioError(loc, "a second machine line; the machine is already described at \(prev.line):\(prev.column)")
        }
        if booted {
            throw ScenarioError(loc, "the machine line must come before any process, mark, expect or cat")
        }
        machineLine = loc
        var preset = "reference"
        var overrides: [(String, ScenarioToken, ScenarioToken)] = []
        while let t = c.next() {
            if !t.text.contains("=") {
                if Architecture(rawValue: t.text) != nil {
                    overrides.append(("arch", t, t))
                } else if MachineConfig.presets.contains(where: { $0.name == t.text }) {
                    preset = t.text
                } else {
                    throw ScenarioError(c.location(of: t), "'\(t.text)' is neither an architecture (\(Architecture.allCases.map(\.rawValue).joined(separator: ", "))) nor a preset (\(MachineConfig.presets.map(\.name).joined(separator: ", ")))")
                }
                continue
            }
            let (k, v) = try keyValue(t, &c)
            if k == "preset" {
                guard MachineConfig.presets.contains(where: { $0.name == v.text }) else {
                    throw ScenarioError(c.location(of: v), "unknown preset '\(v.text)'; known: \(MachineConfig.presets.map(\.name).joined(separator: ", "))")
                }
                preset = v.text
            } else {
                overrides.append((k, t, v))
            }
        }
        var cfg = try! MachineConfig.preset(named: preset)
        var hugepagesz: UInt64 = 2048
        let sawHugepagesz = overrides.contains { $0.0 == "hugepagesz" }
        for (k, t, v) in overrides {
            let vloc = c.location(of: v)
            func num() throws -> UInt64 {
                guard let n = parseNumber(v.text) else { throw badNumber(v.text, vloc) }
                return n
            }
            switch k {
            case "arch":
                guard let a = Architecture(rawValue: v.text) else {
                    throw ScenarioError(vloc, "unknown architecture '\(v.text)'; known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                cfg.arch = a
            case "memory": cfg.memory = try num()
            case "cpus":
                let n = try num()
                guard n >= 1, n <= UInt64(MachineConfig.maxCPUs) else { throw ScenarioError(vloc, "cpus=\(v.text) is out of range; allowed 1 ... \(MachineConfig.maxCPUs)") }
                cfg.cpus = Int(n)
            case "nodes":
                let n = try num()
                guard n >= 1, n <= UInt64(MachineConfig.maxNodes) else { throw ScenarioError(vloc, "nodes=\(v.text) is out of range; allowed 1 ... \(MachineConfig.maxNodes)") }
                cfg.nodes = Int(n)
            case "pcid", "asid":
                guard let b = parseBool(v.text) else { throw ScenarioError(vloc, "\(k)=\(v.text): expected on or off") }
                cfg.pcid = b
            case "min_free_kbytes": cfg.minFreeKbytes = try num()
            case "watermark_scale_factor": cfg.watermarkScaleFactor = try num()
            case "thp", "transparent_hugepage":
                guard let m = THPMode(rawValue: v.text) else { throw ScenarioError(vloc, "\(k)=\(v.text): expected always, madvise or never") }
                cfg.transparentHugepage = m
            case "seed": cfg.seed = try num()
            case "hugepagesz":
                // hugepagesz=SIZE hugepages=N, as on the kernel command line.
                let sz = try num()
                guard [64 * Size.KiB, 2 * Size.MiB, 32 * Size.MiB, Size.GiB].contains(sz) else { throw ScenarioError(vloc, "hugepagesz=\(v.text): the huge page sizes are 2M and 1G (and on arm64 64K and 32M)") }
                hugepagesz = sz >> 10
            case "hugepages":
                cfg.bootHugepages.removeAll { $0.sizeKB == hugepagesz }
                cfg.bootHugepages.append(BootHugepages(sizeKB: hugepagesz, count: try num()))
            case "default_hugepagesz":
                let sz = try num()
                guard [64 * Size.KiB, 2 * Size.MiB, 32 * Size.MiB, Size.GiB].contains(sz) else { throw ScenarioError(vloc, "default_hugepagesz=\(v.text): the huge page sizes are 2M and 1G (and on arm64 64K and 32M)") }
                cfg.defaultHugepageSizeKB = sz >> 10
                if hugepagesz == 2048 && !sawHugepagesz { hugepagesz = sz >> 10 }
            case "hugetlb_free_vmemmap":
                guard let b = parseBool(v.text) else { throw ScenarioError(vloc, "\(k)=\(v.text): expected on or off") }
                cfg.hugetlbOptimizeVmemmap = b
            case "memmap_on_memory":
                guard let b = parseBool(v.text) else { throw ScenarioError(vloc, "\(k)=\(v.text): expected on or off") }
                cfg.memmapOnMemory = b
            case "hotplug_memory": cfg.hotplugMemory = try num()
            default:
                throw ScenarioError(c.location(of: t), "unknown machine setting '\(k)'; known: preset, arch, memory, cpus, nodes, pcid, min_free_kbytes, watermark_scale_factor, thp, seed, hugepagesz, hugepages, default_hugepagesz, hugetlb_free_vmemmap, memmap_on_memory, hotplug_memory")
            }
        }
        do {
            try cfg.validate()
        } catch let e as ConfigError {
            let at = overrides.first(where: { $0.0 == e.field || (e.field == "minFreeKbytes" && $0.0 == "min_free_kbytes") || (e.field == "watermarkScaleFactor" && $0.0 == "watermark_scale_factor")
                || (e.field.hasPrefix("bootHugepages") && $0.0 == "hugepages") || (e.field == "hotplugMemory" && $0.0 == "hotplug_memory") })
            throw ScenarioError(at.map { c.location(of: $0.2) } ?? loc, "machine: \(e)")
        }
        config = cfg
        append(.machine(MachineSpec(config: cfg)), loc, c.tokens.map(\.text).joined(separator: " "))
    }

    /// `sysctl NAME=VALUE`, `sysctl NAME = VALUE`, `sysctl NAME VALUE`.
    private mutating func parseSysctl(_ c: inout Cursor, _ loc: ScenarioLocation, _ text: String) throws {
        let (name, nameTok, value, valueLoc) = try assignment(&c, what: "a sysctl such as vm.overcommit_memory=0")
        var key = name
        if key.hasPrefix("/proc/sys/") { key = String(key.dropFirst(10)).replacingOccurrences(of: "/", with: ".") }
        guard ScenarioCatalog.sysctls.contains(key) else {
            let hint = ScenarioCatalog.suggestion(for: key, in: ScenarioCatalog.sysctls).map { " (did you mean \($0)?)" } ?? ""
            throw ScenarioError(c.location(of: nameTok), "unknown sysctl '\(name)'\(hint)")
        }
        // Every vm sysctl but numa_zonelist_order takes integers.
        let numbers = value.split(separator: " ").map(String.init)
        for n in numbers where parseSignedInteger(n) == nil {
            throw ScenarioError(valueLoc, "\(key) takes an integer, not '\(value)'")
        }
        let ints = numbers.compactMap { parseSignedInteger($0) }
        if let r = Self.sysctlRanges[key], let bad = ints.first(where: { !r.contains($0) }) {
            throw ScenarioError(valueLoc, "\(key)=\(bad) is out of range; allowed \(r.lowerBound) ... \(r.upperBound)")
        }
        if key == "vm.lowmem_reserve_ratio", ints.count != 4 {
            throw ScenarioError(valueLoc, "vm.lowmem_reserve_ratio takes 4 values (DMA DMA32 Normal Movable), got \(ints.count)")
        } else if key != "vm.lowmem_reserve_ratio", ints.count != 1 {
            throw ScenarioError(valueLoc, "\(key) takes one integer, got \(ints.count)")
        }
        if !booted {
            // Boot parameters: the machine is built with them (sysctl.conf applied at boot).
            switch key {
            case "vm.min_free_kbytes": config.minFreeKbytes = UInt64(ints[0]); return
            case "vm.watermark_scale_factor": config.watermarkScaleFactor = UInt64(ints[0]); return
            case "vm.lowmem_reserve_ratio": config.lowmemReserveRatio = ints.map { UInt64($0) }; return
            default: break
            }
        } else if key == "vm.watermark_scale_factor" || key == "vm.lowmem_reserve_ratio" {
            throw ScenarioError(c.location(of: nameTok), "\(key) can only be set before the first process (mmsim applies it at boot)")
        }
        append(.sysctl(name: key, value: value), loc, text)
    }

    static let sysctlRanges: [String: ClosedRange<Int64>] = [
        "vm.overcommit_memory": 0...2, "vm.overcommit_ratio": 0...Int64(Int32.max),
        "kernel.threads-max": 20...0x3fff_ffff,
        "vm.overcommit_kbytes": 0...Int64.max, "vm.min_free_kbytes": 0...Int64(Int32.max),
        "vm.watermark_scale_factor": 1...3000, "vm.max_map_count": 0...Int64(Int32.max),
        "vm.nr_hugepages": 0...Int64.max, "vm.swappiness": 0...200, "vm.drop_caches": 1...4, "vm.page-cluster": 0...31,
        "kernel.randomize_va_space": 0...2, "vm.lowmem_reserve_ratio": 0...Int64(Int32.max),
        "vm.hugetlb_optimize_vmemmap": 0...1, "vm.memory_failure_early_kill": 0...1, "vm.nr_overcommit_hugepages": 0...Int64.max, "vm.compact_memory": 1...1, "vm.stat_refresh": 0...Int64.max,
        "vm.panic_on_oom": 0...2, "vm.user_reserve_kbytes": 0...Int64.max, "vm.admin_reserve_kbytes": 0...Int64.max,
    ]

    private mutating func parseSysfs(_ c: inout Cursor, _ loc: ScenarioLocation, _ text: String) throws {
        let (path, pathTok, value, valueLoc) = try assignment(&c, what: "a file and value such as /sys/kernel/mm/transparent_hugepage/enabled=madvise")
        guard let entry = ScenarioCatalog.sysfsFiles.first(where: { $0.path == path }) ?? ScenarioCatalog.memoryBlockFile(path) else {
            let hint = ScenarioCatalog.suggestion(for: path, in: ScenarioCatalog.sysfsFiles.map(\.path)).map { " (did you mean \($0)?)" } ?? ""
            throw ScenarioError(c.location(of: pathTok), "unknown sysfs file '\(path)'\(hint)")
        }
        if let allowed = entry.values {
            guard allowed.contains(value) else {
                throw ScenarioError(valueLoc, "'\(value)' cannot be written to \(path); allowed: \(allowed.joined(separator: ", "))")
            }
        } else if parseNumber(value) == nil {
            throw ScenarioError(valueLoc, "\(path) takes a number, not '\(value)'")
        }
        if !booted, path == "/sys/kernel/mm/transparent_hugepage/enabled", let m = THPMode(rawValue: value) {
            config.transparentHugepage = m
            return
        }
        append(.sysfs(path: path, value: value), loc, text)
    }

    /// `KEY=VALUE`, `KEY = VALUE` or `KEY VALUE`; the value may be several words.
    private func assignment(_ c: inout Cursor, what: String) throws -> (String, ScenarioToken, String, ScenarioLocation) {
        guard let t = c.next() else { throw c.missing(what) }
        var key = t.text, value = "", vloc = c.endLocation
        if let eq = t.text.firstIndex(of: "=") {
            key = String(t.text[..<eq])
            value = String(t.text[t.text.index(after: eq)...])
            vloc = ScenarioLocation(file: file, line: c.line, column: t.column + key.count + 1)
        }
        if c.peek?.text == "=" { c.advance() }
        let rest = c.rest()
        if let f = rest.first, value.isEmpty { vloc = c.location(of: f) }
        value = ([value].filter { !$0.isEmpty } + rest.map(\.text)).joined(separator: " ")
        if value.isEmpty { throw ScenarioError(vloc, "missing value for \(key): write \(key)=VALUE") }
        return (key, t, value, vloc)
    }

    /// `key=value` as a word, split.
    private func keyValue(_ t: ScenarioToken, _ c: inout Cursor) throws -> (String, ScenarioToken) {
        guard let eq = t.text.firstIndex(of: "=") else {
            throw ScenarioError(c.location(of: t), "expected KEY=VALUE, found '\(t.text)'")
        }
        let k = String(t.text[..<eq])
        let v = String(t.text[t.text.index(after: eq)...])
        let vt = ScenarioToken(text: v, column: t.column + k.count + 1)
        if v.isEmpty { throw ScenarioError(c.location(of: vt), "missing value after '\(k)='") }
        return (k, vt)
    }

    // MARK: Process actions

    private mutating func parseAction(_ c: inout Cursor, process: String) throws -> ProcessAction {
        guard let t = c.next() else { throw c.missing("a system call or memory access") }
        let loc = c.location(of: t)
        switch t.text {
        case "mmap":
            return try parseMmap(&c, loc)
        case "munmap":
            let a = try parseAddress(&c, "the address to unmap")
            let len = try parseLength(&c, "the length to unmap")
            try checkRange(a, len)
            return .munmap(addr: a, length: len)
        case "mprotect":
            let a = try parseAddress(&c, "the address")
            let len = try parseLength(&c, "the length")
            try checkRange(a, len)
            guard let pt = c.next() else { throw c.missing("the protection (r, rw, rx, rwx or none)") }
            guard let prot = parseProt(pt.text) else {
                throw ScenarioError(c.location(of: pt), "unknown protection '\(pt.text)'; use r, rw, rx, rwx, none (or PROT_READ|PROT_WRITE ...)")
            }
            return .mprotect(addr: a, length: len, prot: prot)
        case "madvise":
            let a = try parseAddress(&c, "the address")
            let len = try parseLength(&c, "the length")
            try checkRange(a, len)
            guard let at = c.next() else { throw c.missing("the advice (dontneed, free, willneed, hugepage, nohugepage, populate_read, populate_write, dontfork ...)") }
            guard let adv = Self.lookupAdvice(at.text) else {
                let names = ScenarioCatalog.advice.map(\.name)
                let hint = ScenarioCatalog.suggestion(for: at.text, in: names).map { " (did you mean \($0)?)" } ?? ""
                throw ScenarioError(c.location(of: at), "unknown advice '\(at.text)'\(hint); known: \(names.joined(separator: ", "))")
            }
            return .madvise(addr: a, length: len, advice: adv)
        case "mremap":
            let a = try parseAddress(&c, "the old address")
            let oldLen = try parseLength(&c, "the old length")
            try checkRange(a, oldLen)
            let newLen = try parseLength(&c, "the new length")
            var flags: MremapFlags = []
            var newAddr: AddressExpr?
            while let f = c.next() {
                switch f.text.lowercased() {
                case "maymove", "mremap_maymove": flags.insert(.maymove)
                case "dontunmap", "mremap_dontunmap": flags.insert(.dontunmap)
                default:
                    if f.text.hasPrefix("fixed=") {
                        let (_, v) = try keyValue(f, &c)
                        newAddr = try parseAddressExpr(v.text, c.location(of: v))
                        flags.insert(.fixed)
                    } else {
                        throw ScenarioError(c.location(of: f), "unknown mremap flag '\(f.text)'; known: maymove, dontunmap, fixed=ADDR")
                    }
                }
            }
            return .mremap(old: a, oldLength: oldLen, newLength: newLen, flags: flags, newAddr: newAddr)
        case "brk":
            guard let v = c.next() else { return .brk(.query) }
            let vloc = c.location(of: v)
            if v.text.hasPrefix("+") || v.text.hasPrefix("-") {
                guard let n = parseNumber(String(v.text.dropFirst())) else { throw badNumber(v.text, vloc) }
                return .brk(v.text.hasPrefix("+") ? .grow(n) : .shrink(n))
            }
            return .brk(.set(try parseAddressExpr(v.text, vloc)))
        case "mlock":
            let a = try parseAddress(&c, "the address to lock")
            let len = try parseLength(&c, "the length to lock")
            try checkRange(a, len)
            var onFault = false
            if let f = c.next() {
                guard f.text == "onfault" else { throw ScenarioError(c.location(of: f), "unknown mlock flag '\(f.text)'; known: onfault (mlock2 MLOCK_ONFAULT)") }
                onFault = true
            }
            return .mlock(addr: a, length: len, onFault: onFault)
        case "munlock":
            let a = try parseAddress(&c, "the address to unlock")
            let len = try parseLength(&c, "the length to unlock")
            try checkRange(a, len)
            return .munlock(addr: a, length: len)
        case "mlockall":
            var cur = false, fut = false, onf = false
            guard c.peek != nil else { throw c.missing("current, future and/or onfault") }
            while let f = c.next() {
                switch f.text.lowercased() {
                case "current", "mcl_current": cur = true
                case "future", "mcl_future": fut = true
                case "onfault", "mcl_onfault": onf = true
                default: throw ScenarioError(c.location(of: f), "unknown mlockall flag '\(f.text)'; known: current, future, onfault")
                }
            }
            return .mlockall(current: cur, future: fut, onFault: onf)
        case "munlockall":
            return .munlockall
        case "fork":
            let n = try c.word("the child's name after 'fork'")
            try checkIdentifier(n.text, c.location(of: n), what: "process name")
            if !processes.contains(n.text) { processes.append(n.text) }
            return .fork(child: n.text)
        case "thread":
            let n = try c.word("the thread's name after 'thread'")
            try checkIdentifier(n.text, c.location(of: n), what: "process name")
            var cpu: Int?
            while let t = c.next() {
                let (k, v) = try keyValue(t, &c)
                guard k == "cpu" else { throw ScenarioError(c.location(of: t), "unknown thread option '\(k)'; known: cpu=N") }
                guard let num = parseNumber(v.text), num < UInt64(config.cpus) else {
                    throw ScenarioError(c.location(of: v), "cpu=\(v.text): this machine has CPUs 0...\(config.cpus - 1)")
                }
                cpu = Int(num)
            }
            if !processes.contains(n.text) { processes.append(n.text) }
            return .thread(name: n.text, cpu: cpu)
        case "exit":
            var code: Int32 = 0
            if let v = c.next() {
                guard let n = parseNumber(v.text), n <= 255 else { throw ScenarioError(c.location(of: v), "exit status '\(v.text)' must be a number 0...255") }
                code = Int32(n)
            }
            return .exit(code: code)
        case "wait":
            if let v = c.next() {
                guard processes.contains(v.text) else { throw unknownProcess(v.text, c.location(of: v)) }
                return .wait(child: v.text)
            }
            return .wait(child: nil)
        case "sleep":
            return .sleep
        case "oom_score_adj":
            // echo N > /proc/self/oom_score_adj
            guard let v = c.next() else { throw c.missing("a value -1000 ... 1000 after 'oom_score_adj'") }
            guard let n = parseSignedInteger(v.text), (Int64(oomScoreAdjMin)...Int64(oomScoreAdjMax)).contains(n) else {
                throw ScenarioError(c.location(of: v), "oom_score_adj takes an integer -1000 ... 1000, not '\(v.text)'")
            }
            return .oomScoreAdj(Int(n))
        case "gup", "gup_fast":
            return .gup(try parseAddress(&c, "the address to walk"))
        case "move_pages", "migrate":
            let a = try parseAddress(&c, "the address of the pages to migrate")
            let len = try parseLength(&c, "the length to migrate")
            try checkRange(a, len)
            // node=N: move_pages(2) with every page's target node N (MPOL_MF_MOVE).
            var node: Int?
            while let t = c.next() {
                let (k, v) = try keyValue(t, &c)
                guard k == "node" else { throw ScenarioError(c.location(of: t), "unknown move_pages option '\(k)'; known: node=N") }
                guard let n = parseNumber(v.text), n < UInt64(config.nodes) else {
                    throw ScenarioError(c.location(of: v), "node=\(v.text): this machine has nodes 0...\(config.nodes - 1)")
                }
                node = Int(n)
            }
            return .movePages(addr: a, length: len, node: node)
        case "hwpoison":
            let a = try parseAddress(&c, "the address to poison")
            let len = c.peek == nil ? Page.size : try parseLength(&c, "the length to poison")
            try checkRange(a, len)
            return .hwpoison(addr: a, length: len)
        case "execve", "exec_program":
            _ = c.rest() // a path may follow; the model has no file system for programs
            return .execve
        case "read", "write", "exec", "touch":
            let kind: AccessKind = t.text == "read" ? .read : t.text == "exec" ? .execute : .write
            let start = try parseAddress(&c, "the address to \(t.text)")
            var end: RangeEnd = .length(1)
            var stride = Page.size
            while let w = c.next() {
                if w.text.hasPrefix("stride=") {
                    let (_, v) = try keyValue(w, &c)
                    guard let n = parseNumber(v.text) else { throw badNumber(v.text, c.location(of: v)) }
                    guard n > 0 else { throw ScenarioError(c.location(of: v), "stride must be at least 1 byte") }
                    stride = n
                } else if w.text.hasPrefix("+") {
                    let e = try parseAddressExpr(String(w.text.dropFirst()), ScenarioLocation(file: file, line: c.line, column: w.column + 1))
                    guard let n = e.literalValue else { throw ScenarioError(c.location(of: w), "a length must be a number, such as +2M or +40*4K") }
                    guard n > 0 else { throw ScenarioError(c.location(of: w), "the length must be at least 1 byte") }
                    end = .length(n)
                } else {
                    end = .end(try parseAddressExpr(w.text, c.location(of: w)))
                }
            }
            if let s = start.literalValue {
                switch end {
                case .length(let n): try checkRange(start, n)
                case .end(let e):
                    if let ev = e.literalValue {
                        guard ev > s else { throw ScenarioError(e.location, "the end address \(e.text) is not above the start \(start.text)") }
                        try checkRange(start, ev - s)
                    }
                }
            }
            return .access(AccessSpec(kind: kind, start: start, end: end, stride: stride))
        default:
            let hint = ScenarioCatalog.suggestion(for: t.text, in: Self.actionWords).map { " (did you mean '\($0)'?)" } ?? ""
            throw ScenarioError(loc, "unknown command '\(t.text)'\(hint)")
        }
    }

    private func parseMmap(_ c: inout Cursor, _ loc: ScenarioLocation) throws -> ProcessAction {
        // [ADDR] LEN PROT FLAGS... [file=NAME] [offset=N]
        var positional: [(ScenarioToken, AddressExpr)] = []
        var prot: Prot?
        while let t = c.peek, prot == nil {
            if let p = parseProt(t.text), !variables.contains(t.text) {
                prot = p
                c.advance()
                break
            }
            if positional.count == 2 {
                throw ScenarioError(c.location(of: t), "unknown protection '\(t.text)'; use r, rw, rx, rwx, none (mmap [ADDR] LEN PROT FLAGS...)")
            }
            positional.append((t, try parseAddressExpr(t.text, c.location(of: t))))
            c.advance()
        }
        guard !positional.isEmpty else {
            if let p = c.peek { throw ScenarioError(c.location(of: p), "mmap needs a length before the protection, such as 'mmap 2M rw private anon'") }
            throw c.missing("the length to map, such as 'mmap 2M rw private anon'")
        }
        guard let prot else { throw c.missing("the protection (r, rw, rx, rwx or none)") }
        let (lenTok, lenExpr) = positional.last!
        guard let length = lenExpr.literalValue else {
            throw ScenarioError(c.location(of: lenTok), "the length '\(lenTok.text)' must be a number")
        }
        let addr = positional.count == 2 ? positional[0].1 : nil
        var flags: MapFlags = []
        var advice: [Advice] = []
        var fileName: String?
        var offset: UInt64 = 0
        while let t = c.next() {
            var w = t.text.lowercased()
            if w.hasPrefix("file=") {
                let (_, v) = try keyValue(t, &c)
                guard files.contains(v.text) else {
                    throw ScenarioError(c.location(of: v), "unknown file '\(v.text)'; create it first with 'file create \(v.text) SIZE'")
                }
                fileName = v.text
                continue
            }
            if w.hasPrefix("offset=") {
                let (_, v) = try keyValue(t, &c)
                guard let n = parseNumber(v.text) else { throw badNumber(v.text, c.location(of: v)) }
                offset = n
                continue
            }
            for part in w.split(separator: "|").map(String.init) {
                w = part.hasPrefix("map_") ? String(part.dropFirst(4)) : part
                if let f = ScenarioCatalog.mapFlags.first(where: { $0.name == w }) {
                    flags.insert(f.flag)
                } else if w == "hugepage" || w == "nohugepage" {
                    advice.append(w == "hugepage" ? .hugepage : .nohugepage)
                } else {
                    let names = ScenarioCatalog.mapFlags.map(\.name) + ["hugepage", "nohugepage", "file=NAME", "offset=N"]
                    let hint = ScenarioCatalog.suggestion(for: w, in: names).map { " (did you mean \($0)?)" } ?? ""
                    throw ScenarioError(c.location(of: t), "unknown mmap flag '\(t.text)'\(hint); known: \(names.joined(separator: ", "))")
                }
            }
        }
        if let a = addr, let v = a.literalValue {
            // Only wrapping is a scenario error: a range past the user address space is the
            // kernel's to refuse (ENOMEM), as it would for a real program.
            if v.addingReportingOverflow(length).overflow {
                throw ScenarioError(a.location, "address overflow: \(a.text) + \(formatLength(length)) wraps past 2^64")
            }
        }
        return .mmap(addr: addr, length: length, prot: prot, flags: flags, file: fileName, offset: offset, advice: advice)
    }

    static func lookupAdvice(_ s: String) -> Advice? {
        var w = s.lowercased()
        if w.hasPrefix("madv_") { w = String(w.dropFirst(5)) }
        return ScenarioCatalog.advice.first(where: { $0.name == w })?.advice
    }

    /// Checks a literal range against 2^64 and the architecture's user address space.
    private func checkRange(_ a: AddressExpr, _ length: UInt64) throws {
        guard let v = a.literalValue else { return }
        if let why = Self.rangeProblem(start: v, length: length, arch: config.arch) {
            throw ScenarioError(a.location, "address overflow: \(a.text) + \(formatLength(length)) \(why)")
        }
    }

    /// Why a read or write of `length` bytes at file position `offset` is refused by
    /// rw_verify_area() (EINVAL), or nil: the position and its end are signed 64-bit loff_t.
    public static func fileRangeProblem(offset: UInt64, length: UInt64) -> String? {
        let max = UInt64(Int64.max)
        if offset > max { return "the offset is past 2^63-1 (a negative loff_t)" }
        if length > max - offset { return "the offset plus the length is past 2^63-1 (the loff_t overflows)" }
        return nil
    }

    /// Why [start, start+length) is not a user range, or nil.
    public static func rangeProblem(start: UInt64, length: UInt64, arch: Architecture) -> String? {
        let (end, o) = start.addingReportingOverflow(length)
        if o { return "wraps past 2^64" }
        let limit = ScenarioCatalog.userAddressLimit(arch)
        if end > limit {
            return "ends at \(String(format0x: end, width: 1)), beyond the \(arch.rawValue) user address space (which ends at \(String(format0x: limit, width: 1)))"
        }
        return nil
    }

    private func parseAddress(_ c: inout Cursor, _ what: String) throws -> AddressExpr {
        guard let t = c.next() else { throw c.missing(what) }
        return try parseAddressExpr(t.text, c.location(of: t))
    }

    /// A length: a number or product of numbers (`2M`, `40*4K`).
    private func parseLength(_ c: inout Cursor, _ what: String) throws -> UInt64 {
        guard let t = c.next() else { throw c.missing(what) }
        let text = t.text.hasPrefix("+") ? String(t.text.dropFirst()) : t.text
        let e = try parseAddressExpr(text, c.location(of: t))
        guard let v = e.literalValue else {
            if !e.variables.isEmpty { throw ScenarioError(c.location(of: t), "\(what) must be a number, not '\(t.text)'") }
            throw ScenarioError(c.location(of: t), "\(what) '\(t.text)' does not fit in 64 bits")
        }
        return v
    }

    /// How deep `alignup(` may nest: each level rescans its inner text, so a bound keeps an
    /// expression's cost linear in its length (and the recursion off the stack's end).
    static let maxAlignUpNesting = 8

    /// `NUMBER`, `VAR`, `VAR+NUMBER`, `VAR-NUMBER`, `NUMBER*NUMBER`, in any sum.
    func parseAddressExpr(_ text: String, _ loc: ScenarioLocation, nesting: Int = 0) throws -> AddressExpr {
        var terms: [(negative: Bool, term: AddressExpr.Term)] = []
        var negative = false
        var current = ""
        var offset = 0
        var termStart = 0
        func finish(_ at: Int) throws {
            let tloc = ScenarioLocation(file: loc.file, line: loc.line, column: loc.column + termStart)
            if current.isEmpty { throw ScenarioError(tloc, "'\(text)' is not an address: a term is missing around '+' or '-'") }
            let factors = current.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
            if current.hasPrefix("alignup(") {
                guard current.hasSuffix(")"), let comma = current.lastIndex(of: ",") else {
                    throw ScenarioError(tloc, "write alignup(ADDRESS,ALIGNMENT), as in alignup(buf,2M)")
                }
                let inner = String(current[current.index(current.startIndex, offsetBy: 8)..<comma])
                let alignText = String(current[current.index(after: comma)..<current.index(before: current.endIndex)])
                guard nesting < Self.maxAlignUpNesting else {
                    throw ScenarioError(tloc, "alignup( is nested more than \(Self.maxAlignUpNesting) deep in '\(text)'")
                }
                let e = try parseAddressExpr(inner, ScenarioLocation(file: loc.file, line: loc.line, column: tloc.column + 8), nesting: nesting + 1)
                guard let a = parseNumber(alignText), a > 0, a & (a - 1) == 0 else {
                    throw ScenarioError(tloc, "the alignment '\(alignText)' must be a power of two, such as 4K or 2M")
                }
                terms.append((negative, .alignUp(e, a)))
            } else if factors.count == 1 {
                if let n = parseNumber(current) {
                    terms.append((negative, .literal(n)))
                } else if current.first?.isLetter == true || current.first == "_" {
                    guard variables.contains(current) else {
                        throw ScenarioError(tloc, "unknown name '\(current)': not a number, and no variable of that name was bound (as in 'NAME: \(current) = mmap 2M rw private anon')")
                    }
                    terms.append((negative, .variable(current)))
                } else {
                    throw badNumber(current, tloc)
                }
            } else {
                var product: UInt64 = 1
                for f in factors {
                    guard let n = parseNumber(f) else { throw badNumber(f.isEmpty ? current : f, tloc) }
                    let (p, o) = product.multipliedReportingOverflow(by: n)
                    if o { throw ScenarioError(tloc, "'\(current)' does not fit in 64 bits") }
                    product = p
                }
                terms.append((negative, .literal(product)))
            }
            current = ""
        }
        var depth = 0
        for ch in text {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1 }
            if (ch == "+" || ch == "-") && depth == 0 && !current.isEmpty && !current.hasSuffix("*") {
                try finish(offset)
                negative = ch == "-"
                termStart = offset + 1
            } else {
                current.append(ch)
            }
            offset += 1
        }
        try finish(offset)
        let e = AddressExpr(terms: terms, text: text, location: loc)
        if e.variables.isEmpty, e.literalValue == nil {
            throw ScenarioError(loc, "address overflow: '\(text)' is outside 0 ... 2^64-1")
        }
        return e
    }

    func badNumber(_ s: String, _ loc: ScenarioLocation) -> ScenarioError {
        let body = s.hasPrefix("0x") || s.hasPrefix("0X") ? String(s.dropFirst(2)) : s
        let digitsOnly = !body.isEmpty && body.allSatisfy { $0.isHexDigit || $0 == "_" } && (s.count != body.count || body.allSatisfy { $0.isNumber || $0 == "_" })
        if parseNumberDigits(s) != nil || digitsOnly {
            return ScenarioError(loc, "the number '\(s)' does not fit in 64 bits")
        }
        return ScenarioError(loc, "bad number '\(s)': expected decimal, hex (0x...) or a size such as 4K, 2M, 1G, 1T")
    }

    // MARK: expect

    private func parseExpect(_ c: inout Cursor) throws -> ExpectationKind {
        guard let lhs = c.next() else { throw c.missing("a counter after 'expect', such as meminfo.AnonPages") }
        let lloc = c.location(of: lhs)
        let parts = lhs.text.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        var since: String?
        func comparison() throws -> Comparison {
            guard let t = c.next() else { throw c.missing("a comparison (==, !=, <, <=, >, >=)") }
            guard let op = Comparison(rawValue: t.text) else {
                throw ScenarioError(c.location(of: t), "expected a comparison (==, !=, <, <=, >, >=), found '\(t.text)'")
            }
            return op
        }
        if c.peek?.text == "since" {
            let s = c.next()!
            guard let m = c.next() else { throw c.missing("a mark name after 'since'") }
            guard marks.contains(m.text) else {
                let known = marks.isEmpty ? "none yet (set one with 'mark NAME')" : marks.sorted().joined(separator: ", ")
                throw ScenarioError(c.location(of: m), "unknown mark '\(m.text)'; marks so far: \(known)")
            }
            _ = s
            since = m.text
        }
        guard parts.count >= 2, !parts[1].isEmpty else {
            throw ScenarioError(lloc, "unknown counter '\(lhs.text)'; counters are meminfo.FIELD, vmstat.NAME, PROC.status.FIELD, PROC.minflt, PROC.majflt, PROC.cminflt, PROC.cmajflt, PROC.maps.count, PROC.errno, PROC.signal")
        }
        let counter: CounterRef
        switch parts[0] {
        case "meminfo":
            var field = parts.dropFirst().joined(separator: ".")
            if field.hasSuffix("_kB") { field = String(field.dropLast(3)) }
            guard let f = ScenarioCatalog.meminfoFields.first(where: { $0.name == field }) else {
                let hint = ScenarioCatalog.suggestion(for: field, in: ScenarioCatalog.meminfoFields.map(\.name)).map { " (did you mean meminfo.\($0)?)" } ?? ""
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)': /proc/meminfo has no field '\(field)'\(hint)")
            }
            counter = CounterRef(source: .meminfo(f.name), text: lhs.text, isKB: f.isKB)
        case "tlb", "rcu":
            let name = parts.dropFirst().joined(separator: ".")
            guard ScenarioCatalog.shootdownCounters(cpus: config.cpus).contains(lhs.text) else {
                let all = ScenarioCatalog.shootdownCounters(cpus: config.cpus)
                let hint = ScenarioCatalog.suggestion(for: lhs.text, in: all).map { " (did you mean \($0)?)" } ?? ""
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)'\(hint); known: \(all.filter { !$0.contains(".cpu") }.joined(separator: ", ")), tlb.ipis_sent.cpuN, tlb.ipis_received.cpuN")
            }
            _ = name
            counter = CounterRef(source: .shootdown(lhs.text), text: lhs.text, isKB: false)
        case "memcg":
            guard parts.count >= 3 else {
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)'; memory cgroup counters are memcg.PATH.FIELD (usage_kB, failcnt, rss_kB, swap_kB, pgscan_anon, ...)")
            }
            var field = parts.dropFirst(2).joined(separator: ".")
            let isKB = field.hasSuffix("_kB") || ["usage", "max_usage", "memsw_usage", "memsw_max_usage", "limit"].contains(field)
            if field.hasSuffix("_kB") { field = String(field.dropLast(3)) }
            counter = CounterRef(source: .memcg(path: String(parts[1]), field: field), text: lhs.text, isKB: isKB)
        case "vmstat":
            let name = parts.dropFirst().joined(separator: ".")
            guard let item = VMStat(name: name) else {
                let hint = ScenarioCatalog.suggestion(for: name, in: VMStat.allCases.map(\.name)).map { " (did you mean vmstat.\($0)?)" } ?? ""
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)': /proc/vmstat has no item '\(name)'\(hint)")
            }
            counter = CounterRef(source: .vmstat(item), text: lhs.text, isKB: false)
        case let dir where dir.hasPrefix("hugepages-") && dir.hasSuffix("kB"):
            // hugepages-1048576kB.nr_hugepages: a pool's sysfs file.
            let fields = ["nr_hugepages", "free_hugepages", "resv_hugepages", "surplus_hugepages", "nr_overcommit_hugepages"]
            guard let kb = UInt64(dir.dropFirst(10).dropLast(2)), [64, 2048, 32768, 1048576].contains(kb) else {
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)': no huge page size '\(dir)' (hugepages-2048kB, hugepages-1048576kB; on arm64 also hugepages-64kB, hugepages-32768kB)")
            }
            let field = parts.dropFirst().joined(separator: ".")
            guard fields.contains(field) else {
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)': \(dir) has \(fields.joined(separator: ", "))")
            }
            counter = CounterRef(source: .hugepages(sizeKB: kb, field: field), text: lhs.text, isKB: false)
        default:
            let proc = parts[0]
            guard processes.contains(proc) else {
                if ["status", "maps", "minflt", "majflt", "errno", "signal"].contains(parts[0]) {
                    throw ScenarioError(lloc, "unknown counter '\(lhs.text)': name the process first, as in parent.\(lhs.text)")
                }
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)': '\(proc)' is not meminfo, vmstat or a process (processes so far: \(processes.isEmpty ? "none" : processes.joined(separator: ", ")))")
            }
            let what = parts[1]
            let sub = parts.count > 2 ? parts[2] : nil
            switch (what, sub) {
            case ("errno", nil):
                if since != nil { throw ScenarioError(lloc, "'since' applies to counters, not to \(lhs.text)") }
                let op = try comparison()
                guard op == .eq || op == .ne else { throw ScenarioError(lloc, "\(lhs.text) compares with == or != only") }
                guard let v = c.next() else { throw c.missing("ok or an errno name such as ENOMEM") }
                if v.text == "ok" || v.text == "0" { return .errno(process: proc, op, nil) }
                guard let e = Errno(name: v.text) else {
                    throw ScenarioError(c.location(of: v), "unknown errno '\(v.text)'; known: ok, \(Errno.allCases.map(\.name).joined(separator: ", "))")
                }
                return .errno(process: proc, op, e)
            case ("signal", nil):
                if since != nil { throw ScenarioError(lloc, "'since' applies to counters, not to \(lhs.text)") }
                let op = try comparison()
                guard op == .eq || op == .ne else { throw ScenarioError(lloc, "\(lhs.text) compares with == or != only") }
                guard let v = c.next() else { throw c.missing("none or a signal name such as SIGSEGV") }
                if v.text == "none" || v.text == "0" { return .signal(process: proc, op, nil) }
                guard scenarioSignalNames.contains(v.text) else {
                    throw ScenarioError(c.location(of: v), "unknown signal '\(v.text)'; known: none, \(scenarioSignalNames.joined(separator: ", "))")
                }
                return .signal(process: proc, op, v.text)
            case ("status", let f?):
                let field = f.hasSuffix("_kB") ? String(f.dropLast(3)) : f
                guard ScenarioCatalog.statusFields.contains(field) else {
                    let hint = ScenarioCatalog.suggestion(for: field, in: ScenarioCatalog.statusFields).map { " (did you mean \(proc).status.\($0)?)" } ?? ""
                    throw ScenarioError(lloc, "unknown counter '\(lhs.text)': /proc/PID/status has no memory field '\(field)'\(hint)")
                }
                counter = CounterRef(source: .status(process: proc, field: field), text: lhs.text, isKB: true)
            case ("oom_score", nil), ("oom_score_adj", nil):
                counter = CounterRef(source: .oom(process: proc, adj: what == "oom_score_adj"), text: lhs.text, isKB: false)
            case ("maps", "count"), ("maps", "nvma"):
                counter = CounterRef(source: .mapsCount(process: proc), text: lhs.text, isKB: false)
            case (let w, nil) where RusageField(rawValue: w) != nil:
                counter = CounterRef(source: .rusage(process: proc, field: RusageField(rawValue: w)!), text: lhs.text, isKB: false)
            case (let w, nil) where w.hasPrefix("ru_") && RusageField(rawValue: String(w.dropFirst(3))) != nil:
                counter = CounterRef(source: .rusage(process: proc, field: RusageField(rawValue: String(w.dropFirst(3)))!), text: lhs.text, isKB: false)
            default:
                throw ScenarioError(lloc, "unknown counter '\(lhs.text)'; a process has status.FIELD, minflt, majflt, cminflt, cmajflt, maps.count, oom_score, oom_score_adj, errno, signal")
            }
        }
        if c.peek?.text == "in" {
            _ = c.next()
            guard let r = c.next() else { throw c.missing("a range A..B after 'in'") }
            let ends = r.text.components(separatedBy: "..")
            guard ends.count == 2, let lo = Int64(ends[0]), let hi = Int64(ends[1]), lo <= hi else {
                throw ScenarioError(c.location(of: r), "expected a range of integers A..B with A <= B, found '\(r.text)'")
            }
            return .counterRange(counter, since: since, lo, hi)
        }
        let op = try comparison()
        guard let vt = c.next() else { throw c.missing("the value to compare \(lhs.text) with") }
        let vloc = c.location(of: vt)
        var text = vt.text
        let negative = text.hasPrefix("-")
        if negative || text.hasPrefix("+") { text.removeFirst() }
        guard let magnitude = parseNumber(text), magnitude <= UInt64(Int64.max) else { throw badNumber(vt.text, vloc) }
        let hasSizeSuffix = text.last.map { "KMGTPkmgtp".contains($0) } ?? false || text.hasSuffix("iB")
        var value = Int64(magnitude)
        if let u = c.next() {
            switch u.text {
            case "kB", "KB", "kb":
                guard counter.isKB else { throw ScenarioError(c.location(of: u), "\(lhs.text) is a count, not a size in kB") }
                guard !hasSizeSuffix else { throw ScenarioError(vloc, "write either a size (2M) or a number of kB (2048 kB), not both") }
            case "pages", "page":
                guard !hasSizeSuffix else { throw ScenarioError(vloc, "write either a size (2M) or a number of pages (512 pages), not both") }
                if counter.isKB { value *= Int64(Page.size / 1024) }
            default:
                throw ScenarioError(c.location(of: u), "unknown unit '\(u.text)'; use kB or pages (or a size such as 2M)")
            }
        } else if hasSizeSuffix {
            guard counter.isKB else {
                throw ScenarioError(vloc, "\(lhs.text) is a count; write a plain number, not the size '\(vt.text)'")
            }
            guard magnitude % 1024 == 0 else { throw ScenarioError(vloc, "\(vt.text) is not a whole number of kB") }
            value = Int64(magnitude / 1024)
        }
        return .counter(counter, since: since, op, negative ? -value : value)
    }

    // MARK: cat

    /// The memory cgroup files `cat` shows: cgroup v1 (below /sys/fs/cgroup/memory) and v2.
    static let memcgV1Files = ["memory.stat", "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes",
                               "memory.failcnt", "memory.memsw.usage_in_bytes", "memory.memsw.max_usage_in_bytes",
                               "memory.memsw.limit_in_bytes", "memory.memsw.failcnt", "memory.swappiness",
                               "memory.use_hierarchy", "memory.oom_control"]
    static let memcgV2Files = ["memory.current", "memory.peak", "memory.min", "memory.low", "memory.high", "memory.max",
                               "memory.events", "memory.events.local", "memory.stat", "memory.swap.current", "memory.swap.max"]

    private func parseView(_ t: ScenarioToken, _ loc: ScenarioLocation) throws -> ProcView {
        switch t.text {
        case "/proc/meminfo": return .meminfo
        case "/proc/vmstat": return .vmstat
        case "/proc/zoneinfo": return .zoneinfo
        case "/proc/buddyinfo": return .buddyinfo
        case "/proc/pagetypeinfo": return .pagetypeinfo
        case "/sys/kernel/debug/mmsim/tlb": return .tlbState
        case "/sys/kernel/mm/hugepages": return .hugepages
        case "/dev/kmsg": return .kmsg
        case "/proc/swaps": return .swaps
        default: break
        }
        if t.text.hasPrefix("/sys/fs/cgroup/") {
            var comps = t.text.dropFirst(15).split(separator: "/").map(String.init)
            let v1 = comps.first == "memory"
            if v1 { comps.removeFirst() }
            let known = v1 ? Self.memcgV1Files : Self.memcgV2Files
            guard let file = comps.last, known.contains(file) else {
                throw ScenarioError(loc, "cannot cat '\(t.text)': a memory cgroup file is /sys/fs/cgroup/memory/PATH/FILE with FILE one of \(Self.memcgV1Files.joined(separator: ", ")) (cgroup v1), or /sys/fs/cgroup/PATH/FILE with FILE one of \(Self.memcgV2Files.joined(separator: ", ")) (cgroup v2)")
            }
            return .memcg(path: comps.dropLast().joined(separator: "/"), file: file, v2: !v1)
        }
        let parts = t.text.split(separator: "/").map(String.init)
        if t.text.hasPrefix("/proc/kpageflags/"), parts.count == 3 {
            guard let pfn = parseNumber(parts[2]) else { throw badNumber(parts[2], loc) }
            return .kpage(pfn: pfn)
        }
        if t.text.hasPrefix("/proc/"), parts.count == 4, parts[2] == "pagemap" {
            if parseNumber(parts[1]) == nil, !processes.contains(parts[1]) { throw unknownProcess(parts[1], loc) }
            return .pagemap(process: parts[1], addr: try parseAddressExpr(parts[3], loc))
        }
        if t.text.hasPrefix("/proc/"), parts.count == 3, ["oom_score", "oom_score_adj"].contains(parts[2]) {
            if parseNumber(parts[1]) == nil, !processes.contains(parts[1]) { throw unknownProcess(parts[1], loc) }
            return .oomScore(process: parts[1], adj: parts[2] == "oom_score_adj")
        }
        if t.text.hasPrefix("/proc/"), parts.count == 3, ["status", "maps"].contains(parts[2]) {
            let who = parts[1]
            if parseNumber(who) == nil, !processes.contains(who) {
                throw unknownProcess(who, loc)
            }
            return parts[2] == "status" ? .status(process: who) : .maps(process: who)
        }
        if t.text.hasPrefix("/proc/"), parts.count == 4, parts[2] == "vmemmap" {
            let who = parts[1]
            if parseNumber(who) == nil, !processes.contains(who) { throw unknownProcess(who, loc) }
            guard let a = parseNumber(parts[3]) else { throw ScenarioError(loc, "/proc/\(who)/vmemmap/ADDR needs an address, not '\(parts[3])'") }
            return .vmemmap(process: who, address: a)
        }
        if t.text.hasPrefix("/sys/devices/system/node/node"), parts.count == 6, ["meminfo", "numastat"].contains(parts[5]) {
            guard let n = Int(parts[4].dropFirst(4)), n >= 0, n < config.nodes else {
                throw ScenarioError(loc, "cat: \(t.text): this machine has nodes 0...\(config.nodes - 1)")
            }
            return .node(n, numastat: parts[5] == "numastat")
        }
        throw ScenarioError(loc, "cannot cat '\(t.text)'; known: /proc/meminfo, /proc/swaps, /sys/fs/cgroup/memory/PATH/FILE, /sys/fs/cgroup/PATH/FILE, /proc/vmstat, /proc/zoneinfo, /proc/buddyinfo, /proc/pagetypeinfo, /proc/NAME/status, /proc/NAME/maps, /proc/NAME/oom_score, /proc/NAME/oom_score_adj (NAME or PID), /dev/kmsg, /proc/kpageflags/PFN, /proc/NAME/pagemap/ADDR, /proc/NAME/vmemmap/ADDR, /sys/kernel/mm/hugepages, /sys/kernel/debug/mmsim/tlb, /sys/devices/system/node/nodeN/{meminfo,numastat}")
    }
}

// MARK: Words

/// Walks the words of one statement.
struct Cursor {
    var tokens: [ScenarioToken]
    var index = 0
    let file: String
    let line: Int

    init(tokens: [ScenarioToken], file: String, line: Int) {
        self.tokens = tokens
        self.file = file
        self.line = line
    }
    var peek: ScenarioToken? { index < tokens.count ? tokens[index] : nil }
    mutating func next() -> ScenarioToken? {
        defer { if index < tokens.count { index += 1 } }
        return peek
    }
    mutating func advance() { index += 1 }
    mutating func insert(_ t: ScenarioToken) { tokens.insert(t, at: index) }
    mutating func rest() -> [ScenarioToken] {
        defer { index = tokens.count }
        return Array(tokens[min(index, tokens.count)...])
    }
    func location(of t: ScenarioToken) -> ScenarioLocation { ScenarioLocation(file: file, line: line, column: t.column) }
    /// Just past the statement's last word.
    var endLocation: ScenarioLocation {
        let last = tokens.last!
        return ScenarioLocation(file: file, line: line, column: last.column + last.text.count)
    }
    func missing(_ what: String) -> ScenarioError {
        ScenarioError(endLocation, "missing argument: expected \(what)")
    }
    mutating func word(_ what: String) throws -> ScenarioToken {
        guard let t = next() else { throw missing(what) }
        return t
    }
    func expectEnd() throws {
        if let t = peek {
            throw ScenarioError(location(of: t), "unexpected '\(t.text)' at the end of the statement")
        }
    }
}

// MARK: Numbers

/// Parses a number: decimal, hex (0x...), with `_` separators and an optional binary size
/// suffix (K, M, G, T, P, or KiB ... PiB). Nil when malformed or past 2^64-1.
public func parseNumber(_ text: String) -> UInt64? {
    guard let (digits, shift) = parseNumberDigits(text) else { return nil }
    guard digits <= UInt64.max >> shift else { return nil }
    return digits << shift
}

/// The digits' value and the suffix's shift; nil when malformed or the digits overflow.
func parseNumberDigits(_ text: String) -> (UInt64, UInt64)? {
    var s = Substring(text.replacingOccurrences(of: "_", with: ""))
    var shift: UInt64 = 0
    let units: [(String, UInt64)] = [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40), ("PiB", 50),
                                     ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("P", 50),
                                     ("k", 10), ("m", 20), ("g", 30), ("t", 40), ("p", 50)]
    let isHex = s.hasPrefix("0x") || s.hasPrefix("0X")
    if isHex { s = s.dropFirst(2) }
    for (u, sh) in units where s.hasSuffix(u) && s.count > u.count {
        // Hex digits cannot take a single-letter suffix that is itself hex; none of K/M/G/T/P is.
        s = s.dropLast(u.count)
        shift = sh
        break
    }
    guard !s.isEmpty else { return nil }
    guard let v = UInt64(s, radix: isHex ? 16 : 10) else { return nil }
    return (v, shift)
}

/// An integer with an optional sign (sysctl values).
func parseSignedInteger(_ text: String) -> Int64? {
    if text.hasPrefix("-") {
        guard let v = parseNumber(String(text.dropFirst())), v <= UInt64(Int64.max) else { return nil }
        return -Int64(v)
    }
    guard let v = parseNumber(text), v <= UInt64(Int64.max) else { return nil }
    return Int64(v)
}

func parseBool(_ s: String) -> Bool? {
    switch s.lowercased() {
    case "on", "yes", "true", "1": true
    case "off", "no", "false", "0": false
    default: nil
    }
}

/// "2M", "4K", "100K", or bytes: the shortest exact binary form.
public func formatLength(_ v: UInt64) -> String {
    for (u, sh) in [("P", UInt64(50)), ("T", 40), ("G", 30), ("M", 20), ("K", 10)] where v >= (1 << sh) && v % (1 << sh) == 0 {
        return "\(v >> sh)\(u)"
    }
    return String(v)
}

/// Whether a word is a protection: r, rw, rx, rwx, w, x, wx, none, or PROT_* names joined by `|`.
func parseProt(_ s: String) -> Prot? {
    if s == "none" || s == "PROT_NONE" || s == "---" { return Prot.none }
    if s.hasPrefix("PROT_") || s.hasPrefix("prot_") {
        var p: Prot = []
        for part in s.uppercased().split(separator: "|") {
            switch part {
            case "PROT_READ": p.insert(.read)
            case "PROT_WRITE": p.insert(.write)
            case "PROT_EXEC": p.insert(.exec)
            case "PROT_NONE": break
            default: return nil
            }
        }
        return p
    }
    guard !s.isEmpty, s.count <= 3 else { return nil }
    var p: Prot = []
    var seen = Set<Character>()
    for ch in s {
        guard "rwx-".contains(ch), ch == "-" || seen.insert(ch).inserted else { return nil }
        switch ch {
        case "r": p.insert(.read)
        case "w": p.insert(.write)
        case "x": p.insert(.exec)
        default: break
        }
    }
    return p
}
