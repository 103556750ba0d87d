// Intel SDM vol. 3A ch. 4 / arch/x86/mm/fault.c, Arm ARM D8 / arch/arm64/mm/fault.c: the hardware page walk, with accessed/dirty updates and the fault the CPU would raise.

/// Control-register state that changes what the walk allows or updates.
public struct MMUControl: Hashable, Sendable {
    /// x86 CR4.SMEP: supervisor instruction fetches from user pages fault.
    public var smep = true
    /// x86 CR4.SMAP: supervisor data accesses to user pages fault unless `alignmentCheck` (stac()).
    public var smap = true
    /// x86 EFLAGS.AC, set by stac() around copy_{to,from}_user(): lifts SMAP for explicit accesses.
    public var alignmentCheck = false
    /// x86 CR0.WP: supervisor writes honour R/W (Linux always sets it).
    public var writeProtect = true
    /// arm64 TCR_EL1.HA (FEAT_HAFDBS): the walk sets AF instead of faulting.
    public var hardwareAccessFlag = true
    /// arm64 TCR_EL1.HD (FEAT_HAFDBS): a write to a DBM entry clears AP[2] instead of faulting.
    public var hardwareDirty = true
    /// arm64 PSTATE.PAN: EL1 data accesses to EL0-accessible pages fault (uaccess disables it).
    public var pan = true
    /// arm64 TCR_EL1.TBI0: bits 63:56 of TTBR0 addresses are ignored (Linux's tagged-address ABI).
    public var tbi0 = true
    /// x86 MAXPHYADDR / arm64 PARange: physical-address bits; entry address bits above are
    /// reserved (x86 #PF with RSVD) or an address size fault (arm64).
    public var physAddrBits: Int

    /// Linux's settings: SMEP, SMAP, WP, hardware AF/DBM, PAN, TBI0; 46-bit physical addresses on
    /// x86-64 (a common server MAXPHYADDR), 48 on arm64.
    public init(arch: Architecture = .x86_64) {
        physAddrBits = arch.isX86 ? 46 : 48
    }
}

/// Why a walk faulted.
public enum FaultReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// x86: not canonical, #GP (no #PF). arm64: outside both VA ranges, level-0 translation fault.
    case nonCanonical
    /// x86 P=0; arm64 descriptor invalid (translation fault at that level).
    case notPresent
    /// x86 a reserved bit set (RSVD): address bits above MAXPHYADDR, PS in a PML4E/PML5E, or
    /// reserved bits of a large-page address. arm64: output address beyond PARange (address size fault).
    case reservedBit
    /// arm64: a block descriptor at level 0 or bits[1:0] = 0b01 at level 3 (translation fault).
    case badDescriptor
    /// arm64: AF clear and hardware AF management off (access flag fault).
    case accessFlag
    /// A user-mode access to a supervisor page (x86 U/S clear at some level; arm64 AP[1] clear or APTable[0]).
    case userToSupervisor
    /// A write to a page that is not writable (x86 R/W clear at some level with CR0.WP for the kernel;
    /// arm64 AP[2] set without hardware DBM, or APTable[1]).
    case writeToReadOnly
    /// An instruction fetch from a no-execute page (x86 XD at any level; arm64 UXN/PXN, also from tables).
    case noExec
    /// x86 SMEP: a supervisor fetch from a user page.
    case smep
    /// x86 SMAP / arm64 PAN: a supervisor data access to a user page.
    case smap

    public var description: String {
        ["non-canonical", "not present", "reserved bit", "bad descriptor", "access flag",
         "user access to supervisor page", "write to read-only page", "no-exec", "SMEP", "SMAP/PAN"][Int(rawValue)]
    }
}

/// x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h, enum x86_pf_error_code).
public enum X86PF {
    /// X86_PF_PROT: 0 = not present, 1 = protection (or reserved-bit) violation.
    public static let prot: UInt32 = 1 << 0
    /// X86_PF_WRITE
    public static let write: UInt32 = 1 << 1
    /// X86_PF_USER
    public static let user: UInt32 = 1 << 2
    /// X86_PF_RSVD
    public static let rsvd: UInt32 = 1 << 3
    /// X86_PF_INSTR (set for fetches: Linux runs with EFER.NXE and usually SMEP)
    public static let instr: UInt32 = 1 << 4
    /// X86_PF_PK
    public static let pk: UInt32 = 1 << 5
}

