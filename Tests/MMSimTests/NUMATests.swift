// NUMA nodes: per-node zones at boot, zonelists and the numa_* counters of
// zone_statistics(), and page migration between nodes (move_pages(2) with a target node).

import Foundation
import Testing
import MMSimTestSupport

/// A booted, checked x86-64 machine with `nodes` nodes.
func numaMachine(nodes: Int = 2, cpus: Int = 2, memory: UInt64 = 8 * Size.GiB) throws -> Machine {
    var c = MachineConfig.small
    c.memory = memory
    c.cpus = cpus
    c.nodes = nodes
    let m = try Machine(c)
    try m.checkInvariants()
    return m
}

@Suite struct NUMATests {
    /// Two nodes of 8 GiB: node 0 has DMA, DMA32 and the first GiB above 4 GiB as Normal,
    /// node 1 only Normal; every node's zones are inside its span and the nodes' managed
    /// pages add up to MemTotal.
    @Test func twoNodeBoot() throws {
        let m = try numaMachine()
        #expect(m.zones.count == 8 && m.allocator.nodeCount == 2)
        let n0 = Array(m.allocator.zones(ofNode: 0)), n1 = Array(m.allocator.zones(ofNode: 1))
        #expect(n0.map(\.isPopulated) == [true, true, true, false])
        #expect(n1.map(\.isPopulated) == [false, false, true, false])
        #expect(n0.allSatisfy { $0.node == 0 } && n1.allSatisfy { $0.node == 1 })
        // RAM [4 GiB, 9 GiB) holds the upper 5 GiB; node 1 starts at 5 GiB.
        #expect(n0[2].startPFN == (4 * Size.GiB) >> Page.shift && n0[2].endPFN == (5 * Size.GiB) >> Page.shift)
        #expect(n1[2].startPFN == (5 * Size.GiB) >> Page.shift && n1[2].endPFN == (9 * Size.GiB) >> Page.shift)
        #expect(m.zones.reduce(0) { $0 + $1.presentPages } == m.physPages)
        let managed = m.zones.reduce(UInt64(0)) { $0 + $1.managedPages }
        #expect(managed == m.totalRAMPages)
        #expect(m.meminfoText().contains(String(managed * 4)))
        // Per-node meminfo adds up too.
        let nodeTotals = (0..<2).map { n -> UInt64 in
            let line = m.nodeMeminfoText(node: n).split(separator: "\n").first { $0.contains("MemTotal") }!
            return UInt64(line.split(separator: " ").dropLast().last!)!
        }
        #expect(nodeTotals.reduce(0, +) == managed * 4)
        // Node 1 has its own watermarks and lowmem reserves (nothing above Normal to reserve for).
        #expect(n1[2].watermark(.min) > 0 && n1[2].watermark(.low) > n1[2].watermark(.min))
        #expect(n0[1].lowmemReserve[2] > 0 && n1[2].lowmemReserve[3] == 0)
        // The views name the node.
        #expect(m.zoneinfoText().contains("Node 1, zone   Normal"))
        #expect(m.buddyinfoText().contains("Node 1, zone   Normal"))
        #expect(m.log.contains { $0.contains("Initmem setup node 1") })
    }

    /// One node boots exactly as before: same zones, same numbers.
    @Test func singleNodeUnchanged() throws {
        var c = MachineConfig.small
        c.memory = 8 * Size.GiB
        c.cpus = 2
        let a = try Machine(c)
        #expect(a.zones.count == 4 && a.allocator.nodeCount == 1)
        #expect(!a.zoneinfoText().contains("Node 1"))
    }

    /// CPUs sit on nodes in contiguous blocks.
    @Test func cpuToNode() throws {
        var c = MachineConfig.small
        c.cpus = 4
        c.nodes = 2
        #expect((0..<4).map(c.cpuToNode) == [0, 0, 1, 1])
        c.cpus = 3
        #expect((0..<3).map(c.cpuToNode) == [0, 0, 1])
        c.nodes = 1
        #expect((0..<3).map(c.cpuToNode) == [0, 0, 0])
    }

