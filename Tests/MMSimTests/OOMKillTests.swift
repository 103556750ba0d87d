// The OOM killer (mm/oom_kill.c) and overcommit (mm/util.c __vm_enough_memory()): victim
// choice by oom_badness(), oom_score_adj, the tie rule, the kill of a whole thread group, the
// memory it gives back, the kernel's log lines, and the ENOMEM boundaries of the three
// vm.overcommit_memory modes.

import Testing
import Foundation
@testable import MMSim
import MMSimTestSupport

@Suite struct OOMKillTests {
    /// A process with `bytes` of anonymous memory written.
    func hog(_ m: Machine, _ name: String, _ bytes: UInt64) throws -> Task {
        let t = m.spawn(name: name)
        guard case .success(let a) = m.mmap(t, length: bytes, prot: .rw, flags: [.private, .anonymous]) else {
            throw OOMTestError.mmapFailed
        }
        let r = m.access(t, addr: a, length: bytes, kind: .write)
        #expect(r.signal == nil)
        return t
    }

    enum OOMTestError: Error { case mmapFailed }

    /// An OOM for a GFP_KERNEL allocation of `t` (what __alloc_pages_may_oom() would ask).
    func oom(_ m: Machine, _ t: Task?) -> Task? {
        m.outOfMemory(OOMControl(gfp: .kernel, order: 0, task: t))
    }

    /// Lines logged after index `from`.
    func logSince(_ m: Machine, _ from: Int) -> [String] { Array(m.log.lines[from...]) }

    // MARK: oom_badness() and /proc/PID/oom_score

    @Test func badnessIsRSSPlusSwapPlusPageTablesPlusScaledAdj() throws {
        let m = try TestMachines.small()
        let t = try hog(m, "a", 16 * Size.MiB)
        let mm = try #require(t.mm)
        let total = m.totalRAMPages
        let base = mm.rssPages + mm.rss[RSSCounter.swapEnts.rawValue] + Int64(mm.pageTable.pgtablesBytes / Page.size)
        #expect(m.oomBadness(t) == base)
        m.setOOMScoreAdj(t, 300)
        #expect(m.oomBadness(t) == base + 300 * Int64(total / 1000))
        m.setOOMScoreAdj(t, -300)
        #expect(m.oomBadness(t) == base - 300 * Int64(total / 1000))
        // proc_oom_score(): (1000 + badness * 1000 / totalpages) * 2 / 3.
        let b = try #require(m.oomBadness(t))
        #expect(m.oomScore(t) == (1000 + b * 1000 / Int64(total)) * 2 / 3)
        m.setOOMScoreAdj(t, -1000)
        #expect(m.oomBadness(t) == nil)
        #expect(m.oomScore(t) == 0)
        #expect(m.setOOMScoreAdj(t, 1001).failureValue == .EINVAL)
        #expect(m.oomScoreAdj(t) == -1000)
    }

    @Test func oomScoreAdjIsInheritedByForkAndSharedByThreads() throws {
        let m = try TestMachines.small()
        let p = m.spawn(name: "p")
        m.setOOMScoreAdj(p, 500)
        guard case .success(let child) = m.fork(p, childName: "c"), case .success(let th) = m.cloneThread(p, name: "t") else {
            Issue.record("fork or clone failed")
            return
        }
        #expect(m.oomScoreAdj(child) == 500)
        #expect(m.oomScoreAdj(th) == 500)
        m.setOOMScoreAdj(th, -200)          // a thread writes its process's value
        #expect(m.oomScoreAdj(p) == -200)
        #expect(m.oomScoreAdj(child) == 500) // the child has its own copy
    }

    // MARK: select_bad_process()

    @Test func theLargestProcessIsChosenNotTheAllocatingOne() throws {
        let m = try TestMachines.small()
        let small = try hog(m, "small", 8 * Size.MiB)
        let big = try hog(m, "big", 64 * Size.MiB)
        let kills = m.vmstatValue(.oomKill)
        let victim = oom(m, small)
        #expect(victim === big)
        #expect(big.state != .running && big.signals.last?.name == "SIGKILL")
        #expect(big.exitCode == 137)
        #expect(small.state == .running && small.signals.isEmpty)
        #expect(m.vmstatValue(.oomKill) == kills + 1)
        #expect(m.oom.victims == [big.pid])
    }

