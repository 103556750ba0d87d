// mm/debug.c, CONFIG_DEBUG_VM: an invariant checker any mechanism can run after every operation.

/// A broken invariant: which rule, and the state around it.
public struct VMBug: Error, CustomStringConvertible {
    /// Short name of the rule, e.g. "free-list-linkage".
    public var rule: String
    /// What was found, with the PFNs, counts and neighbours involved.
    public var detail: String
    public var description: String { "VM_BUG_ON [\(rule)]: \(detail)" }
}

extension Machine {
    /// Checks every invariant of the physical-memory model:
    /// - every frame is in exactly one state, and the states add up per zone:
    ///   managed = free (buddy + virgin) + pcp + in use (allocated, page tables);
    /// - free lists are well linked, their counts equal `nr_free`, every block is
    ///   aligned to its order, inside its zone, of the list's migrate type, with tail
    ///   frames marked, and NR_FREE_PAGES equals what the lists hold;
    /// - pcp lists hold exactly `count` pages, each in state pcp with the list's order;
    /// - allocated blocks have their tail frames; page-table frames (and only they) have
    ///   table storage, and NR_PAGETABLE counts them;
    /// - virgin blocks are aligned, inside their zone, and untouched;
    /// - the reclaim state (LRU lists, lru_add batches, swap slots, memcg charges) is
    ///   consistent: see `checkReclaim()`.
    /// Cost grows with the materialized sections, not with the configured memory.
    public func checkInvariants() throws {
        var inUse = [UInt64](repeating: 0, count: zones.count)
        var freeFrames = [UInt64](repeating: 0, count: zones.count)
        var pcpFrames = [UInt64](repeating: 0, count: zones.count)
        var tableFrames: Int64 = 0
        let frames = self.frames

        // 1. Free lists.
        for z in zones where z.isPopulated {
            var listedFree: Int64 = 0
            for order in 0...PageOrder.max.raw {
                var blocks = 0
                for mt in MigrateType.allCases {
                    for back in [false, true] {
                        let li = Zone.listIndex(order, mt, back: back)
                        let list = z.lists[li]
                        var n = 0
                        var prev = FrameTable.nil
                        var cur = list.head
                        while cur != FrameTable.nil {
                            let pfn = PFN(UInt64(cur))
                            guard z.contains(pfn) else {
                                throw VMBug(rule: "free-block-zone", detail: "pfn \(pfn) on \(z.name) order-\(order) \(mt) list lies outside the zone [\(z.startPFN), \(z.endPFN))")
                            }
                            let p = frames[pfn].pointee
                            guard p.state == .buddy, Int(p.order) == order, Int(p.spare) == li else {
                                throw VMBug(rule: "free-list-membership", detail: "pfn \(pfn) on \(z.name) order-\(order) \(mt) list has state \(p.state) order \(p.order) list \(p.spare) (expected buddy, \(order), \(li))")
                            }
                            guard p.prev == prev else {
                                throw VMBug(rule: "free-list-linkage", detail: "pfn \(pfn) prev=\(p.prev) but came from \(prev) in \(z.name) order-\(order) \(mt)")
                            }
                            guard pfn.isAligned(PageOrder(order)) else {
                                throw VMBug(rule: "free-block-alignment", detail: "free block \(pfn) of order \(order) is not aligned")
                            }
                            let blockMT = allocator.pageblockMigratetype(pfn)
                            guard blockMT == mt else {
                                throw VMBug(rule: "free-block-migratetype", detail: "free block \(pfn) order \(order) on the \(mt) list lies in a \(blockMT) pageblock")
                            }
                            if order > 0 {
                                for i in 1..<(UInt64(1) << UInt64(order)) where frames[pfn + i].pointee.state != .buddyTail {
                                    throw VMBug(rule: "free-block-tail", detail: "frame \(pfn + i) inside free block \(pfn) order \(order) has state \(frames[pfn + i].pointee.state)")
                                }
                            }
                            n += 1
                            prev = cur
                            cur = p.next
                            if n > 1 << 32 { throw VMBug(rule: "free-list-cycle", detail: "list \(li) of \(z.name) does not end") }
                        }
                        guard prev == list.tail, n == list.count else {
                            throw VMBug(rule: "free-list-count", detail: "\(z.name) order-\(order) \(mt) list: walked \(n) blocks ending at \(prev), recorded \(list.count) ending at \(list.tail)")
                        }
                        blocks += n
                        if mt != .isolate { listedFree += Int64(n) << Int64(order) }
                        freeFrames[z.index] += UInt64(n) << UInt64(order)
                    }
                }
                let virgin = order == PageOrder.max.raw ? z.virgin.count : 0
                guard blocks + virgin == z.nrFree[order] else {
                    throw VMBug(rule: "nr-free", detail: "\(z.name) free_area[\(order)].nr_free = \(z.nrFree[order]) but the lists hold \(blocks) + \(virgin) virgin blocks")
                }
            }
            // Virgin blocks.
            var virginFrames: UInt64 = 0
            for r in z.virgin.runs[z.virgin.first...] {
                guard r.start % VirginBlocks.blockPages == 0, r.end % VirginBlocks.blockPages == 0, r.start >= z.startPFN, r.end <= z.endPFN else {
                    throw VMBug(rule: "virgin-run", detail: "virgin run [\(r.start), \(r.end)) of \(z.name) is misaligned or outside [\(z.startPFN), \(z.endPFN))")
                }
                var pfn = r.start
                while pfn < r.end {
                    if let p = frames.peek(PFN(pfn)), p.pointee.state != .pristine {
                        throw VMBug(rule: "virgin-untouched", detail: "frame \(pfn) of a virgin block has state \(p.pointee.state)")
                    }
                    pfn += 1
                }
                virginFrames += r.end - r.start
            }
            guard Int(virginFrames / VirginBlocks.blockPages) == z.virgin.count else {
                throw VMBug(rule: "virgin-count", detail: "\(z.name) virgin runs hold \(virginFrames) frames but count says \(z.virgin.count) blocks")
            }
            listedFree += Int64(virginFrames)
            freeFrames[z.index] += virginFrames
            guard listedFree == z.freePages else {
                throw VMBug(rule: "nr-free-pages", detail: "\(z.name) NR_FREE_PAGES = \(z.freePages) but its free lists hold \(listedFree) pages")
            }
            // pcp lists.
            for (cpu, pcp) in z.pcp.enumerated() {
                var n = 0
                for li in 0..<PerCPUPages.listCount {
                    let order = PerCPUPages.order(ofList: li)
                    for v in z.pcpList(cpu: cpu, li) {
                        let p = frames[PFN(UInt64(v))].pointee
                        guard p.state == .pcp, Int(p.order) == order, z.contains(PFN(UInt64(v))) else {
                            throw VMBug(rule: "pcp-membership", detail: "pfn \(v) on cpu \(cpu) \(z.name) pcp list \(li) has state \(p.state) order \(p.order)")
                        }
                        n += 1 << order
                    }
                }
                guard n == pcp.count else {
                    throw VMBug(rule: "pcp-count", detail: "cpu \(cpu) \(z.name) pcp count \(pcp.count) but lists hold \(n) pages")
                }
                pcpFrames[z.index] += UInt64(n)
            }
        }
        let blocks = zones.reduce(Int64(0)) { $0 + $1.stats[VMStat.nrFreePagesBlocks.rawValue] }
        guard counters[.nrFreePagesBlocks] == blocks else {
            throw VMBug(rule: "nr-free-pages-blocks-global", detail: "vmstat nr_free_pages_blocks \(counters[.nrFreePagesBlocks]) != sum of zones \(blocks)")
        }
        guard counters[.nrFreePages] == zones.reduce(0, { $0 + $1.freePages }) else {
            throw VMBug(rule: "nr-free-pages-global", detail: "vmstat nr_free_pages \(counters[.nrFreePages]) != sum of zones \(zones.reduce(0) { $0 + $1.freePages })")
        }

        // 2. Every materialized frame: one state, consistent with its neighbours.
        for s in 0..<frames.sectionCount where frames.isMaterialized(section: s) {
            let first = UInt64(s) << FrameTable.sectionShift
            var pfn = first
            let end = min(first + UInt64(FrameTable.framesPerSection), frames.endPFN)
            while pfn < end {
                let p = frames[PFN(pfn)].pointee
                let zi = Int(p.zone)
                switch p.state {
                case .pageTable:
                    guard p.table != nil else { throw VMBug(rule: "table-storage", detail: "page-table frame \(pfn) has no entries") }
                    tableFrames += 1
                    inUse[zi] += 1
                case .allocated:
                    guard p.table == nil else { throw VMBug(rule: "table-storage", detail: "frame \(pfn) in state allocated still has table entries") }
                    let n = UInt64(1) << UInt64(p.order)
                    for i in 1..<max(n, 1) where frames[PFN(pfn + i)].pointee.state != .allocatedTail {
                        throw VMBug(rule: "allocated-tail", detail: "frame \(pfn + i) of the order-\(p.order) block at \(pfn) has state \(frames[PFN(pfn + i)].pointee.state)")
                    }
                    inUse[zi] += n
                    pfn += n
                    continue
                case .allocatedTail:
                    // A gigantic (1 GiB) hugetlb folio spans sections: its head counted it all.
                    if let (h, head) = hugetlbHead(containing: PFN(pfn)), h.isGigantic, head.raw < first {
                        pfn = min(end, head.raw + h.pagesPerHugePage)
                        continue
                    }
                    throw VMBug(rule: "allocated-tail", detail: "frame \(pfn) is a tail without a head block covering it")
                case .pristine:
                    guard zones[zi].virgin.contains(pfn) else {
                        throw VMBug(rule: "lost-frame", detail: "frame \(pfn) is pristine but in no virgin block, free list or owner")
                    }
                case .isolated:
                    // Poisoned by memory failure: still managed, owned by nobody, never freed.
                    inUse[zi] += 1
                case .buddy, .buddyTail, .pcp, .hole, .reserved:
                    break
                }
                pfn += 1
            }
        }
        guard tableFrames == counters[.nrPageTablePages] else {
            throw VMBug(rule: "nr-page-table-pages", detail: "\(tableFrames) page-table frames but nr_page_table_pages = \(counters[.nrPageTablePages])")
        }

        // 3. TLBs against the page tables.
        try checkTLBs()
        try checkHugetlb()

        // 3b. The reverse map: mapcounts equal what an rmap walk finds (Rmap.swift).
        try checkRmap()

        // 3c. Memory pressure: LRU lists and batches, swap, memcg charges (DebugVM+Reclaim.swift).
        try checkReclaim()

        // 4. Per zone: managed = free + pcp + in use (+ isolated by memory failure).
        for z in zones where z.isPopulated {
            let i = z.index
            let sum = freeFrames[i] + pcpFrames[i] + inUse[i]
            guard sum == z.managedPages else {
                throw VMBug(rule: "frame-accounting", detail: "\(z.name): managed \(z.managedPages) != free \(freeFrames[i]) + pcp \(pcpFrames[i]) + in use \(inUse[i]) (= \(sum))")
            }
        }
    }
}
