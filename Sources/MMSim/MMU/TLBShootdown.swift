// arch/x86/mm/tlb.c (switch_mm_irqs_off, choose_new_asid, flush_tlb_mm_range, flush_tlb_func,
// native_flush_tlb_multi, flush_tlb_kernel_range) and arch/arm64/include/asm/tlbflush.h
// (__flush_tlb_range, flush_tlb_mm): which CPUs' TLBs an unmap must reach, and how.

/// TLB_NR_DYN_ASIDS: the PCIDs each x86 CPU hands out to the mms it runs.
public let tlbNrDynASIDs = 6

/// struct tlb_state of one x86 CPU (arm64 keeps only `loadedMM` and `isLazy`).
public struct CPUTLBState {
    /// cpu_tlbstate.loaded_mm (nil = init_mm, no user mappings). Holding it keeps a lazily
    /// loaded mm_struct alive, as mmgrab_lazy_tlb() does.
    public internal(set) var loadedMM: MM?
    /// cpu_tlbstate.loaded_mm_asid: the dynamic ASID slot in use.
    public internal(set) var loadedSlot = 0
    /// cpu_tlbstate_shared.is_lazy: running a kernel thread or idle with the old mm loaded.
    public internal(set) var isLazy = false
    /// cpu_tlbstate.next_asid: the round-robin cursor.
    public internal(set) var nextASID = 1
    /// cpu_tlbstate.ctxs[]: which mm (ctx_id) owns each slot and the generation it is
    /// flushed up to.
    public internal(set) var ctxID: [UInt64]
    public internal(set) var ctxGen: [UInt64]

    init() {
        ctxID = [UInt64](repeating: 0, count: tlbNrDynASIDs)
        ctxGen = [UInt64](repeating: 0, count: tlbNrDynASIDs)
        // initialize_tlbstate_and_flush(): slot 0 holds init_mm.
        ctxID[0] = MM.initMMCtxID
    }
}

/// Every CPU's tlb_state in flat storage: the shootdown and context-switch paths read and
/// write it per flush without copy-on-write checks or reference counting (the mm a CPU has
/// loaded is compared by id; `loadedMM` only holds the reference).
final class TLBStateTable {
    /// The loaded mm per CPU (strong: mmgrab_lazy_tlb()), written only on a switch.
    var loadedMM: [MM?]
    /// Its id (0 = init_mm).
    let loadedID: FixedArray<Int>
    let slot: FixedArray<Int>
    let lazy: FixedArray<Bool>
    let nextASID: FixedArray<Int>
    /// ctxs[] of CPU c at c * tlbNrDynASIDs + slot.
    let ctxID: FixedArray<UInt64>
    let ctxGen: FixedArray<UInt64>

    init(cpus: Int) {
        loadedMM = [MM?](repeating: nil, count: cpus)
        loadedID = FixedArray(repeating: 0, count: cpus)
        slot = FixedArray(repeating: 0, count: cpus)
        lazy = FixedArray(repeating: false, count: cpus)
        nextASID = FixedArray(repeating: 1, count: cpus)
        ctxID = FixedArray(repeating: 0, count: cpus * tlbNrDynASIDs)
        ctxGen = FixedArray(repeating: 0, count: cpus * tlbNrDynASIDs)
        // initialize_tlbstate_and_flush(): slot 0 holds init_mm.
        for c in 0..<cpus { ctxID[c * tlbNrDynASIDs] = MM.initMMCtxID }
    }

    deinit {
        loadedID.deallocate(); slot.deallocate(); lazy.deallocate(); nextASID.deallocate()
        ctxID.deallocate(); ctxGen.deallocate()
    }

    /// CPU `c`'s state as a value (for views and tests).
    func snapshot(_ c: Int) -> CPUTLBState {
        var st = CPUTLBState()
        st.loadedMM = loadedMM[c]
        st.loadedSlot = slot[c]
        st.isLazy = lazy[c]
        st.nextASID = nextASID[c]
        for s in 0..<tlbNrDynASIDs {
            st.ctxID[s] = ctxID[c * tlbNrDynASIDs + s]
            st.ctxGen[s] = ctxGen[c * tlbNrDynASIDs + s]
        }
        return st
    }
}

