// Random workloads (issue 14, item 4): a bounded number of seeds with the checker after every
// statement, zero violations and zero scenario errors; the minimizer shrinks a failing scenario.

import Testing
import MMSimTestSupport
@testable import MMSim

@Suite struct RandomWorkloadTests {
    /// Seeds run in every `swift test` (debug: about 60 checked statements per second).
    static let seeds: [UInt64] = Array(1...10)
    static let statements = 90

    @Test(arguments: seeds)
    func randomWorkloadRunsCleanUnderTheChecker(seed: UInt64) {
        let r = RandomWorkload.run(seed: seed, statements: Self.statements)
        #expect(r.failure == nil, "seed \(seed): \(r.failure.map { "\($0)" } ?? "")\n\(r.text)")
        #expect(r.statements >= Self.statements)
    }

    @Test func sameSeedSameScenario() {
        let a = RandomWorkload.generate(seed: 42, statements: 60)
        let b = RandomWorkload.generate(seed: 42, statements: 60)
        #expect(a == b)
        #expect(a != RandomWorkload.generate(seed: 43, statements: 60))
        #expect(a.hasPrefix("machine preset=small"))
    }

    /// The text a live run wrote replays to the same run: no failure, whatever it did.
    @Test func generatedTextReplaysCleanly() {
        let r = RandomWorkload.run(seed: 7, statements: 80)
        #expect(r.failure == nil)
        #expect(RandomWorkload.failure(of: r.text) == nil)
    }

    /// Across a few seeds the generator uses every kind of statement the language has.
    @Test func generatorCoversTheLanguage() {
        var words = Set<String>()
        for seed in UInt64(100)..<106 {
            for line in RandomWorkload.generate(seed: seed, statements: 400).split(separator: "\n") {
                let w = line.split(separator: " ").map(String.init)
                guard let first = w.first else { continue }
                if first.hasSuffix(":") {
                    words.insert(w.count > 2 && w[2] == "=" ? w[3] : w[1])
                    if w.contains("hugetlb") { words.insert("hugetlb") }
                    if w.contains(where: { $0.hasPrefix("file=") }) { words.insert("file-mmap") }
                    if w.contains("fixed") || w.contains("fixed_noreplace") { words.insert("fixed") }
                    if w.contains("hugepage") { words.insert("thp") }
                } else {
                    words.insert(w.count > 1 && ["file", "cgroup"].contains(first) ? first + " " + w[1] : first)
                }
            }
        }
        let expected = ["mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mlock", "munlock", "fork", "thread",
                        "exit", "wait", "read", "write", "gup", "move_pages", "oom_score_adj", "sleep",
                        "hugetlb", "file-mmap", "fixed", "thp", "spawn", "sysctl", "cat", "file create", "file read",
                        "file write", "cgroup create", "cgroup set", "swapon"]
        for e in expected { #expect(words.contains(e), "no '\(e)' in 2,400 generated statements") }
    }

    // MARK: The minimizer

    /// A scenario that fails only with a deliberate bug (no TLB flush on munmap), among noise.
    static let failing = """
    machine preset=small cpus=2 pcid=on
    spawn a cpu=1
    spawn b
    a: x = mmap 64K rw private anon
    b: y = mmap 2M rw private anon
    file create f 64K
    a: write x +16K
    b: write y +64K
    file read f 0 16K
    a: mprotect x+16K 4K r
    b: fork c
    c: read y +8K
    a: z = mmap 8K rw private anon
    a: write z +8K
    cat /proc/meminfo
    b: munmap y 8K
    a: read x +64K
    a: munmap x 16K
    c: exit 0
    b: wait c
    a: munmap z 8K
    """

    @Test func minimizerShrinksAScenarioThatBreaksAnInvariant() throws {
        let options = ScenarioOptions(checkInvariants: true, injectBug: .skipTLBFlush)
        // Without the bug the scenario is clean; with it the TLB validator objects.
        #expect(RandomWorkload.failure(of: Self.failing) == nil)
        let f = try #require(RandomWorkload.failure(of: Self.failing, options: options))
        #expect(f.kind.hasPrefix("tlb"), "\(f)")
        let small = RandomWorkload.minimize(Self.failing, failure: f, options: options)
        let lines = small.split(separator: "\n")
        #expect(lines.count <= 5, "\(small)")
        #expect(lines.count < Self.failing.split(separator: "\n").count)
        #expect(lines.first?.hasPrefix("machine") == true)
        // Still the same failure, and still a well-formed scenario.
        #expect(RandomWorkload.failure(of: small, options: options)?.kind == f.kind, "\(small)")
        #expect(RandomWorkload.failure(of: small) == nil, "\(small)")
    }

    /// A random workload with the deliberate bug fails, and minimizes to a few lines.
    @Test func minimizerShrinksAFailingRandomWorkload() throws {
        let options = ScenarioOptions(checkInvariants: true, injectBug: .skipTLBFlush)
        var found: RandomWorkloadRun?
        for seed in UInt64(1)...20 {
            let r = RandomWorkload.run(seed: seed, statements: 150, options: options)
            if r.failure != nil { found = r; break }
        }
        let r = try #require(found, "no seed of 1...20 caught the skipped TLB flush")
        let f = try #require(r.failure)
        let small = RandomWorkload.minimize(r.text, failure: f, options: options, maxRuns: 300)
        let n = small.split(separator: "\n").count
        #expect(n < r.text.split(separator: "\n").count && n <= 12, "seed \(r.seed): \(n) lines\n\(small)")
        #expect(RandomWorkload.failure(of: small, options: options)?.kind == f.kind, "\(small)")
    }

    /// Dropping a line that creates a name drops the lines that use it.
    @Test func minimizerKeepsDefinitionsAndUsesTogether() {
        let m = ScenarioMinimizer(lines: ["machine preset=small", "spawn p", "p: v = mmap 4K rw private anon", "p: write v+0 +4K",
                                          "p: fork c", "c: read v +4K", "file create f 8K", "p: w = mmap 4K r private file=f", "cat /proc/p/maps"])
        var keep = [true, false, true, true, true, true, true, true, true]
        m.closeOver(&keep)
        #expect(keep == [true, false, false, false, false, false, true, false, false])
        keep = [true, true, true, true, true, true, false, true, true]
        m.closeOver(&keep)
        #expect(keep == [true, true, true, true, true, true, false, false, true])
        #expect(m.pinned(0) && !m.pinned(1))
    }
}

/// Bugs the random workloads found, each with its minimized scenario.
@Suite struct RandomWorkloadFindingsTests {
    func failure(_ text: String) -> WorkloadFailure? { RandomWorkload.failure(of: text) }

