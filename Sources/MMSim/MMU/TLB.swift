// The per-CPU TLB hierarchy that arch/x86/mm/tlb.c and arch/arm64/include/asm/tlbflush.h rely on: PCID/ASID-tagged set-associative arrays.

/// The arrays of one CPU's TLB hierarchy, in lookup order. The names are those of
/// `TLBGeometry.arrays` without the "tlb." prefix.
public enum TLBLevel: Int, Sendable, CaseIterable, CustomStringConvertible {
    case l1d4K = 0, l1d2M, l1d1G, l1i4K, l1i2M, l2, l2_1G
    public var description: String { ["l1d4K", "l1d2M", "l1d1G", "l1i4K", "l1i2M", "l2", "l2_1G"][rawValue] }
    /// True for the instruction-side arrays.
    public var isInstruction: Bool { self == .l1i4K || self == .l1i2M }
    /// True for the second-level (unified) arrays.
    public var isSecondLevel: Bool { self == .l2 || self == .l2_1G }
}

/// Calls and invalidated entries of one kind of flush.
public struct TLBFlushCount: Sendable, Hashable {
    /// Times the flush operation was called.
    public var calls: UInt64 = 0
    /// Valid entries it invalidated, summed over every array.
    public var entries: UInt64 = 0
    public init() {}
}

/// Event counters of one CPU's TLB hierarchy.
///
/// Accounting of one `lookup()`: it counts exactly one of
/// L1 hit, `dirtyMisses` (entry found in L1 but clean on a write), or L1 miss;
/// an L1 miss then counts exactly one of L2 hit, `dirtyMisses` (found clean in L2),
/// or L2 miss. So `lookups == l1dHits + l1iHits + l1dMisses + l1iMisses + dirtyMissesL1`
/// and `l1dMisses + l1iMisses == l2Hits + l2Misses + dirtyMissesL2`.
/// A lookup that returns nil (walk needed) is an L2 miss or a dirty miss.
public struct TLBCounters: Sendable, Hashable {
    /// Every `lookup()` call (derived: each counts in exactly one of these).
    public var lookups: UInt64 { l1dHits &+ l1iHits &+ l1dMisses &+ l1iMisses &+ dirtyMissesL1 }
    public var l1dHits: UInt64 = 0
    public var l1dMisses: UInt64 = 0
    public var l1iHits: UInt64 = 0
    public var l1iMisses: UInt64 = 0
    public var l2Hits: UInt64 = 0
    public var l2Misses: UInt64 = 0
    /// Writes that found a matching entry whose cached dirty attribute is clear,
    /// in L1 (`dirtyMissesL1`) or, after an L1 miss, in L2 (`dirtyMissesL2`).
    /// The caller must walk (x86 sets D with a locked walk; arm64 DBM likewise).
    public var dirtyMissesL1: UInt64 = 0
    public var dirtyMissesL2: UInt64 = 0
    public var dirtyMisses: UInt64 { dirtyMissesL1 &+ dirtyMissesL2 }
    /// `insert()` calls (fills after a page walk).
    public var inserts: UInt64 = 0
    /// L1 fills from an L2 hit.
    public var refills: UInt64 = 0
    /// Valid entries displaced by a fill (LRU victims), per side.
    public var l1dEvictions: UInt64 = 0
    public var l1iEvictions: UInt64 = 0
    public var l2Evictions: UInt64 = 0
    public var evictions: UInt64 { l1dEvictions &+ l1iEvictions &+ l2Evictions }
    /// INVLPG / TLBI VAE1
    public var flushPage = TLBFlushCount()
    /// A range of INVLPGs / TLBI RVAE1 (or VAE1 per page)
    public var flushRange = TLBFlushCount()
    /// INVPCID single-context / TLBI ASIDE1
    public var flushASID = TLBFlushCount()
    /// MOV CR3 without the no-flush bit / all non-global entries
    public var flushAllNonGlobal = TLBFlushCount()
    /// CR4.PGE toggle, INVPCID all-context / TLBI VMALLE1
    public var flushAll = TLBFlushCount()
    /// flush_tlb_kernel_range(): INVLPG of global kernel pages / TLBI VAALE1
    public var flushKernelRange = TLBFlushCount()
    public init() {}
}

/// One valid cached translation, as `TLB.forEachEntry` reports it.
public struct TLBEntryInfo: Sendable, Hashable {
    public var level: TLBLevel
    /// First virtual address the entry covers (aligned to `translation.size`).
    public var vpnBase: VirtAddr
    /// The tag the entry was filled with (meaningless for matching when global).
    public var asid: ASID
    /// The translation as cached: for a fractured 1 GiB page this is the 2 MiB piece.
    public var translation: Translation
    /// Size of the page-table leaf the entry was made from (1G for a fractured piece).
    public var leafSize: PageSize
    public var isGlobal: Bool { translation.attrs.contains(.global) }
}

/// One set-associative array: `sets * ways` entries, set-major, each entry's key, meta,
/// frame and stamp in 32 contiguous bytes (one pointer reaches every field; a hit reads
/// one entry), plus a separate byte column of filter tags.
///
/// A byte column of filter tags (`0x80 | 7 hash bits of the key` when valid, 0 when
/// invalid) lets the miss paths (lookups past L1, fills, flushes) test a whole set with
/// a few word operations (8 ways per word) and read only the ways whose hash matches;
/// it also tells invalid ways apart without reading the keys.
@usableFromInline
struct TLBArray {
    /// The entries, 32 bytes each (key, meta, pfn, stamp), set-major: an entry is one
    /// half cache line, and every column is reached from this one pointer.
    @usableFromInline let entries: UnsafeMutablePointer<UInt64>
    /// (VPN at the entry size) << 3 | size << 1 | 1; 0 = invalid.
    @inlinable @inline(__always) var keys: TLBColumn { TLBColumn(entries) }
    /// ASID | ASID mask << 16 | TranslationAttrs << 32 | leaf PageSize << 40. The ASID
    /// mask is 0xFFFF, or 0 for a global entry, so that one compare tests tag and ASID;
    /// the leaf size differs from the key's size for a fractured piece.
    @inlinable @inline(__always) var meta: TLBColumn { TLBColumn(entries + 1) }
    /// First frame of the cached translation (aligned to the entry size).
    @inlinable @inline(__always) var pfns: TLBColumn { TLBColumn(entries + 2) }
    /// LRU use stamps: larger = more recently used.
    @inlinable @inline(__always) var stamps: TLBColumn { TLBColumn(entries + 3) }
    /// Filter tags, `Self.tag(key)` for a valid entry, 0 for an invalid one; padded by 8
    /// bytes so that a set's last tag word can always be loaded whole.
    @usableFromInline let tags: UnsafeMutablePointer<UInt8>
    /// Per set of the unified L2 (when it has at most 15 ways): its ways in order of their
    /// last stamp write, one nibble each, the least recent in the low nibble. Every stamp
    /// write makes its way the most recent (the clock only grows), so when every way is
    /// valid (and so has been stamped) the low nibble is the way with the smallest stamp:
    /// the LRU victim, found without reading the stamps.
    @usableFromInline let order: UnsafeMutablePointer<UInt64>
    @usableFromInline let setMask: UInt64
    @usableFromInline let ways: Int
    @usableFromInline let count: Int
    @usableFromInline let level: TLBLevel