/// The knobs of the unmap path a study can turn (scenario `tunable NAME=VALUE`).
public struct UnmapTunables: Sendable, Hashable {
    /// tlb_single_page_flush_ceiling (debugfs x86/tlb_single_page_flush_ceiling).
    public var flushCeiling: UInt64 = 33
    /// MMU_GATHER_BUNDLE, MAX_GATHER_BATCH, MAX_GATHER_BATCH_COUNT, MAX_TABLE_BATCH.
    public var bundle = 8
    public var batchSlots = 510
    public var maxBatchCount = 19
    public var tableBatchSlots = 509
    /// MAX_NR_FOLIOS_PER_FREE
    public var freeLimit = 512
    /// init_on_free=1 (or page poisoning): the free limit counts pages, not folios.
    public var initOnFree = false
    /// Unbatched: flush the TLB and free each page as soon as it is cleared (what the
    /// kernel did before mmu_gather), to compare against.
    public var perPageFlush = false

    public init() {}

    /// Sets one tunable by name; the error names the tunable and the allowed range.
    public mutating func set(_ name: String, _ value: UInt64) throws(ConfigError) {
        func check(_ lo: UInt64, _ hi: UInt64) throws(ConfigError) {
            guard value >= lo && value <= hi else {
                throw ConfigError(field: name, message: "\(value) is out of range \(lo)...\(hi)")
            }
        }
        switch name {
        case "tlb_single_page_flush_ceiling": try check(0, UInt64(Int32.max)); flushCeiling = value
        case "mmu_gather_bundle": try check(2, 510); bundle = Int(value)
        case "mmu_gather_batch": try check(2, 510); batchSlots = Int(value)
        case "mmu_gather_batch_count": try check(0, 1 << 20); maxBatchCount = Int(value)
        case "mmu_table_batch": try check(1, 509); tableBatchSlots = Int(value)
        case "mmu_gather_free_limit": try check(1, 1 << 20); freeLimit = Int(value)
        case "init_on_free": try check(0, 1); initOnFree = value == 1
        case "unmap_flush_per_page": try check(0, 1); perPageFlush = value == 1
        default:
            throw ConfigError(field: name, message: "unknown tunable; known: " + Self.names.joined(separator: ", "))
        }
    }

    public static let names = ["tlb_single_page_flush_ceiling", "mmu_gather_bundle", "mmu_gather_batch",
                               "mmu_gather_batch_count", "mmu_table_batch", "mmu_gather_free_limit",
                               "init_on_free", "unmap_flush_per_page"]
}

/// Flush and IPI statistics beyond /proc/vmstat: per CPU, and for the gathers.
public struct ShootdownStats: Sendable, Hashable {
    /// Flush IPIs each CPU sent and received (irq_tlb_count is the received side).
    public var ipisSent: [UInt64]
    public var ipisReceived: [UInt64]
    /// arm64 broadcast invalidations: TLBI by VA (per page) and by ASID.
    public var tlbiVA: UInt64 = 0
    public var tlbiASID: UInt64 = 0
    /// flush_tlb_mm_range() calls, and how many became full flushes.
    public var rangeFlushes: UInt64 = 0
    public var fullFlushes: UInt64 = 0
    /// mmu_gather: gathers finished, batch pages taken, tlb_flush_mmu() runs.
    public var gathers: UInt64 = 0
    public var gatherBatches: UInt64 = 0
    public var gatherFlushes: UInt64 = 0
    /// Page-table pages freed through RCU, and through the IPI fallback.
    public var tablesRCU: UInt64 = 0
    public var tablesSync: UInt64 = 0

    init(cpus: Int) {
        ipisSent = [UInt64](repeating: 0, count: cpus)
        ipisReceived = [UInt64](repeating: 0, count: cpus)
    }

    public var totalIPIs: UInt64 { ipisSent.reduce(0, +) }
}

/// struct flush_tlb_info
struct FlushTLBInfo {
    // (flush_tlb_info's mm is passed beside it, as a borrowed reference: no reference
    // counting per flush.)
    var start: UInt64
    /// .max = TLB_FLUSH_ALL
    var end: UInt64
    var strideShift: UInt64
    var freedTables: Bool
    var newTLBGen: UInt64
    var initiatingCPU: Int
    var full: Bool { end == .max }
}

extension MM {
    /// init_mm's context id (last_mm_ctx_id starts at 1).
    static let initMMCtxID: UInt64 = 1
}

