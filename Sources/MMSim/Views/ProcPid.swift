// fs/proc/task_mmu.c, fs/proc/array.c: /proc/PID/status (memory lines) and /proc/PID/maps.

extension Machine {
    /// The memory fields of /proc/PID/status in kB (task_mem()), in the kernel's order.
    public func status(_ t: Task) -> [(name: String, kB: Int64)] {
        guard let mm = t.mm else { return [] }
        func kb(_ pages: Int64) -> Int64 { pages * Int64(Page.size >> 10) }
        let text = Int64((mm.endCode - mm.startCode) >> 10)
        return [
            ("VmPeak", kb(mm.hiwaterVM)), ("VmSize", kb(mm.totalVM)), ("VmLck", kb(mm.lockedVM)), ("VmPin", 0),
            ("VmHWM", kb(mm.hiwaterRSS)), ("VmRSS", kb(mm.rssPages)),
            ("RssAnon", kb(mm.rss[RSSCounter.anonPages.rawValue])), ("RssFile", kb(mm.rss[RSSCounter.filePages.rawValue])),
            ("RssShmem", kb(mm.rss[RSSCounter.shmemPages.rawValue])),
            ("VmData", kb(mm.dataVM)), ("VmStk", kb(mm.stackVM)), ("VmExe", text), ("VmLib", kb(mm.execVM) - text),
            ("VmPTE", Int64(mm.pageTable.pgtablesBytes >> 10)), ("VmSwap", kb(mm.rss[RSSCounter.swapEnts.rawValue])),
            ("HugetlbPages", kb(mm.hugetlbUsage)),
        ]
    }

    /// The text of /proc/PID/status (the lines memory management owns, plus identity).
    public func statusText(_ t: Task) -> String {
        var out = "Name:\t\(t.name)\nState:\t\(t.state == .running ? "R (running)" : t.state == .zombie ? "Z (zombie)" : "X (dead)")\n"
        out += "Tgid:\t\(t.pid)\nPid:\t\(t.pid)\nPPid:\t\(t.parent ?? 0)\n"
        for (n, v) in status(t) {
            out += n + ":\t" + leftPad(v, 8) + " kB\n"
        }
        out += "Threads:\t1\n"
        return out
    }

    /// The lines of /proc/PID/maps (show_map_vma()).
    public func mapsText(_ t: Task) -> String {
        guard let mm = t.mm else { return "" }
        var out = ""
        for v in mm.vmas {
            let perms = (v.flags.contains(.read) ? "r" : "-") + (v.flags.contains(.write) ? "w" : "-")
                + (v.flags.contains(.exec) ? "x" : "-") + (v.flags.contains(.mayShare) ? "s" : "p")
            var offset: UInt64 = 0
            var name = ""
            switch v.kind {
            case .file(let f):
                offset = v.pgoff << Page.shift
                name = "file#\(f)"
            case .shmem:
                offset = v.pgoff << Page.shift
                name = "/dev/zero (deleted)"
            case .heap:
                name = "[heap]"
            case .stack:
                name = "[stack]"
            case .anon where v.flags.contains(.hugetlb):
                // MAP_HUGETLB: an unlinked file on the internal hugetlbfs mount.
                offset = v.flags.contains(.shared) ? v.pgoff << Page.shift : 0
                name = "/anon_hugepage (deleted)"
            case .anon:
                if v.start <= mm.brk && v.end >= mm.startBrk && mm.startBrk != mm.brk { name = "[heap]" }
            }
            var line = String(hex: v.start, width: 8) + "-" + String(hex: v.end, width: 8) + " " + perms + " "
                + String(hex: offset, width: 8) + " 00:00 0"
            if !name.isEmpty {
                line += String(repeating: " ", count: max(1, 73 - line.count)) + name
            } else {
                line += " "
            }
            out += line + "\n"
        }
        return out
    }
}

