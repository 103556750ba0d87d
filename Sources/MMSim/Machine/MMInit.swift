// mm/mm_init.c, mm/page_alloc.c, arch/x86/kernel/e820.c, arch/arm64/mm/init.c: boot, zones, watermarks.

import Foundation

/// The first half of boot, before struct pages exist: the firmware map, memblock and its
/// reservations (setup_arch() up to sparse_init(), setup_per_cpu_areas(), swiotlb_init()),
/// and the zone spans. The machine builds its memmap and allocator from it.
struct EarlyBoot {
    let cfg: MachineConfig
    var arch: Architecture { cfg.arch }
    var memblock = Memblock()
    var log: [String] = []
    var ramTop: UInt64 = 0
    var maxPFN: UInt64 = 0
    var physPages: UInt64 = 0
    var kernelImage: (start: UInt64, end: UInt64) = (0, 0)
    var kernelInit: (start: UInt64, end: UInt64) = (0, 0)
    var zeroPage = PFN(0)
    var directMapKB: (k4: UInt64, m2: UInt64, g1: UInt64) = (0, 0, 0)
    /// nr_memmap_boot_pages
    var memmapBootPages: UInt64 = 0
    /// Zone spans as (zone, start PFN, end PFN).
    var zoneRanges: [(ZoneType, UInt64, UInt64)] = []
    /// Node spans as [start PFN, end PFN), node by node.
    var nodeRanges: [(UInt64, UInt64)] = []
    /// Every node's zone spans as (index in the allocator's zones: node * 4 + zone, start
    /// PFN, end PFN); one node's are `zoneRanges`.
    var nodeZoneRanges: [(Int, UInt64, UInt64)] = []
    /// Physical address of the memmap buffer (one 2 MiB block per present section, in order).
    var memmapBase: UInt64 = 0
    /// Present sections, in the order their memmap blocks sit in the buffer.
    var presentSectionList: [UInt64] = []
    /// Frames memblock gave the vmemmap page tables.
    var vmemmapTableFrames: [UInt64] = []
    /// The kernel's top-level page table (init_top_pgt / swapper_pg_dir), inside the image's data.
    var kernelPgdPFN: UInt64 = 0
    /// Gigantic (1 GiB) HugeTLB pages memblock gave hugepagesz=1G hugepages=N, by first PFN.
    var bootGiganticPages: [UInt64] = []

