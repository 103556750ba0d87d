// mmsim-bench: release-mode benchmarks guarding the budgets the issues name.
// Run: swift run -c release mmsim-bench [name...]

import Foundation
import MMSim

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Peak resident set of this process in bytes (getrusage ru_maxrss is in KiB on Linux).
func maxRSS() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}

struct Result {
    var name: String
    var value: Double
    var unit: String
    var target: String
    var ok: Bool
}

func report(_ r: Result) {
    let v = r.value >= 1e6 ? String(format: "%.1f M", r.value / 1e6) : String(format: "%.3f", r.value)
    print("\(r.name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(v) \(r.unit)   target \(r.target)  \(r.ok ? "ok" : "MISSED")")
}

func benchAllocFree() throws {
    let m = try Machine(.reference)
    let a = m.allocator!
    // Warm the pcp lists.
    for _ in 0..<1000 { if let p = a.allocPages(.highuserMovable) { a.freePages(p) } }
    let n = 20_000_000
    let t0 = now()
    for _ in 0..<n {
        let p = a.allocPages(.highuserMovable)!
        a.freePages(p)
    }
    let dt = now() - t0
    report(Result(name: "order-0 alloc+free pair (pcp hot)", value: Double(n) / dt, unit: "pairs/s", target: ">= 20 M/s", ok: Double(n) / dt >= 20e6))

    // A burst that spills through the pcp high mark into the buddy lists and back.
    var held: [PFN] = []
    held.reserveCapacity(100_000)
    let t1 = now()
    for _ in 0..<20 {
        for _ in 0..<100_000 { held.append(a.allocPages(.highuserMovable)!) }
        for p in held { a.freePages(p) }
        held.removeAll(keepingCapacity: true)
    }
    let dt1 = now() - t1
    report(Result(name: "order-0 alloc+free, 100k bursts (buddy)", value: 2e6 / dt1, unit: "pairs/s", target: "(info)", ok: true))
}

func benchBoot1TiB() throws {
    var c = MachineConfig.large5Level
    c.memory = Size.TiB
    let rss0 = maxRSS()
    let t0 = now()
    let m = try Machine(c)
    let dt = now() - t0
    let rss = maxRSS()
    blackHole(m)
    report(Result(name: "boot a 1 TiB machine", value: dt * 1000, unit: "ms", target: "< 1000 ms", ok: dt < 1))
    report(Result(name: "  host memory (peak RSS of the process)", value: Double(rss) / 1048576, unit: "MiB", target: "< 256 MiB", ok: rss < 256 << 20))
    report(Result(name: "  struct page records materialized", value: Double(m.hostMemoryBytes) / 1048576, unit: "MiB", target: "(info, RSS before boot \(rss0 >> 20) MiB)", ok: true))
}

let all: [(String, () throws -> Void)] = [
    ("boot", benchBoot1TiB),
    ("alloc", benchAllocFree),
]
let wanted = CommandLine.arguments.dropFirst()
print("mmsim-bench (release: \(_isDebugAssertConfiguration() ? "NO, debug build" : "yes"))")
for (name, f) in all where wanted.isEmpty || wanted.contains(name) {
    try f()
}