/// arm64 ESR_ELx fields (arch/arm64/include/asm/esr.h) for the aborts a walk raises.
public enum Arm64ESR {
    /// ESR_ELx_EC_IABT_LOW / _CUR, ESR_ELx_EC_DABT_LOW / _CUR.
    public static let ecIABTLow: UInt32 = 0x20, ecIABTCur: UInt32 = 0x21
    public static let ecDABTLow: UInt32 = 0x24, ecDABTCur: UInt32 = 0x25
    public static let ecShift: UInt32 = 26
    /// ESR_ELx_IL: 32-bit instruction.
    public static let il: UInt32 = 1 << 25
    /// ESR_ELx_WNR: the data abort was a write.
    public static let wnr: UInt32 = 1 << 6
    /// ESR_ELx_FSC_ADDRSZ / _FAULT / _ACCESS / _PERM, plus the lookup level (0-3).
    public static func addressSizeFault(level: Int) -> UInt8 { UInt8(0x00 + level) }
    public static func translationFault(level: Int) -> UInt8 { UInt8(0x04 + level) }
    public static func accessFlagFault(level: Int) -> UInt8 { UInt8(0x08 + level) }
    public static func permissionFault(level: Int) -> UInt8 { UInt8(0x0C + level) }
}

/// A fault raised by the walk, with what the kernel's fault handler would receive.
public struct PageFault: Hashable, Sendable, CustomStringConvertible {
    public var arch: Architecture
    public var reason: FaultReason
    /// The level of the entry that caused it (the leaf level for permission and AF faults; the
    /// top level for non-canonical addresses).
    public var level: PageTableLevel
    public var address: VirtAddr
    public var access: AccessKind
    public var privilege: Privilege
    /// x86: the #PF error code do_user_addr_fault()/do_kern_addr_fault() see (X86PF bits); 0 for #GP.
    public var x86ErrorCode: UInt32
    /// arm64: ESR_EL1 as do_mem_abort() sees it (EC, IL, WnR, FSC); 0 on x86.
    public var arm64ESR: UInt32

    /// x86: a #GP instead of a #PF (non-canonical address).
    public var isGeneralProtection: Bool { arch.isX86 && reason == .nonCanonical }
    /// arm64: the DFSC/IFSC field (ESR_ELx_FSC).
    public var arm64FSC: UInt8 { UInt8(arm64ESR & 0x3F) }
    /// arm64 lookup level of the fault (0-3).
    public var arm64Level: Int { level.arm64LookupLevel }

    public var description: String {
        let code = arch.isX86 ? (isGeneralProtection ? "#GP" : "#PF error 0x" + String(x86ErrorCode, radix: 16))
                              : "ESR 0x" + String(arm64ESR, radix: 16) + " FSC 0x" + String(arm64FSC, radix: 16)
        return "\(reason) at \(level) for \(privilege == .user ? "user" : "kernel") \(access) of \(address): \(code)"
    }
}

/// The outcome of one hardware walk.
public enum WalkOutcome: Hashable, Sendable {
    case translation(Translation)
    case fault(PageFault)
}

/// One walk's outcome plus its cost.
public struct PageWalkResult: Hashable, Sendable {
    public var outcome: WalkOutcome
    /// Page-table entries read (one per level visited).
    public var memoryReferences: Int
    /// For a fault on a PTE (not present, or a permission fault on a 4 KiB leaf): the host
    /// address of that entry, so that the model's fault handler need not walk again to find
    /// it (a host-side shortcut: the kernel's handler walks in software). 0 otherwise.
    var pteSlotBits: UInt = 0

    init(outcome: WalkOutcome, memoryReferences: Int, pteSlot: UnsafeMutablePointer<UInt64>? = nil) {
        self.outcome = outcome
        self.memoryReferences = memoryReferences
        self.pteSlotBits = UInt(bitPattern: pteSlot)
    }