    init(_ cfg: MachineConfig) throws {
        self.cfg = cfg
        log.append("Linux version 6.18.0-mmsim (mmsim@model) #1 SMP PREEMPT_DYNAMIC")
        log.append("Command line: mem=\(cfg.memory >> 20)M nr_cpus=\(cfg.cpus)" + (cfg.pcid || !arch.isX86 ? "" : " nopcid"))

        // 1. Firmware memory map (e820 on x86-64, the DT /memory node on arm64).
        if arch.isX86 {
            let low = min(cfg.memory, Machine.x86LowRAMTop)
            log.append("BIOS-provided physical RAM map:")
            log.append(e820Line(0, 0x9fc00, "usable"))
            log.append(e820Line(0x9fc00, 0x100000, "reserved"))
            log.append(e820Line(0x100000, low, "usable"))
            if cfg.memory > Machine.x86LowRAMTop {
                log.append(e820Line(Machine.x86LowRAMTop, 4 * Size.GiB, "reserved"))
                log.append(e820Line(4 * Size.GiB, 4 * Size.GiB + cfg.memory - Machine.x86LowRAMTop, "usable"))
            }
            // e820__memblock_setup(); page 0 is kept from the kernel (trim_bios_range()).
            log.append("e820: update [mem 0x00000000-0x00000fff] usable ==> reserved")
            memblock.add(Page.size, 0x9fc00)
            memblock.add(0x100000, low)
            ramTop = low
            if cfg.memory > Machine.x86LowRAMTop {
                ramTop = 4 * Size.GiB + cfg.memory - Machine.x86LowRAMTop
                memblock.add(4 * Size.GiB, ramTop)
            }
        } else {
            ramTop = Machine.arm64RAMBase + cfg.memory
            memblock.add(Machine.arm64RAMBase, ramTop)
            log.append("Machine model: linux,dummy-virt")
        }
        maxPFN = ramTop >> Page.shift
        physPages = memblock.memoryPages

        // 2. Early reservations: low memory, the kernel image (with the zero page in its bss).
        if arch.isX86 {
            // "x86/setup: Always reserve the first 1M of RAM".
            memblock.reserve(0, Size.MiB, "first 1M (BIOS, real-mode trampoline)")
        }
        let img = cfg.kernelImage
        // A relocatable x86 kernel runs at CONFIG_PHYSICAL_START when RAM allows, else lower (2 MiB aligned).
        let imageBytes = cfg.kernelImage.totalPages * Page.size
        let x86Base = Machine.x86KernelBase + imageBytes + 8 * Size.MiB <= min(cfg.memory, Machine.x86LowRAMTop) ? Machine.x86KernelBase : 2 * Size.MiB
        let imageBase = arch.isX86 ? x86Base : Machine.arm64RAMBase + 2 * Size.MiB
        let imagePages = img.totalPages
        memblock.reserve(imageBase, imageBase + imagePages * Page.size, "kernel image (_text.._end)")
        kernelImage = (imageBase >> Page.shift, (imageBase >> Page.shift) + imagePages)
        // Layout: text, rodata, data, init, bss (the order of vmlinux.lds).
        let initStartKB = img.codeKB + img.rodataKB + img.rwdataKB
        let initStart = (imageBase + initStartKB * 1024 + Page.size - 1) >> Page.shift
        kernelInit = (initStart, initStart + img.initPages)
        kernelPgdPFN = (imageBase + (img.codeKB + img.rodataKB) * 1024 + Page.size - 1) >> Page.shift
        let bssStart = (imageBase + (initStartKB + img.initKB) * 1024 + Page.size - 1) >> Page.shift
        zeroPage = PFN(bssStart)

        // 3. The direct map's page tables (init_mem_mapping(), with 1 GiB and 2 MiB pages).
        let dm = directMapPlan()
        directMapKB = (dm.k4 * 4, dm.m2 * 2048, dm.g1 * Size.GiB / 1024)
        memblock.currentLimit = ramTop
        for _ in 0..<dm.tables {
            guard memblock.alloc(Page.size, align: Page.size, name: "direct map page table") != nil else {
                throw ConfigError(field: "memory", message: "too small to map itself")
            }
        }

        // hugetlb_bootmem_alloc(): gigantic boot pages come from memblock, before the memmap.
        if let want = cfg.bootHugepages.first(where: { $0.sizeKB == PageOrder.pud.bytes >> 10 })?.count {
            for _ in 0..<want {
                guard let base = memblock.alloc(PageOrder.pud.bytes, align: PageOrder.pud.bytes, name: "hugetlb bootmem (1 GiB page)") else { break }
                bootGiganticPages.append(base >> Page.shift)
            }
        }

        // 4. sparse_init(): usemaps, then the memmap (64 bytes per frame) in one buffer of
        // PMD-sized blocks, and the vmemmap page tables that map it.
        let sections = presentSections()
        let usemapBytes = UInt64(sections.count) * 32
        _ = memblock.alloc(usemapBytes, align: 64, name: "usemap (pageblock flags)")
        let memmapBytes = UInt64(sections.count) * Machine.sectionMapSize
        guard let mm = memblock.alloc(memmapBytes, align: Machine.sectionMapSize, name: "memmap (struct page array)") else {
            throw ConfigError(field: "memory", message: "\(formatBytes(cfg.memory)) cannot hold its own memmap")
        }
        memmapBase = mm
        presentSectionList = sections
        memmapBootPages = memmapBytes >> Page.shift
        let vmemmapTables = vmemmapTableCount(sections: sections)
        for _ in 0..<vmemmapTables {
            if let t = memblock.alloc(Page.size, align: Page.size, name: "vmemmap page table") {
                vmemmapTableFrames.append(t >> Page.shift)
            }
        }

        // 5. setup_per_cpu_areas() and the SWIOTLB bounce buffer (below 4 GiB).
        let percpu = UInt64(cfg.cpus) * cfg.percpuKBPerCPU * 1024
        if percpu > 0 {
            _ = memblock.alloc(percpu, align: Page.size, name: "percpu first chunk")
            log.append("percpu: Embedded \(cfg.percpuKBPerCPU / 4) pages/cpu")
        }
        let dmaLimit = 4 * Size.GiB
        if cfg.swiotlbMB > 0 && ramTop > dmaLimit {
            let sz = cfg.swiotlbMB * Size.MiB
            if let base = memblock.alloc(sz, align: Page.size, name: "swiotlb", limit: dmaLimit) {
                log.append("software IO TLB: mapped [mem \(String(format0x: base, width: 16))-\(String(format0x: base + sz - 1, width: 16))] (\(cfg.swiotlbMB)MB)")
            }
        }

        zoneRanges = zoneRanges(ramTop: ramTop)
        nodeRanges = try splitNodes()
        for (n, (ns, ne)) in nodeRanges.enumerated() {
            for (z, s, e) in zoneRanges where e > s {
                let a = max(s, ns), b = min(e, ne)
                if a < b { nodeZoneRanges.append((n * ZoneType.allCases.count + z.rawValue, a, b)) }
            }
        }
    }

