// mm/page_alloc.c (calculate_min_free_kbytes, __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve,
// calculate_totalreserve_pages, zone_batchsize, zone_highsize) and mm/khugepaged.c
// (set_recommended_min_free_kbytes): boot-time watermarks recomputed from the kernel's formulas.

import Testing
import MMSimTestSupport

/// The kernel's boot-time watermark arithmetic, written out from the kernel sources and
/// independent of the model's own helpers. Zone indices: 0 DMA, 1 DMA32, 2 Normal, 3 Movable.
enum KernelBootMath {
    static let pageblockPages: UInt64 = 512
    /// MB_TO_PAGES(512): hugepage_init() leaves THP off (and min_free_kbytes alone) below this.
    static let thpMinTotalramPages: UInt64 = (512 << 20) >> 12

    /// int_sqrt() (lib/math/int_sqrt.c): floor(sqrt(x)), two bits at a time.
    static func intSqrt(_ x0: UInt64) -> UInt64 {
        if x0 <= 1 { return x0 }
        var x = x0, y: UInt64 = 0
        var m: UInt64 = 1 << (UInt64(63 - x0.leadingZeroBitCount) & ~1)
        while m != 0 {
            let b = y + m
            y >>= 1
            if x >= b {
                x -= b
                y += m
            }
            m >>= 2
        }
        return y
    }

    /// mult_frac(x, n, d)
    static func multFrac(_ x: UInt64, _ n: UInt64, _ d: UInt64) -> UInt64 {
        (x / d) * n + (x % d) * n / d
    }

    /// calculate_min_free_kbytes(): clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144).
    static func minFreeKbytes(lowmemPages: UInt64) -> UInt64 {
        min(max(intSqrt(lowmemPages * 4 * 16), 128), 262_144)
    }

    /// __setup_per_zone_wmarks(): [min, low, high] per zone.
    static func watermarks(minFreeKbytes mfk: UInt64, managed: [UInt64], scaleFactor wsf: UInt64) -> [[UInt64]] {
        let pagesMin = mfk >> 2
        let lowmem = managed[0] + managed[1] + managed[2]
        return (0..<4).map { i in
            let tmp = lowmem == 0 ? 0 : pagesMin * managed[i] / lowmem
            // ZONE_MOVABLE: clamp(managed / 1024, SWAP_CLUSTER_MAX, 128).
            let mn = i == 3 ? min(max(managed[i] / 1024, 32), 128) : tmp
            let step = max(tmp >> 2, multFrac(managed[i], wsf, 10000))
            return [mn, mn + step, mn + 2 * step]
        }
    }

    /// nr_free_buffer_pages(): managed pages above the high watermark in zones GFP_USER may use.
    static func freeBufferPages(managed: [UInt64], wmarks: [[UInt64]]) -> UInt64 {
        (0...2).reduce(0) { $0 + (managed[$1] > wmarks[$1][2] ? managed[$1] - wmarks[$1][2] : 0) }
    }

    /// setup_per_zone_lowmem_reserve()
    static func lowmemReserve(managed: [UInt64], ratios: [UInt64]) -> [[UInt64]] {
        var r = [[UInt64]](repeating: [0, 0, 0, 0], count: 4)
        for i in 0..<3 {
            let clear = ratios[i] == 0 || managed[i] == 0
            var upper: UInt64 = 0
            for j in (i + 1)..<4 {
                upper += managed[j]
                r[i][j] = clear ? 0 : upper / ratios[i]
            }
        }
        return r
    }

    /// zone_batchsize(): min(managed/1024, 256) / 4, as rounddown_pow_of_two(b + b/2) - 1; at least 1 in a pageset.
    static func batch(managed: UInt64) -> Int {
        var b = min(managed >> 10, 256) / 4
        if b < 1 { b = 1 }
        var p: UInt64 = 1
        while p * 2 <= b + b / 2 { p *= 2 }
        return max(1, Int(p) - 1)
    }

    struct Expected {
        var minFreeKbytes: UInt64
        var raisedForTHP: Bool
        var wmarks: [[UInt64]]
        var reserve: [[UInt64]]
        var totalReserve: UInt64
        var batch: [Int]
        var highMin: [Int]
        var highMax: [Int]
    }

