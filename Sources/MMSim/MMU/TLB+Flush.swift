// TLB invalidation as arch/x86/mm/tlb.c (INVLPG, INVPCID, CR3/CR4 writes) and arch/arm64/include/asm/tlbflush.h (TLBI) perform it, plus entry iteration for the checker.

extension TLB {
    // MARK: Flushes

    /// INVLPG / TLBI VAE1 (flush_tlb_one_user(), the per-page
    /// step of flush_tlb_mm_range()): removes every entry that covers `va` and is tagged
    /// `asid` or global, at every page size and level. For a fractured 1 GiB page every
    /// piece goes, whatever 2 MiB of it `va` falls in.
    /// (Real INVPCID individual-address keeps global entries; this models INVLPG and
    /// TLBI VAE1, which remove them.)
    @discardableResult
    public func flushPage(_ va: VirtAddr, asid: ASID) -> Int {
        let a = asid.raw
        let live = self.live
        let vpn4K = va.raw &>> 12, vpn2M = va.raw &>> 21, vpn1G = va.raw &>> 30
        let k4K = Self.key(vpn: vpn4K, size: 0), k2M = Self.key(vpn: vpn2M, size: 1), k1G = Self.key(vpn: vpn1G, size: 2)
        // Each array (and each size of the L2) holding entries: the one set `va` maps to.
        var n = 0
        if live[TLBLevel.l1d4K.rawValue] != 0 { n &+= invalidateMatches(.l1d4K, slot: TLBLevel.l1d4K.rawValue, usualWays: 4, vpn: vpn4K, key: k4K, asid: a) }
        if live[TLBLevel.l1d2M.rawValue] != 0 { n &+= invalidateMatches(.l1d2M, slot: TLBLevel.l1d2M.rawValue, usualWays: 4, vpn: vpn2M, key: k2M, asid: a) }
        if live[TLBLevel.l1d1G.rawValue] != 0 { n &+= invalidateMatches(.l1d1G, slot: TLBLevel.l1d1G.rawValue, usualWays: 4, vpn: vpn1G, key: k1G, asid: a) }
        if live[TLBLevel.l1i4K.rawValue] != 0 { n &+= invalidateMatches(.l1i4K, slot: TLBLevel.l1i4K.rawValue, usualWays: 8, vpn: vpn4K, key: k4K, asid: a) }
        if live[TLBLevel.l1i2M.rawValue] != 0 { n &+= invalidateMatches(.l1i2M, slot: TLBLevel.l1i2M.rawValue, usualWays: 8, vpn: vpn2M, key: k2M, asid: a) }
        if live[TLBLevel.l2.rawValue] != 0 { n &+= invalidateMatches(.l2, slot: TLBLevel.l2.rawValue, usualWays: 12, vpn: vpn4K, key: k4K, asid: a) }
        if live[7] != 0 { n &+= invalidateMatches(.l2, slot: 7, usualWays: 12, vpn: vpn2M, key: k2M, asid: a) }
        if live[TLBLevel.l2_1G.rawValue] != 0 { n &+= invalidateMatches(.l2_1G, slot: TLBLevel.l2_1G.rawValue, usualWays: 4, vpn: vpn1G, key: k1G, asid: a) }
        let s = state
        if s.pointee.fractured > 0 { n &+= flushFractured(vpn1G: vpn1G, asid: a) }
        s.pointee.counters.flushPage.calls &+= 1
        s.pointee.counters.flushPage.entries &+= UInt64(n)
        return n
    }

    /// Removes every fractured piece of the 1 GiB page `vpn1G` tagged `asid` or global.
    @inline(never)
    func flushFractured(vpn1G: UInt64, asid: UInt16) -> Int {
        scan(l1i2M) { e in
            Self.isFractured(e) && (e.key &>> 3) &>> 9 == vpn1G
                && (e.asid == asid || e.attrs & Self.globalBit != 0)
        }
    }

    /// flush_tlb_mm_range() done page by page (INVLPG per page, TLBI VAE1 / RVAE1): removes
    /// every entry tagged `asid` or global whose page overlaps [start, end). Large ranges
    /// scan each array once instead of probing page by page; the result is the same.
    /// (Whether to fall back to a full flush past tlb_single_page_flush_ceiling is the
    /// caller's decision.)
    @discardableResult
    public func flushRange(start: VirtAddr, end: VirtAddr, asid: ASID) -> Int {
        let n = invalidateRange(start: start, end: end, asid: asid.raw, anyASID: false)
        state.pointee.counters.flushRange.calls &+= 1
        state.pointee.counters.flushRange.entries &+= UInt64(n)
        return n
    }

    /// flush_tlb_kernel_range() (INVLPG of global kernel pages; arm64 TLBI VAALE1): removes
    /// every entry whose page overlaps [start, end), under any ASID, global or not.
    @discardableResult
    public func flushKernelRange(start: VirtAddr, end: VirtAddr) -> Int {
        let n = invalidateRange(start: start, end: end, asid: 0, anyASID: true)
        state.pointee.counters.flushKernelRange.calls &+= 1
        state.pointee.counters.flushKernelRange.entries &+= UInt64(n)
        return n
    }

