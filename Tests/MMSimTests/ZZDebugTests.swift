import Testing
@testable import MMSim
@Suite struct ZZDebug {
    @Test func dbg() throws {
        let text = try String(contentsOfFile: "/work/main/examples/memcg-swap.mmsim", encoding: .utf8)
        let r = ScenarioRunner(try ScenarioParser.parse(text, file: "a.mmsim"), options: ScenarioOptions(checkInvariants: false))
        _ = try r.run()
        let mach = r.machine!
        for si in mach.swap.areas.compactMap({ $0 }) {
            for s in 1..<si.pages where si.table[s] & 1 == 1 {
                let p = mach.frames[PFN(si.table[s] >> 1)]
                let f = p.pointee.flags
                print("HIST slot", s, "ref=\(p.pointee.refcount) map=\(p.pointee.mapcount) lru=\(f.contains(.lru)) batched=\(f.contains(.lruBatched)) wb=\(f.contains(.writeback)) dirty=\(f.contains(.dirty)) cnt=\(si.map[s]) mapping=\(p.pointee.mapping) ra=\(f.contains(.readahead))")
            }
        }
    }
}
