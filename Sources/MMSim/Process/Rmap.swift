// mm/rmap.c (second half): folio->mapping, mapcounts, rmap_walk() and its users
// folio_referenced() and try_to_unmap(); software PTEs (migration, hwpoison entries).

/// page->mapping as the model stores it: 0 = none, the low bits a handle, the top bits
/// what kind (the kernel tags an anon_vma pointer with PAGE_MAPPING_ANON in bit 0).
public enum PageMapping {
    public static let anonTag: UInt32 = 0x8000_0000
    public static let fileTag: UInt32 = 0x2000_0000
    public static let shmemTag: UInt32 = 0x4000_0000
    public static let handleMask: UInt32 = 0x0FFF_FFFF

    /// folio->mapping = anon_vma | PAGE_MAPPING_ANON
    @inline(__always) public static func anon(_ handle: Int) -> UInt32 { anonTag | UInt32(truncatingIfNeeded: handle) }
    /// folio_test_anon()
    @inline(__always) public static func isAnon(_ m: UInt32) -> Bool { m & anonTag != 0 }
}

/// Non-present software PTEs (include/linux/swapops.h): a type and an offset. Types as in
/// include/linux/swap.h with every option on: MAX_SWAPFILES = 32 - 4 device - 3 migration
/// - 1 hwpoison - 1 marker = 23.
public enum SoftEntryType: UInt64, Sendable {
    case hwpoison = 23
    case migrationRead = 24
    case migrationReadExclusive = 25
    case migrationWrite = 26
}

public enum SoftEntry {
    /// __swp_entry() + swp_entry_to_pte(): x86-64 keeps the type in bits 59-63 and the
    /// offset inverted from bit 9 (L1TF); arm64 the type in bits 3-7 and the offset from bit 12.
    /// Present and PROT_NONE bits stay clear, so the MMU and pte_present() ignore it.
    public static func make(_ type: SoftEntryType, offset: UInt64, arch: Architecture) -> UInt64 {
        make(rawType: type.rawValue, offset: offset, arch: arch)
    }

    /// `make` for any type number (swap areas are types 0 ..< MAX_SWAPFILES).
    public static func make(rawType: UInt64, offset: UInt64, arch: Architecture) -> UInt64 {
        if arch.isX86 { return (rawType << 59) | ((~offset << 14) >> 5) }
        return (rawType << 3) | ((offset << 12) & 0x3FFF_FFFF_FFFF_F000)
    }

    /// pte_to_swp_entry() of a swap PTE (is_swap_pte() with a swap type): area and slot.
    @inline(__always) public static func decodeSwap(_ raw: UInt64, arch: Architecture) -> SwapEntry? {
        guard raw != 0, PTEFormat.classify(raw, level: .pte, arch: arch) == .nonPresent else { return nil }
        let t = arch.isX86 ? raw >> 59 : (raw >> 3) & 0x1F
        guard t < UInt64(SwapState.maxSwapfiles) else { return nil }
        let off = arch.isX86 ? (~(raw << 5) >> 14) & ((1 << 50) - 1) : (raw & 0x3FFF_FFFF_FFFF_F000) >> 12
        return SwapEntry(type: Int(t), offset: Int(off))
    }

    /// swp_entry_to_pte() of a swap slot.
    @inline(__always) public static func swapPTE(_ e: SwapEntry, arch: Architecture) -> UInt64 {
        make(rawType: UInt64(e.type), offset: UInt64(e.offset), arch: arch)
    }

    /// pte_to_swp_entry(): type and offset of a non-present, non-none entry.
    public static func decode(_ raw: UInt64, arch: Architecture) -> (type: SoftEntryType, offset: UInt64)? {
        guard raw != 0, PTEFormat.classify(raw, level: .pte, arch: arch) == .nonPresent else { return nil }
        if arch.isX86 {
            guard let t = SoftEntryType(rawValue: raw >> 59) else { return nil }
            return (t, (~(raw << 5) >> 14) & ((1 << 50) - 1))
        }
        guard let t = SoftEntryType(rawValue: (raw >> 3) & 0x1F) else { return nil }
        return (t, (raw & 0x3FFF_FFFF_FFFF_F000) >> 12)
    }
}

