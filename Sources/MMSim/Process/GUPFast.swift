// mm/gup.c (gup_fast(), gup_fast_pgd_range() .. gup_fast_pte_range()): a lock-free page-table
// walker. It runs with interrupts off and takes no page-table lock, so it relies on the
// mmu_gather's rule that a page-table page is freed only after an RCU grace period (or an IPI
// every CPU has answered).

/// One lock-free walk in progress, driven a level at a time so a test can interleave an
/// unmap on another CPU between its reads.
public struct LockFreeWalk: Sendable, Hashable {
    public let id: Int
    public let cpu: Int
    public let va: UInt64
    /// The table the next read comes from, and its level.
    public internal(set) var table: PFN
    public internal(set) var level: PageTableLevel
    /// The walk is inside its interrupts-off section.
    public internal(set) var active = true
    /// The frame found (nil: not mapped, or the walk gave up).
    public internal(set) var result: PFN?
    /// Reads done.
    public internal(set) var reads = 0
}

extension Machine {
    /// gup_fast() begins: local_irq_save() on the task's CPU (an RCU read-side section and a
    /// CPU that cannot take IPIs), then the first read is from the mm's top-level table.
    public func lockFreeWalkBegin(_ t: Task, _ va: UInt64) -> Int? {
        guard t.state == .running, let mm = t.mm else { return nil }
        let id = lockFreeWalkers.count
        lockFreeWalkers.append(LockFreeWalk(id: id, cpu: t.cpu, va: va, table: mm.pageTable.root, level: arch.topLevel))
        rcuReadLock(cpu: t.cpu)
        return id
    }

    /// One step of the walk: read the entry for `va` in the current table. A table entry moves
    /// the walk down a level; a leaf or an empty entry ends it. Returns false once finished.
    /// Reading a frame that is no longer a page table is the bug the RCU rule prevents; it is
    /// recorded in `tlbViolations`.
    @discardableResult
    public func lockFreeWalkStep(_ id: Int) -> Bool {
        guard id >= 0 && id < lockFreeWalkers.count, lockFreeWalkers[id].active else { return false }
        var w = lockFreeWalkers[id]
        defer { lockFreeWalkers[id] = w }
        tracer.emit(w.cpu, .lockFreeRead(pfn: w.table.raw, level: w.level.rawValue))
        w.reads += 1
        guard let t = frames.table(w.table), frames[w.table].pointee.state == .pageTable else {
            tlbViolations.append("lock-free walker on cpu \(w.cpu) read pfn \(String(hex: w.table.raw, width: 0)) as a \(w.level) table for va \(String(hex: w.va, width: 0)), but the frame is \(frames[w.table].pointee.state) and no longer a page table" + frameHistory(w.table))
            w.result = nil
            w.level = .pte
            return false
        }
        let raw = t[VirtAddr(w.va).index(at: w.level)]
        switch PTEFormat.classify(raw, level: w.level, arch: arch) {
        case .table(let next) where w.level != .pte:
            w.table = next
            w.level = w.level.below!
            return true
        case .leaf:
            if let leaf = PTEFormat.decode(raw, level: w.level, arch: arch), leaf.present {
                w.result = leaf.pfn + ((w.va & (w.level.entrySpan - 1)) >> Page.shift)
            }
            return false
        default:
            return false
        }
    }

    /// gup_fast() ends: local_irq_restore(). Deferred quiescent states and the table frees
    /// waiting for this CPU's answer to the sync IPI go through now.
    public func lockFreeWalkEnd(_ id: Int) {
        guard id >= 0 && id < lockFreeWalkers.count, lockFreeWalkers[id].active else { return }
        lockFreeWalkers[id].active = false
        rcuReadUnlock(cpu: lockFreeWalkers[id].cpu)
        if !lockFreeWalkers.contains(where: \.active) {
            let waiting = tablesAwaitingIPI
            tablesAwaitingIPI.removeAll()
            for (pfn, level) in waiting { freeTablePage(pfn, level: level) }
        }
    }

    /// The whole walk at once (what `P: gup ADDR` runs): the frame mapped at `va`, if any.
    public func lockFreeWalk(_ t: Task, _ va: UInt64) -> PFN? {
        guard let id = lockFreeWalkBegin(t, va) else { return nil }
        while lockFreeWalkStep(id) {}
        lockFreeWalkEnd(id)
        return lockFreeWalkers[id].result
    }

    /// The walk `id` as it stands.
    public func lockFreeWalkState(_ id: Int) -> LockFreeWalk? {
        id >= 0 && id < lockFreeWalkers.count ? lockFreeWalkers[id] : nil
    }

    /// The trace records that concern frame `pfn`, for a violation report.
    func frameHistory(_ pfn: PFN) -> String {
        let lines = tracer.records.filter { r in
            switch r.event {
            case .clearPTE(_, _, let p), .pageFree(let p, _), .tableQueued(let p, _), .tableFree(let p, _),
                 .lockFreeRead(let p, _), .gatherBatch(_, let p, _):
                return p == pfn.raw
            default:
                return false
            }
        }.suffix(8).map { "\n    " + $0.text }
        return lines.isEmpty ? "" : "; history of the frame:" + lines.joined()
    }
}