    @Test func oomScoreAdj1000IsChosenFirstAndMinus1000Never() throws {
        let m = try TestMachines.small()
        let big = try hog(m, "big", 64 * Size.MiB)
        let small = try hog(m, "small", 4 * Size.MiB)
        m.setOOMScoreAdj(small, 1000)
        m.setOOMScoreAdj(big, -1000)
        #expect(oom(m, big) === small)
        // Only the -1000 process is left: nobody can be killed, and a global OOM panics.
        let n = m.log.count
        #expect(oom(m, big) == nil)
        #expect(big.state == .running)
        #expect(logSince(m, n).contains("Out of memory and no killable processes..."))
        #expect(logSince(m, n).last == "Kernel panic - not syncing: System is deadlocked on memory")
        #expect(m.oom.panicMessage == "System is deadlocked on memory")
    }

    @Test func equalBadnessGoesToTheLaterProcess() throws {
        // oom_evaluate_task() skips a task only when points < chosen_points: of two processes
        // with the same badness, the one later in the task list is chosen.
        let m = try TestMachines.small()
        let first = try hog(m, "first", 16 * Size.MiB)
        let second = try hog(m, "second", 16 * Size.MiB)
        #expect(m.oomBadness(first) == m.oomBadness(second))
        #expect(oom(m, nil) === second)
        #expect(first.state == .running)
    }

    @Test func theWholeThreadGroupIsKilledAndItsMemoryFreed() throws {
        let m = try TestMachines.small()
        m.allocator.drainPages()
        let freeBefore = m.counters[.nrFreePages]
        let p = try hog(m, "p", 32 * Size.MiB)
        guard case .success(let t1) = m.cloneThread(p, name: "t1"), case .success(let t2) = m.cloneThread(p, name: "t2") else {
            Issue.record("clone failed")
            return
        }
        let other = m.spawn(name: "other")
        m.allocator.drainPages()
        let freeWithOther = m.counters[.nrFreePages]
        #expect(try m.checked { oom(m, other) } === p)
        for t in [p, t1, t2] {
            #expect(t.state != .running, "\(t.name) still runs")
            #expect(t.signals.last?.name == "SIGKILL")
            #expect(t.mm == nil)
        }
        // Everything p had is free again (its page tables after the RCU grace period): MemFree
        // is what a machine that only ever ran `other` has.
        _ = m.synchronizeRCU()
        m.allocator.drainPages()
        #expect(m.counters[.nrFreePages] > freeWithOther + 8000)
        #expect(freeBefore > m.counters[.nrFreePages])
        let fresh = try TestMachines.small()
        _ = fresh.spawn(name: "other")
        _ = fresh.synchronizeRCU()
        fresh.allocator.drainPages()
        #expect(m.counters[.nrFreePages] == fresh.counters[.nrFreePages])
    }

    @Test func oomKillAllocatingTaskKillsTheAllocator() throws {
        let m = try TestMachines.small()
        let small = try hog(m, "small", 4 * Size.MiB)
        let big = try hog(m, "big", 64 * Size.MiB)
        m.oom.killAllocatingTask = true
        let n = m.log.count
        #expect(oom(m, small) === small)
        #expect(big.state == .running)
        #expect(logSince(m, n).contains { $0.hasPrefix("Out of memory (oom_kill_allocating_task): Killed process \(small.pid) (small)") })
    }

    @Test func panicOnOOMReportsAndKillsNobody() throws {
        let m = try TestMachines.small()
        let big = try hog(m, "big", 16 * Size.MiB)
        m.oom.panicOnOOM = 1
        let n = m.log.count
        #expect(oom(m, big) == nil)
        #expect(big.state == .running)
        #expect(m.vmstatValue(.oomKill) == 0)
        let lines = logSince(m, n)
        #expect(lines.first?.hasPrefix("big invoked oom-killer: ") == true)
        #expect(lines.last == "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled")
    }

    @Test func aGlobalOOMWithoutGFPFSKillsNobody() throws {
        let m = try TestMachines.small()
        let big = try hog(m, "big", 16 * Size.MiB)
        #expect(m.outOfMemory(OOMControl(gfp: [.reclaim, .io], task: big)) == nil)   // GFP_NOFS
        #expect(big.state == .running)
    }