/// One place a folio is mapped: what page_vma_mapped_walk() stops at.
public struct RmapHit {
    public let mm: MM
    public let vmaIndex: Int
    public let address: UInt64
    /// .pte, or .pmd for a PMD-mapped THP.
    public let level: PageTableLevel
    public let slot: UnsafeMutablePointer<UInt64>
}

extension Machine {
    // MARK: Large folios

    /// folio->_entire_mapcount + 1 (PMD mappings), kept in the first tail page as the kernel does.
    public func entireMapcount(_ head: PFN) -> Int32 { frames[head + 1].pointee.mapcount }
    /// folio->_large_mapcount + 1 (every mapping of any part of the folio).
    public func largeMapcount(_ head: PFN) -> Int32 { Int32(bitPattern: frames[head + 1].pointee.spare) }
    func addLargeMapcount(_ head: PFN, entire: Int32, large: Int32) {
        let t = frames[head + 1]
        t.pointee.mapcount &+= entire
        t.pointee.spare = UInt32(bitPattern: Int32(bitPattern: t.pointee.spare) &+ large)
    }

    /// The head of the folio `pfn` belongs to (compound_head()), with its order.
    public func folioHead(_ pfn: PFN) -> (head: PFN, order: Int) {
        let p = frames[pfn].pointee
        if p.state == .allocated { return (pfn, Int(p.order)) }
        if p.state == .allocatedTail {
            var order = 1
            while order <= PageOrder.max.raw {
                let h = PFN(pfn.raw & ~((UInt64(1) << UInt64(order)) - 1))
                let hp = frames[h].pointee
                if hp.state == .allocated && Int(hp.order) >= order { return (h, Int(hp.order)) }
                order += 1
            }
        }
        return (pfn, 0)
    }

    /// folio_mapcount(): every page-table mapping of the folio.
    public func folioMapcount(_ pfn: PFN) -> Int {
        let (head, order) = folioHead(pfn)
        if order > 0 && frames[head].pointee.flags.contains(.head) { return Int(largeMapcount(head)) }
        return Int(frames[head].pointee.mapcount)
    }

    /// folio_move_anon_rmap(): an anonymous folio now exclusively owned through `vma` moves to
    /// that VMA's own anon_vma (do_wp_page() on reuse), so later walks start lower in the tree.
    func moveAnonRmap(_ pfn: PFN, _ vma: VMA) {
        guard vma.anonVMA != 0 else { return }
        frames[pfn].pointee.mapping = PageMapping.anon(vma.anonVMA)
    }

    // MARK: rmap_walk

