// mm/page_alloc.c: a differential check that the page allocator's hot paths hand out the
// same PFNs in the same order and leave the same free lists, pcp lists, counters and
// struct page records as the implementation they were optimized from.
//
// How the expected digests were obtained: this file was added to branch perf-alloc first,
// on top of commit 2d0a658 (main before any allocator optimization), with the expected
// values unset; `swift test --filter AllocatorEquivalence` printed the digests computed by
// the unmodified allocator, and they were pasted in below. Every later change to
// Sources/MMSim/Alloc must keep them: a different digest means a different PFN sequence,
// free-list order, counter or page state.

import Testing
@testable import MMSim
import MMSimTestSupport

/// FNV-1a over 64-bit words.
private struct Digest {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ v: UInt64) {
        var x = v
        for _ in 0..<8 {
            h ^= x & 0xff
            h = h &* 0x0000_0100_0000_01b3
            x >>= 8
        }
    }
    mutating func add(_ v: Int) { add(UInt64(bitPattern: Int64(v))) }
    mutating func add(_ v: Int64) { add(UInt64(bitPattern: v)) }
    mutating func add(_ v: Bool) { add(UInt64(v ? 1 : 0)) }
}

/// splitmix64 driven by its own arithmetic, so that the sequence does not depend on the
/// standard library's range reduction.
private struct Rng {
    var g: SeededGenerator
    init(_ seed: UInt64) { g = SeededGenerator(seed: seed) }
    mutating func below(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
}

@Suite("Allocator equivalence")
struct AllocatorEquivalenceTests {
    /// Everything observable about the allocator: zone free areas and free-list links,
    /// virgin blocks, zone stats, pcp state and list contents, every counter, and every
    /// materialized struct page record.
    private static func stateDigest(_ m: Machine) -> UInt64 {
        var d = Digest()
        let a = m.allocator
        for z in a.zones {
            for o in 0...PageOrder.max.raw {
                d.add(z.nrFree[o])
                for mt in MigrateType.allCases { d.add(z.freeBlocks(order: o, mt)) }
            }
            for i in 0..<z.lists.count {
                d.add(UInt64(z.lists[i].head)); d.add(UInt64(z.lists[i].tail)); d.add(z.lists[i].count)
            }
            d.add(z.virgin.count)
            for r in z.virgin.runs[z.virgin.first...] { d.add(r.start); d.add(r.end) }
            for i in 0..<z.stats.count { d.add(z.stats[i]) }
            for c in 0..<a.cpuCount {
                let p = z.pcp[c]
                d.add(p.count); d.add(p.high); d.add(p.highMin); d.add(p.highMax); d.add(p.batch)
                d.add(p.allocFactor); d.add(p.freeCount); d.add(p.prevFreeHighOrder)
                for li in 0..<PerCPUPages.listCount {
                    let l = z.pcpList(cpu: c, li)
                    d.add(l.count)
                    for v in l { d.add(UInt64(v)) }
                }
            }
        }
        for s in VMStat.allCases { d.add(m.counters[s]) }
        var pfn: UInt64 = 0
        while pfn < a.frames.endPFN {
            guard let p = a.frames.peek(PFN(pfn)) else {
                pfn = (pfn | UInt64(FrameTable.framesPerSection - 1)) + 1
                continue
            }
            do {
                let r = p.pointee
                d.add(pfn)
                d.add(UInt64(r.flags.rawValue) | UInt64(r.state.rawValue) << 32 | UInt64(r.order) << 40
                      | UInt64(r.zone) << 48 | UInt64(r.pcpMigratetype) << 56)
                d.add(UInt64(UInt32(bitPattern: r.refcount)) | UInt64(UInt32(bitPattern: r.mapcount)) << 32)
                d.add(UInt64(r.next) | UInt64(r.prev) << 32)
                d.add(UInt64(r.mapping) | UInt64(r.spare) << 32)
                d.add(r.index); d.add(r.priv); d.add(r.content); d.add(r.table == nil)
            }
            pfn += 1
        }
        d.add(a.badPages)
        return d.h
    }

