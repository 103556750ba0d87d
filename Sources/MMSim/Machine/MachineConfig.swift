// The simulated machine's configuration: architecture, memory, CPUs, TLB geometry, boot-time tunables.

import Foundation

/// One set-associative TLB array: `entries` split into `entries / ways` sets.
/// `ways == entries` is fully associative.
public struct TLBArrayGeometry: Sendable, Hashable, Codable {
    public var entries: Int
    public var ways: Int
    public init(entries: Int, ways: Int) {
        self.entries = entries
        self.ways = ways
    }
    public var sets: Int { ways == 0 ? 0 : entries / ways }
}

/// Per-CPU TLB hierarchy. Defaults are those of a recent x86 core: L1 dTLB 64 entries
/// 4-way for 4 KiB, 32 for 2 MiB, 4 for 1 GiB; L1 iTLB 128 entries; a shared L2 TLB
/// of 1536 entries 12-way for 4 KiB and 2 MiB plus 16 for 1 GiB.
public struct TLBGeometry: Sendable, Hashable, Codable {
    public var l1d4K = TLBArrayGeometry(entries: 64, ways: 4)
    public var l1d2M = TLBArrayGeometry(entries: 32, ways: 4)
    public var l1d1G = TLBArrayGeometry(entries: 4, ways: 4)
    public var l1i4K = TLBArrayGeometry(entries: 128, ways: 8)
    public var l1i2M = TLBArrayGeometry(entries: 8, ways: 8)
    /// Unified second level, shared by 4 KiB and 2 MiB translations.
    public var l2 = TLBArrayGeometry(entries: 1536, ways: 12)
    public var l2_1G = TLBArrayGeometry(entries: 16, ways: 4)
    public init() {}

    private enum CodingKeys: String, CodingKey { case l1d4K, l1d2M, l1d1G, l1i4K, l1i2M, l2, l2_1G }

    /// Every array is optional in JSON; missing ones keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        l1d4K = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l1d4K) ?? l1d4K
        l1d2M = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l1d2M) ?? l1d2M
        l1d1G = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l1d1G) ?? l1d1G
        l1i4K = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l1i4K) ?? l1i4K
        l1i2M = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l1i2M) ?? l1i2M
        l2 = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l2) ?? l2
        l2_1G = try c.decodeIfPresent(TLBArrayGeometry.self, forKey: .l2_1G) ?? l2_1G
    }

    /// Named arrays, for validation and printing.
    public var arrays: [(name: String, geometry: TLBArrayGeometry)] {
        [("tlb.l1d4K", l1d4K), ("tlb.l1d2M", l1d2M), ("tlb.l1d1G", l1d1G),
         ("tlb.l1i4K", l1i4K), ("tlb.l1i2M", l1i2M), ("tlb.l2", l2), ("tlb.l2_1G", l2_1G)]
    }
}

/// Sizes of the kernel image sections, as the boot line
/// `Memory: ...K/...K available (16384K kernel code, ...)` reports them, in KiB.
public struct KernelImage: Sendable, Hashable, Codable {
    public var codeKB: UInt64 = 16384
    public var rwdataKB: UInt64 = 2863
    public var rodataKB: UInt64 = 7836
    public var initKB: UInt64 = 4264
    public var bssKB: UInt64 = 4444
    public init() {}

    private enum CodingKeys: String, CodingKey { case codeKB, rwdataKB, rodataKB, initKB, bssKB }

    /// Every section is optional in JSON; missing ones keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        codeKB = try c.decodeIfPresent(UInt64.self, forKey: .codeKB) ?? codeKB
        rwdataKB = try c.decodeIfPresent(UInt64.self, forKey: .rwdataKB) ?? rwdataKB
        rodataKB = try c.decodeIfPresent(UInt64.self, forKey: .rodataKB) ?? rodataKB
        initKB = try c.decodeIfPresent(UInt64.self, forKey: .initKB) ?? initKB
        bssKB = try c.decodeIfPresent(UInt64.self, forKey: .bssKB) ?? bssKB
    }
    /// _end - _text, rounded up to pages.
    public var totalPages: UInt64 { ((codeKB + rwdataKB + rodataKB + initKB + bssKB) * 1024 + Page.size - 1) / Page.size }
    public var initPages: UInt64 { initKB * 1024 / Page.size }
}