    @usableFromInline static let lanes: UInt64 = 0x8080_8080_8080_8080
    @usableFromInline static let ones: UInt64 = 0x0101_0101_0101_0101

    init(_ g: TLBArrayGeometry, level: TLBLevel) {
        precondition(g.ways > 0 && g.entries > 0 && g.entries % g.ways == 0, "TLB \(level): \(g.entries) entries / \(g.ways) ways")
        let sets = g.entries / g.ways
        precondition(sets & (sets - 1) == 0, "TLB \(level): set count \(sets) is not a power of two")
        entries = .allocate(capacity: 4 * g.entries)
        entries.initialize(repeating: 0, count: 4 * g.entries)
        tags = .allocate(capacity: g.entries + 8)
        tags.initialize(repeating: 0, count: g.entries + 8)
        order = .allocate(capacity: sets)
        var identity: UInt64 = 0
        if g.ways < 16 { for w in (0..<g.ways).reversed() { identity = identity &<< 4 | UInt64(w) } }
        order.initialize(repeating: identity, count: sets)
        setMask = UInt64(sets - 1)
        ways = g.ways
        count = g.entries
        self.level = level
    }

    func deallocate() {
        entries.deallocate()
        tags.deallocate()
        order.deallocate()
    }

    /// True when `order` is kept: the unified L2 with at most 15 ways (`level` and `ways`
    /// are the array's, passed so that the test folds).
    @inline(__always)
    static func ordered(_ level: TLBLevel, ways: Int) -> Bool { level == .l2 && ways < 16 }

    /// The LRU way of a full set of an `ordered` array (the head of its recency order),
    /// made the most recent: the victim of a fill, as an index into the array.
    @inline(__always)
    func takeLRU(set: Int, ways: Int) -> Int {
        let o = order[set]
        let lru = o & 15
        order[set] = o &>> 4 | lru &<< UInt64(truncatingIfNeeded: (ways &- 1) &* 4)
        return set &* ways &+ Int(truncatingIfNeeded: lru)
    }

    /// Every way of a 12-way set valid, from its two tag words (8 lanes of `w0`, the low 4
    /// of `w1`): bit 7 of each of those lanes is set.
    @inline(__always)
    static func allValid12(_ w0: UInt64, _ w1: UInt64) -> Bool { (w0 & (w0 &>> 32) & w1) & 0x8080_8080 == 0x8080_8080 }

    /// Makes way `w` of set `set` the most recent in `order` (after a stamp write).
    @inline(__always)
    func touch(set: Int, way w: Int, ways: Int) {
        let o = order[set]
        let top = UInt64(truncatingIfNeeded: (ways &- 1) &* 4)
        let wv = UInt64(truncatingIfNeeded: w)
        if o & 15 == wv {
            // The LRU way (every fill of a full set): a shift.
            order[set] = o &>> 4 | wv &<< top
            return
        }
        // Nibble equal to w: exactly one, found with an exact zero-nibble test.
        let sevens: UInt64 = 0x7777_7777_7777_7777
        let x = o ^ (0x1111_1111_1111_1111 &* wv)
        let zero = ~(((x & sevens) &+ sevens) | x | sevens) & ((1 &<< (top &+ 4)) &- 1)
        let p = UInt64(truncatingIfNeeded: zero.trailingZeroBitCount) & ~3
        let below = o & ((1 &<< p) &- 1)
        order[set] = below | (o &>> (p &+ 4)) &<< p | wv &<< top
    }

    /// Index of the first way of the set `vpn` maps to.
    @inlinable @inline(__always)
    func setBase(_ vpn: UInt64) -> Int { Int(truncatingIfNeeded: vpn & setMask) &* ways }

    /// The filter tag of a valid key: bit 7 set, 7 bits of a multiplicative hash of the
    /// key's VPN (the set index bits are the VPN's low ones; the hash's top bits mix all).
    /// Keys of two sizes with the same VPN share a tag: a rare false candidate, which the
    /// key compare rejects.
    @inlinable @inline(__always)
    static func tag(_ key: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: ((key &>> 3) &* 0x9E37_79B9_7F4A_7C15) &>> 57) | 0x80 }

    /// Tag word `j` of the set at `base`: ways `8j ..< 8j+8`, way `8j+b` in byte `b`.
    @inlinable @inline(__always)
    func tagWord(_ base: Int, _ j: Int) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(tags + (base &+ j &* 8)).loadUnaligned(as: UInt64.self))
    }

    /// The lanes of tag word `j` that belong to a set of `ways` ways (folds to a
    /// constant when `ways` is one).
    @inlinable @inline(__always)
    static func lanes(ways: Int, word j: Int) -> UInt64 {
        let rest = ways &- j &* 8
        return rest >= 8 ? Self.lanes : Self.lanes & ((1 &<< UInt64(truncatingIfNeeded: rest &* 8)) &- 1)
    }

    /// Tag words per set of `ways` ways.
    @inlinable @inline(__always)
    static func words(_ ways: Int) -> Int { (ways &+ 7) &>> 3 }

    /// 0x80 in every lane of `word` equal to `tag` (and possibly in a few others just
    /// above an equal one: candidates, to be confirmed against the keys).
    @inlinable @inline(__always)
    static func candidates(_ word: UInt64, _ tag: UInt8) -> UInt64 {
        let x = word ^ (Self.ones &* UInt64(tag))
        return (x &- Self.ones) & ~x & Self.lanes
    }

    /// Way within the word of the highest lane set in `mask` (nonzero).
    @inlinable @inline(__always)
    static func highestLane(_ mask: UInt64) -> Int { (63 &- mask.leadingZeroBitCount) &>> 3 }

    /// The matching entry for `key` under `asid` (or a global one), if any.
    /// Branch-free over the ways (a data-dependent early exit mispredicts on random
    /// access patterns); the last matching way wins, and there is at most one unless
    /// two ASIDs' copies meet a global entry of the same VA.
    @inlinable @inline(__always)
    func find(vpn: UInt64, key: UInt64, asid: UInt16) -> TLBSlot? {
        let base = setBase(vpn)
        // Fixed trip counts for the usual associativities let the compiler unroll.
        let hit = ways == 4 ? scan(base, 4, key, asid) : ways == 8 ? scan(base, 8, key, asid) : scan(base, ways, key, asid)
        return hit < 0 ? nil : TLBSlot(self, hit)
    }

    @inlinable @inline(__always)
    func scan(_ base: Int, _ n: Int, _ key: UInt64, _ asid: UInt16) -> Int {
        var hit = -1
        for w in 0..<n {
            let i = base &+ w
            let m = meta[i]
            // Tag and ASID (ignored when global) in one compare, without branches.
            let diff = (keys[i] ^ key) | ((m ^ UInt64(asid)) & (m &>> 16) & 0xFFFF)
            hit = diff == 0 ? i : hit
        }
        return hit
    }

    /// `find` through the filter tags: one word of tags per 8 ways says which ways can
    /// match, so a miss reads no keys. Used by the L1 4K lookups, where faulting workloads
    /// miss, and by the paths past L1.
    @inlinable @inline(__always)
    func findByTag(vpn: UInt64, key: UInt64, asid: UInt16) -> TLBSlot? {
        let hit = ways == 4 ? probe(vpn: vpn, key: key, asid: asid, ways: 4)
            : ways == 8 ? probe(vpn: vpn, key: key, asid: asid, ways: 8) : probe(vpn: vpn, key: key, asid: asid, ways: ways)
        return hit < 0 ? nil : TLBSlot(self, hit)
    }

    /// `find` through the filter tags, for the miss paths: the index of the last way
    /// matching `key` under `asid` (or global), or -1. Same result as `find`.
    /// `ways` is `self.ways`, passed so that it can fold to a constant.
    @inlinable @inline(__always)
    func probe(vpn: UInt64, key: UInt64, asid: UInt16, ways: Int) -> Int {
        let base = setBase(vpn)
        let t = Self.tag(key)
        var j = Self.words(ways) &- 1
        while j >= 0 {
            var c = Self.candidates(tagWord(base, j), t) & Self.lanes(ways: ways, word: j)
            while c != 0 {
                let lane = Self.highestLane(c)
                let i = base &+ j &* 8 &+ lane
                let m = meta[i]
                if (keys[i] ^ key) | ((m ^ UInt64(asid)) & (m &>> 16) & 0xFFFF) == 0 { return i }
                c &= ~(UInt64(0x80) &<< UInt64(truncatingIfNeeded: lane &* 8))
            }
            j &-= 1
        }
        return -1
    }
}

