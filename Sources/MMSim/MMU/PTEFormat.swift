// arch/x86/include/asm/pgtable_types.h, arch/arm64/include/asm/pgtable-{hwdef,prot}.h: the bit formats of page-table entries, and one architecture-neutral view of a leaf.

/// The memory type of a mapping (x86 PAT entry chosen by PWT/PCD/PAT; arm64 MAIR index in AttrIndx).
///
/// x86 uses the PAT layout Linux programs in `pat_bp_init()`:
/// `PAT 0:WB 1:WC 2:UC- 3:UC 4:WB 5:WP 6:UC- 7:WT`.
/// arm64 uses the MAIR indices of arch/arm64/include/asm/memory.h:
/// MT_NORMAL 0, MT_NORMAL_TAGGED 1, MT_NORMAL_NC 2, MT_DEVICE_nGnRnE 3, MT_DEVICE_nGnRE 4.
public enum CacheMode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// _PAGE_CACHE_MODE_WB / MT_NORMAL.
    case writeBack
    /// _PAGE_CACHE_MODE_WC (PWT) / MT_NORMAL_NC.
    case writeCombining
    /// _PAGE_CACHE_MODE_UC_MINUS (PCD) / MT_DEVICE_nGnRE (what ioremap() gives on arm64).
    case uncachedMinus
    /// _PAGE_CACHE_MODE_UC (PCD|PWT) / MT_DEVICE_nGnRnE.
    case uncached
    /// _PAGE_CACHE_MODE_WT (PAT|PCD|PWT); arm64 has no WT type in 6.x: encoded as MT_NORMAL_NC.
    case writeThrough
    /// _PAGE_CACHE_MODE_WP (PAT|PWT); arm64: encoded as MT_NORMAL_NC.
    case writeProtect
    /// MT_NORMAL_TAGGED (MTE); x86: encoded as write-back.
    case tagged

    public var description: String { ["WB", "WC", "UC-", "UC", "WT", "WP", "tagged"][Int(rawValue)] }
}

/// What an entry at some level is, seen by software (pte_none(), pmd_leaf(), pte_present()...).
public enum EntryKind: Hashable, Sendable {
    /// pte_none(): all zero.
    case none
    /// Points to the next-level table in frame `PFN`.
    case table(PFN)
    /// A leaf mapping a page or a huge page (present, or PROT_NONE which pte_present() counts).
    case leaf
    /// Non-zero but not a mapping: a swap, migration or other software entry, or an encoding
    /// the hardware rejects.
    case nonPresent
}

/// An architecture-neutral leaf entry. The rest of the model reads and writes leaves through
/// this type (via `PTEFormat`) and never touches raw bits.
public struct LeafEntry: Hashable, Sendable, CustomStringConvertible {
    /// First frame mapped (aligned to `size`).
    public var pfn: PFN
    /// 4 KiB (PTE), 2 MiB (PMD leaf: x86 PS, arm64 level-2 block) or 1 GiB (PUD leaf).
    public var size: PageSize
    /// Valid to the hardware (x86 _PAGE_PRESENT, arm64 PTE_VALID).
    public var present: Bool
    /// PROT_NONE / NUMA-hinting: present to the kernel (pte_present(), pte_protnone()) but
    /// invalid to the hardware. x86: P=0 with _PAGE_PROTNONE (bit 8) and the PFN inverted
    /// (L1TF); arm64: PTE_VALID=0 with PTE_PRESENT_INVALID (bit 11), !PTE_USER, PTE_UXN.
    public var protNone: Bool
    /// pte_write(): x86 RW; arm64 PTE_WRITE (= DBM, bit 51).
    public var writable: Bool
    /// x86 US; arm64 PTE_USER (AP[1]).
    public var user: Bool
    /// pte_young(): x86 A; arm64 AF.
    public var accessed: Bool
    /// pte_dirty(): x86 D; arm64 PTE_DIRTY (software) or writable with AP[2] clear (hardware dirty).
    public var dirty: Bool
    /// x86 G; arm64 nG clear.
    public var global: Bool
    /// Instruction fetch forbidden to the mapping's owner: x86 NX; arm64 UXN for user
    /// mappings (which always carry PXN), PXN for kernel mappings (which always carry UXN).
    public var noExec: Bool
    /// pte_special(): x86 _PAGE_SPECIAL (bit 9); arm64 PTE_SPECIAL (bit 56).
    public var special: Bool
    /// x86 _PAGE_SOFT_DIRTY (bit 11). arm64 has no soft-dirty bit: always decodes false.
    public var softDirty: Bool
    public var cache: CacheMode