/// THP modes of /sys/kernel/mm/transparent_hugepage/enabled.
public enum THPMode: String, Sendable, Hashable, Codable, CaseIterable {
    case always, madvise, never
}

/// A boot-time HugeTLB pool (the hugepagesz=SIZE hugepages=N command-line pair).
public struct BootHugepages: Sendable, Hashable, Codable {
    /// Huge page size in KiB (2048 or 1048576).
    public var sizeKB: UInt64
    public var count: UInt64
    public init(sizeKB: UInt64, count: UInt64) {
        self.sizeKB = sizeKB
        self.count = count
    }
}

/// A configuration error: the field and what is allowed.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

/// The machine mmsim simulates. A value type: presets, JSON loading, validation.
public struct MachineConfig: Sendable, Hashable, Codable {
    public var arch: Architecture = .x86_64
    /// Installed RAM in bytes.
    public var memory: UInt64 = 24 * Size.GiB
    public var cpus: Int = 2
    /// NUMA nodes (1 ... 8). RAM is split evenly across them in physical address order, each
    /// node's share starting on a 128 MiB section boundary; CPUs are assigned in contiguous
    /// blocks (cpu_to_node(cpu) == cpu * nodes / cpus: with 4 CPUs and 2 nodes, CPUs 0-1 on
    /// node 0 and CPUs 2-3 on node 1). Every node is one hop (distance 20) from the others.
    public var nodes: Int = 1
    public var tlb = TLBGeometry()
    /// PCID (x86-64) or ASID (arm64) tagging of TLB entries.
    public var pcid: Bool = true
    /// vm.min_free_kbytes; nil = computed at boot by init_per_zone_wmark_min().
    public var minFreeKbytes: UInt64? = nil
    /// vm.watermark_scale_factor (1...3000, default 10).
    public var watermarkScaleFactor: UInt64 = 10
    /// vm.lowmem_reserve_ratio for DMA, DMA32, Normal, Movable.
    public var lowmemReserveRatio: [UInt64] = [256, 256, 32, 0]
    public var kernelImage = KernelImage()
    /// Boot-time per-CPU area per CPU (the "percpu: Embedded N pages/cpu" first chunk), in KiB.
    public var percpuKBPerCPU: UInt64 = 256
    /// SWIOTLB bounce buffer reserved at boot when RAM extends beyond 4 GiB, in MiB (0 = none).
    public var swiotlbMB: UInt64 = 64
    /// /sys/kernel/mm/transparent_hugepage/enabled (boot default; raises min_free_kbytes unless never).
    public var transparentHugepage: THPMode = .madvise
    /// Seed of every pseudo-random choice the model makes.
    public var seed: UInt64 = 0x6d6d73696d
    /// hugepagesz=/hugepages= pairs: HugeTLB pools allocated at boot.
    public var bootHugepages: [BootHugepages] = []
    /// default_hugepagesz= in KiB.
    public var defaultHugepageSizeKB: UInt64 = 2048
    /// hugetlb_free_vmemmap= (CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON): HVO at boot.
    public var hugetlbOptimizeVmemmap: Bool = false
    /// memory_hotplug.memmap_on_memory: hot-added memory holds its own memmap (self-hosted vmemmap).
    public var memmapOnMemory: Bool = false
    /// Physical address space above RAM reserved for memory hotplug (add_memory()), in bytes,
    /// a multiple of the 128 MiB memory block.
    public var hotplugMemory: UInt64 = 0

    public init() {}

    // MARK: Limits

    public static let minMemory: UInt64 = 16 * Size.MiB
    /// PFNs are kept in 32 bits in the memmap links: 16 TiB of physical address space; the
    /// x86-64 PCI hole takes 1 GiB of it.
    public static let maxMemory: UInt64 = 8 * Size.TiB
    public static let maxCPUs = 256
    /// MAX_NUMNODES the model allows (CONFIG_NODES_SHIFT=3).
    public static let maxNodes = 8

    /// cpu_to_node(): CPUs in contiguous blocks, node 0 first.
    public func cpuToNode(_ cpu: Int) -> Int { nodes <= 1 ? 0 : cpu * nodes / max(cpus, 1) }
    /// memory_block_size_bytes(): the unit of memory hotplug (128 MiB on x86-64 below 64 GiB).
    public static let memoryBlockBytes: UInt64 = 128 * Size.MiB

    // MARK: Presets

