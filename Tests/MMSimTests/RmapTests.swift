// The reverse map (mm/rmap.c): anon_vma rules, fork trees, COW without leaks (cow.c),
// walks and their users: folio_referenced, try_to_unmap, migration, memory failure
// (tools/testing/selftests/mm/rmap.c), merges that involve anon_vma (merge.c).

import Testing
import MMSimTestSupport

let rmapBase: UInt64 = 0x1000_0000_0000

/// The frame `t` maps at `addr`, if any.
func frameAt(_ m: Machine, _ t: Task, _ addr: UInt64) -> PFN? {
    guard let mm = t.mm else { return nil }
    if case .leaf(let l, let level) = mm.pageTable.lookup(VirtAddr(addr)), l.present {
        return l.pfn + ((addr & (level.entrySpan - 1)) >> Page.shift)
    }
    return nil
}

/// The content word `t` sees at `addr` (the stand-in for the page's bytes).
func contentAt(_ m: Machine, _ t: Task, _ addr: UInt64) -> UInt64? {
    frameAt(m, t, addr).map { m.frames[$0].pointee.content }
}

func rmapMachine(memory: UInt64 = 1 * Size.GiB) throws -> (Machine, Task) {
    let m = try TestMachines.small(memory: memory)
    let t = m.spawn(name: "p")
    return (m, t)
}

@Suite struct AnonVMATests {
    /// __anon_vma_prepare(): the first write fault gives the VMA a new root anon_vma
    /// (refcount 1, num_children 1 for the self-parent link, num_active_vmas 1) and one chain.
    @Test func firstFaultPreparesARoot() throws {
        let (m, t) = try rmapMachine()
        let before = m.rmap.liveAnonVMAs
        _ = m.mmap(t, addr: rmapBase, length: 4 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        #expect(m.rmap.liveAnonVMAs == before)            // no anon_vma until a fault
        try m.checked { m.access(t, addr: rmapBase, length: Page.size, kind: .write) }
        let v = t.mm!.vma(containing: rmapBase)!
        let av = m.rmap.anonVMAs[v.anonVMA - 1]
        #expect(m.rmap.liveAnonVMAs == before + 1)
        #expect(av.refcount == 1 && av.numChildren == 1 && av.numActiveVMAs == 1 && av.chains == 1)
        #expect(av.root == Int32(v.anonVMA - 1) && av.parent == av.root)
        // folio->mapping = anon_vma | PAGE_MAPPING_ANON, index = linear page index, _mapcount 0.
        let pfn = frameAt(m, t, rmapBase)!
        #expect(m.frames[pfn].pointee.mapping == PageMapping.anon(v.anonVMA))
        #expect(m.frames[pfn].pointee.index == rmapBase >> Page.shift)
        #expect(m.kpageMapcount(pfn) == 0)
        #expect(m.frames[pfn].pointee.flags.contains(.anonExclusive))
    }

    /// find_mergeable_anon_vma(): an adjacent VMA that differs only in its access bits and
    /// was never forked lends its anon_vma (reusable_anon_vma(): a single chain).
    @Test func prepareReusesACompatibleNeighbour() throws {
        let (m, t) = try rmapMachine()
        // |  A rw-  |  B rwx  |   one page each: flags differ in VM_EXEC only.
        _ = m.mmap(t, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.mmap(t, addr: rmapBase + Page.size, length: Page.size, prot: [.read, .write, .exec], flags: [.private, .anonymous, .fixedNoreplace])
        #expect(t.mm!.vmas.filter { $0.start >= rmapBase && $0.start < rmapBase + Size.GiB }.count == 2)
        let before = m.rmap.liveAnonVMAs
        try m.checked { m.access(t, addr: rmapBase, length: 2 * Page.size, kind: .write) }
        let a = t.mm!.vma(containing: rmapBase)!, b = t.mm!.vma(containing: rmapBase + Page.size)!
        #expect(a.anonVMA == b.anonVMA)
        #expect(m.rmap.liveAnonVMAs == before + 1)
        #expect(m.rmap.anonVMAs[a.anonVMA - 1].numActiveVMAs == 2)
        #expect(m.rmap.anonVMAs[a.anonVMA - 1].chains == 2)
        // mprotect(B, rw): now identical, they merge; the absorbed VMA's chain is unlinked.
        _ = m.mprotect(t, addr: rmapBase + Page.size, length: Page.size, prot: .rw)
        try m.checkInvariants()
        #expect(t.mm!.vma(containing: rmapBase)!.end == rmapBase + 2 * Page.size)
        #expect(m.rmap.anonVMAs[a.anonVMA - 1].numActiveVMAs == 1)
        #expect(m.rmap.anonVMAs[a.anonVMA - 1].chains == 1)
        #expect(m.rmapWalk(frameAt(m, t, rmapBase + Page.size)!) == 1)
    }

    /// merge.c (forked target): a new unfaulted mapping next to a faulted VMA merges in the
    /// parent, but not in a forked child, whose VMA has two chains (vma_is_fork_child()).
    @Test func forkChildDoesNotMergeWithUnfaultedNeighbour() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        let n = c.mm!.vmas.count
        _ = m.mmap(c, addr: rmapBase + Page.size, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        #expect(c.mm!.vmas.count == n + 1)                 // not merged
        let np = p.mm!.vmas.count
        _ = m.mmap(p, addr: rmapBase + Page.size, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        #expect(p.mm!.vmas.count == np)                    // merged
        try m.checkInvariants()
    }

    /// anon_vma_fork(): the child's VMA gets a chain to the parent's anon_vma and its own
    /// anon_vma (parent = the parent's, root = the root, one reference on the root).
    /// At exit unlink_anon_vmas() empties the child's anon_vma, which is freed.
    @Test func forkClonesChainsAndExitFreesThem() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let root = Int(p.mm!.vma(containing: rmapBase)!.anonVMA - 1)
        let live = m.rmap.liveAnonVMAs, chains = m.rmap.liveChains
        let c = try m.checked { try m.fork(p, childName: "c").get() }
        let cv = c.mm!.vma(containing: rmapBase)!
        let own = Int(cv.anonVMA - 1)
        #expect(own != root)
        #expect(m.rmap.anonVMAs[own].parent == Int32(root) && m.rmap.anonVMAs[own].root == Int32(root))
        #expect(m.rmap.anonVMAs[root].numChildren == 2)     // self link + the child
        #expect(m.rmap.anonVMAs[root].refcount == 2)        // own + the child's
        // Every anonymous VMA with an anon_vma (image data, stack, this one) forks the same way.
        let anonVMAs = p.mm!.vmas.filter { $0.anonVMA != 0 }.count
        #expect(m.rmap.liveAnonVMAs == live + anonVMAs)
        #expect(m.rmap.liveChains == chains + 2 * anonVMAs)
        // The page is shared: mapcount 2 (_mapcount 1), found twice.
        let pfn = frameAt(m, p, rmapBase)!
        #expect(m.rmapWalk(pfn) == 2 && m.kpageMapcount(pfn) == 1)
        m.exit(c)
        _ = m.wait(p)
        try m.checkInvariants()
        #expect(m.rmap.liveAnonVMAs == live && m.rmap.liveChains == chains)
        #expect(m.rmap.anonVMAs[root].numChildren == 1 && m.rmap.anonVMAs[root].refcount == 1)
        #expect(m.rmapWalk(pfn) == 1)
    }

    /// anon_vma_clone()'s reuse rule: an anon_vma with no active VMA and fewer than two
    /// children is taken over by a new fork instead of allocating one.
    @Test func forkReusesAnIdleAnonVMA() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c1 = try m.fork(p, childName: "c1").get()
        let g = try m.fork(c1, childName: "g").get()
        let c1AV = c1.mm!.vma(containing: rmapBase)!.anonVMA
        m.exit(c1)                        // c1's anon_vma keeps g's chain: idle, one child
        let idle = m.rmap.anonVMAs[c1AV - 1]
        #expect(idle.numActiveVMAs == 0 && idle.numChildren == 1)
        let live = m.rmap.liveAnonVMAs
        let gg = try m.checked { try m.fork(g, childName: "gg").get() }
        #expect(gg.mm!.vma(containing: rmapBase)!.anonVMA == c1AV)
        // Only the VMAs whose chains include an idle anon_vma avoid an allocation.
        #expect(m.rmap.liveAnonVMAs < live + p.mm!.vmas.filter { $0.anonVMA != 0 }.count)
        #expect(m.rmapWalk(frameAt(m, p, rmapBase)!) == 3)
    }

    /// do_wp_page() reuse after the other mapping went: folio_move_anon_rmap() moves the
    /// folio to the writer's own anon_vma.
    @Test func reuseMovesTheFolioToTheOwnAnonVMA() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        let pfn = frameAt(m, p, rmapBase)!
        let rootMapping = m.frames[pfn].pointee.mapping
        m.exit(p)                                      // the child is the only mapper now
        try m.checked { m.access(c, addr: rmapBase, length: Page.size, kind: .write) }
        #expect(frameAt(m, c, rmapBase) == pfn)        // reused, not copied
        #expect(m.counters[.pgreuse] >= 1)
        #expect(m.frames[pfn].pointee.mapping != rootMapping)
        #expect(m.frames[pfn].pointee.mapping == PageMapping.anon(c.mm!.vma(containing: rmapBase)!.anonVMA))
    }
}

