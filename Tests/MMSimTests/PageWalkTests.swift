// The hardware walk: translations of every size, accessed/dirty updates in the raw entries,
// and each fault with the x86 #PF error code / arm64 ESR the kernel's handler would see.
import Testing
@testable import MMSim

private func walk(_ pt: PageTable, _ va: UInt64, _ access: AccessKind = .read, _ priv: Privilege = .user,
                  control: MMUControl? = nil, kernelRoot: PFN? = nil) -> PageWalkResult {
    PageWalk(arch: pt.arch, frames: pt.frames, control: control)
        .walk(root: pt.root, va: VirtAddr(va), access: access, privilege: priv, kernelRoot: kernelRoot)
}

@Suite struct WalkTranslationTests {
    @Test(arguments: Architecture.allCases)
    func leavesOfEverySize(_ arch: Architecture) throws {
        let (_, _, pt) = makeTree(arch)
        try pt.setLeaf(VirtAddr(0x1000), userRW(0x1234))
        try pt.setLeaf(VirtAddr(0x20_0000), userRW(0x800, .size2M))
        try pt.setLeaf(VirtAddr(0x4000_0000), userRW(0x80000, .size1G))
        let top = arch.levels
        let r4 = walk(pt, 0x1ABC)
        #expect(r4.translation == Translation(basePFN: PFN(0x1234), size: .size4K, attrs: [.writable, .user, .noExec, .dirty]))
        #expect(r4.memoryReferences == top)
        let r2 = walk(pt, 0x2F_F123, .write)
        #expect(r2.translation?.size == .size2M && r2.translation?.basePFN == PFN(0x800))
        #expect(r2.translation?.physAddr(for: VirtAddr(0x2F_F123)) == PhysAddr(0x8F_F123))
        #expect(r2.memoryReferences == top - 1)
        let r1 = walk(pt, 0x7FFF_FFFF)
        #expect(r1.translation?.size == .size1G && r1.translation?.pfn(for: VirtAddr(0x7FFF_FFFF)) == PFN(0xBFFFF))
        #expect(r1.memoryReferences == top - 2)
    }

    @Test func x86KernelHalfAndGlobal() throws {
        let (_, _, pt) = makeTree(.x86_64)
        let va: UInt64 = 0xFFFF_8880_0000_1000
        try pt.setLeaf(VirtAddr(va), LeafEntry(pfn: PFN(1), writable: true, accessed: true, dirty: true, global: true, noExec: true))
        let t = try #require(walk(pt, va, .write, .kernel).translation)
        #expect(t.attrs == [.writable, .global, .dirty, .noExec])
    }

    @Test func arm64KernelHalfUsesTTBR1() throws {
        let (frames, _, user) = makeTree(.arm64)
        let source = BumpFrameSource(frames: frames, first: 0x9000)
        let kernel = try #require(PageTable(arch: .arm64, frames: frames, source: source, kernel: true))
        let va: UInt64 = 0xFFFF_0000_0000_1000
        try kernel.setLeaf(VirtAddr(va), LeafEntry(pfn: PFN(0x40000), writable: true, accessed: true, dirty: true, global: true, noExec: true))
        let t = try #require(walk(user, va, .write, .kernel, kernelRoot: kernel.root).translation)
        #expect(t.basePFN == PFN(0x40000) && t.attrs == [.writable, .global, .dirty, .noExec])
        // Without TTBR1 the address faults at level 0.
        let f = try #require(walk(user, va, .read, .kernel).fault)
        #expect(f.reason == .nonCanonical && f.arm64FSC == 0x04)
        // EL0 access to a kernel page: permission fault, level 3.
        let u = try #require(walk(user, va, .read, .user, kernelRoot: kernel.root).fault)
        #expect(u.reason == .userToSupervisor && u.arm64FSC == 0x0F)
    }

    @Test func arm64TopByteIgnoreForUserAddresses() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(5))
        #expect(walk(pt, 0x0F00_0000_0000_1000).translation?.basePFN == PFN(5))
        var c = MMUControl(arch: .arm64)
        c.tbi0 = false
        #expect(walk(pt, 0x0F00_0000_0000_1000, control: c).fault?.arm64FSC == 0x04)
    }
}