    /// Boot as the kernel orders it: memblock_free_all(); init_per_zone_wmark_min() (postcore);
    /// hugepage_init() -> start_stop_khugepaged() -> set_recommended_min_free_kbytes() (subsys,
    /// skipped below 512 MiB of totalram); free_initmem(); then an optional sysctl write of
    /// vm.min_free_kbytes. `pre` = managed pages before the init sections were freed.
    static func boot(pre: [UInt64], final: [UInt64], populated: [Bool], config c: MachineConfig) -> Expected {
        let wsf = c.watermarkScaleFactor
        // init_per_zone_wmark_min(): no watermarks yet, so nr_free_buffer_pages() = managed pages.
        var mfk = minFreeKbytes(lowmemPages: pre[0] + pre[1] + pre[2])
        var wm = watermarks(minFreeKbytes: mfk, managed: pre, scaleFactor: wsf)
        let reserve = lowmemReserve(managed: pre, ratios: c.lowmemReserveRatio)
        var raised = false
        if pre.reduce(0, +) >= thpMinTotalramPages {
            let buffer = freeBufferPages(managed: pre, wmarks: wm)
            if c.transparentHugepage == .never {
                // !hugepage_pmd_enabled(): calculate_min_free_kbytes() again, now above the high marks.
                mfk = minFreeKbytes(lowmemPages: buffer)
            } else {
                let nrZones = UInt64((0...2).filter { populated[$0] }.count)
                var rec = pageblockPages * nrZones * 2 + pageblockPages * nrZones * 3 * 3
                rec = min(rec, buffer / 20) << 2
                if rec > mfk {
                    mfk = rec
                    raised = true
                }
            }
            wm = watermarks(minFreeKbytes: mfk, managed: pre, scaleFactor: wsf)
        }
        var managedNow = pre
        if let user = c.minFreeKbytes {
            // min_free_kbytes_sysctl_handler() -> setup_per_zone_wmarks() with today's managed pages.
            mfk = user
            managedNow = final
            wm = watermarks(minFreeKbytes: mfk, managed: managedNow, scaleFactor: wsf)
        }
        var total: UInt64 = 0
        for i in 0..<4 {
            let mx = (i..<4).map { reserve[i][$0] }.max()! + wm[i][2]
            total += min(mx, managedNow[i])
        }
        let cpus = UInt64(c.cpus)
        var batch = [Int](repeating: 0, count: 4), hmin = batch, hmax = batch
        for i in 0..<4 where populated[i] {
            batch[i] = self.batch(managed: managedNow[i])
            hmin[i] = Int(max(wm[i][1] / cpus, UInt64(batch[i]) << 2))
            hmax[i] = Int(max(managedNow[i] / 8 / cpus, UInt64(batch[i]) << 2))
        }
        return Expected(minFreeKbytes: mfk, raisedForTHP: raised, wmarks: wm, reserve: reserve,
                        totalReserve: total, batch: batch, highMin: hmin, highMax: hmax)
    }

    /// Managed pages per zone before free_initmem(): the init sections are given back later.
    static func managedBeforeInitFree(_ m: Machine) -> [UInt64] {
        let initPages = m.kernelInit.end - m.kernelInit.start
        return m.zones.map { z in
            z.managedPages - (z.isPopulated && z.contains(PFN(m.kernelInit.start)) ? initPages : 0)
        }
    }

    static func expected(for m: Machine) -> Expected {
        boot(pre: managedBeforeInitFree(m), final: m.zones.map(\.managedPages),
             populated: m.zones.map(\.isPopulated), config: m.config)
    }
}

/// A machine configuration with a short name for test-case labels.
struct NamedConfig: Sendable, CustomTestStringConvertible {
    var config: MachineConfig
    var testDescription: String {
        let c = config
        var s = "\(c.arch.rawValue) \(formatBytes(c.memory)) \(c.cpus)cpu"
        if c.watermarkScaleFactor != 10 { s += " wsf=\(c.watermarkScaleFactor)" }
        if c.transparentHugepage != .madvise { s += " thp=\(c.transparentHugepage.rawValue)" }
        if let m = c.minFreeKbytes { s += " min_free_kbytes=\(m)" }
        if c.lowmemReserveRatio != [256, 256, 32, 0] { s += " ratio=\(c.lowmemReserveRatio)" }
        return s
    }
    init(_ c: MachineConfig) { config = c }
}

@Suite struct WatermarkTests {
    static func config(_ memory: UInt64, arch: Architecture = .x86_64, cpus: Int = 2, wsf: UInt64 = 10,
                       thp: THPMode = .madvise, minFree: UInt64? = nil) -> MachineConfig {
        var c = MachineConfig.reference
        c.arch = arch
        c.memory = memory
        c.cpus = cpus
        c.watermarkScaleFactor = wsf
        c.transparentHugepage = thp
        c.minFreeKbytes = minFree
        return c
    }

    static let machines: [NamedConfig] = [MachineConfig](arrayLiteral:
        config(256 << 20, cpus: 1),
        config(1 << 30, cpus: 4, wsf: 200),
        config(4 << 30),
        config(4 << 30, wsf: 3000, thp: .always),
        config(24 << 30),
        config(24 << 30, wsf: 1, thp: .never),
        config(64 << 30, cpus: 8, wsf: 100),
        config(16 << 30, arch: .arm64, cpus: 8),
        config(8 << 30, cpus: 3, minFree: 100_000),
        // vm.lowmem_reserve_ratio: 0 clears a zone's protection.
        { var c = config(4 << 30, cpus: 1); c.lowmemReserveRatio = [0, 128, 16, 0]; return c }()
    ).map(NamedConfig.init)