    /// The reference machine of ../shared/fidelity: x86-64, 4-level, 2 CPUs, 24 GiB.
    public static var reference: MachineConfig { MachineConfig() }
    /// A small x86-64 machine for tests and examples: 1 CPU, 256 MiB.
    public static var small: MachineConfig {
        var c = MachineConfig()
        c.memory = 256 * Size.MiB
        c.cpus = 1
        return c
    }
    /// An arm64 server-like machine: 4 KiB granule, 48-bit VA, 8 CPUs, 16 GiB.
    public static var arm64: MachineConfig {
        var c = MachineConfig()
        c.arch = .arm64
        c.memory = 16 * Size.GiB
        c.cpus = 8
        return c
    }
    /// x86-64 with 5-level paging, 64 CPUs, 1 TiB.
    public static var large5Level: MachineConfig {
        var c = MachineConfig()
        c.arch = .x86_64_5level
        c.memory = Size.TiB
        c.cpus = 64
        return c
    }

    public static let presets: [(name: String, config: MachineConfig)] = [
        ("reference", .reference), ("small", .small), ("arm64", .arm64), ("large-5level", .large5Level),
    ]

    public static func preset(named name: String) throws -> MachineConfig {
        guard let p = presets.first(where: { $0.name == name }) else {
            throw ConfigError(field: "preset", message: "unknown preset '\(name)'; known: " + presets.map(\.name).joined(separator: ", "))
        }
        return p.config
    }

    // MARK: Validation

    /// Rejects impossible values, naming the field and the allowed range.
    public func validate() throws {
        func range(_ field: String, _ v: UInt64, _ lo: UInt64, _ hi: UInt64, _ show: (UInt64) -> String = { String($0) }) throws {
            if v < lo || v > hi {
                throw ConfigError(field: field, message: "\(show(v)) is out of range; allowed \(show(lo)) ... \(show(hi))")
            }
        }
        try range("memory", memory, Self.minMemory, Self.maxMemory, formatBytes)
        if memory % Page.size != 0 {
            throw ConfigError(field: "memory", message: "\(memory) is not a multiple of the 4 KiB page size")
        }
        try range("cpus", UInt64(max(cpus, 0)), 1, UInt64(Self.maxCPUs))
        try range("nodes", UInt64(max(nodes, 0)), 1, UInt64(Self.maxNodes))
        if nodes > 1 && memory / UInt64(nodes) < 2 * Self.memoryBlockBytes {
            throw ConfigError(field: "nodes", message: "\(nodes) nodes of \(formatBytes(memory)) leave under 256 MiB per node; allowed 1 ... \(max(1, min(UInt64(Self.maxNodes), memory / (2 * Self.memoryBlockBytes)))) for this memory")
        }
        try range("watermarkScaleFactor", watermarkScaleFactor, 1, 3000)
        if let m = minFreeKbytes {
            // __setup_per_zone_wmarks() must leave memory to allocate from: at most half of RAM.
            try range("minFreeKbytes", m, 0, memory / 1024 / 2)
        }
        if lowmemReserveRatio.count != 4 {
            throw ConfigError(field: "lowmemReserveRatio", message: "needs 4 values (DMA, DMA32, Normal, Movable), got \(lowmemReserveRatio.count)")
        }
        for (name, g) in tlb.arrays {
            try range("\(name).entries", UInt64(max(g.entries, 0)), 1, 65536)
            try range("\(name).ways", UInt64(max(g.ways, 0)), 1, UInt64(g.entries))
            if g.entries % g.ways != 0 || (g.sets & (g.sets - 1)) != 0 {
                throw ConfigError(field: name, message: "\(g.entries) entries / \(g.ways) ways must give a power-of-two number of sets")
            }
        }
        try range("percpuKBPerCPU", percpuKBPerCPU, 0, 65536)
        // Huge page sizes in KiB: x86-64 PMD and PUD; arm64 (4 KiB granule) also CONT_PTE and CONT_PMD.
        let hugeSizes: [UInt64] = arch.isX86 ? [2048, 1048576] : [64, 2048, 32768, 1048576]
        let allowed = hugeSizes.map(String.init).joined(separator: ", ")
        if !hugeSizes.contains(defaultHugepageSizeKB) {
            throw ConfigError(field: "defaultHugepageSizeKB", message: "\(defaultHugepageSizeKB) is not a huge page size on \(arch.rawValue); allowed \(allowed)")
        }
        for (i, b) in bootHugepages.enumerated() {
            guard hugeSizes.contains(b.sizeKB) else {
                throw ConfigError(field: "bootHugepages[\(i)].sizeKB", message: "\(b.sizeKB) is not a huge page size on \(arch.rawValue); allowed \(allowed)")
            }
            try range("bootHugepages[\(i)].count", b.count * b.sizeKB * 1024, 0, memory / 2) { _ in "\(b.count) pages" }
        }
        try range("hotplugMemory", hotplugMemory, 0, Self.maxMemory - memory, formatBytes)
        if hotplugMemory % Self.memoryBlockBytes != 0 {
            throw ConfigError(field: "hotplugMemory", message: "\(formatBytes(hotplugMemory)) is not a multiple of the 128 MiB memory block")
        }
        try range("swiotlbMB", swiotlbMB, 0, 65536)
        let img = kernelImage
        try range("kernelImage.codeKB", img.codeKB, 4, 1 << 20)
        let imageBytes = img.totalPages * Page.size
        // The image at 2 MiB at the lowest, the memmap, and a few MiB to run in.
        let needed = imageBytes + 2 * Size.MiB + memmapBytesEstimate + 4 * Size.MiB
        if needed > memory {
            throw ConfigError(field: "memory", message: "\(formatBytes(memory)) cannot hold the kernel image (\(imageBytes >> 10) KiB), the memmap and room to run; allowed at least \(needed >> 20 + 1) MiB with this kernelImage (shrink kernelImage for smaller machines)")
        }
    }

