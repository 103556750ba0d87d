// The model's view of TLB shootdown: each CPU's cpu_tlbstate, the flush/IPI/gather statistics
// and RCU (debugfs-like; Linux shows parts of it in /proc/interrupts "TLB" and tracepoints).

extension Machine {
    /// The counters `tlb.NAME` and `rcu.NAME` a scenario can expect on.
    public func shootdownCounter(_ name: String) -> Int64? {
        let s = shootdown
        func perCPU(_ prefix: String, _ values: [UInt64]) -> Int64? {
            guard name.hasPrefix(prefix), let n = Int(name.dropFirst(prefix.count)), n >= 0 && n < values.count else { return nil }
            return Int64(values[n])
        }
        if let v = perCPU("tlb.ipis_sent.cpu", s.ipisSent) ?? perCPU("tlb.ipis_received.cpu", s.ipisReceived) { return v }
        switch name {
        case "tlb.ipis_sent": return Int64(s.ipisSent.reduce(0, +))
        case "tlb.ipis_received": return Int64(s.ipisReceived.reduce(0, +))
        case "tlb.range_flushes": return Int64(s.rangeFlushes)
        case "tlb.full_flushes": return Int64(s.fullFlushes)
        case "tlb.tlbi_va": return Int64(s.tlbiVA)
        case "tlb.tlbi_asid": return Int64(s.tlbiASID)
        case "tlb.gathers": return Int64(s.gathers)
        case "tlb.gather_batches": return Int64(s.gatherBatches)
        case "tlb.gather_flushes": return Int64(s.gatherFlushes)
        case "tlb.tables_rcu": return Int64(s.tablesRCU)
        case "tlb.tables_sync": return Int64(s.tablesSync)
        case "tlb.lazy_cpus": return Int64((0..<cpuCount).filter { tlbs.lazy[$0] }.count)
        case "rcu.completed": return Int64(rcu.completed)
        case "rcu.pending": return Int64(rcu.pendingCallbacks)
        case "rcu.invoked": return Int64(rcu.invoked)
        default: return nil
        }
    }

    /// /sys/kernel/debug/mmsim/tlb
    public func tlbStateText() -> String {
        var out = "tlb_single_page_flush_ceiling \(tunables.flushCeiling)\n"
        for c in 0..<config.cpus {
            let st = tlbs.snapshot(c)
            let mm = st.loadedMM.map { "mm \($0.id) (ctx \($0.ctxID), gen \($0.tlbGen))" } ?? "init_mm"
            var line = "cpu\(c): loaded \(mm)\(st.isLazy ? " lazy" : "")"
            if arch.isX86 {
                line += " asid \(st.loadedSlot) next \(st.nextASID) ctxs"
                for s in 0..<tlbNrDynASIDs { line += " \(st.ctxID[s]):\(st.ctxGen[s])" }
            }
            line += " ipis_sent \(shootdown.ipisSent[c]) ipis_received \(shootdown.ipisReceived[c])"
            line += " tlb_entries \(cpus[c].tlb.entryCount)"
            out += line + "\n"
        }
        let s = shootdown
        out += "range_flushes \(s.rangeFlushes)\nfull_flushes \(s.fullFlushes)\n"
        if !arch.isX86 { out += "tlbi_va \(s.tlbiVA)\ntlbi_asid \(s.tlbiASID)\n" }
        out += "gathers \(s.gathers)\ngather_batches \(s.gatherBatches)\ngather_flushes \(s.gatherFlushes)\n"
        out += "tables_rcu \(s.tablesRCU)\ntables_sync \(s.tablesSync)\n"
        out += "rcu_completed \(rcu.completed)\nrcu_pending_callbacks \(rcu.pendingCallbacks)\n"
        return out
    }
}
