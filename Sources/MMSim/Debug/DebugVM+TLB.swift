// CONFIG_DEBUG_VM for the TLBs: no cached translation may disagree with the page tables
// unless a flush for it is still pending (the mmu_gather contract: unhook, flush, free).

/// A TLB invalidation the kernel has decided on but not yet carried out (tlb_flush_pending).
public struct PendingTLBFlush: Sendable, Hashable {
    /// The address-space tag, or nil for every tag (a full flush).
    public var asid: ASID?
    public var start: VirtAddr
    public var end: VirtAddr
    public init(asid: ASID?, start: VirtAddr, end: VirtAddr) {
        self.asid = asid
        self.start = start
        self.end = end
    }
    func covers(_ a: ASID, _ va: VirtAddr, _ size: UInt64) -> Bool {
        (asid == nil || asid == a) && va.raw < end.raw && va.raw &+ size > start.raw
    }
}

extension Machine {
    /// Records that entries in a range may be stale until `completePendingTLBFlushes()`.
    public func notePendingTLBFlush(_ f: PendingTLBFlush) { pendingTLBFlushes.append(f) }

    /// Every pending flush has been carried out.
    public func completePendingTLBFlushes() { pendingTLBFlushes.removeAll() }

    /// Reads the page tables from `root` for `va` without touching accessed or dirty bits
    /// (the checker's own walk, not the hardware's).
    public func probe(root: PFN, _ va: VirtAddr) -> LeafEntry? {
        var level = arch.topLevel
        var table = root
        while true {
            guard let t = frames.table(table) else { return nil }
            let raw = t[va.index(at: level)]
            switch PTEFormat.classify(raw, level: level, arch: arch) {
            case .table(let next):
                guard level != .pte else { return nil }
                table = next
                level = PageTableLevel(rawValue: level.rawValue - 1)!
            case .leaf:
                return PTEFormat.decode(raw, level: level, arch: arch)
            default:
                return nil
            }
        }
    }

    /// Every valid TLB entry of every CPU matches the page table its tag was loaded with:
    /// same frame, no more permission than the entry now grants, not dirty when the entry
    /// is clean; or a pending flush covers it.
    ///
    /// x86 keeps entries of other mms in the CPU's other PCID slots, and a lazy CPU keeps its
    /// old mm loaded while skipping flushes: such entries may be stale exactly when the slot's
    /// recorded generation is behind its mm's (the flush is owed and happens at the next
    /// switch to it), or when the mm is gone (its ctx_id never comes back).
    public func checkTLBs() throws {
        if let v = tlbViolations.first {
            throw VMBug(rule: "tlb-validator", detail: v)
        }
        let live = liveMMs()
        for c in cpus {
            var bug: VMBug? = nil
            c.tlb.forEachEntry { e in
                guard bug == nil else { return }
                var root: PFN? = e.isGlobal ? (c.kernelRoot ?? c.root) : c.rootOfASID[e.asid]
                var owner: MM? = nil
                let st = tlbs.snapshot(c.id)
                let slot = config.pcid ? Int(e.asid.raw) - 1 : 0
                // Slots the kernel never gave a user mm (ctx_id 0, or init_mm's) hold what was
                // loaded directly (loadPageTable): checked against the root loaded with them.
                if !e.isGlobal && arch.isX86 && slot >= 0 && slot < tlbNrDynASIDs && st.ctxID[slot] > MM.initMMCtxID {
                    guard let mm = live.first(where: { $0.ctxID == st.ctxID[slot] }) else { return }
                    if st.ctxGen[slot] < mm.tlbGen { return }
                    root = mm.pageTable.root
                    owner = mm
                }
                guard let root else { return }
                let size = e.translation.size.bytes
                if pendingTLBFlushes.contains(where: { $0.covers(e.asid, e.vpnBase, size) }) { return }
                if let owner, gatherCovers(owner, e.vpnBase.raw) { return }
                let leaf = probe(root: root, e.vpnBase)
                let what = "cpu \(c.id) \(e.level) entry va \(e.vpnBase) asid \(e.asid) -> pfn \(e.translation.basePFN) \(e.translation.size) \(e.translation.attrs.rawValue)"
                guard let leaf, leaf.present else {
                    bug = VMBug(rule: "tlb-stale", detail: "\(what): the page table no longer maps it and no flush is pending")
                    return
                }
                let offset = (e.vpnBase.raw & (leaf.size.bytes - 1)) >> Page.shift
                let a = e.translation.attrs
                if leaf.pfn + offset != e.translation.basePFN || leaf.size != e.leafSize {
                    bug = VMBug(rule: "tlb-stale", detail: "\(what): the page table maps pfn \(leaf.pfn + offset) (\(leaf.size)) and no flush is pending")
                } else if (a.contains(.writable) && !leaf.writable) || (a.contains(.user) && !leaf.user)
                            || (!a.contains(.noExec) && leaf.noExec) {
                    bug = VMBug(rule: "tlb-permission", detail: "\(what): grants more than the entry now does (writable \(leaf.writable), user \(leaf.user), nx \(leaf.noExec)) and no flush is pending")
                } else if a.contains(.dirty) && !leaf.dirty {
                    bug = VMBug(rule: "tlb-dirty", detail: "\(what): cached dirty but the entry was cleaned without a flush")
                }
            }
            if let bug { throw bug }
        }
    }
}

extension Machine {
    /// The mms of live tasks, each once.
    func liveMMs() -> [MM] {
        var seen = Set<ObjectIdentifier>()
        var out: [MM] = []
        for t in tasks {
            if let mm = t.mm, seen.insert(ObjectIdentifier(mm)).inserted { out.append(mm) }
        }
        return out
    }

    /// A gather in progress on `mm` still owes a flush covering `va`.
    func gatherCovers(_ mm: MM, _ va: UInt64) -> Bool {
        gathersInFlight.contains { g in g._withUnsafeGuaranteedRef { $0.mm === mm && $0.covers(va) } }
    }

    /// The TLB validator for one user access that went through to `pa`: the page table must
    /// still map `va` to that frame with the access allowed, unless a flush still allowed to
    /// be pending covers it; and the frame must not be free. A failure is recorded with the
    /// frame's and the address's recent history from the trace.
    func validateAccess(_ t: Task, _ mm: MM, _ va: UInt64, _ kind: AccessKind, _ pa: PhysAddr) {
        let pfn = pa.pfn
        let what = "\(t.name)[\(t.pid)] on cpu \(t.cpu): \(kind) at \(String(hex: va, width: 0)) used pfn \(String(hex: pfn.raw, width: 0))"
        switch frames[pfn].pointee.state {
        case .allocated, .allocatedTail, .reserved: break
        default:
            tlbViolations.append("\(what), a \(frames[pfn].pointee.state) frame (use after free)" + frameHistory(pfn))
            return
        }
        if gatherCovers(mm, va) { return }
        guard let leaf = probe(root: mm.pageTable.root, VirtAddr(va)), leaf.present else {
            tlbViolations.append("\(what), but the page table no longer maps it and no flush is pending" + frameHistory(pfn))
            return
        }
        let expect = leaf.pfn + ((va & (leaf.size.bytes - 1)) >> Page.shift)
        if expect != pfn {
            tlbViolations.append("\(what), but the page table maps pfn \(String(hex: expect.raw, width: 0))" + frameHistory(pfn))
        } else if (kind == .write && !leaf.writable) || !leaf.user {
            tlbViolations.append("\(what), but the entry no longer allows it (writable \(leaf.writable), user \(leaf.user))" + frameHistory(pfn))
        }
    }
}
