// Tests of the per-CPU TLB hierarchy (MMU/TLB.swift): replacement, levels, ASID tags, flushes, the dirty rule.

import Testing
@testable import MMSim

private let rw: TranslationAttrs = [.writable, .user, .dirty]
private let a1 = ASID(1)
private let a2 = ASID(2)

private func t4K(_ pfn: UInt64, _ attrs: TranslationAttrs = rw) -> Translation {
    Translation(basePFN: PFN(pfn), size: .size4K, attrs: attrs)
}
private func t2M(_ pfn: UInt64, _ attrs: TranslationAttrs = rw) -> Translation {
    Translation(basePFN: PFN(pfn), size: .size2M, attrs: attrs)
}
private func t1G(_ pfn: UInt64, _ attrs: TranslationAttrs = rw) -> Translation {
    Translation(basePFN: PFN(pfn), size: .size1G, attrs: attrs)
}
/// Virtual address of 4 KiB page number `vpn`.
private func va(_ vpn: UInt64) -> VirtAddr { VirtAddr(vpn << 12) }

/// Virtual page bases cached in one array.
private func cached(_ tlb: TLB, _ level: TLBLevel) -> Set<UInt64> {
    var s = Set<UInt64>()
    tlb.forEachEntry { if $0.level == level { s.insert($0.vpnBase.raw) } }
    return s
}

/// Every valid entry, for comparing two TLBs.
private func snapshot(_ tlb: TLB) -> [TLBEntryInfo] {
    var out: [TLBEntryInfo] = []
    tlb.forEachEntry { out.append($0) }
    return out
}

/// The per-array live counts agree with the entries really valid.
private func countsConsistent(_ tlb: TLB) -> Bool {
    let all = snapshot(tlb)
    return TLBLevel.allCases.allSatisfy { l in tlb.entryCount(l) == all.filter { $0.level == l }.count }
        && tlb.state.pointee.fractured == all.filter { $0.leafSize != $0.translation.size }.count
}

