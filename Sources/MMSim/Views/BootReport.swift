// What a person asks first of a booted machine: the memblock reservations and a zone summary.

import Foundation

extension Machine {
    /// memblock=debug style listing of every reservation, largest owners named.
    public func memblockText() -> String {
        var out = "memblock.memory:\n"
        for m in memblock.memory {
            out += "  [\(String(format0x: m.start, width: 16))-\(String(format0x: m.end - 1, width: 16))] \(formatKB(m.end - m.start))\n"
        }
        out += "memblock.reserved:\n"
        for r in memblock.reserved {
            out += "  [\(String(format0x: r.start, width: 16))-\(String(format0x: r.end - 1, width: 16))] \(formatKB(r.size).leftPadded(12))  \(r.name)\n"
        }
        out += "  zero page: pfn \(zeroPage) (kernel bss)\n"
        return out
    }

    /// One line per zone: span, present, managed, free, watermarks, lowmem protection, pcp sizes.
    public func zoneSummaryText() -> String {
        var out = "zone      start_pfn    spanned    present    managed       free      min      low     high  pcp batch/high_min/high_max  protection\n"
        for z in zones where z.isPopulated {
            let pcp = z.pcp[0]
            out += z.name.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += leftPad(z.startPFN, 11) + leftPad(z.spannedPages, 11) + leftPad(z.presentPages, 11) + leftPad(z.managedPages, 11)
            out += leftPad(z.freePages, 11) + leftPad(z.watermark(.min), 9) + leftPad(z.watermark(.low), 9) + leftPad(z.watermark(.high), 9)
            out += "  " + "\(pcp.batch)/\(pcp.highMin)/\(pcp.highMax)".padding(toLength: 27, withPad: " ", startingAt: 0)
            out += "  (" + z.lowmemReserve.map(String.init).joined(separator: ", ") + ")\n"
        }
        out += "min_free_kbytes \(minFreeKbytes), totalreserve_pages \(totalReservePages), MemTotal \(totalRAMPages * 4) kB\n"
        return out
    }

    /// Every view as JSON-ready dictionaries (deterministic key order is applied by the encoder).
    public func snapshotJSON() -> [String: Any] {
        var meminfo: [String: UInt64] = [:]
        for f in self.meminfo() { meminfo[f.name] = f.value }
        var vmstat: [String: Int64] = [:]
        for item in VMStat.allCases { vmstat[item.name] = vmstatValue(item) }
        var zonesOut: [[String: Any]] = []
        for z in zones {
            zonesOut.append([
                "name": z.name, "start_pfn": z.startPFN, "spanned": z.spannedPages, "present": z.presentPages,
                "managed": z.managedPages, "free": z.freePages,
                "min": z.watermark(.min), "low": z.watermark(.low), "high": z.watermark(.high), "promo": z.watermark(.promo),
                "protection": Array(z.lowmemReserve), "nr_free": Array(z.nrFree),
                "pagesets": z.pcp.map { ["count": $0.count, "high": $0.high, "batch": $0.batch, "high_min": $0.highMin, "high_max": $0.highMax] },
            ])
        }
        return [
            "config": (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(config))) ?? [:],
            "dmesg": Array(log),
            "meminfo": meminfo,
            "vmstat": vmstat,
            "zones": zonesOut,
            "memblock_reserved": memblock.reserved.map { ["start": $0.start, "end": $0.end, "name": $0.name] as [String: Any] },
            "min_free_kbytes": minFreeKbytes,
            "totalreserve_pages": totalReservePages,
        ]
    }
}

func formatKB(_ bytes: UInt64) -> String {
    bytes % 1024 == 0 ? "\(bytes / 1024) KiB" : "\(bytes) B"
}
