#!/usr/bin/env python3
"""Writes scenarios/reclaim/WORKLOAD-N.mmsim from shared/fidelity/reclaim-linux-6.18-x86_64.json.

One scenario per workload and size of the reclaim fidelity file: reclaim.c's syscall sequence,
phase by phase, on the reference machine in a fresh cgroup-v1 memory cgroup `rcl` with the
workload's limit (and memsw limit, swap on or off). Each phase (`mark PHASE`, the statements)
is followed by its expects:
  - every counter of `results` (identical in all 7 runs):  expect C since PHASE == V
  - every counter of `ranges` ([min, median, max]):        expect C since PHASE in MIN..MAX
  - the memcg levels (absolute values after the phase):    expect memcg.rcl.F == V | in MIN..MAX
and, after the process exits, the meaningful `after_exit` values. Counters with no counterpart
in the model (io.*, ru_inblock/oublock, ...) and harness artefacts (the real program's own
~1 MiB in the memcg: its static binary's text, its kernel memory) are written commented out,
with the reason above them.

The harness (reclaim.c's preamble) is modelled as far as the language allows: the spawned
process is attached to the memcg right after `spawn`, maps 676 KiB of anonymous memory (its
bss, data and heap) and calls mlockall(MCL_CURRENT), which also faults in the rest of its stack:
800 kB of mlocked anon in the memcg, as memory.stat's rss shows in every run; it then reads a
7-page file (the 28 kB of page cache the real run has in the memcg before the first phase).

Usage:  tools/gen-reclaim-scenarios.py [--json PATH] [--out DIR]
        tools/gen-reclaim-scenarios.py --known-failures [--mmsim PATH] [--timeout S]
Defaults: ../shared/fidelity/reclaim-linux-6.18-x86_64.json (next to the repository) and
scenarios/reclaim. Standard library only. Files in DIR that the run does not write (*.mmsim
only) are removed, so the directory always matches the JSON.

--known-failures runs every scenario of DIR with the mmsim binary (default .build/debug/mmsim;
`swift build` first) and writes DIR/KNOWN-FAILURES: one `FILE:LINE  expected ..., actual ...`
line per failing expectation, and `FILE  SKIP  reason` for a scenario that does not finish in
S seconds (default 30). Tests/MMSimTests/ReclaimFidelityTests.swift requires exactly those to
fail (and does not run the SKIP ones): run it again whenever the model or the generator changes.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(os.path.dirname(REPO), "shared", "fidelity", "reclaim-linux-6.18-x86_64.json")
DEFAULT_OUT = os.path.join(REPO, "scenarios", "reclaim")
DEFAULT_MMSIM = os.path.join(REPO, ".build", "debug", "mmsim")
SOURCE = "shared/fidelity/reclaim-linux-6.18-x86_64.json"

PAGE = 4096
GIB = 1 << 30
ADDR = 0x100000000000            # reclaim.c BASE: 16 TiB, 1 GiB aligned, in an empty PGD slot
IOCHUNK = 128 * 1024             # read()/write() size of the file workloads
PROC = "wl"                      # the measured process
CHILD = "child"                  # anon_oom's child
CG = "rcl"                       # the memory cgroup

# The harness's own memory in the memcg before the first phase (see the module comment).
HARNESS_ANON = 676 * 1024        # + the 31 stack pages mlockall() faults in = 800 kB rss
HARNESS_CACHE = 28 * 1024        # 7 page-cache pages


def size(nbytes):
    """The shortest exact binary form: 4K, 64K, 2M, 1G, 400K."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return "%d%s" % (nbytes >> shift, unit)
    return str(nbytes)


def hexaddr(a):
    return "0x%x" % a


# ---------------------------------------------------------------------------------------
# Counters: fidelity names -> scenario counters
# ---------------------------------------------------------------------------------------

RUSAGE = {"ru_minflt": "minflt", "ru_majflt": "majflt", "ruc_minflt": "cminflt", "ruc_majflt": "cmajflt"}
USAGE = ("usage_kB", "max_usage_kB", "memsw_usage_kB", "memsw_max_usage_kB")


