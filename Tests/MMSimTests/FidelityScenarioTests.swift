// The fidelity scenarios: every workload of ../shared/fidelity/linux-6.18-x86_64.json, at every
// size there, as a scenario in scenarios/fidelity (written by tools/gen-fidelity-scenarios.py).
// Each runs on the reference machine and must match the kernel's counters phase by phase:
// no failed expectation, no scenario error, and no failed syscall or signal (wl.c dies on any).

import Foundation
import Testing
import MMSimTestSupport

@Suite struct FidelityScenarioTests {
    /// The repository root (this file is Tests/MMSimTests/FidelityScenarioTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("scenarios/fidelity")

    /// The scenario files, sorted (WORKLOAD-N.mmsim).
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        .filter { $0.hasSuffix(".mmsim") }
        .sorted()

    @Test(arguments: files)
    func scenarioMatchesLinux(_ name: String) throws {
        let text = try String(contentsOfFile: Self.directory.appendingPathComponent(name).path, encoding: .utf8)
        let report: ScenarioReport
        do {
            report = try ScenarioRunner.run(text, file: "scenarios/fidelity/\(name)")
        } catch let e as ScenarioError {
            Issue.record("scenario error: \(e)")
            return
        }
        for e in report.expectations where !e.passed {
            Issue.record("\(e.location): \(e.statement): expected \(e.expected), actual \(e.actual)\(e.detail.map { " (\($0))" } ?? "")")
        }
        #expect(report.failedCount == 0)
        for s in report.failedSyscalls {
            Issue.record("\(s.location): \(s.process): \(s.call) failed with \(s.errno.name)")
        }
        for s in report.signals {
            Issue.record("\(s.location): \(s.process) got \(s.signal) at 0x\(String(s.address, radix: 16))")
        }
        // hugetlb's expects are all commented out until HugeTLB pools are modelled.
        #expect(!report.expectations.isEmpty || name.hasPrefix("hugetlb-"))
    }

    /// The directory holds one scenario per workload and size of the fidelity file (when the
    /// file is there, next to the repository), and nothing else.
    @Test func everyWorkloadAndSizeHasAScenario() throws {
        #expect(!Self.files.isEmpty, "no scenarios in \(Self.directory.path): run tools/gen-fidelity-scenarios.py")
        let json = Self.root.deletingLastPathComponent().appendingPathComponent("shared/fidelity/linux-6.18-x86_64.json")
        guard let data = FileManager.default.contents(atPath: json.path) else { return }
        let top = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let workloads = try #require(top["workloads"] as? [String: Any])
        var expected: [String] = []
        for (w, v) in workloads {
            let results = try #require((v as? [String: Any])?["results"] as? [String: Any])
            expected += results.keys.map { "\(w)-\($0).mmsim" }
        }
        #expect(Self.files == expected.sorted(), "run tools/gen-fidelity-scenarios.py again")
    }
}
