import Testing
import MMSimTestSupport
import Foundation

@Test func zzScratch() throws {
    for c in [MachineConfig.reference, .large5Level, .arm64] {
        let t0 = Date()
        let m = try Machine(c)
        let t1 = Date()
        try m.checkInvariants()
        let t2 = Date()
        print("boot \(t1.timeIntervalSince(t0)) check \(t2.timeIntervalSince(t1)) host \(m.hostMemoryBytes)")
        print(m.zoneSummaryText())
        print("init", m.kernelInit, "pcp", m.zones.map { $0.pcp.map(\.count).reduce(0,+) })
        print(m.log.filter { $0.contains("Memory") || $0.contains("raising") || $0.contains("HugeTLB") })
    }
}
