// mm/memory-failure.c: a frame went bad: poison it, take it away from whoever maps it
// (hwpoison entries), signal the tasks as the kill policy says, isolate it for good.

/// action_result(): what the handler managed (enum mf_result).
public enum MemoryFailureResult: String, Sendable, Hashable {
    case ignored = "Ignored"
    case failed = "Failed"
    case delayed = "Delayed"
    case recovered = "Recovered"
    /// -EHWPOISON: the frame was poisoned already.
    case alreadyPoisoned = "already hardware poisoned"
    /// -ENXIO: not memory the kernel manages.
    case outsideKernelControl = "memory outside kernel control"
}

extension Machine {
    /// vm.memory_failure_early_kill (0: tasks are signalled when they touch the page again;
    /// 1: every task mapping it gets SIGBUS at once).
    public var memoryFailureEarlyKill: Bool {
        get { rmap.memoryFailureEarlyKill }
        set { rmap.memoryFailureEarlyKill = newValue }
    }

    /// memory_failure(): frame `pfn` has an uncorrectable error. The page is marked
    /// PG_hwpoison and counted in HardwareCorrupted (num_poisoned_pages_inc()); then by
    /// what the frame holds (identify_page_state()):
    /// - free (buddy, pcp, never used): taken off the free lists (take_page_off_buddy());
    /// - an anonymous or page-cache folio: hwpoison_user_mappings() unmaps it from every
    ///   task through the rmap, leaving hwpoison entries where data is lost (anonymous and
    ///   dirty pages; a clean file page is simply unmapped and later read again), then
    ///   the folio leaves the LRU and the page cache (me_pagecache_clean/dirty());
    /// - kernel memory (reserved frames, page tables): ignored.
    /// Tasks are signalled by kill_procs(): those mapping a dirty page are collected when
    /// early kill is set, or just the current task when the error was met by its own
    /// access (`actionRequired`, as madvise(MADV_HWPOISON) injects it); each gets SIGBUS,
    /// whose default action kills it. Others get SIGBUS when they touch the hwpoison entry.
    @discardableResult
    /// `address` is where `current` met the error (its SIGBUS's si_addr when the frame was
    /// poisoned already).
    public func memoryFailure(_ pfn: PFN, actionRequired current: Task? = nil, at address: UInt64 = 0) -> MemoryFailureResult {
        let hex = String(format0x: pfn.raw, width: 0)
        guard pfn.raw < maxPFN, let _ = allocator.zones.first(where: { $0.contains(pfn) }),
              frames[pfn].pointee.state != .hole else {
            log.append("Memory failure: \(hex): memory outside kernel control")
            return .outsideKernelControl
        }
        var (head, order) = folioHead(pfn)
        let page = frames[pfn]
        if page.pointee.flags.contains(.hwpoison) {
            log.append("Memory failure: \(hex): already hardware poisoned")
            if let t = current, t.state == .running { sendMCEKill(t, pfn, address: address) }
            return .alreadyPoisoned
        }
        // Mark it and count it: HardwareCorrupted grows even when recovery fails.
        page.pointee.flags.insert(.hwpoison)
        hardwareCorruptedPages += 1
        func result(_ what: String, _ r: MemoryFailureResult) -> MemoryFailureResult {
            log.append("Memory failure: \(hex): recovery action for \(what): \(r.rawValue)")
            return r
        }
        switch frames[head].pointee.state {
        case .buddy, .buddyTail, .pcp, .pristine:
            allocator.drainPages()
            let zone = allocator.zone(of: pfn)
            guard allocator.rangeIsFree(zone, pfn.raw, 1) else { return result("free buddy page", .failed) }
            allocator.isolateFreeRange(zone, pfn.raw, pfn.raw + 1)
            isolatePoisoned(pfn)
            return result("free buddy page", .recovered)
        case .reserved, .hole:
            return result("reserved kernel page", .ignored)
        case .pageTable, .isolated, .allocatedTail:
            return result("unknown page", .ignored)
        case .allocated:
            break
        }
        var p = frames[head]
        guard p.pointee.mapping != 0, p.pointee.flags.contains(.lru) || p.pointee.mapcount > 0 else {
            // Kernel allocations (slab, gather batches...) are not LRU pages.
            return result("unknown page", .ignored)
        }
        if order > 0 {
            // try_to_split_thp_page(): a PMD-mapped anonymous THP is split (every mapping
            // becomes 512 PTEs, the folio 512 pages), then the one bad page is handled.
            var split = false
            if PageMapping.isAnon(p.pointee.mapping) && order == PageOrder.pmd.raw {
                rmapWalk(head) { h in
                    guard h.level == .pmd else { return true }
                    splitHugePMD(h.mm, h.mm.vmas[h.vmaIndex], h.address, h.slot)
                    split = true
                    return false
                }
            }
            guard split, frames[pfn].pointee.state == .allocated, frames[pfn].pointee.order == 0 else {
                return result("unsplit thp", .ignored)
            }
            // split_folio() copied the head's flags to every page: only `pfn` is bad.
            for i in 0..<PageOrder.pmd.pages { frames[head + i].pointee.flags.remove(.hwpoison) }
            frames[pfn].pointee.flags.insert(.hwpoison)
            (head, order) = (pfn, 0)
            p = frames[head]
        }
        let anon = PageMapping.isAnon(p.pointee.mapping)
        let cache = cacheSlot(head)
        let shmem = cache?.shmem ?? false
        if shmem { return result("dirty swapcache page", .failed) }
        // hwpoison_user_mappings(): the PTE dirty bits reach the folio first, then every
        // mapping goes; data that only the folio had is replaced by hwpoison entries.
        var dirty = p.pointee.flags.contains(.dirty)
        rmapWalk(head) { h in
            if let l = PTEFormat.decode(h.slot.pointee, level: .pte, arch: arch), l.dirty { dirty = true }
            return true
        }
        if anon { dirty = true }        // an anonymous page has no other copy
        // collect_procs(): each mm mapping the page, with the address it is mapped at there
        // (page_address_in_vma(): the si_addr of its SIGBUS).
        var victims: [(mm: MM, address: UInt64)] = []
        rmapWalk(head) { h in
            guard h.level == .pte, let l = PTEFormat.decode(h.slot.pointee, level: .pte, arch: arch) else { return true }
            // try_to_unmap() with TTU_HWPOISON: the same per-mapping work, a hwpoison entry in
            // place of a dirty folio's PTE.
            unmapPTE(h, head, l, anon: anon, replacement: dirty ? SoftEntry.make(.hwpoison, offset: head.raw, arch: arch) : 0)
            p.pointee.refcount -= 1
            if !victims.contains(where: { $0.mm === h.mm }) { victims.append((h.mm, h.address)) }
            return true
        }
        // kill_procs(): forcekill for a dirty folio (its data is gone). With MF_ACTION_REQUIRED
        // the current thread is signalled (task_early_kill(): the one whose mm is current's);
        // with early kill, every process mapping it. SIGBUS kills the thread group.
        if dirty {
            for (mm, address) in victims {
                if let t = current, t.state == .running, t.mm === mm {
                    sendMCEKill(t, pfn, address: address)
                } else if memoryFailureEarlyKill {
                    for t in tasks where t.state == .running && t.mm === mm && t.threadGroupLeader == nil { sendMCEKill(t, pfn, address: address) }
                }
            }
        }
        // Page-cache folio: out of the cache (truncated; the data of a dirty one is lost).
        if let c = cache {
            setCacheSlot(c, nil)
            counters.add(.nrFilePages, -1)
            if p.pointee.flags.contains(.dirty) {
                p.pointee.flags.remove(.dirty)
                counters.add(.nrDirty, -1)
                allocator.zone(of: head).stats[VMStat.nrZoneWritePending.rawValue] -= 1
            }
            lruDel(head, p)
            p.pointee.refcount -= 1
        } else {
            lruDel(head, p)
        }
        let what = dirty ? "dirty LRU page" : "clean LRU page"
        guard p.pointee.refcount == 0 else {
            // Someone still holds it (a pin, a gather about to free it): the kernel reports
            // the page as still referenced and leaves it.
            p.pointee.refcount += 1
            return result(what, .failed)
        }
        isolatePoisoned(head)
        return result(what, .recovered)
    }

