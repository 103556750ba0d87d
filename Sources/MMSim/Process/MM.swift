// include/linux/mm_types.h (struct mm_struct), mm/util.c: an address space: page table, VMAs, counters.

/// The RSS counters of an mm (enum NR_MM_COUNTERS).
public enum RSSCounter: Int, Sendable, CaseIterable {
    case filePages = 0, anonPages = 1, swapEnts = 2, shmemPages = 3
}

/// mm_struct: one address space.
public final class MM {
    public let id: Int
    public let pageTable: PageTable
    /// The VMAs in address order (the maple tree's iteration order).
    public internal(set) var vmas: [VMA] = []
    /// rss_stat: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES (pages).
    /// Fixed storage: the zap and fault loops update it per page without copy-on-write checks.
    public let rss = FixedArray<Int64>(repeating: 0, count: RSSCounter.allCases.count)
    /// total_vm, data_vm, exec_vm, stack_vm, locked_vm (pages).
    public internal(set) var totalVM: Int64 = 0
    public internal(set) var dataVM: Int64 = 0
    public internal(set) var execVM: Int64 = 0
    public internal(set) var stackVM: Int64 = 0
    public internal(set) var lockedVM: Int64 = 0
    /// hiwater_rss, hiwater_vm
    public internal(set) var hiwaterRSS: Int64 = 0
    public internal(set) var hiwaterVM: Int64 = 0
    /// TASK_SIZE: the top of the user address space.
    public let taskSize: UInt64
    /// mmap_base: where top-down placement starts.
    public let mmapBase: UInt64
    /// start_code and end_code (VmExe).
    public internal(set) var startCode: UInt64 = 0
    public internal(set) var endCode: UInt64 = 0
    /// start_brk and brk.
    public internal(set) var startBrk: UInt64 = 0
    public internal(set) var brk: UInt64 = 0
    /// def_flags has VM_LOCKED (mlockall(MCL_FUTURE)).
    public internal(set) var lockFuture = false
    /// mm_users: tasks sharing it.
    public internal(set) var users = 1
    /// mm_cpumask: CPUs that have run it (and may cache its translations).
    public let cpumask: FixedArray<Bool>
    /// The arm64 ASID its translations carry (x86 tags by per-CPU PCID slot instead).
    public let asid: ASID
    /// context.ctx_id: never reused, names the mm in the CPUs' PCID slots.
    public internal(set) var ctxID: UInt64 = 0
    /// context.tlb_gen: bumped by every flush request (flush_tlb_mm_range()).
    public internal(set) var tlbGen: UInt64 = 0
    /// tlb_flush_pending: gathers running on this mm now (nested gathers force a full flush).
    public internal(set) var flushPending = 0
    /// hugetlb_usage: base pages of hugetlb folios mapped (HugetlbPages).
    public internal(set) var hugetlbUsage: Int64 = 0
    /// The memory cgroup charged for its pages (mm->owner's, get_mem_cgroup_from_mm()); 0 = root.
    public internal(set) var memcg = 0

    init(id: Int, pageTable: PageTable, arch: Architecture, cpus: Int) {
        self.id = id
        self.pageTable = pageTable
        // TASK_SIZE_MAX for 4-level x86-64 and 48-bit arm64; 5-level keeps the 47-bit default
        // window unless a hint asks higher (arch_get_mmap_end()).
        taskSize = arch.isX86 ? 0x7FFF_FFFF_F000 : 0x1_0000_0000_0000
        // mmap_base(): TASK_SIZE - gap, gap clamped to at least 128 MiB (no randomization).
        mmapBase = taskSize - 128 * Size.MiB
        cpumask = FixedArray(repeating: false, count: cpus)
        asid = ASID(UInt16(truncatingIfNeeded: (id % ((1 << arch.asidBits) - 1)) + 1))
    }

    deinit {
        rss.deallocate()
        cpumask.deallocate()
    }

    /// get_mm_rss()
    public var rssPages: Int64 { rss[0] + rss[1] + rss[3] }

    @inline(__always) func addRSS(_ c: RSSCounter, _ n: Int64) {
        rss[c.rawValue] &+= n
        // Only a rise can set a new high-water mark.
        if n > 0 {
            let r = rssPages
            if r > hiwaterRSS { hiwaterRSS = r }
        }
    }

    /// The index `findVMAIndex` last returned (host-side, like the kernel's old per-thread
    /// vmacache): tried first, and used only when that VMA contains the address.
    private var lastVMAIndex = 0

    /// find_vma(): the first VMA that ends above `addr` (index), or nil.
    public func findVMAIndex(_ addr: UInt64) -> Int? {
        let n = vmas.count
        // VMAs are sorted and disjoint: one containing `addr` is the first ending above it.
        let c = lastVMAIndex
        if c < n && vmas[c].start <= addr && addr < vmas[c].end { return c }
        var lo = 0, hi = n
        while lo < hi {
            let mid = (lo + hi) / 2
            if vmas[mid].end <= addr { lo = mid + 1 } else { hi = mid }
        }
        guard lo < n else { return nil }
        lastVMAIndex = lo
        return lo
    }

    /// vma_lookup(): the VMA containing `addr`, if any.
    public func vma(containing addr: UInt64) -> VMA? {
        guard let i = findVMAIndex(addr), vmas[i].start <= addr else { return nil }
        return vmas[i]
    }

    /// vm_stat_account(): total_vm and the data/exec/stack split of a VMA's pages.
    func statAccount(_ flags: VMFlags, _ pages: Int64) {
        totalVM += pages
        if flags.contains(.exec) && !flags.contains(.write) { execVM += pages }      // is_exec_mapping()
        else if flags.contains(.growsdown) { stackVM += pages }                       // is_stack_mapping()
        else if flags.contains(.write) && !flags.contains(.shared) { dataVM += pages } // is_data_mapping()
        if totalVM > hiwaterVM { hiwaterVM = totalVM }
    }
}