    /// The node spans (what numa_emulation() / the SRAT would give): RAM split into
    /// `nodes` equal shares in physical address order, each boundary rounded to the nearest
    /// 128 MiB section, so no buddy block and no memory block straddles two nodes.
    func splitNodes() throws -> [(UInt64, UInt64)] {
        let first = memblock.memory.first!.start >> Page.shift
        guard cfg.nodes > 1 else { return [(first, maxPFN)] }
        let n = UInt64(cfg.nodes)
        let section = UInt64(FrameTable.framesPerSection)
        var bounds: [UInt64] = [first]
        for k in 1..<n {
            let target = physPages * k / n
            var seen: UInt64 = 0
            var pfn = maxPFN
            for m in memblock.memory {
                let s = m.start >> Page.shift, e = m.end >> Page.shift
                if seen + (e - s) >= target { pfn = s + (target - seen); break }
                seen += e - s
            }
            pfn = min((pfn + section / 2) / section * section, maxPFN)
            guard pfn > bounds.last! else {
                throw ConfigError(field: "nodes", message: "\(cfg.nodes) nodes leave node \(k) without memory; allowed 1 ... \(k) for this memory")
            }
            bounds.append(pfn)
        }
        guard maxPFN > bounds.last! else {
            throw ConfigError(field: "nodes", message: "\(cfg.nodes) nodes leave the last node without memory; allowed 1 ... \(cfg.nodes - 1) for this memory")
        }
        bounds.append(maxPFN)
        return (0..<cfg.nodes).map { (bounds[$0], bounds[$0 + 1]) }
    }

    func e820Line(_ s: UInt64, _ e: UInt64, _ kind: String) -> String {
        "BIOS-e820: [mem \(String(format0x: s, width: 16))-\(String(format0x: e - 1, width: 16))] \(kind)"
    }

