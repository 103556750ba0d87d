// The reclaim fidelity scenarios: every workload of ../shared/fidelity/reclaim-linux-6.18-x86_64.json,
// at every size there, as a scenario in scenarios/reclaim (written by tools/gen-reclaim-scenarios.py).
// While the model's reclaim is being tuned, each must parse and run without a scenario error, and
// fail exactly the expectations listed in scenarios/reclaim/KNOWN-FAILURES (written by
// `tools/gen-reclaim-scenarios.py --known-failures`): a failure not listed fails the test, and so
// does a listed expectation that passes, so the list only shrinks. Scenarios listed as SKIP (they
// do not finish in time) are not run.

import Foundation
import Testing
import MMSimTestSupport

@Suite struct ReclaimFidelityTests {
    /// The repository root (this file is Tests/MMSimTests/ReclaimFidelityTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("scenarios/reclaim")

    /// The scenario files, sorted (WORKLOAD-N.mmsim).
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        .filter { $0.hasSuffix(".mmsim") }
        .sorted()

    /// KNOWN-FAILURES: the failing expectations by file and line (with what the list says), and
    /// the scenarios not run (with why).
    struct KnownFailures {
        var lines: [String: [Int: String]] = [:]
        var skipped: [String: String] = [:]
    }

    static let known: KnownFailures = {
        var k = KnownFailures()
        let path = directory.appendingPathComponent("KNOWN-FAILURES").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return k }
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            let key = String(parts[0])
            let rest = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            if rest.hasPrefix("SKIP") {
                k.skipped[key] = String(rest.dropFirst(4)).trimmingCharacters(in: .whitespaces)
            } else if let colon = key.lastIndex(of: ":"), let n = Int(key[key.index(after: colon)...]) {
                k.lines[String(key[..<colon]), default: [:]][n] = rest
            }
        }
        return k
    }()

    @Test(arguments: files)
    func scenarioFailsOnlyTheKnownExpectations(_ name: String) throws {
        if Self.known.skipped[name] != nil { return }    // listed as SKIP: too slow to run yet
        let text = try String(contentsOfFile: Self.directory.appendingPathComponent(name).path, encoding: .utf8)
        let report: ScenarioReport
        do {
            report = try ScenarioRunner.run(text, file: "scenarios/reclaim/\(name)")
        } catch let e as ScenarioError {
            Issue.record("scenario error: \(e)")
            return
        }
        #expect(!report.expectations.isEmpty)
        var listed = Self.known.lines[name] ?? [:]
        for e in report.expectations {
            let known = listed.removeValue(forKey: e.location.line)
            if !e.passed && known == nil {
                Issue.record("\(e.location): \(e.statement): expected \(e.expected), actual \(e.actual)\(e.detail.map { " (\($0))" } ?? "") (not in KNOWN-FAILURES: fix the model, or run tools/gen-reclaim-scenarios.py --known-failures)")
            } else if e.passed, known != nil {
                Issue.record("\(e.location): \(e.statement) passes now (actual \(e.actual)): run tools/gen-reclaim-scenarios.py --known-failures to drop it from KNOWN-FAILURES")
            }
        }
        for (line, what) in listed.sorted(by: { $0.key < $1.key }) {
            Issue.record("KNOWN-FAILURES lists \(name):\(line) (\(what)), which is no expectation: run tools/gen-reclaim-scenarios.py --known-failures")
        }
    }

    /// The directory holds one scenario per workload and size of the fidelity file (when the
    /// file is there, next to the repository), and KNOWN-FAILURES names only those.
    @Test func everyWorkloadAndSizeHasAScenario() throws {
        #expect(!Self.files.isEmpty, "no scenarios in \(Self.directory.path): run tools/gen-reclaim-scenarios.py")
        let names = Set(Self.known.lines.keys).union(Self.known.skipped.keys)
        #expect(names.isSubset(of: Set(Self.files)), "KNOWN-FAILURES names \(names.subtracting(Self.files).sorted()): run tools/gen-reclaim-scenarios.py --known-failures")
        let json = Self.root.deletingLastPathComponent().appendingPathComponent("shared/fidelity/reclaim-linux-6.18-x86_64.json")
        guard let data = FileManager.default.contents(atPath: json.path) else { return }
        let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let workloads = try #require(top["workloads"] as? [String: Any])
        var expected: [String] = []
        for (w, v) in workloads {
            let results = try #require((v as? [String: Any])?["results"] as? [String: Any])
            expected += results.keys.map { "\(w)-\($0).mmsim" }
        }
        #expect(Self.files == expected.sorted(), "run tools/gen-reclaim-scenarios.py again")
    }
}
