// mm/vmstat.c: /proc/vmstat, /proc/zoneinfo, /proc/buddyinfo and /proc/pagetypeinfo.

extension Machine {
    /// The text of /proc/vmstat: every counter in kernel order, then the deprecated nr_unstable.
    public func vmstatText() -> String {
        var out = ""
        for item in VMStat.allCases {
            out += "\(item.name) \(vmstatValue(item))\n"
        }
        return out + "nr_unstable 0\n"
    }

    /// One /proc/vmstat value as vmstat_start() computes it (dirty limits derived, the rest stored).
    public func vmstatValue(_ item: VMStat) -> Int64 {
        switch item {
        case .nrDirtyThreshold, .nrDirtyBackgroundThreshold:
            // global_dirty_limits(): dirty_ratio 20 / background 10 of the dirtyable memory.
            let dirtyable = max(0, counters[.nrFreePages] + counters[.nrActiveFile] + counters[.nrInactiveFile] - Int64(totalReservePages))
            let thresh = dirtyable * 20 / 100
            return item == .nrDirtyThreshold ? thresh : dirtyable * 10 / 100
        case .nrAnonTransparentHugepages, .nrShmemHugepages, .nrShmemPmdmapped, .nrFileHugepages, .nrFilePmdmapped:
            // vmstat_item_print_in_thp(): kept in pages, printed in huge pages.
            return counters[item] / Int64(PageOrder.pmd.pages)
        default:
            return counters[item]
        }
    }

    /// The text of /proc/buddyinfo (frag_show()).
    public func buddyinfoText() -> String {
        var out = ""
        for z in zones where z.isPopulated {
            out += "Node \(z.node), zone " + z.name.leftPadded(8) + " "
            for o in 0...PageOrder.max.raw { out += leftPad(Int64(z.nrFree[o]), 6) + " " }
            out += "\n"
        }
        return out
    }

    /// The text of /proc/pagetypeinfo (free blocks per migrate type and pageblock counts).
    public func pagetypeinfoText() -> String {
        var out = "Page block order: \(PageOrder.pageblock.raw)\nPages per block:  \(PageOrder.pageblock.pages)\n\n"
        out += "Free pages count per migrate type at order".padding(toLength: 43, withPad: " ", startingAt: 0) + " "
        for o in 0...PageOrder.max.raw { out += leftPad(Int64(o), 6) + " " }
        out += "\n"
        for z in zones where z.isPopulated {
            for mt in MigrateType.allCases {
                out += "Node " + String(z.node).leftPadded(4) + ", zone " + z.name.leftPadded(8) + ", type " + mt.description.leftPadded(12) + " "
                for o in 0...PageOrder.max.raw { out += leftPad(Int64(z.freeBlocks(order: o, mt)), 6) + " " }
                out += "\n"
            }
        }
        out += "\n" + "Number of blocks type ".padding(toLength: 23, withPad: " ", startingAt: 0)
        for mt in MigrateType.allCases { out += mt.description.leftPadded(12) + " " }
        out += "\n"
        for z in zones where z.isPopulated {
            var counts = [Int](repeating: 0, count: MigrateType.count)
            var pfn = z.startPFN & ~(PageOrder.pageblock.pages - 1)
            while pfn < z.endPFN {
                if memblock.isMemory(max(pfn, z.startPFN)) { counts[allocator.pageblockMigratetype(PFN(pfn)).rawValue] += 1 }
                pfn += PageOrder.pageblock.pages
            }
            out += "Node \(z.node), zone " + z.name.leftPadded(8) + " "
            for n in counts { out += leftPad(Int64(n), 12) + " " }
            out += "\n"
        }
        return out
    }

    /// The text of /proc/zoneinfo (zoneinfo_show_print()), every zone, populated or not.
    public func zoneinfoText() -> String {
        var out = ""
        let firstPopulated = zones.first(where: { $0.isPopulated })
        for z in zones {
            out += "Node \(z.node), zone " + z.name.leftPadded(8)
            if z === firstPopulated {
                out += "\n  per-node stats"
                for item in VMStat.allCases where item.kind == .node {
                    let v = vmstatValue(item)
                    out += "\n      " + item.name.padding(toLength: 12, withPad: " ", startingAt: 0).rightTrimmedIfLonger(item.name) + " \(v)"
                }
            }
            out += "\n  pages free     \(z.freePages)"
            out += "\n        boost    0"
            out += "\n        min      \(z.watermark(.min))"
            out += "\n        low      \(z.watermark(.low))"
            out += "\n        high     \(z.watermark(.high))"
            out += "\n        promo    \(z.watermark(.promo))"
            out += "\n        spanned  \(z.spannedPages)"
            out += "\n        present  \(z.presentPages)"
            out += "\n        managed  \(z.managedPages)"
            out += "\n        cma      0"
            out += "\n        protection: (" + z.lowmemReserve.map(String.init).joined(separator: ", ") + ")"
            if !z.isPopulated {
                out += "\n"
                continue
            }
            for item in VMStat.allCases where item.kind == .zone {
                out += "\n      " + item.name.padding(toLength: 12, withPad: " ", startingAt: 0).rightTrimmedIfLonger(item.name) + " \(z.stats[item.rawValue])"
            }
            out += "\n  pagesets"
            for (cpu, pcp) in z.pcp.enumerated() {
                out += "\n    cpu: \(cpu)"
                out += "\n              count:    \(pcp.count)"
                out += "\n              high:     \(pcp.high)"
                out += "\n              batch:    \(pcp.batch)"
                out += "\n              high_min: \(pcp.highMin)"
                out += "\n              high_max: \(pcp.highMax)"
                out += "\n  vm stats threshold: \(statThreshold(z))"
            }
            out += "\n  node_unreclaimable:  0"
            out += "\n  start_pfn:           \(z.startPFN)\n"
        }
        return out
    }

    /// calculate_normal_threshold(): the per-CPU vmstat fold threshold shown in zoneinfo.
    func statThreshold(_ z: Zone) -> Int {
        let mem = z.managedPages >> (27 - Page.shift)
        let cpus = UInt64(config.cpus)
        let bits = UInt64(64 - cpus.leadingZeroBitCount)
        let t = 2 * Int(bits) * (1 + Int(64 - max(mem, 1).leadingZeroBitCount))
        return min(t, 125)
    }
}

extension String {
    /// Right-aligned in `width` columns (printf "%8s").
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
    /// The full name when it is longer than the padding (printf "%-12s" never truncates).
    func rightTrimmedIfLonger(_ full: String) -> String { full.count > 12 ? full : self }
}