    /// The entry `pteSlotBits` names, if any.
    var pteSlot: UnsafeMutablePointer<UInt64>? { UnsafeMutablePointer(bitPattern: pteSlotBits) }

    public static func == (a: PageWalkResult, b: PageWalkResult) -> Bool {
        a.outcome == b.outcome && a.memoryReferences == b.memoryReferences
    }

    public func hash(into h: inout Hasher) {
        h.combine(outcome)
        h.combine(memoryReferences)
    }
    @inline(__always) public var translation: Translation? {
        if case .translation(let t) = outcome { return t }
        return nil
    }
    @inline(__always) public var fault: PageFault? {
        if case .fault(let f) = outcome { return f }
        return nil
    }
}

/// The hardware page-table walker of one CPU: reads the tables from the frames, computes the
/// effective permissions, sets accessed/dirty bits as the architecture does, and returns a
/// translation or the precise fault. Allocation-free; no protocol dispatch.
///
/// Accessed/dirty updates: x86 sets A in every paging-structure entry it uses on the way down
/// (even when the walk later faults) and A (+ D on a write) in the leaf only when the access is
/// allowed. arm64 with FEAT_HAFDBS sets the leaf AF, and clears AP[2] of a DBM leaf on a write,
/// only when the access is allowed.
///
/// `Translation.attrs`: `writable` and `user` are the combined rights (all levels);
/// `noExec` is for the mapping's owner (x86 XD; arm64 UXN of a user page, PXN of a kernel page);
/// `dirty` means a write needs no further walk (x86 D; arm64 AP[2] clear).
public struct PageWalk {
    public let arch: Architecture
    public let frames: FrameTable
    public var control: MMUControl {
        didSet { x86RsvdMask = Self.x86RsvdMask(control) }
    }
    /// Entry address bits above MAXPHYADDR (reserved on x86), from `control`.
    private var x86RsvdMask: UInt64

    public init(arch: Architecture, frames: FrameTable, control: MMUControl? = nil) {
        self.arch = arch
        self.frames = frames
        let c = control ?? MMUControl(arch: arch)
        self.control = c
        self.x86RsvdMask = Self.x86RsvdMask(c)
    }

    private static func x86RsvdMask(_ c: MMUControl) -> UInt64 {
        X86PTE.pfnMask & ~((1 << UInt64(c.physAddrBits)) &- 1)
    }

    /// `walk` for a CPU's MMU, with its `WalkMemo`: an x86 walk into the 2 MiB region the
    /// memo holds re-reads the upper entries it recorded instead of looking their tables up
    /// again. The outcome, the entries read, the accessed bits set and `memoryReferences`
    /// are the same as `walk`'s (no paging-structure cache is modelled: the hardware still
    /// reads every level).
    @inline(__always)
    func walk(root: PFN, va: VirtAddr, access: AccessKind, privilege: Privilege, kernelRoot: PFN?, memo: WalkMemo) -> PageWalkResult {
        switch arch {
        case .x86_64: walkX86Memo(root: root, va: va, access: access, privilege: privilege, top: 3, memo: memo)
        case .x86_64_5level: walkX86Memo(root: root, va: va, access: access, privilege: privilege, top: 4, memo: memo)
        case .arm64: walkArm64(root: root, kernelRoot: kernelRoot, va: va, access: access, privilege: privilege)
        }
    }

    /// Translates `va` for an access from `privilege`. `root` is CR3's table (x86, both halves)
    /// or TTBR0_EL1's (arm64 lower half); `kernelRoot` is TTBR1_EL1's for arm64 upper-half
    /// addresses (nil: those fault at level 0).
    @inline(__always)
    public func walk(root: PFN, va: VirtAddr, access: AccessKind, privilege: Privilege, kernelRoot: PFN? = nil) -> PageWalkResult {
        switch arch {
        case .x86_64: walkX86(root: root, va: va, access: access, privilege: privilege, top: 3)
        case .x86_64_5level: walkX86(root: root, va: va, access: access, privilege: privilege, top: 4)
        case .arm64: walkArm64(root: root, kernelRoot: kernelRoot, va: va, access: access, privilege: privilege)
        }
    }