/// One field of every entry of a `TLBArray`, indexed by entry.
@usableFromInline
struct TLBColumn {
    @usableFromInline let p: UnsafeMutablePointer<UInt64>
    @inlinable @inline(__always) init(_ p: UnsafeMutablePointer<UInt64>) { self.p = p }
    @inlinable @inline(__always) subscript(i: Int) -> UInt64 {
        get { p[i &<< 2] }
        nonmutating set { p[i &<< 2] = newValue }
    }
}

/// A reference to one entry of a `TLBArray`.
@usableFromInline
struct TLBSlot {
    @usableFromInline static let globalMeta = UInt64(TranslationAttrs.global.rawValue) << 32
    @usableFromInline let array: TLBArray
    @usableFromInline let index: Int
    @inlinable @inline(__always) init(_ array: TLBArray, _ index: Int) {
        self.array = array
        self.index = index
    }
    @inlinable @inline(__always) var key: UInt64 { array.keys[index] }
    @inlinable @inline(__always) var pfn: UInt64 { array.pfns[index] }
    @inlinable @inline(__always) var stamp: UInt64 {
        get { array.stamps[index] }
        nonmutating set { array.stamps[index] = newValue }
    }
    @inlinable @inline(__always) var asid: UInt16 { UInt16(truncatingIfNeeded: array.meta[index]) }
    @inlinable @inline(__always) var attrs: UInt8 { UInt8(truncatingIfNeeded: array.meta[index] &>> 32) }
    @inlinable @inline(__always) var leafSize: UInt8 { UInt8(truncatingIfNeeded: array.meta[index] &>> 40) }
    @inlinable @inline(__always) var isGlobal: Bool { array.meta[index] & Self.globalMeta != 0 }
    /// Marks the entry invalid (key and filter tag).
    @inline(__always)
    func clear() {
        array.keys[index] = 0
        array.tags[index] = 0
    }
}

/// Mutable scalar state, kept behind a pointer so that the hot path has no
/// exclusivity checks on class properties.
@usableFromInline
struct TLBState {
    /// Storage of `TLB.live` (first, so that the live counts are at the state's address).
    @usableFromInline var live: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    @usableFromInline var clock: UInt64 = 0
    /// Fractured 1 GiB pieces currently valid in the iTLB 2 MiB array.
    @usableFromInline var fractured: Int = 0
    @usableFromInline var counters = TLBCounters()
    /// `TLB.missKey` of the last lookup that missed at every level, 0 once any entry has
    /// been filled since (host-side: lets `countKnownMiss` skip probes that cannot hit).
    @usableFromInline var missKey: UInt64 = 0
}

/// One CPU's TLB hierarchy.
///
/// - Tags: an entry matches a lookup when its VPN (at the entry's page size) equals the
///   address's and its ASID equals the lookup's, or the entry is global
///   (`TranslationAttrs.global`: x86 G, arm64 nG clear), which matches any ASID.
/// - Arrays: L1 dTLB 4K/2M/1G, L1 iTLB 4K/2M, unified L2 for 4K and 2M (each size
///   indexed by the low bits of its own VPN, and tagged with its size), L2 1G.
///   The set index is the low bits of the VPN at the array's page size; replacement
///   is true LRU by use stamp; an invalid way is always used before a victim.
/// - 1 GiB pages in the iTLB: the iTLB has no 1 GiB array, so, as real cores do, an
///   instruction fill of a 1 GiB translation is *fractured*: the iTLB caches the 2 MiB
///   piece containing the address (size 2M, base frame of that piece, leaf size 1G).
///   Invalidating any address of the 1 GiB page removes every fractured piece
///   (INVLPG/TLBI invalidate all entries "for the page", as the SDM requires).
/// - Dirty rule: a `.write` lookup whose matching entry (first found: L1, else L2)
///   lacks `.dirty` returns nil and counts a dirty miss, leaving the entry in place;
///   the caller walks (setting D / the arm64 DBM dirty state) and `insert()`s, which
///   overwrites the clean entry in place. No other permission is checked here: the
///   caller checks `.writable`, `.user`, `.noExec` on the returned translation.
/// - Hierarchy: non-inclusive. `insert()` fills L1 (d or i) and L2; an L2 hit refills L1.
public final class TLB {
    @usableFromInline static let globalBit: UInt8 = TranslationAttrs.global.rawValue
    @usableFromInline static let dirtyBit: UInt8 = TranslationAttrs.dirty.rawValue

