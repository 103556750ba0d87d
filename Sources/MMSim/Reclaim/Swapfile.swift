// mm/swapfile.c: swap areas (swap_info_struct), their slots and clusters, swapon/swapoff, /proc/swaps.

/// struct swap_info_struct: one swap area. Per slot: the use count of swap_map (with
/// SWAP_HAS_CACHE), the swap table entry of 6.18 (the swap-cache folio or a workingset
/// shadow) and the owning memory cgroup (swap_cgroup).
public final class SwapInfo {
    /// SWAP_HAS_CACHE in swap_map
    static let hasCache: UInt8 = 0x40
    /// SWAPFILE_CLUSTER
    public static let clusterSlots = 512
    public let type: Int
    public let name: String
    public let priority: Int
    /// Slots including the header page (slot 0 is never used).
    public let pages: Int
    /// Slots in use (inuse_pages).
    public internal(set) var inuse = 0
    let map: UnsafeMutablePointer<UInt8>
    /// Swap table: 0 = empty, folio PFN << 1 | 1 = a swap-cache folio, shadow << 1 = a shadow.
    let table: UnsafeMutablePointer<UInt64>
    let cgroup: UnsafeMutablePointer<UInt16>
    /// What the slot holds on disk: the content word of the page last written there.
    let data: UnsafeMutablePointer<UInt64>
    /// Free slots per cluster, and the cluster each CPU allocates from (percpu_swap_cluster).
    var clusterFree: [Int]
    var cpuCluster: [Int]
    var cpuNext: [Int]
    /// Clusters with free slots, lowest first (free_clusters + nonfull_clusters, in order).
    var nextFreeCluster = 0
    public internal(set) var enabled = true

    init(type: Int, name: String, pages: Int, priority: Int, cpus: Int) {
        self.type = type
        self.name = name
        self.pages = pages
        self.priority = priority
        map = .allocate(capacity: pages)
        map.initialize(repeating: 0, count: pages)
        table = .allocate(capacity: pages)
        table.initialize(repeating: 0, count: pages)
        cgroup = .allocate(capacity: pages)
        cgroup.initialize(repeating: 0, count: pages)
        data = .allocate(capacity: pages)
        data.initialize(repeating: 0, count: pages)
        let clusters = (pages + Self.clusterSlots - 1) / Self.clusterSlots
        clusterFree = (0..<clusters).map { c in min(Self.clusterSlots, pages - c * Self.clusterSlots) }
        clusterFree[0] -= 1        // the header page
        map[0] = 0xff              // SWAP_MAP_BAD: never allocated
        cpuCluster = [Int](repeating: -1, count: cpus)
        cpuNext = [Int](repeating: 0, count: cpus)
    }

    deinit {
        map.deallocate()
        table.deallocate()
        cgroup.deallocate()
        data.deallocate()
    }

    /// Usable slots (the header page excluded).
    public var usable: Int { pages - 1 }

    /// cluster_alloc_swap_entry(): the next free slot of this CPU's cluster, else of the
    /// first cluster with room; nil when the area is full.
    func allocSlot(cpu: Int) -> Int? {
        guard inuse < usable else { return nil }
        var c = cpuCluster[cpu]
        if c < 0 || clusterFree[c] == 0 {
            c = -1
            var i = nextFreeCluster
            while i < clusterFree.count {
                if clusterFree[i] > 0 && !cpuCluster.contains(i) { c = i; break }
                i += 1
            }
            if c < 0 { c = clusterFree.firstIndex { $0 > 0 } ?? -1 }
            guard c >= 0 else { return nil }
            cpuCluster[cpu] = c
            cpuNext[cpu] = c * Self.clusterSlots
        }
        var s = max(cpuNext[cpu], c * Self.clusterSlots)
        let end = min(pages, (c + 1) * Self.clusterSlots)
        while s < end && map[s] != 0 { s += 1 }
        if s >= end {
            s = c * Self.clusterSlots
            while s < end && map[s] != 0 { s += 1 }
            guard s < end else { return nil }
        }
        cpuNext[cpu] = s + 1
        clusterFree[c] -= 1
        inuse += 1
        return s
    }

