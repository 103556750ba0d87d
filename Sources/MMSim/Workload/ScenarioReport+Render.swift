// A run's report as text (the views, then a summary) and as one deterministic JSON object.

extension ScenarioReport {
    /// What `mmsim run` prints: each view as `$ cat PATH` and its text, echoes, trace lines
    /// and warnings in order, then the summary.
    public func text() -> String {
        var out = ""
        var lastWasView = false
        for item in output {
            switch item {
            case .view(let path, let text, _):
                if !out.isEmpty { out += "\n" }
                out += "$ cat \(path)\n" + text
                if !text.hasSuffix("\n") && !text.isEmpty { out += "\n" }
                lastWasView = true
                continue
            case .echo(let s):
                if lastWasView { out += "\n" }
                out += s + "\n"
            case .trace(let s):
                if lastWasView { out += "\n" }
                out += s + "\n"
            case .warning(let loc, let s):
                if lastWasView { out += "\n" }
                out += "\(loc): warning: \(scenarioPrintable(s))\n"
            }
            lastWasView = false
        }
        if !out.isEmpty { out += "\n" }
        return out + summaryText()
    }

    /// The summary block: machine, processes, expectations (failures in full), failed syscalls, signals.
    public func summaryText() -> String {
        var out = "== summary: \(file) ==\n"
        out += "machine: \(config.arch.rawValue), \(formatBytes(config.memory)), \(config.cpus) CPU\(config.cpus == 1 ? "" : "s"), THP \(config.transparentHugepage.rawValue)\n"
        if processes.isEmpty {
            out += "processes: none\n"
        } else {
            out += "processes:\n"
            let header = ["PID", "NAME", "STATE", "EXIT", "minflt", "majflt", "cminflt", "VmRSS", "VmPTE", "VMAs", "SIGNAL"]
            var rows: [[String]] = [header]
            for p in processes {
                rows.append([String(p.pid), p.name, p.state, p.exitCode.map(String.init) ?? "-", String(p.minflt), String(p.majflt),
                             String(p.cminflt), "\(p.status["VmRSS"] ?? 0) kB", "\(p.status["VmPTE"] ?? 0) kB", String(p.vmas),
                             p.signal ?? "-"])
            }
            out += Self.table(rows, leftAligned: [1, 2, 10])
        }
        let failed = expectations.filter { !$0.passed }
        out += "expectations: \(expectations.count - failed.count) passed, \(failed.count) failed\n"
        for e in failed {
            out += "  FAILED \(e.location): \(e.statement)\n"
            out += "    expected: \(e.expected)\n"
            out += "    actual:   \(e.actual)\(e.detail.map { " (\($0))" } ?? "")\n"
        }
        if failedSyscalls.isEmpty {
            out += "failed syscalls: none\n"
        } else {
            out += "failed syscalls: \(failedSyscalls.count)\n"
            for f in failedSyscalls {
                out += "  \(f.location): \(f.process)[\(f.pid)]: \(f.call) = -1 \(f.errno.name)\n"
            }
        }
        if signals.isEmpty {
            out += "signals: none\n"
        } else {
            out += "signals: \(signals.count)\n"
            for s in signals {
                // SIGKILL (the OOM killer's) has no faulting address.
                let at = s.signal == "SIGKILL" ? "" : " at \(hex(s.address))"
                out += "  \(s.location): \(s.process)[\(s.pid)]: \(s.signal)\(at) (killed)\n"
            }
        }
        out += "result: \(passed ? "PASS" : "FAIL")\n"
        return out
    }