    public let geometry: TLBGeometry
    @usableFromInline let l1d4K: TLBArray
    @usableFromInline let l1d2M: TLBArray
    @usableFromInline let l1d1G: TLBArray
    @usableFromInline let l1i4K: TLBArray
    @usableFromInline let l1i2M: TLBArray
    @usableFromInline let l2: TLBArray
    @usableFromInline let l2_1G: TLBArray
    @usableFromInline let state: UnsafeMutablePointer<TLBState>
    /// The L1 dTLB 4K array has 4 ways and the L2 12: `insert` of a 4 KiB data
    /// translation takes `fillData4K`.
    @usableFromInline let usualData4K: Bool
    /// Valid entries per (array, size) slot: `TLBLevel.rawValue`, and 7 for the L2's 2M
    /// entries (slot 5 then counts its 4K ones). Lets lookups skip empty large-page arrays.
    /// Kept at the start of `state`, so that one pointer reaches both.
    @inlinable @inline(__always)
    var live: UnsafeMutablePointer<Int> { UnsafeMutableRawPointer(state).assumingMemoryBound(to: Int.self) }

    public init(geometry: TLBGeometry = TLBGeometry()) {
        self.geometry = geometry
        l1d4K = TLBArray(geometry.l1d4K, level: .l1d4K)
        l1d2M = TLBArray(geometry.l1d2M, level: .l1d2M)
        l1d1G = TLBArray(geometry.l1d1G, level: .l1d1G)
        l1i4K = TLBArray(geometry.l1i4K, level: .l1i4K)
        l1i2M = TLBArray(geometry.l1i2M, level: .l1i2M)
        l2 = TLBArray(geometry.l2, level: .l2)
        l2_1G = TLBArray(geometry.l2_1G, level: .l2_1G)
        state = .allocate(capacity: 1)
        state.initialize(to: TLBState())
        usualData4K = l1d4K.ways == 4 && l2.ways == 12
        precondition(MemoryLayout<TLBState>.offset(of: \TLBState.live) == 0)
    }

    deinit {
        for a in allArrays { a.deallocate() }
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// The `live` slot of entries of `size` in array `level`.
    @inline(__always) @usableFromInline
    static func slot(_ level: TLBLevel, size: UInt8) -> Int { level == .l2 && size == 1 ? 7 : level.rawValue }

    @usableFromInline var allArrays: [TLBArray] { [l1d4K, l1d2M, l1d1G, l1i4K, l1i2M, l2, l2_1G] }

    /// The counters so far.
    public var counters: TLBCounters {
        get { state.pointee.counters }
        set { state.pointee.counters = newValue }
    }

    public func resetCounters() { state.pointee.counters = TLBCounters() }

    // MARK: Tags

    @inline(__always) @usableFromInline
    static func shift(_ size: UInt8) -> UInt64 { 12 &+ 9 &* UInt64(size) }

    @inlinable @inline(__always)
    static func key(vpn: UInt64, size: UInt8) -> UInt64 { (vpn &<< 3) | (UInt64(size) &<< 1) | 1 }

    /// Page size (raw) of an entry's tag.
    @inline(__always) @usableFromInline
    static func entrySize(_ e: TLBSlot) -> UInt8 { entrySize(e.key) }

    @inline(__always) @usableFromInline
    static func entrySize(_ key: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: (key &>> 1) & 3) }

    /// A valid entry caching a piece of a larger leaf (a 1 GiB page in the iTLB).
    @inline(__always) @usableFromInline
    static func isFractured(_ e: TLBSlot) -> Bool { e.key != 0 && e.leafSize != entrySize(e) }

    @inlinable @inline(__always)
    static func translation(_ e: TLBSlot, size: UInt8) -> Translation {
        Translation(basePFN: PFN(e.pfn), size: PageSize(rawValue: Int(size)).unsafelyUnwrapped,
                    attrs: TranslationAttrs(rawValue: e.attrs))
    }

    // MARK: Lookup

    /// The cached translation of `va` for `asid`, or nil when the caller must walk
    /// the page tables (a miss at every level, or a write to a clean entry).
    /// Data accesses probe the L1 dTLB, instruction fetches the L1 iTLB, then both the L2.
    @inlinable @inline(__always)
    public func lookup(_ va: VirtAddr, asid: ASID, access: AccessKind) -> Translation? {
        let vpn = va.raw &>> 12
        let key = Self.key(vpn: vpn, size: 0)
        if access == .execute {
            if let e = l1i4K.findByTag(vpn: vpn, key: key, asid: asid.raw) {
                let s = state
                s.pointee.clock &+= 1
                e.stamp = s.pointee.clock
                s.pointee.counters.l1iHits &+= 1
                return Self.translation(e, size: 0)
            }
            return lookupSlowI(va, asid: asid.raw)
        } else if let e = l1d4K.findByTag(vpn: vpn, key: key, asid: asid.raw) {
            let s = state
            if access == .write && e.attrs & Self.dirtyBit == 0 {
                s.pointee.counters.dirtyMissesL1 &+= 1
                return nil
            }
            s.pointee.clock &+= 1
            e.stamp = s.pointee.clock
            s.pointee.counters.l1dHits &+= 1
            return Self.translation(e, size: 0)
        }
        return lookupSlowD(va, asid: asid.raw, access: access)
    }

    /// `TLBArray.probe` of array `level`, unrolled for its usual associativity.
    @inline(__always)
    func probe(_ level: TLBLevel, usualWays: Int, vpn: UInt64, key: UInt64, asid: UInt16) -> Int {
        let a = array(level)
        return a.ways == usualWays ? a.probe(vpn: vpn, key: key, asid: asid, ways: usualWays)
                                   : probeAnyWays(level, vpn: vpn, key: key, asid: asid)
    }

    /// `TLBArray.probe` for any associativity, out of line.
    @inline(never)
    func probeAnyWays(_ level: TLBLevel, vpn: UInt64, key: UInt64, asid: UInt16) -> Int {
        let a = array(level)
        return a.probe(vpn: vpn, key: key, asid: asid, ways: a.ways)
    }

    /// `lookupSlow` after an L1 dTLB 4K miss (a read or a write).
    @inline(never) @usableFromInline
    func lookupSlowD(_ va: VirtAddr, asid: UInt16, access: AccessKind) -> Translation? {
        lookupSlow(va, asid: asid, access: access, execute: false)
    }

    /// `lookupSlow` after an L1 iTLB 4K miss.
    @inline(never) @usableFromInline
    func lookupSlowI(_ va: VirtAddr, asid: UInt16) -> Translation? {
        lookupSlow(va, asid: asid, access: .execute, execute: true)
    }

