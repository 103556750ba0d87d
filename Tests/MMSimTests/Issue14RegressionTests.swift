// Regression tests for issue 14 (bad input, random workloads): each is named after what it
// regresses, and runs the one- or two-line scenario that found it, with the checker on.

import Testing
import MMSimTestSupport

@Suite struct Issue14RegressionTests {
    func run(_ text: String, trace: Bool = false) throws -> ScenarioReport {
        try runCheckedScenario(text, trace: trace)
    }

    /// The ScenarioError a scenario stops with (parsing or running).
    func scenarioError(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ScenarioError? {
        expectScenarioError(sourceLocation: sourceLocation) { _ = try run(text) }
    }

    static let small = "machine preset=small\n"

    // MARK: Crashes

    @Test func bindingWithNothingAfterTheEqualsSignIsAnErrorNotACrash() {
        let e = scenarioError("spawn p\np: x =\n")
        #expect(e?.location.line == 2)
        #expect(e?.message.contains("mmap, mremap or brk after 'x ='") == true, "\(String(describing: e))")
    }

    @Test func fileWriteAtAnOffsetNear2To64IsEINVALNotAnOverflowTrap() {
        let e = scenarioError("file create a.bin 4K\nfile write a.bin 18446744073709547520 8K\n")
        #expect(e?.location.line == 2 && e?.location.column == 18)
        #expect(e?.message.contains("EINVAL") == true, "\(String(describing: e))")
        // The end past 2^63-1 is EINVAL too (rw_verify_area(), as measured with pwrite(2)).
        let end = scenarioError("file create a.bin 4K\nfile write a.bin 0x7fffffffffffe000 8K\n")
        #expect(end?.message.contains("loff_t overflows") == true, "\(String(describing: end))")
        let read = scenarioError("file create a.bin 4K\nfile read a.bin 18446744073709547520 18446744073709547520\n")
        #expect(read?.message.contains("read(2) would fail with EINVAL") == true, "\(String(describing: read))")
        let trunc = scenarioError("file create a.bin 4K\nfile truncate a.bin 0x8000000000000000\n")
        #expect(trunc?.message.contains("EINVAL") == true, "\(String(describing: trunc))")
    }

    // MARK: Unclear errors

    @Test func controlBytesInErrorMessagesAreEscaped() {
        let e = scenarioError("spawn p\np: read \u{1b}[31mred\u{0}\rX\n")
        #expect(e?.message.contains("'\\x1b[31mred\\x00\\x0dX'") == true, "\(String(describing: e))")
        #expect(e.map { !$0.description.unicodeScalars.contains { $0.value < 0x20 } } == true)
    }

    @Test func overflowingAddressExpressionIsNotEchoedWhole() {
        let expr = "18446744073709551615" + String(repeating: "+1", count: 45_000)
        let e = scenarioError("spawn p\np: read \(expr)\n")
        #expect(e?.message.contains("address overflow") == true)
        #expect(e?.message.contains("(90022 characters)") == true, "\(String(describing: e))")
        #expect((e?.description.count ?? .max) < 300)
    }

    @Test func nestedAlignUpIsBoundedNotQuadratic() throws {
        // Eight levels are fine...
        let ok = String(repeating: "alignup(", count: 8) + "4097" + String(repeating: ",4K)", count: 8)
        _ = try run(Self.small + "spawn p\np: b = mmap 2M rw private anon\np: read b+\(ok)\n")
        // ... and 3,000 are refused at once, not parsed level by level (each rescanning the rest).
        let deep = String(repeating: "alignup(", count: 3000) + "1" + String(repeating: ",4K)", count: 3000)
        let e = scenarioError("spawn p\np: read \(deep)\n")
        #expect(e?.message.contains("nested more than 8 deep") == true, "\(String(describing: e))")
    }

    @Test func statementsOfAChildWhoseForkWasSkippedSayWhy() {
        let e = scenarioError(Self.small + "spawn p\np: a = mmap 4K none private anon\np: read a\np: fork c\nc: read a\n")
        #expect(e?.location.line == 6)
        #expect(e?.message.contains("the statement at line 5 that would create it was not run, because p[1] was killed by SIGSEGV") == true,
                "\(String(describing: e))")
    }

    // MARK: Answers that are not Linux's