    /// Zone spans as (zone, start PFN, end PFN), limited to RAM (zone_spanned_pages_in_node()).
    func zoneRanges(ramTop: UInt64) -> [(ZoneType, UInt64, UInt64)] {
        let first = memblock.memory.first!.start >> Page.shift
        let last = ramTop >> Page.shift
        func clip(_ a: UInt64, _ b: UInt64) -> (UInt64, UInt64) {
            let s = max(a, first), e = min(b, last)
            return s < e ? (s, e) : (0, 0)
        }
        let mb16: UInt64 = (16 * Size.MiB) >> Page.shift
        let gb4: UInt64 = (4 * Size.GiB) >> Page.shift
        var out: [(ZoneType, UInt64, UInt64)] = []
        if arch.isX86 {
            let d = clip(0, mb16), d32 = clip(mb16, gb4), n = clip(gb4, .max)
            out = [(.dma, d.0, d.1), (.dma32, d32.0, d32.1), (.normal, n.0, n.1)]
        } else {
            // arm64: ZONE_DMA up to the 32-bit limit, ZONE_DMA32 then empty.
            let d = clip(0, gb4), n = clip(gb4, .max)
            out = [(.dma, d.0, d.1), (.dma32, 0, 0), (.normal, n.0, n.1)]
        }
        return out
    }

    func presentPages(_ s: UInt64, _ e: UInt64) -> UInt64 {
        memblock.memory.reduce(0) { acc, m in
            let a = max(m.start >> Page.shift, s), b = min(m.end >> Page.shift, e)
            return acc + (b > a ? b - a : 0)
        }
    }

    /// Sections with any RAM (present_section_nr()).
    func presentSections() -> [UInt64] {
        var out: [UInt64] = []
        for m in memblock.memory {
            let s = (m.start >> Page.shift) >> FrameTable.sectionShift
            let e = ((m.end >> Page.shift) - 1) >> FrameTable.sectionShift
            for sec in s...e where out.last != sec { out.append(sec) }
        }
        return out
    }

    /// Page-table pages of the vmemmap mapping (PMD leaves): one PMD table per 1 GiB of
    /// vmemmap, one PUD table per 512 GiB of it, and with 5-level paging one P4D table per
    /// 256 TiB (the top-level entry lives in the image).
    func vmemmapTableCount(sections: [UInt64]) -> Int {
        var pmdTables = Set<UInt64>(), pudTables = Set<UInt64>(), p4dTables = Set<UInt64>()
        for s in sections {
            let vmemmapOffset = s * Machine.sectionMapSize
            pmdTables.insert(vmemmapOffset >> 30)
            pudTables.insert(vmemmapOffset >> 39)
            p4dTables.insert(vmemmapOffset >> 48)
        }
        return pmdTables.count + pudTables.count + (arch.topLevel == .pgd ? p4dTables.count : 0)
    }

    /// How init_mem_mapping() covers RAM: 1 GiB pages where a whole aligned GiB is RAM,
    /// 2 MiB pages where a whole aligned 2 MiB is, 4 KiB pages elsewhere; and the tables that takes.
    func directMapPlan() -> (k4: UInt64, m2: UInt64, g1: UInt64, tables: Int) {
        var k4: UInt64 = 0, m2: UInt64 = 0, g1: UInt64 = 0
        var pteTables = Set<UInt64>(), pmdTables = Set<UInt64>(), pudTables = Set<UInt64>()
        for m in memblock.memory {
            let start = m.start == Page.size ? 0 : m.start   // page 0 is mapped with its range
            var a = start
            while a < m.end {
                pudTables.insert(a >> 39)
                if a & (Size.GiB - 1) == 0 && a + Size.GiB <= m.end && arch.isX86 {
                    g1 += 1; a += Size.GiB
                } else if a & (2 * Size.MiB - 1) == 0 && a + 2 * Size.MiB <= m.end {
                    pmdTables.insert(a >> 30); m2 += 1; a += 2 * Size.MiB
                } else {
                    pmdTables.insert(a >> 30); pteTables.insert(a >> 21); k4 += 1; a += Page.size
                }
            }
        }
        return (k4, m2, g1, pteTables.count + pmdTables.count + pudTables.count)
    }

}