    public init(pfn: PFN, size: PageSize = .size4K, present: Bool = true, protNone: Bool = false,
                writable: Bool = false, user: Bool = false, accessed: Bool = false, dirty: Bool = false,
                global: Bool = false, noExec: Bool = false, special: Bool = false, softDirty: Bool = false,
                cache: CacheMode = .writeBack) {
        self.pfn = pfn
        self.size = size
        self.present = present
        self.protNone = protNone
        self.writable = writable
        self.user = user
        self.accessed = accessed
        self.dirty = dirty
        self.global = global
        self.noExec = noExec
        self.special = special
        self.softDirty = softDirty
        self.cache = cache
    }

    /// pte_present(): hardware-valid or PROT_NONE.
    @inline(__always) public var isPresentToKernel: Bool { present || protNone }

    public var description: String {
        var s = "\(size) pfn \(pfn)"
        if protNone { s += " protnone" } else if !present { s += " !present" }
        if writable { s += " W" }
        if user { s += " U" }
        if accessed { s += " A" }
        if dirty { s += " D" }
        if global { s += " G" }
        if noExec { s += " NX" }
        if special { s += " special" }
        if softDirty { s += " soft-dirty" }
        if cache != .writeBack { s += " \(cache)" }
        return s
    }
}

// MARK: - x86-64

/// x86-64 page-table entry bits (arch/x86/include/asm/pgtable_types.h, Intel SDM vol. 3A §4.5).
public enum X86PTE {
    /// _PAGE_PRESENT (bit 0)
    public static let present: UInt64 = 1 << 0
    /// _PAGE_RW (bit 1)
    public static let rw: UInt64 = 1 << 1
    /// _PAGE_USER (bit 2)
    public static let user: UInt64 = 1 << 2
    /// _PAGE_PWT (bit 3)
    public static let pwt: UInt64 = 1 << 3
    /// _PAGE_PCD (bit 4)
    public static let pcd: UInt64 = 1 << 4
    /// _PAGE_ACCESSED (bit 5)
    public static let accessed: UInt64 = 1 << 5
    /// _PAGE_DIRTY (bit 6)
    public static let dirty: UInt64 = 1 << 6
    /// _PAGE_PSE (bit 7) in PMD/PUD entries: this entry is a leaf.
    public static let pse: UInt64 = 1 << 7
    /// _PAGE_PAT (bit 7) in 4 KiB PTEs.
    public static let pat: UInt64 = 1 << 7
    /// _PAGE_GLOBAL (bit 8)
    public static let global: UInt64 = 1 << 8
    /// _PAGE_PROTNONE: bit 8 (_PAGE_BIT_GLOBAL) reused when _PAGE_PRESENT is clear.
    public static let protNone: UInt64 = 1 << 8
    /// _PAGE_SPECIAL (_PAGE_BIT_SOFTW1, bit 9)
    public static let special: UInt64 = 1 << 9
    /// _PAGE_UFFD_WP (_PAGE_BIT_SOFTW2, bit 10); carried, not modelled.
    public static let uffdWP: UInt64 = 1 << 10
    /// _PAGE_SOFT_DIRTY (_PAGE_BIT_SOFTW3, bit 11)
    public static let softDirty: UInt64 = 1 << 11
    /// _PAGE_PAT_LARGE (bit 12) in 2 MiB / 1 GiB leaves.
    public static let patLarge: UInt64 = 1 << 12
    /// Protection key bits 59-62 (ignored by the model: PKRU allows everything).
    public static let pkeyMask: UInt64 = 0xF << 59
    /// _PAGE_NX (bit 63)
    public static let nx: UInt64 = 1 << 63
    /// PTE_PFN_MASK with __PHYSICAL_MASK_SHIFT 52: bits 12-51.
    public static let pfnMask: UInt64 = 0x000F_FFFF_FFFF_F000
    /// PHYSICAL_PMD_PAGE_MASK: frame bits of a 2 MiB leaf, 21-51.
    public static let pmdPageMask: UInt64 = 0x000F_FFFF_FFE0_0000
    /// PHYSICAL_PUD_PAGE_MASK: frame bits of a 1 GiB leaf, 30-51.
    public static let pudPageMask: UInt64 = 0x000F_FFFF_C000_0000
    /// _PAGE_TABLE: P|RW|US|A|D, the intermediate entry of a user address space.
    public static let pageTable: UInt64 = present | rw | user | accessed | dirty
    /// _KERNPG_TABLE: P|RW|A|D, the intermediate entry of kernel page tables.
    public static let kernPgTable: UInt64 = present | rw | accessed | dirty
    /// __PAGE_KERNEL: P|RW|A|D|NX|G.
    public static let pageKernel: UInt64 = present | rw | accessed | dirty | global | nx
    /// PAGE_NONE: A|PROTNONE (P clear).
    public static let pageNone: UInt64 = accessed | protNone

