// The simulated machine: physical memory, its memmap, the page allocator, CPUs, counters and the boot log.

/// A booted machine. Construct one with `Machine(config)`; boot happens in the initializer
/// (see MMInit.swift) and its messages are in `bootLog`.
public final class Machine {
    public let config: MachineConfig
    /// config.arch, stored on its own: reading it through `config` copies the struct (and
    /// retains its arrays) on hot paths.
    public let arch: Architecture
    /// config.pcid and config.cpus, for the same reason.
    public let pcid: Bool
    public let cpuCount: Int
    /// The boot-time allocator's record: RAM regions and reservations.
    public internal(set) var memblock = Memblock()
    /// struct page for every frame (lazily materialized per section).
    public let frames: FrameTable
    /// Machine-wide vmstat counters.
    public let counters: VMCounters
    /// The CPUs: TLBs, loaded page tables, walk counters.
    public let cpus: [CPU]
    /// The CPUs again, unretained, for the MMU hot path (kept alive by `cpus`).
    @usableFromInline let cpuRefs: FixedArray<Unmanaged<CPU>>
    /// Each CPU's TLB and current tag, flat, for the TLB-hit path.
    @usableFromInline let tlbRefs: FixedArray<Unmanaged<TLB>>
    @usableFromInline let cpuASIDs: FixedArray<ASID>
    /// The buddy allocator.
    public let allocator: PageAllocator
    /// dmesg: the boot log and later kernel messages (the allocator's too), without timestamps.
    public let log: KernelLog
    /// The shared zero page (empty_zero_page) inside the kernel image.
    public internal(set) var zeroPage = PFN(0)
    /// First and last PFN of the kernel image (_text, _end) and of its init section.
    public internal(set) var kernelImage: (start: UInt64, end: UInt64) = (0, 0)
    public internal(set) var kernelInit: (start: UInt64, end: UInt64) = (0, 0)
    /// Transparent huge pages in effect (the sysfs mode, unless hugepage_init() turned them off).
    public internal(set) var thpEnabled = false
    /// The THP mode written to sysfs (the boot default from the configuration).
    public var thpModeSetting: THPMode = .madvise
    /// The huge zero page, once a read fault needed it.
    var hugeZeroPFN: PFN?
    /// vm.min_free_kbytes in force.
    public internal(set) var minFreeKbytes: UInt64 = 0
    /// totalreserve_pages
    public internal(set) var totalReservePages: UInt64 = 0
    /// Present pages at boot (get_num_physpages()).
    public internal(set) var physPages: UInt64 = 0
    /// One past the highest RAM PFN (max_pfn).
    public internal(set) var maxPFN: UInt64 = 0
    /// DirectMap4k/2M/1G in KiB (how the kernel's direct map covers RAM).
    public internal(set) var directMapKB: (k4: UInt64, m2: UInt64, g1: UInt64) = (0, 0, 0)

