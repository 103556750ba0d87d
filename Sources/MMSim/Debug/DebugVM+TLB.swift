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
    public func checkTLBs() throws {
        for c in cpus {
            var bug: VMBug? = nil
            c.tlb.forEachEntry { e in
                guard bug == nil else { return }
                let root: PFN? = e.isGlobal ? (c.kernelRoot ?? c.root) : c.rootOfASID[e.asid]
                guard let root else { return }
                let size = e.translation.size.bytes
                if pendingTLBFlushes.contains(where: { $0.covers(e.asid, e.vpnBase, size) }) { return }
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
