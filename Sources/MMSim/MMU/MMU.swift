// arch/x86/mm/tlb.c, arch/arm64/mm/context.c (the hardware side): a CPU's MMU: TLB lookup, page walk on a miss, refill.

/// One CPU: its TLB hierarchy, the page-table roots loaded in CR3 / TTBR0 (and TTBR1 on
/// arm64), the address-space tag in use, and the walker's counters.
public final class CPU {
    public let id: Int
    public let tlb: TLB
    /// Root of the user page table loaded (CR3 / TTBR0_EL1), nil when none is.
    public internal(set) var root: PFN?
    /// current: the task the model last ran on this CPU (the context of its syscalls and faults).
    public internal(set) var task: Task?
    /// Tag of the loaded address space (PCID / ASID); 0 when tagging is off.
    public internal(set) var asid = ASID(0)
    /// arm64 TTBR1_EL1: the kernel's page table, for upper-half addresses.
    public internal(set) var kernelRoot: PFN?
    /// The roots each tag was last loaded with, so cached entries can be checked against them.
    public internal(set) var rootOfASID: [ASID: PFN] = [:]
    let walker: PageWalk
    /// The walker's memo of its last walk's upper levels (host-side).
    let walkMemo = WalkMemo()
    /// Hardware page walks done and page-table entries they read.
    public internal(set) var walks: UInt64 = 0
    public internal(set) var walkReferences: UInt64 = 0
    /// Accesses that faulted (#PF / #GP, or a data/instruction abort).
    public internal(set) var faults: UInt64 = 0
    /// The PTE the last faulting walk stopped at (a 4 KiB entry not present or not
    /// permitting the access), nil when it stopped above the PTE level. Host-side only: the
    /// access loop hands it to the fault handler at once, so that the model's handler does
    /// not walk the tables a second time.
    var faultPTESlot: UnsafeMutablePointer<UInt64>?

    init(id: Int, config: MachineConfig, frames: FrameTable) {
        self.id = id
        self.tlb = TLB(geometry: config.tlb)
        self.walker = PageWalk(arch: config.arch, frames: frames)
    }
}

/// What the MMU did with one access.
public enum AccessResult: Sendable, Hashable {
    /// The access went through to this physical address.
    case ok(PhysAddr)
    /// The access faulted; the kernel's fault handler would run next.
    case fault(PageFault)

    public var physAddr: PhysAddr? {
        if case .ok(let p) = self { return p }
        return nil
    }
    public var fault: PageFault? {
        if case .fault(let f) = self { return f }
        return nil
    }
}

extension Machine {
    /// Loads a user page table on `cpu`: MOV CR3 (x86) or a TTBR0_EL1 write (arm64).
    /// With PCID/ASID tagging the entries of other tags stay; `flush` drops this tag's
    /// entries first (a PCID slot reused for another mm, or a new ASID generation). Without
    /// tagging every non-global entry is flushed, as a CR3 write without PCIDs does.
    public func loadPageTable(cpu: Int, root: PFN?, asid requested: ASID, flush: Bool = false) {
        let c = cpus[cpu]
        let asid = pcid ? requested : ASID(0)
        if !pcid {
            _ = c.tlb.flushAllNonGlobal()
        } else if flush {
            _ = c.tlb.flushASID(asid)
        }
        c.root = root
        c.asid = asid
        cpuASIDs[cpu] = asid
        if let r = root { c.rootOfASID[asid] = r } else { c.rootOfASID[asid] = nil }
    }

    /// Loads the kernel's own page table root (arm64 TTBR1_EL1).
    public func loadKernelPageTable(cpu: Int, root: PFN?) {
        cpus[cpu].kernelRoot = root
    }

    /// The MMU translating one access on `cpu`: a TLB hit returns at once; a miss (or a
    /// write through a clean cached entry) walks the page tables, which sets accessed and
    /// dirty bits as the architecture does, and fills the TLB; a failed walk is a fault.
    @inlinable @inline(__always)
    public func translate(cpu: Int, _ va: VirtAddr, _ access: AccessKind, privilege: Privilege = .user) -> AccessResult {
        let hit = tlbRefs[cpu]._withUnsafeGuaranteedRef { $0.lookup(va, asid: cpuASIDs[cpu], access: access) }
        if let t = hit, Self.permits(t.attrs, access, privilege) {
            return .ok(t.physAddr(for: va))
        }
        // A miss, a write through a clean entry, or cached permissions that forbid the
        // access: the hardware walks (and a fault drops the cached entry).
        return cpuRefs[cpu]._withUnsafeGuaranteedRef { walkAndFill($0, va, access, privilege) }
    }

