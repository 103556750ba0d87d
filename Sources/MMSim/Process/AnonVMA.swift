// mm/rmap.c (first half): anon_vma and anon_vma_chain, prepared on the first anonymous
// fault, cloned at fork with the reuse rule, unlinked and freed at VMA teardown.

/// struct anon_vma, in a flat pool (`RmapState.anonVMAs`) addressed by index. Its
/// rb_root is an interval tree of its chains keyed by their VMA's pgoff range
/// (`IntervalForest`), which anon_vma_interval_tree_foreach() walks.
public struct AnonVMARecord: Sendable {
    /// anon_vma->root (index into the pool).
    public var root: Int32
    /// anon_vma->parent
    public var parent: Int32
    /// anon_vma->refcount
    public var refcount: Int32
    /// anon_vma->num_children: child anon_vmas (plus the root's self-parent link).
    public var numChildren: Int32
    /// anon_vma->num_active_vmas: VMAs whose vma->anon_vma is this one.
    public var numActiveVMAs: Int32
    /// anon_vma->rb_root (a root node in `RmapState.tree`, -1 = empty), and how many chains.
    var treeRoot: Int32
    public var chains: Int32
    /// Free-list link while not in use (-2 = in use).
    var nextFree: Int32
}

/// struct anon_vma_chain: links one VMA to one anon_vma.
public struct AnonVMAChain: Sendable {
    /// avc->anon_vma
    public var anonVMA: Int32
    /// avc->vma (the VMA's identity, see `VMA.id`).
    public var vma: UInt32
    /// avc->same_vma list (per VMA; newest first as list_add() leaves it).
    var prevSame: Int32
    var nextSame: Int32
    /// avc->rb: its node in the anon_vma's interval tree.
    var node: Int32
}

/// What the rmap knows of one VMA: its mm, where its pages sit relative to their pgoff,
/// its chains (vma->anon_vma_chain) and its place in an address_space's i_mmap.
struct VMASlot {
    var mm: Int32 = 0
    /// vma->vm_start - (vma->vm_pgoff << PAGE_SHIFT): constant across split, merge and
    /// expansion (offsets stay linear); only a move (mremap) changes it.
    var anchor: UInt64 = 0
    /// vma_start_pgoff() and vma_last_pgoff(): the key of its tree nodes.
    var pgStart: UInt64 = 0
    var pgLast: UInt64 = 0
    /// vma->anon_vma_chain: newest and oldest chain.
    var avcHead: Int32 = -1
    var avcTail: Int32 = -1
    /// The i_mmap this VMA is in (`RmapState.iMmapKey`), or -1, and its node there.
    var iMmap: Int32 = -1
    var iNode: Int32 = -1
    var live = false
    var nextFree: UInt32 = 0
}

/// The head of an address_space's i_mmap: the root of its interval tree of VMAs.
struct IMmapHead {
    var treeRoot: Int32 = -1
    var count: Int32 = 0
}

/// The machine's rmap state: anon_vma and chain pools with free lists, the VMA identities,
/// the mms by id and every address_space's i_mmap. Flat arrays, index handles, no classes
/// per object; growth is amortized and reused through the free lists.
public final class RmapState {
    public internal(set) var anonVMAs: [AnonVMARecord] = []
    public internal(set) var chains: [AnonVMAChain] = []
    var vmas: [VMASlot] = [VMASlot()]       // id 0 = no VMA
    var mms: [MM?] = [nil]
    var iMmap: [IMmapHead] = []
    /// Every anon_vma's and i_mmap's interval tree, in one node pool.
    var tree = IntervalForest()
    var freeAnonVMA: Int32 = -1
    var freeChain: Int32 = -1
    var freeVMA: UInt32 = 0
    /// anon_vma objects and chains alive now (the slab's active objects).
    public internal(set) var liveAnonVMAs = 0
    public internal(set) var liveChains = 0
    /// The lock-order recorder (see LockOrder.swift).
    public let locks = LockOrderRecorder()
    /// vm.memory_failure_early_kill
    var memoryFailureEarlyKill = false

    init() {}

    /// The i_mmap key of a file (`kind == .file(f)`) or a shmem object.
    static func iMmapKey(_ kind: VMAKind) -> Int32? {
        switch kind {
        case .file(let f): Int32(f) * 2
        case .shmem(let s): Int32(s) * 2 + 1
        default: nil
        }
    }

    // MARK: Pools