extension Machine {
    /// x86-64 RAM below 4 GiB ends here; the rest of RAM starts at 4 GiB (the PCI hole between).
    static let x86LowRAMTop: UInt64 = 3 * Size.GiB
    /// arm64 (QEMU virt) RAM starts at 1 GiB.
    static let arm64RAMBase: UInt64 = Size.GiB
    /// CONFIG_PHYSICAL_START on x86-64; arm64 images sit 2 MiB into RAM.
    static let x86KernelBase: UInt64 = 16 * Size.MiB
    /// Bytes of memmap per section with PMD-mapped vmemmap (section_map_size()).
    static let sectionMapSize: UInt64 = UInt64(FrameTable.framesPerSection) * Page.structPageBytes

    /// start_kernel() for memory: firmware map, memblock reservations, sparse memmap,
    /// zones, the buddy allocator, watermarks, per-CPU lists, then freeing init memory.
    /// The rest of start_kernel() for memory, once the memmap exists: zones,
    /// memblock_free_all(), watermarks, per-CPU lists, freeing init memory.
    func boot(_ early: EarlyBoot) throws {
        let cfg = config
        let img = cfg.kernelImage
        let ranges = early.zoneRanges
        // 6. Zones (free_area_init()).
        log.append("Zone ranges:")
        for z in ZoneType.allCases where z != .movable {
            if let r = ranges.first(where: { $0.0 == z }), r.2 > r.1 {
                log.append("  \(z.description.padding(toLength: 8, withPad: " ", startingAt: 0)) [mem \(String(format0x: r.1 << Page.shift, width: 16))-\(String(format0x: (r.2 << Page.shift) - 1, width: 16))]")
            } else {
                log.append("  \(z.description.padding(toLength: 8, withPad: " ", startingAt: 0)) empty")
            }
        }
        log.append("Movable zone start for each node")
        log.append("Early memory node ranges")
        for (n, (ns, ne)) in early.nodeRanges.enumerated() {
            for m in memblock.memory {
                let a = max(m.start, ns << Page.shift), b = min(m.end, ne << Page.shift)
                guard a < b else { continue }
                log.append("  node \(String(n).leftPadded(3)): [mem \(String(format0x: a, width: 16))-\(String(format0x: b - 1, width: 16))]")
            }
        }
        if early.nodeRanges.count > 1 {
            for (n, (ns, ne)) in early.nodeRanges.enumerated() {
                log.append("Initmem setup node \(n) [mem \(String(format0x: ns << Page.shift, width: 16))-\(String(format0x: (ne << Page.shift) - 1, width: 16))]")
            }
        }
        for (zi, s, e) in early.nodeZoneRanges {
            let zone = zones[zi]
            zone.startPFN = s
            zone.spannedPages = e - s
            zone.presentPages = early.presentPages(s, e)
            let holes = zone.spannedPages - zone.presentPages
            if holes > 0 { log.append("On node \(zone.node), zone \(zone.type): \(holes) pages in unavailable ranges") }
        }

        // 7. memblock_free_all(): every fully free page to the buddy allocator, in address order.
        for r in memblock.freeRanges() {
            let s = (r.start + Page.size - 1) >> Page.shift, e = r.end >> Page.shift
            guard e > s else { continue }
            // A free range never crosses a zone boundary in the buddy lists.
            var cur = s
            while cur < e {
                let zoneEnd = early.nodeZoneRanges.first(where: { cur >= $0.1 && cur < $0.2 })?.2 ?? e
                let stop = min(e, zoneEnd)
                allocator.freeBootRange(cur, stop)
                allocator.zone(of: PFN(cur)).managedPages += stop - cur
                cur = stop
            }
        }
        // Boot pagesets until setup_per_cpu_pageset(): batch 1, high 0.
        updatePageSets()
        // The vmemmap's kernel page tables (built by sparse_init() before the buddy allocator
        // exists; the model fills them now, from the same memblock frames).
        vmemmapInit(early)
        let totalram = totalRAMPages
        let reservedKB = (physPages - totalram) * 4
        // fork_init() -> set_max_threads(0), right after mm_core_init().
        threads.max = Machine.defaultMaxThreads(totalRAMPages: totalram)
        log.append("Memory: \(allocator.freePagesTotal * 4)K/\(physPages * 4)K available (\(img.codeKB)K kernel code, \(img.rwdataKB)K rwdata, \(img.rodataKB)K rodata, \(img.initKB)K init, \(img.bssKB)K bss, \(reservedKB)K reserved, 0K cma-reserved)")

        // 8. init_per_zone_wmark_min() (postcore_initcall), then hugepage_init()'s
        // set_recommended_min_free_kbytes() when THP is enabled.
        minFreeKbytes = calculateMinFreeKbytes()
        setupPerZoneWatermarks()
        setupPerZoneLowmemReserve()
        // hugepage_init() leaves THP off on machines under 512 MiB; otherwise khugepaged
        // raises min_free_kbytes (silently at boot: user_min_free_kbytes is still -1).
        // start_stop_khugepaged() always ends in set_recommended_min_free_kbytes(), which
        // with THP off recomputes the plain value (now net of the high watermarks).
        if totalRAMPages >= (512 * Size.MiB) >> Page.shift {
            thpModeSetting = cfg.transparentHugepage
            thpEnabled = cfg.transparentHugepage != .never
            if thpEnabled {
                let recommended = recommendedMinFreeKbytes()
                if recommended > minFreeKbytes { minFreeKbytes = recommended }
            } else {
                minFreeKbytes = calculateMinFreeKbytes()
            }
            setupPerZoneWatermarks()
        }

        // 9. HugeTLB sizes and boot pools (hugetlb_init()): the vmemmap HVO could free per huge page.
        hugetlbInit(early)

        // 10. free_initmem(): the init sections go back as free_reserved_page()s.
        var freed: UInt64 = 0
        for pfn in kernelInit.start..<kernelInit.end {
            allocator.freeReservedPage(PFN(pfn))
            freed += 1
        }
        if freed > 0 { log.append("Freeing unused kernel image (initmem) memory: \(freed * 4)K") }

        // 11. A configured vm.min_free_kbytes is a sysctl write after boot.
        if let m = cfg.minFreeKbytes {
            minFreeKbytes = m
            setupPerZoneWatermarks()
        }
        log.append("Run /sbin/init as init process")
    }