    /// Frame bits of a leaf at `level` (PTE_PFN_MASK, PHYSICAL_PMD_PAGE_MASK, PHYSICAL_PUD_PAGE_MASK).
    @inline(__always) public static func frameMask(_ size: PageSize) -> UInt64 {
        switch size {
        case .size4K: pfnMask
        case .size2M: pmdPageMask
        case .size1G: pudPageMask
        }
    }

    /// protnone_mask(): non-zero entries without _PAGE_PRESENT keep their frame bits inverted
    /// (the L1TF mitigation, __pte_needs_invert()).
    @inline(__always) public static func invertMask(_ raw: UInt64) -> UInt64 {
        (raw != 0 && raw & present == 0) ? ~0 : 0
    }

    /// PAT index (PAT<<2 | PCD<<1 | PWT) of a cache mode under Linux's PAT programming.
    @inline(__always) static func patIndex(_ c: CacheMode) -> UInt64 {
        switch c {
        case .writeBack, .tagged: 0
        case .writeCombining: 1
        case .uncachedMinus: 2
        case .uncached: 3
        case .writeProtect: 5
        case .writeThrough: 7
        }
    }

    @inline(__always) static func cacheMode(patIndex i: UInt64) -> CacheMode {
        switch i & 7 {
        case 0, 4: .writeBack
        case 1: .writeCombining
        case 2, 6: .uncachedMinus
        case 3: .uncached
        case 5: .writeProtect
        default: .writeThrough
        }
    }

    /// pfn_pte()/pfn_pmd()/pfn_pud() with the neutral protection: the raw leaf.
    @inline(__always) public static func encode(_ e: LeafEntry) -> UInt64 {
        var v: UInt64 = 0
        if e.protNone {
            v |= protNone
        } else {
            if e.present { v |= present }
            if e.writable { v |= rw }
            if e.user { v |= user }
            if e.global { v |= global }
            if e.noExec { v |= nx }
        }
        if e.accessed { v |= accessed }
        if e.dirty { v |= dirty }
        if e.special { v |= special }
        if e.softDirty { v |= softDirty }
        let idx = patIndex(e.cache)
        if idx & 1 != 0 { v |= pwt }
        if idx & 2 != 0 { v |= pcd }
        let mask = frameMask(e.size)
        if e.size == .size4K {
            if idx & 4 != 0 { v |= pat }
        } else {
            v |= pse
            if idx & 4 != 0 { v |= patLarge }
        }
        // The frame bits go in inverted when the entry is not present (protnone_mask()).
        let frame = (e.pfn.raw << Page.shift) ^ invertMask(v | (e.pfn.raw << Page.shift))
        return v | (frame & mask)
    }