def counter(key):
    """(scenario counter, is kB) for a fidelity counter name, or (None, reason) when the model
    has no counterpart."""
    if key in RUSAGE:
        return "%s.%s" % (PROC, RUSAGE[key]), False
    if key.startswith("ru_") or key.startswith("ruc_"):
        return None, "the model has no block I/O accounting or scheduler (getrusage %s)" % key
    if key.startswith("io."):
        return None, "the model has no /proc/PID/io"
    if key == "maps.nvma":
        return "%s.maps.count" % PROC, False
    if key.startswith("status."):
        assert key.endswith("_kB"), key
        return "%s.status.%s" % (PROC, key[len("status."):-3]), True
    if key.startswith("meminfo."):
        field = key[len("meminfo."):]
        if field.endswith("_kB"):
            return "meminfo." + field[:-3], True
        return "meminfo." + field, False
    if key.startswith("vmstat."):
        return key, False
    if key.startswith("memcg."):
        field = key[len("memcg."):]
        if field in ("oom_control.under_oom", "oom_control.oom_kill_disable"):
            return None, "memory.oom_control's %s is not readable as a counter" % field.split(".")[1]
        return "memcg.%s.%s" % (CG, field), field.endswith("_kB")
    raise SystemExit("unknown counter %r" % key)


AFTER_EXIT = {
    "memory.failcnt": "failcnt",
    "memory.memsw.failcnt": "memsw_failcnt",
    "memory.max_usage_in_bytes": "max_usage_kB",
    "memory.memsw.max_usage_in_bytes": "memsw_max_usage_kB",
    "oom_control.oom_kill": "oom_control.oom_kill",
    "oom_control.under_oom": "oom_control.under_oom",
    "stat.workingset_refault_anon": "workingset_refault_anon",
    "stat.workingset_refault_file": "workingset_refault_file",
    "stat.pgpgin": "pgpgin", "stat.pgpgout": "pgpgout", "stat.pgfault": "pgfault", "stat.pgmajfault": "pgmajfault",
}


def level_artefact(key, value, limit_kB, memsw_kB):
    """Why an absolute level cannot be compared (one line), or None."""
    if key.startswith("status."):
        return ("an absolute /proc/self/status value includes the real harness's static binary "
                "(692 kB of file text, 1484 kB locked) that the spawned process does not have")
    field = key[len("memcg."):]
    if field in USAGE:
        hi = value[-1] if isinstance(value, list) else value
        lo = value[0] if isinstance(value, list) else value
        if lo == hi and hi in (limit_kB, memsw_kB):
            return None                      # the limit was reached: meaningful
        return ("absolute usage includes the harness's kernel memory (page tables, slab: about 76 kB "
                "at the start) that the model does not charge")
    return None


def after_exit_artefact(key):
    if key.startswith("stat.pg"):
        return "includes the real harness's own faults and page-cache reads before the first phase"
    if key == "stat.workingset_refault_file":
        return "includes refaults of the real harness's own files (the shell's exec and libc reads)"
    if key == "oom_control.under_oom":
        return "memory.oom_control's under_oom is not readable as a counter"
    if key == "memory.memsw.max_usage_in_bytes":
        return "absolute usage includes the harness's kernel memory that the model does not charge"
    return None


# ---------------------------------------------------------------------------------------
# Workloads: reclaim.c's phases as scenario statements
#
# A builder returns lines; "@mark PHASE" becomes `mark PHASE` and "@expect PHASE" becomes
# the phase's expects.
# ---------------------------------------------------------------------------------------

def anon(var, addr, npages):
    L = size(npages * PAGE)
    return ["%s: %s = mmap %s %s rw private anon fixed_noreplace" % (PROC, var, hexaddr(addr), L),
            "%s: madvise %s %s nohugepage" % (PROC, var, L)]


def phase(name, comment, body):
    return ["", "# [%s] %s" % (name, comment), "@mark " + name] + body + ["@expect " + name]


def chunks(verb, fname, npages):
    """read()/write() of the whole file from offset 0 in IOCHUNK pieces."""
    total = npages * PAGE
    out = []
    off = 0
    while off < total:
        c = min(IOCHUNK, total - off)
        out.append("file %s %s %d %s" % (verb, fname, off, size(c)))
        off += c
    return out


def w_empty(n, p):
    return phase("empty", "nothing between the two snapshots", [])