    /// A task on a node-1 CPU faults its pages in from node 1: numa_hit and numa_local there.
    @Test func localAllocation() throws {
        let m = try numaMachine()
        let t = m.spawn(name: "p", cpu: 1)
        let hit = m.allocator.numaEvent(.numaHit, node: 1), local = m.allocator.numaEvent(.numaLocal, node: 1)
        _ = m.mmap(t, addr: rmapBase, length: 4 * Size.MiB, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        try m.checked { m.access(t, addr: rmapBase, length: 4 * Size.MiB, kind: .write) }
        for i in stride(from: UInt64(0), to: 4 * Size.MiB, by: Int(Page.size)) {
            #expect(m.allocator.nodeOf(frameAt(m, t, rmapBase + i)!) == 1)
        }
        #expect(m.allocator.numaEvent(.numaHit, node: 1) - hit >= 1024)
        #expect(m.allocator.numaEvent(.numaLocal, node: 1) - local >= 1024)
        #expect(m.allocator.numaEvent(.numaMiss, node: 1) == 0 && m.allocator.numaEvent(.numaOther, node: 1) == 0)
        #expect(m.counters[.numaMiss] == 0)
        #expect(m.nodeNumastatText(node: 1).contains("numa_hit \(m.allocator.numaEvent(.numaHit, node: 1))"))
        #expect(m.pageReport(frameAt(m, t, rmapBase)!).contains(" node 1"))
    }

    /// When node 1 runs dry, allocations from its CPU fall back to node 0: numa_miss and
    /// numa_other on node 0, numa_foreign on node 1. __GFP_THISNODE fails instead.
    @Test func fallbackToOtherNode() throws {
        let m = try numaMachine(memory: 1 * Size.GiB)
        m.allocator.currentCPU = 1
        var taken: [PFN] = []
        var remote: PFN?
        while remote == nil {
            guard let pfn = m.allocator.allocPages([.highuserMovable, .noWarn]) else { break }
            if m.allocator.nodeOf(pfn) == 0 { remote = pfn } else { taken.append(pfn) }
        }
        // The fast path leaves node 1 once it is under its low watermark.
        let z1 = m.allocator.zones(ofNode: 1).first { $0.isPopulated }!
        #expect(remote != nil && taken.count > 80_000 && z1.freePages <= Int64(z1.watermark(.low)))
        #expect(m.allocator.numaEvent(.numaMiss, node: 0) == 1)
        #expect(m.allocator.numaEvent(.numaOther, node: 0) == 1)
        #expect(m.allocator.numaEvent(.numaForeign, node: 1) == 1)
        #expect(m.counters[.numaMiss] == 1 && m.counters[.numaForeign] == 1 && m.counters[.numaOther] == 1)
        #expect(m.allocator.numaEvent(.numaHit, node: 1) >= Int64(taken.count))
        // Node 1 only (__GFP_THISNODE): the slow path takes node 1 down to its min
        // watermark, then fails rather than fall back.
        while let pfn = m.allocator.allocPages([.highuserMovable, .noWarn, .thisNode], node: 1) {
            #expect(m.allocator.nodeOf(pfn) == 1)
            taken.append(pfn)
        }
        #expect(z1.freePages <= Int64(z1.watermark(.min)))
        #expect(m.allocator.numaEvent(.numaMiss, node: 0) == 1)
        try m.checkInvariants()
        for p in taken { m.allocator.freePages(p) }
        if let r = remote { m.allocator.freePages(r) }
        m.allocator.currentCPU = 0
        try m.checkInvariants()
    }

    /// move_pages(2) of 1 GiB of touched anonymous memory from node 0 to node 1: every
    /// page moves, pgmigrate_success counts them, the new pages are numa_hit on node 1 and
    /// numa_other (the CPU is on node 0), and the checker passes.
    @Test func migrateOneGiBToNode1() throws {
        let m = try numaMachine()
        let t = m.spawn(name: "p", cpu: 0)
        let len = Size.GiB
        _ = m.mmap(t, addr: rmapBase, length: len, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        try m.checked { m.access(t, addr: rmapBase, length: len, kind: .write) }
        var onNode0 = 0
        for i in stride(from: UInt64(0), to: len, by: Int(Page.size)) where m.allocator.nodeOf(frameAt(m, t, rmapBase + i)!) == 0 { onNode0 += 1 }
        #expect(onNode0 == 262_144)
        let hit1 = m.allocator.numaEvent(.numaHit, node: 1), other1 = m.allocator.numaEvent(.numaOther, node: 1)
        let value = contentAt(m, t, rmapBase + 12345 * Page.size)
        let r = try m.checked { m.migrateRange(t, addr: rmapBase, length: len, toNode: 1) }
        #expect(r.moved == 262_144 && r.failed == 0)
        #expect(m.counters[.pgmigrateSuccess] == 262_144 && m.counters[.pgmigrateFail] == 0)
        var onNode1 = 0
        for i in stride(from: UInt64(0), to: len, by: Int(Page.size)) where m.allocator.nodeOf(frameAt(m, t, rmapBase + i)!) == 1 { onNode1 += 1 }
        #expect(onNode1 == 262_144)
        #expect(contentAt(m, t, rmapBase + 12345 * Page.size) == value)
        #expect(m.allocator.numaEvent(.numaHit, node: 1) - hit1 == 262_144)
        #expect(m.allocator.numaEvent(.numaOther, node: 1) - other1 == 262_144)
        #expect(m.counters[.numaMiss] == 0)
        // Again: everything is already there, nothing moves.
        let again = try m.checked { m.migrateRange(t, addr: rmapBase, length: len, toNode: 1) }
        #expect(again.moved == 0 && again.failed == 0)
    }

    /// A full target node fails the move with -ENOMEM (pgmigrate_fail), no fallback.
    @Test func migrateToFullNodeFails() throws {
        let m = try numaMachine(memory: 1 * Size.GiB)
        m.allocator.currentCPU = 1
        var taken: [PFN] = []
        while let pfn = m.allocator.allocPages([.highuserMovable, .noWarn, .thisNode], node: 1) { taken.append(pfn) }
        m.allocator.currentCPU = 0
        let t = m.spawn(name: "p", cpu: 0)
        _ = m.mmap(t, addr: rmapBase, length: 16 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: rmapBase, length: 16 * Page.size, kind: .write)
        let r = try m.checked { m.migrateRange(t, addr: rmapBase, length: 16 * Page.size, toNode: 1) }
        #expect(r.moved == 0 && r.failed == 16 && m.counters[.pgmigrateFail] == 16)
        for p in taken { m.allocator.freePages(p) }
        try m.checkInvariants()
    }

    /// Bad configurations name the field and the allowed range.
    /// A node the machine does not have has no pages: the allocation fails (the kernel's
    /// VM_BUG_ON in __alloc_pages_node()), nothing is counted, and a migration to it fails
    /// and leaves the page where it was.
    @Test(arguments: [1, 2])
    func allocationForAMissingNodeFails(nodes: Int) throws {
        let m = try numaMachine(nodes: nodes)
        let before = m.counters[.pgallocNormal] + m.counters[.pgallocDma32]
        #expect(m.allocator.allocPages(.highuserMovable, node: nodes) == nil)
        #expect(m.allocator.allocPages([.highuserMovable, .thisNode], node: nodes + 3) == nil)
        #expect(m.counters[.pgallocNormal] + m.counters[.pgallocDma32] == before)
        let t = m.spawn(name: "p", cpu: 0)
        _ = m.mmap(t, addr: rmapBase, length: 4 * Page.size, prot: .rw, flags: [.private, .anonymous, .fixedNoreplace])
        m.access(t, addr: rmapBase, length: 4 * Page.size, kind: .write)
        let r = try m.checked { m.migrateRange(t, addr: rmapBase, length: 4 * Page.size, toNode: nodes) }
        #expect(r.moved == 0 && r.failed == 4 && m.counters[.pgmigrateFail] == 4)
        try m.checkInvariants()
    }

    @Test func badConfigRejected() throws {
        for (nodes, memory) in [(0, 8 * Size.GiB), (9, 8 * Size.GiB), (4, 512 * Size.MiB)] {
            var c = MachineConfig.small
            c.memory = memory
            c.nodes = nodes
            #expect(throws: ConfigError.self) { try c.validate() }
            do { try c.validate() } catch let e as ConfigError {
                #expect(e.field == "nodes" && e.message.contains("allowed 1 ..."), "\(e)")
            }
        }
        let json = #"{"preset": "small", "memory": "2G", "nodes": 2}"#
        #expect(try MachineConfig.load(json: Data(json.utf8)).nodes == 2)
        #expect(throws: ConfigError.self) { try MachineConfig.load(json: Data(#"{"nodes": 12}"#.utf8)) }
    }

    /// The scenario language: `machine ... nodes=2`, `move_pages ADDR LEN node=N`, the
    /// node in the pagemap view, per-node sysfs files; bad nodes are located.
    @Test func scenario() throws {
        let r = try ScenarioRunner.run("""
        machine preset=small memory=2G cpus=2 nodes=2
        spawn p cpu=0
        p: buf = mmap 0x100000000000 64K rw private anon fixed_noreplace
        p: write buf +64K
        p: move_pages buf 64K node=1
        expect p.errno == ok
        expect vmstat.pgmigrate_success == 16
        cat /proc/p/pagemap/buf /sys/devices/system/node/node1/numastat /sys/devices/system/node/node1/meminfo
        """, file: "t.mmsim", options: ScenarioOptions(checkInvariants: true))
        #expect(r.passed, "\(r.summaryText())")
        let views = r.output.compactMap { o -> String? in if case .view(_, let text, _) = o { return text }; return nil }
        #expect(views.count == 3 && views[0].contains(" node 1") && views[1].contains("numa_hit") && views[2].contains("Node 1 MemTotal"))
        for (text, needle) in [("machine preset=small memory=2G nodes=9", "t.mmsim:1:"),
                               ("machine preset=small memory=2G nodes=2\nspawn p\np: move_pages 0x1000 4K node=2", "t.mmsim:3:"),
                               ("machine preset=small memory=2G nodes=2\nspawn p\np: move_pages 0x1000 4K nod=1", "t.mmsim:3:")] {
            do {
                _ = try ScenarioParser.parse(text, file: "t.mmsim")
                Issue.record("no error for \(text)")
            } catch let e as ScenarioError {
                #expect("\(e)".contains(needle), "\(e) should name \(needle)")
                if text.hasSuffix("node=2") { #expect("\(e)".contains("0...1")) }
                if text.hasSuffix("nodes=9") { #expect("\(e)".contains("1 ... 8")) }
            }
        }
    }
}