    /// anon_vma_alloc(): refcount 1, its own root and parent, no children, no VMA.
    func allocAnonVMA() -> Int32 {
        let rec = AnonVMARecord(root: 0, parent: 0, refcount: 1, numChildren: 0, numActiveVMAs: 0,
                                treeRoot: -1, chains: 0, nextFree: -2)
        let i: Int32
        if freeAnonVMA >= 0 {
            i = freeAnonVMA
            freeAnonVMA = anonVMAs[Int(i)].nextFree
            anonVMAs[Int(i)] = rec
        } else {
            i = Int32(anonVMAs.count)
            anonVMAs.append(rec)
        }
        anonVMAs[Int(i)].root = i
        anonVMAs[Int(i)].parent = i
        liveAnonVMAs += 1
        return i
    }

    /// anon_vma_free()
    func freeAnonVMARecord(_ i: Int32) {
        anonVMAs[Int(i)].nextFree = freeAnonVMA
        freeAnonVMA = i
        liveAnonVMAs -= 1
    }

    /// get_anon_vma()
    func getAnonVMA(_ i: Int32) { anonVMAs[Int(i)].refcount += 1 }

    /// put_anon_vma() -> __put_anon_vma(): the last reference frees it, and drops the
    /// reference it held on its root (which may free the root too).
    func putAnonVMA(_ i: Int32) {
        anonVMAs[Int(i)].refcount -= 1
        guard anonVMAs[Int(i)].refcount == 0 else { return }
        let root = anonVMAs[Int(i)].root
        freeAnonVMARecord(i)
        if root != i {
            anonVMAs[Int(root)].refcount -= 1
            if anonVMAs[Int(root)].refcount == 0 { freeAnonVMARecord(root) }
        }
    }

    /// anon_vma_chain_link(): a new chain on the VMA's same_vma list (at its head) and in
    /// the anon_vma's tree.
    func link(vma: UInt32, anonVMA av: Int32) {
        let node = tree.alloc(start: vmas[Int(vma)].pgStart, last: vmas[Int(vma)].pgLast, payload: vma)
        var c = AnonVMAChain(anonVMA: av, vma: vma, prevSame: -1, nextSame: vmas[Int(vma)].avcHead, node: node)
        let i: Int32
        if freeChain >= 0 {
            i = freeChain
            freeChain = chains[Int(i)].nextSame
            chains[Int(i)] = c
        } else {
            i = Int32(chains.count)
            chains.append(c)
        }
        c = chains[Int(i)]
        if c.nextSame >= 0 { chains[Int(c.nextSame)].prevSame = i } else { vmas[Int(vma)].avcTail = i }
        vmas[Int(vma)].avcHead = i
        tree.insert(&anonVMAs[Int(av)].treeRoot, node)
        anonVMAs[Int(av)].chains += 1
        liveChains += 1
    }

    /// anon_vma_interval_tree_remove(): the chain leaves its anon_vma's tree.
    func treeRemove(_ i: Int32) {
        let c = chains[Int(i)]
        let av = Int(c.anonVMA)
        tree.remove(&anonVMAs[av].treeRoot, c.node)
        tree.free(c.node)
        anonVMAs[av].chains -= 1
    }

    /// list_del(&avc->same_vma) + anon_vma_chain_free()
    func freeChainRecord(_ i: Int32) {
        let c = chains[Int(i)]
        let v = Int(c.vma)
        if c.prevSame >= 0 { chains[Int(c.prevSame)].nextSame = c.nextSame } else { vmas[v].avcHead = c.nextSame }
        if c.nextSame >= 0 { chains[Int(c.nextSame)].prevSame = c.prevSame } else { vmas[v].avcTail = c.prevSame }
        chains[Int(i)].nextSame = freeChain
        chains[Int(i)].anonVMA = -1
        freeChain = i
        liveChains -= 1
    }

    /// The chains of VMA `id`, newest first (list_for_each_entry over vma->anon_vma_chain).
    func chainCount(ofVMA id: UInt32) -> Int {
        var n = 0
        var c = vmas[Int(id)].avcHead
        while c >= 0 { n += 1; c = chains[Int(c)].nextSame }
        return n
    }

    // MARK: VMA identities

    func allocVMASlot(mm: MM, _ v: VMA) -> UInt32 {
        let id: UInt32
        if freeVMA != 0 {
            id = freeVMA
            freeVMA = vmas[Int(id)].nextFree
        } else {
            id = UInt32(vmas.count)
            vmas.append(VMASlot())
        }
        vmas[Int(id)] = VMASlot(mm: Int32(mm.id), anchor: v.start &- (v.pgoff << Page.shift),
                                pgStart: v.pgoff, pgLast: v.pgoff + v.pages - 1, live: true)
        if mm.id >= mms.count { mms.append(contentsOf: [MM?](repeating: nil, count: mm.id + 1 - mms.count)) }
        if mms[mm.id] == nil { mms[mm.id] = mm }
        return id
    }