extension Machine {
    /// The hardware tag (PCID) of dynamic slot `slot`: kern_pcid(), slot + 1; 0 without PCIDs.
    @inline(__always) func x86Tag(_ slot: Int) -> ASID { pcid ? ASID(UInt16(slot + 1)) : ASID(0) }
    /// The tag arm64 entries of `mm` carry: its ASID, or 0 with ASIDs off (`asid=off`: every
    /// TTBR0 write flushes the non-global entries, and the TLB tags them all 0, see
    /// loadPageTable()); a TLBI by ASID or VA must name that tag to reach them.
    @inline(__always) func arm64Tag(_ mm: MM) -> ASID { pcid ? mm.asid : ASID(0) }

    // MARK: Context switch

    /// switch_mm_irqs_off() (x86) / check_and_switch_context() (arm64): make `next` (nil =
    /// init_mm) the address space loaded on `cpu`. The CPU leaves lazy mode; on x86 it keeps a
    /// lazily loaded mm that is switched back to, catching up on flushes it skipped, and
    /// otherwise picks a PCID slot (choose_new_asid()), flushing it unless the slot still
    /// holds `next` at its current generation.
    func switchMM(_ next: MM?, cpu c: Int) {
        let t = tlbs
        let wasLazy = t.lazy[c]
        t.lazy[c] = false
        if next != nil && rcu.idle[c] { rcuSetIdle(cpu: c, false) }
        let nextID = next?.id ?? 0
        let same = t.loadedID[c] == nextID
        guard arch.isX86 else {
            if !same {
                // A context switch is a quiescent state.
                rcuQuiescentState(cpu: c)
                loadPageTable(cpu: c, root: next?.pageTable.root, asid: next?.asid ?? ASID(0))
                t.loadedMM[c] = next
                t.loadedID[c] = nextID
            }
            next?.cpumask[c] = true
            return
        }
        var slot: Int
        var needFlush: Bool
        let gen = next?.tlbGen ?? 0
        if same {
            // Switching back from lazy mode: flush if flushes were skipped meanwhile.
            guard wasLazy, next != nil else { return }
            slot = t.slot[c]
            if t.ctxGen[c * tlbNrDynASIDs + slot] == gen { return }
            needFlush = true
        } else {
            rcuQuiescentState(cpu: c)
            // Start receiving flush IPIs for `next`, then read its generation. (The bit of
            // the previous mm stays: since 6.13 it is cleared lazily by the first flush IPI
            // that finds the CPU running something else.)
            if let next { next.cpumask[c] = true }
            (slot, needFlush) = chooseNewASID(c, ctxID: next?.ctxID ?? MM.initMMCtxID, gen: gen)
        }
        if needFlush {
            t.ctxID[c * tlbNrDynASIDs + slot] = next?.ctxID ?? MM.initMMCtxID
            t.ctxGen[c * tlbNrDynASIDs + slot] = gen
            tracer.emit(c, .tlbFlush(reason: .onTaskSwitch, pages: -1))
        } else {
            tracer.emit(c, .tlbFlush(reason: .onTaskSwitch, pages: 0))
        }
        loadPageTable(cpu: c, root: next?.pageTable.root, asid: x86Tag(slot), flush: needFlush)
        if !same {
            t.loadedMM[c] = next
            t.loadedID[c] = nextID
        }
        t.slot[c] = slot
    }

    /// choose_new_asid(): the slot that already holds `ctxID` (flush only if it fell behind),
    /// else the next slot round-robin, flushed.
    func chooseNewASID(_ c: Int, ctxID: UInt64, gen: UInt64) -> (Int, Bool) {
        guard pcid else { return (0, true) }
        let t = tlbs
        for s in 0..<tlbNrDynASIDs where t.ctxID[c * tlbNrDynASIDs + s] == ctxID {
            return (s, t.ctxGen[c * tlbNrDynASIDs + s] < gen)
        }
        var s = t.nextASID[c]
        t.nextASID[c] += 1
        if s >= tlbNrDynASIDs {
            s = 0
            t.nextASID[c] = 1
        }
        return (s, true)
    }

    /// enter_lazy_tlb(): `cpu` runs a kernel thread or goes idle; the user mm stays loaded.
    /// With no task left to run the CPU is idle for RCU too.
    func enterLazyTLB(cpu c: Int) {
        if tlbs.loadedID[c] != 0 { tlbs.lazy[c] = true }
        if !tasks.contains(where: { $0.cpu == c && $0.state == .running && $0.mm != nil && $0.sleeping == false }) {
            rcuSetIdle(cpu: c, true)
        }
    }

