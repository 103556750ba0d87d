// The workload layer's calls into the process model (Sources/MMSim/Process), in one place.
//
// Every call the runner makes on a Task goes through here, so that a model interface that
// changes shape changes one file. A call the model does not offer yet returns nil and the
// runner reports "not modelled yet" at the statement's location.

extension ScenarioRunner {
    /// The model's answer to one process action: success (with an address for mmap, mremap
    /// and brk), an errno, or nil when the model has no such call yet.
    enum ModelResult {
        case ok(UInt64?)
        case failed(Errno)
    }

    func modelMmap(_ t: Task, addr: UInt64, length: UInt64, prot: Prot, flags: MapFlags, file: Int?, offset: UInt64) -> ModelResult {
        switch machine.mmap(t, addr: addr, length: length, prot: prot, flags: flags, file: file, offset: offset) {
        case .success(let a): .ok(a)
        case .failure(let e): .failed(e)
        }
    }

    func modelMunmap(_ t: Task, addr: UInt64, length: UInt64) -> ModelResult {
        switch machine.munmap(t, addr: addr, length: length) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMprotect(_ t: Task, addr: UInt64, length: UInt64, prot: Prot) -> ModelResult? {
        switch machine.mprotect(t, addr: addr, length: length, prot: prot) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMadvise(_ t: Task, addr: UInt64, length: UInt64, advice: Advice) -> ModelResult? {
        switch machine.madvise(t, addr: addr, length: length, advice: advice) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMremap(_ t: Task, old: UInt64, oldLength: UInt64, newLength: UInt64, flags: MremapFlags, newAddr: UInt64) -> ModelResult? {
        switch machine.mremap(t, oldAddr: old, oldLength: oldLength, newLength: newLength, flags: flags, newAddr: newAddr) {
        case .success(let a): .ok(a)
        case .failure(let e): .failed(e)
        }
    }

    func modelMlock(_ t: Task, addr: UInt64, length: UInt64, onFault: Bool) -> ModelResult? {
        if onFault { return nil } // mlock2(MLOCK_ONFAULT) is not in the model yet
        return switch machine.mlock(t, addr: addr, length: length) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMunlock(_ t: Task, addr: UInt64, length: UInt64) -> ModelResult? {
        switch machine.munlock(t, addr: addr, length: length) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMlockall(_ t: Task, current: Bool, future: Bool, onFault: Bool) -> ModelResult? {
        if onFault { return nil } // MCL_ONFAULT is not in the model yet
        return switch machine.mlockall(t, current: current, future: future) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    func modelMunlockall(_ t: Task) -> ModelResult? {
        switch machine.munlockall(t) {
        case .success: .ok(nil)
        case .failure(let e): .failed(e)
        }
    }

    /// brk(2) as the syscall does it: returns the new break, the old one when refused.
    func modelBrk(_ t: Task, _ newBrk: UInt64) -> UInt64 {
        machine.brk(t, newBrk)
    }

    /// The current break (brk(0)).
    func modelCurrentBrk(_ t: Task) -> UInt64 {
        t.mm?.brk ?? 0
    }

    /// A file of `size` bytes, its pages in the page cache (written, fsync()ed and read back)
    /// unless `cold`.
    func modelCreateFile(name: String, size: UInt64, cold: Bool) -> Int {
        machine.createFile(name: name, size: size, cached: !cold).id
    }

    /// read(2), write(2), POSIX_FADV_DONTNEED or fsync(2) on a file.
    func modelFileIO(_ id: Int, verb: String, offset: UInt64, length: UInt64) {
        let f = machine.files[id]
        switch verb {
        case "read": machine.readFile(f, offset: offset, length: length)
        case "write": machine.writeFile(f, offset: offset, length: length)
        case "drop": machine.dropCache(f)
        case "truncate": machine.truncateFile(f, size: offset)
        default: machine.syncFile(f)
        }
    }

    /// wait4() for a given child (nil = any): the reaped child.
    func modelWait(_ t: Task, child: Task?) -> Task? {
        machine.wait(t, child: child?.pid)
    }

    /// /proc/PID/status memory fields in kB (task_mem()); zeros once the mm is gone.
    func modelStatus(_ t: Task) -> [String: Int64] {
        var s: [String: Int64] = [:]
        for f in ScenarioCatalog.statusFields { s[f] = 0 }
        for (name, kB) in machine.status(t) { s[name] = kB }
        return s
    }

    /// The text of /proc/PID/status.
    func modelStatusText(_ t: Task) -> String {
        machine.statusText(t)
    }

    /// The text of /proc/PID/maps.
    func modelMapsText(_ t: Task) -> String {
        machine.mapsText(t)
    }

    /// Lines of /proc/PID/maps.
    func modelMapsCount(_ t: Task) -> Int64 {
        Int64(machine.mapsText(t).split(separator: "\n").count)
    }

    /// Applies a sysctl after boot; false when the model does not take it (the runner warns).
    func modelSysctl(_ name: String, _ values: [Int64]) -> Bool {
        switch name {
        case "vm.overcommit_memory":
            guard let m = OvercommitMode(rawValue: Int(values[0])) else { return false }
            machine.overcommit.mode = m
            return true
        case "vm.overcommit_ratio":
            // overcommit_ratio_handler(): a ratio written clears overcommit_kbytes.
            machine.overcommit.ratio = UInt64(max(values[0], 0))
            machine.overcommit.kbytes = 0
            return true
        case "vm.overcommit_kbytes":
            // overcommit_kbytes_handler(): kbytes written clears the ratio.
            machine.overcommit.kbytes = UInt64(max(values[0], 0))
            machine.overcommit.ratio = 0
            return true
        case "vm.user_reserve_kbytes":
            machine.overcommit.userReserveKbytes = UInt64(max(values[0], 0))
            return true
        case "vm.admin_reserve_kbytes":
            machine.overcommit.adminReserveKbytes = UInt64(max(values[0], 0))
            return true
        case "vm.panic_on_oom":
            machine.oom.panicOnOOM = Int(values[0])
            return true
        case "vm.oom_kill_allocating_task":
            machine.oom.killAllocatingTask = values[0] != 0
            return true
        case "vm.oom_dump_tasks":
            machine.oom.dumpTasks = values[0] != 0
            return true
        case "vm.hugetlb_optimize_vmemmap":
            machine.setHugetlbOptimizeVmemmap(values[0] != 0)
            return true
        case "vm.memory_failure_early_kill":
            machine.memoryFailureEarlyKill = values[0] != 0
            return true
        case "kernel.threads-max":
            machine.setMaxThreads(Int(values[0]))
            return true
        case "vm.min_free_kbytes":
            machine.minFreeKbytes = UInt64(values[0])
            machine.setupPerZoneWatermarks()
            return true
        case "vm.swappiness":
            machine.vmSwappiness = Int(values[0])
            return true
        case "vm.page-cluster":
            machine.swap.pageCluster = Int(values[0])
            return true
        case "vm.drop_caches":
            if values[0] & 1 != 0 { machine.dropCaches() }
            return true
        default:
            return false
        }
    }

    /// The HugeTLB and memory-hotplug writes (sysctl or sysfs): nil when `path` is not one of
    /// them, else the error the write failed with (empty when it succeeded).
    func modelHugetlbWrite(_ path: String, _ value: String) -> String? {
        let v = value.trimmingCharacters(in: .whitespaces)
        func run(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "write \(v) to \(path) failed: \(error)" }
            return ""
        }
        switch path {
        case "vm.nr_hugepages":
            guard let n = parseNumber(v) else { return "\(path) takes a number" }
            return run { try machine.setNrHugepages(n) }
        case "vm.nr_overcommit_hugepages":
            guard let n = parseNumber(v) else { return "\(path) takes a number" }
            return run { try machine.setNrOvercommitHugepages(n) }
        case _ where path.hasPrefix("/sys/kernel/mm/hugepages/hugepages-"):
            // /sys/kernel/mm/hugepages/hugepages-NkB/{nr_hugepages,nr_overcommit_hugepages,demote}
            let rest = path.dropFirst("/sys/kernel/mm/hugepages/hugepages-".count)
            guard let kb = UInt64(rest.prefix { $0.isNumber }), let n = parseNumber(v) else { return "\(path) takes a number" }
            if path.hasSuffix("/nr_hugepages") { return run { try machine.setNrHugepages(sizeKB: kb, n) } }
            if path.hasSuffix("/nr_overcommit_hugepages") { return run { try machine.setNrOvercommitHugepages(sizeKB: kb, n) } }
            if path.hasSuffix("/demote") { return run { try machine.demoteHugepages(sizeKB: kb, count: n) } }
            return nil
        case "/sys/devices/system/memory/probe":
            guard let a = parseNumber(v) else { return "\(path) takes a physical address" }
            return run { try machine.addMemory(start: a, size: MachineConfig.memoryBlockBytes) }
        case _ where ScenarioCatalog.memoryBlockFile(path) != nil:
            let n = path.dropFirst("/sys/devices/system/memory/memory".count).dropLast("/state".count)
            guard let block = UInt64(n) else { return nil }
            if v == "offline" { return run { try machine.offlineMemoryBlock(block) } }
            return run { try machine.onlineMemoryBlock(block, movable: v == "online_movable") }
        default:
            return nil
        }
    }

    /// Applies a sysfs write after boot; false when the model does not take it.
    func modelSysfs(_ path: String, _ value: String) -> Bool {
        let v = value.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
        switch path {
        case "/sys/kernel/mm/swap/vma_ra_enabled":
            guard v == "true" || v == "false" else { return false }
            machine.swap.vmaReadahead = v == "true"
            return true
        case "/sys/kernel/mm/transparent_hugepage/use_zero_page":
            return v == "1"       // the huge zero page is always used for THP read faults
        case "/sys/kernel/mm/transparent_hugepage/shmem_enabled":
            return v == "never"   // shmem has no huge pages in the model
        case "/sys/kernel/mm/transparent_hugepage/defrag":
            return v == "madvise" // no compaction in the model: the default's behaviour
        case "/sys/kernel/mm/transparent_hugepage/enabled":
            guard let mode = THPMode(rawValue: value.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))) else { return false }
            machine.setTHPMode(mode)
            return true
        default:
            return false
        }
    }
}

import Foundation