    /// The mm is gone (exit_mmap()): the rmap no longer refers to it.
    func forgetMM(_ mm: MM) {
        if mm.id < mms.count { mms[mm.id] = nil }
    }

    func freeVMASlot(_ id: UInt32) {
        vmas[Int(id)].live = false
        vmas[Int(id)].nextFree = freeVMA
        freeVMA = id
    }

    /// vma_interval_tree_insert(): the VMA joins its address_space's i_mmap.
    func iMmapInsert(_ id: UInt32, key: Int32) {
        if Int(key) >= iMmap.count { iMmap.append(contentsOf: [IMmapHead](repeating: IMmapHead(), count: Int(key) + 1 - iMmap.count)) }
        vmas[Int(id)].iMmap = key
        let node = tree.alloc(start: vmas[Int(id)].pgStart, last: vmas[Int(id)].pgLast, payload: id)
        vmas[Int(id)].iNode = node
        tree.insert(&iMmap[Int(key)].treeRoot, node)
        iMmap[Int(key)].count += 1
    }

    /// vma_interval_tree_remove()
    func iMmapRemove(_ id: UInt32) {
        let s = vmas[Int(id)]
        guard s.iMmap >= 0 else { return }
        let k = Int(s.iMmap)
        tree.remove(&iMmap[k].treeRoot, s.iNode)
        tree.free(s.iNode)
        iMmap[k].count -= 1
        vmas[Int(id)].iMmap = -1
        vmas[Int(id)].iNode = -1
    }

    /// vma_adjust()'s tree updates (anon_vma_interval_tree_pre/post_update_vma(),
    /// vma_interval_tree_remove/insert()): VMA `id` now covers [pgStart, pgLast]; every
    /// node keyed by it is taken out and put back with the new key.
    func rekey(_ id: UInt32, pgStart: UInt64, pgLast: UInt64) {
        guard vmas[Int(id)].pgStart != pgStart || vmas[Int(id)].pgLast != pgLast else { return }
        vmas[Int(id)].pgStart = pgStart
        vmas[Int(id)].pgLast = pgLast
        var c = vmas[Int(id)].avcHead
        while c >= 0 {
            let ch = chains[Int(c)]
            tree.remove(&anonVMAs[Int(ch.anonVMA)].treeRoot, ch.node)
            tree.setInterval(ch.node, start: pgStart, last: pgLast)
            tree.insert(&anonVMAs[Int(ch.anonVMA)].treeRoot, ch.node)
            c = ch.nextSame
        }
        let s = vmas[Int(id)]
        if s.iMmap >= 0 {
            tree.remove(&iMmap[Int(s.iMmap)].treeRoot, s.iNode)
            tree.setInterval(s.iNode, start: pgStart, last: pgLast)
            tree.insert(&iMmap[Int(s.iMmap)].treeRoot, s.iNode)
        }
    }

    /// VMAs in the i_mmap of `key`.
    public func iMmapCount(key: Int32) -> Int { Int(key) < iMmap.count ? Int(iMmap[Int(key)].count) : 0 }
}

extension Machine {
    /// anon_vma handle stored in `VMA.anonVMA` (0 = none) for pool index `i`.
    @inline(__always) static func anonHandle(_ i: Int32) -> Int { Int(i) + 1 }
    @inline(__always) static func anonIndex(_ handle: Int) -> Int32 { Int32(handle - 1) }

    // MARK: VMA life cycle hooks (vma.c calls these)

    /// A VMA entered `mm` at index `i` (a new vm_area_struct: mmap, the new half of a split,
    /// a fork copy, a moved copy): it gets its identity and joins its file's i_mmap
    /// (vma_link() -> vma_link_file()).
    func rmapVMAInserted(_ mm: MM, _ i: Int) {
        let v = mm.vmas[i]
        let id = rmap.allocVMASlot(mm: mm, v)
        mm.vmas[i].id = id
        if let key = RmapState.iMmapKey(v.kind) {
            rmap.locks.acquire(.iMmapRwsem)
            rmap.iMmapInsert(id, key: key)
            rmap.locks.release(.iMmapRwsem)
        }
    }

