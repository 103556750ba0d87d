// fs/proc/page.c (/proc/kpageflags, /proc/kpagecount) and a page-owner-like report:
// what a frame is, and, through the rmap, where it is mapped.

/// KPF_* bits of /proc/kpageflags (include/uapi/linux/kernel-page-flags.h).
public enum KPF: Int, CaseIterable, Sendable {
    case locked = 0, error = 1, referenced = 2, uptodate = 3, dirty = 4, lru = 5, active = 6, slab = 7
    case writeback = 8, reclaim = 9, buddy = 10, mmap = 11, anon = 12, swapcache = 13, swapbacked = 14
    case compoundHead = 15, compoundTail = 16, huge = 17, unevictable = 18, hwpoison = 19, nopage = 20
    case ksm = 21, thp = 22, offline = 23, zeroPage = 24, idle = 25, pgtable = 26

    /// The short names tools/mm/page-types prints.
    public var name: String {
        switch self {
        case .locked: "locked"; case .error: "error"; case .referenced: "referenced"; case .uptodate: "uptodate"
        case .dirty: "dirty"; case .lru: "lru"; case .active: "active"; case .slab: "slab"
        case .writeback: "writeback"; case .reclaim: "reclaim"; case .buddy: "buddy"; case .mmap: "mmap"
        case .anon: "anonymous"; case .swapcache: "swapcache"; case .swapbacked: "swapbacked"
        case .compoundHead: "compound_head"; case .compoundTail: "compound_tail"; case .huge: "huge"
        case .unevictable: "unevictable"; case .hwpoison: "hwpoison"; case .nopage: "nopage"; case .ksm: "ksm"
        case .thp: "thp"; case .offline: "offline"; case .zeroPage: "zero_page"; case .idle: "idle"
        case .pgtable: "pgtable"
        }
    }
}

extension Machine {
    /// page->_mapcount as the kernel stores it: -1 when unmapped (the model keeps it +1 so
    /// that an all-zero struct page means "pristine").
    public func kpageMapcount(_ pfn: PFN) -> Int32 { frames[pfn].pointee.mapcount - 1 }

    /// /proc/kpagecount: folio_precise_page_mapcount() of the page (its own PTE mappings
    /// plus the folio's PMD mappings).
    public func kpagecount(_ pfn: PFN) -> Int {
        guard pfn.raw < maxPFN else { return 0 }
        let (head, order) = folioHead(pfn)
        var n = Int(frames[pfn].pointee.mapcount)
        if order > 0 && frames[head].pointee.flags.contains(.head) && frames[head].pointee.state == .allocated {
            n += Int(entireMapcount(head))
        }
        return n
    }

    /// stable_page_flags(): the KPF_* bits of frame `pfn`.
    public func kpageflags(_ pfn: PFN) -> UInt64 {
        guard pfn.raw < maxPFN, let p = frames.peek(pfn)?.pointee else { return 1 << UInt64(KPF.nopage.rawValue) }
        var bits: UInt64 = 0
        func set(_ k: KPF) { bits |= 1 << UInt64(k.rawValue) }
        switch p.state {
        case .hole: set(.nopage)
        case .buddy, .buddyTail, .pristine: if p.state != .buddyTail { set(.buddy) }
        case .pageTable: set(.pgtable)
        case .reserved: if pfn == zeroPage { set(.zeroPage) }
        case .pcp, .allocated, .allocatedTail, .isolated: break
        }
        if pfn == hugeZeroPFN { set(.zeroPage) }
        if let (_, head) = hugetlbHead(containing: pfn) {
            // A hugetlb folio: KPF_HUGE on every page, head or tail as page_folio() sees it
            // (through HVO's read-only fake heads); mapped/anon/uptodate from the folio.
            set(.huge)
            set(head == pfn ? .compoundHead : .compoundTail)
            let hp = frames[head].pointee
            if hp.mapcount > 0 { set(.mmap) }
            if hp.mapcount > 0 && hp.mapping != 0 { set(.anon) }
            if hp.flags.contains(.uptodate) { set(.uptodate) }
            return bits
        }
        let (head, order) = folioHead(pfn)
        let h = frames[head].pointee
        if kpagecount(pfn) > 0 { set(.mmap) }
        if PageMapping.isAnon(h.mapping) { set(.anon) }
        if order > 0 && h.flags.contains(.head) {
            set(head == pfn ? .compoundHead : .compoundTail)
            if PageMapping.isAnon(h.mapping) && order == PageOrder.pmd.raw { set(.thp) }
        }
        let f = p.flags.union(head != pfn ? h.flags.subtracting([.head, .tail, .hwpoison]) : [])
        let map: [(PageFlags, KPF)] = [(.locked, .locked), (.referenced, .referenced), (.uptodate, .uptodate),
                                       (.dirty, .dirty), (.lru, .lru), (.active, .active), (.writeback, .writeback),
                                       (.reclaim, .reclaim), (.swapcache, .swapcache), (.swapbacked, .swapbacked),
                                       (.unevictable, .unevictable), (.hwpoison, .hwpoison)]
        for (pf, k) in map where f.contains(pf) { set(k) }
        return bits
    }

