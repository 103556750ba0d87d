// Running scenarios: the bundled examples pass, expectations report expected and actual,
// failing syscalls and signals do not stop the run, output is deterministic.

import Foundation
import Testing
import MMSimTestSupport

@Suite struct ScenarioRunnerTests {
    /// The repository root (this file is Tests/MMSimTests/ScenarioRunnerTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func run(_ text: String, trace: Bool = false) throws -> ScenarioReport {
        try runCheckedScenario(text, trace: trace)
    }

    func runtimeError(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ScenarioError? {
        expectScenarioError(sourceLocation: sourceLocation) { _ = try run(text) }
    }

    static let small = "machine preset=small\n"

    // MARK: Examples

    @Test func builtInExampleIsTheFileOnDisk() throws {
        let path = Self.root.appendingPathComponent(ScenarioExamples.forkCOWPath).path
        let onDisk = try String(contentsOfFile: path, encoding: .utf8)
        #expect(onDisk == ScenarioExamples.forkCOW, "regenerate ScenarioExamples.swift from examples/fork-cow.mmsim")
        let fromRoot = ScenarioExamples.defaultScenario(currentDirectory: Self.root.path) { try? String(contentsOfFile: $0, encoding: .utf8) }
        #expect(fromRoot.file == "examples/fork-cow.mmsim")
        let elsewhere = ScenarioExamples.defaultScenario(currentDirectory: "/nonexistent") { _ in nil }
        #expect(elsewhere.text == ScenarioExamples.forkCOW && elsewhere.file.hasSuffix("(built in)"))
    }

    @Test func forkCOWExamplePasses() throws {
        let r = try ScenarioRunner.run(ScenarioExamples.forkCOW, file: "fork-cow.mmsim")
        #expect(r.passed, "\(r.summaryText())")
        #expect(r.expectations.count >= 20)
        #expect(r.processes.map(\.name) == ["parent", "child"])
        #expect(r.processes[1].minflt == 16)
    }

    @Test(arguments: ["zero-page", "populate", "mprotect-split", "madvise-dontneed", "mremap-grow", "brk", "mlock", "file-fault-around", "thp", "page-cache", "threads-shootdown",
                      "bad-access", "syscall-errors", "rmap", "oom-killer", "reclaim-clean-cache", "memcg-swap", "thrashing"])
    func examplePasses(_ name: String) throws {
        try Self.runExample(name)
    }

    static func runExample(_ name: String) throws {
        let path = Self.root.appendingPathComponent("examples/\(name).mmsim").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // The reference machine is large: check the invariants once at the end, not after
        // every statement (`mmsim run --check` does that).
        let runner = ScenarioRunner(try ScenarioParser.parse(text, file: "examples/\(name).mmsim"))
        let r = try runner.run()
        try runner.machine.checkInvariants()
        #expect(r.passed, "\(r.summaryText())")
        #expect(!r.expectations.isEmpty)
    }

    // MARK: Expectations

    @Test func failedExpectationReportsExpectedAndActual() throws {
        let r = try run(Self.small + """
            spawn p
            mark m
            p: buf = mmap 64K rw private anon
            p: write buf +64K
            expect p.minflt since m == 16
            expect p.minflt since m == 15
            expect meminfo.AnonPages since m < 64 kB
            """)
        #expect(!r.passed && r.failedCount == 2)
        let f = r.expectations.filter { !$0.passed }
        #expect(f[0].location.line == 7 && f[0].expected == "== 15" && f[0].actual == "16")
        #expect(f[0].detail == "now 16, at mark m 0")
        #expect(f[1].expected == "< 64 kB" && f[1].actual == "64 kB")
        let text = r.text()
        #expect(text.contains("FAILED t.mmsim:7:1: expect p.minflt since m == 15"))
        #expect(text.contains("expected: == 15") && text.contains("actual:   16"))
        #expect(text.contains("result: FAIL"))
    }

    @Test func aProcessBornAfterTheMarkCountsFromZero() throws {
        let r = try run(Self.small + """
            spawn parent
            parent: buf = mmap 16K rw private anon
            parent: write buf +16K
            mark before
            parent: fork child
            child: write buf +16K
            expect child.minflt since before == 4
            expect child.maps.count since before >= 1
            """)
        #expect(r.passed, "\(r.summaryText())")
    }

    @Test func markCanBeSetAgain() throws {
        let r = try run(Self.small + """
            spawn p
            p: buf = mmap 64K rw private anon
            mark m
            p: write buf +32K
            expect p.minflt since m == 8
            mark m
            p: write buf +64K
            expect p.minflt since m == 8
            """)
        #expect(r.passed, "\(r.summaryText())")
    }

    // MARK: Failing syscalls and signals go on

    @Test func aPebibyteMmapIsENOMEMAndTheRunGoesOn() throws {
        let r = try run(Self.small + """
            spawn p
            p: mmap 1P rw private anon
            p: buf = mmap 8K rw private anon
            p: write buf +8K
            expect p.minflt == 2
            """)
        #expect(r.passed)
        #expect(r.failedSyscalls.count == 1)
        #expect(r.failedSyscalls[0].errno == .ENOMEM && r.failedSyscalls[0].location.line == 3)
        #expect(r.text().contains("failed syscalls: 1\n  t.mmsim:3:1: p[1]: mmap(NULL, 1125899906842624"))
        let r2 = try run(Self.small + "spawn p\np: mmap 1P rw private anon\nexpect p.errno == ENOMEM\nexpect p.errno != ok")
        #expect(r2.passed)
    }

    @Test func segfaultIsDeliveredAndTheRunGoesOn() throws {
        let r = try run(Self.small + """
            spawn bad
            bad: write 0x200000000000
            bad: write 0x200000000000
            spawn good
            good: buf = mmap 4K rw private anon
            good: write buf
            expect bad.signal == SIGSEGV
            expect good.signal == none
            expect good.minflt == 1
            """)
        #expect(r.passed, "\(r.summaryText())")
        #expect(r.signals.count == 1 && r.signals[0].signal == "SIGSEGV" && r.signals[0].address == 0x2000_0000_0000)
        // The second write is not run: the task is dead.
        #expect(r.output.contains { if case .warning(let l, let m) = $0 { l.line == 4 && m.contains("killed by SIGSEGV") } else { false } })
    }

    @Test func errnoIsTheLastSyscalls() throws {
        let r = try run(Self.small + """
            spawn p
            p: mmap 0x100000000000 4K rw private anon fixed_noreplace
            p: mmap 0x100000000000 4K rw private anon fixed_noreplace
            expect p.errno == EEXIST
            p: munmap 0x100000000000 4K
            expect p.errno == ok
            """)
        #expect(r.passed, "\(r.summaryText())")
    }

    // MARK: Scenario errors at run time

    @Test func variableOfAFailedMmap() {
        let e = runtimeError(Self.small + "spawn p\np: buf = mmap 1P rw private anon\np: write buf")
        #expect(e?.location.line == 4 && e?.location.column == 10)
        #expect(e?.message.contains("the call that binds it at line 3 failed") == true)
    }

    @Test func waitThatWouldBlockForever() {
        let e = runtimeError(Self.small + "spawn p\np: fork c\np: wait c")
        #expect(e?.location.line == 4)
        #expect(e?.message.contains("block forever") == true)
        let e2 = runtimeError(Self.small + "spawn p\np: wait")
        #expect(e2?.message.contains("no child") == true)
    }

    @Test func symbolicAddressOverflow() {
        let e = runtimeError(Self.small + "spawn p\np: buf = mmap 4K rw private anon\np: munmap buf+0x7fff00000000 1G")
        #expect(e?.location.line == 4 && e?.location.column == 11)
        #expect(e?.message.contains("address overflow") == true)
    }

    @Test func forkingOntoALiveName() {
        let e = runtimeError(Self.small + "spawn p\np: fork c\np: fork c")
        #expect(e?.message.contains("already exists") == true)
    }

    // MARK: Output

    @Test func catPrintsTheViews() throws {
        let r = try run(Self.small + """
            spawn p
            echo -- after spawn --
            cat /proc/meminfo
            cat /proc/p/status /proc/1/maps
            cat /proc/buddyinfo
            """)
        let t = r.text()
        #expect(t.contains("-- after spawn --\n\n$ cat /proc/meminfo\nMemTotal:"))
        #expect(t.contains("$ cat /proc/p/status\nName:\tp\n"))
        #expect(t.contains("$ cat /proc/1/maps\n"))
        #expect(t.contains("$ cat /proc/buddyinfo\nNode 0, zone"))
        #expect(t.contains("== summary: t.mmsim =="))
    }

    @Test func traceLinesAreStraceLike() throws {
        let r = try run(Self.small + "spawn p\np: buf = mmap 0x100000000000 4K rw private anon fixed_noreplace\np: brk +4K", trace: true)
        let t = r.text()
        #expect(t.contains("p[1]: mmap(0x100000000000, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = 0x100000000000"))
        #expect(t.contains("p[1]: sbrk(+4096)"))
    }

    @Test func jsonIsDeterministicWithSortedKeys() throws {
        let text = Self.small + """
            spawn p
            p: buf = mmap 64K rw private anon
            p: write buf +64K
            p: mmap 1P rw private anon
            cat /proc/meminfo
            expect p.minflt == 16
            expect p.status.VmRSS >= 1M
            """
        let a = try run(text).jsonText()
        let b = try run(text).jsonText()
        #expect(a == b)
        let obj = try JSONSerialization.jsonObject(with: Data(a.utf8)) as! [String: Any]
        #expect(Set(obj.keys) == ["file", "machine", "views", "expectations", "failed_syscalls", "signals", "processes", "counters", "summary"])
        let exps = obj["expectations"] as! [[String: Any]]
        #expect(exps.count == 2 && exps[1]["passed"] as? Bool == false && exps[1]["expected"] as? String == ">= 1024 kB")
        let views = obj["views"] as! [[String: Any]]
        #expect(views.count == 1 && views[0]["path"] as? String == "/proc/meminfo")
        let counters = obj["counters"] as! [String: Any]
        #expect((counters["vmstat"] as! [String: Any])["pgfault"] != nil)
        // Keys come out sorted.
        let topKeys = a.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { String($0.dropFirst(3).prefix { $0 != "\"" }) }
        #expect(topKeys == topKeys.sorted())
    }

    @Test func sysctlsAfterBoot() throws {
        let r = try run(Self.small + """
            spawn p
            sysctl vm.min_free_kbytes=8192
            sysctl vm.stat_interval=2
            sysctl vm.swappiness=10
            """)
        // vm.stat_interval is accepted but not modelled (a warning); vm.swappiness is modelled.
        #expect(r.output.contains { if case .warning(let l, let m) = $0 { l.line == 4 && m.contains("vm.stat_interval") } else { false } })
        #expect(!r.output.contains { if case .warning(let l, _) = $0 { l.line == 5 } else { false } })
        #expect(!r.output.contains { if case .warning(let l, _) = $0 { l.line == 3 } else { false } })
    }
}