    /// pte_pfn()/pte_flags()...: the neutral view of a raw leaf of `size`.
    @inline(__always) public static func decode(_ raw: UInt64, size: PageSize) -> LeafEntry {
        let isPresent = raw & present != 0
        let isProtNone = !isPresent && raw & protNone != 0
        let pfn = ((raw ^ invertMask(raw)) & frameMask(size)) >> Page.shift
        let patBit = size == .size4K ? (raw & pat) >> 7 : (raw & patLarge) >> 12
        let idx = (patBit << 2) | ((raw & pcd) >> 3) | ((raw & pwt) >> 3)
        return LeafEntry(pfn: PFN(pfn), size: size, present: isPresent, protNone: isProtNone,
                         writable: raw & rw != 0, user: raw & user != 0,
                         accessed: raw & accessed != 0, dirty: raw & dirty != 0,
                         global: isPresent && raw & global != 0, noExec: raw & nx != 0,
                         special: raw & special != 0, softDirty: raw & softDirty != 0,
                         cache: cacheMode(patIndex: idx))
    }

    /// pud_populate()/pmd_populate(): an entry pointing at table `pfn`.
    @inline(__always) public static func tableEntry(_ pfn: PFN, kernel: Bool) -> UInt64 {
        ((pfn.raw << Page.shift) & pfnMask) | (kernel ? kernPgTable : pageTable)
    }

    /// What the entry at `level` is (pte_none(), pmd_leaf(), pte_present()).
    @inline(__always) public static func classify(_ raw: UInt64, level: PageTableLevel) -> EntryKind {
        if raw == 0 { return .none }
        let leafCapable = level == .pte || ((level == .pmd || level == .pud) && raw & pse != 0)
        if raw & present != 0 {
            return leafCapable ? .leaf : .table(PFN((raw & pfnMask) >> Page.shift))
        }
        return (raw & protNone != 0 && leafCapable) ? .leaf : .nonPresent
    }
}

// MARK: - arm64

/// arm64 stage-1 descriptor bits, 4 KiB granule, 48-bit OA (arch/arm64/include/asm/pgtable-hwdef.h
/// and pgtable-prot.h, Arm ARM D8.3). Software bits as Linux 6.10+ defines them.
public enum Arm64PTE {
    /// PTE_VALID (bit 0)
    public static let valid: UInt64 = 1 << 0
    /// PTE_TABLE_BIT (bit 1): table descriptor at levels 0-2, page descriptor at level 3;
    /// clear in a level-1/2 block (PMD_TYPE_SECT).
    public static let tableBit: UInt64 = 1 << 1
    /// PTE_TYPE_PAGE / PMD_TYPE_TABLE: bits[1:0] = 0b11.
    public static let typePage: UInt64 = 3
    /// PTE_ATTRINDX_MASK (bits 2-4)
    public static let attrIndxMask: UInt64 = 7 << 2
    /// NS (bit 5), unused by Linux at EL1.
    public static let ns: UInt64 = 1 << 5
    /// PTE_USER: AP[1] (bit 6)
    public static let user: UInt64 = 1 << 6
    /// PTE_RDONLY: AP[2] (bit 7)
    public static let rdonly: UInt64 = 1 << 7
    /// PTE_SHARED: SH[1:0] = inner shareable (bits 8-9)
    public static let shared: UInt64 = 3 << 8
    /// PTE_AF: access flag (bit 10)
    public static let af: UInt64 = 1 << 10
    /// PTE_NG: not global (bit 11)
    public static let nG: UInt64 = 1 << 11
    /// PTE_PRESENT_INVALID = PTE_NG, meaningful only when PTE_VALID is clear (Linux 6.10+).
    public static let presentInvalid: UInt64 = 1 << 11
    /// PTE_DBM (bit 51) == PTE_WRITE
    public static let dbm: UInt64 = 1 << 51
    /// PTE_CONT (bit 52)
    public static let cont: UInt64 = 1 << 52
    /// PTE_PXN (bit 53)
    public static let pxn: UInt64 = 1 << 53
    /// PTE_UXN (bit 54)
    public static let uxn: UInt64 = 1 << 54
    /// PTE_DIRTY (bit 55, software)
    public static let swDirty: UInt64 = 1 << 55
    /// PTE_SPECIAL (bit 56, software)
    public static let special: UInt64 = 1 << 56
    /// PMD_TABLE_PXN / PUD_TABLE_PXN: PXNTable (bit 59), set by Linux in user table descriptors.
    public static let pxnTable: UInt64 = 1 << 59
    /// PMD_TABLE_UXN / PUD_TABLE_UXN: UXNTable (bit 60), set by Linux in kernel table descriptors.
    public static let uxnTable: UInt64 = 1 << 60
    /// APTable[0] (bit 61): no EL0 access below this table.
    public static let apTableNoEL0: UInt64 = 1 << 61
    /// APTable[1] (bit 62): no writes below this table.
    public static let apTableRO: UInt64 = 1 << 62
    /// Output address bits 47:12 (48-bit OA, 4 KiB granule).
    public static let oaMask: UInt64 = 0x0000_FFFF_FFFF_F000
    /// Output-address field bits 49:12 (PTE_ADDR_LOW); bits 49:48 must be zero with a 48-bit PA.
    public static let oaFieldMask: UInt64 = 0x0003_FFFF_FFFF_F000
    public static let blockMask2M: UInt64 = 0x0000_FFFF_FFE0_0000
    public static let blockMask1G: UInt64 = 0x0000_FFFF_C000_0000