    // MARK: Watermarks (mm/page_alloc.c)

    /// nr_free_buffer_pages(): managed pages above the high watermark in zones GFP_USER may use.
    func nrFreeBufferPages() -> UInt64 {
        zones.filter { $0.type.rawValue <= ZoneType.normal.rawValue }.reduce(0) { acc, z in
            let high = z.watermark(.high)
            return acc + (z.managedPages > high ? z.managedPages - high : 0)
        }
    }

    /// calculate_min_free_kbytes(): int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
    func calculateMinFreeKbytes() -> UInt64 {
        let lowmemKB = nrFreeBufferPages() * (Page.size >> 10)
        return min(max(intSqrt(lowmemKB * 16), 128), 262144)
    }

    /// set_recommended_min_free_kbytes() (mm/khugepaged.c): room for two free pageblocks per
    /// zone plus fallbacks between the three pcp migrate types, at most 5% of lowmem.
    func recommendedMinFreeKbytes() -> UInt64 {
        let nrZones = UInt64(zones.filter { $0.isPopulated && $0.type.rawValue <= ZoneType.normal.rawValue }.count)
        let pb = PageOrder.pageblock.pages
        var rec = pb * nrZones * 2 + pb * nrZones * UInt64(MigrateType.pcpTypes * MigrateType.pcpTypes)
        rec = min(rec, nrFreeBufferPages() / 20)
        return rec << (Page.shift - 10)
    }