    /// INVPCID single-context / TLBI ASIDE1: removes the non-global entries of `asid`.
    @discardableResult
    public func flushASID(_ asid: ASID) -> Int {
        let raw = asid.raw
        var n = 0
        forEachArray { a in n &+= scan(a) { e in e.asid == raw && e.attrs & Self.globalBit == 0 } }
        state.pointee.counters.flushASID.calls &+= 1
        state.pointee.counters.flushASID.entries &+= UInt64(n)
        return n
    }

    /// MOV CR3 without the PCID no-flush bit (and without PCID at all), INVPCID
    /// all-context-except-global: removes every non-global entry of every ASID.
    @discardableResult
    public func flushAllNonGlobal() -> Int {
        var n = 0
        forEachArray { a in n &+= scan(a) { e in e.attrs & Self.globalBit == 0 } }
        state.pointee.counters.flushAllNonGlobal.calls &+= 1
        state.pointee.counters.flushAllNonGlobal.entries &+= UInt64(n)
        return n
    }

    /// __flush_tlb_all(): CR4.PGE toggle / INVPCID all-context / TLBI VMALLE1: removes everything.
    @discardableResult
    public func flushAll() -> Int {
        var n = 0
        forEachArray { a in n &+= scan(a) { _ in true } }
        state.pointee.counters.flushAll.calls &+= 1
        state.pointee.counters.flushAll.entries &+= UInt64(n)
        return n
    }

    // MARK: Inspection

    /// Calls `body` for every valid entry, array by array in `TLBLevel` order, way by way:
    /// deterministic. For the invariant checker: an entry agrees with the page tables when
    /// the walk of `vpnBase` under its ASID (any ASID if global) finds a leaf of
    /// `leafSize` with frame `translation.basePFN` at `vpnBase` and the same attributes
    /// (a clean cached entry may sit under a now-dirty leaf).
    public func forEachEntry(_ body: (TLBEntryInfo) throws -> Void) rethrows {
        for a in allArrays {
            for i in 0..<a.count {
                let e = TLBSlot(a, i)
                guard e.key != 0 else { continue }
                let size = Self.entrySize(e)
                let vpn = e.key &>> 3
                try body(TLBEntryInfo(
                    level: a.level,
                    vpnBase: VirtAddr(vpn &<< Self.shift(size)),
                    asid: ASID(e.asid),
                    translation: Self.translation(e, size: size),
                    leafSize: PageSize(rawValue: Int(e.leafSize)).unsafelyUnwrapped))
            }
        }
    }

    /// Valid entries in one array.
    public func entryCount(_ level: TLBLevel) -> Int {
        live[level.rawValue] + (level == .l2 ? live[7] : 0)
    }

    /// Valid entries in the whole hierarchy.
    public var entryCount: Int { TLBLevel.allCases.reduce(0) { $0 + entryCount($1) } }

    // MARK: Internals

    @inline(__always)
    func array(_ level: TLBLevel) -> TLBArray {
        switch level {
        case .l1d4K: l1d4K
        case .l1d2M: l1d2M
        case .l1d1G: l1d1G
        case .l1i4K: l1i4K
        case .l1i2M: l1i2M
        case .l2: l2
        case .l2_1G: l2_1G
        }
    }

    /// The entry size (raw) an L1 or L2-1G array holds; the unified L2 holds 0 and 1.
    static func arraySize(_ level: TLBLevel) -> UInt8 {
        switch level {
        case .l1d4K, .l1i4K, .l2: 0
        case .l1d2M, .l1i2M: 1
        case .l1d1G, .l2_1G: 2
        }
    }

    /// Calls `body` with each array in `TLBLevel` order, without allocating.
    @inline(__always)
    func forEachArray(_ body: (TLBArray) -> Void) {
        body(l1d4K); body(l1d2M); body(l1d1G); body(l1i4K); body(l1i2M); body(l2); body(l2_1G)
    }

    @inline(__always)
    func invalidate(_ e: TLBSlot, in a: TLBArray) {
        if Self.isFractured(e) { state.pointee.fractured &-= 1 }
        live[Self.slot(a.level, size: Self.entrySize(e))] &-= 1
        e.clear()
    }

    /// Removes every entry of `key`'s set that matches it under `asid` (or is global).
    func invalidateMatches(_ a: TLBArray, vpn: UInt64, key: UInt64, asid: UInt16, anyASID: Bool = false) -> Int {
        let slot = Self.slot(a.level, size: Self.entrySize(key))
        guard live[slot] != 0 else { return 0 }
        return invalidateMatches(a, a.level, ways: a.ways, slot: slot, vpn: vpn, key: key, asid: asid, anyASID: anyASID)
    }

