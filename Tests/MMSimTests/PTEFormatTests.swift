// Bit patterns of known entries (Intel SDM vol. 3A §4.5, arch/x86/include/asm/pgtable_types.h;
// Arm ARM D8.3, arch/arm64/include/asm/pgtable-{hwdef,prot}.h) and neutral round trips.
import Testing
@testable import MMSim

@Suite struct X86FormatTests {
    @Test func userReadWriteAccessedDirty4K() {
        let e = userRW(0x12345)
        var nx = e
        nx.noExec = false
        // P(0x1)|RW(0x2)|US(0x4)|A(0x20)|D(0x40) = 0x67, PFN 0x12345 << 12.
        #expect(X86PTE.encode(nx) == 0x0000_0000_1234_5067)
        // ... plus NX (bit 63).
        #expect(X86PTE.encode(e) == 0x8000_0000_1234_5067)
        #expect(PTEFormat.decode(0x8000_0000_1234_5067, level: .pte, arch: .x86_64) == e)
    }

    @Test func pmdLeaf2M() {
        // P|RW|US|A|D (0x67) | PS (0x80) = 0xE7, frame 0x400000 (PFN 0x400).
        let e = LeafEntry(pfn: PFN(0x400), size: .size2M, writable: true, user: true, accessed: true, dirty: true)
        #expect(X86PTE.encode(e) == 0x0000_0000_0040_00E7)
        #expect(PTEFormat.decode(0x4000E7, level: .pmd, arch: .x86_64) == e)
        #expect(PTEFormat.classify(0x4000E7, level: .pmd, arch: .x86_64) == .leaf)
        // Without PS the same bits at PMD level point at a PTE table.
        #expect(PTEFormat.classify(0x400067, level: .pmd, arch: .x86_64) == .table(PFN(0x400)))
    }

    @Test func globalKernelEntry() {
        // __PAGE_KERNEL = P|RW|A|D|G|NX = 0x8000000000000163; PFN 0x1000.
        let e = LeafEntry(pfn: PFN(0x1000), writable: true, accessed: true, dirty: true, global: true, noExec: true)
        #expect(X86PTE.encode(e) == 0x8000_0000_0100_0163)
        #expect(X86PTE.pageKernel == 0x8000_0000_0000_0163)
    }

    @Test func largeLeafCacheModeUsesPATBit12() {
        // Kernel 2M WT: P|RW|PWT|PCD|A|D|PS|G = 0x1FB, PAT_LARGE (bit 12), NX; frame 0x200000.
        let e = LeafEntry(pfn: PFN(0x200), size: .size2M, writable: true, accessed: true, dirty: true,
                          global: true, noExec: true, cache: .writeThrough)
        #expect(X86PTE.encode(e) == 0x8000_0000_0020_11FB)
        #expect(X86PTE.decode(0x8000_0000_0020_11FB, size: .size2M) == e)
        // 4K WC: PWT (0x8) only.
        let wc = LeafEntry(pfn: PFN(1), writable: true, accessed: true, cache: .writeCombining)
        #expect(X86PTE.encode(wc) == 0x1_02B)
    }

    @Test func tableEntries() {
        // _PAGE_TABLE = P|RW|US|A|D = 0x67; _KERNPG_TABLE = P|RW|A|D = 0x63.
        #expect(X86PTE.tableEntry(PFN(0x5678), kernel: false) == 0x0567_8067)
        #expect(X86PTE.tableEntry(PFN(0x5678), kernel: true) == 0x0567_8063)
    }