    /// __setup_per_zone_wmarks(), then zone_pcp_update() for every zone.
    public func setupPerZoneWatermarks() {
        let pagesMin = minFreeKbytes >> (Page.shift - 10)
        let lowmemPages = zones.filter { $0.type != .movable }.reduce(0) { $0 + $1.managedPages }
        for z in zones {
            let managed = z.managedPages
            var tmp = lowmemPages == 0 ? 0 : pagesMin * managed / lowmemPages
            if z.type == .movable {
                z.watermarks[Watermark.min.rawValue] = min(max(managed / 1024, 32), 128)
            } else {
                z.watermarks[Watermark.min.rawValue] = tmp
            }
            tmp = max(tmp >> 2, multFrac(managed, config.watermarkScaleFactor, 10000))
            z.watermarks[Watermark.low.rawValue] = z.watermarks[0] + tmp
            z.watermarks[Watermark.high.rawValue] = z.watermarks[1] + tmp
            z.watermarks[Watermark.promo.rawValue] = z.watermarks[2] + tmp
        }
        calculateTotalReservePages()
        updatePageSets()
    }

    /// setup_per_zone_lowmem_reserve(): what a lower zone keeps back from allocations that could go higher.
    /// Each node's zones on their own (for_each_online_pgdat()).
    func setupPerZoneLowmemReserve() {
        let n = ZoneType.allCases.count
        for node in 0..<allocator.nodeCount {
            let zs = Array(allocator.zones(ofNode: node))
            for i in 0..<(n - 1) {
                let z = zs[i]
                let ratio = config.lowmemReserveRatio[i]
                let clear = ratio == 0 || z.managedPages == 0
                var managed: UInt64 = 0
                for j in (i + 1)..<n {
                    managed += zs[j].managedPages
                    z.lowmemReserve[j] = clear ? 0 : managed / ratio
                }
            }
        }
        calculateTotalReservePages()
    }

    /// calculate_totalreserve_pages()
    func calculateTotalReservePages() {
        var total: UInt64 = 0
        for z in zones {
            var mx: UInt64 = 0
            for j in z.type.rawValue..<ZoneType.allCases.count { mx = max(mx, z.lowmemReserve[j]) }
            mx += z.watermark(.high)
            total += min(mx, z.managedPages)
        }
        totalReservePages = total
    }

    /// zone_set_pageset_high_and_batch() for every populated zone: batch from
    /// zone_batchsize(), high_min from the low watermark and high_max from 1/8 of the zone,
    /// both split across the node's CPUs (at least one).
    func updatePageSets() {
        let nodeCPUs = (0..<allocator.nodeCount).map { n in max(1, (0..<config.cpus).filter { allocator.node(ofCPU: $0) == n }.count) }
        for z in zones where z.isPopulated {
            let cpus = UInt64(nodeCPUs[z.node])
            let batch = max(1, zoneBatchSize(z.managedPages))
            let highMin = max(z.watermark(.low) / cpus, UInt64(batch) << 2)
            let highMax = max(z.managedPages / 8 / cpus, UInt64(batch) << 2)
            for c in 0..<config.cpus {
                z.pcp[c].batch = batch
                z.pcp[c].highMin = Int(highMin)
                z.pcp[c].highMax = Int(highMax)
            }
        }
    }
}

/// zone_batchsize(): about 0.1% of the zone or 1 MiB, whichever is smaller, /4, as 2^n - 1.
public func zoneBatchSize(_ managedPages: UInt64) -> Int {
    var batch = min(managedPages >> 10, Size.MiB / Page.size)
    batch /= 4
    if batch < 1 { batch = 1 }
    let v = batch + batch / 2
    return Int((UInt64(1) << UInt64(63 - v.leadingZeroBitCount)) - 1)
}

/// int_sqrt(): floor of the square root.
public func intSqrt(_ x: UInt64) -> UInt64 {
    if x < 2 { return x }
    var r = UInt64(Double(x).squareRoot())
    while r * r > x { r -= 1 }
    while (r + 1) * (r + 1) <= x { r += 1 }
    return r
}

/// mult_frac(x, n, d) without overflow.
public func multFrac(_ x: UInt64, _ n: UInt64, _ d: UInt64) -> UInt64 {
    (x / d) * n + ((x % d) * n) / d
}
