import Testing
import MMSim
@Test func boots() throws { _ = try Machine(.small) }