    @Test func protNoneInvertsTheFrame() {
        // PAGE_NONE = A|PROTNONE = 0x120; the PFN field holds ~0x12345 over bits 12-51 (L1TF).
        let e = LeafEntry(pfn: PFN(0x12345), present: false, protNone: true, accessed: true)
        #expect(X86PTE.encode(e) == 0x000F_FFFF_EDCB_A120)
        #expect(PTEFormat.decode(0x000F_FFFF_EDCB_A120, level: .pte, arch: .x86_64) == e)
        #expect(PTEFormat.classify(0x000F_FFFF_EDCB_A120, level: .pte, arch: .x86_64) == .leaf)
        // A swap-like entry (not present, no PROTNONE) is not a leaf.
        #expect(PTEFormat.classify(0x0000_0000_0000_0200, level: .pte, arch: .x86_64) == .nonPresent)
    }

    @Test func specialAndSoftDirty() {
        // P|A (0x21) | SPECIAL (bit 9, 0x200) | SOFT_DIRTY (bit 11, 0x800).
        let e = LeafEntry(pfn: PFN(7), accessed: true, special: true, softDirty: true)
        #expect(X86PTE.encode(e) == 0x7_A21)
    }
}

@Suite struct Arm64FormatTests {
    @Test func pageKernel() {
        // PROT_NORMAL: TYPE_PAGE (0x3) | SH inner (0x300) | AF (0x400) | DBM/WRITE (bit 51)
        // | PXN (53) | UXN (54), AttrIndx MT_NORMAL (0); writable with AP[2] clear = hardware dirty.
        #expect(Arm64PTE.pageKernel == 0x0068_0000_0000_0703)
        let e = LeafEntry(pfn: PFN(0x40000), writable: true, accessed: true, dirty: true, global: true, noExec: true)
        #expect(Arm64PTE.encode(e) == 0x0068_0000_4000_0703)
        #expect(PTEFormat.decode(0x0068_0000_4000_0703, level: .pte, arch: .arm64) == e)
    }

    @Test func pageReadonly() {
        // _PAGE_DEFAULT (0x703) | USER (0x40) | RDONLY (0x80) | nG (0x800) | PXN | UXN.
        #expect(Arm64PTE.pageReadonly == 0x0060_0000_0000_0FC3)
        let e = LeafEntry(pfn: PFN(0x12345), user: true, accessed: true, noExec: true)
        #expect(Arm64PTE.encode(e) == 0x0060_0000_1234_5FC3)
        #expect(PTEFormat.decode(0x0060_0000_1234_5FC3, level: .pte, arch: .arm64) == e)
    }

    @Test func userWritableWithDBM() {
        // PAGE_SHARED: PAGE_READONLY | PTE_WRITE (DBM, bit 51): writable-clean, AP[2] still set.
        #expect(Arm64PTE.pageShared == 0x0068_0000_0000_0FC3)
        let clean = userRW(0x12345, dirty: false)
        #expect(Arm64PTE.encode(clean) == 0x0068_0000_1234_5FC3)
        // Dirty: AP[2] (0x80) cleared, as the hardware DBM update leaves it: 0xF43.
        #expect(Arm64PTE.encode(userRW(0x12345)) == 0x0068_0000_1234_5F43)
        #expect(PTEFormat.decode(0x0068_0000_1234_5F43, level: .pte, arch: .arm64) == userRW(0x12345))
        // Read-only but dirty (pte_wrprotect() of a dirty page): PTE_DIRTY (bit 55) | RDONLY.
        var ro = userRW(0x12345)
        ro.writable = false
        #expect(Arm64PTE.encode(ro) == 0x00E0_0000_1234_5FC3)
    }

    @Test func blockDescriptor() {
        // Kernel 2M block: PMD_TYPE_SECT (0x1) | SH (0x300) | AF (0x400) | DBM | PXN | UXN; bit 1 clear.
        let e = LeafEntry(pfn: PFN(0x40200), size: .size2M, writable: true, accessed: true, dirty: true,
                          global: true, noExec: true)
        #expect(Arm64PTE.encode(e) == 0x0068_0000_4020_0701)
        #expect(PTEFormat.classify(0x0068_0000_4020_0701, level: .pmd, arch: .arm64) == .leaf)
        #expect(PTEFormat.decode(0x0068_0000_4020_0701, level: .pmd, arch: .arm64) == e)
        // A 1 GiB block at level 1 (PUD).
        let g = LeafEntry(pfn: PFN(0x40000), size: .size1G, user: true, accessed: true, noExec: true)
        #expect(Arm64PTE.encode(g) == 0x0060_0000_4000_0FC1)
        // The same bits at level 0 are not a valid block with a 4 KiB granule.
        #expect(PTEFormat.classify(0x0060_0000_4000_0FC1, level: .p4d, arch: .arm64) == .nonPresent)
    }