@Suite struct AccessedDirtyTests {
    @Test(arguments: [Architecture.x86_64, .x86_64_5level])
    func x86SetsAOnEveryLevelAndDOnTheLeaf(_ arch: Architecture) throws {
        let (_, _, pt) = makeTree(arch)
        let va = VirtAddr(0x7F12_3456_7000)
        try pt.setLeaf(va, userRW(0x42, accessed: false, dirty: false))
        // Clear A in every intermediate entry so the walk's updates are visible.
        var level = arch.topLevel
        while level != .pte {
            pt.slot(va, level: level)!.pointee &= ~X86PTE.accessed
            level = level.below!
        }
        let r = walk(pt, va.raw)
        #expect(r.translation?.attrs.contains(.dirty) == false)
        level = arch.topLevel
        while level != .pte {
            #expect(pt.rawEntry(va, level: level)! & X86PTE.accessed != 0, "A at \(level)")
            level = level.below!
        }
        #expect(pt.rawEntry(va, level: .pte) == 0x8000_0000_0004_2027)   // P|RW|US|A, NX
        #expect(walk(pt, va.raw, .write).translation?.attrs.contains(.dirty) == true)
        #expect(pt.rawEntry(va, level: .pte) == 0x8000_0000_0004_2067)   // + D
    }

    @Test func x86LargeLeafGetsAAndD() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x4000_0000), userRW(0x40000, .size1G, accessed: false, dirty: false))
        _ = walk(pt, 0x4000_1000, .write)
        #expect(pt.rawEntry(VirtAddr(0x4000_0000), level: .pud) == 0x8000_0000_4000_00E7)   // P|RW|US|A|D|PS
    }

    @Test func x86FaultingAccessLeavesTheLeafUntouched() throws {
        let (_, _, pt) = makeTree(.x86_64)
        var ro = userRW(0x42, accessed: false, dirty: false)
        ro.writable = false
        try pt.setLeaf(VirtAddr(0x1000), ro)
        #expect(walk(pt, 0x1000, .write).fault?.reason == .writeToReadOnly)
        #expect(pt.rawEntry(VirtAddr(0x1000), level: .pte) == 0x8000_0000_0004_2005)  // still no A
    }

    @Test func arm64HardwareAFAndDBM() throws {
        let (_, _, pt) = makeTree(.arm64)
        let va = VirtAddr(0x1000)
        try pt.setLeaf(va, userRW(0x12345, accessed: false, dirty: false))
        #expect(pt.rawEntry(va, level: .pte) == 0x0068_0000_1234_5BC3)     // PAGE_SHARED without AF
        let r = walk(pt, va.raw)
        #expect(r.translation?.attrs == [.writable, .user, .noExec])       // writable-clean
        #expect(pt.rawEntry(va, level: .pte) == 0x0068_0000_1234_5FC3)     // AF set, AP[2] still set
        let w = walk(pt, va.raw, .write)
        #expect(w.translation?.attrs.contains(.dirty) == true)
        #expect(pt.rawEntry(va, level: .pte) == 0x0068_0000_1234_5F43)     // AP[2] cleared by DBM
        #expect(PTEFormat.decode(0x0068_0000_1234_5F43, level: .pte, arch: .arm64)?.dirty == true)
    }

    @Test func arm64WithoutHAFDBSFaults() throws {
        let (_, _, pt) = makeTree(.arm64)
        var c = MMUControl(arch: .arm64)
        c.hardwareAccessFlag = false
        c.hardwareDirty = false
        try pt.setLeaf(VirtAddr(0x1000), userRW(1, accessed: false, dirty: false))
        let af = try #require(walk(pt, 0x1000, control: c).fault)
        // Access flag fault, level 3 (FSC 0b001011), data abort from EL0 (EC 0x24), IL.
        #expect(af.reason == .accessFlag && af.arm64ESR == 0x9200_000B)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1, accessed: true, dirty: false))
        let perm = try #require(walk(pt, 0x1000, .write, control: c).fault)
        // Permission fault level 3 (0b001111) with WnR (bit 6).
        #expect(perm.reason == .writeToReadOnly && perm.arm64ESR == 0x9200_004F)
        #expect(walk(pt, 0x1000, .read, control: c).translation != nil)
    }
}

