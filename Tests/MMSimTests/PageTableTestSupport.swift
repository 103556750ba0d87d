// Test support: a bump page-table frame source over a FrameTable.
@testable import MMSim

/// Hands out consecutive frames from `next`; refuses after `limit` allocations (ENOMEM tests).
final class BumpFrameSource: PageTableFrameSource {
    let frames: FrameTable
    var next: UInt64
    var limit: Int?
    private(set) var allocated: [(PFN, PageTableLevel)] = []
    private(set) var freed: [(PFN, PageTableLevel)] = []

    init(frames: FrameTable, first: UInt64 = 0x100, limit: Int? = nil) {
        self.frames = frames
        self.next = first
        self.limit = limit
    }

    func allocPageTable(level: PageTableLevel) -> PFN? {
        if let l = limit, allocated.count >= l { return nil }
        let p = PFN(next)
        next += 1
        allocated.append((p, level))
        return p
    }

    func freePageTable(_ pfn: PFN, level: PageTableLevel) {
        freed.append((pfn, level))
    }

    var live: Int { allocated.count - freed.count }
}

/// A fresh frame table (256 GiB of PFNs; sections materialize on touch), source and tree.
func makeTree(_ arch: Architecture, kernel: Bool = false, limit: Int? = nil)
    -> (FrameTable, BumpFrameSource, PageTable) {
    let frames = FrameTable(endPFN: 1 << 26) { _, _ in }
    let source = BumpFrameSource(frames: frames, limit: limit)
    let pt = PageTable(arch: arch, frames: frames, source: source, kernel: kernel)!
    return (frames, source, pt)
}

/// A user read-write page, the way Linux installs one after a write fault (young, dirty).
func userRW(_ pfn: UInt64, _ size: PageSize = .size4K, accessed: Bool = true, dirty: Bool = true) -> LeafEntry {
    LeafEntry(pfn: PFN(pfn), size: size, writable: true, user: true, accessed: accessed, dirty: dirty, noExec: true)
}