    @Test func traceShowsTheMadviseOfNohugepageReturningZero() throws {
        let r = try run(Self.small + "spawn p\np: a = mmap 2M rw private anon nohugepage\np: write a\n", trace: true)
        let lines = r.output.compactMap { if case .trace(let s) = $0 { s } else { nil } }
        #expect(lines.contains { $0.contains("madvise(") && $0.hasSuffix("MADV_NOHUGEPAGE) = 0") }, "\(lines)")
        // The variable is still the mapping's address: the write lands in it.
        #expect(r.signals.isEmpty && r.failedSyscalls.isEmpty)
    }

    @Test func populateAndLockedMmapOfProtNoneFaultNothingAndAReadStillSegfaults() throws {
        for flag in ["populate", "locked"] {
            let r = try run(Self.small + """
                spawn p
                mark m
                p: a = mmap 2M none private anon \(flag)
                expect p.errno == ok
                expect p.minflt since m == 0
                expect p.status.VmRSS since m == 0 kB
                p: read a
                expect p.signal == SIGSEGV
                """)
            #expect(r.passed, "\(flag): \(r.summaryText())")
        }
    }

    @Test func mlockOfProtNoneIsENOMEMAndFaultsNothingIn() throws {
        // As measured on Linux 6.18: the VMAs are locked (VmLck), the accessible one before the
        // PROT_NONE one is populated, the one after it is not, and the call fails with ENOMEM.
        let r = try run(Self.small + """
            spawn p
            p: a = mmap 3M rw private anon nohugepage
            p: mprotect a+1M 1M none
            mark m
            p: mlock a 3M
            expect p.errno == ENOMEM
            expect p.status.VmLck since m == 3M
            expect p.minflt since m == 256
            p: read a+1M
            expect p.signal == SIGSEGV
            """)
        #expect(r.passed, "\(r.summaryText())")
        // MADV_POPULATE_READ of PROT_NONE is EINVAL.
        let pop = try run(Self.small + "spawn p\np: a = mmap 1M none private anon\np: madvise a 1M populate_read\nexpect p.errno == EINVAL\n")
        #expect(pop.passed, "\(pop.summaryText())")
    }

    @Test func madvFreeOfSharedAnonymousAndPrivateFileMappingsIsEINVAL() throws {
        let r = try run(Self.small + """
            file create f.bin 1M
            spawn p
            p: a = mmap 1M rw shared anon
            p: write a +1M
            p: madvise a 1M free
            expect p.errno == EINVAL
            p: b = mmap 1M rw private file=f.bin
            p: write b +1M
            p: madvise b 1M free
            expect p.errno == EINVAL
            p: c = mmap 1M rw private anon
            p: write c +1M
            p: madvise c 1M free
            expect p.errno == ok
            expect vmstat.pglazyfree == 256
            """)
        #expect(r.passed, "\(r.summaryText())")
    }

    @Test func aFatalSignalInOneThreadKillsTheWholeThreadGroup() throws {
        let r = try run(Self.small + """
            spawn p
            p: thread t
            p: thread u
            p: a = mmap 4K none private anon
            t: read a
            expect t.signal == SIGSEGV
            expect p.signal == SIGSEGV
            expect u.signal == SIGKILL
            """)
        #expect(r.passed, "\(r.summaryText())")
        #expect(r.processes.allSatisfy { $0.state != "running" }, "\(r.summaryText())")
        #expect(r.processes.allSatisfy { $0.exitCode == 139 })
        #expect(r.output.contains { if case .warning = $0 { true } else { false } } == false)
    }

    @Test func execveKillsTheOtherThreads() throws {
        // From the leader: the threads die of SIGKILL, the process runs on.
        let r = try run(Self.small + """
            spawn p
            p: thread t
            p: execve
            expect t.signal == SIGKILL
            p: a = mmap 4K rw private anon
            p: write a
            expect p.signal == none
            """)
        #expect(r.passed, "\(r.summaryText())")
        #expect(r.processes.map(\.state) == ["running", "dead"])
        // From a thread: it takes over the leader's pid (de_thread()), the leader and the
        // other threads are gone.
        let th = try run(Self.small + """
            spawn p
            p: thread t
            p: thread u
            t: execve
            t: a = mmap 4K rw private anon
            t: write a
            t: fork c
            c: exit 0
            t: wait c
            expect u.signal == SIGKILL
            """)
        #expect(th.passed, "\(th.summaryText())")
        let byName = Dictionary(uniqueKeysWithValues: th.processes.map { ($0.name, $0) })
        #expect(byName["t"]?.pid == 1 && byName["t"]?.state == "running")
        #expect(byName["p"]?.state == "dead" && byName["u"]?.state == "dead")
    }

