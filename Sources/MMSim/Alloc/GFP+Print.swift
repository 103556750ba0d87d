// include/linux/gfp_types.h, include/trace/events/mmflags.h: gfp masks as the kernel prints them ("%#x(%pGg)").

extension GFP {
    /// The model's flags with the kernel's bit numbers (___GFP_*_BIT of 6.18, without
    /// CONFIG_KASAN_HW_TAGS, CONFIG_LOCKDEP or CONFIG_SLAB_OBJ_EXT bits). The model's own
    /// raw values differ for a few flags (comp, nomemalloc, hardwall, thisnode), so anything
    /// printed for the reader goes through this table.
    static let kernelBits: [(flag: GFP, bit: UInt32)] = [
        (.dma, 0), (.highmem, 1), (.dma32, 2), (.movable, 3), (.reclaimable, 4), (.high, 5),
        (.io, 6), (.fs, 7), (.zero, 8), (.directReclaim, 10), (.kswapdReclaim, 11),
        (.noWarn, 13), (.comp, 18), (.noMemalloc, 19), (.hardwall, 20), (.thisNode, 21), (.account, 22),
    ]

    /// The mask as the kernel's gfp_t value (what "gfp_mask=%#x" prints).
    public var kernelMask: UInt32 {
        var m: UInt32 = 0
        for (f, b) in Self.kernelBits where contains(f) { m |= 1 << b }
        return m
    }

    /// __def_gfpflag_names: the composite masks first (most bits first), then GFP_DMA,
    /// GFP_DMA32, __GFP_RECLAIM, then every single flag in bit order (TRACE_GFP_FLAGS, as
    /// since 6.15). format_flags() prints each entry whose bits are all still set and clears them.
    static let kernelNames: [(mask: UInt32, name: String)] = {
        let dma: UInt32 = 0x1, highmem: UInt32 = 0x2, dma32: UInt32 = 0x4, movable: UInt32 = 0x8
        let high: UInt32 = 0x20, io: UInt32 = 0x40, fs: UInt32 = 0x80, directReclaim: UInt32 = 0x400
        let kswapd: UInt32 = 0x800, nowarn: UInt32 = 0x2000, comp: UInt32 = 0x40000
        let nomemalloc: UInt32 = 0x80000, hardwall: UInt32 = 0x100000, account: UInt32 = 0x400000
        let reclaim = directReclaim | kswapd
        let kernel = reclaim | io | fs
        let user = kernel | hardwall
        let highuserMovable = user | highmem | movable
        let transhugeLight = (highuserMovable | comp | nomemalloc | nowarn) & ~reclaim
        var names: [(UInt32, String)] = [
            (transhugeLight | directReclaim, "GFP_TRANSHUGE"), (transhugeLight, "GFP_TRANSHUGE_LIGHT"),
            (highuserMovable, "GFP_HIGHUSER_MOVABLE"), (user | highmem, "GFP_HIGHUSER"), (user, "GFP_USER"),
            (kernel | account, "GFP_KERNEL_ACCOUNT"), (kernel, "GFP_KERNEL"), (reclaim | io, "GFP_NOFS"),
            (high | kswapd, "GFP_ATOMIC"), (reclaim, "GFP_NOIO"), (kswapd | nowarn, "GFP_NOWAIT"),
            (dma, "GFP_DMA"), (dma32, "GFP_DMA32"), (reclaim, "__GFP_RECLAIM"),
        ]
        let single = ["DMA", "HIGHMEM", "DMA32", "MOVABLE", "RECLAIMABLE", "HIGH", "IO", "FS", "ZERO", "",
                      "DIRECT_RECLAIM", "KSWAPD_RECLAIM", "WRITE", "NOWARN", "RETRY_MAYFAIL", "NOFAIL", "NORETRY",
                      "MEMALLOC", "COMP", "NOMEMALLOC", "HARDWALL", "THISNODE", "ACCOUNT", "ZEROTAGS"]
        for (bit, n) in single.enumerated() where !n.isEmpty { names.append((1 << UInt32(bit), "__GFP_" + n)) }
        return names
    }()

    /// "%#x(%pGg)": `0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP)`; a zero mask
    /// prints as `0()` (%#x prints no prefix for zero, format_flags() nothing).
    public var kernelDescription: String {
        let mask = kernelMask
        guard mask != 0 else { return "0()" }
        var rest = mask
        var parts: [String] = []
        for (m, n) in Self.kernelNames where rest & m == m && rest != 0 {
            parts.append(n)
            rest &= ~m
        }
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return "0x" + String(mask, radix: 16) + "(" + parts.joined(separator: "|") + ")"
    }
}