    /// swap_entries_free(): a slot whose count and cache bit are gone returns to its cluster.
    func freeSlot(_ s: Int) {
        map[s] = 0
        cgroup[s] = 0
        clusterFree[s / Self.clusterSlots] += 1
        inuse -= 1
    }
}

/// The machine's swap areas (swap_info[]) and the swap sysctls.
public final class SwapState {
    /// MAX_SWAPFILES with every option on (swap types below the migration and hwpoison ones).
    public static let maxSwapfiles = 23
    public internal(set) var areas: [SwapInfo?] = []
    /// vm.page-cluster
    public var pageCluster = 3
    /// /sys/kernel/mm/swap/vma_ra_enabled
    public var vmaReadahead = true
    /// Writes submitted and not yet completed (see PageIO.swift).
    var pendingWrites: [UInt32] = []
    /// The next default priority (least_priority: -1, -2, ...).
    var leastPriority = -1
    init() {}

    /// Active areas in priority order (highest first), then by type (swap_avail_heads).
    private(set) var active: [SwapInfo] = []
    /// Rebuilds `active` after a swapon or swapoff.
    func updateActive() {
        active = areas.compactMap { $0 }.filter(\.enabled).sorted { ($0.priority, -$0.type) > ($1.priority, -$1.type) }
    }
    /// total_swap_pages
    public var totalPages: Int { active.reduce(0) { $0 + $1.usable } }
    /// nr_swap_pages (free slots)
    public var freePages: Int { active.reduce(0) { $0 + $1.usable - $1.inuse } }
}

/// A swap entry (swp_entry_t): type and offset, packed as the model keeps it in folio->swap.
public struct SwapEntry: Hashable, Sendable {
    public var type: Int
    public var offset: Int
    @inline(__always) var packed: UInt64 { UInt64(type) << 48 | UInt64(offset) }
    @inline(__always) init(type: Int, offset: Int) { self.type = type; self.offset = offset }
    @inline(__always) init(packed v: UInt64) { type = Int(v >> 48); offset = Int(v & 0xFFFF_FFFF_FFFF) }
}

extension Machine {
    /// swapon(2): a swap area of `size` bytes (one header page), priority `priority` or the
    /// next default one (setup_swap_info(): --least_priority, which starts at -1, so -2 first).
    @discardableResult
    public func swapon(name: String, size: UInt64, priority: Int? = nil) throws(Errno) -> SwapInfo {
        guard !swap.areas.contains(where: { $0?.name == name }) else { throw .EBUSY }
        let pages = Int(size >> Page.shift)
        guard pages >= 10 else { throw .EINVAL }
        let type = swap.areas.firstIndex { $0 == nil } ?? swap.areas.count
        guard type < SwapState.maxSwapfiles else { throw .EPERM }
        let prio: Int
        if let p = priority { prio = p } else { swap.leastPriority -= 1; prio = swap.leastPriority }
        let si = SwapInfo(type: type, name: name, pages: pages, priority: prio, cpus: cpuCount)
        if type == swap.areas.count { swap.areas.append(si) } else { swap.areas[type] = si }
        swap.updateActive()
        log.append("Adding \(si.usable * 4)k swap on \(name).  Priority:\(prio) extents:1 across:\(si.usable * 4)k")
        return si
    }

    /// swapoff(2): every slot in use is read back (try_to_unuse(): each swap PTE becomes the
    /// page again, the swap cache emptied), then the area goes.
    public func swapoff(name: String) throws(Errno) {
        guard let si = swap.areas.compactMap({ $0 }).first(where: { $0.name == name && $0.enabled }) else { throw .EINVAL }
        guard si.inuse <= swap.freePages - (si.usable - si.inuse) + Int(allocator.zones.reduce(0) { $0 + $1.freePages }) else { throw .ENOMEM }
        si.enabled = false
        swap.updateActive()
        do { try tryToUnuse(si) } catch {
            si.enabled = true
            swap.updateActive()
            throw error
        }
        swap.areas[si.type] = nil
    }

