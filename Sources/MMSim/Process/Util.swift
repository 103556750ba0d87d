// mm/util.c (and mm/mmap.c's reserves): overcommit accounting, __vm_enough_memory() and vm_commit_limit().

/// vm.overcommit_memory (OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER).
public enum OvercommitMode: Int, Sendable, CaseIterable {
    case guess = 0, always = 1, never = 2
}

/// The overcommit sysctls (mm/util.c's sysctl_overcommit_* and the reserves of mm/mmap.c).
public struct OvercommitPolicy: Sendable, Hashable {
    /// vm.overcommit_memory (default OVERCOMMIT_GUESS).
    public var mode: OvercommitMode = .guess
    /// vm.overcommit_ratio (percent of RAM in CommitLimit; default 50).
    public var ratio: UInt64 = 50
    /// vm.overcommit_kbytes (when non-zero it replaces the ratio).
    public var kbytes: UInt64 = 0
    /// vm.user_reserve_kbytes: held back from one process in OVERCOMMIT_NEVER (the static
    /// default 128 MiB until init_user_reserve() sets it at boot).
    public var userReserveKbytes: UInt64 = 1 << 17
    /// vm.admin_reserve_kbytes: held back from tasks without CAP_SYS_ADMIN (8 MiB default
    /// until init_admin_reserve()).
    public var adminReserveKbytes: UInt64 = 1 << 13
    public init() {}
}

extension Machine {
    /// total_swap_pages: swap pages of every active swap area. Zero until the model has
    /// swap (SwapState.swift will give the real figure here).
    public var totalSwapPages: UInt64 { UInt64(swap.totalPages) }

    /// init_user_reserve() and init_admin_reserve() (subsys_initcall): 1/32 of the free
    /// memory at that point, capped at 128 MiB and 8 MiB. The model takes the free pages
    /// at the end of boot.
    func initOvercommitReserves() {
        let freeKB = UInt64(max(counters[.nrFreePages], 0)) * (Page.size >> 10)
        overcommit.userReserveKbytes = min(freeKB / 32, 1 << 17)
        overcommit.adminReserveKbytes = min(freeKB / 32, 1 << 13)
    }

    /// vm_commit_limit(): overcommit_kbytes, or (totalram - hugetlb) * overcommit_ratio / 100,
    /// plus the swap pages (CommitLimit).
    public func vmCommitLimit() -> UInt64 {
        let p = overcommit
        var allowed: UInt64
        if p.kbytes != 0 {
            allowed = p.kbytes >> (UInt64(Page.shift) - 10)
        } else {
            let ram = totalRAMPages - min(hugetlbTotalPages, totalRAMPages)
            let (product, o) = ram.multipliedReportingOverflow(by: p.ratio)
            allowed = o ? .max / 2 : product / 100
        }
        return allowed &+ totalSwapPages
    }

    /// __vm_enough_memory() as security_vm_enough_memory_mm() calls it: may `pages` more
    /// pages be committed (Committed_AS)? The caller adds them to `committedAS` when the
    /// answer is yes (the kernel adds first and takes them back on failure: the same test).
    ///
    /// - OVERCOMMIT_ALWAYS: yes.
    /// - OVERCOMMIT_GUESS: no only for a single request larger than RAM plus swap.
    /// - OVERCOMMIT_NEVER: Committed_AS with the request must stay below vm_commit_limit(),
    ///   less the admin reserve for tasks without CAP_SYS_ADMIN, less
    ///   min(total_vm / 32, user_reserve) of the requesting mm.
    ///
    /// `extraCommitted` is what the same operation already charged (mprotect() over several
    /// VMAs checks each in turn). The kernel compares with percpu_counter_read_positive(),
    /// which can lag the exact count by a per-CPU batch; the model's count is exact. Model
    /// tasks run as root, so `capSysAdmin` defaults to true (no admin reserve), as
    /// cap_vm_enough_memory() finds for uid 0. A refusal prints the kernel's warning.
    func vmEnoughMemory(_ pages: UInt64, task: Task? = nil, mm: MM? = nil, extraCommitted: Int64 = 0,
                        capSysAdmin: Bool = true) -> Bool {
        if overcommitAllows(pages, mm: mm, extraCommitted: extraCommitted, capSysAdmin: capSysAdmin) { return true }
        let (bytes, o) = pages.multipliedReportingOverflow(by: Page.size)
        log.append("__vm_enough_memory: pid: \(task?.pid ?? 0), comm: \(task?.name ?? "swapper/0"), bytes: \(o ? UInt64.max : bytes) not enough memory for the allocation")
        return false
    }

    /// The decision of __vm_enough_memory(), without its warning.
    func overcommitAllows(_ pages: UInt64, mm: MM?, extraCommitted: Int64, capSysAdmin: Bool) -> Bool {
        let p = overcommit
        switch p.mode {
        case .always:
            return true
        case .guess:
            return pages <= totalRAMPages &+ totalSwapPages
        case .never:
            var allowed = Int64(clamping: vmCommitLimit())
            if !capSysAdmin { allowed -= Int64(clamping: p.adminReserveKbytes >> (UInt64(Page.shift) - 10)) }
            if let mm {
                let reserve = Int64(clamping: p.userReserveKbytes >> (UInt64(Page.shift) - 10))
                allowed -= min(mm.totalVM / 32, reserve)
            }
            let committed = max(committedAS &+ extraCommitted &+ Int64(clamping: pages), 0)
            return committed < allowed
        }
    }
}
