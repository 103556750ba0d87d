// The names a scenario may use: /proc fields, sysctls, sysfs files, flags and advice, by their kernel spelling.

/// Static name tables the parser checks against.
public enum ScenarioCatalog {
    /// /proc/meminfo fields (Linux 6.18, x86-64 and arm64), with whether each is in kB.
    public static let meminfoFields: [(name: String, isKB: Bool)] = [
        ("MemTotal", true), ("MemFree", true), ("MemAvailable", true), ("Buffers", true), ("Cached", true),
        ("SwapCached", true), ("Active", true), ("Inactive", true), ("Active(anon)", true),
        ("Inactive(anon)", true), ("Active(file)", true), ("Inactive(file)", true), ("Unevictable", true),
        ("Mlocked", true), ("SwapTotal", true), ("SwapFree", true), ("Zswap", true), ("Zswapped", true),
        ("Dirty", true), ("Writeback", true), ("AnonPages", true), ("Mapped", true), ("Shmem", true),
        ("KReclaimable", true), ("Slab", true), ("SReclaimable", true), ("SUnreclaim", true),
        ("KernelStack", true), ("PageTables", true), ("SecPageTables", true), ("NFS_Unstable", true),
        ("Bounce", true), ("WritebackTmp", true), ("CommitLimit", true), ("Committed_AS", true),
        ("VmallocTotal", true), ("VmallocUsed", true), ("VmallocChunk", true), ("Percpu", true),
        ("HardwareCorrupted", true), ("AnonHugePages", true), ("ShmemHugePages", true),
        ("ShmemPmdMapped", true), ("FileHugePages", true), ("FilePmdMapped", true), ("Balloon", true),
        ("HugePages_Total", false), ("HugePages_Free", false), ("HugePages_Rsvd", false),
        ("HugePages_Surp", false), ("Hugepagesize", true), ("Hugetlb", true),
        ("DirectMap4k", true), ("DirectMap2M", true), ("DirectMap1G", true),
    ]

    /// /proc/PID/status memory fields (task_mem()), all in kB.
    public static let statusFields: [String] = [
        "VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem",
        "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap", "HugetlbPages",
    ]

    /// Every sysctl under /proc/sys/vm in Linux 6.18, plus the kernel.* ones that change memory behaviour.
    public static let sysctls: [String] = [
        "vm.admin_reserve_kbytes", "vm.compact_memory", "vm.compact_unevictable_allowed",
        "vm.compaction_proactiveness", "vm.dirty_background_bytes", "vm.dirty_background_ratio",
        "vm.dirty_bytes", "vm.dirty_expire_centisecs", "vm.dirty_ratio", "vm.dirty_writeback_centisecs",
        "vm.dirtytime_expire_seconds", "vm.drop_caches", "vm.enable_soft_offline", "vm.extfrag_threshold",
        "vm.hugetlb_optimize_vmemmap", "vm.hugetlb_shm_group", "vm.laptop_mode", "vm.legacy_va_layout",
        "vm.lowmem_reserve_ratio", "vm.max_map_count", "vm.memory_failure_early_kill",
        "vm.memory_failure_recovery", "vm.min_free_kbytes", "vm.min_slab_ratio", "vm.min_unmapped_ratio",
        "vm.mmap_min_addr", "vm.mmap_rnd_bits", "vm.mmap_rnd_compat_bits", "vm.nr_hugepages",
        "vm.nr_hugepages_mempolicy", "vm.nr_overcommit_hugepages", "vm.numa_stat", "vm.numa_zonelist_order",
        "vm.oom_dump_tasks", "vm.oom_kill_allocating_task", "vm.overcommit_kbytes", "vm.overcommit_memory",
        "vm.overcommit_ratio", "vm.page-cluster", "vm.page_lock_unfairness", "vm.panic_on_oom",
        "vm.percpu_pagelist_high_fraction", "vm.stat_interval", "vm.stat_refresh", "vm.swappiness",
        "vm.unprivileged_userfaultfd", "vm.user_reserve_kbytes", "vm.vfs_cache_pressure",
        "vm.watermark_boost_factor", "vm.watermark_scale_factor", "vm.zone_reclaim_mode",
        "kernel.randomize_va_space", "kernel.threads-max",
    ]