    /// A VMA left its mm for good (munmap, merge, exit, the old copy of a move):
    /// unlink_anon_vmas() and unlink_file_vma(), then its identity is free.
    func rmapVMARemoved(_ v: VMA) {
        guard v.id != 0, rmap.vmas[Int(v.id)].live else { return }
        if rmap.vmas[Int(v.id)].iMmap >= 0 {
            rmap.locks.acquire(.iMmapRwsem)
            rmap.iMmapRemove(v.id)
            rmap.locks.release(.iMmapRwsem)
        }
        unlinkAnonVMAs(v)
        rmap.freeVMASlot(v.id)
    }

    /// The VMA at `i` changed its bounds in place (split, merge, brk or mremap expansion):
    /// its tree nodes are keyed again under the locks vma_prepare() takes.
    func rmapVMAResized(_ mm: MM, _ i: Int) {
        let v = mm.vmas[i]
        guard v.id != 0 else { return }
        rmap.locks.acquire(.iMmapRwsem)
        rmap.locks.acquire(.anonVMARootRwsem)
        rmap.rekey(v.id, pgStart: v.pgoff, pgLast: v.pgoff + v.pages - 1)
        rmap.locks.release(.anonVMARootRwsem)
        rmap.locks.release(.iMmapRwsem)
    }

    // MARK: anon_vma life cycle

    /// anon_vma_compatible() (mm/vma.c): `a` directly before `b`, same flags but for the
    /// access bits, same backing, contiguous offsets.
    func anonVMACompatible(_ a: VMA, _ b: VMA) -> Bool {
        let access: VMFlags = [.read, .write, .exec]
        return a.end == b.start && a.flags.subtracting(access) == b.flags.subtracting(access)
            && a.kind == b.kind && b.pgoff == a.pgoff + a.pages
    }

    /// reusable_anon_vma(): `old`'s anon_vma, when `a` and `b` are compatible and `old` has
    /// a single chain (it was never forked).
    func reusableAnonVMA(_ old: VMA, _ a: VMA, _ b: VMA) -> Int {
        guard old.anonVMA != 0, anonVMACompatible(a, b), rmap.chainCount(ofVMA: old.id) == 1 else { return 0 }
        return old.anonVMA
    }

    /// find_mergeable_anon_vma(): the next VMA's anon_vma first, then the previous one's.
    func findMergeableAnonVMA(_ mm: MM, _ i: Int) -> Int {
        let v = mm.vmas[i]
        if i + 1 < mm.vmas.count {
            let r = reusableAnonVMA(mm.vmas[i + 1], v, mm.vmas[i + 1])
            if r != 0 { return r }
        }
        if i > 0 { return reusableAnonVMA(mm.vmas[i - 1], mm.vmas[i - 1], v) }
        return 0
    }

    /// anon_vma_prepare() -> __anon_vma_prepare(): on the first anonymous fault the VMA gets
    /// a neighbour's anon_vma (find_mergeable_anon_vma()) or a new root, and one chain.
    @inline(__always) func prepareAnonVMA(_ mm: MM, _ i: Int) {
        if mm.vmas[i].anonVMA == 0 { anonVMAPrepareSlow(mm, i) }
    }

    /// __anon_vma_prepare(): the VMA has no anon_vma yet.
    @inline(never) func anonVMAPrepareSlow(_ mm: MM, _ i: Int) {
        if mm.vmas[i].id == 0 { rmapVMAInserted(mm, i) }
        var handle = findMergeableAnonVMA(mm, i)
        if handle == 0 {
            let av = rmap.allocAnonVMA()
            rmap.anonVMAs[Int(av)].numChildren += 1     // self-parent link for a new root
            handle = Machine.anonHandle(av)
        }
        let av = Machine.anonIndex(handle)
        rmap.locks.acquire(.anonVMARootRwsem)
        mm.vmas[i].anonVMA = handle
        rmap.link(vma: mm.vmas[i].id, anonVMA: av)
        rmap.anonVMAs[Int(av)].numActiveVMAs += 1
        rmap.locks.release(.anonVMARootRwsem)
    }