    /// Everything after an L1 4K miss: L1 2M/1G, then L2. While the hierarchy holds only
    /// 4 KiB entries this is a test of the L2 set's filter tags (and, if one matches, a
    /// probe); hits are finished out of line. `execute` is `access == .execute`, a constant.
    @inline(__always)
    func lookupSlow(_ va: VirtAddr, asid: UInt16, access: AccessKind, execute: Bool) -> Translation? {
        let live = self.live
        // Any large-page entry, of either side (the other side's are skipped there).
        if live[TLBLevel.l1d2M.rawValue] | live[TLBLevel.l1d1G.rawValue] | live[TLBLevel.l1i2M.rawValue]
            | live[7] | live[TLBLevel.l2_1G.rawValue] != 0 { return lookupSlowAllSizes(va, asid: asid, access: access) }
        let s = state
        if execute { s.pointee.counters.l1iMisses &+= 1 } else { s.pointee.counters.l1dMisses &+= 1 }
        let l2 = self.l2
        if l2.ways == 12 {
            // The usual miss: no filter tag of the set matches, decided from two tag words.
            let vpn4K = va.raw &>> 12
            let base = l2.setBase(vpn4K)
            let t = TLBArray.tag(Self.key(vpn: vpn4K, size: 0))
            let c = TLBArray.candidates(l2.tagWord(base, 0), t)
                | TLBArray.candidates(l2.tagWord(base, 1), t) & TLBArray.lanes(ways: 12, word: 1)
            if c == 0 {
                s.pointee.counters.l2Misses &+= 1
                s.pointee.missKey = Self.missKey(vpn4K, asid: asid, access: access)
                return nil
            }
        }
        return lookupL2(va, asid: asid, access: access)
    }

    /// The L2 part of `lookupSlow` (4 KiB entries only): probe, then hit or miss.
    @inline(never)
    func lookupL2(_ va: VirtAddr, asid: UInt16, access: AccessKind) -> Translation? {
        let vpn4K = va.raw &>> 12
        let i = probe(.l2, usualWays: 12, vpn: vpn4K, key: Self.key(vpn: vpn4K, size: 0), asid: asid)
        if i >= 0 { return l2Hit(va, size: 0, i, asid: asid, access: access) }
        state.pointee.counters.l2Misses &+= 1
        state.pointee.missKey = Self.missKey(vpn4K, asid: asid, access: access)
        return nil
    }

    /// `lookupSlow` when large-page entries are cached: probes every size.
    @inline(never)
    func lookupSlowAllSizes(_ va: VirtAddr, asid: UInt16, access: AccessKind) -> Translation? {
        let s = state
        let live = self.live
        // L1 large-page arrays (skipped while empty).
        if access == .execute {
            if live[TLBLevel.l1i2M.rawValue] != 0 {
                let vpn2M = va.raw &>> 21
                let i = probe(.l1i2M, usualWays: 8, vpn: vpn2M, key: Self.key(vpn: vpn2M, size: 1), asid: asid)
                if i >= 0 { return l1Hit(.l1i2M, i, access: access) }
            }
            s.pointee.counters.l1iMisses &+= 1
        } else {
            if live[TLBLevel.l1d2M.rawValue] != 0 {
                let vpn2M = va.raw &>> 21
                let i = probe(.l1d2M, usualWays: 4, vpn: vpn2M, key: Self.key(vpn: vpn2M, size: 1), asid: asid)
                if i >= 0 { return l1Hit(.l1d2M, i, access: access) }
            }
            if live[TLBLevel.l1d1G.rawValue] != 0 {
                let vpn1G = va.raw &>> 30
                let i = probe(.l1d1G, usualWays: 4, vpn: vpn1G, key: Self.key(vpn: vpn1G, size: 2), asid: asid)
                if i >= 0 { return l1Hit(.l1d1G, i, access: access) }
            }
            s.pointee.counters.l1dMisses &+= 1
        }

        // L2: the unified array under a 4K and a 2M tag, then the 1G array.
        let vpn4K = va.raw &>> 12
        var i = probe(.l2, usualWays: 12, vpn: vpn4K, key: Self.key(vpn: vpn4K, size: 0), asid: asid)
        if i >= 0 { return l2Hit(va, size: 0, i, asid: asid, access: access) }
        if live[7] != 0 {
            let vpn2M = va.raw &>> 21
            i = probe(.l2, usualWays: 12, vpn: vpn2M, key: Self.key(vpn: vpn2M, size: 1), asid: asid)
            if i >= 0 { return l2Hit(va, size: 1, i, asid: asid, access: access) }
        }
        if live[TLBLevel.l2_1G.rawValue] != 0 {
            let vpn1G = va.raw &>> 30
            i = probe(.l2_1G, usualWays: 4, vpn: vpn1G, key: Self.key(vpn: vpn1G, size: 2), asid: asid)
            if i >= 0 { return l2Hit(va, size: 2, i, asid: asid, access: access) }
        }
        s.pointee.counters.l2Misses &+= 1
        s.pointee.missKey = Self.missKey(vpn4K, asid: asid, access: access)
        return nil
    }

    /// Names a lookup for `TLBState.missKey`: the 4 KiB VPN, the ASID and the side (data
    /// or instruction). Never 0.
    @inlinable @inline(__always)
    static func missKey(_ vpn: UInt64, asid: UInt16, access: AccessKind) -> UInt64 {
        Self.key(vpn: vpn, size: 0) | (access == .execute ? 4 : 0) | UInt64(asid) &<< 48
    }

    /// For the access that just missed at every level and faulted, retried after the
    /// fault handler: when no entry was filled since that miss (the handler made no access
    /// through this TLB), its lookup is known to miss again at every level; this counts
    /// what `lookup` would (an L1 miss and an L2 miss) and returns true, so the caller
    /// skips the probes. Invalidations in between cannot make a miss hit, so they need no
    /// check. Otherwise returns false and counts nothing.
    @inlinable @inline(__always)
    public func countKnownMiss(_ va: VirtAddr, asid: ASID, access: AccessKind) -> Bool {
        let s = state
        guard s.pointee.missKey == Self.missKey(va.raw &>> 12, asid: asid.raw, access: access) else { return false }
        if access == .execute { s.pointee.counters.l1iMisses &+= 1 } else { s.pointee.counters.l1dMisses &+= 1 }
        s.pointee.counters.l2Misses &+= 1
        return true
    }

    /// A hit in an L1 large-page array: entry `i` of `level` (l1d2M, l1d1G or l1i2M).
    @inline(never) @usableFromInline
    func l1Hit(_ level: TLBLevel, _ i: Int, access: AccessKind) -> Translation? {
        let a = level == .l1d2M ? l1d2M : level == .l1d1G ? l1d1G : l1i2M
        let size: UInt8 = level == .l1d1G ? 2 : 1
        let s = state
        let attrs = UInt8(truncatingIfNeeded: a.meta[i] &>> 32)
        if access == .write && attrs & Self.dirtyBit == 0 {
            s.pointee.counters.dirtyMissesL1 &+= 1
            return nil
        }
        let clock = s.pointee.clock &+ 1
        s.pointee.clock = clock
        a.stamps[i] = clock
        if access == .execute { s.pointee.counters.l1iHits &+= 1 } else { s.pointee.counters.l1dHits &+= 1 }
        return Translation(basePFN: PFN(a.pfns[i]), size: PageSize(rawValue: Int(size)).unsafelyUnwrapped,
                           attrs: TranslationAttrs(rawValue: attrs))
    }

