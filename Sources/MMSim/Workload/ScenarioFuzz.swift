// Fuzzing the scenario language: what one input must satisfy (no crash; every error a
// FILE:LINE:COL: error: sentence on one printable line), and seeded mutations of valid scenarios.
//
// The libFuzzer target (Sources/mmsim-fuzz) calls `ScenarioFuzz.check` on each input; the test
// suite runs a bounded, seeded `ScenarioMutator` campaign over examples/ (docs/testing.md).

public enum ScenarioFuzz {
    /// Parses `bytes` as a scenario (UTF-8, invalid sequences replaced) and returns what is
    /// wrong with the answer, or nil: an error must name a line and a column inside the input
    /// and print as `FILE:LINE:COL: error: MESSAGE` without control characters. A crash is a
    /// failure too, found by the caller's process dying. With `run`, a scenario that parses is
    /// also run (with the checker) when it is small enough to run quickly.
    public static func check(_ bytes: [UInt8], file: String = "fuzz.mmsim", run: Bool = false) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
        do {
            let s = try ScenarioParser.parse(text, file: file)
            if run, s.statements.count <= 64, s.machine.memory <= 1 << 30, !s.statements.contains(where: Self.costly) {
                do {
                    _ = try ScenarioRunner(s, options: ScenarioOptions(checkInvariants: true)).run()
                } catch let e as ScenarioError {
                    if e.message.contains("broke an invariant") { return "invariant: \(e)" }
                    return problem(e, file: file, lineCount: lineCount)
                } catch {
                    return "the runner threw a non-scenario error: \(error)"
                }
            }
            return nil
        } catch let e as ScenarioError {
            return problem(e, file: file, lineCount: lineCount)
        } catch {
            return "the parser threw a non-scenario error: \(error)"
        }
    }

    static func problem(_ e: ScenarioError, file: String, lineCount: Int) -> String? {
        let l = e.location
        if l.file != file { return "error names file '\(l.file)', not '\(file)': \(e)" }
        if l.line < 1 || l.line > lineCount { return "error line \(l.line) outside 1...\(lineCount): \(e)" }
        if l.column < 1 { return "error column \(l.column) < 1: \(e)" }
        let d = e.description
        if !d.hasPrefix("\(file):\(l.line):\(l.column): error: ") { return "error not in FILE:LINE:COL: error: form: \(d)" }
        if e.message.isEmpty { return "empty error message at \(l)" }
        if d.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            return "control character in the error: \(d.debugDescription)"
        }
        return nil
    }

    /// Statements whose cost grows with a number in them (a 1 TiB file, a huge pool): not run.
    static func costly(_ s: Statement) -> Bool {
        switch s.kind {
        case .fileCreate(_, let size, _): size > 64 << 20
        case .fileIO(_, _, let off, let len): off > 64 << 20 || len > 64 << 20
        case .action(_, .access(let a), _):
            if case .length(let n) = a.end { n / max(a.stride, 1) > 1 << 14 } else { true }
        case .sysctl, .sysfs: true
        case .swap(_, _, let size, _): size > 64 << 20
        default: false
        }
    }
}

/// Seeded mutations of scenario text, byte- and word-level (as libFuzzer's and AFL's
/// mutators do), with a dictionary of the language's words and of boundary numbers.
public struct ScenarioMutator {
    public var rng: SeededGenerator
    /// Other inputs to splice lines from.
    public var corpus: [[UInt8]]

    public init(seed: UInt64, corpus: [[UInt8]]) {
        rng = SeededGenerator(seed: seed)
        self.corpus = corpus
    }

    public static let dictionary: [String] = [
        "machine", "spawn", "sysctl", "sysfs", "file", "create", "read", "write", "truncate", "drop", "sync",
        "mark", "expect", "cat", "echo", "tunable", "rcu", "qs", "poison", "swapon", "swapoff", "cgroup", "set", "attach",
        "p:", "parent:", "child:", "x =", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mlock", "munlock",
        "mlockall", "fork", "thread", "exit", "wait", "execve", "exec", "touch", "gup", "move_pages", "hwpoison",
        "oom_score_adj", "since", "in", "==", "!=", ">=", "<", "kB", "pages", "+", "-", "*", "=", ";", "#", ":", "..",
        "alignup(", ")", ",", "0", "1", "-1", "4K", "2M", "1G", "1T", "1P", "16E", "0x", "0xffffffffffffffff",
        "18446744073709551615", "18446744073709551616", "9223372036854775807", "9223372036854775808", "99999999999999999999",
        "rw", "none", "private", "shared", "anon", "fixed", "hugetlb", "populate", "file=", "offset=", "cpu=", "node=",
        "stride=", "maymove", "fixed=", "preset=", "arch=arm64", "memory=", "cpus=", "nodes=2", "pcid=off", "hugepages=",
        "meminfo.", "vmstat.", ".status.", ".errno", ".signal", ".maps.count", "/proc/", "/maps", "/pagemap/", "/vmemmap/",
        "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "vm.nr_hugepages=", "memory.limit_in_bytes=",
        "\u{0}", "\u{1b}[31m", "\r", "\t", "\u{7f}", "\u{85}", "é", "\u{FEFF}", "\u{301}",
    ]

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }

    /// One to four mutations of `input`.
    public mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0...below(4) { b = mutateOnce(b) }
        return b.count > 1 << 16 ? Array(b.prefix(1 << 16)) : b
    }

    mutating func mutateOnce(_ input: [UInt8]) -> [UInt8] {
        var b = input
        let word = Array(Self.dictionary[below(Self.dictionary.count)].utf8)
        switch below(10) {
        case 0 where !b.isEmpty: // flip a bit
            let i = below(b.count)
            b[i] ^= 1 << UInt8(below(8))
        case 1: // insert a random byte
            b.insert(UInt8(truncatingIfNeeded: rng.next()), at: below(b.count + 1))
        case 2 where !b.isEmpty: // delete a range
            let i = below(b.count)
            b.removeSubrange(i..<min(b.count, i + 1 + below(16)))
        case 3, 4: // insert a dictionary word
            b.insert(contentsOf: word, at: below(b.count + 1))
        case 5, 6: // replace a word (between blanks) with a dictionary word
            let spaces = b.indices.filter { b[$0] == 0x20 || b[$0] == 0x0A }
            guard spaces.count >= 2 else { return b + word }
            let k = below(spaces.count - 1)
            b.replaceSubrange((spaces[k] + 1)..<spaces[k + 1], with: word)
        case 7: // duplicate or drop a line
            var lines = b.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            guard !lines.isEmpty else { return b }
            let i = below(lines.count)
            if below(2) == 0 { lines.insert(lines[i], at: below(lines.count + 1)) } else { lines.remove(at: i) }
            b = Array(lines.joined(separator: [0x0A]))
        case 8: // splice a line of another input
            guard !corpus.isEmpty else { return b }
            let other = corpus[below(corpus.count)].split(separator: 0x0A, omittingEmptySubsequences: false)
            guard !other.isEmpty else { return b }
            var lines = b.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            lines.insert(Array(other[below(other.count)]), at: below(lines.count + 1))
            b = Array(lines.joined(separator: [0x0A]))
        default: // repeat a run (long words, deep nesting)
            guard !b.isEmpty else { return word }
            let i = below(b.count)
            let run = Array(b[i..<min(b.count, i + 1 + below(8))])
            let times = 1 + below(below(4) == 0 ? 500 : 8)
            b.insert(contentsOf: Array([[UInt8]](repeating: run, count: times).joined()), at: i)
        }
        return b
    }
}