@Suite struct X86FaultTests {
    @Test func nonCanonicalIsGeneralProtection() throws {
        let (_, _, pt) = makeTree(.x86_64)
        let f = try #require(walk(pt, 0x0000_8000_0000_0000).fault)
        #expect(f.reason == .nonCanonical && f.isGeneralProtection && f.x86ErrorCode == 0)
        #expect(walk(pt, 0x0000_8000_0000_0000).memoryReferences == 0)
        // The same address is canonical with LA57: it just is not mapped.
        let (_, _, pt5) = makeTree(.x86_64_5level)
        #expect(walk(pt5, 0x0000_8000_0000_0000).fault?.reason == .notPresent)
        #expect(walk(pt5, 0x0100_0000_0000_0000).fault?.isGeneralProtection == true)
        #expect(walk(pt5, 0xFF00_0000_0000_0000).fault?.level == .pgd)   // canonical upper half, unmapped
    }

    @Test func notPresentAtEachLevel() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        let cases: [(UInt64, PageTableLevel, Int)] = [
            (0x80_0000_0000, .p4d, 1), (0x4000_0000, .pud, 2), (0x20_0000, .pmd, 3), (0x2000, .pte, 4),
        ]
        for (va, level, refs) in cases {
            let r = walk(pt, va, .write)
            #expect(r.fault?.reason == .notPresent && r.fault?.level == level && r.memoryReferences == refs)
            #expect(r.fault?.x86ErrorCode == X86PF.write | X86PF.user)   // 0x6: W, U, P clear
        }
        #expect(walk(pt, 0x2000, .execute, .kernel).fault?.x86ErrorCode == X86PF.instr)  // 0x10
    }

    @Test func reservedBits() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        // An address bit above MAXPHYADDR (46): RSVD|P|U = 0xD.
        pt.slot(VirtAddr(0x1000), level: .pte)!.pointee |= 1 << 50
        var f = try #require(walk(pt, 0x1000).fault)
        #expect(f.reason == .reservedBit && f.level == .pte && f.x86ErrorCode == 0xD)
        // PS in a PML4E.
        pt.slot(VirtAddr(0x1000), level: .p4d)!.pointee |= X86PTE.pse
        f = try #require(walk(pt, 0x1000, .write).fault)
        #expect(f.reason == .reservedBit && f.level == .p4d && f.x86ErrorCode == 0xF)
        // Bit 13 in a 2 MiB leaf (below its frame bits).
        let (_, _, pt2) = makeTree(.x86_64)
        try pt2.setLeaf(VirtAddr(0x20_0000), userRW(0x200, .size2M))
        pt2.slot(VirtAddr(0x20_0000), level: .pmd)!.pointee |= 1 << 13
        f = try #require(walk(pt2, 0x20_0000).fault)
        #expect(f.reason == .reservedBit && f.level == .pmd)
        // With MAXPHYADDR 52 bit 50 is an ordinary address bit.
        var c = MMUControl(arch: .x86_64)
        c.physAddrBits = 52
        let (_, _, pt3) = makeTree(.x86_64)
        try pt3.setLeaf(VirtAddr(0x1000), userRW(1 << 38))
        #expect(walk(pt3, 0x1000, control: c).translation?.basePFN == PFN(1 << 38))
        #expect(walk(pt3, 0x1000).fault?.reason == .reservedBit)
    }

    @Test func protectionFaults() throws {
        let (_, _, pt) = makeTree(.x86_64)
        var ro = userRW(1)
        ro.writable = false
        ro.noExec = false
        try pt.setLeaf(VirtAddr(0x1000), ro)                                                 // user RO, exec
        try pt.setLeaf(VirtAddr(0x2000), userRW(2))                                          // user RW, NX
        try pt.setLeaf(VirtAddr(0x3000), LeafEntry(pfn: PFN(3), accessed: true, noExec: true)) // kernel RO
        func code(_ va: UInt64, _ a: AccessKind, _ p: Privilege, _ c: MMUControl? = nil) -> (FaultReason?, UInt32?) {
            let f = walk(pt, va, a, p, control: c).fault
            return (f?.reason, f?.x86ErrorCode)
        }
        #expect(code(0x1000, .write, .user) == (.writeToReadOnly, 0x7))     // P|W|U
        #expect(code(0x3000, .read, .user) == (.userToSupervisor, 0x5))     // P|U
        #expect(code(0x2000, .execute, .user) == (.noExec, 0x15))           // P|U|I
        #expect(code(0x1000, .execute, .kernel) == (.smep, 0x11))           // P|I
        #expect(code(0x1000, .read, .kernel) == (.smap, 0x1))               // P
        #expect(code(0x3000, .write, .kernel) == (.writeToReadOnly, 0x3))   // P|W
        #expect(code(0x3000, .execute, .kernel) == (.noExec, 0x11))
        var c = MMUControl(arch: .x86_64)
        c.writeProtect = false
        c.alignmentCheck = true
        c.smep = false
        #expect(code(0x3000, .write, .kernel, c).0 == nil)                  // CR0.WP=0
        #expect(code(0x1000, .write, .kernel, c).0 == nil)                  // stac() + WP=0
        #expect(code(0x1000, .execute, .kernel, c).0 == nil)                // no SMEP
        #expect(code(0x1000, .execute, .user) == (nil, nil))
    }

    @Test func rightsCombineOverAllLevels() throws {
        let (_, _, pt) = makeTree(.x86_64)
        var e = userRW(1)
        e.noExec = false
        try pt.setLeaf(VirtAddr(0x1000), e)
        #expect(walk(pt, 0x1000, .execute).translation != nil)
        pt.slot(VirtAddr(0x1000), level: .pmd)!.pointee |= X86PTE.nx          // XD in the PDE
        #expect(walk(pt, 0x1000, .execute).fault?.reason == .noExec)
        pt.slot(VirtAddr(0x1000), level: .pud)!.pointee &= ~X86PTE.rw          // R/W clear in the PDPTE
        #expect(walk(pt, 0x1000, .write).fault?.reason == .writeToReadOnly)
        #expect(walk(pt, 0x1000).translation?.attrs.contains(.writable) == false)
        pt.slot(VirtAddr(0x1000), level: .p4d)!.pointee &= ~X86PTE.user        // U/S clear in the PML4E
        #expect(walk(pt, 0x1000).fault?.reason == .userToSupervisor)
    }

    @Test func protNoneIsNotPresentToTheHardware() throws {
        let (_, _, pt) = makeTree(.x86_64)
        try pt.setLeaf(VirtAddr(0x1000), LeafEntry(pfn: PFN(1), present: false, protNone: true, accessed: true))
        let f = try #require(walk(pt, 0x1000).fault)
        #expect(f.reason == .notPresent && f.x86ErrorCode == X86PF.user)
    }
}