    /// rmap_walk(): every mapping of the folio holding `pfn`. Anonymous folios walk the
    /// chains of their anon_vma (rmap_walk_anon(), under the root's rwsem), file and shmem
    /// folios the i_mmap of their address_space (rmap_walk_file(), under i_mmap_rwsem);
    /// for each VMA covering the folio's index, page_vma_mapped_walk() looks at the page
    /// table (under its lock). `visit` returns false to stop the walk.
    /// Returns the number of mappings visited.
    @discardableResult
    public func rmapWalk(_ pfn: PFN, _ visit: (RmapHit) -> Bool = { _ in true }) -> Int {
        let (head, _) = folioHead(pfn)
        let pgoff = frames[head].pointee.index + (pfn - head)
        var found = 0
        rmapForEachVMA(head, pgoff: pgoff) { id in
            guard let (mm, i, addr) = vmaAddress(id, pgoff: pgoff),
                  let pmd = mm.pageTable.slot(VirtAddr(addr), level: .pmd) else { return true }
            rmap.locks.acquire(.pageTableLock)
            defer { rmap.locks.release(.pageTableLock) }
            switch PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch) {
            case .leaf:
                guard let l = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch), l.pfn == head else { return true }
                found += 1
                let haddr = addr & ~(PageTableLevel.pmd.entrySpan - 1)
                return visit(RmapHit(mm: mm, vmaIndex: i, address: haddr, level: .pmd, slot: pmd))
            case .table(let t):
                guard let table = frames.table(t) else { return true }
                let slot = table + VirtAddr(addr).index(at: .pte)
                guard let l = presentOrProtNone(slot.pointee), l.pfn == pfn, !(l.special && l.pfn == zeroPage) else { return true }
                found += 1
                return visit(RmapHit(mm: mm, vmaIndex: i, address: addr, level: .pte, slot: slot))
            default:
                return true
            }
        }
        return found
    }

    /// The VMA-finding half of rmap_walk_anon()/rmap_walk_file(): every VMA that may map the
    /// folio at `head` (its anon_vma's chains under the root's rwsem, or its address_space's
    /// i_mmap under i_mmap_rwsem), by identity. `body` returns false to stop.
    func rmapForEachVMA(_ head: PFN, pgoff: UInt64? = nil, _ body: (UInt32) -> Bool) {
        let mapping = frames[head].pointee.mapping
        guard mapping != 0 else { return }
        // [pgoff_start, pgoff_end] of the folio (or of the one page asked about).
        let first = pgoff ?? frames[head].pointee.index
        let last = pgoff ?? (first + (UInt64(1) << UInt64(folioHead(head).order)) - 1)
        if PageMapping.isAnon(mapping) {
            let av = Machine.anonIndex(Int(mapping & PageMapping.handleMask))
            guard av >= 0, Int(av) < rmap.anonVMAs.count, rmap.anonVMAs[Int(av)].nextFree == -2 else { return }
            rmap.locks.acquire(.anonVMARootRwsem)
            defer { rmap.locks.release(.anonVMARootRwsem) }
            let tree = rmap.tree
            tree.forEachOverlap(rmap.anonVMAs[Int(av)].treeRoot, first, last) { n in body(tree.nodes[Int(n)].payload) }
        } else {
            let key: Int32 = mapping & PageMapping.shmemTag != 0
                ? Int32(mapping & PageMapping.handleMask) * 2 + 1 : Int32(mapping & PageMapping.handleMask) * 2
            guard Int(key) < rmap.iMmap.count else { return }
            rmap.locks.acquire(.iMmapRwsem)
            defer { rmap.locks.release(.iMmapRwsem) }
            let tree = rmap.tree
            tree.forEachOverlap(rmap.iMmap[Int(key)].treeRoot, first, last) { n in body(tree.nodes[Int(n)].payload) }
        }
    }

    /// vma_address(): where page `pgoff` sits in VMA `id`, if the VMA covers it (the interval
    /// tree's [vm_pgoff, vm_pgoff + pages) test): its mm, index and address.
    @inline(__always)
    func vmaAddress(_ id: UInt32, pgoff: UInt64) -> (MM, Int, UInt64)? {
        let s = rmap.vmas[Int(id)]
        guard s.live, let mm = rmap.mms[Int(s.mm)] else { return nil }
        let addr = s.anchor &+ (pgoff << Page.shift)
        guard let i = mm.findVMAIndex(addr), mm.vmas[i].start <= addr, mm.vmas[i].id == id else { return nil }
        return (mm, i, addr)
    }

    /// Where `pfn` is mapped: (pid of a task using the mm, address), one per mapping, in walk order.
    public func rmapLocations(_ pfn: PFN) -> [(mm: MM, address: UInt64, level: PageTableLevel)] {
        var out: [(MM, UInt64, PageTableLevel)] = []
        rmapWalk(pfn) { h in
            out.append((h.mm, h.address, h.level))
            return true
        }
        return out
    }

    // MARK: folio_referenced

    /// folio_referenced(): test and clear the accessed bit of every mapping
    /// (folio_referenced_one(), ptep_clear_flush_young_notify(); x86 clears it without a
    /// TLB flush, so a translation still cached keeps the page "unreferenced" until the
    /// TLB drops it). Returns how many mappings were young and the union of their VMAs'
    /// flags; a VM_LOCKED mapping stops the walk (reclaim must keep the folio).
    public func folioReferenced(_ pfn: PFN) -> (referenced: Int, vmFlags: VMFlags) {
        // An unmapped folio has no PTE to test (folio_referenced()'s !pra.mapcount return).
        if frames[pfn].pointee.mapcount == 0 && frames[pfn].pointee.order == 0 { return (0, []) }
        var referenced = 0
        var flags: VMFlags = []
        rmapWalk(pfn) { h in
            let v = h.mm.vmas[h.vmaIndex]
            if v.flags.contains(.locked) {
                flags.insert(.locked)
                return false
            }
            guard var l = PTEFormat.decode(h.slot.pointee, level: h.level, arch: arch) else { return true }
            if l.accessed {
                l.accessed = false
                h.slot.pointee = PTEFormat.encode(l, arch: arch)
                referenced += 1
                flags.formUnion(v.flags)
            }
            return true
        }
        if referenced > 0 { frames[folioHead(pfn).head].pointee.flags.insert(.referenced) }
        return (referenced, flags)
    }

    // MARK: try_to_unmap

    /// try_to_unmap(): take the folio out of every page table that maps it
    /// (try_to_unmap_one(): ptep_clear_flush(), the rmap and RSS dropped, the reference put).
    /// File and shmem pages simply go (they are found again in the page cache); anonymous
    /// pages would need a swap entry, and with no swap device the walk stops and fails;
    /// a clean anonymous folio without PG_swapbacked (lazily freed) would be discarded,
    /// but the model's MADV_FREE does not clear PG_swapbacked yet, so that case does not arise.
    /// Returns true when the folio is no longer mapped.
    @discardableResult
    public func tryToUnmap(_ pfn: PFN) -> Bool {
        let (head, order) = folioHead(pfn)
        guard order == 0 else { return false }      // large folios are split first by reclaim
        let anon = PageMapping.isAnon(frames[head].pointee.mapping)
        rmapWalk(head) { h in
            let v = h.mm.vmas[h.vmaIndex]
            if v.flags.contains(.locked) { return false }
            guard let l = PTEFormat.decode(h.slot.pointee, level: .pte, arch: arch) else { return true }
            if anon && (l.dirty || frames[head].pointee.flags.contains(.swapbacked)) { return false }
            unmapPTE(h, head, l, anon: anon, replacement: 0)
            putPage(head)
            return true
        }
        return frames[head].pointee.mapcount == 0
    }

    /// try_to_unmap_one()'s work on one PTE mapping of `head` (decoded as `l`): the entry
    /// becomes `replacement` (none, or a hwpoison entry for memory failure), the TLB is
    /// flushed (ptep_clear_flush()), a dirty PTE dirties a file folio, and the RSS and rmap
    /// go. The caller drops the mapping's reference.
    func unmapPTE(_ h: RmapHit, _ head: PFN, _ l: LeafEntry, anon: Bool, replacement: UInt64) {
        h.slot.pointee = replacement
        flushTLBMMRange(h.mm, start: h.address, end: h.address + Page.size, strideShift: Page.shift, freedTables: false)
        if anon {
            h.mm.addRSS(.anonPages, -1)
            removeAnonRmap(head)
        } else {
            if l.dirty { markFileDirty(head) }
            if case .shmem = h.mm.vmas[h.vmaIndex].kind { h.mm.addRSS(.shmemPages, -1) } else { h.mm.addRSS(.filePages, -1) }
            removeFileRmap(head)
        }
    }

    // MARK: Checker

    /// CONFIG_DEBUG_VM for the rmap: every mapped folio's mapcount equals what an rmap walk
    /// finds; every anon_vma in use has consistent counts; nr_anon_pages and nr_mapped equal
    /// the mapped pages of each kind.
    public func checkRmap() throws {
        var anonPages: Int64 = 0, mappedFile: Int64 = 0
        for s in 0..<frames.sectionCount where frames.isMaterialized(section: s) {
            let first = UInt64(s) << FrameTable.sectionShift
            let end = min(first + UInt64(FrameTable.framesPerSection), frames.endPFN)
            var pfn = first
            while pfn < end {
                let p = frames[PFN(pfn)].pointee
                guard p.state == .allocated, PFN(pfn) != zeroPage, PFN(pfn) != hugeZeroPFN else { pfn += 1; continue }
                let n = UInt64(1) << UInt64(p.order)
                // HugeTLB folios keep their own mapcount and are counted in neither
                // nr_anon_pages nor nr_mapped; the model does not walk their rmap yet.
                if p.flags.contains(.hugetlb) { pfn += n; continue }
                let large = p.order > 0 && p.flags.contains(.head)
                let mapcount = large ? Int(entireMapcount(PFN(pfn))) : Int(p.mapcount)
                if p.mapping != 0 && (mapcount > 0 || (large && largeMapcount(PFN(pfn)) > 0)) {
                    let found = rmapWalk(PFN(pfn))
                    guard found == mapcount else {
                        throw VMBug(rule: "rmap-mapcount", detail: "pfn \(pfn) (mapping \(String(p.mapping, radix: 16)), index \(p.index)) has mapcount \(mapcount) but an rmap walk finds \(found) mappings")
                    }
                    if large && largeMapcount(PFN(pfn)) != entireMapcount(PFN(pfn)) {
                        throw VMBug(rule: "rmap-large-mapcount", detail: "PMD-mapped folio \(pfn): large mapcount \(largeMapcount(PFN(pfn))) != entire mapcount \(entireMapcount(PFN(pfn)))")
                    }
                    if PageMapping.isAnon(p.mapping) { anonPages += Int64(n) } else if mapcount > 0 { mappedFile += Int64(n) }
                } else if p.mapping == 0 && p.mapcount > 0 {
                    throw VMBug(rule: "rmap-mapping", detail: "pfn \(pfn) is mapped \(p.mapcount) times but has no mapping")
                }
                pfn += n
            }
        }
        guard anonPages == counters[.nrAnonPages] else {
            throw VMBug(rule: "nr-anon-pages", detail: "nr_anon_pages \(counters[.nrAnonPages]) but \(anonPages) anonymous pages are mapped")
        }
        guard mappedFile == counters[.nrMapped] else {
            throw VMBug(rule: "nr-mapped", detail: "nr_mapped \(counters[.nrMapped]) but \(mappedFile) file pages are mapped")
        }
        // anon_vma counts: every VMA with an anon_vma is linked to it, num_active_vmas agrees;
        // the interval trees are keyed by the VMAs' current pgoff ranges.
        var active = [Int32](repeating: 0, count: rmap.anonVMAs.count)
        for t in tasks where t.state != .dead && t.threadGroupLeader == nil {
            guard let mm = t.mm else { continue }
            for v in mm.vmas {
                let s = rmap.vmas[Int(v.id)]
                guard v.id != 0, s.live, s.pgStart == v.pgoff, s.pgLast == v.pgoff + v.pages - 1,
                      s.anchor == v.start &- (v.pgoff << Page.shift) else {
                    throw VMBug(rule: "rmap-tree-key", detail: "VMA \(String(hex: v.start, width: 0))-\(String(hex: v.end, width: 0)) pgoff \(v.pgoff) of mm \(mm.id): rmap identity \(v.id) keyed [\(s.pgStart), \(s.pgLast)] anchor \(String(hex: s.anchor, width: 0))")
                }
                var c = s.avcHead
                while c >= 0 {
                    let n = rmap.chains[Int(c)].node
                    guard rmap.tree.interval(n) == (s.pgStart, s.pgLast) else {
                        throw VMBug(rule: "rmap-tree-key", detail: "a chain of VMA \(String(hex: v.start, width: 0)) is keyed \(rmap.tree.interval(n)) in its anon_vma's tree")
                    }
                    c = rmap.chains[Int(c)].nextSame
                }
            }
            for v in mm.vmas where v.anonVMA != 0 {
                let av = Machine.anonIndex(v.anonVMA)
                guard rmap.anonVMAs[Int(av)].nextFree == -2 else {
                    throw VMBug(rule: "anon-vma-freed", detail: "VMA \(String(hex: v.start, width: 0)) of mm \(mm.id) points at freed anon_vma \(av)")
                }
                active[Int(av)] += 1
                var linked = false
                var c = rmap.vmas[Int(v.id)].avcHead
                while c >= 0 {
                    if rmap.chains[Int(c)].anonVMA == av { linked = true }
                    c = rmap.chains[Int(c)].nextSame
                }
                guard linked else {
                    throw VMBug(rule: "anon-vma-chain", detail: "VMA \(String(hex: v.start, width: 0)) of mm \(mm.id) has no chain to its anon_vma \(av)")
                }
            }
        }
        for (i, r) in rmap.anonVMAs.enumerated() where r.nextFree == -2 {
            guard r.numActiveVMAs == active[i] else {
                throw VMBug(rule: "anon-vma-active", detail: "anon_vma \(i) num_active_vmas \(r.numActiveVMAs) but \(active[i]) VMAs use it")
            }
            guard r.refcount > 0, rmap.anonVMAs[Int(r.root)].nextFree == -2 else {
                throw VMBug(rule: "anon-vma-refcount", detail: "anon_vma \(i) refcount \(r.refcount), root \(r.root)")
            }
        }
    }
}
