// include/trace/events/tlb.h, kmem.h, rcu.h: the kernel's tracepoints for TLB flushes, page
// frees and grace periods, plus the model's own for the mmu_gather (which has none in Linux).

/// Why a TLB flush ran (enum tlb_flush_reason, include/linux/mm_types.h).
public enum TLBFlushReason: Int, Sendable, Hashable {
    case onTaskSwitch = 0, remoteShootdown, localShootdown, localMMShootdown, remoteSendIPI, remoteWrongCPU

    /// The strings of TLB_FLUSH_REASON in include/trace/events/tlb.h.
    public var text: String {
        switch self {
        case .onTaskSwitch: "flush on task switch"
        case .remoteShootdown: "remote shootdown"
        case .localShootdown: "local shootdown"
        case .localMMShootdown: "local mm shootdown"
        case .remoteSendIPI: "remote ipi send"
        case .remoteWrongCPU: "remote wrong CPU"
        }
    }
}

/// One traced event. Payloads are plain values: recording one allocates nothing beyond the
/// buffer's growth.
public enum TraceEvent: Sendable, Hashable {
    /// tlb:tlb_flush; `pages` -1 is TLB_FLUSH_ALL.
    case tlbFlush(reason: TLBFlushReason, pages: Int64)
    /// A flush IPI from the traced CPU to `target` (smp_call_function_many's per-CPU send).
    case ipi(target: Int)
    /// The model's clear of a present user entry (ptep_get_and_clear_full in zap_pte_range).
    case clearPTE(mm: Int, addr: UInt64, pfn: UInt64)
    /// kmem:mm_page_free
    case pageFree(pfn: UInt64, order: Int)
    /// mmu_gather: a batch page taken (tlb_next_batch) or refused (GFP_NOWAIT failed).
    case gatherBatch(mm: Int, pfn: UInt64, count: Int)
    case gatherBatchFailed(mm: Int)
    /// mmu_gather: tlb_flush_mmu() freeing `pages` gathered slots after the TLB flush.
    case gatherFree(mm: Int, folios: Int)
    /// A page-table page handed to RCU (tlb_remove_table) and freed after the grace period.
    case tableQueued(pfn: UInt64, level: Int)
    case tableFree(pfn: UInt64, level: Int)
    /// tlb_remove_table_sync_one(): the IPI to every CPU when no table batch page could be had.
    case tableSyncIPI
    /// rcu:rcu_grace_period start / end.
    case rcuGPStart(seq: UInt64)
    case rcuGPEnd(seq: UInt64)
    /// A lock-free walker (gup_fast) read an entry of table `pfn`.
    case lockFreeRead(pfn: UInt64, level: Int)
}

/// One line of the trace buffer: a sequence number, the CPU it ran on, the event.
public struct TraceRecord: Sendable, Hashable {
    public var seq: UInt64
    public var cpu: Int
    public var event: TraceEvent

    /// The line as /sys/kernel/tracing/trace prints it, without task and timestamp columns.
    public var text: String {
        let head = "[\(cpu < 10 ? "00" : cpu < 100 ? "0" : "")\(cpu)] "
        switch event {
        case .tlbFlush(let r, let pages):
            return head + "tlb_flush: pages:\(pages) reason:\(r.text) (\(r.rawValue))"
        case .ipi(let target):
            return head + "ipi_send_cpu: cpu=\(target) callback=flush_tlb_func"
        case .clearPTE(let mm, let addr, let pfn):
            return head + "mm_pte_clear: mm=\(mm) addr=\(String(hex: addr, width: 0)) pfn=\(String(hex: pfn, width: 0))"
        case .pageFree(let pfn, let order):
            return head + "mm_page_free: pfn=\(String(hex: pfn, width: 0)) order=\(order)"
        case .gatherBatch(let mm, let pfn, let count):
            return head + "mmu_gather_batch: mm=\(mm) batch=\(count) page pfn=\(String(hex: pfn, width: 0))"
        case .gatherBatchFailed(let mm):
            return head + "mmu_gather_batch: mm=\(mm) no batch page (GFP_NOWAIT failed): flush now"
        case .gatherFree(let mm, let folios):
            return head + "mmu_gather_free: mm=\(mm) folios=\(folios)"
        case .tableQueued(let pfn, let level):
            return head + "tlb_remove_table: pfn=\(String(hex: pfn, width: 0)) level=\(level)"
        case .tableFree(let pfn, let level):
            return head + "pagetable_free: pfn=\(String(hex: pfn, width: 0)) level=\(level)"
        case .tableSyncIPI:
            return head + "tlb_remove_table_sync_one: IPI to all CPUs"
        case .rcuGPStart(let seq):
            return head + "rcu_grace_period: gp_seq=\(seq) start"
        case .rcuGPEnd(let seq):
            return head + "rcu_grace_period: gp_seq=\(seq) end"
        case .lockFreeRead(let pfn, let level):
            return head + "gup_fast_read: table pfn=\(String(hex: pfn, width: 0)) level=\(level)"
        }
    }
}

/// The trace buffer. Off by default (one branch on the hot paths). `keep` bounds it as a
/// ring, so the TLB validator can show a frame's recent history at any time.
public final class Tracer {
    public var enabled = false
    /// The most records kept (the oldest are dropped first).
    public var keep = 1 << 16
    public private(set) var records: [TraceRecord] = []
    private var nextSeq: UInt64 = 0
    /// Records before this index have been handed out by `drain()`.
    private var drained = 0

    public init() {}

    @inline(__always) public func emit(_ cpu: Int, _ e: TraceEvent) {
        guard enabled else { return }
        record(cpu, e)
    }

    @inline(never) func record(_ cpu: Int, _ e: TraceEvent) {
        records.append(TraceRecord(seq: nextSeq, cpu: cpu, event: e))
        nextSeq += 1
        if records.count > keep * 2 {
            let cut = records.count - keep
            records.removeFirst(cut)
            drained = max(0, drained - cut)
        }
    }

    /// The records emitted since the last drain.
    public func drain() -> ArraySlice<TraceRecord> {
        let r = records[drained...]
        drained = records.count
        return r
    }

    public func clear() {
        records.removeAll()
        drained = 0
    }
}
