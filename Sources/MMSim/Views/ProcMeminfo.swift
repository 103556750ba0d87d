// fs/proc/meminfo.c: /proc/meminfo, field for field in the kernel's order and spelling.

/// One /proc/meminfo field: name (without colon), value, and whether it prints in kB.
public struct MeminfoField: Sendable, Hashable {
    public var name: String
    public var value: UInt64
    public var isKB: Bool
}

extension Machine {
    /// si_mem_available(): free pages minus reserves, plus the reclaimable part of page cache and slab.
    public var memAvailablePages: Int64 {
        let wmarkLow = zones.reduce(UInt64(0)) { $0 + $1.watermark(.low) }
        var available = counters[.nrFreePages] - Int64(totalReservePages)
        var pagecache = counters[.nrActiveFile] + counters[.nrInactiveFile]
        pagecache -= min(pagecache / 2, Int64(wmarkLow))
        available += pagecache
        var reclaimable = counters[.nrSlabReclaimable] + counters[.nrKernelMiscReclaimable]
        reclaimable -= min(reclaimable / 2, Int64(wmarkLow))
        available += reclaimable
        return max(available, 0)
    }

    /// vm_commit_limit(): (totalram - hugetlb) * overcommit_ratio / 100 + swap (Util.swift).
    public var commitLimitPages: UInt64 { vmCommitLimit() }

    /// VmallocTotal in kB for the architecture (VMALLOC_END - VMALLOC_START).
    var vmallocTotalKB: UInt64 {
        switch arch {
        case .x86_64: 34359738367
        case .x86_64_5level: 13743895347199
        case .arm64: 135288315904
        }
    }

    /// The fields of /proc/meminfo (meminfo_proc_show()).
    public func meminfo() -> [MeminfoField] {
        func p(_ pages: Int64) -> UInt64 { UInt64(max(pages, 0)) * (Page.size >> 10) }
        let c = counters
        var f: [MeminfoField] = []
        func kb(_ n: String, _ v: UInt64) { f.append(MeminfoField(name: n, value: v, isKB: true)) }
        func raw(_ n: String, _ v: UInt64) { f.append(MeminfoField(name: n, value: v, isKB: false)) }
        let cached = max(0, c[.nrFilePages] - c[.nrSwapcached])
        kb("MemTotal", p(Int64(totalRAMPages)))
        kb("MemFree", p(c[.nrFreePages]))
        kb("MemAvailable", p(memAvailablePages))
        kb("Buffers", 0)
        kb("Cached", p(cached))
        kb("SwapCached", p(c[.nrSwapcached]))
        kb("Active", p(c[.nrActiveAnon] + c[.nrActiveFile]))
        kb("Inactive", p(c[.nrInactiveAnon] + c[.nrInactiveFile]))
        kb("Active(anon)", p(c[.nrActiveAnon]))
        kb("Inactive(anon)", p(c[.nrInactiveAnon]))
        kb("Active(file)", p(c[.nrActiveFile]))
        kb("Inactive(file)", p(c[.nrInactiveFile]))
        kb("Unevictable", p(c[.nrUnevictable]))
        kb("Mlocked", p(c[.nrMlock]))
        // si_swapinfo(): total_swap_pages and nr_swap_pages of the areas in use.
        kb("SwapTotal", p(Int64(swap.totalPages)))
        kb("SwapFree", p(Int64(swap.freePages)))
        kb("Zswap", 0)
        kb("Zswapped", 0)
        kb("Dirty", p(c[.nrDirty]))
        kb("Writeback", p(c[.nrWriteback]))
        kb("AnonPages", p(c[.nrAnonPages]))
        kb("Mapped", p(c[.nrMapped]))
        kb("Shmem", p(c[.nrShmem]))
        kb("KReclaimable", p(c[.nrSlabReclaimable] + c[.nrKernelMiscReclaimable]))
        kb("Slab", p(c[.nrSlabReclaimable] + c[.nrSlabUnreclaimable]))
        kb("SReclaimable", p(c[.nrSlabReclaimable]))
        kb("SUnreclaim", p(c[.nrSlabUnreclaimable]))
        kb("KernelStack", UInt64(max(c[.nrKernelStack], 0)))
        kb("PageTables", p(c[.nrPageTablePages]))
        kb("SecPageTables", p(c[.nrSecPageTablePages]))
        kb("NFS_Unstable", 0)
        kb("Bounce", p(c[.nrBounce]))
        kb("WritebackTmp", p(c[.nrWritebackTemp]))
        kb("CommitLimit", p(Int64(commitLimitPages)))
        kb("Committed_AS", p(committedAS))
        kb("VmallocTotal", vmallocTotalKB)
        kb("VmallocUsed", 0)
        kb("VmallocChunk", 0)
        kb("Percpu", UInt64(config.cpus) * config.percpuKBPerCPU)
        raw("HardwareCorrupted", p(hardwareCorruptedPages))
        kb("AnonHugePages", p(c[.nrAnonTransparentHugepages]))
        kb("ShmemHugePages", p(c[.nrShmemHugepages]))
        kb("ShmemPmdMapped", p(c[.nrShmemPmdmapped]))
        kb("FileHugePages", p(c[.nrFileHugepages]))
        kb("FilePmdMapped", p(c[.nrFilePmdmapped]))
        kb("Balloon", p(c[.nrBalloonPages]))
        // hugetlb_report_meminfo(): the default size's pool, and every pool's memory.
        let hd = hugetlb.defaultHstate
        raw("HugePages_Total", hd.nrHugePages)
        raw("HugePages_Free", hd.freeHugePages)
        raw("HugePages_Rsvd", hd.resvHugePages)
        raw("HugePages_Surp", hd.surplusHugePages)
        kb("Hugepagesize", hd.sizeKB)
        kb("Hugetlb", hugetlb.hstates.reduce(0) { $0 + $1.nrHugePages * $1.sizeKB })
        if arch.isX86 {
            kb("DirectMap4k", directMapKB.k4)
            kb("DirectMap2M", directMapKB.m2)
            kb("DirectMap1G", directMapKB.g1)
        }
        return f
    }


    /// The text of /proc/meminfo.
    public func meminfoText() -> String {
        meminfo().map { fld in
            let label = (fld.name + ":").padding(toLength: 16, withPad: " ", startingAt: 0)
            if fld.name.hasPrefix("HugePages_") {
                return (fld.name + ":").padding(toLength: 19, withPad: " ", startingAt: 0) + leftPad(fld.value, 5)
            }
            if fld.name == "HardwareCorrupted" { return "HardwareCorrupted: " + leftPad(fld.value, 5) + " kB" }
            return label + leftPad(fld.value, 8) + " kB"
        }.joined(separator: "\n") + "\n"
    }
}

/// Right-aligns a number in `width` columns (printf "%*lu").
func leftPad(_ v: UInt64, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

func leftPad(_ v: Int64, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
