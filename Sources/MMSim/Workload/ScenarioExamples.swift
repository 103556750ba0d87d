// The bundled example scenario, built in so that `mmsim run` works from any directory.
// Keep in sync with examples/fork-cow.mmsim (ScenarioRunnerTests checks they are identical).

public enum ScenarioExamples {
    /// The path of the bundled example, relative to the repository root.
    public static let forkCOWPath = "examples/fork-cow.mmsim"

    /// examples/fork-cow.mmsim, verbatim.
    public static let forkCOW = #"""
# fork, then copy-on-write, as measured on Linux 6.18 (shared/fidelity, workload fork_cow, N = 16).
#
# A parent maps 64 KiB of private anonymous memory and writes every page. It forks: the
# child shares every page, write-protected. The child writes every page again, and each
# write copies the page (a COW fault). The child exits; the parent, whose pages are
# exclusive again, rewrites them and the kernel reuses them in place (pgreuse): no copy.
#
# Run it:  swift run mmsim run examples/fork-cow.mmsim       (or just: swift run mmsim run)

machine preset=reference                  # x86-64, 4-level paging, 2 CPUs, 24 GiB
sysctl vm.overcommit_memory=0
sysfs /sys/kernel/mm/transparent_hugepage/enabled=madvise

spawn parent cpu=1

# [mmap] 16 pages at a 1 GiB-aligned address in an empty top-level slot, so the page-table
# cost is exact: one PUD page, one PMD page and one PTE page.
mark start
parent: buf = mmap 0x100000000000 64K rw private anon fixed_noreplace
expect parent.errno == ok
expect parent.status.VmSize since start == 64 kB
expect parent.status.VmData since start == 64 kB
expect parent.status.VmRSS since start == 0 kB          # nothing is touched yet
expect parent.maps.count since start == 1
expect meminfo.Committed_AS since start == 64 kB

# [parent_touch] one store per page: 16 first-touch faults, 16 pages + 3 page tables.
mark touch
parent: write buf +64K
expect parent.minflt since touch == 16
expect parent.status.RssAnon since touch == 64 kB
expect parent.status.VmPTE since touch == 12 kB
expect vmstat.pgfault since touch == 16
expect vmstat.pgalloc_normal since touch == 19
expect vmstat.nr_anon_pages since touch == 16
expect meminfo.AnonPages since touch == 64 kB

# [child_write] the child writes every page: each write copies a shared page.
parent: fork child
mark forked
child: write buf +64K
expect child.minflt since forked == 16
expect child.status.VmRSS since forked == 0 kB           # each copy replaces a shared page
expect meminfo.AnonPages since forked >= 64 kB            # the copies are new anonymous pages
cat /proc/child/maps
child: exit 0
parent: wait child
expect parent.cminflt >= 16                               # the child's faults, reaped

# [parent_rewrite] the pages are exclusive again: reused in place, no copy.
mark rewrite
parent: write buf +64K
expect parent.minflt since rewrite == 16
expect vmstat.pgreuse since rewrite == 16
expect parent.status.VmRSS since rewrite == 0 kB
expect vmstat.pgalloc_normal since rewrite == 0

# [munmap] everything goes back.
mark unmap
parent: munmap buf 64K
expect parent.status.VmRSS since unmap == -64 kB
expect parent.status.VmPTE since unmap == -12 kB
expect parent.maps.count since unmap == -1
expect meminfo.AnonPages since unmap == -64 kB

cat /proc/parent/status

"""#

    /// The scenario `mmsim run` runs without a file: examples/fork-cow.mmsim from the current
    /// directory when it is there (so edits to it take effect), else the built-in copy.
    public static func defaultScenario(currentDirectory: String, read: (String) -> String?) -> (file: String, text: String) {
        if let text = read(currentDirectory + "/" + forkCOWPath) {
            return (forkCOWPath, text)
        }
        return (forkCOWPath + " (built in)", forkCOW)
    }
}