    /// TLB flushes decided but not yet done; the checker tolerates entries they cover.
    public internal(set) var pendingTLBFlushes: [PendingTLBFlush] = []
    /// Each CPU's TLB bookkeeping (cpu_tlbstate): loaded mm, lazy mode, PCID slots.
    let tlbs: TLBStateTable
    /// Each CPU's tlb_state, as values.
    public var tlbState: [CPUTLBState] { (0..<cpuCount).map { tlbs.snapshot($0) } }
    /// Flush, IPI and gather statistics.
    public internal(set) var shootdown: ShootdownStats
    /// The unmap path's tunables.
    public var tunables = UnmapTunables()
    /// RCU: grace periods and their callbacks (page-table frees).
    public let rcu: RCUState
    /// The tracepoint buffer (`mmsim run --trace`).
    public let tracer: Tracer
    /// last_mm_ctx_id
    var lastMMCtxID = MM.initMMCtxID
    /// Check every user access against the page tables (the TLB validator). On in debug
    /// builds (so in every test), off in release builds unless asked for (`mmsim run --check`).
    public var validateTLB = _isDebugAssertConfiguration()
    /// What the TLB validator and the lock-free walkers found wrong, in order.
    public internal(set) var tlbViolations: [String] = []
    /// Gathers in progress (their pending flushes excuse stale TLB entries they cover).
    var gathersInFlight: [Unmanaged<MMUGather>] = []
    /// Lock-free walks, by id (finished ones stay for inspection).
    public internal(set) var lockFreeWalkers: [LockFreeWalk] = []
    /// Fault injection (as CONFIG_FAIL_PAGE_ALLOC with ignore-gfp-wait=N): the gather's
    /// GFP_NOWAIT batch and table-batch pages cannot be had.
    public var failGatherAllocations = false
    /// Deliberate bugs, for tests that prove the validator and the walkers' check can fail:
    /// skip every user TLB flush; free page tables without waiting for RCU.
    var debugSkipTLBFlush = false
    var debugFreeTablesWithoutRCU = false
    /// Page-table pages waiting for every CPU to answer tlb_remove_table_sync_one()'s IPI.
    var tablesAwaitingIPI: [(PFN, PageTableLevel)] = []
    /// Every task ever spawned or forked, in pid order (reaped ones stay as `dead`).
    public internal(set) var tasks: [Task] = []
    var nextPID = 1
    /// nr_threads and kernel.threads-max (kernel/fork.c; see Task.swift).
    public internal(set) var threads = ThreadCount()
    var nextMMID = 0
    /// The reverse map: anon_vmas, chains, VMA identities, i_mmap trees (Rmap.swift, AnonVMA.swift).
    public let rmap = RmapState()
    var shmemObjects: [ShmemObject] = []
    /// Every file created, by id.
    public internal(set) var files: [SimFile] = []
    /// The CPU the model is acting on (this_cpu): the running task's CPU.
    public var currentCPU: Int {
        get { allocator.currentCPU }
        set { allocator.currentCPU = newValue }
    }
    /// vm_committed_as in pages (Committed_AS).
    public internal(set) var committedAS: Int64 = 0
    /// The overcommit sysctls (Util.swift).
    public var overcommit = OvercommitPolicy()
    /// The OOM killer's sysctls and record (OOMKill.swift).
    public let oom = OOMState()
    /// HugeTLB pools and HVO (mm/hugetlb.c, mm/hugetlb_vmemmap.c).
    public let hugetlb = HugetlbState()
    /// The vmemmap: struct pages mapped by kernel page tables (set up at boot).
    public internal(set) var vmemmap: Vmemmap!
    /// Hot-added memory blocks (MemoryHotplug.swift).
    public internal(set) var memoryBlocks: [MemoryBlock] = []
    /// Memory cgroups: the hierarchy, charges, stocks (Memcontrol.swift).
    public let memcg: MemcgState
    /// Swap areas and the swap sysctls (Swapfile.swift, SwapState.swift).
    public let swap = SwapState()
    /// Every CPU's lru_add batch (Swap.swift, mm/swap.c's cpu_fbatches).
    let fbatches: FolioBatches
    /// Pages isolated by memory failure (HardwareCorrupted).
    public internal(set) var hardwareCorruptedPages: Int64 = 0

