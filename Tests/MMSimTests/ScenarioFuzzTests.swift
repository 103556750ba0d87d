// The parser under seeded mutation (issue 14, item 6): a bounded campaign over examples/ in
// every `swift test`; the unbounded one is the libFuzzer target mmsim-fuzz (docs/testing.md).

import Foundation
import Testing
import MMSimTestSupport
@testable import MMSim

@Suite struct ScenarioFuzzTests {
    static var examples: [[UInt8]] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".mmsim") }.sorted()
        return names.compactMap { FileManager.default.contents(atPath: dir.appendingPathComponent($0).path).map { [UInt8]($0) } }
    }

    @Test func everyExampleParsesCleanly() {
        let inputs = Self.examples
        #expect(inputs.count >= 10)
        for input in inputs { #expect(ScenarioFuzz.check(input) == nil) }
    }

    /// 2,500 seeded mutations of the examples: no crash (the test process would die), and every
    /// error names FILE:LINE:COL inside the input in one printable line.
    @Test func mutatedExamplesNeverCrashTheParserAndEveryErrorHasALocation() {
        let inputs = Self.examples
        var m = ScenarioMutator(seed: 14, corpus: inputs)
        var problems: [String] = []
        var errors = 0
        for i in 0..<2500 {
            let input = m.mutate(inputs[i % inputs.count])
            if let p = ScenarioFuzz.check(input) { problems.append("mutation \(i): \(p)") }
            if (try? ScenarioParser.parse(String(decoding: input, as: UTF8.self), file: "fuzz.mmsim")) == nil { errors += 1 }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
        // The mutations reach the error paths (most inputs are wrong somewhere) and not only them.
        #expect(errors > 500 && errors < 2500, "\(errors) of 2500 mutated inputs were errors")
    }

    /// The checker's contract on the answers themselves.
    @Test func checkRejectsAnErrorWithoutALocationInsideTheInput() {
        let e = ScenarioError(ScenarioLocation(file: "fuzz.mmsim", line: 7, column: 1), "x")
        #expect(ScenarioFuzz.problem(e, file: "fuzz.mmsim", lineCount: 3) != nil)
        let ok = ScenarioError(ScenarioLocation(file: "fuzz.mmsim", line: 2, column: 4), "unknown command 'x'")
        #expect(ScenarioFuzz.problem(ok, file: "fuzz.mmsim", lineCount: 3) == nil)
        #expect(ScenarioFuzz.check(Array("spawn p\np: x =\n".utf8)) == nil)
        #expect(ScenarioFuzz.check([0xFF, 0xFE, 0x00, 0x0A]) == nil)
    }
}
