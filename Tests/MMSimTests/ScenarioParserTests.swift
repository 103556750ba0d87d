// The scenario language: what parses to what, and every error with its FILE:LINE:COL and sentence.

import Testing
import MMSimTestSupport

@Suite struct ScenarioParserTests {
    func parse(_ text: String) throws -> Scenario {
        try ScenarioParser.parse(text, file: "t.mmsim")
    }

    /// The error a scenario is rejected with, as one printed line.
    func error(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ScenarioError? {
        expectScenarioError(sourceLocation: sourceLocation) { _ = try parse(text) }
    }

    /// Checks line, column and that the message contains `words`.
    func expectError(_ text: String, line: Int, column: Int, _ words: String,
                     sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        guard let e = error(text, sourceLocation: sourceLocation) else { return }
        #expect(e.location.file == "t.mmsim", sourceLocation: sourceLocation)
        #expect(e.location.line == line && e.location.column == column, "\(e)", sourceLocation: sourceLocation)
        #expect(e.message.contains(words), "\(e)", sourceLocation: sourceLocation)
        #expect(e.description.hasPrefix("t.mmsim:\(line):\(column): error: "), sourceLocation: sourceLocation)
        #expect(!e.description.contains("\n"), sourceLocation: sourceLocation)
    }

    func actions(_ s: Scenario) -> [ProcessAction] {
        s.statements.compactMap { if case .action(_, let a, _) = $0.kind { a } else { nil } }
    }

    // MARK: Numbers

    @Test func numbers() {
        #expect(parseNumber("4096") == 4096)
        #expect(parseNumber("0x1000") == 4096)
        #expect(parseNumber("0X1000") == 4096)
        #expect(parseNumber("4K") == 4096)
        #expect(parseNumber("2M") == 2 << 20)
        #expect(parseNumber("1G") == 1 << 30)
        #expect(parseNumber("1T") == 1 << 40)
        #expect(parseNumber("1P") == 1 << 50)
        #expect(parseNumber("2MiB") == 2 << 20)
        #expect(parseNumber("0x1000_0000_0000") == 0x1000_0000_0000)
        #expect(parseNumber("18446744073709551615") == .max)
        #expect(parseNumber("18446744073709551616") == nil)
        #expect(parseNumber("16384P") == nil)       // 2^64 bytes
        #expect(parseNumber("12Q") == nil)
        #expect(parseNumber("") == nil)
        #expect(parseNumber("K") == nil)
        #expect(parseNumber("0x") == nil)
        #expect(formatLength(2 << 20) == "2M")
        #expect(formatLength(4097) == "4097")
    }

    // MARK: What parses

    @Test func comments_semicolons_and_blank_lines() throws {
        let s = try parse("""
            # a comment
              # an indented comment

            spawn p   # trailing comment
            mark a ; mark b;mark c
            """)
        #expect(s.statements.count == 4)
        #expect(s.statements[0].location.line == 4 && s.statements[0].location.column == 1)
        #expect(s.statements[3].location.line == 5 && s.statements[3].location.column == 17)
    }

    @Test func machine_line_and_boot_sysctls() throws {
        let s = try parse("""
            machine x86_64 memory=4G cpus=2 pcid=off
            sysctl vm.min_free_kbytes=20000
            sysctl vm.watermark_scale_factor = 100
            sysfs /sys/kernel/mm/transparent_hugepage/enabled=always
            spawn p cpu=1
            sysctl vm.min_free_kbytes=30000
            """)
        #expect(s.machine.arch == .x86_64 && s.machine.memory == 4 << 30 && s.machine.cpus == 2 && !s.machine.pcid)
        #expect(s.machine.minFreeKbytes == 20000)
        #expect(s.machine.watermarkScaleFactor == 100)
        #expect(s.machine.transparentHugepage == .always)
        // The sysctl after the first process stays a statement.
        #expect(s.statements.contains { if case .sysctl("vm.min_free_kbytes", "30000") = $0.kind { true } else { false } })
        #expect(s.statements.contains { if case .spawn("p", 1) = $0.kind { true } else { false } })
    }

    @Test func machine_presets() throws {
        #expect(try parse("machine preset=small").machine == .small)
        #expect(try parse("machine arm64").machine.arch == .arm64)
        #expect(try parse("machine preset=small arch=x86_64-5level").machine.arch == .x86_64_5level)
        #expect(try parse("spawn p").machine == .reference)
    }

    @Test func mmap_forms() throws {
        let s = try parse("""
            spawn p
            p: mmap 0x100000000000 2M rw private anon fixed_noreplace nohugepage
            p: buf = mmap 2M r private anon populate
            p: mmap 4K PROT_READ|PROT_WRITE MAP_SHARED|MAP_ANONYMOUS
            p: mmap buf+1M 1M rwx private anon fixed noreserve
            """)
        let a = actions(s)
        guard case .mmap(let addr, 2 << 20, .rw, let f, nil, 0, [.nohugepage]) = a[0] else { Issue.record("\(a[0])"); return }
        #expect(addr?.literalValue == 0x1000_0000_0000)
        #expect(f == [.private, .anonymous, .fixedNoreplace])
        guard case .mmap(nil, 2 << 20, .read, let f2, nil, 0, []) = a[1] else { Issue.record("\(a[1])"); return }
        #expect(f2 == [.private, .anonymous, .populate])
        guard case .mmap(nil, 4096, .rw, let f3, nil, 0, []) = a[2] else { Issue.record("\(a[2])"); return }
        #expect(f3 == [.shared, .anonymous])
        guard case .mmap(let addr4?, 1 << 20, [.read, .write, .exec], _, nil, 0, []) = a[3] else { Issue.record("\(a[3])"); return }
        #expect(addr4.variables == ["buf"] && addr4.literalValue == nil)
        guard case .action("p", _, "buf") = s.statements[2].kind else { Issue.record("no binding"); return }
    }

    @Test func syscalls() throws {
        let s = try parse("""
            spawn parent
            parent: munmap 0x100000000000 2M
            parent: mprotect 0x100000000000+40*4K 20*4K r
            parent: madvise 0x100000000000 2M dontneed
            parent: madvise 0x100000000000 2M MADV_POPULATE_WRITE
            parent: mremap 0x100000000000 2M 4M maymove fixed=0x200000000000
            parent: brk +16M
            parent: brk -16M
            parent: brk 0x600000
            parent: brk
            parent: mlock 0x100000000000 2M
            parent: mlock 0x100000000000 2M onfault
            parent: munlock 0x100000000000 2M
            parent: mlockall current future
            parent: munlockall
            parent: fork child
            child: exit 3
            parent: wait child
            parent: wait
            parent: execve
            """)
        let a = actions(s)
        #expect(a.count == 19)
        guard case .mprotect(let addr, 81920, .read) = a[1] else { Issue.record("\(a[1])"); return }
        #expect(addr.literalValue == 0x1000_0000_0000 + 40 * 4096)
        guard case .madvise(_, _, .dontneed) = a[2], case .madvise(_, _, .populateWrite) = a[3] else { Issue.record("madvise"); return }
        guard case .mremap(_, 2 << 20, 4 << 20, [.maymove, .fixed], let na?) = a[4] else { Issue.record("\(a[4])"); return }
        #expect(na.literalValue == 0x2000_0000_0000)
        guard case .brk(.grow(16 << 20)) = a[5], case .brk(.shrink(16 << 20)) = a[6],
              case .brk(.set) = a[7], case .brk(.query) = a[8] else { Issue.record("brk"); return }
        guard case .mlock(_, _, false) = a[9], case .mlock(_, _, true) = a[10] else { Issue.record("mlock"); return }
        guard case .mlockall(true, true, false) = a[12] else { Issue.record("mlockall"); return }
        guard case .fork("child") = a[14], case .exit(3) = a[15], case .wait("child") = a[16],
              case .wait(nil) = a[17], case .execve = a[18] else { Issue.record("process life"); return }
    }

    @Test func accesses() throws {
        let s = try parse("""
            spawn p
            p: write 0x100000000000 +2M stride=4K
            p: read 0x100000000000 0x100000200000
            p: exec 0x100000000000
            p: touch 0x100000000000 +1M stride=2M
            """)
        let a = actions(s)
        guard case .access(let w) = a[0], case .access(let r) = a[1], case .access(let x) = a[2], case .access(let t) = a[3] else {
            Issue.record("\(a)"); return
        }
        #expect(w.kind == .write && w.end == .length(2 << 20) && w.stride == 4096)
        #expect(r.kind == .read)
        guard case .end(let e) = r.end else { Issue.record("end"); return }
        #expect(e.literalValue == 0x1000_0020_0000)
        #expect(x.kind == .execute && x.end == .length(1))
        #expect(t.kind == .write && t.stride == 2 << 20)
    }

    @Test func expectations() throws {
        let s = try parse("""
            spawn parent
            parent: fork child
            mark m
            expect child.minflt since m == 512
            expect meminfo.AnonPages == 2048 kB ; expect vmstat.pgfault since m >= 512
            expect parent.status.VmRSS since m == 2048
            expect parent.status.VmRSS_kB since m == 2M
            expect parent.status.VmRSS since m == -512 pages
            expect parent.maps.count == 1
            expect parent.errno == EEXIST
            expect parent.errno != ok
            expect parent.signal == SIGSEGV
            expect parent.signal == none
            expect meminfo.HugePages_Total == 0
            expect parent.ru_minflt < 3
            """)
        let e = s.statements.compactMap { if case .expect(let e) = $0.kind { e } else { nil } }
        #expect(e.count == 13)
        guard case .counter(let c0, "m", .eq, 512) = e[0] else { Issue.record("\(e[0])"); return }
        #expect(c0.source == .rusage(process: "child", field: .minflt) && !c0.isKB)
        guard case .counter(let c1, nil, .eq, 2048) = e[1] else { Issue.record("\(e[1])"); return }
        #expect(c1.source == .meminfo("AnonPages") && c1.isKB)
        guard case .counter(_, "m", .ge, 512) = e[2] else { Issue.record("\(e[2])"); return }
        guard case .counter(_, "m", .eq, 2048) = e[3], case .counter(_, "m", .eq, 2048) = e[4],
              case .counter(_, "m", .eq, -2048) = e[5] else { Issue.record("kB conversions"); return }
        guard case .counter(let c6, nil, .eq, 1) = e[6] else { Issue.record("\(e[6])"); return }
        #expect(c6.source == .mapsCount(process: "parent"))
        guard case .errno("parent", .eq, .EEXIST) = e[7], case .errno("parent", .ne, nil) = e[8] else { Issue.record("errno"); return }
        guard case .signal("parent", .eq, "SIGSEGV") = e[9], case .signal("parent", .eq, nil) = e[10] else { Issue.record("signal"); return }
        guard case .counter(let c11, nil, .eq, 0) = e[11] else { Issue.record("\(e[11])"); return }
        #expect(!c11.isKB)
    }

    @Test func cat_views() throws {
        let s = try parse("""
            spawn init
            cat /proc/meminfo /proc/vmstat
            cat /proc/zoneinfo ; cat /proc/buddyinfo
            cat /proc/init/status
            cat /proc/1/maps
            """)
        let views = s.statements.compactMap { if case .cat(let v, _) = $0.kind { v } else { nil } }
        #expect(views == [.meminfo, .vmstat, .zoneinfo, .buddyinfo, .status(process: "init"), .maps(process: "1")])
        #expect(s.statements[2].location.column == 19)
    }

    @Test func literal_ranges_inside_the_user_address_space_pass() throws {
        // The last user page on 4-level x86-64, and a 1 PiB mmap (the kernel's to refuse).
        _ = try parse("spawn p\np: munmap 0x7ffffffff000-4K 4K\np: mmap 1P rw private anon")
        _ = try parse("machine x86_64-5level\nspawn p\np: munmap 0x10000000000000 1G")
    }

    // MARK: Errors

    @Test func unknown_command() {
        expectError("spawn p\nmmapp 4K", line: 2, column: 1, "unknown command 'mmapp'")
        expectError("  frobnicate", line: 1, column: 3, "unknown command 'frobnicate'")
        expectError("spawn p\np: mmapp 4K rw private anon", line: 2, column: 4, "did you mean 'mmap'")
        expectError("spawn p\nmmap 4K rw private anon", line: 2, column: 1, "needs a process")
    }

    @Test func bad_number() {
        expectError("spawn p\np: mmap 12Q rw private anon", line: 2, column: 9, "bad number '12Q'")
        expectError("spawn p\np: munmap 0x10000000000g0 4K", line: 2, column: 11, "bad number")
        expectError("spawn p\np: write 0x1000 +2X", line: 2, column: 18, "bad number '2X'")
        expectError("spawn p\np: mmap 99999999999999999999 rw private anon", line: 2, column: 9, "does not fit in 64 bits")
        expectError("spawn p\nexpect p.minflt == lots", line: 2, column: 20, "bad number 'lots'")
        expectError("machine memory=4X", line: 1, column: 16, "bad number")
    }

    @Test func unknown_process() {
        expectError("spawn parent\nchild: write 0x1000", line: 2, column: 1, "unknown process 'child'; processes so far: parent")
        expectError("parent: write 0x1000", line: 1, column: 1, "unknown process 'parent'; processes so far: none yet")
        expectError("spawn p\nexpect q.minflt == 0", line: 2, column: 8, "'q' is not meminfo, vmstat or a process")
        expectError("spawn p\ncat /proc/q/status", line: 2, column: 5, "unknown process 'q'")
        expectError("spawn p\np: wait q", line: 2, column: 9, "unknown process 'q'")
        expectError("spawn p\nspawn p", line: 2, column: 7, "already exists")
    }

    @Test func address_overflow() {
        expectError("spawn p\np: munmap 0xfffffffffffff000 8K", line: 2, column: 11, "address overflow")
        expectError("spawn p\np: munmap 0xfffffffffffff000 8K", line: 2, column: 11, "wraps past 2^64")
        expectError("spawn p\np: write 0x7ffffffff000 +8K", line: 2, column: 10, "beyond the x86_64 user address space")
        expectError("spawn p\np: mprotect 0x800000000000 4K r", line: 2, column: 13, "beyond the x86_64 user address space")
        expectError("machine arm64\nspawn p\np: madvise 0xffff000000000000 4K dontneed", line: 3, column: 12, "beyond the arm64 user address space")
        expectError("spawn p\np: mmap 0xfffffffffffff000 8K rw private anon fixed", line: 2, column: 9, "wraps past 2^64")
        expectError("spawn p\np: read 0xffffffffffffffff+1", line: 2, column: 9, "address overflow")
        expectError("spawn p\np: read 0x2000 0x1000", line: 2, column: 16, "not above the start")
    }

    @Test func missing_argument() {
        expectError("spawn p\np: munmap 0x1000", line: 2, column: 17, "missing argument: expected the length to unmap")
        expectError("spawn p\np: mmap", line: 2, column: 8, "missing argument")
        expectError("spawn p\np: mmap 4K", line: 2, column: 11, "missing argument: expected the protection")
        expectError("spawn p\np: mprotect 0x1000 4K", line: 2, column: 22, "missing argument: expected the protection")
        expectError("spawn p\np: madvise 0x1000 4K", line: 2, column: 21, "missing argument: expected the advice")
        expectError("spawn", line: 1, column: 6, "missing argument: expected a process name")
        expectError("spawn p\np: fork", line: 2, column: 8, "missing argument: expected the child's name")
        expectError("spawn p\nexpect p.minflt ==", line: 2, column: 19, "missing argument: expected the value")
        expectError("spawn p\nexpect p.minflt", line: 2, column: 16, "missing argument: expected a comparison")
        expectError("spawn p\np:", line: 2, column: 3, "missing argument")
        expectError("sysctl vm.swappiness=", line: 1, column: 22, "missing value")
        expectError("mark", line: 1, column: 5, "missing argument: expected a mark name")
    }

    @Test func unknown_counter() {
        expectError("spawn p\nexpect meminfo.AnonPage == 0", line: 2, column: 8, "did you mean meminfo.AnonPages")
        expectError("spawn p\nexpect vmstat.pgfaults == 0", line: 2, column: 8, "/proc/vmstat has no item 'pgfaults'")
        expectError("spawn p\nexpect p.status.VmRss == 0", line: 2, column: 8, "did you mean p.status.VmRSS")
        expectError("spawn p\nexpect p.rss == 0", line: 2, column: 8, "unknown counter 'p.rss'")
        expectError("spawn p\nexpect minflt == 0", line: 2, column: 8, "unknown counter 'minflt'")
        expectError("spawn p\nexpect vmstat.pgfault == 4K", line: 2, column: 26, "is a count")
        expectError("spawn p\nexpect vmstat.pgfault == 4 kB", line: 2, column: 28, "is a count, not a size")
        expectError("spawn p\nexpect p.errno == ENOTANERRNO", line: 2, column: 19, "unknown errno")
        expectError("spawn p\nexpect p.signal == SIGFOO", line: 2, column: 20, "unknown signal")
        expectError("spawn p\nexpect p.minflt = 3", line: 2, column: 17, "expected a comparison")
    }

    @Test func unknown_mark() {
        expectError("spawn p\nexpect p.minflt since m == 0", line: 2, column: 23, "unknown mark 'm'; marks so far: none yet")
        expectError("spawn p\nmark a\nexpect vmstat.pgfault since b == 0", line: 3, column: 29, "unknown mark 'b'; marks so far: a")
    }

    @Test func unknown_names() {
        expectError("sysctl vm.overcommit_memroy=0", line: 1, column: 8, "unknown sysctl 'vm.overcommit_memroy' (did you mean vm.overcommit_memory?)")
        expectError("sysctl vm.overcommit_memory=3", line: 1, column: 29, "out of range")
        expectError("sysctl vm.overcommit_memory=lots", line: 1, column: 29, "takes an integer")
        expectError("sysfs /sys/kernel/mm/transparent_hugepage/enabled=sometimes", line: 1, column: 51, "allowed: always, madvise, never")
        expectError("sysfs /sys/kernel/mm/nothing=1", line: 1, column: 7, "unknown sysfs file")
        expectError("spawn p\np: madvise 0x1000 4K dontneeed", line: 2, column: 22, "did you mean dontneed")
        expectError("spawn p\np: mmap 4K rw private anon sharde", line: 2, column: 28, "unknown mmap flag 'sharde'")
        expectError("spawn p\np: mprotect 0x1000 4K rwz", line: 2, column: 23, "unknown protection 'rwz'")
        expectError("spawn p\np: munmap buf 4K", line: 2, column: 11, "unknown name 'buf'")
        expectError("spawn p\ncat /proc/slabinfo", line: 2, column: 5, "cannot cat '/proc/slabinfo'")
        expectError("machine z80", line: 1, column: 9, "neither an architecture")
        expectError("machine flux=1", line: 1, column: 9, "unknown machine setting 'flux'")
        expectError("spawn p\nmachine x86_64", line: 2, column: 1, "must come before")
        expectError("machine x86_64\nmachine arm64", line: 2, column: 1, "a second machine line")
        expectError("machine memory=1M", line: 1, column: 16, "out of range")
        expectError("spawn p cpu=2", line: 1, column: 13, "this machine has CPUs 0...1")
        expectError("spawn p\np: x = munmap 0x1000 4K", line: 2, column: 8, "only mmap, mremap and brk return an address")
        expectError("spawn p\np: munmap 0x1000 4K extra", line: 2, column: 21, "unexpected 'extra'")
        expectError("spawn meminfo", line: 1, column: 7, "reserved")
        expectError("tunable mmu_gather_batch=1", line: 1, column: 9, "mmu_gather_batch: 1 is out of range 2...510")
        expectError("tunable flush=3", line: 1, column: 9, "unknown tunable")
        expectError("rcu qs cpu=9", line: 1, column: 12, "this machine has CPUs 0...1")
        expectError("rcu stop", line: 1, column: 5, "unknown rcu command")
        expectError("spawn p\nexpect tlb.ipis_sent.cpu7 == 1", line: 2, column: 8, "unknown counter")
    }

    @Test func shootdown_commands() throws {
        let s = try parse("""
            tunable tlb_single_page_flush_ceiling=0
            spawn p
            p: sleep
            p: gup 0x1000
            rcu sync
            rcu qs cpu=1
            expect tlb.ipis_sent.cpu1 == 0
            expect rcu.completed >= 0
            cat /sys/kernel/debug/mmsim/tlb
            """)
        #expect(s.statements.count == 9)
        #expect(s.statements[0].kind == .tunable(name: "tlb_single_page_flush_ceiling", value: 0))
        #expect(s.statements[4].kind == .rcu(cpu: nil))
        #expect(s.statements[5].kind == .rcu(cpu: 1))
    }

    @Test func errors_report_the_file_name() {
        do {
            _ = try ScenarioParser.parse("bogus", file: "examples/x.mmsim")
            Issue.record("no error")
        } catch let e as ScenarioError {
            #expect(e.description == "examples/x.mmsim:1:1: error: unknown command 'bogus'")
        } catch {
            Issue.record("\(error)")
        }
    }
}