    /// The frame leaves every owner for good: PG_hwpoison, one reference kept by memory_failure().
    func isolatePoisoned(_ pfn: PFN) {
        let p = frames[pfn]
        p.pointee.state = .isolated
        p.pointee.order = 0
        p.pointee.refcount = 1
        p.pointee.mapcount = 0
        p.pointee.mapping = 0
        p.pointee.flags = .hwpoison
    }

    /// do_sigbus() (arch/x86/mm/fault.c) for VM_FAULT_HWPOISON: the access met a hwpoison
    /// entry, and the kernel says so before the SIGBUS (BUS_MCEERR_AR).
    func noteHWPoisonFault(_ t: Task, _ mm: MM, _ addr: UInt64) {
        guard let slot = mm.pageTable.slot(VirtAddr(addr & ~Page.offsetMask), level: .pte),
              let e = SoftEntry.decode(slot.pointee, arch: arch), e.type == .hwpoison else { return }
        log.append("MCE: Killing \(t.name):\(t.pid) due to hardware memory corruption fault at \(String(hex: addr, width: 0))")
    }

    /// kill_proc(): "Sending SIGBUS to comm:pid due to hardware memory corruption", with
    /// si_addr the page's address in the task (force_sig_mceerr()); the default action of
    /// SIGBUS terminates the thread group.
    func sendMCEKill(_ t: Task, _ pfn: PFN, address: UInt64) {
        log.append("Memory failure: \(String(format0x: pfn.raw, width: 0)): Sending SIGBUS to \(t.name):\(t.pid) due to hardware memory corruption")
        killThreadGroup(t, .bus(address))
    }

    /// madvise(MADV_HWPOISON): inject an error into the frame behind `addr` of `t`, as if
    /// `t` had consumed it (MF_ACTION_REQUIRED). Nil when nothing is mapped there.
    @discardableResult
    public func injectHWPoison(_ t: Task, addr: UInt64) -> MemoryFailureResult? {
        guard t.state == .running, let mm = t.mm else { return nil }
        run(t, mm)
        guard let slot = mm.pageTable.slot(VirtAddr(addr & ~Page.offsetMask), level: .pte),
              let l = presentOrProtNone(slot.pointee), !(l.special && l.pfn == zeroPage) else { return nil }
        log.append("Injecting memory failure for pfn \(String(format0x: l.pfn.raw, width: 0)) at process virtual address \(String(format0x: addr & ~Page.offsetMask, width: 0))")
        return memoryFailure(l.pfn, actionRequired: t, at: addr & ~Page.offsetMask)
    }
}