    private var memmapBytesEstimate: UInt64 { (memory >> Page.shift) * Page.structPageBytes }

    // MARK: JSON

    private enum CodingKeys: String, CodingKey {
        case preset, arch, memory, cpus, nodes, tlb, pcid, minFreeKbytes, watermarkScaleFactor,
             lowmemReserveRatio, kernelImage, percpuKBPerCPU, swiotlbMB, transparentHugepage, seed,
             bootHugepages, defaultHugepageSizeKB, hugetlbOptimizeVmemmap, memmapOnMemory, hotplugMemory
    }

    /// Reads a configuration: `preset` first (default "reference"), then each field present
    /// overrides it. `memory` takes a byte count or a size string such as "4G".
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let presetName = try c.decodeIfPresent(String.self, forKey: .preset) ?? "reference"
        self = try Self.preset(named: presetName)
        if let v = try c.decodeIfPresent(String.self, forKey: .arch) {
            guard let a = Architecture(rawValue: v) else {
                throw ConfigError(field: "arch", message: "unknown architecture '\(v)'; allowed " + Architecture.allCases.map(\.rawValue).joined(separator: ", "))
            }
            arch = a
        }
        if let v = try? c.decodeIfPresent(UInt64.self, forKey: .memory) {
            memory = v
        } else if let s = try c.decodeIfPresent(String.self, forKey: .memory) {
            guard let v = parseSize(s) else { throw ConfigError(field: "memory", message: "'\(s)' is not a size (e.g. 4G, 512M)") }
            memory = v
        }
        cpus = try c.decodeIfPresent(Int.self, forKey: .cpus) ?? cpus
        nodes = try c.decodeIfPresent(Int.self, forKey: .nodes) ?? nodes
        tlb = try c.decodeIfPresent(TLBGeometry.self, forKey: .tlb) ?? tlb
        pcid = try c.decodeIfPresent(Bool.self, forKey: .pcid) ?? pcid
        minFreeKbytes = try c.decodeIfPresent(UInt64.self, forKey: .minFreeKbytes) ?? minFreeKbytes
        watermarkScaleFactor = try c.decodeIfPresent(UInt64.self, forKey: .watermarkScaleFactor) ?? watermarkScaleFactor
        lowmemReserveRatio = try c.decodeIfPresent([UInt64].self, forKey: .lowmemReserveRatio) ?? lowmemReserveRatio
        kernelImage = try c.decodeIfPresent(KernelImage.self, forKey: .kernelImage) ?? kernelImage
        percpuKBPerCPU = try c.decodeIfPresent(UInt64.self, forKey: .percpuKBPerCPU) ?? percpuKBPerCPU
        swiotlbMB = try c.decodeIfPresent(UInt64.self, forKey: .swiotlbMB) ?? swiotlbMB
        if let v = try c.decodeIfPresent(String.self, forKey: .transparentHugepage) {
            guard let m = THPMode(rawValue: v) else {
                throw ConfigError(field: "transparentHugepage", message: "'\(v)' is not one of always, madvise, never")
            }
            transparentHugepage = m
        }
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        bootHugepages = try c.decodeIfPresent([BootHugepages].self, forKey: .bootHugepages) ?? bootHugepages
        defaultHugepageSizeKB = try c.decodeIfPresent(UInt64.self, forKey: .defaultHugepageSizeKB) ?? defaultHugepageSizeKB
        hugetlbOptimizeVmemmap = try c.decodeIfPresent(Bool.self, forKey: .hugetlbOptimizeVmemmap) ?? hugetlbOptimizeVmemmap
        memmapOnMemory = try c.decodeIfPresent(Bool.self, forKey: .memmapOnMemory) ?? memmapOnMemory
        hotplugMemory = try c.decodeIfPresent(UInt64.self, forKey: .hotplugMemory) ?? hotplugMemory
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(arch.rawValue, forKey: .arch)
        try c.encode(memory, forKey: .memory)
        try c.encode(cpus, forKey: .cpus)
        try c.encode(nodes, forKey: .nodes)
        try c.encode(tlb, forKey: .tlb)
        try c.encode(pcid, forKey: .pcid)
        try c.encodeIfPresent(minFreeKbytes, forKey: .minFreeKbytes)
        try c.encode(watermarkScaleFactor, forKey: .watermarkScaleFactor)
        try c.encode(lowmemReserveRatio, forKey: .lowmemReserveRatio)
        try c.encode(kernelImage, forKey: .kernelImage)
        try c.encode(percpuKBPerCPU, forKey: .percpuKBPerCPU)
        try c.encode(swiotlbMB, forKey: .swiotlbMB)
        try c.encode(transparentHugepage.rawValue, forKey: .transparentHugepage)
        try c.encode(seed, forKey: .seed)
        try c.encode(bootHugepages, forKey: .bootHugepages)
        try c.encode(defaultHugepageSizeKB, forKey: .defaultHugepageSizeKB)
        try c.encode(hugetlbOptimizeVmemmap, forKey: .hugetlbOptimizeVmemmap)
        try c.encode(memmapOnMemory, forKey: .memmapOnMemory)
        try c.encode(hotplugMemory, forKey: .hotplugMemory)
    }

    /// Loads and validates a JSON configuration. Decoding errors name the field.
    public static func load(json data: Data) throws -> MachineConfig {
        let config: MachineConfig
        do {
            config = try JSONDecoder().decode(MachineConfig.self, from: data)
        } catch let e as ConfigError {
            throw e
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw ConfigError(field: ctx.codingPath.map(\.stringValue).joined(separator: "."), message: ctx.debugDescription)
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError(field: ctx.codingPath.isEmpty ? "json" : ctx.codingPath.map(\.stringValue).joined(separator: "."), message: "not valid JSON: \(ctx.debugDescription)")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ConfigError(field: (ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."), message: "missing")
        }
        try config.validate()
        return config
    }
}

/// Parses "4096", "4K", "2M", "1G", "1T" (binary units) into bytes; nil when malformed or overflowing.
public func parseSize(_ text: String) -> UInt64? {
    var s = Substring(text.trimmingCharacters(in: .whitespaces))
    var shift: UInt64 = 0
    if let last = s.last, let k = "KMGTP".firstIndex(of: Character(last.uppercased())) {
        shift = 10 * UInt64("KMGTP".distance(from: "KMGTP".startIndex, to: k) + 1)
        s = s.dropLast()
    }
    let value: UInt64?
    if s.hasPrefix("0x") || s.hasPrefix("0X") {
        value = UInt64(s.dropFirst(2), radix: 16)
    } else {
        value = UInt64(s)
    }
    guard let v = value, shift == 0 || v <= (UInt64.max >> shift) else { return nil }
    return v << shift
}

/// "24 GiB", "512 MiB", "4 KiB", or plain bytes.
public func formatBytes(_ v: UInt64) -> String {
    for (unit, shift) in [("TiB", UInt64(40)), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where v >= (1 << shift) && v % (1 << shift) == 0 {
        return "\(v >> shift) \(unit)"
    }
    return "\(v) bytes"
}