    /// A hit in the L2 (entry `i` of the unified array for sizes 0 and 1, of the 1G array
    /// for size 2) after an L1 miss: refills the L1 unless it is a write to a clean entry.
    @inline(never) @usableFromInline
    func l2Hit(_ va: VirtAddr, size: UInt8, _ i: Int, asid: UInt16, access: AccessKind) -> Translation? {
        let a = size == 2 ? l2_1G : l2
        let s = state
        let m = a.meta[i]
        let attrs = UInt8(truncatingIfNeeded: m &>> 32)
        if access == .write && attrs & Self.dirtyBit == 0 {
            s.pointee.counters.dirtyMissesL2 &+= 1
            return nil
        }
        let clock = s.pointee.clock &+ 1
        s.pointee.clock = clock
        a.stamps[i] = clock
        if size != 2 && TLBArray.ordered(.l2, ways: a.ways) {
            let set = Int(truncatingIfNeeded: (va.raw &>> Self.shift(size)) & a.setMask)
            a.touch(set: set, way: i &- set &* a.ways, ways: a.ways)
        }
        s.pointee.counters.l2Hits &+= 1
        s.pointee.counters.refills &+= 1
        return fillL1(va, asid: UInt16(truncatingIfNeeded: m), size: size, pfn: a.pfns[i], attrs: attrs,
                      instruction: access == .execute)
    }

    // MARK: Fill

    /// Caches a translation the page walk returned for `va`: fills the L1 dTLB (or the
    /// iTLB when `instruction`) and the L2. An existing entry with the same tag is
    /// overwritten in place (e.g. after a dirty-miss walk); otherwise an invalid way,
    /// else the LRU way of the set, is used.
    public func insert(_ va: VirtAddr, asid: ASID, translation t: Translation, instruction: Bool) {
        if t.size.rawValue == 0 && !instruction && usualData4K {
            // The common case: a 4 KiB data page after a walk, with the default geometry.
            state.pointee.counters.inserts &+= 1
            fillData4K(vpn: va.raw &>> 12, meta: Self.metaWord(asid: asid.raw, attrs: t.attrs.rawValue, leafSize: 0),
                       pfn: t.basePFN.raw)
            return
        }
        insertAny(va, asid: asid, translation: t, instruction: instruction)
    }

    /// `insert` for any size, side and geometry.
    @inline(never)
    func insertAny(_ va: VirtAddr, asid: ASID, translation t: Translation, instruction: Bool) {
        let size = UInt8(truncatingIfNeeded: t.size.rawValue)
        assert(t.basePFN.raw & ((1 &<< (Self.shift(size) &- 12)) &- 1) == 0, "TLB insert: base frame \(t.basePFN) not aligned to \(t.size)")
        state.pointee.counters.inserts &+= 1
        let pfn = t.basePFN.raw, attrs = t.attrs.rawValue
        if size == 0 {
            // The common case (a 4 KiB page after a walk), with both fills inlined.
            let vpn = va.raw &>> 12
            // Unrolled for the default associativities; other geometries take the generic fill.
            let key = Self.key(vpn: vpn, size: 0), tag = TLBArray.tag(key)
            let mw = Self.metaWord(asid: asid.raw, attrs: attrs, leafSize: 0)
            if instruction {
                if l1i4K.ways == 8 {
                    fillInline(l1i4K, .l1i4K, ways: 8, vpn: vpn, key: key, tag: tag, size: 0, leafSize: 0, asid: asid.raw, meta: mw, pfn: pfn)
                } else {
                    fill(.l1i4K, vpn: vpn, size: 0, leafSize: 0, asid: asid.raw, pfn: pfn, attrs: attrs)
                }
            } else if l1d4K.ways == 4 {
                fillInline(l1d4K, .l1d4K, ways: 4, vpn: vpn, key: key, tag: tag, size: 0, leafSize: 0, asid: asid.raw, meta: mw, pfn: pfn)
            } else {
                fill(.l1d4K, vpn: vpn, size: 0, leafSize: 0, asid: asid.raw, pfn: pfn, attrs: attrs)
            }
            if l2.ways == 12 {
                fillInline(l2, .l2, ways: 12, vpn: vpn, key: key, tag: tag, size: 0, leafSize: 0, asid: asid.raw, meta: mw, pfn: pfn)
            } else {
                fill(.l2, vpn: vpn, size: 0, leafSize: 0, asid: asid.raw, pfn: pfn, attrs: attrs)
            }
            return
        }
        _ = fillL1(va, asid: asid.raw, size: size, pfn: pfn, attrs: attrs, instruction: instruction)
        let vpn = va.raw &>> Self.shift(size)
        if size == 2 {
            fill(.l2_1G, vpn: vpn, size: 2, leafSize: 2, asid: asid.raw, pfn: pfn, attrs: attrs)
        } else {
            fill(.l2, vpn: vpn, size: size, leafSize: size, asid: asid.raw, pfn: pfn, attrs: attrs)
        }
    }

    /// `fillData4K` when a filter tag of the L1 set matches: the general fills, L1 then L2.
    @inline(never)
    func fill4KGeneral(vpn: UInt64, meta mw: UInt64, pfn: UInt64) {
        let key = Self.key(vpn: vpn, size: 0), tag = TLBArray.tag(key), asid = UInt16(truncatingIfNeeded: mw)
        fillInline(l1d4K, .l1d4K, ways: 4, vpn: vpn, key: key, tag: tag, size: 0, leafSize: 0, asid: asid, meta: mw, pfn: pfn)
        fillL2General(vpn: vpn, meta: mw, pfn: pfn)
    }

    /// `fillData4K`'s L2 fill when the set has a same-tag or an invalid way: the general fill.
    @inline(never)
    func fillL2General(vpn: UInt64, meta mw: UInt64, pfn: UInt64) {
        let key = Self.key(vpn: vpn, size: 0)
        fillInline(l2, .l2, ways: 12, vpn: vpn, key: key, tag: TLBArray.tag(key), size: 0, leafSize: 0,
                   asid: UInt16(truncatingIfNeeded: mw), meta: mw, pfn: pfn)
    }

