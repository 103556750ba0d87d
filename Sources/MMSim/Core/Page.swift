// include/linux/mm_types.h, include/linux/page-flags.h: struct page, one 64-byte record per frame.

#if canImport(Glibc)
import Glibc
#endif

/// PG_* page flags (include/linux/page-flags.h), the subset the model uses.
public struct PageFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    @inline(__always) public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let locked = PageFlags(rawValue: 1 << 0)
    public static let referenced = PageFlags(rawValue: 1 << 2)
    public static let uptodate = PageFlags(rawValue: 1 << 3)
    public static let dirty = PageFlags(rawValue: 1 << 4)
    public static let lru = PageFlags(rawValue: 1 << 5)
    public static let head = PageFlags(rawValue: 1 << 6)
    public static let waiters = PageFlags(rawValue: 1 << 7)
    public static let active = PageFlags(rawValue: 1 << 8)
    public static let workingset = PageFlags(rawValue: 1 << 9)
    public static let ownerPriv1 = PageFlags(rawValue: 1 << 10)
    public static let owner2 = PageFlags(rawValue: 1 << 11)
    public static let arch1 = PageFlags(rawValue: 1 << 12)
    public static let reserved = PageFlags(rawValue: 1 << 13)
    public static let `private` = PageFlags(rawValue: 1 << 14)
    public static let private2 = PageFlags(rawValue: 1 << 15)
    public static let reclaim = PageFlags(rawValue: 1 << 16)
    public static let swapbacked = PageFlags(rawValue: 1 << 17)
    public static let unevictable = PageFlags(rawValue: 1 << 18)
    public static let mlocked = PageFlags(rawValue: 1 << 19)
    public static let writeback = PageFlags(rawValue: 1 << 20)
    public static let hwpoison = PageFlags(rawValue: 1 << 21)
    public static let swapcache = PageFlags(rawValue: 1 << 22)
    public static let mappedToDisk = PageFlags(rawValue: 1 << 23)
    /// Not a kernel PG_ bit: the tail page of a compound page (PageTail() is derived in the kernel).
    public static let tail = PageFlags(rawValue: 1 << 30)
}

/// Who owns a frame right now. Every frame is in exactly one of these states; the
/// invariant checker proves it. Models the kernel's page_type (PG_buddy, PG_table)
/// plus PG_reserved and "allocated to someone".
public enum PageState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Part of a MAX_PAGE_ORDER block still free since boot and never touched
    /// (the deferred part of the memmap: see `FrameTable`). Zero on purpose.
    case pristine = 0
    /// Not RAM: a hole in the physical memory map inside a present section.
    case hole
    /// Reserved by memblock at boot (PG_reserved): kernel image, memmap, firmware...
    case reserved
    /// Head of a free block in a buddy free list (PageBuddy, order in `order`).
    case buddy
    /// A tail frame of a free buddy block (no kernel marker; tracked for checking).
    case buddyTail
    /// On a per-CPU page list (free, not counted in NR_FREE_PAGES).
    case pcp
    /// A page-table page (PageTable, PG_table).
    case pageTable
    /// Allocated to a user of the page allocator (kernel or user data).
    case allocated
    /// A tail frame of an allocated higher-order block.
    case allocatedTail
    /// Isolated from the allocator (memory failure, offline).
    case isolated

    public var description: String {
        switch self {
        case .pristine: "pristine"
        case .hole: "hole"
        case .reserved: "reserved"
        case .buddy: "buddy"
        case .buddyTail: "buddy-tail"
        case .pcp: "pcp"
        case .pageTable: "page-table"
        case .allocated: "allocated"
        case .allocatedTail: "allocated-tail"
        case .isolated: "isolated"
        }
    }
}