    /// anon_vma_clone(): `dst` gets a chain to every anon_vma `src` is linked to (oldest
    /// first). When `dst` has no anon_vma yet (fork), it reuses one with no active VMA and
    /// fewer than two children. The root never qualifies (self-parent link plus a child).
    func anonVMAClone(_ dstMM: MM, _ di: Int, src: VMA) {
        let dstID = dstMM.vmas[di].id
        rmap.locks.acquire(.anonVMARootRwsem)
        var c = rmap.vmas[Int(src.id)].avcTail
        while c >= 0 {
            let av = rmap.chains[Int(c)].anonVMA
            rmap.link(vma: dstID, anonVMA: av)
            let r = rmap.anonVMAs[Int(av)]
            if dstMM.vmas[di].anonVMA == 0 && src.anonVMA != 0 && r.numChildren < 2 && r.numActiveVMAs == 0 {
                dstMM.vmas[di].anonVMA = Machine.anonHandle(av)
            }
            c = rmap.chains[Int(c)].prevSame
        }
        if dstMM.vmas[di].anonVMA != 0 {
            rmap.anonVMAs[Int(Machine.anonIndex(dstMM.vmas[di].anonVMA))].numActiveVMAs += 1
        }
        rmap.locks.release(.anonVMARootRwsem)
    }

    /// anon_vma_fork(): the child VMA is linked to every anon_vma of the parent's VMA, then
    /// reuses one of them or gets its own, a child of the parent's anon_vma under the same root.
    func anonVMAFork(_ mm: MM, _ i: Int, parent pvma: VMA) {
        guard pvma.anonVMA != 0 else { return }
        mm.vmas[i].anonVMA = 0
        anonVMAClone(mm, i, src: pvma)
        if mm.vmas[i].anonVMA != 0 { return }
        let av = rmap.allocAnonVMA()
        let parent = Machine.anonIndex(pvma.anonVMA)
        rmap.locks.acquire(.anonVMARootRwsem)
        rmap.anonVMAs[Int(av)].numActiveVMAs += 1
        rmap.anonVMAs[Int(av)].root = rmap.anonVMAs[Int(parent)].root
        rmap.anonVMAs[Int(av)].parent = parent
        rmap.getAnonVMA(rmap.anonVMAs[Int(av)].root)
        mm.vmas[i].anonVMA = Machine.anonHandle(av)
        rmap.link(vma: mm.vmas[i].id, anonVMA: av)
        rmap.anonVMAs[Int(parent)].numChildren += 1
        rmap.locks.release(.anonVMARootRwsem)
    }

    /// vma_is_fork_child(): the VMA has an anon_vma and more than one chain (it was forked
    /// and may still map a parent's pages).
    func vmaIsForkChild(_ v: VMA) -> Bool { v.anonVMA != 0 && rmap.chainCount(ofVMA: v.id) != 1 }

    /// is_mergeable_anon_vma() (mm/vma.c): two VMAs may merge when they share the anon_vma,
    /// or only one has one and that one is not a fork child (merging it would widen the
    /// range covered by a shared root lock).
    func anonMergeable(_ a: VMA, _ b: VMA) -> Bool {
        if a.anonVMA != 0 && b.anonVMA != 0 { return a.anonVMA == b.anonVMA }
        if a.anonVMA != 0 { return !vmaIsForkChild(a) }
        if b.anonVMA != 0 { return !vmaIsForkChild(b) }
        return true
    }

    /// dup_anon_vma() (mm/vma.c): before `dst` absorbs `src` in a merge, `dst` takes `src`'s
    /// anon_vma and chains if it had none.
    func dupAnonVMA(_ mm: MM, dst di: Int, src: VMA) {
        guard src.anonVMA != 0, mm.vmas[di].anonVMA == 0 else { return }
        mm.vmas[di].anonVMA = src.anonVMA
        anonVMAClone(mm, di, src: src)
    }

    /// unlink_anon_vmas(): every chain of the VMA leaves its anon_vma's tree; an anon_vma
    /// whose tree empties loses its parent's child count and a reference (freed at zero).
    func unlinkAnonVMAs(_ v: VMA) {
        let id = v.id
        guard rmap.vmas[Int(id)].avcHead >= 0 else { return }
        rmap.locks.acquire(.anonVMARootRwsem)
        var emptied: [Int32] = []
        var c = rmap.vmas[Int(id)].avcHead
        while c >= 0 {
            let next = rmap.chains[Int(c)].nextSame
            let av = rmap.chains[Int(c)].anonVMA
            rmap.treeRemove(c)
            if rmap.anonVMAs[Int(av)].chains == 0 {
                rmap.anonVMAs[Int(rmap.anonVMAs[Int(av)].parent)].numChildren -= 1
                emptied.append(av)
            }
            rmap.freeChainRecord(c)
            c = next
        }
        if v.anonVMA != 0 { rmap.anonVMAs[Int(Machine.anonIndex(v.anonVMA))].numActiveVMAs -= 1 }
        rmap.locks.release(.anonVMARootRwsem)
        for av in emptied { rmap.putAnonVMA(av) }
    }
}
