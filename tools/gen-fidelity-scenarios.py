#!/usr/bin/env python3
"""Writes scenarios/fidelity/WORKLOAD-N.mmsim from shared/fidelity/linux-6.18-x86_64.json.

One scenario per workload and size of the fidelity file: the syscall sequence of wl.c,
phase by phase (`mark PHASE`, the statements, then one `expect COUNTER since PHASE == VALUE`
for every counter the kernel reported for that phase). Counters that come from the real
program's fixed costs, which a scenario cannot express (the forked child's start-up faults,
the kernel's own allocations in fork), are written commented out, with the reason above.

Usage:  tools/gen-fidelity-scenarios.py [--json PATH] [--out DIR]
Defaults: ../shared/fidelity/linux-6.18-x86_64.json (next to the repository) and
scenarios/fidelity. Standard library only. Files in DIR that the run does not write
(*.mmsim only) are removed, so the directory always matches the JSON.
"""

import argparse
import json
import os
import re
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(os.path.dirname(REPO), "shared", "fidelity", "linux-6.18-x86_64.json")
DEFAULT_OUT = os.path.join(REPO, "scenarios", "fidelity")
SOURCE = "shared/fidelity/linux-6.18-x86_64.json"

PAGE = 4096
HPAGE = 2 << 20
ADDR = "0x100000000000"          # wl.c BASE: 16 TiB, 1 GiB aligned, in an empty PGD slot
PROC = "wl"                      # the measured process
CHILD = "child"                  # the fork workloads' child