    /// Seed 2 (1,000 statements), minimized: mprotect rx -> r of a hugetlb mapping did not flush
    /// the TLB, so a 2 MiB entry kept granting exec (tlb-permission).
    @Test func hugetlbMprotectDroppingExecFlushesTheTLB() {
        let s = """
        machine preset=small arch=arm64 memory=128M cpus=1 pcid=off seed=322
        sysctl vm.nr_overcommit_hugepages=1
        spawn p
        p: v = mmap 2M rw private anon hugetlb
        p: mprotect v 2M rx
        p: read v+1784K +28K stride=4K
        p: mprotect v 2M r
        p: read v +4K
        """
        #expect(failure(s) == nil, "\(failure(s).map { "\($0)" } ?? "")")
    }

    /// Seed 8 (1,000 statements), minimized to 14 lines: after a thread group exits on CPU 6
    /// with a THP, faults on CPU 0 find an order-9 free list whose head's prev is not nil
    /// (free-list-linkage). Fixed: THP faults, splits and frees go through the LRU lists.
    @Test func orderNineFreeListLinkageAfterExitWithTHP() {
        let s = """
        machine preset=small arch=arm64 memory=256M cpus=8 pcid=off seed=343
        spawn p201
        sysfs /sys/kernel/mm/transparent_hugepage/enabled=always
        spawn p253 cpu=6
        p253: fork c256
        c256: v257 = mmap 3820K rw private anon
        c256: write v257+944K +2540K stride=64K
        c256: move_pages v257+3380K 24K
        c256: thread t263 cpu=5
        t263: exit 1
        spawn p270 cpu=0
        p270: v272 = mmap 0x137000000000 2780K rw private anon fixed_noreplace
        p270: thread t275 cpu=0
        t275: write v272+2260K +476K
        """
        #expect(failure(s) == nil, "\(failure(s).map { "\($0)" } ?? "")")
    }

