// include/linux/mm_types.h, mm/vma.c: vm_area_struct, its flags, and the split/merge rules.

/// VM_* flags of a VMA (include/linux/mm.h).
public struct VMFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let read = VMFlags(rawValue: 0x1)
    public static let write = VMFlags(rawValue: 0x2)
    public static let exec = VMFlags(rawValue: 0x4)
    public static let shared = VMFlags(rawValue: 0x8)
    public static let mayRead = VMFlags(rawValue: 0x10)
    public static let mayWrite = VMFlags(rawValue: 0x20)
    public static let mayExec = VMFlags(rawValue: 0x40)
    public static let mayShare = VMFlags(rawValue: 0x80)
    public static let growsdown = VMFlags(rawValue: 0x100)
    public static let locked = VMFlags(rawValue: 0x2000)
    public static let dontcopy = VMFlags(rawValue: 0x20000)
    public static let account = VMFlags(rawValue: 0x100000)
    public static let noreserve = VMFlags(rawValue: 0x200000)
    public static let hugetlb = VMFlags(rawValue: 0x400000)
    public static let hugepage = VMFlags(rawValue: 0x2000_0000)
    public static let nohugepage = VMFlags(rawValue: 0x4000_0000)

    /// calc_vm_prot_bits()
    public init(prot: Prot) {
        self = []
        if prot.contains(.read) { insert(.read) }
        if prot.contains(.write) { insert(.write) }
        if prot.contains(.exec) { insert(.exec) }
    }

    /// The flags mprotect() may change.
    public static let protMask: VMFlags = [.read, .write, .exec]
}

/// What backs a VMA (and how /proc/PID/maps names it).
public enum VMAKind: Sendable, Hashable {
    case anon
    case heap
    case stack
    /// A mapping of file `FileRef` (page cache).
    case file(Int)
    /// Shared anonymous memory (shmem, "/dev/zero (deleted)").
    case shmem(Int)
}

/// vm_area_struct: one mapping [start, end) of an address space.
public struct VMA: Sendable, Hashable {
    public var start: UInt64
    public var end: UInt64
    public var flags: VMFlags
    /// vm_pgoff: offset in pages into the file, or start >> PAGE_SHIFT for anonymous memory.
    public var pgoff: UInt64
    public var kind: VMAKind
    /// The anon_vma handle once the first anonymous fault prepared it (0 = none).
    public var anonVMA: Int = 0
    /// The rmap's handle on this vm_area_struct (0 until it enters an mm; see AnonVMA.swift).
    public var id: UInt32 = 0
    /// A hugetlb mapping's reservation map id (HugetlbState.resvMaps index + 1; 0 = none).
    public var hugetlbResv: Int = 0
    /// vma->swap_readahead_info: the last swap fault's page, window and readahead hits.
    public var swapRA = SwapReadahead()

    public var length: UInt64 { end - start }
    public var pages: UInt64 { length >> Page.shift }
    public func contains(_ a: UInt64) -> Bool { a >= start && a < end }
    public var isAnonymous: Bool {
        switch kind {
        case .anon, .heap, .stack: true
        default: false
        }
    }
    public var isShared: Bool { flags.contains(.shared) }
    /// is_cow_mapping(): private and may be written.
    public var isCOW: Bool { !flags.contains(.shared) && flags.contains(.mayWrite) }
    /// The page offset of `addr` within the backing object (linear_page_index()).
    public func pgoff(of addr: UInt64) -> UInt64 { pgoff + ((addr - start) >> Page.shift) }

    /// is_mergeable_vma() + is_mergeable_anon_vma() + contiguous offsets: can `self` and
    /// `next` (directly after it) become one VMA?
    public func canMerge(with next: VMA) -> Bool {
        guard end == next.start, flags == next.flags, kind == next.kind else { return false }
        guard pgoff + pages == next.pgoff else { return false }
        // Two hugetlb mappings are two files: they never merge.
        guard hugetlbResv == next.hugetlbResv else { return false }
        return anonVMA == 0 || next.anonVMA == 0 || anonVMA == next.anonVMA
    }
}

/// The VMA's swap readahead state (SWAP_RA_VAL(): address, window, hits).
public struct SwapReadahead: Sendable, Hashable {
    public var page: UInt64 = 0
    public var win = 0
    public var hits = 0
}