    /// _PROT_DEFAULT: PTE_TYPE_PAGE | PTE_AF | PTE_SHARED.
    public static let protDefault: UInt64 = typePage | af | shared
    /// PAGE_KERNEL (PROT_NORMAL without KPTI nG): _PROT_DEFAULT | PXN | UXN | WRITE | ATTRINDX(MT_NORMAL).
    public static let pageKernel: UInt64 = protDefault | pxn | uxn | dbm
    /// PAGE_READONLY: _PAGE_DEFAULT | USER | RDONLY | NG | PXN | UXN.
    public static let pageReadonly: UInt64 = protDefault | user | rdonly | nG | pxn | uxn
    /// PAGE_SHARED: PAGE_READONLY + PTE_WRITE (writable-clean).
    public static let pageShared: UInt64 = pageReadonly | dbm
    /// PAGE_NONE: (_PAGE_DEFAULT & ~VALID) | PRESENT_INVALID | RDONLY | PXN | UXN.
    public static let pageNone: UInt64 = (protDefault & ~valid) | presentInvalid | rdonly | pxn | uxn

    @inline(__always) public static func frameMask(_ size: PageSize) -> UInt64 {
        switch size {
        case .size4K: oaMask
        case .size2M: blockMask2M
        case .size1G: blockMask1G
        }
    }

    @inline(__always) static func attrIndex(_ c: CacheMode) -> UInt64 {
        switch c {
        case .writeBack: 0
        case .tagged: 1
        case .writeCombining, .writeThrough, .writeProtect: 2
        case .uncached: 3
        case .uncachedMinus: 4
        }
    }

    @inline(__always) static func cacheMode(attrIndex i: UInt64) -> CacheMode {
        switch i {
        case 0: .writeBack
        case 1: .tagged
        case 2: .writeCombining
        case 3: .uncached
        case 4: .uncachedMinus
        default: .writeBack
        }
    }