    /// `translate` for the access loop of a user task: the physical address, or nil when
    /// the access faulted (the loop does not read the fault's details, so they are not
    /// built). `retry`: the access is retried after its fault was handled, and its TLB
    /// lookup is skipped when it is known to miss (`TLB.countKnownMiss`).
    @inlinable @inline(__always)
    func userTranslate(cpu: Int, _ va: VirtAddr, _ access: AccessKind, retry: Bool) -> PhysAddr? {
        let hit = tlbRefs[cpu]._withUnsafeGuaranteedRef { tlb -> Translation? in
            let asid = cpuASIDs[cpu]
            if retry && tlb.countKnownMiss(va, asid: asid, access: access) { return nil }
            return tlb.lookup(va, asid: asid, access: access)
        }
        if let t = hit, Self.permits(t.attrs, access, .user) {
            return t.physAddr(for: va)
        }
        return cpuRefs[cpu]._withUnsafeGuaranteedRef { userTranslateMiss($0, va, access) }
    }

    /// The walk half of `userTranslate`, out of line.
    @usableFromInline @inline(never)
    func userTranslateMiss(_ c: CPU, _ va: VirtAddr, _ access: AccessKind) -> PhysAddr? {
        walkAndFill(c, va, access, .user, ok: { $0 }, fault: { _ in nil })
    }

    /// The permission check a TLB hit needs (the walk computes the same from the entries).
    @inlinable @inline(__always)
    static func permits(_ a: TranslationAttrs, _ access: AccessKind, _ privilege: Privilege) -> Bool {
        // Bits the entry must have, and bits it must not, as two masks.
        let user = TranslationAttrs.user.rawValue
        var need: UInt8 = privilege == .user ? user : 0
        var forbid: UInt8 = privilege == .user ? 0 : user   // kernel on user pages: SMEP/SMAP/PAN by the walk
        if access == .write { need |= TranslationAttrs.writable.rawValue }
        if access == .execute { forbid |= TranslationAttrs.noExec.rawValue }
        return a.rawValue & need == need && a.rawValue & forbid == 0
    }

    /// The walk half of `translate`, out of line so that the hit path stays small.
    @usableFromInline @inline(never)
    func walkAndFill(_ c: CPU, _ va: VirtAddr, _ access: AccessKind, _ privilege: Privilege) -> AccessResult {
        walkAndFill(c, va, access, privilege, ok: { .ok($0) }, fault: { .fault($0) })
    }

    /// The page walk after a TLB miss: fills the TLB from a translation (`ok` gets the
    /// physical address), or raises the fault (`fault` gets it), as the hardware does.
    @inline(__always)
    func walkAndFill<R>(_ c: CPU, _ va: VirtAddr, _ access: AccessKind, _ privilege: Privilege,
                        ok: (PhysAddr) -> R, fault: (PageFault) -> R) -> R {
        guard let root = c.root ?? c.kernelRoot else {
            c.faults &+= 1
            c.faultPTESlot = nil
            // An empty root behaves like a root table of non-present entries.
            var code: UInt32 = 0
            if access == .write { code |= 2 }
            if privilege == .user { code |= 4 }
            if access == .execute { code |= 0x10 }
            return fault(PageFault(arch: arch, reason: .notPresent, level: arch.topLevel, address: va,
                                   access: access, privilege: privilege, x86ErrorCode: arch.isX86 ? code : 0,
                                   arm64ESR: 0))
        }
        let r = c.walker.walk(root: root, va: va, access: access, privilege: privilege, kernelRoot: c.kernelRoot, memo: c.walkMemo)
        c.walks &+= 1
        c.walkReferences &+= UInt64(r.memoryReferences)
        switch r.outcome {
        case .translation(let t):
            c.tlb.insert(va, asid: c.asid, translation: t, instruction: access == .execute)
            return ok(t.physAddr(for: va))
        case .fault(let f):
            // A page fault invalidates the TLB entries for the faulting address (Intel SDM
            // 4.10.4.1). A not-present fault can have none: TLBs cache only present entries.
            if f.reason != .notPresent { c.tlb.flushPage(va, asid: c.asid) }
            c.faults &+= 1
            c.faultPTESlot = r.pteSlot
            return fault(f)
        }
    }
}
