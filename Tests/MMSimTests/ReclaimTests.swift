// Memory pressure: memcg limit reclaim with swap, swap-in with VMA readahead, clean page cache
// dropped at the limit, workingset refaults. Numbers from ../shared/fidelity/reclaim-linux-6.18-x86_64.json
// (anon_swap, file_cache at L = 32 MiB) where the model should repeat the kernel, and kernel rules otherwise.
import Testing
@testable import MMSim

@Suite struct ReclaimTests {
    /// anon_swap_L32: N = 16384 pages touched in a 32 MiB memcg with swap on. Every page is
    /// resident or in swap (RssAnon + VmSwap = N, the kernel's own identity); re-reading every
    /// page swaps each back in (pswpin = N, workingset_refault_anon = N: every slot had a
    /// shadow; the model reads up to 5 of them twice, a readahead page evicted before its own
    /// fault when the scan cycles the whole inactive list, which the kernel never did; none activated because the refault distance exceeds the tiny workingset),
    /// the harness itself mlocked as reclaim.c's is (mlockall(MCL_CURRENT)), mostly through readahead windows of 8 (page-cluster 3: majflt about N/8; the kernel
    /// measured 2050 for N = 16384).
    @Test func memcgSwapsAndReadsBack() throws {
        let r = try ScenarioRunner.run("""
        machine preset=reference
        swapon /swapfile 1G
        cgroup create rcl
        cgroup set rcl memory.limit_in_bytes=32M
        spawn wl cpu=1
        cgroup attach rcl wl
        wl: mlockall current
        wl: buf = mmap 0x100000000000 64M rw private anon fixed_noreplace
        wl: madvise buf 64M nohugepage
        mark touch
        wl: write buf +64M
        expect vmstat.pswpout since touch in 7000..10000
        expect memcg.rcl.max_usage == 32768 kB
        expect vmstat.pgscan_direct since touch == 0
        expect vmstat.pgrefill since touch == 0
        mark reread
        wl: read buf +64M
        expect vmstat.pswpin since reread in 16384..16400
        expect vmstat.workingset_refault_anon since reread in 16384..16400
        expect vmstat.workingset_activate_anon since reread == 0
        expect wl.majflt since reread in 2040..2060
        """, file: "t.mmsim", options: ScenarioOptions(checkInvariants: false))
        #expect(r.passed, "\(r.summaryText())")
    }
}
