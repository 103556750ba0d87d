import Testing
import MMSimTestSupport
import Foundation

@Test func zzScratch() throws {
    for mem in [64 * Size.MiB, 256 * Size.MiB, 4 * Size.GiB] {
        let t0 = Date()
        let m = try TestMachines.small(memory: mem)
        let t1 = Date()
        try m.checkInvariants()
        let t2 = Date()
        print("boot \(t1.timeIntervalSince(t0)) check \(t2.timeIntervalSince(t1))")
        print(m.zoneSummaryText())
        print(m.buddyinfoText())
        print("init", m.kernelInit, "pcp", m.zones.map { $0.pcp.map(\.count) })
        print(m.log.filter { $0.contains("Memory") || $0.contains("raising") })
    }
}