    // MARK: x86-64

    /// The memo's shortcut (see `walk(...memo:)`): valid while the root, the 2 MiB region and
    /// every upper entry it recorded are unchanged and no table storage was released since
    /// (so the recorded entry addresses still hold those tables' entries). Equal upper
    /// entries mean an equal walk down to the PTE table, accessed bits included.
    @inline(__always)
    private func walkX86Memo(root: PFN, va: VirtAddr, access: AccessKind, privilege: Privilege, top: Int, memo m: WalkMemo) -> PageWalkResult {
        if m.root == root.raw && m.region == va.raw &>> 21 && m.gen == frames.tableGen
            && m.s0.unsafelyUnwrapped.pointee == m.v0 && m.s1.unsafelyUnwrapped.pointee == m.v1
            && m.s2.unsafelyUnwrapped.pointee == m.v2 && (top < 4 || m.s3.unsafelyUnwrapped.pointee == m.v3) {
            let refs = top &+ 1
            let p = m.pteTable.unsafelyUnwrapped + Int(truncatingIfNeeded: (va.raw &>> 12) & 511)
            let e = p.pointee
            if e & X86PTE.present == 0 {
                return x86FaultInline(.notPresent, 0, va, access, privilege, refs: refs, slot: p)
            }
            if e & x86RsvdMask != 0 {
                return x86Fault(.reservedBit, 0, va, access, privilege, refs: refs)
            }
            return x86Leaf(p, e, level: 0, rights: m.rights & e, nx: (m.nx | e & X86PTE.nx) != 0, va: va, access: access,
                           privilege: privilege, refs: refs)
        }
        return walkX86(root: root, va: va, access: access, privilege: privilege, top: top, memo: m)
    }

    @inline(__always)
    private func walkX86(root: PFN, va: VirtAddr, access: AccessKind, privilege: Privilege, top: Int, memo: WalkMemo? = nil) -> PageWalkResult {
        let s: UInt64 = top == 4 ? 7 : 16
        guard Int64(bitPattern: va.raw << s) >> Int64(s) == Int64(bitPattern: va.raw) else {
            return x86Fault(.nonCanonical, top, va, access, privilege, refs: 0)
        }
        let rsvdMask = x86RsvdMask
        memo?.root = .max       // incomplete until this walk reaches a PTE table
        var pfn = root
        var level = top
        var refs = 0
        var rights = X86PTE.rw | X86PTE.user   // AND of R/W and U/S over the levels
        var nx: UInt64 = 0                     // OR of XD over the levels
        while true {
            refs &+= 1
            guard let table = frames.table(pfn) else {
                return x86Fault(.notPresent, level, va, access, privilege, refs: refs)
            }
            let p = table + Int(truncatingIfNeeded: (va.raw >> UInt64(12 &+ 9 &* level)) & 511)
            let e = p.pointee
            if e & X86PTE.present == 0 {
                return x86Fault(.notPresent, level, va, access, privilege, refs: refs, slot: level == 0 ? p : nil)
            }
            var rsvd = e & rsvdMask
            var leaf = level == 0
            if level != 0 && e & X86PTE.pse != 0 {
                if level >= 3 {
                    rsvd |= X86PTE.pse            // PS is reserved in PML4Es and PML5Es
                } else {
                    leaf = true                   // large-page address bits below the frame are reserved
                    rsvd |= e & (level == 2 ? 0x3FFF_E000 : 0x001F_E000)
                }
            }
            if rsvd != 0 {
                return x86Fault(.reservedBit, level, va, access, privilege, refs: refs)
            }
            rights &= e
            nx |= e & X86PTE.nx
            if leaf {
                return x86Leaf(p, e, level: level, rights: rights, nx: nx != 0, va: va, access: access,
                               privilege: privilege, refs: refs)
            }
            if e & X86PTE.accessed == 0 { p.pointee = e | X86PTE.accessed }
            if let m = memo {
                // Record the upper entry as it now stands; at the PTE table, the memo is whole.
                m.record(top &- level, p, e | X86PTE.accessed)
                if level == 1 {
                    m.fill(root: root.raw, region: va.raw &>> 21, gen: frames.tableGen, rights: rights, nx: nx,
                           pteTable: frames.table(PFN((e & X86PTE.pfnMask) >> Page.shift)))
                }
            }
            pfn = PFN((e & X86PTE.pfnMask) >> Page.shift)
            level &-= 1
        }
    }