    /// The fill of a 4 KiB data translation with the default geometry (L1 dTLB 4K array of
    /// 4 ways, L2 of 12), specialised for the usual case: no way of either set has the same
    /// filter tag and the L2 set is full (its LRU way comes from the recency order). The
    /// same victims, counters, stamps and order as `fillInline` of the L1 array then the L2,
    /// which the other cases take (`fill4KGeneral`, `fillL2General`). `meta` is the
    /// entry's meta word (leaf size 0).
    @inline(never) @usableFromInline
    func fillData4K(vpn: UInt64, meta mw: UInt64, pfn: UInt64) {
        let a = l1d4K
        let key = Self.key(vpn: vpn, size: 0), tag = TLBArray.tag(key)
        let base = Int(truncatingIfNeeded: vpn & a.setMask) &<< 2     // setBase(vpn), 4 ways
        let lanes4 = TLBArray.lanes(ways: 4, word: 0)
        let w = a.tagWord(base, 0)     // lanes 4-7 are the next set's: masked off below
        if TLBArray.candidates(w, tag) & lanes4 != 0 { return fill4KGeneral(vpn: vpn, meta: mw, pfn: pfn) }
        let s = state
        var victim: Int
        if w & lanes4 == lanes4 {
            s.pointee.counters.l1dEvictions &+= 1
            victim = base &+ Self.lru(a.stamps, base: base, ways: 4)
        } else {
            live[TLBLevel.l1d4K.rawValue] &+= 1
            victim = base &+ TLBArray.highestLane(~w & lanes4)
        }
        // The L2 set, tested before either entry is written, so that the two entries are
        // written together.
        let l2 = self.l2
        let set = Int(truncatingIfNeeded: vpn & l2.setMask)
        let base2 = set &* 12
        let w0 = l2.tagWord(base2, 0), w1 = l2.tagWord(base2, 1)
        let e = a.entries + victim &<< 2
        if TLBArray.candidates(w0, tag) | TLBArray.candidates(w1, tag) & TLBArray.lanes(ways: 12, word: 1) != 0
            || !TLBArray.allValid12(w0, w1) {
            let clock = s.pointee.clock &+ 1
            s.pointee.clock = clock
            s.pointee.missKey = 0
            e[0] = key
            e[2] = pfn
            e[3] = clock
            e[1] = mw
            a.tags[victim] = tag
            return fillL2General(vpn: vpn, meta: mw, pfn: pfn)
        }
        s.pointee.counters.l2Evictions &+= 1
        let victim2 = l2.takeLRU(set: set, ways: 12)
        if live[7] != 0 && Self.entrySize(l2.keys[victim2]) == 1 {
            live[TLBLevel.l2.rawValue] &+= 1
            live[7] &-= 1
        }
        let clock = s.pointee.clock &+ 1
        s.pointee.clock = clock &+ 1
        s.pointee.missKey = 0
        let e2 = l2.entries + victim2 &<< 2
        e[0] = key
        e2[0] = key
        e[2] = pfn
        e2[2] = pfn
        e[3] = clock
        e2[3] = clock &+ 1
        e[1] = mw
        e2[1] = mw
        a.tags[victim] = tag
        l2.tags[victim2] = tag
    }

    /// `lru(_:base:ways:)` for 4 ways, from the set's first stamp (every 4th word): the
    /// first way with the smallest stamp, by the same tree of compares.
    @inline(__always)
    static func lru4(_ st: UnsafeMutablePointer<UInt64>) -> Int {
        let s0 = st[0], s1 = st[4], s2 = st[8], s3 = st[12]
        let i01 = s1 < s0 ? 1 : 0, m01 = s1 < s0 ? s1 : s0
        let i23 = s3 < s2 ? 3 : 2, m23 = s3 < s2 ? s3 : s2
        return m23 < m01 ? i23 : i01
    }

    /// Fills the L1 array for a translation of `size`; returns what a lookup of `va` now sees.
    @inline(never) @usableFromInline
    func fillL1(_ va: VirtAddr, asid: UInt16, size: UInt8, pfn: UInt64, attrs: UInt8, instruction: Bool) -> Translation {
        let vpn = va.raw &>> Self.shift(size)
        if instruction {
            switch size {
            case 0: fill(.l1i4K, vpn: vpn, size: 0, leafSize: 0, asid: asid, pfn: pfn, attrs: attrs)
            case 1: fill(.l1i2M, vpn: vpn, size: 1, leafSize: 1, asid: asid, pfn: pfn, attrs: attrs)
            default:
                // Fracture: cache the 2 MiB piece of the 1 GiB page that holds va.
                let vpn2M = va.raw &>> 21
                let piecePFN = pfn &+ ((vpn2M & 511) &<< 9)
                fill(.l1i2M, vpn: vpn2M, size: 1, leafSize: 2, asid: asid, pfn: piecePFN, attrs: attrs)
                return Translation(basePFN: PFN(piecePFN), size: .size2M, attrs: TranslationAttrs(rawValue: attrs))
            }
        } else {
            switch size {
            case 0:
                if l1d4K.ways == 4 {
                    fillInline(l1d4K, .l1d4K, ways: 4, vpn: vpn, size: 0, leafSize: 0, asid: asid, pfn: pfn, attrs: attrs)
                } else {
                    fill(.l1d4K, vpn: vpn, size: 0, leafSize: 0, asid: asid, pfn: pfn, attrs: attrs)
                }
            case 1: fill(.l1d2M, vpn: vpn, size: 1, leafSize: 1, asid: asid, pfn: pfn, attrs: attrs)
            default: fill(.l1d1G, vpn: vpn, size: 2, leafSize: 2, asid: asid, pfn: pfn, attrs: attrs)
            }
        }
        return Translation(basePFN: PFN(pfn), size: PageSize(rawValue: Int(size)).unsafelyUnwrapped, attrs: TranslationAttrs(rawValue: attrs))
    }

    /// `fillInline`, out of line: for the large-page arrays and uncommon geometries.
    @inline(never) @usableFromInline
    func fill(_ level: TLBLevel, vpn: UInt64, size: UInt8, leafSize: UInt8, asid: UInt16, pfn: UInt64, attrs: UInt8) {
        let a = array(level)
        fillInline(a, level, ways: a.ways, vpn: vpn, size: size, leafSize: leafSize, asid: asid, pfn: pfn, attrs: attrs)
    }

    /// Stores a translation in the set of `a` that `vpn` maps to: over a way with the
    /// same tag (and the same ASID, or either one global), else the last invalid way,
    /// else the least recently used way (the first with the smallest stamp).
    /// `level` is `a.level` and `ways` is `a.ways`, passed so that they fold to constants.
    @inline(__always)
    func fillInline(_ a: TLBArray, _ level: TLBLevel, ways: Int, vpn: UInt64, size: UInt8, leafSize: UInt8,
                    asid: UInt16, pfn: UInt64, attrs: UInt8) {
        let key = Self.key(vpn: vpn, size: size)
        fillInline(a, level, ways: ways, vpn: vpn, key: key, tag: TLBArray.tag(key), size: size, leafSize: leafSize,
                   asid: asid, meta: Self.metaWord(asid: asid, attrs: attrs, leafSize: leafSize), pfn: pfn)
    }