    /// pfn_pte() + pte_mkyoung()/pte_mkdirty()/pte_mkwrite()... with Linux's dirty tracking:
    /// writable = PTE_WRITE (DBM); writable-clean has AP[2] set; writable-dirty has AP[2] clear
    /// (the state the hardware leaves, as in PAGE_KERNEL); read-only-dirty keeps PTE_DIRTY.
    @inline(__always) public static func encode(_ e: LeafEntry) -> UInt64 {
        var v: UInt64 = shared | (attrIndex(e.cache) << 2)
        if e.size == .size4K { v |= tableBit }
        if e.protNone {
            // pte_modify(pte, PAGE_NONE): hardware-invalid, user/write/exec taken away.
            v |= presentInvalid | rdonly | pxn | uxn
            if e.dirty { v |= swDirty }
        } else {
            if e.present { v |= valid }
            if e.user { v |= user | pxn | (e.noExec ? uxn : 0) } else { v |= uxn | (e.noExec ? pxn : 0) }
            if !e.global { v |= nG }
            if e.writable {
                v |= dbm
                if !e.dirty { v |= rdonly }
            } else {
                v |= rdonly
                if e.dirty { v |= swDirty }
            }
        }
        if e.accessed { v |= af }
        if e.special { v |= special }
        return v | ((e.pfn.raw << Page.shift) & frameMask(e.size))
    }

    /// The neutral view of a raw leaf (pte_write(), pte_dirty() = sw || hw dirty, pte_young()...).
    @inline(__always) public static func decode(_ raw: UInt64, size: PageSize) -> LeafEntry {
        let isValid = raw & valid != 0
        let isUser = raw & user != 0
        let isProtNone = !isValid && raw & presentInvalid != 0 && !isUser && raw & uxn != 0
        let writable = raw & dbm != 0
        return LeafEntry(pfn: PFN((raw & frameMask(size)) >> Page.shift), size: size,
                         present: isValid, protNone: isProtNone,
                         writable: writable, user: isUser, accessed: raw & af != 0,
                         dirty: raw & swDirty != 0 || (writable && raw & rdonly == 0),
                         global: isValid && raw & nG == 0,
                         noExec: isUser ? raw & uxn != 0 : raw & pxn != 0,
                         special: raw & special != 0, softDirty: false,
                         cache: cacheMode(attrIndex: (raw & attrIndxMask) >> 2))
    }

    /// pmd_populate()/pud_populate()/p4d_populate(): PMD_TYPE_TABLE plus PXNTable for user
    /// tables, UXNTable for kernel (init_mm) tables.
    @inline(__always) public static func tableEntry(_ pfn: PFN, kernel: Bool) -> UInt64 {
        ((pfn.raw << Page.shift) & oaMask) | typePage | (kernel ? uxnTable : pxnTable)
    }

    /// What the descriptor at `level` is. Level 0 (`.p4d`) cannot hold a block with a 4 KiB
    /// granule; bits[1:0] = 0b01 at level 3 is reserved: both read as `.nonPresent`.
    @inline(__always) public static func classify(_ raw: UInt64, level: PageTableLevel) -> EntryKind {
        if raw == 0 { return .none }
        if raw & valid != 0 {
            let t = raw & tableBit != 0
            switch level {
            case .pte: return t ? .leaf : .nonPresent
            case .pmd, .pud: return t ? .table(PFN((raw & oaMask) >> Page.shift)) : .leaf
            case .p4d, .pgd: return t ? .table(PFN((raw & oaMask) >> Page.shift)) : .nonPresent
            }
        }
        // pte_present_invalid(): PROT_NONE or an invalidated huge entry (pmd_mkinvalid()).
        if raw & presentInvalid != 0 {
            switch level {
            case .pte: return raw & tableBit != 0 ? .leaf : .nonPresent
            case .pmd, .pud: return raw & tableBit == 0 ? .leaf : .nonPresent
            default: return .nonPresent
            }
        }
        return .nonPresent
    }
}

// MARK: - Dispatch

/// The per-architecture formats behind one interface. Every method switches on the
/// architecture (no protocol dispatch) and allocates nothing.
public enum PTEFormat {
    /// The raw leaf for `e` (its level is `e.size.level`).
    @inline(__always) public static func encode(_ e: LeafEntry, arch: Architecture) -> UInt64 {
        arch.isX86 ? X86PTE.encode(e) : Arm64PTE.encode(e)
    }