    /// Boots a machine. Throws `ConfigError` for an impossible configuration.
    public init(_ config: MachineConfig) throws {
        try config.validate()
        self.config = config
        self.arch = config.arch
        self.pcid = config.pcid
        self.cpuCount = config.cpus
        // setup_arch() .. sparse_init(): memblock and its reservations, before struct pages.
        let early = try EarlyBoot(config)
        memblock = early.memblock
        let log = KernelLog(early.log)
        self.log = log
        maxPFN = early.maxPFN
        physPages = early.physPages
        kernelImage = early.kernelImage
        kernelInit = early.kernelInit
        zeroPage = early.zeroPage
        directMapKB = early.directMapKB
        let counters = VMCounters()
        counters.add(.nrMemmapBootPages, Int64(early.memmapBootPages))
        self.counters = counters
        // The memmap (filled section by section on first touch), the allocator, the CPUs.
        let mb = early.memblock, zoneBounds = early.nodeZoneRanges
        // The memmap covers RAM and the range memory may be hot-added in (MemoryHotplug.swift).
        let blockPages = MachineConfig.memoryBlockBytes >> Page.shift
        let hotplugEnd = config.hotplugMemory == 0 ? 0
            : ((early.maxPFN + blockPages - 1) & ~(blockPages - 1)) + (config.hotplugMemory >> Page.shift)
        let frames = FrameTable(endPFN: max(early.maxPFN, hotplugEnd, 1)) { first, records in
            Machine.initSection(first: first.raw, records: records, memblock: mb, zoneBounds: zoneBounds)
        }
        self.frames = frames
        allocator = PageAllocator(frames: frames, counters: counters, log: log, cpus: config.cpus,
                                  nodes: config.nodes, cpuToNode: config.cpuToNode)
        tracer = allocator.tracer
        let cpus = (0..<config.cpus).map { CPU(id: $0, config: config, frames: frames) }
        self.cpus = cpus
        cpuRefs = FixedArray(cpus.map { Unmanaged.passUnretained($0) })
        tlbRefs = FixedArray(cpus.map { Unmanaged.passUnretained($0.tlb) })
        cpuASIDs = FixedArray(cpus.map(\.asid))
        tlbs = TLBStateTable(cpus: config.cpus)
        shootdown = ShootdownStats(cpus: config.cpus)
        rcu = RCUState(cpus: config.cpus)
        memcg = MemcgState(nodes: config.nodes, cpus: config.cpus)
        fbatches = FolioBatches(cpus: config.cpus)
        try boot(early)
        allocator.reclaimer = { [unowned self] gfp, order, attempt in
            self.allocSlowpathReclaim(gfp: gfp, order: order, attempt: attempt)
        }
        initOvercommitReserves()
    }

    deinit {
        cpuRefs.deallocate()
        tlbRefs.deallocate()
        cpuASIDs.deallocate()
    }

    /// memmap_init_range() for one section: holes, reservations (PG_reserved, refcount 1),
    /// zone links. Free frames stay zero: they are either virgin MAX_ORDER blocks or are
    /// given their buddy state when boot frees them.
    static func initSection(first: UInt64, records: UnsafeMutablePointer<PageMeta>, memblock: Memblock,
                            zoneBounds: [(Int, UInt64, UInt64)]) {
        let n = UInt64(FrameTable.framesPerSection)
        let last = first + n
        for i in 0..<Int(n) {
            records[i].state = .hole
            records[i].next = FrameTable.nil
            records[i].prev = FrameTable.nil
        }
        for m in memblock.memory {
            let s = max(m.start >> Page.shift, first), e = min(m.end >> Page.shift, last)
            if s < e { for p in s..<e { records[Int(p - first)].state = .pristine } }
        }
        for r in memblock.reserved {
            let s = max(r.start >> Page.shift, first)
            let e = min((r.end + Page.size - 1) >> Page.shift, last)
            if s < e {
                for p in s..<e where records[Int(p - first)].state != .hole {
                    records[Int(p - first)].state = .reserved
                    records[Int(p - first)].flags = .reserved
                    records[Int(p - first)].refcount = 1
                }
            }
        }
        for (z, s0, e0) in zoneBounds {
            let s = max(s0, first), e = min(e0, last)
            if s < e { for p in s..<e { records[Int(p - first)].zone = UInt8(z) } }
        }
    }

    // MARK: Convenience

    /// vm.swappiness (vm_swappiness: the root memory cgroup's swappiness).
    public var vmSwappiness: Int {
        get { memcg.groups[0].swappiness }
        set { memcg.groups[0].swappiness = newValue }
    }

    public var zones: [Zone] { allocator.zones }
    /// totalram_pages()
    public var totalRAMPages: UInt64 { allocator.totalRAMPages }
    /// Host bytes used by the model's per-frame records.
    public var hostMemoryBytes: Int { frames.hostBytes }
}