    static func check(_ c: MachineConfig) throws {
        let m = try Machine(c)
        let e = KernelBootMath.expected(for: m)
        let label = "\(c.arch) \(formatBytes(c.memory)) wsf=\(c.watermarkScaleFactor) thp=\(c.transparentHugepage)"
        #expect(m.minFreeKbytes == e.minFreeKbytes, "min_free_kbytes on \(label)")
        for z in m.zones {
            let i = z.type.rawValue
            if z.isPopulated || z.type == .movable {
                #expect(z.watermark(.min) == e.wmarks[i][0], "\(z.name) min on \(label)")
                #expect(z.watermark(.low) == e.wmarks[i][1], "\(z.name) low on \(label)")
                #expect(z.watermark(.high) == e.wmarks[i][2], "\(z.name) high on \(label)")
            }
            #expect(Array(z.lowmemReserve) == e.reserve[i], "\(z.name) protection on \(label)")
            if z.isPopulated {
                for (cpu, pcp) in z.pcp.enumerated() {
                    #expect(pcp.batch == e.batch[i], "\(z.name) cpu\(cpu) batch on \(label)")
                    #expect(pcp.highMin == e.highMin[i], "\(z.name) cpu\(cpu) high_min on \(label)")
                    #expect(pcp.highMax == e.highMax[i], "\(z.name) cpu\(cpu) high_max on \(label)")
                }
            }
        }
        #expect(m.totalReservePages == e.totalReserve, "totalreserve_pages on \(label)")
    }

    /// Every watermark, protection and pageset of a booted machine matches the kernel's arithmetic.
    @Test(arguments: machines)
    func bootWatermarksMatchKernel(_ c: NamedConfig) throws {
        try Self.check(c.config)
    }

    /// The 64 MiB machine: below 512 MiB of RAM hugepage_init() disables THP and never calls
    /// set_recommended_min_free_kbytes(), so min_free_kbytes is int_sqrt(lowmem_kbytes * 16).
    @Test func tinyMachineKeepsSqrtMinFreeKbytes() throws {
        let m = try TestMachines.small(memory: 64 << 20)
        let pre = KernelBootMath.managedBeforeInitFree(m)
        let lowmemKB = (pre[0] + pre[1] + pre[2]) * 4
        #expect(m.minFreeKbytes == KernelBootMath.minFreeKbytes(lowmemPages: lowmemKB / 4))
        try Self.check(m.config)
    }

    /// int_sqrt() reference values, so the reference arithmetic above is itself right.
    @Test func referenceIntSqrt() {
        for (x, r) in [(0, 0), (1, 1), (3, 1), (4, 2), (15, 3), (16, 4), (1 << 40, 1 << 20), ((1 << 40) - 1, (1 << 20) - 1)] as [(UInt64, UInt64)] {
            #expect(KernelBootMath.intSqrt(x) == r)
        }
        // The table in the comment above calculate_min_free_kbytes(): 16 GiB of lowmem -> 16384k.
        #expect(KernelBootMath.minFreeKbytes(lowmemPages: (16 << 30) >> 12) == 16384)
        #expect(KernelBootMath.minFreeKbytes(lowmemPages: (1 << 30) >> 12) == 4096)
        #expect(KernelBootMath.minFreeKbytes(lowmemPages: (16 << 20) >> 12) == 512)
        #expect(KernelBootMath.batch(managed: 262_144) == 63)
        #expect(KernelBootMath.batch(managed: 3840) == 1)
    }

    /// PCP batch is 63 for every zone of 1 GiB or more (zone_batchsize()).
    @Test func batchIs63ForZonesOfOneGiB() throws {
        let m = try Machine(Self.config(24 << 30))
        for z in m.zones where z.managedPages >= 262_144 {
            #expect(z.pcp.allSatisfy { $0.batch == 63 }, "\(z.name)")
        }
    }

    /// watermark_scale_factor widens the low/high gap: step = max(min/4, managed * wsf / 10000).
    @Test(arguments: [UInt64(1), 10, 100, 1000, 3000])
    func scaleFactorSetsTheGap(_ wsf: UInt64) throws {
        let m = try Machine(Self.config(1 << 30, cpus: 1, wsf: wsf))
        let pre = KernelBootMath.managedBeforeInitFree(m)
        for z in m.zones where z.isPopulated {
            let i = z.type.rawValue
            let step = z.watermark(.low) - z.watermark(.min)
            #expect(z.watermark(.high) - z.watermark(.low) == step)
            let byScale = KernelBootMath.multFrac(pre[i], wsf, 10000)
            #expect(step == max(z.watermark(.min) / 4, byScale), "\(z.name) wsf \(wsf)")
        }
        try Self.check(m.config)
    }

    /// A vm.min_free_kbytes written after boot is used as is and spread over today's managed pages.
    @Test func sysctlMinFreeKbytes() throws {
        var c = Self.config(1 << 30, cpus: 1)
        c.minFreeKbytes = 8192
        let m = try Machine(c)
        #expect(m.minFreeKbytes == 8192)
        let sumMin = m.zones.filter { $0.type != .movable }.reduce(0) { $0 + $1.watermark(.min) }
        // Each zone rounds down its share of 2048 pages.
        #expect(sumMin <= 2048 && sumMin >= 2048 - 3)
        try Self.check(c)
    }
}