    @inline(__always)
    private func x86Leaf(_ p: UnsafeMutablePointer<UInt64>, _ e: UInt64, level: Int, rights: UInt64, nx: Bool,
                         va: VirtAddr, access: AccessKind, privilege: Privilege, refs: Int) -> PageWalkResult {
        let writable = rights & X86PTE.rw != 0
        let user = rights & X86PTE.user != 0
        var reason: FaultReason? = nil
        switch (privilege, access) {
        case (.user, _) where !user: reason = .userToSupervisor
        case (.user, .execute): if nx { reason = .noExec }
        case (.user, .write): if !writable { reason = .writeToReadOnly }
        case (.user, .read): break
        case (.kernel, .execute):
            if user && control.smep { reason = .smep } else if nx { reason = .noExec }
        case (.kernel, _):
            if user && control.smap && !control.alignmentCheck { reason = .smap }
            else if access == .write && !writable && control.writeProtect { reason = .writeToReadOnly }
        }
        if let r = reason { return x86Fault(r, level, va, access, privilege, refs: refs, slot: level == 0 ? p : nil) }
        let n = e | X86PTE.accessed | (access == .write ? X86PTE.dirty : 0)
        if n != e { p.pointee = n }
        let size: PageSize = level == 0 ? .size4K : (level == 1 ? .size2M : .size1G)
        var attrs: TranslationAttrs = []
        if writable { attrs.insert(.writable) }
        if user { attrs.insert(.user) }
        if nx { attrs.insert(.noExec) }
        if n & X86PTE.global != 0 { attrs.insert(.global) }
        if n & X86PTE.dirty != 0 { attrs.insert(.dirty) }
        return PageWalkResult(outcome: .translation(Translation(basePFN: PFN((n & X86PTE.frameMask(size)) >> Page.shift),
                                                                size: size, attrs: attrs)),
                              memoryReferences: refs)
    }

    @inline(never)
    private func x86Fault(_ reason: FaultReason, _ level: Int, _ va: VirtAddr, _ access: AccessKind,
                          _ privilege: Privilege, refs: Int, slot: UnsafeMutablePointer<UInt64>? = nil) -> PageWalkResult {
        x86FaultInline(reason, level, va, access, privilege, refs: refs, slot: slot)
    }

    /// `x86Fault`, inlined where the fault is the common case (a PTE not present).
    @inline(__always)
    private func x86FaultInline(_ reason: FaultReason, _ level: Int, _ va: VirtAddr, _ access: AccessKind,
                                _ privilege: Privilege, refs: Int, slot: UnsafeMutablePointer<UInt64>? = nil) -> PageWalkResult {
        var code: UInt32 = 0
        if reason != .nonCanonical {
            if access == .write { code |= X86PF.write }
            if access == .execute { code |= X86PF.instr }
            if privilege == .user { code |= X86PF.user }
            if reason != .notPresent { code |= X86PF.prot }
            if reason == .reservedBit { code |= X86PF.rsvd }
        }
        let f = PageFault(arch: arch, reason: reason, level: PageTableLevel(rawValue: level)!, address: va,
                          access: access, privilege: privilege, x86ErrorCode: code, arm64ESR: 0)
        return PageWalkResult(outcome: .fault(f), memoryReferences: refs, pteSlot: slot)
    }

    // MARK: arm64