/// struct page: the per-frame metadata, 64 bytes like the kernel's, kept in flat
/// per-section arrays indexed by PFN (see `FrameTable`). All-zero means "pristine".
public struct PageMeta {
    /// page->flags (PG_* bits).
    public var flags: PageFlags
    /// Ownership state (page_type, PG_reserved, in use).
    public var state: PageState
    /// Buddy order of a free block head, or the compound order of an allocated head.
    public var order: UInt8
    /// Zone index (the kernel keeps it in page->flags).
    public var zone: UInt8
    /// Migrate type a pcp page was freed with (the kernel stashes it in page->index).
    public var pcpMigratetype: UInt8
    /// page->_refcount
    public var refcount: Int32
    /// page_mapcount(): number of page-table mappings (_mapcount + 1).
    public var mapcount: Int32
    /// lru / buddy_list / pcp_list links, as PFNs (`FrameTable.nil` ends a list).
    public var next: UInt32
    public var prev: UInt32
    /// page->mapping as a handle (anon_vma or address_space id; 0 = none).
    public var mapping: UInt32
    /// Padding kept for later users (compound_head handle, pt_share_count...).
    public var spare: UInt32
    /// page->index (file offset in pages, or anon linear index).
    public var index: UInt64
    /// page->private
    public var priv: UInt64
    /// Host storage of the 512 entries when this frame is a page-table page.
    public var table: UnsafeMutablePointer<UInt64>?
    /// Content word of a data frame: a version or fingerprint standing in for 4 KiB of data.
    public var content: UInt64
}

/// The memmap: struct page records for every PFN, in sections of 2^15 frames
/// (SECTION_SIZE_BITS 27 as on x86-64 and arm64). A section's array is allocated
/// on first touch and filled from the boot memory map, as the kernel's
/// DEFERRED_STRUCT_PAGE_INIT fills struct pages lazily, so host memory grows with
/// the frames the simulation touches, not with the configured memory size.
public final class FrameTable {
    public static let sectionShift: UInt64 = 15
    public static let framesPerSection = 1 << Int(sectionShift)
    /// End-of-list marker for the intrusive `next`/`prev` links.
    public static let `nil`: UInt32 = .max

    /// One past the highest PFN the machine has.
    public let endPFN: UInt64
    public let sectionCount: Int
    private let sections: UnsafeMutablePointer<UnsafeMutablePointer<PageMeta>?>
    /// Fills a newly materialized section from the boot memory map.
    private let initializer: (PFN, UnsafeMutablePointer<PageMeta>) -> Void
    /// Sections whose records exist in host memory.
    public private(set) var materializedSections = 0

    /// - Parameter initializer: called once per section on first touch with the
    ///   section's first PFN and its zero-filled records, to set holes and reservations.
    public init(endPFN: UInt64, initializer: @escaping (PFN, UnsafeMutablePointer<PageMeta>) -> Void) {
        precondition(Self.framesPerSection * MemoryLayout<PageMeta>.stride == HostChunks.bytes, "a memmap section is one host chunk")
        self.endPFN = endPFN
        self.sectionCount = Int((endPFN + UInt64(Self.framesPerSection) - 1) >> Self.sectionShift)
        self.sections = .allocate(capacity: Swift.max(1, sectionCount))
        self.sections.initialize(repeating: nil, count: Swift.max(1, sectionCount))
        self.initializer = initializer
    }

    deinit {
        for s in 0..<sectionCount {
            if let p = sections[s] { HostChunks.free(UnsafeMutableRawPointer(p)) }
        }
        sections.deallocate()
        for c in tableChunks { HostChunks.free(c) }
    }

    /// pfn_to_page(): the record of `pfn`, materializing its section if needed.
    @inline(__always) public subscript(pfn: PFN) -> UnsafeMutablePointer<PageMeta> {
        let s = Int(truncatingIfNeeded: pfn.raw >> Self.sectionShift)
        let off = Int(truncatingIfNeeded: pfn.raw) & (Self.framesPerSection - 1)
        if let base = sections[s] { return base + off }
        return materialize(s) + off
    }

    /// The record of `pfn` if its section exists, else nil (never allocates).
    @inline(__always) public func peek(_ pfn: PFN) -> UnsafeMutablePointer<PageMeta>? {
        let s = Int(truncatingIfNeeded: pfn.raw >> Self.sectionShift)
        guard s < sectionCount, let base = sections[s] else { return nil }
        return base + (Int(truncatingIfNeeded: pfn.raw) & (Self.framesPerSection - 1))
    }

    /// True when `section` has host records.
    public func isMaterialized(section: Int) -> Bool { sections[section] != nil }

    /// Host bytes used by struct page records.
    public var hostBytes: Int { materializedSections * Self.framesPerSection * MemoryLayout<PageMeta>.stride }