    @Test func memcgConstraintChoosesInsideTheGroupOnly() throws {
        let m = try TestMachines.small()
        let outside = try hog(m, "outside", 64 * Size.MiB)
        let inside = try hog(m, "inside", 8 * Size.MiB)
        let domain = OOMMemcgDomain(path: "/grp", maxPages: 4096, contains: { $0 === inside },
                                    meminfo: { ["memory: usage 16384kB, limit 16384kB, failcnt 1"] })
        let n = m.log.count
        #expect(m.outOfMemory(OOMControl(gfp: .kernel, constraint: .memcg(domain), task: inside)) === inside)
        #expect(outside.state == .running)
        let lines = logSince(m, n)
        #expect(lines[1] == "memory: usage 16384kB, limit 16384kB, failcnt 1")
        #expect(lines.contains("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/grp,task_memcg=/grp,task=inside,pid=\(inside.pid),uid=0"))
        #expect(lines.contains { $0.hasPrefix("Memory cgroup out of memory: Killed process \(inside.pid) (inside)") })
        // The task table lists the group's processes only.
        #expect(!lines.contains { $0.hasSuffix(" outside") })
    }

    // MARK: The log

    @Test func theLogLinesAreTheKernels() throws {
        let m = try TestMachines.small()
        let a = try hog(m, "a", 8 * Size.MiB)
        let b = try hog(m, "b", 32 * Size.MiB)
        m.setOOMScoreAdj(b, 10)
        let mm = try #require(b.mm)
        // The values the kernel prints, with its own printf formats.
        let row = { (t: Task) -> String in
            let mm = t.mm!
            let r = mm.rss
            return String(format: "[%7d] %5d %5d %8lu %8lu %8lu %8lu %9lu %8ld %8lu         %5hd %@",
                          t.pid, 0, t.pid, mm.totalVM, mm.rssPages, r[1], r[0], r[3], Int(mm.pageTable.pgtablesBytes), r[2],
                          Int16(m.oomScoreAdj(t)), t.name)
        }
        let rows = [row(a), row(b)]
        let killed = String(format: "Out of memory: Killed process %d (b) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:0 pgtables:%lukB oom_score_adj:10",
                            b.pid, mm.totalVM * 4, mm.rss[1] * 4, mm.rss[0] * 4, mm.rss[3] * 4, Int(mm.pageTable.pgtablesBytes >> 10))
        let n = m.log.count
        _ = m.outOfMemory(OOMControl(gfp: [.highuserMovable, .zero, .comp], task: a))
        let lines = logSince(m, n)
        #expect(lines[0] == "a invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP), order=0, oom_score_adj=0")
        #expect(lines[1] == "Mem-Info:")
        let tasks = try #require(lines.firstIndex(of: "Tasks state (memory values in pages):"))
        #expect(lines[tasks + 1] == "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name")
        #expect(Array(lines[(tasks + 2)...(tasks + 3)]) == rows)
        #expect(lines[tasks + 4] == "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=b,pid=\(b.pid),uid=0")
        #expect(lines[tasks + 5] == killed)
        #expect(lines.count == tasks + 6)    // the victim exited on its own: no reaper line
    }

    @Test func gfpMasksPrintAsTheKernelPrintsThem() {
        #expect(GFP.kernel.kernelDescription == "0xcc0(GFP_KERNEL)")
        #expect(GFP.kernelAccount.union(.zero).kernelDescription == "0x400dc0(GFP_KERNEL_ACCOUNT|__GFP_ZERO)")
        #expect(GFP.highuserMovable.union(.comp).kernelDescription == "0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)")
        #expect(GFP.atomic.kernelDescription == "0x820(GFP_ATOMIC)")
        #expect(GFP().kernelDescription == "0()")
    }

    @Test func withoutOOMDumpTasksThereIsNoTaskTable() throws {
        let m = try TestMachines.small()
        let a = try hog(m, "a", 8 * Size.MiB)
        m.oom.dumpTasks = false
        let n = m.log.count
        _ = oom(m, a)
        #expect(!logSince(m, n).contains("Tasks state (memory values in pages):"))
    }

    @Test func aBlockedVictimIsReapedFirst() throws {
        let m = try TestMachines.small()
        let big = try hog(m, "big", 16 * Size.MiB)
        let other = m.spawn(name: "other")
        m.sleep(big)
        let n = m.log.count
        #expect(oom(m, other) === big)
        let lines = logSince(m, n)
        #expect(lines.last == "oom_reaper: reaped process \(big.pid) (big), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB")
        #expect(big.mm == nil)
    }

    // MARK: The fault path

