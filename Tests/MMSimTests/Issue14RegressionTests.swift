// Regression tests for issue 14 (bad input, random workloads): each is named after what it
// regresses, and runs the one- or two-line scenario that found it, with the checker on.

import Testing
import MMSimTestSupport

@Suite struct Issue14RegressionTests {
    func run(_ text: String, trace: Bool = false) throws -> ScenarioReport {
        try ScenarioRunner.run(text, file: "t.mmsim", options: ScenarioOptions(trace: trace, checkInvariants: true))
    }

    /// The ScenarioError a scenario stops with (parsing or running).
    func scenarioError(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> ScenarioError? {
        do {
            _ = try run(text)
        } catch let e as ScenarioError {
            return e
        } catch {
            Issue.record("expected a ScenarioError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
        Issue.record("expected a ScenarioError, got success", sourceLocation: sourceLocation)
        return nil
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
}