    @inline(never) private func materialize(_ s: Int) -> UnsafeMutablePointer<PageMeta> {
        precondition(s < sectionCount, "PFN beyond the end of physical memory")
        // One section of records is exactly one host chunk (32768 x 64 bytes = 2 MiB), zeroed.
        let p = HostChunks.allocate().bindMemory(to: PageMeta.self, capacity: Self.framesPerSection)
        sections[s] = p
        materializedSections += 1
        initializer(PFN(UInt64(s) << Self.sectionShift), p)
        return p
    }

    // MARK: Page-table frame storage

    /// Host chunks carved into table storage, and the 4 KiB blocks free for reuse.
    private var tableChunks: [UnsafeMutableRawPointer] = []
    private var freeTableBlocks: [UnsafeMutablePointer<UInt64>] = []

    /// Gives `pfn` host storage for 512 zeroed entries (a new page-table page).
    @discardableResult
    public func attachTable(_ pfn: PFN) -> UnsafeMutablePointer<UInt64> {
        let page = self[pfn]
        precondition(page.pointee.table == nil, "frame \(pfn) already holds a table")
        if freeTableBlocks.isEmpty { carveTableChunk() }
        let t = freeTableBlocks.removeLast()
        t.update(repeating: 0, count: Page.entriesPerTable)
        page.pointee.table = t
        return t
    }

    /// A new host chunk cut into 512 blocks of table storage, lowest address used first.
    @inline(never) private func carveTableChunk() {
        let c = HostChunks.allocate()
        tableChunks.append(c)
        let blocks = HostChunks.bytes / (Page.entriesPerTable * MemoryLayout<UInt64>.stride)
        let base = c.bindMemory(to: UInt64.self, capacity: blocks * Page.entriesPerTable)
        for b in stride(from: blocks - 1, through: 0, by: -1) { freeTableBlocks.append(base + b * Page.entriesPerTable) }
    }

    /// Table storage released so far: a host address of an entry recorded before stays the
    /// same entry of the same table while this is unchanged (see `WalkMemo`).
    public private(set) var tableGen: UInt64 = 0

    /// Releases the table storage of `pfn` (the page-table page is being freed).
    public func detachTable(_ pfn: PFN) {
        let page = self[pfn]
        if let t = page.pointee.table { freeTableBlocks.append(t) }
        page.pointee.table = nil
        tableGen &+= 1
    }

    /// The entries of page-table page `pfn` (nil when the frame is not a table).
    @inline(__always) public func table(_ pfn: PFN) -> UnsafeMutablePointer<UInt64>? {
        guard pfn.raw < endPFN else { return nil }
        return self[pfn].pointee.table
    }
}

/// Host memory in 2 MiB chunks, straight from mmap so that they come back zeroed without
/// a memset (a fresh anonymous mapping), 2 MiB-aligned and advised MADV_HUGEPAGE so that
/// the host can back each with one transparent huge page. Measured on the project's VM:
/// 16 MiB first touched in ~10 ms with 4 KiB host pages, 1-2 ms with huge pages (20-30 ms
/// when the host has to compact first). `MMSIM_NO_HOST_THP=1` leaves out the advice.
/// Host-side only: nothing the model reports depends on it.
enum HostChunks {
    static let bytes = 2 << 20
    static let useHugePages = getenv("MMSIM_NO_HOST_THP") == nil

    static func allocate() -> UnsafeMutableRawPointer {
        #if canImport(Glibc)
        // Reserve twice the size, keep the 2 MiB-aligned middle: the host kernel can then
        // back the chunk with one transparent huge page (one fault instead of 512).
        guard let raw = mmap(nil, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { fatalError("mmsim: host out of memory (mmap of \(2 * bytes) bytes)") }
        let a = UInt(bitPattern: raw)
        let aligned = (a + UInt(bytes) - 1) & ~(UInt(bytes) - 1)
        if aligned > a { munmap(raw, Int(aligned - a)) }
        let tail = aligned + UInt(bytes), end = a + UInt(2 * bytes)
        if end > tail { munmap(UnsafeMutableRawPointer(bitPattern: tail), Int(end - tail)) }
        let p = UnsafeMutableRawPointer(bitPattern: aligned)!
        if useHugePages { madvise(p, bytes, MADV_HUGEPAGE) }
        return p
        #else
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return p
        #endif
    }

    static func free(_ p: UnsafeMutableRawPointer) {
        #if canImport(Glibc)
        munmap(p, bytes)
        #else
        p.deallocate()
        #endif
    }
}
