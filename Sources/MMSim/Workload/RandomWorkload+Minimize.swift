// Minimizing a failing scenario: delta debugging (Zeller's ddmin) over its statement lines,
// keeping a candidate only when the same failure (the same invariant rule, or crash) recurs.
//
// The machine line always stays. Removing a line that creates a name (`spawn P`, `P: fork C`,
// `P: thread T`, `P: V = mmap ...`, `file create F`, `cgroup create G`) removes every line that
// uses the name too, so candidates stay well-formed instead of failing with another error.

extension RandomWorkload {
    /// The shortest text ddmin finds that still fails like `failure` under `reproduces`
    /// (by default: replaying it in process with the checker on, with `options`).
    /// `maxRuns` bounds the replays (each costs a run up to the failing statement).
    public static func minimize(_ text: String, failure: WorkloadFailure,
                                options: ScenarioOptions = ScenarioOptions(checkInvariants: true),
                                maxRuns: Int = 2000,
                                reproduces: ((String) -> WorkloadFailure?)? = nil) -> String {
        let replay = reproduces ?? { RandomWorkload.failure(of: $0, options: options) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last?.isEmpty == true { lines.removeLast() }
        // Nothing after the failing statement matters.
        if failure.line >= 1 && failure.line < lines.count { lines.removeSubrange(failure.line...) }
        var m = ScenarioMinimizer(lines: lines)
        var runs = 0
        func test(_ keep: [Bool]) -> Bool {
            guard runs < maxRuns else { return false }
            runs += 1
            guard let f = replay(m.text(keep)) else { return false }
            return f.sameKind(as: failure)
        }
        var keep = [Bool](repeating: true, count: lines.count)
        var n = 2
        while true {
            let live = keep.indices.filter { keep[$0] && !m.pinned($0) }
            if live.isEmpty || runs >= maxRuns { break }
            let chunk = max(1, (live.count + n - 1) / n)
            var reduced = false
            var i = 0
            while i < live.count {
                var candidate = keep
                for j in live[i..<min(i + chunk, live.count)] { candidate[j] = false }
                m.closeOver(&candidate)
                if candidate != keep && test(candidate) {
                    keep = candidate
                    reduced = true
                    n = max(n - 1, 2)
                    break
                }
                i += chunk
            }
            if !reduced {
                if chunk == 1 { break }
                n = min(n * 2, live.count)
            }
        }
        return m.text(keep)
    }
}

/// The lines of a scenario and the names each defines and uses.
struct ScenarioMinimizer {
    var lines: [String]
    var defines: [[String]] = []
    var uses: [[String]] = []

    init(lines: [String]) {
        self.lines = lines
        for l in lines {
            let words = ScenarioParser.tokenize(l).flatMap { $0 }.map(\.text)
            var d: [String] = []
            var u: [String] = []
            if words.count >= 2, words[0] == "spawn" { d.append(words[1]) }
            if words.count >= 3, words[0] == "file", words[1] == "create" { d.append(words[2]) }
            if words.count >= 3, words[0] == "cgroup", words[1] == "create" { d.append(words[2]) }
            if let f = words.first, f.hasSuffix(":") {
                u.append(String(f.dropLast()))
                if words.count >= 3, ["fork", "thread"].contains(words[1]) { d.append(words[2]) }
                if words.count >= 3, words[2] == "=" { d.append(words[1]) }
            } else if let f = words.first, let colon = f.firstIndex(of: ":"), !f.hasPrefix("/") {
                u.append(String(f[..<colon]))
            }
            for w in words {
                var piece = ""
                for ch in w {
                    if "+-*(),=/:".contains(ch) {
                        if !piece.isEmpty { u.append(piece) }
                        piece = ""
                    } else {
                        piece.append(ch)
                    }
                }
                if !piece.isEmpty { u.append(piece) }
            }
            defines.append(d)
            uses.append(u.filter { !d.contains($0) })
        }
    }

    /// The machine line stays (the workload means nothing on another machine).
    func pinned(_ i: Int) -> Bool {
        ScenarioParser.tokenize(lines[i]).first?.first?.text == "machine"
    }

    /// Drops every kept line that uses a name only dropped lines define.
    func closeOver(_ keep: inout [Bool]) {
        var changed = true
        while changed {
            changed = false
            // Sets for membership only; nothing iterates them.
            var gone: [String] = []
            var alive = Set<String>()
            for i in lines.indices {
                if keep[i] { alive.formUnion(defines[i]) } else { gone += defines[i] }
            }
            let missing = Set(gone.filter { !alive.contains($0) })
            guard !missing.isEmpty else { return }
            for i in lines.indices where keep[i] && uses[i].contains(where: { missing.contains($0) }) {
                keep[i] = false
                changed = true
            }
        }
    }

    func text(_ keep: [Bool]) -> String {
        lines.indices.filter { keep[$0] }.map { lines[$0] }.joined(separator: "\n") + "\n"
    }
}