    /// The names of the set KPF bits, comma separated (page-types style).
    public func kpageflagsNames(_ pfn: PFN) -> String {
        let bits = kpageflags(pfn)
        return KPF.allCases.filter { bits & (1 << UInt64($0.rawValue)) != 0 }.map(\.name).joined(separator: ",")
    }

    /// A page-owner-like report of frame `pfn`: its state, flags, counts, mapping and index,
    /// then one line per mapping the rmap walk finds (pid, command, address, level).
    public func pageReport(_ pfn: PFN) -> String {
        guard pfn.raw < maxPFN else { return "PFN \(String(format0x: pfn.raw, width: 0)): beyond the end of memory\n" }
        let p = frames[pfn].pointee
        let (head, order) = folioHead(pfn)
        let h = frames[head].pointee
        var s = "PFN \(String(format0x: pfn.raw, width: 0)) \(p.state) order \(order)"
        if config.nodes > 1 { s += " node \(allocator.nodeOf(pfn))" }
        s += " flags \(String(format0x: kpageflags(pfn), width: 0)) (\(kpageflagsNames(pfn)))\n"
        s += "  refcount \(h.refcount) mapcount \(kpagecount(pfn)) _mapcount \(kpageMapcount(pfn))"
        if order > 0 && h.flags.contains(.head) {
            s += " entire_mapcount \(entireMapcount(head) - 1) large_mapcount \(largeMapcount(head) - 1)"
        }
        s += "\n"
        let m = h.mapping
        if m != 0 {
            let id = Int(m & PageMapping.handleMask)
            if PageMapping.isAnon(m) {
                let av = Machine.anonIndex(id)
                let r = rmap.anonVMAs[Int(av)]
                s += "  mapping anon_vma \(av) (root \(r.root), parent \(r.parent), refcount \(r.refcount), children \(r.numChildren), active VMAs \(r.numActiveVMAs), chains \(r.chains)) index \(String(format0x: h.index, width: 0))\n"
            } else if m & PageMapping.shmemTag != 0 {
                s += "  mapping shmem object \(id) index \(h.index)\n"
            } else {
                s += "  mapping file \(id < files.count ? files[id].name : "?") index \(h.index)\n"
            }
        }
        for hit in rmapLocations(pfn) {
            let owners = tasks.filter { $0.state == .running && $0.mm === hit.mm }.map { "\($0.name)[\($0.pid)]" }
            s += "  mapped by \(owners.joined(separator: ",")) at \(String(format0x: hit.address, width: 12)) (\(hit.level == .pmd ? "pmd" : "pte"))\n"
        }
        return s
    }
}

extension SimFile {
    /// The page-cache frame at `index`, if cached.
    public func cachePFN(_ index: Int) -> PFN? { index < cache.count ? cache[index] : nil }
}

extension RmapState {
    /// How many chains link VMA `v` to anon_vmas (the length of vma->anon_vma_chain).
    public func chainCount(of v: VMA) -> Int { v.id == 0 ? 0 : chainCount(ofVMA: v.id) }
}