/// tools/testing/selftests/mm/cow.c, base pages: after fork, neither side sees the other's writes.
@Suite struct CowTests {
    @Test(arguments: [1, 16, 512])
    func noLeakBetweenParentAndChild(pages: Int) throws {
        let (m, p) = try rmapMachine()
        let len = UInt64(pages) * Page.size
        _ = m.mmap(p, addr: rmapBase, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(p, addr: rmapBase, length: len, advice: .nohugepage)
        m.access(p, addr: rmapBase, length: len, kind: .write)
        let original = (0..<pages).map { contentAt(m, p, rmapBase + UInt64($0) * Page.size)! }
        let c = try m.checked { try m.fork(p, childName: "c").get() }
        // Child writes: it gets copies; the parent's contents do not change.
        try m.checked { m.access(c, addr: rmapBase, length: len, kind: .write) }
        for i in 0..<pages {
            let a = rmapBase + UInt64(i) * Page.size
            #expect(contentAt(m, p, a) == original[i], "child's write leaked into the parent at page \(i)")
            #expect(contentAt(m, c, a) == original[i] &+ 1)
            #expect(frameAt(m, p, a) != frameAt(m, c, a))
            #expect(m.rmapWalk(frameAt(m, p, a)!) == 1 && m.rmapWalk(frameAt(m, c, a)!) == 1)
        }
        // Parent writes again (reuse in place, pgreuse): the child does not see it.
        let reuse = m.counters[.pgreuse]
        try m.checked { m.access(p, addr: rmapBase, length: len, kind: .write) }
        #expect(m.counters[.pgreuse] - reuse == Int64(pages))
        for i in 0..<pages {
            let a = rmapBase + UInt64(i) * Page.size
            #expect(contentAt(m, c, a) == original[i] &+ 1, "parent's write leaked into the child at page \(i)")
            #expect(contentAt(m, p, a) == original[i] &+ 1)
        }
    }

    /// The other order: the parent writes first after fork, the child keeps the old data.
    @Test func parentWriteFirst() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let v = contentAt(m, p, rmapBase)!
        let c = try m.fork(p, childName: "c").get()
        try m.checked { m.access(p, addr: rmapBase, length: Page.size, kind: .write) }
        #expect(contentAt(m, c, rmapBase) == v)
        #expect(contentAt(m, p, rmapBase) == v &+ 1)
        // The child's page kept the root anon_vma; the parent's copy is in the root too
        // (its own VMA's anon_vma is the root).
        #expect(m.rmapWalk(frameAt(m, c, rmapBase)!) == 1)
    }
}

