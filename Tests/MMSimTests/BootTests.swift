import Testing
import MMSim
@Test func bootsCheckable() throws {
    for c in [MachineConfig.small, .reference, .arm64] {
        let m = try Machine(c)
        try m.checkInvariants()
    }
}
