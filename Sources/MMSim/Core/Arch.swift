// arch/x86/include/asm/pgtable_types.h, arch/arm64/include/asm/pgtable-hwdef.h: the architectures and what a translation is.

/// The architectures mmsim models. Everything above the page-table format is architecture-neutral.
public enum Architecture: String, Sendable, CaseIterable, Codable {
    /// x86-64 with 4-level paging (48-bit virtual addresses), PCIDs.
    case x86_64 = "x86_64"
    /// x86-64 with 5-level paging (LA57, 57-bit virtual addresses), PCIDs.
    case x86_64_5level = "x86_64-5level"
    /// arm64 with a 4 KiB granule and 48-bit virtual addresses (4 levels), ASIDs.
    case arm64 = "arm64"

    /// Levels of page table the hardware walks.
    public var levels: Int { self == .x86_64_5level ? 5 : 4 }
    /// Width of a virtual address.
    public var vaBits: Int { self == .x86_64_5level ? 57 : 48 }
    /// The top level the walk starts at (PGD; on 4-level the P4D is folded into it).
    public var topLevel: PageTableLevel { self == .x86_64_5level ? .pgd : .p4d }
    public var isX86: Bool { self != .arm64 }
    /// Width of the hardware address-space tag: 12-bit PCID on x86-64, 16-bit ASID on arm64.
    public var asidBits: Int { isX86 ? 12 : 16 }
    /// The name `uname -m` prints.
    public var unameMachine: String { isX86 ? "x86_64" : "aarch64" }
}

/// What an access does.
public enum AccessKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case read = 0, write = 1, execute = 2
    public var description: String { ["read", "write", "execute"][Int(rawValue)] }
}

/// Privilege of the access: user mode (CPL 3 / EL0) or kernel mode (CPL 0 / EL1).
public enum Privilege: UInt8, Sendable {
    case user = 0, kernel = 1
}

/// Architecture-neutral permissions and state of a leaf translation, as a TLB caches them.
public struct TranslationAttrs: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Writes allowed (x86 RW on every level; arm64 AP[2] clear or DBM set).
    public static let writable = TranslationAttrs(rawValue: 1 << 0)
    /// User accessible (x86 US on every level; arm64 AP[1]).
    public static let user = TranslationAttrs(rawValue: 1 << 1)
    /// Instruction fetch forbidden (x86 NX on any level; arm64 UXN/PXN for the privilege).
    public static let noExec = TranslationAttrs(rawValue: 1 << 2)
    /// Global: survives address-space switches (x86 G; arm64 nG clear).
    public static let global = TranslationAttrs(rawValue: 1 << 3)
    /// The leaf's dirty bit was set when the entry was cached (x86 D; arm64 writable-clean vs dirty).
    public static let dirty = TranslationAttrs(rawValue: 1 << 4)
}

/// A leaf translation: what a page walk returns and what a TLB entry holds.
public struct Translation: Sendable, Hashable {
    /// First frame of the leaf (aligned to `size`).
    public var basePFN: PFN
    public var size: PageSize
    public var attrs: TranslationAttrs
    @inline(__always) public init(basePFN: PFN, size: PageSize, attrs: TranslationAttrs) {
        self.basePFN = basePFN
        self.size = size
        self.attrs = attrs
    }
    /// The frame that holds byte `va` under this translation.
    @inline(__always) public func pfn(for va: VirtAddr) -> PFN {
        basePFN + ((va.raw & (size.bytes &- 1)) >> Page.shift)
    }
    /// The physical address of `va` under this translation.
    @inline(__always) public func physAddr(for va: VirtAddr) -> PhysAddr {
        PhysAddr((basePFN.raw << Page.shift) | (va.raw & (size.bytes &- 1)))
    }
}

/// Where page-table pages come from: the page allocator (pagetable_alloc()/pagetable_free()),
/// which accounts them in NR_PAGETABLE. Tests may supply a simple source.
public protocol PageTableFrameSource: AnyObject {
    /// A zeroed frame for a new page-table page at `level`, or nil when memory is short (-ENOMEM).
    func allocPageTable(level: PageTableLevel) -> PFN?
    /// Gives a page-table page back (after its entries were cleared and any TLB flush done).
    func freePageTable(_ pfn: PFN, level: PageTableLevel)
}