@Suite struct ForkTreeTests {
    /// A chain of 1000 fork-and-exit generations: without the reuse rule each generation
    /// would add an anon_vma to every anonymous VMA's chain; with it the hierarchy stays
    /// at most three deep (root, one idle middle one, the live one), so the number of
    /// anon_vmas and chains per VMA stays bounded.
    @Test func thousandDeepForkAndExitStaysBounded() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let pfn = frameAt(m, p, rmapBase)!
        var cur = p
        var maxLive = 0, maxChains = 0
        for i in 0..<1000 {
            let c = try m.fork(cur, childName: "g\(i)").get()
            m.exit(cur)
            if cur !== p { _ = m.wait(p) }
            cur = c
            maxLive = max(maxLive, m.rmap.liveAnonVMAs)
            maxChains = max(maxChains, m.rmap.chainCount(of: c.mm!.vma(containing: rmapBase)!))
        }
        let anonVMAsPerMM = cur.mm!.vmas.filter { $0.anonVMA != 0 }.count
        #expect(maxChains <= 3)
        #expect(maxLive <= 3 * anonVMAsPerMM)
        // The page written by the first process is still the one the last one maps.
        #expect(frameAt(m, cur, rmapBase) == pfn && m.rmapWalk(pfn) == 1)
        try m.checkInvariants()
    }

    /// One parent, 1000 children alive at once: the root cannot be reused (it has the self
    /// link and children), so each child gets its own anon_vma; a page written before the
    /// forks is mapped 1001 times and the walk finds exactly those mappings.
    @Test func thousandWideWalkFindsEveryMapping() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let pfn = frameAt(m, p, rmapBase)!
        let live = m.rmap.liveAnonVMAs
        var kids: [Task] = []
        for i in 0..<1000 { kids.append(try m.fork(p, childName: "c\(i)").get()) }
        let perMM = p.mm!.vmas.filter { $0.anonVMA != 0 }.count
        #expect(m.rmap.liveAnonVMAs == live + 1000 * perMM)
        let hits = m.rmapLocations(pfn)
        #expect(hits.count == 1001 && m.kpageMapcount(pfn) == 1000)
        #expect(Set(hits.map { $0.mm.id }).count == 1001 && hits.allSatisfy { $0.address == rmapBase })
        try m.checkInvariants()
        for k in kids { m.exit(k) }
        while m.wait(p) != nil {}
        #expect(m.rmap.liveAnonVMAs == live && m.rmapWalk(pfn) == 1)
        try m.checkInvariants()
    }

    /// 1000 generations all alive: every generation adds a chain (the kernel's cost of a
    /// deep live tree), and the first process's page is found in all 1001 address spaces.
    @Test func thousandDeepAliveWalk() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let pfn = frameAt(m, p, rmapBase)!
        var cur = p
        for i in 0..<1000 { cur = try m.fork(cur, childName: "d\(i)").get() }
        #expect(m.rmap.chainCount(of: cur.mm!.vma(containing: rmapBase)!) == 1001)
        #expect(m.rmapWalk(pfn) == 1001)
    }
}

@Suite struct RmapUserTests {
    /// rmap_walk_file(): a file page mapped by three processes is found through i_mmap;
    /// folio_referenced() clears the accessed bits; try_to_unmap() takes all mappings.
    @Test func fileWalkReferencedAndUnmap() throws {
        let (m, p) = try rmapMachine()
        let f = m.createFile(name: "data", size: 16 * Page.size)
        _ = m.mmap(p, addr: rmapBase, length: 16 * Page.size, prot: .read, flags: [.shared, .fixedNoreplace], file: f.id)
        m.access(p, addr: rmapBase, length: Page.size, kind: .read)
        let a = try m.fork(p, childName: "a").get()
        let b = try m.fork(p, childName: "b").get()
        m.access(a, addr: rmapBase, length: Page.size, kind: .read)
        m.access(b, addr: rmapBase, length: Page.size, kind: .read)
        let pfn = f.cachePFN(0)!
        #expect(m.rmapWalk(pfn) == 3)
        #expect(m.rmap.iMmapCount(key: Int32(f.id) * 2) == 3)
        // nr_mapped counts the page once, whatever its mapcount.
        let mapped = m.counters[.nrMapped]
        #expect(m.folioReferenced(pfn).referenced == 3)
        #expect(m.folioReferenced(pfn).referenced == 0)     // cleared, and x86 does not flush
        let rss = p.mm!.rss[RSSCounter.filePages.rawValue]
        #expect(m.tryToUnmap(pfn))
        try m.checkInvariants()
        #expect(m.rmapWalk(pfn) == 0 && m.counters[.nrMapped] == mapped - 1)
        #expect(p.mm!.rss[RSSCounter.filePages.rawValue] == rss - 1)
        // The page is still cached: the next read maps it again without I/O.
        m.access(p, addr: rmapBase, length: Page.size, kind: .read)
        #expect(frameAt(m, p, rmapBase) == pfn && p.majFlt == 0)
    }

