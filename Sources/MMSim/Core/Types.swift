// include/linux/mm_types.h, include/asm-generic/page.h: typed numbers (PFN, addresses, orders, ASIDs).

/// Base page geometry (4 KiB pages on every architecture mmsim models).
public enum Page {
    /// PAGE_SHIFT
    public static let shift: UInt64 = 12
    /// PAGE_SIZE
    public static let size: UInt64 = 1 << shift
    /// PAGE_MASK as an offset mask (PAGE_SIZE - 1).
    public static let offsetMask: UInt64 = size - 1
    /// Entries in one page-table page (PTRS_PER_PTE and friends with 4 KiB tables).
    public static let entriesPerTable = 512
    /// sizeof(struct page) in the kernel: the memmap costs 64 bytes per frame.
    public static let structPageBytes: UInt64 = 64
}

/// Byte-size helpers used across the model (KiB/MiB/GiB/TiB as the kernel prints them).
public enum Size {
    public static let KiB: UInt64 = 1 << 10
    public static let MiB: UInt64 = 1 << 20
    public static let GiB: UInt64 = 1 << 30
    public static let TiB: UInt64 = 1 << 40
}

/// A page frame number: physical address >> PAGE_SHIFT.
public struct PFN: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    @inline(__always) public init(_ raw: UInt64) { self.raw = raw }
    @inline(__always) public init(_ raw: Int) { self.raw = UInt64(raw) }
    /// PFN_PHYS()
    @inline(__always) public var physAddr: PhysAddr { PhysAddr(raw << Page.shift) }
    @inline(__always) public static func < (a: PFN, b: PFN) -> Bool { a.raw < b.raw }
    @inline(__always) public static func + (a: PFN, n: UInt64) -> PFN { PFN(a.raw &+ n) }
    @inline(__always) public static func - (a: PFN, n: UInt64) -> PFN { PFN(a.raw &- n) }
    /// Distance in frames from `b` to `a` (a >= b).
    @inline(__always) public static func - (a: PFN, b: PFN) -> UInt64 { a.raw &- b.raw }
    /// True when this PFN is aligned to a block of `order`.
    @inline(__always) public func isAligned(_ order: PageOrder) -> Bool { raw & (order.pages &- 1) == 0 }
    /// The buddy of a block of `order` starting here (__find_buddy_pfn()).
    @inline(__always) public func buddy(_ order: PageOrder) -> PFN { PFN(raw ^ order.pages) }
    public var description: String { "0x" + String(raw, radix: 16) }
}

/// A physical address.
public struct PhysAddr: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    @inline(__always) public init(_ raw: UInt64) { self.raw = raw }
    /// PHYS_PFN()
    @inline(__always) public var pfn: PFN { PFN(raw >> Page.shift) }
    @inline(__always) public var pageOffset: UInt64 { raw & Page.offsetMask }
    @inline(__always) public static func < (a: PhysAddr, b: PhysAddr) -> Bool { a.raw < b.raw }
    public var description: String { String(format0x: raw, width: 16) }
}

/// A virtual address (user or kernel).
public struct VirtAddr: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    @inline(__always) public init(_ raw: UInt64) { self.raw = raw }
    /// The virtual page number (address >> PAGE_SHIFT).
    @inline(__always) public var vpn: UInt64 { raw >> Page.shift }
    @inline(__always) public var pageOffset: UInt64 { raw & Page.offsetMask }
    /// Rounded down to a page (PAGE_ALIGN_DOWN).
    @inline(__always) public var pageAligned: VirtAddr { VirtAddr(raw & ~Page.offsetMask) }
    /// Index of this address into the table at `level` (pte_index(), pmd_index(), ...).
    @inline(__always) public func index(at level: PageTableLevel) -> Int {
        Int(truncatingIfNeeded: (raw >> level.shift) & 511)
    }
    @inline(__always) public static func < (a: VirtAddr, b: VirtAddr) -> Bool { a.raw < b.raw }
    @inline(__always) public static func + (a: VirtAddr, n: UInt64) -> VirtAddr { VirtAddr(a.raw &+ n) }
    public var description: String { String(format0x: raw, width: 16) }
}

/// A buddy-allocator order: a block of 2^order contiguous frames (0...MAX_PAGE_ORDER).
public struct PageOrder: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: Int
    @inline(__always) public init(_ raw: Int) { self.raw = raw }
    /// MAX_PAGE_ORDER: the largest order the buddy allocator hands out (inclusive).
    public static let max = PageOrder(10)
    /// pageblock_order: the granule of migrate types (2 MiB with 4 KiB pages).
    public static let pageblock = PageOrder(9)
    /// PAGE_ALLOC_COSTLY_ORDER
    public static let costly = PageOrder(3)
    /// Orders of the huge page sizes.
    public static let pmd = PageOrder(9)
    public static let pud = PageOrder(18)
    @inline(__always) public var pages: UInt64 { 1 << UInt64(raw) }
    @inline(__always) public var bytes: UInt64 { pages << Page.shift }
    @inline(__always) public static func < (a: PageOrder, b: PageOrder) -> Bool { a.raw < b.raw }
    public var description: String { "order-\(raw)" }
}

/// A hardware address-space tag: x86 PCID or arm64 ASID. 0 is the kernel/untagged space.
public struct ASID: Hashable, Sendable, CustomStringConvertible {
    public var raw: UInt16
    @inline(__always) public init(_ raw: UInt16) { self.raw = raw }
    public static let kernel = ASID(0)
    public var description: String { String(raw) }
}

/// The levels of a page table, leaf first. x86-64 names (PTE, PMD, PUD, P4D, PGD);
/// arm64 uses the same Linux names for its levels 3, 2, 1, 0 (and -1 with LPA2, not modelled).
public enum PageTableLevel: Int, CaseIterable, Sendable, Comparable, CustomStringConvertible {
    case pte = 0, pmd = 1, pud = 2, p4d = 3, pgd = 4
    /// Address bit at which this level's index starts.
    @inline(__always) public var shift: UInt64 { Page.shift &+ 9 &* UInt64(rawValue) }
    /// Bytes mapped by one entry of this level.
    @inline(__always) public var entrySpan: UInt64 { 1 << shift }
    public var description: String {
        switch self {
        case .pte: "PTE"
        case .pmd: "PMD"
        case .pud: "PUD"
        case .p4d: "P4D"
        case .pgd: "PGD"
        }
    }
    public static func < (a: PageTableLevel, b: PageTableLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The translation sizes a leaf entry can map.
public enum PageSize: Int, Sendable, CaseIterable, CustomStringConvertible {
    case size4K = 0, size2M = 1, size1G = 2
    @inline(__always) public var shift: UInt64 { 12 &+ 9 &* UInt64(truncatingIfNeeded: rawValue) }
    @inline(__always) public var bytes: UInt64 { 1 &<< shift }
    /// The page-table level whose leaf maps this size.
    @inline(__always) public var level: PageTableLevel { PageTableLevel(rawValue: rawValue).unsafelyUnwrapped }
    public var description: String { ["4K", "2M", "1G"][rawValue] }
}

extension String {
    /// "0x" followed by `raw` in lowercase hex, zero-padded to `width` digits.
    public init(format0x raw: UInt64, width: Int) {
        let digits = String(raw, radix: 16)
        self = "0x" + String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
    /// `raw` in lowercase hex, zero-padded to `width` digits, no prefix (as /proc/PID/maps prints).
    public init(hex raw: UInt64, width: Int) {
        let digits = String(raw, radix: 16)
        self = String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}