    /// The neutral view of the leaf `raw` found at `level`; nil when it is no leaf there.
    @inline(__always) public static func decode(_ raw: UInt64, level: PageTableLevel, arch: Architecture) -> LeafEntry? {
        guard classify(raw, level: level, arch: arch) == .leaf, let size = level.leafSize else { return nil }
        return arch.isX86 ? X86PTE.decode(raw, size: size) : Arm64PTE.decode(raw, size: size)
    }

    @inline(__always) public static func classify(_ raw: UInt64, level: PageTableLevel, arch: Architecture) -> EntryKind {
        arch.isX86 ? X86PTE.classify(raw, level: level) : Arm64PTE.classify(raw, level: level)
    }

    /// pte_wrprotect() of a present 4 KiB PTE: the same entry without write permission.
    /// (arm64 goes through the neutral form, which keeps hardware dirtiness in PTE_DIRTY.)
    @inline(__always)
    public static func wrprotect(_ raw: UInt64, arch: Architecture) -> UInt64 {
        if arch.isX86 { return raw & ~X86PTE.rw }
        guard var l = decode(raw, level: .pte, arch: arch) else { return raw }
        l.writable = false
        return encode(l, arch: arch)
    }

    /// What the kernel's per-entry loops (zap_pte_range(), copy_pte_range()) read from a
    /// present 4 KiB PTE, without building a LeafEntry: pte_pfn(), pte_special(),
    /// pte_dirty(), pte_write(). Nil when the hardware would not use the entry (none,
    /// swap, PROT_NONE): those go through `decode`. Same values as `decode` gives.
    @inline(__always)
    public static func presentPTE(_ raw: UInt64, arch: Architecture) -> (pfn: PFN, special: Bool, dirty: Bool, writable: Bool)? {
        if arch.isX86 {
            guard raw & X86PTE.present != 0 else { return nil }
            return (PFN((raw & X86PTE.frameMask(.size4K)) >> Page.shift), raw & X86PTE.special != 0,
                    raw & X86PTE.dirty != 0, raw & X86PTE.rw != 0)
        }
        guard raw & Arm64PTE.typePage == Arm64PTE.typePage else { return nil }
        let w = raw & Arm64PTE.dbm != 0
        return (PFN((raw & Arm64PTE.frameMask(.size4K)) >> Page.shift), raw & Arm64PTE.special != 0,
                raw & Arm64PTE.swDirty != 0 || (w && raw & Arm64PTE.rdonly == 0), w)
    }

    /// An intermediate entry pointing at table `pfn` (user or kernel page tables).
    @inline(__always) public static func tableEntry(_ pfn: PFN, kernel: Bool, arch: Architecture) -> UInt64 {
        arch.isX86 ? X86PTE.tableEntry(pfn, kernel: kernel) : Arm64PTE.tableEntry(pfn, kernel: kernel)
    }
}

extension PageTableLevel {
    /// The size a leaf at this level maps (nil above the PUD: no 512 GiB pages).
    @inline(__always) public var leafSize: PageSize? {
        switch self {
        case .pte: .size4K
        case .pmd: .size2M
        case .pud: .size1G
        default: nil
        }
    }
    /// The arm64 lookup level of a table holding entries of this level (PTE = 3 ... P4D = 0).
    @inline(__always) public var arm64LookupLevel: Int { 3 - rawValue }
    /// The next level down (nil for the PTE level).
    @inline(__always) public var below: PageTableLevel? { PageTableLevel(rawValue: rawValue - 1) }
}

extension Architecture {
    /// True when `va` is an address the MMU can translate: x86 canonical (bits 63..vaBits-1
    /// equal); arm64 48-bit with bits 63:48 all zero (TTBR0) or all one (TTBR1), untagged.
    @inline(__always) public func isCanonical(_ va: VirtAddr) -> Bool {
        if self == .arm64 { return va.raw >> 48 == 0 || va.raw >> 48 == 0xFFFF }
        let s = UInt64(64 - vaBits)
        return (Int64(bitPattern: va.raw << s) >> Int64(s)) == Int64(bitPattern: va.raw)
    }
}