    /// folio_alloc_swap(): a slot from the highest-priority area with room (SWAP_HAS_CACHE
    /// set). Nil when swap is full (or, on cgroup v2, the group's memory.swap.max is reached).
    func allocSwapSlot(memcg id: Int) -> SwapEntry? {
        for si in swap.active {
            guard let s = si.allocSlot(cpu: currentCPU) else { continue }
            si.map[s] = SwapInfo.hasCache
            // mem_cgroup_try_charge_swap(): v2 charges the swap counter now (and may refuse
            // at memory.swap.max); v1 keeps the memsw charge on the folio until it is
            // swapped out (mem_cgroup_swapout()).
            if id != 0 && !memcg.v1 {
                guard memcgChargeSwap(id) else {
                    si.map[s] = 0
                    si.freeSlot(s)
                    return nil
                }
                si.cgroup[s] = UInt16(truncatingIfNeeded: id)
            }
            return SwapEntry(type: si.type, offset: s)
        }
        return nil
    }

    /// swap_duplicate(): one more PTE refers to the slot (fork, try_to_unmap()).
    func swapDuplicate(_ e: SwapEntry) {
        guard let si = swap.areas[e.type] else { return }
        si.map[e.offset] &+= 1
    }

    /// swap_free() / swap_put_entries_direct(): a PTE reference goes; a slot with no
    /// reference and no cached folio is freed, and its memsw charge with it.
    func swapFree(_ e: SwapEntry) {
        guard e.type < swap.areas.count, let si = swap.areas[e.type] else { return }
        let v = si.map[e.offset]
        guard v & ~SwapInfo.hasCache > 0 else { return }
        si.map[e.offset] = v - 1
        if si.map[e.offset] == 0 { releaseSlot(si, e.offset) }
    }

    /// The slot goes: its swap table entry (a shadow) is dropped, the memsw charge returned.
    func releaseSlot(_ si: SwapInfo, _ s: Int) {
        memcgUnchargeSwap(Int(si.cgroup[s]), 1)
        si.table[s] = 0
        si.freeSlot(s)
    }

    /// Swap count of a slot (swap_swapcount()), without the cache bit.
    func swapCount(_ e: SwapEntry) -> Int {
        guard let si = swap.areas[e.type] else { return 0 }
        return Int(si.map[e.offset] & ~SwapInfo.hasCache)
    }

    /// vm_swap_full(): more than half of all swap in use.
    var vmSwapFull: Bool { (swap.totalPages - swap.freePages) * 2 > swap.totalPages }

    /// /proc/swaps (swap_show()): every area in use by type, the path escaped as
    /// seq_file_path() does (space, tab, newline and backslash as \ooo), padded to 40
    /// columns, size and used in kB with one tab less past 7 digits, then the priority.
    public func procSwaps() -> String {
        var out = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        for si in swap.areas.compactMap({ $0 }) where si.enabled {
            var bytes: [UInt8] = []
            for u in si.name.utf8 {
                if u == 0x20 || u == 0x09 || u == 0x0A || u == 0x5C {
                    bytes.append(0x5C)
                    bytes.append(contentsOf: [0x30 | u >> 6, 0x30 | (u >> 3) & 7, 0x30 | u & 7])
                } else {
                    bytes.append(u)
                }
            }
            let name = String(decoding: bytes, as: UTF8.self), len = bytes.count
            let size = si.usable * 4, used = si.inuse * 4
            out += name + String(repeating: " ", count: len < 40 ? 40 - len : 1) + "file\t"
            out += "\t\(size)\t\(size < 10_000_000 ? "\t" : "")\(used)\t\(used < 10_000_000 ? "\t" : "")\(si.priority)\n"
        }
        return out
    }
}