def w_anon_swap(n, p):
    L = size(n * PAGE)
    out = phase("mmap", "anon(ADDR, %d pages)" % n, anon("buf", ADDR, n))
    out += phase("touch", "one store per page, ascending", ["%s: write buf +%s" % (PROC, L)])
    out += phase("reread", "one load per page, ascending", ["%s: read buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_anon_oom(n, p):
    L = size(n * PAGE)
    out = ["",
           "# setup (not measured): rec = mmap(NULL, 4K, RW, SHARED|ANON); memset(rec, 0, ...)",
           "%s: rec = mmap 4K rw shared anon" % PROC,
           "%s: write rec" % PROC]
    out += phase("mmap", "anon(ADDR, %d pages)" % n, anon("buf", ADDR, n))
    out += ["",
            "# [fork_touch_wait] fork(); the child writes 1000 to /proc/self/oom_score_adj and",
            "# touches N pages (storing its progress in rec after each); the memcg OOM killer",
            "# kills it with SIGKILL; the parent waitpid()s.",
            "@mark fork_touch_wait",
            "%s: fork %s" % (PROC, CHILD),
            "# The kernel's child is in its parent's memcg from fork() on; the model's fork() leaves the",
            "# child's mm in the root group (mm.memcg is not inherited), so attach it explicitly.",
            "cgroup attach %s %s" % (CG, CHILD),
            "%s: oom_score_adj 1000" % CHILD,
            "%s: write rec                  # rec->started = 1 (the shared page is not mapped in the child yet)" % CHILD,
            "%s: write buf +%s" % (CHILD, L),
            "%s: exit 0                     # not reached: the child is killed first" % CHILD,
            "%s: wait %s" % (PROC, CHILD),
            "@expect fork_touch_wait",
            "# info.child_killed_by_signal: 9",
            "expect %s.signal == SIGKILL" % CHILD]
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def file_setup(n):
    return ["",
            "# setup (not measured): the data file, N pages, written, fsync()ed and dropped from the",
            "# page cache (clean, not cached); fd = open(O_RDONLY) has no counterpart.",
            "file create data.bin %s cold" % size(n * PAGE)]


def drop_phase():
    return phase("drop", "posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)", ["file drop data.bin"])


def w_file_cache(n, p):
    out = drop_phase()
    out += phase("read1", "read() the whole file in 128 KiB pieces", chunks("read", "data.bin", n))
    out += phase("read2", "read() it again", chunks("read", "data.bin", n))
    out += phase("close", "close(fd): no counterpart", [])
    return out


def w_file_cache_mmap(n, p):
    L = size(n * PAGE)
    out = drop_phase()
    out += phase("mmap", "mmap(ADDR, %d pages, PROT_READ, MAP_PRIVATE|FIXED_NOREPLACE, fd, 0)" % n,
                 ["%s: buf = mmap %s %s r private fixed_noreplace file=data.bin" % (PROC, hexaddr(ADDR), L)])
    out += phase("read1", "one load per page, ascending", ["%s: read buf +%s" % (PROC, L)])
    out += phase("read2", "one load per page again", ["%s: read buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len); close(fd) (not measured)", ["%s: munmap buf %s" % (PROC, L)])
    return out


def w_dirty_file(n, p):
    out = phase("create", "fd = open(path, O_WRONLY|O_CREAT|O_TRUNC, 0644)", ["file create out.bin 0 cold"])
    out += phase("write", "write(fd, buf, 128 KiB) until N pages are written", chunks("write", "out.bin", n))
    out += phase("fsync", "fsync(fd)", ["file sync out.bin"])
    out += phase("close_unlink", "close(fd); unlink(path): the last reference goes, the page cache is truncated",
                 ["file truncate out.bin 0"])
    return out


def w_mlock_pressure(n, p):
    m = p["M"]
    L, LM = size(n * PAGE), size(m * PAGE)
    out = ["", "# info.mlocked_pages: %d" % m]
    out += phase("mmap_mlock", "anon(ADDR, %d pages); mlock(ADDR, M*4K)" % m,
                 anon("locked", ADDR, m) + ["%s: mlock locked %s" % (PROC, LM)])
    out += phase("mmap", "anon(ADDR+1GiB, %d pages)" % n, anon("buf", ADDR + GIB, n))
    out += phase("touch", "one store per page at ADDR+1GiB", ["%s: write buf +%s" % (PROC, L)])
    out += phase("reread", "one load per page", ["%s: read buf +%s" % (PROC, L)])
    out += phase("munlock", "munlock(ADDR, M*4K)", ["%s: munlock locked %s" % (PROC, LM)])
    out += phase("munmap", "munmap both", ["%s: munmap buf %s" % (PROC, L), "%s: munmap locked %s" % (PROC, LM)])
    return out


def w_madv_pageout(n, p):
    L = size(n * PAGE)
    out = phase("mmap", "anon(ADDR, %d pages)" % n, anon("buf", ADDR, n))
    out += phase("touch", "one store per page", ["%s: write buf +%s" % (PROC, L)])
    out += phase("pageout", "madvise(ADDR, len, MADV_PAGEOUT)", ["%s: madvise buf %s pageout" % (PROC, L)])
    out += phase("settle", "usleep(500000): the model has no time; the swap writes completed at the end of "
                 "the madvise statement", [])
    out += phase("retouch", "one store per page again", ["%s: write buf +%s" % (PROC, L)])
    out += phase("munmap", "munmap(ADDR, len)", ["%s: munmap buf %s" % (PROC, L)])
    return out


WORKLOADS = {
    "empty": w_empty,
    "anon_swap": w_anon_swap,
    "anon_oom": w_anon_oom,
    "anon_oom_memsw": w_anon_oom,
    "file_cache": w_file_cache,
    "file_cache_mmap": w_file_cache_mmap,
    "dirty_file": w_dirty_file,
    "mlock_pressure": w_mlock_pressure,
    "madv_pageout": w_madv_pageout,
}
FILE_WORKLOADS = ("file_cache", "file_cache_mmap")


def base_workload(name):
    return name[:-4] if name.endswith("_L32") else name


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

def comment_block(text, indent="#   ", width=100):
    out = []
    for part in re.split(r"\s+(?=\[[A-Za-z0-9_]+\])", text.strip()):
        out += textwrap.wrap(part, width=width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_long_words=False, break_on_hyphens=False)
    return out


def value_text(name, kb, v):
    return "%d%s" % (v, " kB" if kb else "")


def delta_expects(phase_name, results, ranges):
    out = []
    for key, v in results.items():
        name, kb = counter(key)
        line = "expect %s since %s == %s" % (name, phase_name, value_text(name, kb, v)) if name else \
            "expect %s since %s == %d" % (key, phase_name, v)
        if name is None:
            out += ["# not modelled: %s" % kb, "# " + line]
        else:
            out.append(line)
    for key, (lo, _med, hi) in ranges.items():
        name, kb = counter(key)
        line = "expect %s since %s in %d..%d" % (name or key, phase_name, lo, hi)
        if name is None:
            out += ["# not modelled: %s" % kb, "# " + line]
        else:
            out.append(line)
    return out


def level_expects(levels, limit_kB, memsw_kB):
    out = []
    for key, v in levels.items():
        name, kb = counter(key)
        if isinstance(v, list):
            line = "expect %s in %d..%d" % (name, v[0], v[2])
        else:
            line = "expect %s == %s" % (name, value_text(name, kb, v))
        why = level_artefact(key, v, limit_kB, memsw_kB)
        if why is None:
            out.append(line)
        else:
            out += ["# harness: %s" % why, "# " + line]
    return out


def after_exit_expects(after, limit_kB, memsw_kB):
    out = []
    for key, v in after.items():
        field = AFTER_EXIT.get(key)
        if field is None:
            raise SystemExit("unknown after_exit counter %r" % key)
        kb = field.endswith("_kB")
        if key.endswith("_in_bytes"):
            v = [x // 1024 for x in v] if isinstance(v, list) else v // 1024
        name = "memcg.%s.%s" % (CG, field)
        if isinstance(v, list):
            line = "expect %s in %d..%d" % (name, v[0], v[2])
        else:
            line = "expect %s == %s" % (name, value_text(name, kb, v))
        why = after_exit_artefact(key)
        if why is None and field == "max_usage_kB" and v not in (limit_kB, memsw_kB):
            why = "absolute usage includes the harness's kernel memory that the model does not charge"
        if why is None:
            out.append(line)
        else:
            kind = "not modelled" if "not readable" in why else "harness"
            out += ["# %s: %s" % (kind, why), "# " + line]
    return out


def scenario(data, workload, n_text):
    n = int(n_text)
    wl = data["workloads"][workload]
    base = base_workload(workload)
    cg = wl["memcg"]
    limit_kB = cg["limit_kB"]
    memsw_kB = cg["memsw_limit_kB"] if cg["memsw_limit_kB"] != "unlimited" else None
    swap_on = cg["swap"].startswith("on")
    if cg["swappiness"] != 60 or cg["oom_kill_disable"] != 0:
        raise SystemExit("%s: memcg settings the generator does not write: %s" % (workload, cg))
    results = wl["results"][n_text]
    ranges = wl.get("ranges", {}).get(n_text, {})
    levels = wl.get("levels", {}).get(n_text, {})
    body = WORKLOADS[base](n, wl["params"])
    lines, marked = [], []
    for line in body:
        if line.startswith("@mark "):
            p = line.split()[1]
            marked.append(p)
            lines.append("mark " + p)
        elif line.startswith("@expect "):
            p = line.split()[1]
            if p not in results:
                raise SystemExit("%s N=%s: the JSON has no phase %r" % (workload, n_text, p))
            lines += delta_expects(p, results[p], ranges.get(p, {}))
            if levels.get(p):
                lines += ["# levels after [%s] (absolute, the harness's own pages included)" % p]
                lines += level_expects(levels[p], limit_kB, memsw_kB)
        else:
            lines.append(line)
    if sorted(marked) != sorted(results):
        raise SystemExit("%s N=%s: phases %s in the JSON, %s in the generator" % (workload, n_text, list(results), marked))
    after = wl.get("after_exit", {}).get(n_text)
    if after:
        lines += ["", "# after the process exited (the memcg's files; absolute values)",
                  "%s: exit 0" % PROC]
        lines += after_exit_expects(after, limit_kB, memsw_kB)

    head = ["# Reclaim fidelity workload %s, N = %s pages: Linux 6.18 under memcg limit reclaim," % (workload, n_text),
            "# counter deltas phase by phase.",
            "#",
            "# Syscalls (reclaim.c):"]
    head += comment_block(wl["syscalls"])
    head += ["#",
             "# Kernel: %s." % data["kernel"],
             "# memcg: limit %d kB, memsw limit %s, swappiness %d, swap %s."
             % (limit_kB, "%d kB" % memsw_kB if memsw_kB else "unlimited", cg["swappiness"], cg["swap"]),
             "# Each phase is bracketed by snapshots: `since` expects are deltas across the phase, exact",
             "# (identical in all 7 runs) or the [min, max] of the runs; expects without `since` are the",
             "# memcg's levels after the phase. Counters with no counterpart in the model and harness",
             "# artefacts are commented out, with the reason above them.",
             "#",
             "# generated by tools/gen-reclaim-scenarios.py from %s: do not edit," % SOURCE,
             "# change the generator and run it again (then --known-failures).",
             "",
             "machine preset=reference                  # x86-64, 4-level paging, 2 CPUs, 24 GiB",
             "# vm.swappiness=60, page-cluster=3, LRU_GEN off, zswap off, THP madvise: the defaults."]
    if swap_on:
        head += ["swapon /swapfile 1G                       # fallocate, mkswap, swapon: priority -2"]
    if base in FILE_WORKLOADS:
        head += file_setup(n)
    head += ["",
             "# Preamble (not measured): the process is in a fresh memcg from exec on.",
             "spawn %s cpu=1                            # sched_setaffinity(0, {CPU1})" % PROC,
             "cgroup create %s" % CG,
             "cgroup set %s memory.limit_in_bytes=%s" % (CG, size(limit_kB * 1024))]
    if memsw_kB:
        head += ["cgroup set %s memory.memsw.limit_in_bytes=%s" % (CG, size(memsw_kB * 1024))]
    head += ["cgroup attach %s %s" % (CG, PROC),
             "# setrlimit(RLIMIT_MEMLOCK, infinity): no counterpart (no rlimits). The harness's data, bss and",
             "# heap (676 KiB here), then mlockall(MCL_CURRENT), kept: with the stack it faults in, 800 kB of",
             "# mlocked anon in the memcg, as memory.stat's rss shows on the real kernel.",
             "%s: harness = mmap %s rw private anon" % (PROC, size(HARNESS_ANON)),
             "# The harness's 7 page-cache pages in the memcg (memory.stat cache 28 kB, on the inactive",
             "# file list, before the first phase): read on CPU 1 (after wl's mmap), then 24 more pages",
             "# read and dropped again fill CPU 1's lru_add batch (31), which puts the 7 on the LRU.",
             "file create harness.dat %s cold" % size(HARNESS_CACHE),
             "file read harness.dat 0 %s" % size(HARNESS_CACHE),
             "file create scratch.dat %s cold" % size(31 * PAGE - HARNESS_CACHE),
             "file read scratch.dat 0 %s" % size(31 * PAGE - HARNESS_CACHE),
             "file drop scratch.dat",
             "%s: mlockall current" % PROC,
             "# The warm-up snapshots change nothing in the model."]
    text = "\n".join(head + lines) + "\n"
    text = re.sub(r"\n{3,}", "\n\n", text)
    nexp = sum(1 for l in lines if l.startswith("expect "))
    ncom = sum(1 for l in lines if l.startswith("# expect "))
    return text, nexp, ncom


def generate(args):
    with open(args.json) as f:
        data = json.load(f)
    unknown = {w for w in data["workloads"] if base_workload(w) not in WORKLOADS}
    if unknown:
        raise SystemExit("workloads the generator does not know: %s" % ", ".join(sorted(unknown)))
    os.makedirs(args.out, exist_ok=True)
    written = set()
    total_exp = total_com = 0
    for workload, wl in data["workloads"].items():
        for n_text in wl["results"]:
            text, nexp, ncom = scenario(data, workload, n_text)
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


KNOWN_HEADER = """\
# Expectations of scenarios/reclaim that the model does not meet yet, one a line:
#   FILE:LINE  what the run found (the expect; expected ...; actual ...)
#   FILE  SKIP  why the scenario is not run (it does not finish in time in a debug build)
# Tests/MMSimTests/ReclaimFidelityTests.swift fails on a failing expectation that is not listed
# here and on a listed one that passes (so the list shrinks as the model improves), and does not
# run the SKIP scenarios. Written by `tools/gen-reclaim-scenarios.py --known-failures` (after
# `swift build`): do not edit by hand; run it again whenever the model or the generator changes.
"""

# Why a workload's scenarios may not finish (written after SKIP when they time out).
SLOW = {
    "dirty_file": ("the model's limit reclaim never cleans dirty page cache (no flusher wake-up, no "
                   "writeback wait): each write() past the limit scans every LRU page in vain, seconds each"),
}


def known_failures(args):
    names = sorted(n for n in os.listdir(args.out) if n.endswith(".mmsim"))
    rel = os.path.relpath(args.out, REPO)
    out = [KNOWN_HEADER]
    total = 0
    for name in names:
        path = os.path.join(rel, name)
        try:
            r = subprocess.run([args.mmsim, "run", path, "--format", "json"], cwd=REPO,
                               capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            base = base_workload(name.rsplit("-", 1)[0])
            why = SLOW.get(base, "the model is too slow on it")
            out.append("%s  SKIP  does not finish in %d s: %s" % (name, args.timeout, why))
            print("%-32s SKIP (over %d s)" % (name, args.timeout))
            continue
        if r.returncode not in (0, 1):
            raise SystemExit("%s: mmsim exited with %d: %s" % (path, r.returncode, r.stderr.strip()))
        rep = json.loads(r.stdout)
        fails = [e for e in rep["expectations"] if not e["passed"]]
        for e in fails:
            line = e["location"].split(":")[-2]
            out.append("%s:%s  %s; expected %s; actual %s" % (
                name, line, e["statement"][len("expect "):], e["expected"], e["actual"]))
        total += len(fails)
        print("%-32s %4d expects, %4d failing" % (name, len(rep["expectations"]), len(fails)))
    with open(os.path.join(args.out, "KNOWN-FAILURES"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("%d known failures in %s/KNOWN-FAILURES" % (total, rel))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=DEFAULT_JSON)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--known-failures", action="store_true",
                    help="run the scenarios and write DIR/KNOWN-FAILURES instead of generating")
    ap.add_argument("--mmsim", default=DEFAULT_MMSIM)
    ap.add_argument("--timeout", type=int, default=30, help="seconds per scenario before it is SKIPped (default 30)")
    args = ap.parse_args()
    if args.known_failures:
        known_failures(args)
    else:
        generate(args)


if __name__ == "__main__":
    main()