    @Test func forkStopsWithEAGAINAtThreadsMax() throws {
        // kernel.threads-max defaults to RAM / 128 KiB (set_max_threads()).
        let m = try Machine(.small)
        #expect(m.threads.max <= Int(m.totalRAMPages / 32) && m.threads.max > 1600, "\(m.threads.max)")
        #expect(Machine.defaultMaxThreads(totalRAMPages: (24 << 30) >> 12) == 196_608)
        var text = Self.small + "sysctl kernel.threads-max=20\nspawn p\n"
        for i in 0..<20 { text += "p: fork c\(i)\n" }
        text += "expect p.errno == EAGAIN\nc0: exit 0\np: wait c0\np: fork d\nexpect p.errno == ok\n"
        let r = try run(text)
        #expect(r.passed, "\(r.summaryText())")
        // p and 19 children hold 20 pids: the 20th fork fails, one reaped child lets one more in.
        #expect(r.failedSyscalls.map(\.call) == ["fork()"])
        #expect(r.failedSyscalls.first?.errno == .EAGAIN)
        // A skipped fork's child says why when used.
        let e = scenarioError(text + "c19: write 0\n")
        #expect(e?.message.contains("failed with EAGAIN") == true, "\(String(describing: e))")
    }

    @Test func madvHWPoisonReportsTheSignalAtThePoisonedAddress() throws {
        let r = try run(Self.small + """
            spawn p
            p: thread t
            p: a = mmap 8K rw private anon
            p: write a +8K
            t: hwpoison a+4K
            expect t.signal == SIGBUS
            expect p.signal == SIGBUS
            """)
        #expect(r.passed, "\(r.summaryText())")
        let sig = try #require(r.signals.first { $0.process == "t" })
        #expect(sig.signal == "SIGBUS" && sig.address == 0x7fff_f7ff_e000, "\(r.signals)")
    }

    // MARK: Broken invariants under --check

    @Test func arm64WithoutASIDsForkFlushesTheWriteProtectedEntries() throws {
        // The TLB tags every entry 0 when ASIDs are off; the TLBI must name that tag.
        _ = try run("machine arch=arm64 pcid=off\nspawn p4\np4: fork p5\n")
        _ = try run("machine arch=arm64 pcid=off cpus=4\nspawn p\np: thread t cpu=3\np: a = mmap 4M rw private hugepage\np: write a +4M\nt: read a +4M\np: fork c\nt: write a\nc: write a+2M\n")
    }

    @Test func arm64WithoutASIDsPartialMunmapOfATHPLeavesNoStaleEntries() throws {
        _ = try run("machine arch=arm64 cpus=8 pcid=off\nspawn p1\np1: v2 = mmap 2M rw private\np1: write v2 +2M\np1: munmap v2+1916K 44K\n")
    }

    @Test func mprotectInsideATHPSplitsThePMDSoForkCopiesItOnce() throws {
        // vma_adjust_trans_huge(): the huge PMD across the new VMA edges is split; fork then
        // copies 512 PTEs once, not the same huge PMD once per VMA (mapcount 4, rmap 2).
        let r = try run("""
            machine cpus=8
            spawn p2
            p2: thread t4
            p2: v1 = mmap 2M rw private hugepage
            t4: write v1
            expect meminfo.AnonHugePages == 2M
            t4: mprotect v1+636K 4K r
            expect meminfo.AnonHugePages == 0 kB
            expect vmstat.thp_split_pmd == 1
            p2: fork p6
            p2: write v1+636K
            expect p2.signal == SIGSEGV
            """)
        #expect(r.passed, "\(r.summaryText())")
    }

    @Test func mprotectOfAWholeTHPChangesTheHugePMD() throws {
        // change_huge_pmd(): read-only stays huge and refuses writes; PROT_NONE refuses reads.
        // (1 GiB: hugepage_init() leaves THP off below 512 MiB.)
        let r = try run("machine memory=1G\n" + """
            spawn p
            p: v = mmap 2M rw private hugepage
            p: write v
            p: mprotect v 2M r
            p: read v+8K
            expect meminfo.AnonHugePages == 2M
            expect p.signal == none
            p: mprotect v 2M rw
            p: write v+8K
            expect p.signal == none
            p: mprotect v 2M r
            p: write v+8K
            expect p.signal == SIGSEGV
            spawn q
            q: w = mmap 2M rw private hugepage
            q: write w
            q: mprotect w 2M none
            q: read w+8K
            expect q.signal == SIGSEGV
            """)
        #expect(r.passed, "\(r.summaryText())")
    }
}
