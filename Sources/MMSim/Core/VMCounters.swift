// mm/vmstat.c: the global counters behind /proc/vmstat, one flat array indexed by VMStat.

/// The machine-wide values of every `VMStat` item (vm_zone_stat, vm_node_stat,
/// vm_numa_event, vm_events folded together, as /proc/vmstat shows them after
/// /proc/sys/vm/stat_refresh). Zone items are also kept per zone in `Zone.stats`.
public final class VMCounters {
    private let values = FixedArray<Int64>(repeating: 0, count: VMStat.allCases.count)

    public init() {}
    deinit { values.deallocate() }

    @inline(__always) public subscript(item: VMStat) -> Int64 {
        get { values[item.rawValue] }
        set { values[item.rawValue] = newValue }
    }

    /// count_vm_events() / mod_node_page_state()
    @inline(__always) public func add(_ item: VMStat, _ delta: Int64) { values[item.rawValue] &+= delta }

}
