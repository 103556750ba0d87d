// mm/mm_init.c (memblock_free_all, mem_init_print_info), arch/x86/kernel/e820.c, mm/hugetlb.c:
// what a booted machine must look like: present and managed pages, MemTotal, the boot log.

import Testing
import MMSimTestSupport

@Suite struct BootTests {
    /// The presets boot and pass the checker.
    @Test func bootsCheckable() throws {
        for c in [MachineConfig.small, .reference, .arm64] {
            let m = try Machine(c)
            try m.checkInvariants()
        }
    }

    /// RAM as the firmware map describes it, in page ranges: x86-64 e820 (page 0 trimmed,
    /// the 0x9fc00..1 MiB hole, RAM above 3 GiB moved past the PCI hole at 4 GiB), arm64 from 1 GiB.
    static func ramPages(_ c: MachineConfig) -> [(UInt64, UInt64)] {
        let mem = c.memory >> 12
        if c.arch == .arm64 { return [(1 << 18, (1 << 18) + mem)] }
        let low = min(mem, 3 << 18)
        var r: [(UInt64, UInt64)] = [(1, 0x9f), (0x100, low)]
        if mem > 3 << 18 { r.append((1 << 20, (1 << 20) + mem - (3 << 18))) }
        return r
    }

    /// Pages that any memblock reservation touches, inside [s, e) and inside RAM.
    static func reservedPages(_ m: Machine, _ s: UInt64 = 0, _ e: UInt64 = .max) -> UInt64 {
        var ranges = m.memblock.reserved.map { ($0.start >> 12, ($0.end + 4095) >> 12) }.sorted { $0.0 < $1.0 }
        var merged: [(UInt64, UInt64)] = []
        for r in ranges {
            if let last = merged.last, r.0 <= last.1 { merged[merged.count - 1].1 = max(last.1, r.1) } else { merged.append(r) }
        }
        ranges = merged
        var n: UInt64 = 0
        for (a, b) in ranges {
            for (ra, rb) in ramPages(m.config) {
                let lo = max(a, ra, s), hi = min(b, rb, e)
                if hi > lo { n += hi - lo }
            }
        }
        return n
    }

    static func presentPages(_ c: MachineConfig, _ s: UInt64 = 0, _ e: UInt64 = .max) -> UInt64 {
        ramPages(c).reduce(0) { acc, r in
            let lo = max(r.0, s), hi = min(r.1, e)
            return acc + (hi > lo ? hi - lo : 0)
        }
    }

    static let sizes: [NamedConfig] = {
        var out: [MachineConfig] = []
        for mem: UInt64 in [64 << 20, 256 << 20, 1 << 30, 4 << 30] {
            var c = MachineConfig.small
            c.memory = mem
            out.append(c)
        }
        out.append(.reference)
        out.append(.arm64)
        return out.map(NamedConfig.init)
    }()

    /// Zone spans (free_area_init(): DMA < 16 MiB, DMA32 < 4 GiB, Normal above on x86-64; arm64 has
    /// DMA up to 4 GiB and no DMA32), present pages per zone, and managed = present - reserved
    /// (memblock_free_all() releases only whole free pages) + the init pages freed by free_initmem().
    @Test(arguments: sizes)
    func zonesPresentAndManaged(_ named: NamedConfig) throws {
        let c = named.config
        let m = try Machine(c)
        let initPages = m.kernelInit.end - m.kernelInit.start
        #expect(initPages == c.kernelImage.initKB / 4)
        let bounds: [ZoneType: (UInt64, UInt64)] = c.arch == .arm64
            ? [.dma: (0, 1 << 20), .normal: (1 << 20, .max)]
            : [.dma: (0, 4096), .dma32: (4096, 1 << 20), .normal: (1 << 20, .max)]
        for z in m.zones {
            guard let (s, e) = bounds[z.type] else {
                #expect(!z.isPopulated, "\(z.name) must be empty")
                continue
            }
            let present = Self.presentPages(c, s, e)
            #expect(z.presentPages == present, "\(z.name) present")
            guard present > 0 else { continue }
            // zone_spanned_pages_in_node(): the node's span clamped to the zone's limits (holes included).
            let ram = Self.ramPages(c)
            let nodeStart = ram.first!.0, nodeEnd = ram.last!.1
            #expect(z.startPFN == min(max(nodeStart, s), e), "\(z.name) start_pfn")
            #expect(z.endPFN == min(max(nodeEnd, s), e), "\(z.name) end")
            #expect(z.spannedPages == z.endPFN - z.startPFN)
            let initHere = z.contains(PFN(m.kernelInit.start)) ? initPages : 0
            #expect(z.managedPages == present - Self.reservedPages(m, s, e) + initHere, "\(z.name) managed")
        }
    }

    /// MemTotal = present pages - every memblock reservation (whole pages) + freed init pages;
    /// and physpages in the `Memory:` line is the present page count.
    @Test(arguments: sizes)
    func memTotal(_ named: NamedConfig) throws {
        let c = named.config
        let m = try Machine(c)
        let present = Self.presentPages(c)
        #expect(m.physPages == present)
        let initPages = m.kernelInit.end - m.kernelInit.start
        let memTotalPages = present - Self.reservedPages(m) + initPages
        #expect(m.totalRAMPages == memTotalPages)
        let memTotal = m.meminfo().first { $0.name == "MemTotal" }
        #expect(memTotal?.value == memTotalPages * 4)
        #expect(m.meminfoText().hasPrefix("MemTotal:       \(String(memTotalPages * 4).leftPad(8)) kB\n"))
    }