@Suite struct Arm64FaultTests {
    @Test func translationFaultLevels() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        let cases: [(UInt64, UInt32)] = [
            (0x80_0000_0000, 0x04), (0x4000_0000, 0x05), (0x20_0000, 0x06), (0x2000, 0x07),
        ]
        for (va, fsc) in cases {
            let f = try #require(walk(pt, va).fault)
            #expect(f.reason == .notPresent && f.arm64ESR == 0x9200_0000 | fsc)
            #expect(f.arm64Level == Int(fsc) - 4)
        }
        let f = try #require(walk(pt, 0x0001_0000_0000_0000).fault)         // beyond 48 bits
        #expect(f.reason == .nonCanonical && f.arm64FSC == 0x04 && f.level == .p4d)
    }

    @Test func badDescriptorsAndAddressSize() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        pt.slot(VirtAddr(0x1000), level: .pte)!.pointee &= ~Arm64PTE.tableBit    // 0b01 at level 3
        var f = try #require(walk(pt, 0x1000).fault)
        #expect(f.reason == .badDescriptor && f.arm64FSC == 0x07)
        pt.slot(VirtAddr(0x1000), level: .pte)!.pointee |= Arm64PTE.tableBit | 1 << 48   // OA bit 48
        f = try #require(walk(pt, 0x1000).fault)
        #expect(f.reason == .reservedBit && f.arm64FSC == 0x03)                    // address size, level 3
        pt.slot(VirtAddr(0x1000), level: .p4d)!.pointee &= ~Arm64PTE.tableBit     // block at level 0
        f = try #require(walk(pt, 0x1000).fault)
        #expect(f.reason == .badDescriptor && f.arm64FSC == 0x04 && f.level == .p4d)
    }

    @Test func permissionFaults() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x1000), LeafEntry(pfn: PFN(1), user: true, accessed: true, noExec: true)) // PAGE_READONLY
        try pt.setLeaf(VirtAddr(0x2000), LeafEntry(pfn: PFN(2), user: true, accessed: true))               // PAGE_READONLY_EXEC
        try pt.setLeaf(VirtAddr(0x3000), LeafEntry(pfn: PFN(3), writable: true, accessed: true, dirty: true, noExec: true)) // PAGE_KERNEL
        try pt.setLeaf(VirtAddr(0x20_0000), LeafEntry(pfn: PFN(0x200), size: .size2M, user: true, accessed: true, noExec: true))
        func esr(_ va: UInt64, _ a: AccessKind, _ p: Privilege, _ c: MMUControl? = nil) -> (FaultReason?, UInt32?) {
            let f = walk(pt, va, a, p, control: c).fault
            return (f?.reason, f?.arm64ESR)
        }
        #expect(esr(0x1000, .write, .user) == (.writeToReadOnly, 0x9200_004F))   // DABT_LOW, WnR, perm L3
        #expect(esr(0x3000, .read, .user) == (.userToSupervisor, 0x9200_000F))
        #expect(esr(0x1000, .execute, .user) == (.noExec, 0x8200_000F))          // IABT_LOW
        #expect(esr(0x2000, .execute, .user) == (nil, nil))
        #expect(esr(0x2000, .execute, .kernel) == (.noExec, 0x8600_000F))        // IABT_CUR: PXN on user pages
        #expect(esr(0x1000, .read, .kernel) == (.smap, 0x9600_000F))             // PAN, DABT_CUR
        #expect(esr(0x3000, .write, .kernel) == (nil, nil))
        #expect(esr(0x20_0000, .write, .user) == (.writeToReadOnly, 0x9200_004E)) // perm fault level 2
        var c = MMUControl(arch: .arm64)
        c.pan = false
        #expect(esr(0x1000, .read, .kernel, c) == (nil, nil))
    }

    @Test func hierarchicalTableAttributes() throws {
        let (_, _, pt) = makeTree(.arm64)
        try pt.setLeaf(VirtAddr(0x1000), userRW(1))
        #expect(walk(pt, 0x1000, .write).translation != nil)
        pt.slot(VirtAddr(0x1000), level: .pmd)!.pointee |= Arm64PTE.apTableRO          // APTable[1]
        #expect(walk(pt, 0x1000, .write).fault?.reason == .writeToReadOnly)
        pt.slot(VirtAddr(0x1000), level: .pud)!.pointee |= Arm64PTE.apTableNoEL0        // APTable[0]
        #expect(walk(pt, 0x1000).fault?.reason == .userToSupervisor)
        var e = userRW(2)
        e.noExec = false
        try pt.setLeaf(VirtAddr(0x40_0000_0000), e)                                    // another PUD entry
        #expect(walk(pt, 0x40_0000_0000, .execute).translation != nil)
        pt.slot(VirtAddr(0x40_0000_0000), level: .pmd)!.pointee |= Arm64PTE.uxnTable   // UXNTable
        #expect(walk(pt, 0x40_0000_0000, .execute).fault?.reason == .noExec)
    }
}