    @Test func aFaultRetriesAfterAnotherProcessIsKilled() throws {
        let m = try TestMachines.small()
        let big = try hog(m, "big", 150 * Size.MiB)
        let w = m.spawn(name: "writer")
        guard case .success(let a) = m.mmap(w, length: 80 * Size.MiB, prot: .rw, flags: [.private, .anonymous]) else {
            Issue.record("mmap failed")
            return
        }
        let r = try m.checked { m.access(w, addr: a, length: 80 * Size.MiB, kind: .write) }
        #expect(r.signal == nil)
        #expect(r.accesses == Int(80 * Size.MiB / Page.size))
        #expect(big.signals.last?.name == "SIGKILL" && big.state != .running)
        #expect(w.state == .running)
        #expect(m.vmstatValue(.oomKill) == 1)
    }

    @Test func theFaultingTaskDiesWhenItIsTheVictim() throws {
        let m = try TestMachines.small()
        let w = m.spawn(name: "writer")
        guard case .success(let a) = m.mmap(w, length: 219 * Size.MiB, prot: .rw, flags: [.private, .anonymous]) else {
            Issue.record("mmap failed")
            return
        }
        let r = m.access(w, addr: a, length: 219 * Size.MiB, kind: .write)
        #expect(r.signal?.name == "SIGKILL")
        #expect(w.state != .running && w.exitCode == 137)
        #expect(m.vmstatValue(.oomKill) == 1)
        #expect(m.log.lines.contains { $0.hasPrefix("Out of memory: Killed process \(w.pid) (writer)") })
    }

    // MARK: Overcommit (mm/util.c __vm_enough_memory())

    func mmapResult(_ m: Machine, _ t: Task, pages: UInt64, flags: MapFlags = [.private, .anonymous]) -> Errno? {
        m.mmap(t, length: pages * Page.size, prot: .rw, flags: flags).failureValue
    }

    @Test func guessRefusesOnlyASingleRequestLargerThanRAMPlusSwap() throws {
        // OVERCOMMIT_GUESS: `pages > totalram_pages() + total_swap_pages` fails, whatever is
        // already committed.
        let m = try TestMachines.small()
        let t = m.spawn(name: "p")
        let limit = m.totalRAMPages + m.totalSwapPages
        let n = m.log.count
        #expect(mmapResult(m, t, pages: limit + 1) == .ENOMEM)
        #expect(logSince(m, n) == ["__vm_enough_memory: pid: \(t.pid), comm: p, bytes: \((limit + 1) * Page.size) not enough memory for the allocation"])
        #expect(mmapResult(m, t, pages: limit) == nil)
        #expect(mmapResult(m, t, pages: limit) == nil)       // twice RAM committed: still fine
        #expect(m.brk(t, t.mm!.brk + (limit + 1) * Page.size) == t.mm!.brk)
    }

    @Test func alwaysAcceptsTwiceTheMachine() throws {
        let m = try TestMachines.small(memory: 1024 * Size.MiB)
        let t = m.spawn(name: "p")
        #expect(mmapResult(m, t, pages: 2 * Size.GiB / Page.size) == .ENOMEM)     // mode 0
        m.overcommit.mode = .always
        let before = m.committedAS
        #expect(mmapResult(m, t, pages: 2 * Size.GiB / Page.size) == nil)
        #expect(m.committedAS == before + Int64(2 * Size.GiB / Page.size))
    }

    @Test func neverKeepsCommittedASBelowTheCommitLimit() throws {
        // OVERCOMMIT_NEVER: allowed = vm_commit_limit() - min(total_vm / 32, user_reserve)
        // (root: no admin reserve); the request passes while committed + pages < allowed.
        let m = try TestMachines.small()
        let t = m.spawn(name: "p")
        m.overcommit.mode = .never
        let limit = Int64((m.totalRAMPages - m.hugetlbTotalPages) * 50 / 100)
        #expect(Int64(m.vmCommitLimit()) == limit)
        #expect(m.meminfo().first { $0.name == "CommitLimit" }?.value == UInt64(limit) * 4)
        let mm = try #require(t.mm)
        let allowed = limit - min(mm.totalVM / 32, Int64(m.overcommit.userReserveKbytes / 4))
        let most = UInt64(allowed - m.committedAS - 1)
        #expect(mmapResult(m, t, pages: most + 1) == .ENOMEM)
        #expect(mmapResult(m, t, pages: most) == nil)
        // Now nothing more fits, not even one private writable page...
        #expect(mmapResult(m, t, pages: 1) == .ENOMEM)
        // ...but what is not accounted does: read-only, MAP_NORESERVE, shared file-less read.
        #expect(m.mmap(t, length: Page.size, prot: .read, flags: [.private, .anonymous]).failureValue == nil)
        #expect(mmapResult(m, t, pages: 16, flags: [.private, .anonymous, .noreserve]) == nil)
        // brk, mprotect (to writable) and fork are refused too.
        let oldBrk = t.mm!.brk
        #expect(m.brk(t, oldBrk + Page.size) == oldBrk)
        guard case .success(let ro) = m.mmap(t, length: Page.size, prot: .read, flags: [.private, .anonymous]) else {
            Issue.record("read-only mmap failed")
            return
        }
        #expect(m.mprotect(t, addr: ro, length: Page.size, prot: .rw).failureValue == .ENOMEM)
        #expect(m.fork(t, childName: "c").failureValue == .ENOMEM)
        #expect(m.tasks.count == 1)
    }