    /// mem_init_print_info(): `Memory: <free>K/<physpages>K available (... <physpages - totalram>K reserved ...)`,
    /// printed after memblock_free_all(), before the init sections are freed.
    @Test(arguments: sizes)
    func memoryBootLine(_ named: NamedConfig) throws {
        let c = named.config
        let m = try Machine(c)
        let img = c.kernelImage
        let initPages = m.kernelInit.end - m.kernelInit.start
        let present = Self.presentPages(c)
        let managedAtPrint = present - Self.reservedPages(m)
        #expect(m.totalRAMPages - initPages == managedAtPrint)
        let line = "Memory: \(managedAtPrint * 4)K/\(present * 4)K available (\(img.codeKB)K kernel code, \(img.rwdataKB)K rwdata, \(img.rodataKB)K rodata, \(img.initKB)K init, \(img.bssKB)K bss, \((present - managedAtPrint) * 4)K reserved, 0K cma-reserved)"
        #expect(m.log.contains(line), "missing: \(line)")
        #expect(m.log.contains("Freeing unused kernel image (initmem) memory: \(initPages * 4)K"))
    }

    /// The HugeTLB lines the reference kernel printed (../shared/fidelity/README.md), in order.
    @Test func hugetlbBootLines() throws {
        let expected = [
            "HugeTLB: registered 1.00 GiB page size, pre-allocated 0 pages",
            "HugeTLB: 16380 KiB vmemmap can be freed for a 1.00 GiB page",
            "HugeTLB: registered 2.00 MiB page size, pre-allocated 0 pages",
            "HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page",
        ]
        // x86-64; arm64 adds its contiguous sizes (HugetlbTests.arm64BootLines()).
        for c in [MachineConfig.reference, .small] {
            let m = try Machine(c)
            let at = try #require(m.log.firstIndex(of: expected[0]))
            #expect(Array(m.log[at..<min(at + 4, m.log.count)]) == expected)
            #expect(m.log.filter { $0.hasPrefix("HugeTLB:") }.count == 4)
        }
    }

    /// set_recommended_min_free_kbytes() prints "raising min_free_kbytes" only when the user had set
    /// min_free_kbytes (user_min_free_kbytes >= 0); the boot-time raise is silent.
    @Test func thpRaiseIsSilentAtBoot() throws {
        let m = try Machine(.reference)
        #expect(!m.log.contains { $0.contains("raising min_free_kbytes") })
    }

    /// After boot every managed page is free (on the buddy lists or a pcp list), and pgfree
    /// counted each of them once (__free_pages_core() and free_reserved_page() both count PGFREE).
    @Test(arguments: [MachineConfig.small, .arm64].map(NamedConfig.init))
    func everyManagedPageIsFreeAfterBoot(_ named: NamedConfig) throws {
        let c = named.config
        let m = try Machine(c)
        let pcp = m.zones.reduce(0) { $0 + $1.pcpPages }
        #expect(m.allocator.freePagesTotal + Int64(pcp) == Int64(m.totalRAMPages))
        #expect(m.counters[.pgfree] == Int64(m.totalRAMPages))
        #expect(m.counters[.pgallocDma] + m.counters[.pgallocDma32] + m.counters[.pgallocNormal] + m.counters[.pgallocMovable] == 0)
        let memFree = m.meminfo().first { $0.name == "MemFree" }?.value
        #expect(memFree == UInt64(m.allocator.freePagesTotal) * 4, "MemFree excludes pcp pages")
        m.allocator.drainPages()
        #expect(m.allocator.freePagesTotal == Int64(m.totalRAMPages))
        try m.checkInvariants()
    }

    /// Host memory grows with the frames touched, not with the configured size: the memmap of a
    /// booted machine is mostly virgin. (A guard for the 1 TiB test below.)
    @Test func hostMemoryIsLazyOn32GiB() throws {
        var c = MachineConfig.reference
        c.memory = 32 << 30
        let m = try Machine(c)
        #expect(m.hostMemoryBytes < 64 << 20, "\(m.hostMemoryBytes >> 20) MiB of host memory for 32 GiB")
    }

    static let lazyMemmap: Bool = {
        var c = MachineConfig.reference
        c.memory = 8 << 30
        guard let m = try? Machine(c) else { return false }
        return m.hostMemoryBytes < 64 << 20
    }()

    /// A 1 TiB 5-level machine boots with a small host footprint and passes the checker.
    /// Enabled only when an 8 GiB machine already boots lazily (otherwise this needs ~17 GB of host memory).
    @Test(.enabled(if: BootTests.lazyMemmap, "the memmap is materialized eagerly; see hostMemoryIsLazyOn32GiB"))
    func terabyteMachine() throws {
        let m = try Machine(.large5Level)
        #expect(m.hostMemoryBytes < 64 << 20)
        #expect(m.physPages == Self.presentPages(.large5Level))
        #expect(m.zones[ZoneType.normal.rawValue].presentPages == (1 << 28) - (3 << 18))
        try m.checkInvariants()
        #expect(m.hostMemoryBytes < 64 << 20)
    }
}

extension String {
    /// Right-aligned in `width` columns.
    fileprivate func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
