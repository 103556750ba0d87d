// drivers/base/node.c: /sys/devices/system/node/nodeN/meminfo and numastat.

extension Machine {
    /// node_read_meminfo(), the memory lines: the node's zones' managed and free pages.
    public func nodeMeminfoText(node n: Int) -> String {
        let zs = allocator.zones(ofNode: n)
        let total = zs.reduce(UInt64(0)) { $0 + $1.managedPages } * 4
        let free = UInt64(max(0, zs.reduce(Int64(0)) { $0 + $1.freePages })) * 4
        func line(_ name: String, _ kb: UInt64) -> String {
            "Node \(n) " + (name + ":").padding(toLength: 16, withPad: " ", startingAt: 0) + String(kb).leftPadded(8) + " kB\n"
        }
        return line("MemTotal", total) + line("MemFree", free) + line("MemUsed", total - min(free, total))
    }

    /// node_read_numastat(): the node's numa events under their sysfs names.
    public func nodeNumastatText(node n: Int) -> String {
        let a = allocator
        return "numa_hit \(a.numaEvent(.numaHit, node: n))\n"
            + "numa_miss \(a.numaEvent(.numaMiss, node: n))\n"
            + "numa_foreign \(a.numaEvent(.numaForeign, node: n))\n"
            + "interleave_hit \(a.numaEvent(.numaInterleave, node: n))\n"
            + "local_node \(a.numaEvent(.numaLocal, node: n))\n"
            + "other_node \(a.numaEvent(.numaOther, node: n))\n"
    }
}