    @inline(__always)
    private func walkArm64(root: PFN, kernelRoot: PFN?, va: VirtAddr, access: AccessKind, privilege: Privilege) -> PageWalkResult {
        // VA[55] selects TTBR1 (upper) or TTBR0 (lower); the bits above VA_BITS must match it.
        var pfn: PFN
        if va.raw & (1 << 55) != 0 {
            guard va.raw >> 48 == 0xFFFF, let k = kernelRoot else {
                return arm64Fault(.nonCanonical, 3, va, access, privilege, refs: 0)
            }
            pfn = k
        } else {
            let high = control.tbi0 ? (va.raw >> 48) & 0xFF : va.raw >> 48
            guard high == 0 else { return arm64Fault(.nonCanonical, 3, va, access, privilege, refs: 0) }
            pfn = root
        }
        let oaRes = Arm64PTE.oaFieldMask & ~((1 << UInt64(control.physAddrBits)) &- 1)
        var level = 3            // PageTableLevel raw value: .p4d = lookup level 0
        var refs = 0
        var tableBits: UInt64 = 0  // OR of APTable/UXNTable/PXNTable over the table descriptors
        while true {
            refs &+= 1
            guard let table = frames.table(pfn) else {
                return arm64Fault(.notPresent, level, va, access, privilege, refs: refs)
            }
            let p = table + Int(truncatingIfNeeded: (va.raw >> UInt64(12 &+ 9 &* level)) & 511)
            let d = p.pointee
            if d & Arm64PTE.valid == 0 {
                return arm64Fault(.notPresent, level, va, access, privilege, refs: refs, slot: level == 0 ? p : nil)
            }
            let isTable = d & Arm64PTE.tableBit != 0
            if level == 0 ? !isTable : (!isTable && level == 3) {
                return arm64Fault(.badDescriptor, level, va, access, privilege, refs: refs)
            }
            if d & oaRes != 0 {
                return arm64Fault(.reservedBit, level, va, access, privilege, refs: refs)
            }
            if level == 0 || !isTable {
                return arm64Leaf(p, d, level: level, tableBits: tableBits, va: va, access: access,
                                 privilege: privilege, refs: refs)
            }
            tableBits |= d
            pfn = PFN((d & Arm64PTE.oaMask) >> Page.shift)
            level &-= 1
        }
    }

    @inline(__always)
    private func arm64Leaf(_ p: UnsafeMutablePointer<UInt64>, _ d: UInt64, level: Int, tableBits: UInt64,
                           va: VirtAddr, access: AccessKind, privilege: Privilege, refs: Int) -> PageWalkResult {
        // The access flag fault takes priority over permission faults.
        if d & Arm64PTE.af == 0 && !control.hardwareAccessFlag {
            return arm64Fault(.accessFlag, level, va, access, privilege, refs: refs)
        }
        let userPage = d & Arm64PTE.user != 0
        let user = userPage && tableBits & Arm64PTE.apTableNoEL0 == 0
        let leafRO = d & Arm64PTE.rdonly != 0
        let dbmWrite = leafRO && d & Arm64PTE.dbm != 0 && control.hardwareDirty
        let writable = tableBits & Arm64PTE.apTableRO == 0 && (!leafRO || dbmWrite)
        let uxn = (d | tableBits) & (Arm64PTE.uxn | Arm64PTE.uxnTable) != 0
        // PXN, PXNTable, and the implicit PXN of a page writable at EL0 (AP[2:1] = 0b01).
        let pxn = (d | tableBits) & (Arm64PTE.pxn | Arm64PTE.pxnTable) != 0 || (userPage && !leafRO)
        var reason: FaultReason? = nil
        switch (privilege, access) {
        case (.user, .execute): if uxn { reason = user ? .noExec : .userToSupervisor }
        case (.user, _):
            if !user { reason = .userToSupervisor } else if access == .write && !writable { reason = .writeToReadOnly }
        case (.kernel, .execute): if pxn { reason = .noExec }
        case (.kernel, _):
            if user && control.pan { reason = .smap }
            else if access == .write && !writable { reason = .writeToReadOnly }
        }
        if let r = reason { return arm64Fault(r, level, va, access, privilege, refs: refs, slot: level == 0 ? p : nil) }
        var n = d | Arm64PTE.af
        if access == .write && leafRO { n &= ~Arm64PTE.rdonly }   // hardware DBM: now dirty
        if n != d { p.pointee = n }
        let size: PageSize = level == 0 ? .size4K : (level == 1 ? .size2M : .size1G)
        var attrs: TranslationAttrs = []
        if writable { attrs.insert(.writable) }
        if user { attrs.insert(.user) }
        if userPage ? uxn : pxn { attrs.insert(.noExec) }
        if n & Arm64PTE.nG == 0 { attrs.insert(.global) }
        if writable && n & Arm64PTE.rdonly == 0 { attrs.insert(.dirty) }
        return PageWalkResult(outcome: .translation(Translation(basePFN: PFN((n & Arm64PTE.frameMask(size)) >> Page.shift),
                                                                size: size, attrs: attrs)),
                              memoryReferences: refs)
    }