    @Test func tableDescriptor() {
        // PMD_TYPE_TABLE (0x3) | PMD_TABLE_PXN (bit 59) for user tables; PMD_TABLE_UXN (bit 60) for kernel.
        #expect(Arm64PTE.tableEntry(PFN(0x8765), kernel: false) == 0x0800_0000_0876_5003)
        #expect(Arm64PTE.tableEntry(PFN(0x8765), kernel: true) == 0x1000_0000_0876_5003)
        #expect(PTEFormat.classify(0x0800_0000_0876_5003, level: .pmd, arch: .arm64) == .table(PFN(0x8765)))
    }

    @Test func pageNone() {
        // PAGE_NONE: (_PAGE_DEFAULT & ~VALID) (0x702) | PRESENT_INVALID (nG, 0x800) | RDONLY (0x80) | PXN | UXN.
        #expect(Arm64PTE.pageNone == 0x0060_0000_0000_0F82)
        let e = LeafEntry(pfn: PFN(0x12345), present: false, protNone: true, accessed: true, noExec: true)
        #expect(Arm64PTE.encode(e) == 0x0060_0000_1234_5F82)
        #expect(PTEFormat.decode(0x0060_0000_1234_5F82, level: .pte, arch: .arm64) == e)
    }
}

@Suite struct RoundTripTests {
    /// Neutral entries the architecture can express, from a seeded generator.
    static func entries(_ arch: Architecture) -> [LeafEntry] {
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return rng >> 11
        }
        var out: [LeafEntry] = []
        for _ in 0..<4000 {
            let bits = next()
            let size = PageSize(rawValue: Int(bits % 3))!
            let pfn = (next() & 0x3_FFFF_FFFF) & ~((size.bytes >> 12) - 1)
            var e = LeafEntry(pfn: PFN(pfn), size: size, present: bits & 8 != 0, protNone: bits & 16 != 0,
                              writable: bits & 32 != 0, user: bits & 64 != 0, accessed: bits & 128 != 0,
                              dirty: bits & 256 != 0, global: bits & 512 != 0, noExec: bits & 1024 != 0,
                              special: bits & 2048 != 0, softDirty: bits & 4096 != 0,
                              cache: CacheMode(rawValue: UInt8((bits >> 13) % 7))!)
            if e.protNone { e.present = false }
            if !e.present && !e.protNone { continue }
            if arch.isX86 {
                if e.cache == .tagged { e.cache = .writeBack }
                if e.protNone { e.writable = false; e.user = false; e.global = false; e.noExec = false }
            } else {
                if e.cache == .writeThrough || e.cache == .writeProtect { e.cache = .writeCombining }
                e.softDirty = false
                if e.protNone { e.writable = false; e.user = false; e.global = false; e.noExec = true }
            }
            out.append(e)
        }
        return out
    }

    @Test(arguments: Architecture.allCases)
    func neutralToBitsToNeutral(_ arch: Architecture) {
        let entries = Self.entries(arch)
        #expect(entries.count > 1000)
        for e in entries {
            let raw = PTEFormat.encode(e, arch: arch)
            #expect(PTEFormat.classify(raw, level: e.size.level, arch: arch) == .leaf, "\(e)")
            #expect(PTEFormat.decode(raw, level: e.size.level, arch: arch) == e, "\(arch) \(e) raw \(String(raw, radix: 16))")
        }
    }
}