    static func table(_ rows: [[String]], leftAligned: Set<Int>) -> String {
        guard let n = rows.first?.count else { return "" }
        var widths = [Int](repeating: 0, count: n)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in rows {
            var line = " "
            for (i, c) in r.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                line += " " + (leftAligned.contains(i) ? c + pad : pad + c)
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// One JSON object: the machine, the views that were cat'ed, expectations with expected
    /// and actual values, failed syscalls, signals, processes and the final counters.
    public func json() -> JSONValue {
        var views: [JSONValue] = []
        var traceLines: [JSONValue] = []
        var warnings: [JSONValue] = []
        var echoes: [JSONValue] = []
        for item in output {
            switch item {
            case .view(let path, let text, let loc):
                views.append(.object(["path": .string(path), "location": .string(loc.description), "text": .string(text)]))
            case .trace(let s): traceLines.append(.string(s))
            case .warning(let loc, let s): warnings.append(.string("\(loc): warning: \(s)"))
            case .echo(let s): echoes.append(.string(s))
            }
        }
        var machine: [String: JSONValue] = [
            "arch": .string(config.arch.rawValue), "memory": .uint(config.memory), "cpus": .int(Int64(config.cpus)),
            "pcid": .bool(config.pcid), "transparent_hugepage": .string(config.transparentHugepage.rawValue),
            "watermark_scale_factor": .uint(config.watermarkScaleFactor), "seed": .uint(config.seed),
        ]
        if let m = config.minFreeKbytes { machine["min_free_kbytes"] = .uint(m) }
        var meminfoObj: [String: JSONValue] = [:]
        for (k, v) in meminfo { meminfoObj[k] = .uint(v) }
        var vmstatObj: [String: JSONValue] = [:]
        for (k, v) in vmstat { vmstatObj[k] = .int(v) }
        var obj: [String: JSONValue] = [
            "file": .string(file),
            "machine": .object(machine),
            "views": .array(views),
            "expectations": .array(expectations.map { e in
                var o: [String: JSONValue] = [
                    "location": .string(e.location.description), "statement": .string(e.statement),
                    "passed": .bool(e.passed), "expected": .string(e.expected), "actual": .string(e.actual),
                ]
                if let d = e.detail { o["detail"] = .string(d) }
                return .object(o)
            }),
            "failed_syscalls": .array(failedSyscalls.map {
                .object(["location": .string($0.location.description), "process": .string($0.process), "pid": .int(Int64($0.pid)),
                         "call": .string($0.call), "errno": .string($0.errno.name)])
            }),
            "signals": .array(signals.map {
                .object(["location": .string($0.location.description), "process": .string($0.process), "pid": .int(Int64($0.pid)),
                         "signal": .string($0.signal), "address": .string(hex($0.address))])
            }),
            "processes": .array(processes.map { p in
                var status: [String: JSONValue] = [:]
                for (k, v) in p.status { status[k + "_kB"] = .int(v) }
                return .object([
                    "name": .string(p.name), "pid": .int(Int64(p.pid)), "ppid": p.parent.map { .int(Int64($0)) } ?? .null,
                    "state": .string(p.state), "exit_code": p.exitCode.map { .int(Int64($0)) } ?? .null,
                    "minflt": .uint(p.minflt), "majflt": .uint(p.majflt), "cminflt": .uint(p.cminflt), "cmajflt": .uint(p.cmajflt),
                    "status": .object(status), "maps_count": .int(p.vmas), "signal": p.signal.map { .string($0) } ?? .null,
                ])
            }),
            "counters": .object(["meminfo": .object(meminfoObj), "vmstat": .object(vmstatObj)]),
            "summary": .object([
                "expectations_passed": .int(Int64(expectations.count - failedCount)),
                "expectations_failed": .int(Int64(failedCount)),
                "failed_syscalls": .int(Int64(failedSyscalls.count)),
                "signals": .int(Int64(signals.count)),
                "result": .string(passed ? "pass" : "fail"),
            ]),
        ]
        if !traceLines.isEmpty { obj["trace"] = .array(traceLines) }
        if !warnings.isEmpty { obj["warnings"] = .array(warnings) }
        if !echoes.isEmpty { obj["echo"] = .array(echoes) }
        return .object(obj)
    }

    /// `json()` as text, with a final newline.
    public func jsonText() -> String { json().rendered() + "\n" }
}
