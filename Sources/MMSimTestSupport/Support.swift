// Shared test support: small machines, seeded generators, the invariant checker after every step.

@_exported import MMSim

public enum TestMachines {
    /// A small x86-64 machine (256 MiB, 1 CPU) booted and checked.
    public static func small(cpus: Int = 1, memory: UInt64 = 256 * Size.MiB, arch: Architecture = .x86_64) throws -> Machine {
        var c = MachineConfig.small
        c.cpus = cpus
        c.memory = memory
        c.arch = arch
        let m = try Machine(c)
        try m.checkInvariants()
        return m
    }
}

extension Machine {
    /// Runs `body` and then the CONFIG_DEBUG_VM-style checker; tests call this around every operation.
    @discardableResult
    public func checked<T>(_ body: () throws -> T) throws -> T {
        let r = try body()
        try checkInvariants()
        return r
    }
}