    /// sysfs files under /sys/kernel/mm that a scenario may write, with their allowed values
    /// (nil = a number).
    public static let sysfsFiles: [(path: String, values: [String]?)] = [
        ("/sys/kernel/mm/transparent_hugepage/enabled", ["always", "madvise", "never"]),
        ("/sys/kernel/mm/transparent_hugepage/defrag", ["always", "defer", "defer+madvise", "madvise", "never"]),
        ("/sys/kernel/mm/transparent_hugepage/use_zero_page", ["0", "1"]),
        ("/sys/kernel/mm/swap/vma_ra_enabled", ["true", "false"]),
        ("/sys/kernel/mm/transparent_hugepage/shmem_enabled", ["always", "within_size", "advise", "never", "deny", "force"]),
        ("/sys/kernel/mm/transparent_hugepage/khugepaged/defrag", ["0", "1"]),
        ("/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none", nil),
        ("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan", nil),
        ("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", nil),
        ("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", nil),
        ("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages", nil),
        ("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages", nil),
        ("/sys/kernel/mm/hugepages/hugepages-1048576kB/demote", nil),
        ("/sys/devices/system/memory/probe", nil),
        ("/sys/kernel/mm/ksm/run", ["0", "1", "2"]),
    ]

    /// /sys/devices/system/memory/memoryN/state (memory block N online or offline).
    public static func memoryBlockFile(_ path: String) -> (path: String, values: [String]?)? {
        let prefix = "/sys/devices/system/memory/memory", suffix = "/state"
        guard path.hasPrefix(prefix), path.hasSuffix(suffix), path.count > prefix.count + suffix.count,
              UInt64(path.dropFirst(prefix.count).dropLast(suffix.count)) != nil else { return nil }
        return (path, ["online", "offline", "online_movable", "online_kernel"])
    }

    /// madvise() advice by its scenario name (lower case, without MADV_).
    public static let advice: [(name: String, advice: Advice)] = [
        ("normal", .normal), ("random", .random), ("sequential", .sequential), ("willneed", .willneed),
        ("dontneed", .dontneed), ("free", .free), ("dontfork", .dontfork), ("dofork", .dofork),
        ("hugepage", .hugepage), ("nohugepage", .nohugepage), ("populate_read", .populateRead),
        ("populate_write", .populateWrite), ("cold", .cold), ("pageout", .pageout),
    ]

    /// mmap() flags by scenario name (lower case, without MAP_).
    public static let mapFlags: [(name: String, flag: MapFlags)] = [
        ("shared", .shared), ("private", .private), ("fixed", .fixed), ("anon", .anonymous),
        ("anonymous", .anonymous), ("growsdown", .growsdown), ("locked", .locked), ("noreserve", .noreserve),
        ("populate", .populate), ("stack", .stack), ("hugetlb", .hugetlb), ("fixed_noreplace", .fixedNoreplace),
        ("huge_2mb", .huge2MB), ("huge_1gb", .huge1GB), ("huge_64kb", .huge64KB), ("huge_32mb", .huge32MB),
    ]

    /// The user address space's end (TASK_SIZE_MAX / TASK_SIZE_64): nothing may be mapped at or above it.
    public static func userAddressLimit(_ arch: Architecture) -> UInt64 {
        switch arch {
        case .x86_64: (1 << 47) - Page.size
        case .x86_64_5level: (1 << 56) - Page.size
        case .arm64: 1 << 48
        }
    }

    /// The closest known name to `word` (edit distance at most 2 or a shared prefix), for "did you mean".
    public static func suggestion(for word: String, in names: [String]) -> String? {
        let w = Array(word.lowercased())
        var best: (String, Int)?
        for n in names {
            let d = editDistance(w, Array(n.lowercased()))
            if d <= max(1, w.count / 3), best == nil || d < best!.1 { best = (n, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

extension ScenarioCatalog {
    /// Every `tlb.` and `rcu.` counter name on a machine with `cpus` CPUs.
    public static func shootdownCounters(cpus: Int) -> [String] {
        var names = ["tlb.ipis_sent", "tlb.ipis_received", "tlb.range_flushes", "tlb.full_flushes", "tlb.tlbi_va",
                     "tlb.tlbi_asid", "tlb.gathers", "tlb.gather_batches", "tlb.gather_flushes", "tlb.tables_rcu",
                     "tlb.tables_sync", "tlb.lazy_cpus", "rcu.completed", "rcu.pending", "rcu.invoked"]
        for c in 0..<cpus { names += ["tlb.ipis_sent.cpu\(c)", "tlb.ipis_received.cpu\(c)"] }
        return names
    }
}