    @inline(never)
    private func arm64Fault(_ reason: FaultReason, _ level: Int, _ va: VirtAddr, _ access: AccessKind,
                            _ privilege: Privilege, refs: Int, slot: UnsafeMutablePointer<UInt64>? = nil) -> PageWalkResult {
        let lookup = 3 - level
        let fsc: UInt8
        switch reason {
        case .nonCanonical, .notPresent, .badDescriptor: fsc = Arm64ESR.translationFault(level: lookup)
        case .reservedBit: fsc = Arm64ESR.addressSizeFault(level: lookup)
        case .accessFlag: fsc = Arm64ESR.accessFlagFault(level: lookup)
        default: fsc = Arm64ESR.permissionFault(level: lookup)
        }
        let ec: UInt32 = access == .execute ? (privilege == .user ? Arm64ESR.ecIABTLow : Arm64ESR.ecIABTCur)
                                            : (privilege == .user ? Arm64ESR.ecDABTLow : Arm64ESR.ecDABTCur)
        let esr = ec << Arm64ESR.ecShift | Arm64ESR.il | (access == .write ? Arm64ESR.wnr : 0) | UInt32(fsc)
        let f = PageFault(arch: arch, reason: reason, level: PageTableLevel(rawValue: level)!, address: va,
                          access: access, privilege: privilege, x86ErrorCode: 0, arm64ESR: esr)
        return PageWalkResult(outcome: .fault(f), memoryReferences: refs, pteSlot: slot)
    }
}

/// The upper entries (PML5E/PML4E, PDPTE, PDE) of one CPU's last x86 walk that reached a
/// PTE table: where they are in host memory, their values, the PTE table, and the rights
/// they grant. Host-side only (see `PageWalk.walk(...memo:)`); an empty memo never matches.
final class WalkMemo {
    var root: UInt64 = .max
    var region: UInt64 = .max
    var gen: UInt64 = .max
    var s0: UnsafeMutablePointer<UInt64>?, s1: UnsafeMutablePointer<UInt64>?
    var s2: UnsafeMutablePointer<UInt64>?, s3: UnsafeMutablePointer<UInt64>?
    var v0: UInt64 = 0, v1: UInt64 = 0, v2: UInt64 = 0, v3: UInt64 = 0
    var pteTable: UnsafeMutablePointer<UInt64>?
    var rights: UInt64 = 0
    var nx: UInt64 = 0

    /// Entry `i` from the top of the walk.
    @inline(__always) func record(_ i: Int, _ p: UnsafeMutablePointer<UInt64>, _ v: UInt64) {
        switch i {
        case 0: s0 = p; v0 = v
        case 1: s1 = p; v1 = v
        case 2: s2 = p; v2 = v
        default: s3 = p; v3 = v
        }
    }

    @inline(__always) func fill(root: UInt64, region: UInt64, gen: UInt64, rights: UInt64, nx: UInt64,
                                pteTable: UnsafeMutablePointer<UInt64>?) {
        guard let t = pteTable else { return }
        self.root = root
        self.region = region
        self.gen = gen
        self.rights = rights
        self.nx = nx
        self.pteTable = t
    }
}