    /// Whether `cpu` has `mm` loaded (cpu_tlbstate.loaded_mm == mm).
    @inline(__always) func cpuHasLoaded(_ c: Int, _ mm: MM) -> Bool { tlbs.loadedID[c] == mm.id }

    // MARK: Flushing a user range

    /// flush_tlb_mm_range() (x86) / __flush_tlb_range() (arm64): invalidate [start, end) of
    /// `mm`, or all of it when `end` is `.max`.
    ///
    /// x86: the mm's generation goes up; past `tlb_single_page_flush_ceiling` strides the
    /// request becomes a full flush. If any other CPU is in mm_cpumask, every CPU in it is
    /// asked (one nr_tlb_remote_flush): an IPI to the others, the local one runs directly;
    /// lazy CPUs are skipped unless page tables were freed (should_flush_tlb()). Otherwise
    /// only the local CPU flushes, if it has the mm loaded.
    /// arm64: broadcast TLBI by VA and ASID reaches every CPU, no IPIs; past MAX_DVM_OPS
    /// (512) strides one TLBI ASIDE1IS for the whole ASID.
    func flushTLBMMRange(_ mm: MM, start: UInt64, end: UInt64, strideShift: UInt64, freedTables: Bool) {
        shootdown.rangeFlushes += 1
        if debugSkipTLBFlush { return }
        guard arch.isX86 else { return arm64FlushRange(mm, start: start, end: end, strideShift: strideShift) }
        let cpu = currentCPU
        mm.tlbGen += 1
        let ranged = end != .max && (end &- start) >> strideShift <= tunables.flushCeiling
        if !ranged { shootdown.fullFlushes += 1 }
        var info = FlushTLBInfo(start: ranged ? start : 0, end: ranged ? end : .max, strideShift: strideShift,
                                freedTables: freedTables, newTLBGen: mm.tlbGen, initiatingCPU: cpu)
        let mask = mm.cpumask
        var others = false
        for c in 0..<cpuCount where c != cpu && mask[c] {
            others = true
            break
        }
        if others {
            flushTLBMulti(mm, &info)
        } else if cpuHasLoaded(cpu, mm) {
            flushTLBFunc(cpu, mm, &info)
        }
    }

    /// native_flush_tlb_multi(): one nr_tlb_remote_flush; the CPUs in `mask` that should
    /// flush run flush_tlb_func(), the initiator directly, the others by IPI.
    func flushTLBMulti(_ mm: MM, _ info: inout FlushTLBInfo) {
        let mask = mm.cpumask
        counters.add(.nrTlbRemoteFlush, 1)
        let pages: Int64 = info.full ? -1 : Int64((info.end - info.start) >> Page.shift)
        tracer.emit(info.initiatingCPU, .tlbFlush(reason: .remoteSendIPI, pages: pages))
        for c in 0..<cpuCount where mask[c] {
            // should_flush_tlb(): a lazy CPU catches up at its next switch, unless tables were
            // freed (its paging-structure caches could walk them speculatively).
            if !info.freedTables && tlbs.lazy[c] { continue }
            if c != info.initiatingCPU {
                shootdown.ipisSent[info.initiatingCPU] += 1
                shootdown.ipisReceived[c] += 1
                tracer.emit(info.initiatingCPU, .ipi(target: c))
            }
            var local = info
            flushTLBFunc(c, mm, &local)
        }
    }