    /// `invalidateMatches` of one set of array `level` (entries counted in `live[slot]`)
    /// under `asid` (or global), unrolled for the array's usual associativity.
    @inline(__always)
    func invalidateMatches(_ level: TLBLevel, slot: Int, usualWays: Int, vpn: UInt64, key: UInt64, asid: UInt16) -> Int {
        let a = array(level)
        return a.ways == usualWays
            ? invalidateMatches(a, level, ways: usualWays, slot: slot, vpn: vpn, key: key, asid: asid, anyASID: false)
            : invalidateMatchesAnyWays(level, slot: slot, vpn: vpn, key: key, asid: asid, anyASID: false)
    }

    @inline(never)
    func invalidateMatchesAnyWays(_ level: TLBLevel, slot: Int, vpn: UInt64, key: UInt64, asid: UInt16, anyASID: Bool) -> Int {
        let a = array(level)
        return invalidateMatches(a, level, ways: a.ways, slot: slot, vpn: vpn, key: key, asid: asid, anyASID: anyASID)
    }

    /// `invalidateMatches` for entries counted in `live[slot]`: the filter tags name the
    /// candidate ways, the keys and ASIDs confirm them. `level` and `ways` are those of `a`.
    @inline(__always)
    func invalidateMatches(_ a: TLBArray, _ level: TLBLevel, ways: Int, slot: Int, vpn: UInt64, key: UInt64,
                           asid: UInt16, anyASID: Bool) -> Int {
        let base = a.setBase(vpn)
        let tag = TLBArray.tag(key)
        let keys = a.keys, meta = a.meta
        var n = 0
        for j in 0..<TLBArray.words(ways) {
            var c = TLBArray.candidates(a.tagWord(base, j), tag) & TLBArray.lanes(ways: ways, word: j)
            while c != 0 {
                let i = base &+ j &* 8 &+ c.trailingZeroBitCount &>> 3
                let m = meta[i]
                if keys[i] == key && (anyASID || UInt16(truncatingIfNeeded: m) == asid || m & TLBSlot.globalMeta != 0) {
                    // Only the iTLB 2M array holds fractured pieces.
                    if level == .l1i2M && UInt8(truncatingIfNeeded: m &>> 40) != Self.entrySize(key) { state.pointee.fractured &-= 1 }
                    keys[i] = 0
                    a.tags[i] = 0
                    n &+= 1
                }
                c &= c &- 1
            }
        }
        live[slot] &-= n
        return n
    }

    /// Removes every valid entry of `a` for which `match` holds.
    func scan(_ a: TLBArray, _ match: (TLBSlot) -> Bool) -> Int {
        var n = 0
        if live[a.level.rawValue] == 0 && (a.level != .l2 || live[7] == 0) { return 0 }
        for i in 0..<a.count {
            let e = TLBSlot(a, i)
            if e.key != 0 && match(e) {
                invalidate(e, in: a)
                n &+= 1
            }
        }
        return n
    }

    /// Range invalidation: per array and page size, probe each page of that size in the
    /// range while there are fewer of them than sets, else scan the array.
    func invalidateRange(start: VirtAddr, end: VirtAddr, asid: UInt16, anyASID: Bool) -> Int {
        guard end.raw > start.raw else { return 0 }
        let lo = start.raw & ~Page.offsetMask
        let last = (end.raw &- 1) | Page.offsetMask   // inclusive, cannot overflow
        /// Entry's leaf region overlaps [lo, last] and its tag qualifies.
        func overlaps(_ e: TLBSlot) -> Bool {
            guard anyASID || e.asid == asid || e.attrs & Self.globalBit != 0 else { return false }
            let size = Self.entrySize(e)
            let leafMask = (UInt64(1) &<< Self.shift(e.leafSize)) &- 1
            let leafBase = ((e.key &>> 3) &<< Self.shift(size)) & ~leafMask
            return leafBase <= last && leafBase | leafMask >= lo
        }
        var n = 0
        for level in 0..<TLBLevel.allCases.count {
            let a = array(TLBLevel(rawValue: level).unsafelyUnwrapped)
            let sizes: ClosedRange<UInt8> = a.level == .l2 ? 0...1 : Self.arraySize(a.level)...Self.arraySize(a.level)
            var pages: UInt64 = 0
            for size in sizes { pages &+= (last &>> Self.shift(size)) &- (lo &>> Self.shift(size)) &+ 1 }
            if pages > a.setMask &+ 1 {
                n &+= scan(a, overlaps)
                continue
            }
            for size in sizes {
                var vpn = lo &>> Self.shift(size)
                let lastVPN = last &>> Self.shift(size)
                while true {
                    n &+= invalidateMatches(a, vpn: vpn, key: Self.key(vpn: vpn, size: size), asid: asid, anyASID: anyASID)
                    if vpn == lastVPN { break }
                    vpn &+= 1
                }
            }
        }
        if state.pointee.fractured > 0 {
            n &+= scan(l1i2M) { e in Self.isFractured(e) && overlaps(e) }
        }
        return n
    }
}