    /// The `meta` column word of an entry.
    @inline(__always)
    static func metaWord(asid: UInt16, attrs: UInt8, leafSize: UInt8) -> UInt64 {
        let asidMask: UInt64 = attrs & Self.globalBit != 0 ? 0 : 0xFFFF
        return UInt64(asid) | asidMask &<< 16 | UInt64(attrs) &<< 32 | UInt64(leafSize) &<< 40
    }

    /// `fillInline` with the key, its filter tag and the meta word already computed
    /// (shared by the L1 and L2 fills of one insert).
    @inline(__always)
    func fillInline(_ a: TLBArray, _ level: TLBLevel, ways: Int, vpn: UInt64, key: UInt64, tag: UInt8, size: UInt8,
                    leafSize: UInt8, asid: UInt16, meta metaWord: UInt64, pfn: UInt64) {
        let s = state
        let set = Int(truncatingIfNeeded: vpn & a.setMask)
        let base = set &* ways
        var victim: Int
        var replacing = false
        // Whether the victim is known to be valid (a full set's LRU way) or invalid.
        var evicting = false
        if ways <= 16 {
            // At most two tag words: load them once for the same-tag and the invalid-way tests.
            let l0 = TLBArray.lanes(ways: ways, word: 0)
            let l1 = ways > 8 ? TLBArray.lanes(ways: ways, word: 1) : 0
            let w0 = a.tagWord(base, 0)
            let w1 = ways > 8 ? a.tagWord(base, 1) : 0
            victim = -1
            if TLBArray.candidates(w0, tag) & l0 | TLBArray.candidates(w1, tag) & l1 != 0 {
                victim = sameTagWay(a, ways: ways, base: base, key: key, tag: tag, asid: asid, meta: metaWord)
                replacing = victim >= 0
            }
            if !replacing {
                // Every way valid: bit 7 of every lane (12 ways: 8 lanes of w0, 4 of w1).
                let full = ways == 12 ? TLBArray.allValid12(w0, w1) : w0 & l0 == l0 && w1 & l1 == l1
                if full {
                    // The first way with the smallest stamp.
                    evicting = true
                    if TLBArray.ordered(level, ways: ways) {
                        victim = a.takeLRU(set: set, ways: ways)
                    } else {
                        victim = base &+ Self.lru(a.stamps, base: base, ways: ways)
                    }
                } else {
                    // The last invalid way (filter tag 0).
                    let free0 = ~w0 & l0, free1 = ~w1 & l1
                    victim = free1 != 0 ? base &+ 8 &+ TLBArray.highestLane(free1) : base &+ TLBArray.highestLane(free0)
                }
            }
        } else {
            victim = sameTagWay(a, ways: ways, base: base, key: key, tag: tag, asid: asid, meta: metaWord)
            replacing = victim >= 0
            if !replacing {
                // The last invalid way (filter tag 0)...
                var j = TLBArray.words(ways) &- 1
                while j >= 0 {
                    let free = ~a.tagWord(base, j) & TLBArray.lanes(ways: ways, word: j)
                    if free != 0 {
                        victim = base &+ j &* 8 &+ TLBArray.highestLane(free)
                        break
                    }
                    j &-= 1
                }
                // ...else the first way with the smallest stamp.
                if victim < 0 {
                    evicting = true
                    victim = base &+ Self.lru(a.stamps, base: base, ways: ways)
                }
            }
        }
        let keys = a.keys, meta = a.meta
        let live = self.live
        // A way is valid exactly when its filter tag is nonzero: only a replaced (same-tag)
        // or an evicted way holds an entry.
        if replacing || evicting {
            let old = keys[victim]
            if evicting {
                switch level {
                case .l2, .l2_1G: s.pointee.counters.l2Evictions &+= 1
                case .l1i4K, .l1i2M: s.pointee.counters.l1iEvictions &+= 1
                default: s.pointee.counters.l1dEvictions &+= 1
                }
            }
            let oldSize = Self.entrySize(old)
            // Only the iTLB 2M array holds fractured pieces.
            if level == .l1i2M && UInt8(truncatingIfNeeded: meta[victim] &>> 40) != oldSize { s.pointee.fractured &-= 1 }
            // Arrays other than the L2 hold one entry size: their count does not change.
            if level == .l2 && oldSize != size {
                live[Self.slot(level, size: oldSize)] &-= 1
                live[Self.slot(level, size: size)] &+= 1
            }
        } else {
            live[Self.slot(level, size: size)] &+= 1
        }
        if leafSize != size { s.pointee.fractured &+= 1 }
        let clock = s.pointee.clock &+ 1
        s.pointee.clock = clock
        s.pointee.missKey = 0
        keys[victim] = key
        a.pfns[victim] = pfn
        a.stamps[victim] = clock
        meta[victim] = metaWord
        a.tags[victim] = tag
        if TLBArray.ordered(level, ways: ways) && !(evicting && ways <= 16) { a.touch(set: set, way: victim &- base, ways: ways) }
    }

    /// The way of the set at `base` holding `key` under `asid` (the same ASID, or either
    /// entry global), searched from the last way down; -1 if none.
    @inline(__always)
    func sameTagWay(_ a: TLBArray, ways: Int, base: Int, key: UInt64, tag: UInt8, asid: UInt16, meta metaWord: UInt64) -> Int {
        let keys = a.keys, meta = a.meta
        let global = metaWord & TLBSlot.globalMeta != 0
        var j = TLBArray.words(ways) &- 1
        while j >= 0 {
            var c = TLBArray.candidates(a.tagWord(base, j), tag) & TLBArray.lanes(ways: ways, word: j)
            while c != 0 {
                let lane = TLBArray.highestLane(c)
                let i = base &+ j &* 8 &+ lane
                let m = meta[i]
                if keys[i] == key && (global || UInt16(truncatingIfNeeded: m) == asid || m & TLBSlot.globalMeta != 0) {
                    return i
                }
                c &= ~(UInt64(0x80) &<< UInt64(truncatingIfNeeded: lane &* 8))
            }
            j &-= 1
        }
        return -1
    }

    /// The first way with the smallest of `ways` stamps: a tree of compares for 4 and 8
    /// ways (an earlier way wins ties, as in a linear scan), else a linear scan.
    @inline(__always)
    static func lru(_ stamps: TLBColumn, base: Int, ways: Int) -> Int {
        let st = TLBColumn(stamps.p + base &* 4)
        @inline(__always) func pick(_ a: Int, _ b: Int) -> Int { st[b] < st[a] ? b : a }
        if ways == 4 { return lru4(st.p) }
        if ways == 8 { return pick(pick(pick(0, 1), pick(2, 3)), pick(pick(4, 5), pick(6, 7))) }
        var lru = 0
        var oldest = st[0]
        for w in 1..<ways {
            let v = st[w]
            let older = v < oldest
            lru = older ? w : lru
            oldest = older ? v : oldest
        }
        return lru
    }
}