    /// Seed 1002 (327 statements), minimized to 7 lines, no process touching memory: file
    /// truncate then drop on another CPU leaves an allocated frame on a free list
    /// (free-list-membership). Fixed: truncation takes the folio out of its lru_add batch (lruDel()).
    @Test func fileTruncateThenDropOnAnotherCPUKeepsFreeListsConsistent() {
        let s = """
        machine preset=small arch=arm64 memory=256M cpus=4 pcid=on seed=140
        file create f22 804K cold
        file write f22 60K 72K
        file create f83 984K
        spawn p103 cpu=3
        file truncate f83 492K
        file drop f83
        """
        #expect(failure(s) == nil, "\(failure(s).map { "\($0)" } ?? "")")
    }

    /// Seed 57 (971 statements), minimized to 10 lines: mremap (maymove) of an anonymous VMA
    /// of a threaded, forked process with THP always leaves a folio with mapcount 1 that no rmap
    /// walk finds (rmap-mapcount). Fixed: move_page_tables() splits a huge PMD that cannot
    /// move whole before moving its PTEs (the model left it behind).
    @Test func mremapOfAThreadedForkedProcessKeepsMapcountsEqualToTheRmap() {
        let s = """
        machine preset=small arch=x86_64 memory=512M cpus=4 pcid=on nodes=2 seed=392
        spawn p333 cpu=2
        p333: fork c339
        sysfs /sys/kernel/mm/transparent_hugepage/enabled=always
        c339: thread t347 cpu=2
        t347: thread t353 cpu=2
        c339: v354 = mmap 4M rw private anon hugepage
        t353: v357 = mmap 3712K rw private anon
        t347: touch v357+2276K +16K stride=64
        t353: v362 = mremap v357 3712K 3876K maymove
        """
        #expect(failure(s) == nil, "\(failure(s).map { "\($0)" } ?? "")")
    }

    /// Seed 60 (195 statements), minimized to 9 lines: in the child, where the MADV_DONTFORK
    /// range is absent, `mmap v+6136K 8K ... fixed populate` lands inside the hugetlb mapping;
    /// the model mapped it anyway and left nr_huge_pages 8 with 7 hugetlb folios (hugetlb-nr).
    @Test func hugetlbPoolCountStaysEqualToItsFoliosAcrossForkAndFixedPopulate() {
        let s = """
        machine preset=small arch=arm64 memory=256M cpus=4 pcid=off hugepagesz=2M hugepages=8 hugetlb_free_vmemmap=on seed=785
        spawn p38 cpu=0
        p38: v40 = mmap 6M rw private anon hugepage
        p38: madvise v40+0 6M dontfork
        p38: fork c42
        c42: v45 = mmap 4M rw private anon hugetlb
        c42: read v45+3740K +336K
        c42: fork c48
        c42: v62 = mmap v40+6136K 8K rw private anon fixed populate
        """
        #expect(failure(s) == nil, "\(failure(s).map { "\($0)" } ?? "")")
    }

    /// The cause of seed 60: MAP_FIXED over part of a hugetlb mapping, off its 2 MiB
    /// boundaries, must fail with EINVAL (do_vmi_munmap() cannot split it) and map nothing;
    /// the model mapped the range over the hugetlb VMA anyway.
    @Test func mapFixedInsideAHugetlbPageIsEINVAL() throws {
        let r = try ScenarioRunner.run("""
            machine preset=small hugepagesz=2M hugepages=8
            spawn c
            c: h = mmap 4M rw private anon hugetlb
            c: read h+3740K +336K
            c: fork d
            c: x = mmap h+2040K 8K rw private anon fixed
            expect c.errno == EINVAL
            expect c.maps.count == 6
            expect hugepages-2048kB.nr_hugepages == 8
            """, file: "t.mmsim", options: ScenarioOptions(checkInvariants: true))
        for e in r.expectations { #expect(e.passed, "\(e.statement): \(e.actual)") }
    }
}