    /// try_to_unmap() refuses a dirty anonymous page: with no swap there is nowhere to put it.
    @Test func anonUnmapNeedsSwap() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        #expect(!m.tryToUnmap(frameAt(m, p, rmapBase)!))
        #expect(m.rmapWalk(frameAt(m, p, rmapBase)!) == 1)
    }

    /// mremap() moves a VMA: copy_vma() clones its chains, pages keep their index, and
    /// the walk finds them at the new address.
    @Test func mremapKeepsTheRmap() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: 4 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: 4 * Page.size, kind: .write)
        let pfn = frameAt(m, p, rmapBase + Page.size)!
        let to = rmapBase + 64 * Size.MiB
        _ = try m.mremap(p, oldAddr: rmapBase, oldLength: 4 * Page.size, newLength: 4 * Page.size, flags: [.maymove, .fixed], newAddr: to).get()
        try m.checkInvariants()
        let hits = m.rmapLocations(pfn)
        #expect(hits.count == 1 && hits[0].address == to + Page.size)
    }

    /// PMD-mapped THP: entire and large mapcounts (0 for one mapping, 1 after fork), walked
    /// as one PMD mapping per process.
    @Test func thpMapcounts() throws {
        let m = try Machine(.reference)
        let p = m.spawn(name: "p", cpu: 1)
        _ = m.mmap(p, addr: rmapBase, length: 2 * Size.MiB, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(p, addr: rmapBase, length: 2 * Size.MiB, advice: .hugepage)
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let head = frameAt(m, p, rmapBase)!
        #expect(m.entireMapcount(head) - 1 == 0 && m.largeMapcount(head) - 1 == 0)
        #expect(m.frames[head].pointee.mapcount == 0)         // head's own _mapcount stays -1
        _ = try m.fork(p, childName: "c").get()
        try m.checkInvariants()
        #expect(m.entireMapcount(head) == 2 && m.largeMapcount(head) == 2 && m.folioMapcount(head) == 2)
        let hits = m.rmapLocations(head + 7)
        #expect(hits.count == 2 && hits.allSatisfy { $0.level == .pmd })
    }
}

/// tools/testing/selftests/mm/rmap.c: migration and poisoning of pages shared by many processes.
@Suite struct MigrationTests {
    @Test func migrateASharedAnonPage() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let old = frameAt(m, p, rmapBase)!
        let value = m.frames[old].pointee.content
        var kids: [Task] = []
        for i in 0..<32 { kids.append(try m.fork(p, childName: "c\(i)").get()) }
        let anon = m.counters[.nrAnonPages]
        let new = try m.checked { try m.migrateFolio(old).get() }
        #expect(new != old && m.counters[.pgmigrateSuccess] == 1)
        #expect(m.counters[.nrAnonPages] == anon)
        for t in [p] + kids {
            #expect(frameAt(m, t, rmapBase) == new && contentAt(m, t, rmapBase) == value)
        }
        #expect(m.rmapWalk(new) == 33 && m.frames[old].pointee.state != .allocated)
        // The rights came back as they were: read-only (COW) and shared, so a write copies.
        try m.checked { m.access(kids[0], addr: rmapBase, length: Page.size, kind: .write) }
        #expect(contentAt(m, p, rmapBase) == value && contentAt(m, kids[0], rmapBase) == value &+ 1)
    }

    /// An exclusive writable page stays writable and exclusive: no fault after migration.
    @Test func migrateKeepsExclusiveWritable() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: 8 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: 8 * Page.size, kind: .write)
        let r = try m.checked { m.migrateRange(p, addr: rmapBase, length: 8 * Page.size) }
        #expect(r.moved == 8 && r.failed == 0)
        #expect(m.frames[frameAt(m, p, rmapBase)!].pointee.flags.contains(.anonExclusive))
        let faults = p.minFlt
        m.access(p, addr: rmapBase, length: 8 * Page.size, kind: .write)
        #expect(p.minFlt == faults)
    }

    /// A page-cache page: the cache slot moves with it, every process maps the new frame.
    @Test func migrateAFilePage() throws {
        let (m, p) = try rmapMachine()
        let f = m.createFile(name: "data", size: 16 * Page.size)
        _ = m.mmap(p, addr: rmapBase, length: 16 * Page.size, prot: .read, flags: [.private, .fixedNoreplace], file: f.id)
        m.access(p, addr: rmapBase, length: Page.size, kind: .read)
        let c = try m.fork(p, childName: "c").get()
        m.access(c, addr: rmapBase, length: Page.size, kind: .read)
        let old = f.cachePFN(0)!
        let new = try m.checked { try m.migrateFolio(old).get() }
        #expect(f.cachePFN(0) == new && frameAt(m, p, rmapBase) == new && frameAt(m, c, rmapBase) == new)
    }
}