/// splitmix64, for deterministic pseudo-random tests.
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("TLB replacement")
struct TLBReplacementTests {
    @Test func lruVictimInFourWaySet() {
        let tlb = TLB()
        // L1 dTLB 4K: 16 sets x 4 ways; VPNs 16 apart share set 0.
        for i: UInt64 in 0..<4 { tlb.insert(va(i * 16), asid: a1, translation: t4K(100 + i), instruction: false) }
        #expect(cached(tlb, .l1d4K).count == 4)
        // Touch 0, 32, 48: page 16 becomes least recently used.
        for i: UInt64 in [0, 2, 3] { #expect(tlb.lookup(va(i * 16), asid: a1, access: .read) != nil) }
        tlb.insert(va(64), asid: a1, translation: t4K(200), instruction: false)
        #expect(cached(tlb, .l1d4K) == Set([0, 32, 48, 64].map { va($0).raw }))
        #expect(tlb.counters.l1dEvictions == 1)
        #expect(tlb.counters.l2Evictions == 0)
        // The victim is still in the L2: the next lookup is an L2 hit that refills L1,
        // evicting the now least recently used page 0.
        let before = tlb.counters
        #expect(tlb.lookup(va(16), asid: a1, access: .read)?.basePFN == PFN(UInt64(101)))
        #expect(tlb.counters.l2Hits == before.l2Hits + 1)
        #expect(tlb.counters.l1dMisses == before.l1dMisses + 1)
        #expect(cached(tlb, .l1d4K) == Set([16, 32, 48, 64].map { va($0).raw }))
    }

    @Test func fullyAssociative1GArray() {
        let tlb = TLB()
        let g = Size.GiB
        for i: UInt64 in 0..<4 { tlb.insert(VirtAddr(i * g), asid: a1, translation: t1G(i << 18), instruction: false) }
        #expect(tlb.entryCount(.l1d1G) == 4)
        for i: UInt64 in [3, 0, 2] { #expect(tlb.lookup(VirtAddr(i * g + 0x1234), asid: a1, access: .read) != nil) }
        tlb.insert(VirtAddr(7 * g), asid: a1, translation: t1G(7 << 18), instruction: false)
        #expect(cached(tlb, .l1d1G) == Set([0, 2, 3, 7].map { $0 * g }))
        #expect(tlb.counters.l1dEvictions == 1)
    }

    @Test func reinsertOverwritesInPlace() {
        let tlb = TLB()
        tlb.insert(va(5), asid: a1, translation: t4K(1), instruction: false)
        tlb.insert(va(5), asid: a1, translation: t4K(2), instruction: false)
        #expect(tlb.entryCount(.l1d4K) == 1)
        #expect(tlb.entryCount(.l2) == 1)
        #expect(tlb.lookup(va(5), asid: a1, access: .read)?.basePFN == PFN(UInt64(2)))
        #expect(tlb.counters.evictions == 0)
    }
}

@Suite("TLB levels and counters")
struct TLBLevelTests {
    /// The fault retry's shortcut (TLB.countKnownMiss) claims a miss only when a real
    /// lookup would miss at every level: right after a full miss of the same page, ASID
    /// and side with nothing filled since; it then counts what that lookup would.
    @Test func knownMissOnlyAfterAFullMissWithNoFillSince() {
        let tlb = TLB()
        #expect(!tlb.countKnownMiss(va(7), asid: a1, access: .write))      // no miss recorded yet
        #expect(tlb.lookup(va(7), asid: a1, access: .write) == nil)
        let before = tlb.counters
        #expect(tlb.countKnownMiss(va(7), asid: a1, access: .write))
        #expect(tlb.counters.l1dMisses == before.l1dMisses + 1 && tlb.counters.l2Misses == before.l2Misses + 1)
        #expect(tlb.lookup(va(7), asid: a1, access: .write) == nil)        // the real lookup agrees
        // Another ASID, the other side or another page: not the recorded miss.
        #expect(!tlb.countKnownMiss(va(7), asid: a2, access: .write))
        #expect(!tlb.countKnownMiss(va(7), asid: a1, access: .execute))
        #expect(!tlb.countKnownMiss(va(8), asid: a1, access: .write))
        // A fill since the miss (here of the page itself) voids it: the lookup now hits.
        tlb.insert(va(7), asid: a1, translation: t4K(9), instruction: false)
        #expect(!tlb.countKnownMiss(va(7), asid: a1, access: .write))
        #expect(tlb.lookup(va(7), asid: a1, access: .write)?.basePFN == PFN(UInt64(9)))
        // A dirty miss (a write through a clean entry) records nothing.
        tlb.insert(va(20), asid: a1, translation: t4K(3, [.writable, .user]), instruction: false)
        #expect(tlb.lookup(va(20), asid: a1, access: .write) == nil)
        #expect(!tlb.countKnownMiss(va(20), asid: a1, access: .write))
        // So does an L2 hit that refills the L1 (a fill).
        for i: UInt64 in 1...4 { tlb.insert(va(7 + 16 * i), asid: a1, translation: t4K(i), instruction: false) }
        #expect(tlb.lookup(va(7), asid: a1, access: .read) != nil)
        #expect(!tlb.countKnownMiss(va(7), asid: a1, access: .read))
        #expect(countsConsistent(tlb))
    }

    @Test func hitMissCountersAndRefill() {
        let tlb = TLB()
        #expect(tlb.lookup(va(1), asid: a1, access: .read) == nil)
        #expect(tlb.counters.l1dMisses == 1 && tlb.counters.l2Misses == 1)
        tlb.insert(va(1), asid: a1, translation: t4K(42), instruction: false)
        let t = tlb.lookup(VirtAddr(va(1).raw + 0x123), asid: a1, access: .read)
        #expect(t?.physAddr(for: VirtAddr(va(1).raw + 0x123)) == PhysAddr((42 << 12) + 0x123))
        #expect(tlb.counters.l1dHits == 1)
        // Push page 1 out of its L1 set (set 1) with 4 others; it stays in the L2.
        for i: UInt64 in 1...4 { tlb.insert(va(1 + 16 * i), asid: a1, translation: t4K(i), instruction: false) }
        #expect(!cached(tlb, .l1d4K).contains(va(1).raw))
        #expect(tlb.lookup(va(1), asid: a1, access: .write)?.basePFN == PFN(UInt64(42)))
        #expect(tlb.counters.l2Hits == 1 && tlb.counters.refills == 1)
        #expect(cached(tlb, .l1d4K).contains(va(1).raw))
        #expect(tlb.lookup(va(1), asid: a1, access: .read) != nil)
        #expect(tlb.counters.l1dHits == 2)
        let c = tlb.counters
        #expect(c.lookups == c.l1dHits + c.l1iHits + c.l1dMisses + c.l1iMisses + c.dirtyMissesL1)
        #expect(c.l1dMisses + c.l1iMisses == c.l2Hits + c.l2Misses + c.dirtyMissesL2)
        #expect(c.inserts == 5)
    }

    @Test func hugeEntriesCoverEvery4K() {
        let tlb = TLB()
        let base2M = VirtAddr(0x4000_0000 + 3 * Size.MiB * 2)
        tlb.insert(base2M + 0x5000, asid: a1, translation: t2M(0x1_0000), instruction: false)
        let base1G = VirtAddr(5 * Size.GiB)
        tlb.insert(base1G + 0x1234_5000, asid: a1, translation: t1G(0x8_0000), instruction: false)
        for off in stride(from: UInt64(0), to: 2 * Size.MiB, by: 4096 * 37) {
            let t = tlb.lookup(base2M + off, asid: a1, access: .read)
            #expect(t?.size == .size2M)
            #expect(t?.pfn(for: base2M + off) == PFN(0x1_0000 + off >> 12))
        }
        for off in stride(from: UInt64(0), to: Size.GiB, by: 4096 * 4099) {
            #expect(tlb.lookup(base1G + off, asid: a1, access: .read)?.pfn(for: base1G + off) == PFN(0x8_0000 + off >> 12))
        }
        #expect(tlb.counters.l1dMisses == 0)
        #expect(tlb.lookup(base2M + 2 * Size.MiB, asid: a1, access: .read) == nil)
        // A 2M entry that only sits in the L2 is found under its 2M tag and refills the L1 2M array.
        tlb.flushAll()
        tlb.insert(base2M, asid: a1, translation: t2M(0x1_0000), instruction: false)
        for i: UInt64 in 1...4 {   // evict it from the 8-set L1 2M array
            tlb.insert(base2M + i * 8 * 2 * Size.MiB, asid: a1, translation: t2M(i << 9), instruction: false)
        }
        #expect(tlb.entryCount(.l1d2M) == 4 && tlb.entryCount(.l2) == 5)
        #expect(tlb.lookup(base2M + 0x7000, asid: a1, access: .read)?.pfn(for: base2M + 0x7000) == PFN(UInt64(0x1_0007)))
        #expect(tlb.counters.l2Hits == 1)
        #expect(cached(tlb, .l1d2M).contains(base2M.raw))
    }

    @Test func instructionTLBIsSeparate() {
        let tlb = TLB()
        tlb.insert(va(9), asid: a1, translation: t4K(9), instruction: true)
        #expect(tlb.entryCount(.l1i4K) == 1 && tlb.entryCount(.l1d4K) == 0)
        #expect(tlb.lookup(va(9), asid: a1, access: .execute) != nil)
        #expect(tlb.counters.l1iHits == 1)
        // A data access misses the dTLB and hits the shared L2, which fills the dTLB.
        #expect(tlb.lookup(va(9), asid: a1, access: .read) != nil)
        #expect(tlb.counters.l1dMisses == 1 && tlb.counters.l2Hits == 1)
        #expect(tlb.entryCount(.l1d4K) == 1)
    }

    @Test func oneGiBPageIsFracturedInTheITLB() {
        let tlb = TLB()
        let g = VirtAddr(2 * Size.GiB)
        tlb.insert(g + 5 * 2 * Size.MiB + 0x10, asid: a1, translation: t1G(0x40000), instruction: true)
        #expect(tlb.entryCount(.l2_1G) == 1 && tlb.entryCount(.l1d1G) == 0)
        var infos = snapshot(tlb).filter { $0.level == .l1i2M }
        #expect(infos.count == 1)
        #expect(infos.first?.translation == t2M(0x40000 + 5 * 512))
        #expect(infos.first?.leafSize == .size1G)
        #expect(infos.first?.vpnBase == g + 5 * 2 * Size.MiB)
        // Another 2 MiB of the same page: iTLB miss, L2 1G hit, a second piece.
        let t = tlb.lookup(g + 300 * 2 * Size.MiB + 0x3000, asid: a1, access: .execute)
        #expect(t?.size == .size2M)
        #expect(t?.pfn(for: g + 300 * 2 * Size.MiB + 0x3000) == PFN(UInt64(0x40000 + 300 * 512 + 3)))
        #expect(tlb.counters.l1iMisses == 1 && tlb.counters.l2Hits == 1)
        infos = snapshot(tlb).filter { $0.level == .l1i2M }
        #expect(infos.count == 2)
        // One INVLPG anywhere in the 1 GiB page removes every piece.
        #expect(tlb.flushPage(g + 1000 * 4096, asid: a1) == 3)
        #expect(tlb.entryCount == 0)
        // A range flush that touches the page but neither piece removes them too.
        tlb.insert(g, asid: a1, translation: t1G(0x40000), instruction: true)
        tlb.flushAll()
        tlb.insert(g + 7 * 2 * Size.MiB, asid: a1, translation: t1G(0x40000), instruction: true)
        tlb.flushRange(start: g + (Size.GiB - 4096), end: g + Size.GiB, asid: a1)
        #expect(tlb.entryCount == 0)
        #expect(tlb.state.pointee.fractured == 0)
    }
}

@Suite("TLB ASID tags and flushes")
struct TLBFlushTests {
    /// Two ASIDs with the same VA, plus a global kernel page.
    private func populated() -> TLB {
        let tlb = TLB()
        tlb.insert(va(10), asid: a1, translation: t4K(1), instruction: false)
        tlb.insert(va(10), asid: a2, translation: t4K(2), instruction: false)
        tlb.insert(va(11), asid: a1, translation: t4K(3), instruction: false)
        tlb.insert(va(12), asid: ASID.kernel, translation: t4K(4, [.writable, .dirty, .global]), instruction: false)
        return tlb
    }

    @Test func asidsCoexistAndGlobalsMatchAny() {
        let tlb = populated()
        #expect(tlb.lookup(va(10), asid: a1, access: .read)?.basePFN == PFN(UInt64(1)))
        #expect(tlb.lookup(va(10), asid: a2, access: .read)?.basePFN == PFN(UInt64(2)))
        #expect(tlb.lookup(va(11), asid: a2, access: .read) == nil)
        #expect(tlb.lookup(va(12), asid: ASID(77), access: .read)?.basePFN == PFN(UInt64(4)))
        #expect(tlb.counters.l1dHits == 3)
    }

    @Test func flushASIDKeepsGlobalsAndOtherASIDs() {
        let tlb = populated()
        #expect(tlb.flushASID(a1) == 4)   // pages 10 and 11, in L1 and L2
        #expect(tlb.lookup(va(10), asid: a1, access: .read) == nil)
        #expect(tlb.lookup(va(10), asid: a2, access: .read) != nil)
        #expect(tlb.lookup(va(12), asid: a1, access: .read) != nil)
        #expect(tlb.counters.flushASID == { var f = TLBFlushCount(); f.calls = 1; f.entries = 4; return f }())
    }

    @Test func flushAllNonGlobalKeepsGlobals() {
        let tlb = populated()
        #expect(tlb.flushAllNonGlobal() == 6)
        #expect(tlb.entryCount == 2)
        #expect(tlb.lookup(va(12), asid: a2, access: .read) != nil)
        #expect(tlb.flushAll() == 2)
        #expect(tlb.entryCount == 0)
        #expect(tlb.counters.flushAll.entries == 2 && tlb.counters.flushAllNonGlobal.entries == 6)
    }

    @Test func flushPageRemovesHugeAndGlobalEntries() {
        let tlb = populated()
        let huge = VirtAddr(0x20_0000 * 7)
        tlb.insert(huge, asid: a1, translation: t2M(512), instruction: false)
        #expect(tlb.flushPage(huge + 0x1F_F000, asid: a1) == 2)   // L1 2M and L2
        #expect(tlb.lookup(huge, asid: a1, access: .read) == nil)
        #expect(tlb.flushPage(va(12), asid: a2) == 2)             // global, any ASID
        #expect(tlb.flushPage(va(10), asid: a2) == 2)             // only ASID 2's copy
        #expect(tlb.lookup(va(10), asid: a1, access: .read) != nil)
        #expect(tlb.counters.flushPage.calls == 3 && tlb.counters.flushPage.entries == 6)
    }

    @Test func flushRangeSmallAndHuge() {
        let tlb = TLB()
        for i: UInt64 in 0..<40 { tlb.insert(va(0x100 + i), asid: a1, translation: t4K(i), instruction: false) }
        tlb.insert(VirtAddr(0x4000_0000), asid: a1, translation: t2M(0x200), instruction: false)
        // Small: pages 0x105..0x107 (end not page aligned, so 0x107 is included).
        #expect(tlb.flushRange(start: va(0x105), end: VirtAddr(va(0x107).raw + 1), asid: a1) == 6)   // 3 pages in L1 and L2
        #expect(tlb.lookup(va(0x106), asid: a1, access: .read) == nil)
        #expect(tlb.lookup(va(0x104), asid: a1, access: .read) != nil)
        // Huge range (scans the arrays): all of user space for ASID 2 removes nothing.
        #expect(tlb.flushRange(start: VirtAddr(0), end: VirtAddr(1 << 47), asid: a2) == 0)
        // Huge range for ASID 1 that ends inside the 2M page removes it and all 4K pages.
        let n = tlb.flushRange(start: VirtAddr(0), end: VirtAddr(0x4000_1000), asid: a1)
        #expect(tlb.entryCount == 0)
        #expect(n > 40)
        #expect(tlb.counters.flushRange.calls == 3)
    }

    @Test func flushKernelRangeIgnoresASID() {
        let tlb = TLB()
        let k = VirtAddr(0xffff_8880_0000_0000)
        tlb.insert(k, asid: ASID.kernel, translation: t2M(0, [.writable, .dirty, .global]), instruction: false)
        tlb.insert(k + 2 * Size.MiB, asid: a1, translation: t4K(5), instruction: false)
        tlb.insert(VirtAddr(0xffff_ffff_c000_0000), asid: ASID.kernel, translation: t1G(0, [.global]), instruction: false)
        #expect(tlb.flushKernelRange(start: k + 0x1000, end: k + 2 * Size.MiB + 1) == 4)
        #expect(tlb.flushKernelRange(start: VirtAddr(0xffff_ffff_ffff_f000), end: VirtAddr(UInt64.max)) == 2)
        #expect(tlb.entryCount == 0)
    }

    /// flushRange over a range (probing or scanning) removes exactly what per-page
    /// flushPage calls remove, and exactly the entries a reference filter selects.
    @Test func flushRangeMatchesReference() {
        var rng = SplitMix(state: 42)
        var removed = 0, fracturedSeen = 0
        for round in 0..<30 {
            let a = TLB(), b = TLB()
            for _ in 0..<600 {
                let r = rng.next()
                let size = PageSize(rawValue: Int(r % 10 == 0 ? 1 : r % 37 == 0 ? 2 : 0))!
                let addr = VirtAddr((rng.next() % (1 << 34)) & ~(size.bytes - 1))
                let asid = ASID(UInt16(r >> 40 & 3))
                let attrs: TranslationAttrs = r >> 50 & 7 == 0 ? [.global, .dirty] : [.dirty]
                let t = Translation(basePFN: PFN((rng.next() % (1 << 20)) << (size.shift - 12)), size: size, attrs: attrs)
                let instr = r >> 44 & 3 == 0
                let at = addr + (rng.next() % size.bytes)
                a.insert(at, asid: asid, translation: t, instruction: instr)
                b.insert(at, asid: asid, translation: t, instruction: instr)
            }
            let start = VirtAddr(rng.next() % (1 << 34))
            let len = round % 3 == 0 ? rng.next() % (1 << 33) : rng.next() % (64 << 12)
            let end = start + len
            let asid = ASID(UInt16(round & 3))
            let before = snapshot(a)
            let lo = start.raw & ~4095, last = (end.raw &- 1) | 4095
            let expected = before.filter { e in
                let leafBase = e.vpnBase.raw & ~(e.leafSize.bytes - 1)
                let qualifies = e.asid == asid || e.isGlobal
                return !(len > 0 && qualifies && leafBase <= last && leafBase + e.leafSize.bytes - 1 >= lo)
            }
            let n = a.flushRange(start: start, end: end, asid: asid)
            removed += n
            fracturedSeen += before.filter { $0.leafSize != $0.translation.size }.count
            #expect(snapshot(a) == expected, "round \(round)")
            #expect(countsConsistent(a))
            #expect(n == before.count - expected.count)
            if len < (64 << 12) {
                var p = lo
                while len > 0 && p <= last { b.flushPage(VirtAddr(p), asid: asid); p += 4096 }
                #expect(snapshot(b) == expected, "round \(round) per page")
                #expect(countsConsistent(b))
            }
        }
        #expect(removed > 100 && fracturedSeen > 0)
    }
}

@Suite("TLB dirty rule")
struct TLBDirtyTests {
    @Test func writeToCleanEntryNeedsWalk() {
        let tlb = TLB()
        tlb.insert(va(3), asid: a1, translation: t4K(3, [.writable, .user]), instruction: false)
        #expect(tlb.lookup(va(3), asid: a1, access: .read) != nil)
        #expect(tlb.lookup(va(3), asid: a1, access: .write) == nil)
        #expect(tlb.counters.dirtyMissesL1 == 1)
        #expect(tlb.counters.l1dHits == 1 && tlb.counters.l1dMisses == 0 && tlb.counters.l2Misses == 0)
        // The walk sets D; the insert overwrites the clean entry in place.
        tlb.insert(va(3), asid: a1, translation: t4K(3, rw), instruction: false)
        #expect(tlb.entryCount == 2)
        #expect(tlb.lookup(va(3), asid: a1, access: .write) != nil)
        // A clean entry found in the L2 after an L1 miss counts there.
        tlb.insert(va(0x40_0000 >> 12), asid: a1, translation: t2M(0x200, [.writable]), instruction: false)
        for i: UInt64 in 1...4 { tlb.insert(VirtAddr(0x40_0000 + i * 16 * Size.MiB), asid: a1, translation: t2M(i << 9), instruction: false) }
        #expect(tlb.lookup(VirtAddr(0x40_0000), asid: a1, access: .write) == nil)
        #expect(tlb.counters.dirtyMissesL2 == 1 && tlb.counters.l1dMisses == 1 && tlb.counters.l2Hits == 0)
        // Instruction fetches ignore the dirty state.
        tlb.insert(va(99), asid: a1, translation: t4K(99, [.user]), instruction: true)
        #expect(tlb.lookup(va(99), asid: a1, access: .execute) != nil)
    }
}

// MARK: Behaviour pinning

@Suite("TLB behaviour digest")
struct TLBDigestTests {
    /// Digests of `tlbTraceDigest` (30,000 operations) computed with the original,
    /// scan-everything implementation: the filter-tag miss paths must reproduce every
    /// hit, miss, LRU victim, counter and flush result exactly.
    @Test func seededTraceMatchesReference() {
        let expected: [[UInt64]] = [
            [0x7ddebb6690aa7467, 0x41474c9c2084e9aa, 0xc2c7a1050163c0c4],
            [0x908daa953780d5f5, 0x3f86b518ea335f24, 0x91df7221fb24a156],
            [0xf6562e5f8da897fd, 0xe07d60c4db80dc99, 0xe5e64ad70f76e030],
        ]
        for (gi, g) in tlbTraceGeometries().enumerated() {
            for (si, seed) in [UInt64(1), 2, 3].enumerated() {
                #expect(tlbTraceDigest(geometry: g, seed: seed, ops: 30_000) == expected[gi][si], "geometry \(gi) seed \(seed)")
            }
        }
    }
}

/// A seeded mix of every public TLB operation, folded into one FNV-1a digest of every
/// result, the counters and the final entries: pins the exact behaviour (hits, LRU
/// victims, counters, flush results) of an implementation.
private func tlbTraceDigest(geometry: TLBGeometry, seed: UInt64, ops: Int) -> UInt64 {
    var rng = seed
    func next() -> UInt64 {
        rng &+= 0x9E37_79B9_7F4A_7C15
        var z = rng
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ v: UInt64) { h = (h ^ v) &* 0x0000_0100_0000_01b3 }
    func mixT(_ t: Translation?) {
        guard let t else { mix(0xdead); return }
        mix(t.basePFN.raw); mix(UInt64(t.size.rawValue)); mix(UInt64(t.attrs.rawValue))
    }
    let tlb = TLB(geometry: geometry)
    // A few 1G regions, each with a few 2M regions, each with a few hundred 4K pages.
    func randomVA() -> VirtAddr {
        let r = next()
        let g = (r & 3) &+ 1                    // 1 GiB region 1...4
        let m = (r >> 2) % 6                     // 2 MiB piece
        let p = (r >> 8) % 300                   // 4 KiB page
        return VirtAddr((g << 30) | (m << 21) | (p << 12) | ((r >> 20) & 0xFFF))
    }
    for _ in 0..<ops {
        let r = next()
        let va = randomVA()
        let asid = ASID(UInt16(truncatingIfNeeded: (r >> 8) % 4))
        switch r % 100 {
        case 0..<45:
            let access: AccessKind = (r >> 12) % 5 == 0 ? .execute : (r >> 12) % 3 == 0 ? .write : .read
            let t = tlb.lookup(va, asid: asid, access: access)
            mixT(t)
            if t == nil {
                let sizeR = (r >> 16) % 20
                let size: PageSize = sizeR == 0 ? .size1G : sizeR < 4 ? .size2M : .size4K
                let frames = UInt64(size.bytes >> 12)
                let pfn = ((r >> 24) & 0xFFFF) &* frames
                var attrs = TranslationAttrs(rawValue: UInt8(truncatingIfNeeded: r >> 40) & 0x17)
                if (r >> 48) % 8 == 0 { attrs.insert(.global) }
                if access == .write, (r >> 52) % 4 != 0 { attrs.insert(.dirty) }
                tlb.insert(va, asid: asid, translation: Translation(basePFN: PFN(pfn), size: size, attrs: attrs),
                           instruction: access == .execute)
            }
        case 45..<70:
            let access: AccessKind = (r >> 12) % 5 == 0 ? .execute : (r >> 12) % 3 == 0 ? .write : .read
            mixT(tlb.lookup(va, asid: asid, access: access))
        case 70..<80:
            let sizeR = (r >> 16) % 20
            let size: PageSize = sizeR == 0 ? .size1G : sizeR < 4 ? .size2M : .size4K
            let frames = UInt64(size.bytes >> 12)
            var attrs = TranslationAttrs(rawValue: UInt8(truncatingIfNeeded: r >> 40) & 0x17)
            if (r >> 48) % 6 == 0 { attrs.insert(.global) }
            tlb.insert(va, asid: asid, translation: Translation(basePFN: PFN(((r >> 24) & 0xFFFF) &* frames), size: size, attrs: attrs),
                       instruction: (r >> 56) % 4 == 0)
        case 80..<92:
            mix(UInt64(tlb.flushPage(va, asid: asid)))
        case 92..<96:
            let len = ((r >> 16) % 700) << 12
            mix(UInt64(tlb.flushRange(start: va, end: VirtAddr(va.raw &+ len), asid: asid)))
        case 96:
            let len = ((r >> 16) % 3000) << 12
            mix(UInt64(tlb.flushKernelRange(start: va, end: VirtAddr(va.raw &+ len))))
        case 97:
            mix(UInt64(tlb.flushASID(asid)))
        case 98:
            if (r >> 16) % 4 == 0 { mix(UInt64(tlb.flushAllNonGlobal())) }
        default:
            if (r >> 16) % 8 == 0 { mix(UInt64(tlb.flushAll())) }
        }
    }
    let c = tlb.counters
    for v in [c.l1dHits, c.l1dMisses, c.l1iHits, c.l1iMisses, c.l2Hits, c.l2Misses, c.dirtyMissesL1, c.dirtyMissesL2,
              c.inserts, c.refills, c.l1dEvictions, c.l1iEvictions, c.l2Evictions,
              c.flushPage.calls, c.flushPage.entries, c.flushRange.calls, c.flushRange.entries,
              c.flushASID.entries, c.flushAllNonGlobal.entries, c.flushAll.entries, c.flushKernelRange.entries] { mix(v) }
    tlb.forEachEntry { e in
        mix(UInt64(e.level.rawValue)); mix(e.vpnBase.raw); mix(UInt64(e.asid.raw)); mixT(e.translation)
        mix(UInt64(e.leafSize.rawValue))
    }
    for l in TLBLevel.allCases { mix(UInt64(tlb.entryCount(l))) }
    return h
}

/// Geometries for the trace: the default, a small one (evictions everywhere), and odd associativities.
private func tlbTraceGeometries() -> [TLBGeometry] {
    var small = TLBGeometry()
    small.l1d4K = TLBArrayGeometry(entries: 8, ways: 4)
    small.l1d2M = TLBArrayGeometry(entries: 4, ways: 2)
    small.l1d1G = TLBArrayGeometry(entries: 2, ways: 2)
    small.l1i4K = TLBArrayGeometry(entries: 16, ways: 8)
    small.l1i2M = TLBArrayGeometry(entries: 4, ways: 4)
    small.l2 = TLBArrayGeometry(entries: 48, ways: 12)
    small.l2_1G = TLBArrayGeometry(entries: 2, ways: 1)
    var wide = TLBGeometry()
    wide.l1d4K = TLBArrayGeometry(entries: 32, ways: 16)
    wide.l1d2M = TLBArrayGeometry(entries: 9, ways: 9)
    wide.l1d1G = TLBArrayGeometry(entries: 1, ways: 1)
    wide.l1i4K = TLBArrayGeometry(entries: 24, ways: 3)
    wide.l1i2M = TLBArrayGeometry(entries: 17, ways: 17)
    wide.l2 = TLBArrayGeometry(entries: 96, ways: 24)
    wide.l2_1G = TLBArrayGeometry(entries: 8, ways: 8)
    return [TLBGeometry(), small, wide]
}