    /// A seeded mix of allocations and frees of orders 0...10 with several GFP masks on two
    /// CPUs, bursts of order-0 allocations and frees (pcp refills and drains), and full
    /// drains. Returns the digest of the PFN sequence and of the final state.
    private static func runMix(_ m: Machine, seed: UInt64, steps: Int, burst: Int) throws -> (UInt64, UInt64) {
        let a = m.allocator
        let masks: [GFP] = [.highuserMovable, .kernel, .highuserMovable, .atomic, .nowait, .kernelDMA32,
                            [.kernel, .dma], [.kernel, .reclaimable], [.highuserMovable, .zero], [.kernel, .comp]]
        var rng = Rng(seed)
        var seq = Digest()
        var live: [(pfn: PFN, order: Int)] = []
        for step in 0..<steps {
            a.currentCPU = rng.below(a.cpuCount)
            let r = rng.below(100)
            if r < 3 {
                // A burst: fault in many order-0 pages, then unmap them all.
                let gfp = masks[rng.below(3)]
                var got: [PFN] = []
                for _ in 0..<burst {
                    guard let pfn = a.allocPages(gfp.union(.noWarn)) else { seq.add(UInt64.max); break }
                    seq.add(pfn.raw)
                    got.append(pfn)
                }
                if rng.below(2) == 0 { got.reverse() }
                for p in got { a.freePages(p, order: 0) }
            } else if r < 4 {
                a.drainPages(cpu: rng.below(2) == 0 ? nil : a.currentCPU)
            } else if live.isEmpty || r < 55 {
                let gfp = masks[rng.below(masks.count)]
                let order = rng.below(10) < 6 ? 0 : rng.below(PageOrder.max.raw + 1)
                guard let pfn = a.allocPages(gfp.union(.noWarn), order: order) else {
                    seq.add(UInt64.max - 1)
                    continue
                }
                seq.add(pfn.raw | UInt64(order) << 48)
                live.append((pfn, order))
            } else {
                let (pfn, order) = live.remove(at: rng.below(live.count))
                a.freePages(pfn, order: order)
            }
            if step % 500 == 0 { try m.checkInvariants() }
        }
        try m.checkInvariants()
        let mid = stateDigest(m)
        seq.add(mid)
        for (pfn, order) in live { a.freePages(pfn, order: order) }
        a.drainPages()
        try m.checkInvariants()
        #expect(a.badPages == 0)
        return (seq.h, stateDigest(m))
    }

    @Test("Small machine, two CPUs: same PFN sequence, free lists, pcp state, counters and page records")
    func smallMix() throws {
        let m = try TestMachines.small(cpus: 2)
        let (seq, state) = try Self.runMix(m, seed: 0x5eed_a110c, steps: 4000, burst: 700)
        print("AllocatorEquivalence small seq=\(String(seq, radix: 16)) state=\(String(state, radix: 16))")
        #expect(seq == Self.expectedSmall.seq, "PFN sequence digest \(String(seq, radix: 16))")
        #expect(state == Self.expectedSmall.state, "final state digest \(String(state, radix: 16))")
    }

    @Test("Small machine with little memory: fallbacks, claims, steals and failures")
    func tightMix() throws {
        let m = try TestMachines.small(cpus: 2, memory: 64 * Size.MiB)
        let (seq, state) = try Self.runMix(m, seed: 0x7157, steps: 3000, burst: 2500)
        print("AllocatorEquivalence tight seq=\(String(seq, radix: 16)) state=\(String(state, radix: 16))")
        #expect(seq == Self.expectedTight.seq, "PFN sequence digest \(String(seq, radix: 16))")
        #expect(state == Self.expectedTight.state, "final state digest \(String(state, radix: 16))")
    }

    @Test("Reference machine: 64 MiB of first-touch pages on and off the pcp list, then mixed orders")
    func referenceBulk() throws {
        let m = try Machine(.reference)
        let a = m.allocator
        var seq = Digest()
        var pages: [PFN] = []
        for _ in 0..<16384 {
            let p = try #require(a.allocPages(.highuserMovable))
            seq.add(p.raw)
            pages.append(p)
        }
        for p in pages { a.freePages(p, order: 0) }
        pages.removeAll()
        for _ in 0..<4096 {
            let p = try #require(a.allocPages(.highuserMovable))
            seq.add(p.raw)
            pages.append(p)
        }
        for p in pages.reversed() { a.freePages(p, order: 0) }
        try m.checkInvariants()
        let (s2, state) = try Self.runMix(m, seed: 0x2efe_2e9c, steps: 1500, burst: 3000)
        seq.add(s2)
        print("AllocatorEquivalence reference seq=\(String(seq.h, radix: 16)) state=\(String(state, radix: 16))")
        #expect(seq.h == Self.expectedReference.seq, "PFN sequence digest \(String(seq.h, radix: 16))")
        #expect(state == Self.expectedReference.state, "final state digest \(String(state, radix: 16))")
    }

    static let expectedSmall: (seq: UInt64, state: UInt64) = (0x0605_58ea_02e1_541e, 0xe8de_39b5_497c_8e08)
    static let expectedTight: (seq: UInt64, state: UInt64) = (0xae2e_95aa_0d0a_e742, 0x0bdc_1ed6_de0f_56eb)
    static let expectedReference: (seq: UInt64, state: UInt64) = (0x1227_66f3_d5a9_2ffe, 0x19c6_a0a5_1484_8780)
}