@Suite struct MemoryFailureTests {
    /// Late kill (vm.memory_failure_early_kill = 0): the mappings become hwpoison entries,
    /// nobody is signalled until they touch the page; then SIGBUS kills them.
    @Test func lateKillSignalsOnAccess() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        let pfn = frameAt(m, p, rmapBase)!
        let anon = m.counters[.nrAnonPages]
        let r = try m.checked { m.memoryFailure(pfn) }
        #expect(r == .recovered)
        #expect(m.meminfoValue("HardwareCorrupted") == 4)
        #expect(m.frames[pfn].pointee.state == .isolated && m.frames[pfn].pointee.flags.contains(.hwpoison))
        #expect(m.counters[.nrAnonPages] == anon - 1)
        #expect(p.state == .running && c.state == .running && p.signals.isEmpty)
        let rep = m.access(c, addr: rmapBase, length: Page.size, kind: .read)
        #expect(rep.signal?.name == "SIGBUS" && c.state != .running)
        #expect(m.log.lines.contains("MCE: Killing c:\(c.pid) due to hardware memory corruption fault at \(String(hex: rmapBase, width: 0))"))
        #expect(p.state == .running)
        try m.checkInvariants()
        // Poisoning it again: already hardware poisoned.
        #expect(m.memoryFailure(pfn) == .alreadyPoisoned)
        #expect(m.meminfoValue("HardwareCorrupted") == 4)
    }

    /// Early kill: every task mapping the dirty page gets SIGBUS at once.
    @Test func earlyKillSignalsEveryMapper() throws {
        let (m, p) = try rmapMachine()
        m.memoryFailureEarlyKill = true
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        var kids: [Task] = []
        for i in 0..<8 { kids.append(try m.fork(p, childName: "c\(i)").get()) }
        let bystander = m.spawn(name: "other")
        let r = try m.checked { m.memoryFailure(frameAt(m, p, rmapBase)!) }
        #expect(r == .recovered)
        #expect(([p] + kids).allSatisfy { $0.state != .running && $0.exitCode == 128 + 7 })
        #expect(bystander.state == .running)
        #expect(m.log.lines.filter { $0.contains("Sending SIGBUS") }.count == 9)
    }

    /// A clean page-cache page is just dropped: the mappers read it again from the file.
    @Test
    func cleanFilePageIsRecoveredSilently() throws {
        let (m, p) = try rmapMachine()
        let f = m.createFile(name: "data", size: 16 * Page.size)
        _ = m.mmap(p, addr: rmapBase, length: 16 * Page.size, prot: .read, flags: [.shared, .fixedNoreplace], file: f.id)
        m.access(p, addr: rmapBase, length: Page.size, kind: .read)
        let pfn = f.cachePFN(0)!
        #expect(try m.checked { m.memoryFailure(pfn) } == .recovered)
        #expect(f.cachePFN(0) == nil)
        let rep = m.access(p, addr: rmapBase, length: Page.size, kind: .read)
        #expect(rep.signal == nil && p.majFlt == 1 && frameAt(m, p, rmapBase) != pfn)
        try m.checkInvariants()
    }

    /// A free frame is taken off the buddy lists (take_page_off_buddy()).
    @Test func freeFrameIsTakenOffBuddy() throws {
        let (m, _) = try rmapMachine()
        let probe = m.allocator.allocPages(.highuserMovable)!
        m.allocator.freePages(probe)
        m.allocator.drainPages()
        let free = m.counters[.nrFreePages]
        #expect(try m.checked { m.memoryFailure(probe) } == .recovered)
        #expect(m.counters[.nrFreePages] == free - 1)
        #expect(m.frames[probe].pointee.state == .isolated)
        // Kernel memory is left alone.
        #expect(m.memoryFailure(m.zeroPage) == .ignored)
        #expect(m.meminfoValue("HardwareCorrupted") == 8)
    }

    /// madvise(MADV_HWPOISON): the injecting task consumed the error (action required).
    @Test func injectionKillsTheCurrentTask() throws {
        let (m, p) = try rmapMachine()
        _ = m.mmap(p, addr: rmapBase, length: Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        #expect(m.injectHWPoison(p, addr: rmapBase) == .recovered)
        #expect(p.state != .running && c.state == .running)
        try m.checkInvariants()
    }
}