def size(nbytes):
    """The shortest exact binary form: 4K, 64K, 2M, 1G, 400K."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return "%d%s" % (nbytes >> shift, unit)
    return str(nbytes)


# ---------------------------------------------------------------------------------------
# Counters: fidelity names -> scenario counters
# ---------------------------------------------------------------------------------------

RUSAGE = {"ru_minflt": "minflt", "ru_majflt": "majflt", "ruc_minflt": "cminflt", "ruc_majflt": "cmajflt"}


def counter(key, proc):
    """(scenario counter, is kB) for a fidelity counter name."""
    if key in RUSAGE:
        return "%s.%s" % (proc, RUSAGE[key]), False
    if key == "maps.nvma":
        return "%s.maps.count" % proc, False
    if key.startswith("status."):
        assert key.endswith("_kB"), key
        return "%s.status.%s" % (proc, key[len("status."):-3]), True
    if key.startswith("meminfo."):
        field = key[len("meminfo."):]
        if field.endswith("_kB"):
            return "meminfo." + field[:-3], True
        return "meminfo." + field, False          # HugePages_*: counts
    if key.startswith("vmstat."):
        return key, False
    raise SystemExit("unknown counter %r" % key)


def unmodelled(workload, n, phase, key, value):
    """Why the model cannot reproduce this counter (one line), or None."""
    if phase == "fork_exit_wait":
        if key == "ru_minflt":
            return ("the real parent's %d copy-on-write faults on its own stack and libc data after fork()"
                    % value)
        if key == "ruc_minflt":
            child = n if workload == "fork_cow" else 0
            return ("%d = %d measured child faults + %d start-up faults of the real child (stack, bss, libc)"
                    % (value, child, value - child))
        if key == "vmstat.pgfault":
            return "includes the real parent's and child's start-up faults (see wl.minflt and wl.cminflt)"
        if key == "vmstat.pgreuse":
            return "the real parent's and child's start-up faults reuse their own stack and libc pages"
        if key == "vmstat.pgalloc_normal":
            return "includes a real fork()'s and exit()'s own allocations (task_struct, kernel stack, start-up)"
    return None


# ---------------------------------------------------------------------------------------
# Workloads: wl.c's phases as scenario statements
#
# A builder returns lines; "@mark PHASE" becomes `mark PHASE` and "@expect PHASE PROC"
# becomes the phase's expects (counters read from PROC).
# ---------------------------------------------------------------------------------------

def anon_mmap(length, madvise="nohugepage", extra=""):
    out = ["%s: buf = mmap %s %s rw private anon fixed_noreplace%s" % (PROC, ADDR, length, extra)]
    if madvise:
        out.append("%s: madvise buf %s %s" % (PROC, length, madvise))
    return out


def phase(name, comment, body, proc=PROC):
    return ["", "# [%s] %s" % (name, comment), "@mark " + name] + body + ["@expect %s %s" % (name, proc)]


def w_empty(n):
    return phase("empty", "nothing between the two snapshots (the measurement's own cost).", [])


def w_anon(mode):
    def build(n):
        L = size(n * PAGE)
        out = phase("mmap", "mmap(ADDR, %d pages, RW, PRIVATE|ANON|FIXED_NOREPLACE); madvise(MADV_NOHUGEPAGE)" % n,
                    anon_mmap(L))
        if mode == "write":
            out += phase("touch", "one store per page, ascending", ["%s: write buf +%s" % (PROC, L)])
        else:
            out += phase("read", "one load per page, ascending (maps the shared zero page)",
                         ["%s: read buf +%s" % (PROC, L)])
            if mode == "read_then_write":
                out += phase("write", "one store per page (copy-on-write from the zero page)",
                             ["%s: write buf +%s" % (PROC, L)])
        out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
        return out
    return build


def w_populate(n):
    L = size(n * PAGE)
    out = phase("mmap_populate", "mmap(ADDR, %d pages, RW, PRIVATE|ANON|FIXED_NOREPLACE|MAP_POPULATE), no madvise" % n,
                anon_mmap(L, madvise=None, extra=" populate"))
    out += phase("touch", "one store per page: everything is present already", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_mlock(n):
    L = size(n * PAGE)
    out = phase("mmap", "as anon_touch", anon_mmap(L))
    out += phase("mlock", "mlock(ADDR, len): populates and locks every page", ["%s: mlock buf %s" % (PROC, L)])
    out += phase("munlock", "munlock(ADDR, len)", ["%s: munlock buf %s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_shm(n):
    L = size(n * PAGE)
    out = phase("mmap", "mmap(ADDR, %d pages, RW, SHARED|ANON|FIXED_NOREPLACE)" % n,
                ["%s: buf = mmap %s %s rw shared anon fixed_noreplace" % (PROC, ADDR, L)])
    out += phase("touch", "one store per page (shmem pages)", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_fork(mode):
    def build(n):
        L = size(max(n, 1) * PAGE)               # len = n ? n*PG : PG
        touch = ["%s: write buf +%s" % (PROC, L)] if n else ["# touch_w(p, 0): no store"]
        out = ["",
               "# setup (not measured): rec = mmap(NULL, 1 page, RW, SHARED|ANON); memset(rec, 0, ...): the",
               "# shared page through which the child reports its phase.",
               "%s: rec = mmap 4K rw shared anon" % PROC,
               "%s: write rec" % PROC]
        out += phase("mmap", "mmap(ADDR, %d page%s, RW, PRIVATE|ANON|FIXED_NOREPLACE); madvise(MADV_NOHUGEPAGE)"
                     % (max(n, 1), "s" if max(n, 1) > 1 else ""), anon_mmap(L))
        out += phase("parent_touch", "one store per page, ascending", touch)
        child_phase = "child_write" if mode == "write" else "child_read"
        if n:
            child_body = ["%s: %s buf +%s" % (CHILD, "write" if mode == "write" else "read", L)]
        else:
            child_body = ["# touch_%s(p, 0): no access" % ("w" if mode == "write" else "r")]
        out += ["",
                "# [fork_exit_wait] fork(); the child runs its phase and _exit(0)s; the parent waitpid()s.",
                "@mark fork_exit_wait",
                "%s: fork %s" % (PROC, CHILD),
                "# The real child first takes 3 warm-up snapshots (copy-on-write faults on its stack and",
                "# bss): start-up cost with no counterpart here (see the commented expects below)."]
        out += ["# [%s] measured inside the child (per-process counters only)%s" % (
                    child_phase, ": each store copies a shared page" if mode == "write" else
                    ": the PTEs were copied at fork, no fault"),
                "@mark " + child_phase] + child_body + ["@expect %s %s" % (child_phase, CHILD)]
        out += ["%s: write rec                  # delta(&rec->ph, ...): the report, after the measured phase" % CHILD,
                "%s: exit 0" % CHILD,
                "%s: wait %s" % (PROC, CHILD),
                "@expect fork_exit_wait %s" % PROC]
        if mode == "write":
            out += phase("parent_rewrite", "one store per page again: the pages are exclusive again (reuse)", touch)
        out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
        return out
    return build


def w_mprotect_split(n):
    n = n if n >= 5 else 100
    lo, hi = n * 2 // 5, n * 3 // 5
    L = size(n * PAGE)
    mid = "buf+%d*4K %d*4K" % (lo, hi - lo)
    out = phase("mmap", "as anon_touch, %d pages" % n, anon_mmap(L))
    out += phase("touch", "one store per page", ["%s: write buf +%s" % (PROC, L)])
    out += phase("mprotect_mid_ro", "mprotect(ADDR+%dp, %dp, PROT_READ): splits the VMA in three" % (lo, hi - lo),
                 ["%s: mprotect %s r" % (PROC, mid)])
    out += phase("mprotect_mid_rw_merge", "mprotect(ADDR+%dp, %dp, RW): the three merge back" % (lo, hi - lo),
                 ["%s: mprotect %s rw" % (PROC, mid)])
    out += phase("mprotect_mid_none", "mprotect(ADDR+%dp, %dp, PROT_NONE)" % (lo, hi - lo),
                 ["%s: mprotect %s none" % (PROC, mid)])
    out += phase("munmap_mid", "munmap(ADDR+%dp, %dp)" % (lo, hi - lo), ["%s: munmap %s" % (PROC, mid)])
    out += phase("munmap_all", "munmap(ADDR, %dp)" % n, ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_file(prot, flags, fname, access):
    def build(n):
        L = size(n * PAGE)
        name = "%s_%d.bin" % (fname, n)
        out = ["",
               "# setup (not measured): wl-files/%s, %d pages written with 4 KiB write()s and fsync()ed," % (name, n),
               "# then read() back in full: every page is in the page cache, clean. open(O_RDWR) has no",
               "# counterpart (the model has no file descriptors).",
               "file create %s %s" % (name, L)]
        out += phase("mmap", "mmap(ADDR, %d pages, %s, %s|FIXED_NOREPLACE, fd, 0)"
                     % (n, "PROT_READ" if prot == "r" else "PROT_READ|PROT_WRITE", flags.upper()),
                     ["%s: buf = mmap %s %s %s %s fixed_noreplace file=%s" % (PROC, ADDR, L, prot, flags, name)])
        if access == "read":
            out += phase("read", "one load per page (fault-around maps 16 pages a fault)",
                         ["%s: read buf +%s" % (PROC, L)])
        else:
            out += phase("write", "one store per page (no read first)%s" % (
                         ": each copies the file page" if flags == "private" else ": each dirties its page"),
                         ["%s: write buf +%s" % (PROC, L)])
        out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
        if fname == "fsw":
            out += ["# fsync(fd) (not measured: keeps the page cache clean between runs).", "file sync %s" % name]
        return out
    return build


def w_madv_dontneed(n):
    L = size(n * PAGE)
    out = phase("mmap", "as anon_touch", anon_mmap(L))
    out += phase("touch", "one store per page", ["%s: write buf +%s" % (PROC, L)])
    out += phase("madv_dontneed", "madvise(ADDR, len, MADV_DONTNEED)", ["%s: madvise buf %s dontneed" % (PROC, L)])
    out += phase("retouch", "one store per page again", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_mremap_grow(n):
    L, L2 = size(n * PAGE), size(2 * n * PAGE)
    out = phase("mmap", "as anon_touch", anon_mmap(L))
    out += phase("touch", "one store per page", ["%s: write buf +%s" % (PROC, L)])
    out += phase("mremap_grow_inplace", "mremap(ADDR, len, 2*len, 0): grows in place",
                 ["%s: buf2 = mremap buf %s %s" % (PROC, L, L2)])
    out += phase("touch_new_half", "one store per page for pages N..2N-1", ["%s: write buf2+%s +%s" % (PROC, L, L)])
    out += phase("munmap", "munmap(ADDR, 2*len)", ["%s: munmap buf2 %s" % (PROC, L2)])
    return out


def w_brk_grow(n):
    L = size(n * PAGE)
    out = ["",
           "# setup (not measured): sbrk() the program break up to a 2 MiB boundary.",
           "%s: start = brk" % PROC,
           "%s: brk alignup(start,2M)" % PROC]
    out += phase("brk_grow", "sbrk(+%d pages): the heap VMA grows" % n, ["%s: heap = brk +%s" % (PROC, L)])
    out += phase("touch", "one store per page", ["%s: write heap +%s" % (PROC, L)])
    out += phase("brk_shrink", "sbrk(-%d pages)" % n, ["%s: brk -%s" % (PROC, L)])
    return out


def w_thp_touch(r):
    L = size(r * HPAGE)
    out = phase("mmap_madv_hugepage", "mmap(ADDR, %d x 2 MiB, RW, PRIVATE|ANON|FIXED_NOREPLACE); madvise(MADV_HUGEPAGE)" % r,
                anon_mmap(L, madvise="hugepage"))
    out += phase("touch_first_byte_each_2M", "one store at ADDR + i*2M, i < %d: one huge page each" % r,
                 ["%s: write buf +%s stride=2M" % (PROC, L)])
    out += phase("touch_all_4k_pages", "one store per 4 KiB page: all mapped already", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_hugetlb(h):
    def phase(name, comment, body, proc=PROC):
        return ["", "# [%s] %s" % (name, comment), "@mark " + name] + body + ["@expect %s %s" % (name, proc)]
    L = size(h * HPAGE)
    out = phase("set_nr_hugepages", "write %d to /proc/sys/vm/nr_hugepages (was 0)" % h,
                ["sysctl vm.nr_hugepages=%d" % h])
    out += phase("mmap_hugetlb", "mmap(ADDR, %d x 2 MiB, RW, PRIVATE|ANON|MAP_HUGETLB|FIXED_NOREPLACE)" % h,
                 ["%s: buf = mmap %s %s rw private anon hugetlb fixed_noreplace" % (PROC, ADDR, L)])
    out += phase("touch_first_byte_each_2M", "one store at ADDR + i*2M, i < %d" % h,
                 ["%s: write buf +%s stride=2M" % (PROC, L)])
    out += phase("touch_all_4k", "one store per 4 KiB page", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    out += phase("reset_nr_hugepages_0", "write 0 to /proc/sys/vm/nr_hugepages", ["sysctl vm.nr_hugepages=0"])
    return out


WORKLOADS = {
    "empty": w_empty,
    "anon_touch": w_anon("write"),
    "anon_read": w_anon("read"),
    "anon_read_then_write": w_anon("read_then_write"),
    "populate": w_populate,
    "mlock": w_mlock,
    "shm_touch": w_shm,
    "fork_cow": w_fork("write"),
    "fork_cow_read": w_fork("read"),
    "mprotect_split": w_mprotect_split,
    "file_map": w_file("r", "private", "f4k", "read"),
    "file_map_shared_read": w_file("r", "shared", "f4k", "read"),
    "file_map_private_write": w_file("rw", "private", "f4k", "write"),
    "file_map_shared_write": w_file("rw", "shared", "fsw", "write"),
    "madv_dontneed": w_madv_dontneed,
    "mremap_grow": w_mremap_grow,
    "brk_grow": w_brk_grow,
    "thp_touch": w_thp_touch,
    "hugetlb": w_hugetlb,
}


# ---------------------------------------------------------------------------------------
# Settings: the fidelity "settings" string as sysctl/sysfs statements
# ---------------------------------------------------------------------------------------

def settings_lines(settings):
    s = settings
    def has(t):
        if t not in s:
            raise SystemExit("the settings no longer say %r: update the generator (settings: %s)" % (t, s))
    for t in ("THP enabled=madvise", "defrag=madvise", "use_zero_page=1", "shmem THP never",
              "fault-around 64 KiB", "overcommit_memory=0", "hugetlb_optimize_vmemmap=0",
              "CONFIG_PT_RECLAIM=y", "LRU_GEN off", "large folios"):
        has(t)
    thp = "/sys/kernel/mm/transparent_hugepage"
    return [
        "sysctl vm.overcommit_memory=0",
        "sysctl vm.hugetlb_optimize_vmemmap=0",
        "sysfs %s/enabled=madvise" % thp,
        "sysfs %s/defrag=madvise" % thp,
        "sysfs %s/use_zero_page=1" % thp,
        "sysfs %s/shmem_enabled=never" % thp,
        "# fault-around 64 KiB (debugfs fault_around_bytes), CONFIG_PT_RECLAIM=y, LRU_GEN off and ext4",
        "# with large folios are the model's fixed behaviour: no statement sets them.",
    ]


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

def comment_block(text, indent="#   ", width=100):
    out = []
    for part in re.split(r"\s+(?=\[[A-Za-z0-9_]+\])", text.strip()):
        out += textwrap.wrap(part, width=width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_long_words=False, break_on_hyphens=False)
    return out


def expect_lines(workload, n, phase_name, proc, counters):
    out = []
    for key, value in counters.items():
        name, kb = counter(key, proc)
        line = "expect %s since %s == %d%s" % (name, phase_name, value, " kB" if kb else "")
        why = unmodelled(workload, n, phase_name, key, value)
        if why is None:
            out.append(line)
        else:
            out += ["# not modelled: %s" % why, "# " + line]
    return out


def scenario(data, workload, n_text, results):
    n = int(n_text)
    wl = data["workloads"][workload]
    body = WORKLOADS[workload](n)
    marked, expected = [], []
    lines = []
    for line in body:
        if line.startswith("@mark "):
            p = line.split()[1]
            marked.append(p)
            lines.append("mark " + p)
        elif line.startswith("@expect "):
            _, p, proc = line.split()
            expected.append(p)
            if p not in results:
                raise SystemExit("%s N=%s: the JSON has no phase %r" % (workload, n_text, p))
            lines += expect_lines(workload, n, p, proc, results[p])
        else:
            lines.append(line)
    if sorted(marked) != sorted(results) or sorted(expected) != sorted(results):
        raise SystemExit("%s N=%s: phases %s in the JSON, %s in the generator"
                         % (workload, n_text, list(results), marked))

    unit = {"thp_touch": "2 MiB regions", "hugetlb": "2 MiB huge pages"}.get(workload, "pages")
    head = ["# Fidelity workload %s, N = %s (%s): Linux 6.18 counter deltas, phase by phase." % (workload, n_text, unit),
            "#",
            "# Syscalls (wl.c):"]
    head += comment_block(wl["syscalls"])
    head += ["#",
             "# Kernel: %s." % data["kernel"],
             "# Each phase is bracketed by snapshots; every expect is a counter delta across its phase,",
             "# identical in all 7 runs on the real kernel. Counters that come from the real program's",
             "# fixed costs are commented out, with the reason above them."]
    head += ["#",
             "# generated by tools/gen-fidelity-scenarios.py from %s: do not edit," % SOURCE,
             "# change the generator and run it again.",
             "",
             "machine preset=reference                  # x86-64, 4-level paging, 2 CPUs, 24 GiB, no swap"]
    head += settings_lines(data["settings"])
    head += ["",
             "spawn %s cpu=1                            # sched_setaffinity(0, {CPU1})" % PROC,
             "# Preamble (not measured): setrlimit(RLIMIT_MEMLOCK, infinity) has no counterpart (the model",
             "# has no rlimits); mlockall(MCL_CURRENT) + munlockall() pre-fault everything mapped; the two",
             "# warm-up snapshots change nothing in the model.",
             "%s: mlockall current" % PROC,
             "%s: munlockall" % PROC]
    text = "\n".join(head + lines) + "\n"
    text = re.sub(r"\n{3,}", "\n\n", text)
    nexp = sum(1 for l in lines if l.startswith("expect "))
    ncom = sum(1 for l in lines if l.startswith("# expect "))
    return text, nexp, ncom


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=DEFAULT_JSON)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    unknown = set(data["workloads"]) - set(WORKLOADS)
    if unknown:
        raise SystemExit("workloads the generator does not know: %s" % ", ".join(sorted(unknown)))
    os.makedirs(args.out, exist_ok=True)
    written = set()
    total_exp = total_com = 0
    for workload, wl in data["workloads"].items():
        for n_text, results in wl["results"].items():
            text, nexp, ncom = scenario(data, workload, n_text, results)
            name = "%s-%s.mmsim" % (workload, n_text)
            path = os.path.join(args.out, name)
            old = None
            if os.path.exists(path):
                with open(path) as f:
                    old = f.read()
            if old != text:
                with open(path, "w") as f:
                    f.write(text)
            written.add(name)
            total_exp += nexp
            total_com += ncom
    for name in os.listdir(args.out):
        if name.endswith(".mmsim") and name not in written:
            os.remove(os.path.join(args.out, name))
    print("%d scenarios in %s: %d expects, %d commented out"
          % (len(written), os.path.relpath(args.out), total_exp, total_com))


if __name__ == "__main__":
    main()