    /// flush_tlb_func() on CPU `c`.
    func flushTLBFunc(_ c: Int, _ mm: MM, _ f: inout FlushTLBInfo) {
        let local = c == f.initiatingCPU
        if !local { counters.add(.nrTlbRemoteFlushReceived, 1) }
        let t = tlbs
        // The CPU was left in the mask of an mm it no longer runs: leave it now.
        if t.loadedID[c] != mm.id {
            mm.cpumask[c] = false
            tracer.emit(c, .tlbFlush(reason: .remoteWrongCPU, pages: 0))
            return
        }
        let slot = t.slot[c]
        let localGen = t.ctxGen[c * tlbNrDynASIDs + slot]
        if t.lazy[c] {
            // Lazy: switching to init_mm is as cheap as the minimal flush it would need.
            switchMM(nil, cpu: c)
            return
        }
        let mmGen = mm.tlbGen
        let reason: TLBFlushReason = local ? .localMMShootdown : .remoteShootdown
        if localGen == mmGen || f.newTLBGen <= localGen {
            tracer.emit(c, .tlbFlush(reason: reason, pages: 0))
            return
        }
        let tag = x86Tag(slot)
        if !f.full && f.newTLBGen == localGen + 1 && f.newTLBGen == mmGen {
            // Partial flush: INVLPG per stride.
            let n = (f.end - f.start) >> f.strideShift
            tlbRefs[c]._withUnsafeGuaranteedRef { tlb in
                var a = f.start
                while a < f.end {
                    tlb.flushPage(VirtAddr(a), asid: tag)
                    a += UInt64(1) << f.strideShift
                }
            }
            if local { counters.add(.nrTlbLocalFlushOne, Int64(n)) }
            tracer.emit(c, .tlbFlush(reason: reason, pages: Int64(n)))
        } else {
            // Full flush of this PCID (flush_tlb_local()); it brings the CPU fully up to date.
            _ = tlbRefs[c]._withUnsafeGuaranteedRef { $0.flushASID(tag) }
            f.newTLBGen = mmGen
            if local { counters.add(.nrTlbLocalFlushAll, 1) }
            tracer.emit(c, .tlbFlush(reason: reason, pages: -1))
        }
        t.ctxGen[c * tlbNrDynASIDs + slot] = f.newTLBGen
    }

    /// arm64 __flush_tlb_range() / flush_tlb_mm(): TLBI ...IS instructions are broadcast in
    /// the inner-shareable domain; every CPU drops the ASID's entries, no IPI is sent.
    func arm64FlushRange(_ mm: MM, start: UInt64, end: UInt64, strideShift: UInt64) {
        let stride = UInt64(1) << strideShift
        // __flush_tlb_range_limit_excess(): without FEAT_TLBIRANGE, MAX_DVM_OPS = PTRS_PER_PTE.
        let whole = end == .max || (end &- start) >= UInt64(Page.entriesPerTable) * stride
        let c0 = currentCPU
        if whole {
            shootdown.fullFlushes += 1
            shootdown.tlbiASID += 1
            let tag = arm64Tag(mm)
            for c in 0..<cpuCount { _ = tlbRefs[c]._withUnsafeGuaranteedRef { $0.flushASID(tag) } }
            tracer.emit(c0, .tlbFlush(reason: .localMMShootdown, pages: -1))
            return
        }
        let s = start & ~(stride - 1), e = (end + stride - 1) & ~(stride - 1)
        let tag = arm64Tag(mm)
        var a = s
        while a < e {
            shootdown.tlbiVA += 1
            for c in 0..<cpuCount { tlbRefs[c]._withUnsafeGuaranteedRef { _ = $0.flushPage(VirtAddr(a), asid: tag) } }
            a += stride
        }
        tracer.emit(c0, .tlbFlush(reason: .localMMShootdown, pages: Int64((e - s) >> Page.shift)))
    }

    // MARK: Kernel ranges

    /// flush_tlb_kernel_range(): every CPU by IPI; past the ceiling a full flush
    /// (do_flush_tlb_all(), one nr_tlb_remote_flush_received per CPU), else INVLPG per page.
    /// arm64: broadcast TLBI VAALE1IS, or TLBI VMALLE1IS past the limit.
    public func flushTLBKernelRange(start: UInt64, end: UInt64) {
        let cpu = currentCPU
        let pages = (end &- start) >> Page.shift
        let all = end == .max || pages > tunables.flushCeiling
        if arch.isX86 {
            for c in 0..<cpuCount where c != cpu {
                shootdown.ipisSent[cpu] += 1
                shootdown.ipisReceived[c] += 1
            }
        }
        for c in 0..<cpuCount {
            tlbRefs[c]._withUnsafeGuaranteedRef { tlb in
                if all {
                    _ = tlb.flushAll()
                } else {
                    _ = tlb.flushKernelRange(start: VirtAddr(start), end: VirtAddr(end))
                }
            }
            if all && arch.isX86 { counters.add(.nrTlbRemoteFlushReceived, 1) }
        }
        tracer.emit(cpu, .tlbFlush(reason: .localShootdown, pages: all ? -1 : Int64(pages)))
    }

    /// flush_tlb_all(): one nr_tlb_remote_flush, every CPU flushes everything.
    public func flushTLBAll() {
        if arch.isX86 { counters.add(.nrTlbRemoteFlush, 1) }
        flushTLBKernelRange(start: 0, end: .max)
    }
}