@Suite struct LockOrderTests {
    /// Every path the model runs takes mmap_lock -> i_mmap_rwsem -> anon_vma -> ptl in order.
    @Test func everyPathTakesLocksInOrder() throws {
        let (m, p) = try rmapMachine()
        m.lockOrder.reset()
        let f = m.createFile(name: "data", size: 16 * Page.size)
        _ = m.mmap(p, addr: rmapBase, length: 16 * Page.size, prot: .rw, flags: [.private, .fixedNoreplace], file: f.id)
        _ = m.mmap(p, addr: rmapBase + Size.MiB, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(p, addr: rmapBase, length: 16 * Page.size, kind: .read)
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        m.access(p, addr: rmapBase + Size.MiB, length: 16 * Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        _ = m.mprotect(c, addr: rmapBase + Size.MiB, length: 4 * Page.size, prot: .read)
        _ = m.mremap(c, oldAddr: rmapBase + Size.MiB, oldLength: 16 * Page.size, newLength: 16 * Page.size,
                     flags: [.maymove, .fixed], newAddr: rmapBase + 8 * Size.MiB)
        _ = m.migrateRange(p, addr: rmapBase + Size.MiB, length: 16 * Page.size)
        _ = m.folioReferenced(f.cachePFN(1)!)
        _ = m.munmap(p, addr: rmapBase, length: 16 * Page.size)
        m.exit(c)
        #expect(m.lockOrder.violations.isEmpty, "\(m.lockOrder.violations)")
        let pairs = Set(m.lockOrder.observedPairs.map { "\($0.outer)>\($0.inner)" })
        for want in ["mmap_lock>anon_vma->rwsem", "mmap_lock>i_mmap_rwsem", "anon_vma->rwsem>ptl", "i_mmap_rwsem>ptl", "mmap_lock>ptl"] {
            #expect(pairs.contains(want), "never saw \(want): \(pairs.sorted())")
        }
        #expect(m.lockOrder.held.isEmpty)
    }
}

@Suite struct RmapScenarioTests {
    func run(_ text: String) throws -> ScenarioReport {
        try ScenarioRunner.run(text, file: "t.mmsim", options: ScenarioOptions(checkInvariants: true))
    }

    /// Early kill from a scenario: every mapper of the poisoned frame dies at once.
    @Test func earlyKillScenario() throws {
        let r = try run("""
        machine preset=small
        sysctl vm.memory_failure_early_kill=1
        spawn p
        p: buf = mmap 0x100000000000 16K rw private anon fixed_noreplace
        p: write buf +16K
        p: fork c
        poison p buf+8K
        expect p.signal == SIGBUS
        expect c.signal == SIGBUS
        expect meminfo.HardwareCorrupted == 4 kB
        """)
        #expect(r.passed, "\(r.summaryText())")
        #expect(r.signals.count == 2)
    }

    /// madvise(MADV_HWPOISON) and move_pages from a scenario, and the frame views.
    @Test func hwpoisonAndViews() throws {
        let r = try run("""
        machine preset=small
        spawn p
        p: buf = mmap 0x100000000000 16K rw private anon fixed_noreplace
        p: write buf +16K
        p: fork c
        p: move_pages buf 16K
        expect vmstat.pgmigrate_success == 4
        cat /proc/c/pagemap/buf /proc/kpageflags/0
        c: hwpoison buf+4K
        expect c.signal == SIGBUS
        expect p.signal == none
        """)
        #expect(r.passed, "\(r.summaryText())")
        let views = r.output.compactMap { o -> String? in if case .view(_, let text, _) = o { return text }; return nil }
        #expect(views.count == 2 && views[0].contains("mapped by p[1]") && views[0].contains("mapped by c[2]"))
    }

    /// Bad input names file:line:column.
    @Test func badInputIsLocated() throws {
        for (text, needle) in [("machine preset=small\nspawn p\npoison q 0x1000", "t.mmsim:3:8"),
                               ("machine preset=small\nspawn p\npoison", "t.mmsim:3"),
                               ("machine preset=small\nspawn p\ncat /proc/kpageflags/zz", "t.mmsim:3:5"),
                               ("machine preset=small\nspawn p\np: move_pages", "t.mmsim:3"),
                               ("machine preset=small\nspawn p\npoison p 0x5000", "t.mmsim:3:1")] {
            do {
                _ = try run(text)
                Issue.record("no error for \(text)")
            } catch let e as ScenarioError {
                #expect("\(e)".contains(needle), "\(e) should name \(needle)")
            }
        }
    }
}

@Suite struct MemoryFailureTHPTests {
    /// memory_failure() on a page of a PMD-mapped THP shared by two processes: the folio is
    /// split (try_to_split_thp_page()), only the bad page is poisoned and isolated, the
    /// other 511 stay mapped in both processes.
    @Test func thpIsSplitThenThePageIsolated() throws {
        let m = try Machine(.reference)
        let p = m.spawn(name: "p", cpu: 1)
        _ = m.mmap(p, addr: rmapBase, length: 2 * Size.MiB, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(p, addr: rmapBase, length: 2 * Size.MiB, advice: .hugepage)
        m.access(p, addr: rmapBase, length: Page.size, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        let head = frameAt(m, p, rmapBase)!
        let bad = head + 5
        let anon = m.counters[.nrAnonPages]
        #expect(try m.checked { m.memoryFailure(bad) } == .recovered)
        #expect(m.counters[.thpSplitPage] == 1 && m.counters[.nrAnonTransparentHugepages] == 0)
        #expect(m.frames[bad].pointee.state == .isolated)
        #expect(m.counters[.nrAnonPages] == anon - 1)
        #expect((0..<512).filter { m.frames[head + UInt64($0)].pointee.flags.contains(.hwpoison) } == [5])
        #expect(m.rmapWalk(head + 6) == 2 && frameAt(m, c, rmapBase + 6 * Page.size) == head + 6)
        #expect(m.access(c, addr: rmapBase + 5 * Page.size, length: Page.size, kind: .read).signal?.name == "SIGBUS")
        #expect(p.state == .running)
    }
}

/// tools/testing/selftests/mm/merge.c, the cases that involve anon_vma.
@Suite struct AnonVMAMergeTests {
    let ps = Page.size
    func setup() throws -> (Machine, Task) { try rmapMachine() }
    func vma(_ t: Task, _ a: UInt64) -> VMA? { t.mm!.vma(containing: a) }

    /// forked_target_vma: the child unCOWs its faulted VMA; a new unfaulted VMA mapped
    /// right after it does not merge (the target was forked: two chains).
    @Test func forkedTargetVMA() throws {
        let (m, p) = try setup()
        let ptr = rmapBase + ps
        _ = m.mmap(p, addr: ptr, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed, .noreserve])
        m.access(p, addr: ptr, length: 1, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        m.access(c, addr: ptr, length: 5 * ps, kind: .write)          // unCOWing does not drop the chain
        _ = m.mmap(c, addr: ptr + 5 * ps, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        try m.checkInvariants()
        #expect(vma(c, ptr)!.start == ptr && vma(c, ptr)!.end == ptr + 5 * ps)
    }

    /// forked_source_vma: the forked faulted VMA made RWX next to an RWX unfaulted one:
    /// still no merge (now the forked VMA would be the source).
    @Test func forkedSourceVMA() throws {
        let (m, p) = try setup()
        let ptr = rmapBase + ps
        _ = m.mmap(p, addr: ptr, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed, .noreserve])
        m.access(p, addr: ptr, length: 1, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        m.access(c, addr: ptr, length: 5 * ps, kind: .write)
        let ptr2 = ptr + 5 * ps
        _ = m.mmap(c, addr: ptr2, length: 5 * ps, prot: [.read, .write, .exec], flags: [.private, .anonymous, .fixed, .noreserve])
        #expect(vma(c, ptr2)!.start == ptr2 && vma(c, ptr2)!.end == ptr2 + 5 * ps)
        _ = m.mprotect(c, addr: ptr, length: 5 * ps, prot: [.read, .write, .exec])
        try m.checkInvariants()
        #expect(vma(c, ptr2)!.start == ptr2 && vma(c, ptr2)!.end == ptr2 + 5 * ps)
    }

    /// mremap_unfaulted_to_faulted: an unfaulted VMA moved next to a faulted one takes a
    /// pgoff matching its new address and merges into it.
    @Test func mremapUnfaultedToFaulted() throws {
        let (m, p) = try setup()
        let ptr = rmapBase + ps
        _ = m.mmap(p, addr: ptr, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        var ptr2 = rmapBase + 7 * ps
        _ = m.mmap(p, addr: ptr2, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        ptr2 = try m.mremap(p, oldAddr: ptr2, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr2 + 1000 * ps).get()
        m.access(p, addr: ptr, length: 1, kind: .write)
        ptr2 = try m.mremap(p, oldAddr: ptr2, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr + 5 * ps).get()
        try m.checkInvariants()
        #expect(vma(p, ptr)!.start == ptr && vma(p, ptr)!.end == ptr + 10 * ps)
    }

    /// mremap_unfaulted_between_faulted: between two faulted VMAs with different anon_vmas
    /// the moved unfaulted VMA merges with the previous one only.
    @Test func mremapUnfaultedBetweenFaulted() throws {
        let (m, p) = try setup()
        let ptr = rmapBase + ps
        _ = m.mmap(p, addr: ptr, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        var ptr2 = rmapBase + 7 * ps
        _ = m.mmap(p, addr: ptr2, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        var ptr3 = rmapBase + 14 * ps
        _ = m.mmap(p, addr: ptr3, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        ptr3 = try m.mremap(p, oldAddr: ptr3, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr3 + 2000 * ps).get()
        ptr2 = try m.mremap(p, oldAddr: ptr2, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr2 + 1000 * ps).get()
        m.access(p, addr: ptr, length: 1, kind: .write)
        m.access(p, addr: ptr3, length: 1, kind: .write)
        ptr3 = try m.mremap(p, oldAddr: ptr3, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr + 10 * ps).get()
        ptr2 = try m.mremap(p, oldAddr: ptr2, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr + 5 * ps).get()
        try m.checkInvariants()
        #expect(vma(p, ptr)!.start == ptr && vma(p, ptr)!.end == ptr + 10 * ps)
        #expect(vma(p, ptr3)!.start == ptr3 && vma(p, ptr3)!.end == ptr3 + 5 * ps)
        // The faulted page of ptr3 is still found through its (unchanged) anon_vma.
        #expect(m.rmapWalk(frameAt(m, p, ptr3)!) == 1)
    }

    /// mremap_unfaulted_between_correctly_placed_faulted: a hole punched in one faulted VMA
    /// leaves two halves sharing the anon_vma and linear pgoffs; an unfaulted VMA moved
    /// into the hole merges all three.
    @Test func mremapUnfaultedBetweenCorrectlyPlacedFaulted() throws {
        let (m, p) = try setup()
        let ptr = rmapBase + ps
        _ = m.mmap(p, addr: ptr, length: 15 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        m.access(p, addr: ptr, length: 1, kind: .write)
        _ = m.munmap(p, addr: ptr + 5 * ps, length: 5 * ps)
        var ptr2 = rmapBase + 20 * ps
        _ = m.mmap(p, addr: ptr2, length: 5 * ps, prot: .rw, flags: [.private, .anonymous, .fixed])
        ptr2 = try m.mremap(p, oldAddr: ptr2, oldLength: 5 * ps, newLength: 5 * ps, flags: [.maymove, .fixed], newAddr: ptr + 5 * ps).get()
        try m.checkInvariants()
        #expect(vma(p, ptr)!.start == ptr && vma(p, ptr)!.end == ptr + 15 * ps)
        #expect(m.rmap.chainCount(of: vma(p, ptr)!) == 1)
    }
}

/// Seeded random sequences of everything that creates, splits, merges, moves, copies and
/// tears down VMAs, with rmap users in between; the checker (mapcount == rmap walk,
/// anon_vma counts, nr_anon_pages, nr_mapped, frame accounting) runs after every step.
@Suite struct RmapRandomTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomOperations(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let m = try TestMachines.small(memory: 512 * Size.MiB)
        let f = m.createFile(name: "f", size: 64 * Page.size)
        var live: [Task] = [m.spawn(name: "t0")]
        let region: UInt64 = 64 * Page.size
        var names = 1
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        func page() -> UInt64 { rmapBase + (rng.next() % 64) * Page.size }
        func len() -> UInt64 { (1 + rng.next() % 8) * Page.size }
        for step in 0..<400 {
            live.removeAll { $0.state != .running }
            if live.isEmpty { live.append(m.spawn(name: "t\(names)")); names += 1 }
            let t = pick(live)
            let op = rng.next() % 14
            switch op {
            case 0, 1:
                let prot: Prot = pick([.rw, .read, [.read, .write, .exec]])
                if rng.next() % 3 == 0 {
                    _ = m.mmap(t, addr: page(), length: len(), prot: prot, flags: [.private, .fixed], file: f.id, offset: (rng.next() % 32) * Page.size)
                } else {
                    _ = m.mmap(t, addr: page(), length: len(), prot: prot, flags: [.private, .anonymous, .fixed])
                }
            case 2: _ = m.munmap(t, addr: page(), length: len())
            case 3: _ = m.mprotect(t, addr: page(), length: len(), prot: pick([.rw, .read, [.read, .write, .exec], .none]))
            case 4:
                _ = m.mremap(t, oldAddr: page(), oldLength: len(), newLength: len(), flags: [.maymove, .fixed],
                             newAddr: rmapBase + region + (rng.next() % 64) * Page.size)
            case 5, 6, 7: m.access(t, addr: page(), length: len(), kind: rng.next() % 3 == 0 ? .read : .write)
            case 8:
                if live.count < 12, case .success(let c) = m.fork(t, childName: "t\(names)") { live.append(c); names += 1 }
            case 9:
                if live.count > 1 {
                    m.exit(t)
                    if let p = t.parent.flatMap({ m.task(pid: $0) }) { _ = m.wait(p) }
                }
            case 10: _ = m.migrateRange(t, addr: rmapBase, length: 2 * region)
            case 11:
                if let mm = t.mm, let pfn = frameAt(m, t, page()), mm.vmas.count > 0 {
                    _ = m.folioReferenced(pfn)
                    if rng.next() % 4 == 0 { _ = m.tryToUnmap(pfn) }
                }
            case 12:
                if rng.next() % 4 == 0, let pfn = frameAt(m, t, page()) { m.memoryFailure(pfn) }
            default:
                _ = m.madvise(t, addr: page(), length: len(), advice: pick([.dontneed, .free, .dontfork, .dofork]))
            }
            do {
                try m.checkInvariants()
            } catch {
                Issue.record("seed \(seed) step \(step) op \(op): \(error)")
                return
            }
        }
        #expect(m.lockOrder.violations.isEmpty)
    }
}

@Suite struct THPMigrationTests {
    /// A PMD-mapped THP shared by parent and child migrates whole: PMD migration entries,
    /// 512 pages copied, both PMDs point at the new folio; pgmigrate_success 512,
    /// thp_migration_success 1; the mapcounts and AnonHugePages are unchanged.
    @Test func pmdMappedTHPMigratesWhole() throws {
        let m = try Machine(.reference)
        let p = m.spawn(name: "p", cpu: 1)
        _ = m.mmap(p, addr: rmapBase, length: 2 * Size.MiB, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        _ = m.madvise(p, addr: rmapBase, length: 2 * Size.MiB, advice: .hugepage)
        m.access(p, addr: rmapBase, length: 2 * Size.MiB, kind: .write)
        let c = try m.fork(p, childName: "c").get()
        let old = frameAt(m, p, rmapBase)!
        let contents = (0..<512).map { m.frames[old + UInt64($0)].pointee.content }
        let thp = m.counters[.nrAnonTransparentHugepages], anon = m.counters[.nrAnonPages]
        let r = try m.checked { m.migrateRange(p, addr: rmapBase, length: 2 * Size.MiB) }
        #expect(r.moved == 512 && r.failed == 0)
        #expect(m.counters[.pgmigrateSuccess] == 512 && m.counters[.thpMigrationSuccess] == 1)
        let new = frameAt(m, p, rmapBase)!
        #expect(new != old && frameAt(m, c, rmapBase) == new)
        #expect((0..<512).allSatisfy { m.frames[new + UInt64($0)].pointee.content == contents[$0] })
        #expect(m.entireMapcount(new) == 2 && m.counters[.nrAnonTransparentHugepages] == thp && m.counters[.nrAnonPages] == anon)
        #expect(m.rmapLocations(new).allSatisfy { $0.level == .pmd })
        // Still shared copy-on-write: the child's write splits and copies, the parent keeps its data.
        try m.checked { m.access(c, addr: rmapBase, length: Page.size, kind: .write) }
        #expect(contentAt(m, p, rmapBase) == contents[0])
    }
}