    @Test func neverWithOvercommitKbytesAndTheAdminReserve() throws {
        let m = try TestMachines.small()
        let t = m.spawn(name: "p")
        m.overcommit.mode = .never
        m.overcommit.kbytes = 64 * 1024     // 64 MiB: vm_commit_limit() = kbytes / 4 + swap
        #expect(m.vmCommitLimit() == 16384 + m.totalSwapPages)
        let mm = try #require(t.mm)
        let allowed = 16384 - min(mm.totalVM / 32, Int64(m.overcommit.userReserveKbytes / 4))
        let most = UInt64(allowed - m.committedAS - 1)
        #expect(m.overcommitAllows(most, mm: mm, extraCommitted: 0, capSysAdmin: true))
        #expect(!m.overcommitAllows(most + 1, mm: mm, extraCommitted: 0, capSysAdmin: true))
        // Without CAP_SYS_ADMIN the admin reserve is held back as well.
        let admin = UInt64(m.overcommit.adminReserveKbytes / 4)
        #expect(admin > 0)
        #expect(m.overcommitAllows(most - admin, mm: mm, extraCommitted: 0, capSysAdmin: false))
        #expect(!m.overcommitAllows(most - admin + 1, mm: mm, extraCommitted: 0, capSysAdmin: false))
        // init_user_reserve() / init_admin_reserve(): 1/32 of free memory, capped.
        #expect(m.overcommit.userReserveKbytes <= 1 << 17 && m.overcommit.adminReserveKbytes == min(m.overcommit.userReserveKbytes, 1 << 13))
    }

    @Test func mremapGrowthIsChargedUnderNever() throws {
        let m = try TestMachines.small()
        let t = m.spawn(name: "p")
        guard case .success(let a) = m.mmap(t, length: Page.size, prot: .rw, flags: [.private, .anonymous]) else {
            Issue.record("mmap failed")
            return
        }
        m.overcommit.mode = .never
        let big = UInt64(m.vmCommitLimit()) * Page.size
        #expect(m.mremap(t, oldAddr: a, oldLength: Page.size, newLength: big, flags: .maymove).failureValue == .ENOMEM)
        #expect(m.mremap(t, oldAddr: a, oldLength: Page.size, newLength: 2 * Page.size, flags: .maymove).failureValue == nil)
    }

    // MARK: Scenarios

    @Test func scenarioSyntax() throws {
        let r = try ScenarioRunner.run("""
            machine preset=small
            sysctl vm.overcommit_memory=1
            spawn a
            spawn b
            b: oom_score_adj 1000
            expect b.oom_score_adj == 1000
            expect a.oom_score_adj == 0
            b: fork c
            expect c.oom_score_adj == 1000
            cat /proc/b/oom_score_adj /proc/a/oom_score
            a: m = mmap 1G rw private anon
            expect a.errno == ok
            a: write m +230M
            expect b.signal == SIGKILL
            expect c.signal == SIGKILL
            expect a.signal == SIGKILL
            expect vmstat.oom_kill == 3
            expect b.oom_score == 0
            """, file: "t.mmsim")
        #expect(r.passed, "\(r.summaryText())")
        // b (oom_score_adj 1000), then its child c (inherited 1000), then the writer itself.
        #expect(r.signals.map(\.process) == ["b", "c", "a"])
        let views = r.output.compactMap { if case .view(let p, let text, _) = $0 { (p, text) } else { nil } }
        #expect(views.first?.0 == "/proc/b/oom_score_adj" && views.first?.1 == "1000\n")
        #expect(throws: ScenarioError.self) { try ScenarioParser.parse("machine preset=small\nspawn a\na: oom_score_adj 1001", file: "t.mmsim") }
    }
}
