// include/linux/gfp_types.h, include/linux/gfp.h: what an allocation may do and where it may come from.

/// gfp_t flags, the subset the model acts on.
public struct GFP: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// __GFP_DMA: only ZONE_DMA.
    public static let dma = GFP(rawValue: 1 << 0)
    /// __GFP_HIGHMEM (no-op on 64-bit; with __GFP_MOVABLE it selects ZONE_MOVABLE).
    public static let highmem = GFP(rawValue: 1 << 1)
    /// __GFP_DMA32: ZONE_DMA32 or below.
    public static let dma32 = GFP(rawValue: 1 << 2)
    /// __GFP_MOVABLE: MIGRATE_MOVABLE pageblocks.
    public static let movable = GFP(rawValue: 1 << 3)
    /// __GFP_RECLAIMABLE: MIGRATE_RECLAIMABLE pageblocks.
    public static let reclaimable = GFP(rawValue: 1 << 4)
    /// __GFP_HIGH: may dip into half of the min watermark (ALLOC_MIN_RESERVE).
    public static let high = GFP(rawValue: 1 << 5)
    public static let io = GFP(rawValue: 1 << 6)
    public static let fs = GFP(rawValue: 1 << 7)
    /// __GFP_ZERO: the page comes back zeroed.
    public static let zero = GFP(rawValue: 1 << 8)
    /// __GFP_DIRECT_RECLAIM: the caller may sleep and reclaim.
    public static let directReclaim = GFP(rawValue: 1 << 10)
    /// __GFP_KSWAPD_RECLAIM: wake kswapd when below the low watermark.
    public static let kswapdReclaim = GFP(rawValue: 1 << 11)
    public static let noWarn = GFP(rawValue: 1 << 13)
    /// __GFP_COMP: a compound page (head + tails).
    public static let comp = GFP(rawValue: 1 << 14)
    public static let noMemalloc = GFP(rawValue: 1 << 16)
    public static let hardwall = GFP(rawValue: 1 << 17)
    public static let thisNode = GFP(rawValue: 1 << 18)
    public static let account = GFP(rawValue: 1 << 22)

    /// __GFP_RECLAIM
    public static let reclaim: GFP = [.directReclaim, .kswapdReclaim]
    /// GFP_ATOMIC: cannot sleep, may use reserves.
    public static let atomic: GFP = [.high, .kswapdReclaim]
    /// GFP_KERNEL
    public static let kernel: GFP = [.directReclaim, .kswapdReclaim, .io, .fs]
    /// GFP_KERNEL_ACCOUNT
    public static let kernelAccount: GFP = [.kernel, .account]
    /// GFP_NOWAIT: no reclaim, no sleeping (what mmu_gather uses for its batch pages).
    public static let nowait: GFP = [.kswapdReclaim, .noWarn]
    /// GFP_USER
    public static let user: GFP = [.kernel, .hardwall]
    /// GFP_HIGHUSER_MOVABLE: user data pages.
    public static let highuserMovable: GFP = [.user, .highmem, .movable]
    /// GFP_PGTABLE_USER: user page-table pages (zeroed, accounted).
    public static let pgtableUser: GFP = [.kernel, .zero, .account]
    /// GFP_PGTABLE_KERNEL
    public static let pgtableKernel: GFP = [.kernel, .zero]
    /// GFP_DMA32 as a full mask, for tests and drivers.
    public static let kernelDMA32: GFP = [.kernel, .dma32]

    /// gfp_zone(): the highest zone this allocation may use.
    /// __GFP_DMA wins, then __GFP_DMA32, then __GFP_MOVABLE with __GFP_HIGHMEM selects
    /// ZONE_MOVABLE, else ZONE_NORMAL: a table lookup on the four zone bits, as the
    /// kernel's GFP_ZONE_TABLE does.
    @inline(__always) public var highestZone: ZoneType {
        ZoneType(rawValue: highestZoneIndex).unsafelyUnwrapped
    }

    /// gfp_zone() as the zone's index. GFP_ZONE_TABLE: two bits per combination of
    /// __GFP_DMA (bit 0), __GFP_HIGHMEM (1), __GFP_DMA32 (2), __GFP_MOVABLE (3).
    @inline(__always) var highestZoneIndex: Int {
        Int(truncatingIfNeeded: (UInt32(0x1132_1122) &>> ((rawValue & 0xF) &<< 1)) & 3)
    }

    /// gfp_migratetype(): __GFP_MOVABLE wins over __GFP_RECLAIMABLE, neither is
    /// MIGRATE_UNMOVABLE (a two-bit table lookup on bits 3 and 4, as the kernel shifts
    /// GFP_MOVABLE_MASK down).
    @inline(__always) public var migratetype: MigrateType {
        MigrateType(rawValue: migratetypeIndex).unsafelyUnwrapped
    }

    /// gfp_migratetype() as the type's index.
    @inline(__always) var migratetypeIndex: Int {
        Int(truncatingIfNeeded: (UInt32(0x64) &>> (((rawValue &>> 3) & 3) &<< 1)) & 3)
    }

    /// Parses "GFP_KERNEL", "GFP_ATOMIC|__GFP_ZERO", "kernel,zero" and similar spellings.
    public init?(parsing text: String) {
        var g = GFP()
        for part in text.split(whereSeparator: { $0 == "|" || $0 == "," }) {
            let k = part.trimmingCharacters(in: .whitespaces).lowercased()
                .replacingOccurrences(of: "__gfp_", with: "").replacingOccurrences(of: "gfp_", with: "")
            guard let f = Self.names.first(where: { $0.name == k })?.flags else { return nil }
            g.formUnion(f)
        }
        self = g
    }

    static let names: [(name: String, flags: GFP)] = [
        ("kernel", .kernel), ("kernel_account", .kernelAccount), ("atomic", .atomic), ("nowait", .nowait),
        ("user", .user), ("highuser_movable", .highuserMovable), ("dma", .dma), ("dma32", .dma32),
        ("movable", .movable), ("reclaimable", .reclaimable), ("high", .high), ("zero", .zero),
        ("comp", .comp), ("nowarn", .noWarn), ("highmem", .highmem), ("direct_reclaim", .directReclaim),
        ("kswapd_reclaim", .kswapdReclaim), ("nomemalloc", .noMemalloc), ("account", .account),
    ]

    public var description: String {
        var parts: [String] = []
        var rest = self
        for (n, f) in Self.names where !f.isEmpty && rest.isSuperset(of: f) && f.rawValue.nonzeroBitCount > 1 {
            parts.append("GFP_" + n.uppercased())
            rest.subtract(f)
        }
        for (n, f) in Self.names where f.rawValue.nonzeroBitCount == 1 && rest.contains(f) {
            parts.append("__GFP_" + n.uppercased())
        }
        return parts.isEmpty ? "0" : parts.joined(separator: "|")
    }
}

import Foundation
