// mm/mprotect.c, mm/mlock.c, mm/madvise.c: changing what a range of VMAs allows, locks or drops.

extension Machine {
    /// Checks an (addr, len) pair as these syscalls do: aligned start, no wrap, inside the
    /// address space. Returns the page-aligned end.
    func checkRange(_ mm: MM, _ addr: UInt64, _ len: UInt64) -> SyscallResult<UInt64> {
        guard addr & Page.offsetMask == 0 else { return .failure(.EINVAL) }
        let (r, o) = len.addingReportingOverflow(Page.offsetMask)
        guard !o else { return .failure(.ENOMEM) }
        let (end, o2) = addr.addingReportingOverflow(r & ~Page.offsetMask)
        guard !o2, end <= mm.taskSize else { return .failure(.ENOMEM) }
        return .success(end)
    }

    /// Applies `change` to every VMA in [start, end) after splitting at the edges, then
    /// merges what can be merged (vma_modify()).
    func modifyVMAs(_ mm: MM, _ start: UInt64, _ end: UInt64, _ change: (inout VMA) -> Void) {
        splitVMA(mm, at: start)
        splitVMA(mm, at: end)
        let r = vmaRange(mm, start, end)
        for i in r { change(&mm.vmas[i]) }
        var i = r.upperBound - 1
        while i >= r.lowerBound && i >= 0 {
            let j = mergeVMA(mm, i)
            i = min(i, j) - 1
        }
    }

    // MARK: mprotect

    /// mprotect(): new protections for every VMA of the range, the page tables changed to
    /// match (change_protection()), the TLB flushed for the entries that lost rights.
    public func mprotect(_ t: Task, addr: UInt64, length: UInt64, prot: Prot) -> SyscallResult<Void> {
        syscall(t) { doMprotect($0, addr, length, prot, task: t) }
    }

    /// mprotect_fixup(): a VMA gaining write that is not already accounted, shared,
    /// MAP_NORESERVE or hugetlb is charged to Committed_AS.
    static func mprotectCharges(_ old: VMFlags, _ newProt: VMFlags) -> Bool {
        newProt.contains(.write) && !old.contains(.account) && !old.contains(.shared) && !old.contains(.noreserve)
            && !old.contains(.hugetlb) && !old.contains(.write)
    }

    func doMprotect(_ mm: MM, _ addr: UInt64, _ length: UInt64, _ prot: Prot, task: Task? = nil) -> SyscallResult<Void> {
        let end: UInt64
        switch checkRange(mm, addr, length) {
        case .success(let e): end = e
        case .failure(let e): return .failure(e)
        }
        if end == addr { return .success(()) }
        guard isFullyMapped(mm, addr, end) else { return .failure(.ENOMEM) }
        guard hugetlbSplitAllowed(mm, addr, end) else { return .failure(.EINVAL) }
        let newProt = VMFlags(prot: prot)
        for i in vmaRange(mm, addr, end) {
            let v = mm.vmas[i]
            if newProt.contains(.write) && !v.flags.contains(.mayWrite) { return .failure(.EACCES) }
        }
        // mprotect_fixup() asks security_vm_enough_memory_mm() for each VMA it will charge,
        // in address order (checked here before any VMA changes).
        var charged: Int64 = 0
        for i in vmaRange(mm, addr, end) where Self.mprotectCharges(mm.vmas[i].flags, newProt) {
            let v = mm.vmas[i]
            let pages = (min(v.end, end) - max(v.start, addr)) >> Page.shift
            guard vmEnoughMemory(pages, task: task, mm: mm, extraCommitted: charged) else { return .failure(.ENOMEM) }
            charged += Int64(pages)
        }
        var changed = false
        modifyVMAs(mm, addr, end) { v in
            let old = v.flags
            var nf = old.subtracting(VMFlags.protMask).union(newProt)
            // mprotect_fixup(): a private mapping becoming writable is charged now.
            if Self.mprotectCharges(old, newProt) {
                nf.insert(.account)
                committedAS += Int64(v.pages)
            }
            mm.statAccount(old, -Int64(v.pages))
            mm.statAccount(nf, Int64(v.pages))
            v.flags = nf
            if changeProtection(mm, v) { changed = true }
        }
        if changed { flushTLBMMRange(mm, start: addr, end: end, strideShift: Page.shift, freedTables: false) }
        return .success(())
    }

    /// change_pte_range(): rewrite the present entries of `v` for its new flags. Write stays
    /// off for pages that would need a copy (can_change_pte_writable()). Returns whether an
    /// entry lost a right (so a flush is needed).
    func changeProtection(_ mm: MM, _ v: VMA) -> Bool {
        if v.flags.contains(.hugetlb) { return hugetlbChangeProtection(mm, v) }
        var lost = false
        var a = v.start
        let span = PageTableLevel.pmd.entrySpan
        while a < v.end {
            // change_pmd_range() -> change_huge_pmd(): a huge PMD (wholly inside the VMA:
            // splitVMA() split any that crossed its edges) is rewritten in place. For
            // PROT_NONE the model splits it and marks the PTEs (the kernel keeps a protnone
            // huge PMD; the model's huge PMDs are always present).
            if a & (span - 1) == 0, a + span <= v.end, let pmd = mm.pageTable.slot(VirtAddr(a), level: .pmd),
               case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch),
               var leaf = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch), leaf.present {
                if v.flags.isDisjoint(with: [.read, .write, .exec]) {
                    splitHugePMD(mm, v, a, pmd)
                } else {
                    let wasWritable = leaf.writable, wasExec = !leaf.noExec
                    let zero = leaf.pfn == hugeZeroPFN
                    let exclusive = !zero && frames[leaf.pfn].pointee.flags.contains(.anonExclusive)
                    // can_change_pmd_writable(): only an exclusive, dirty anonymous folio.
                    let canWrite = v.flags.contains(.write) && !zero && (v.isShared || (exclusive && leaf.dirty))
                    leaf.writable = wasWritable ? v.flags.contains(.write) : canWrite
                    leaf.noExec = !v.flags.contains(.exec)
                    if (wasWritable && !leaf.writable) || (wasExec && leaf.noExec) { lost = true }
                    pmd.pointee = PTEFormat.encode(leaf, arch: arch)
                    a += span
                    continue
                }
            }
            if let slot = mm.pageTable.slot(VirtAddr(a), level: .pte), slot.pointee != 0,
               var leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), leaf.present || leaf.protNone {
                let accessible = v.flags.contains(.read) || v.flags.contains(.write) || v.flags.contains(.exec)
                let wasWritable = leaf.writable && leaf.present
                let wasExec = !leaf.noExec && leaf.present
                let zero = leaf.special && leaf.pfn == zeroPage
                let exclusive = !zero && frames[leaf.pfn].pointee.flags.contains(.anonExclusive)
                let canWrite = v.flags.contains(.write) && (v.flags.contains(.shared) || (exclusive && leaf.dirty))
                // pte_modify(): the protection bits come from the VMA's new vm_page_prot, so a
                // user mapping gets _PAGE_USER back when it leaves PROT_NONE.
                leaf.present = accessible
                leaf.protNone = !accessible
                leaf.user = accessible
                leaf.writable = accessible && (wasWritable ? v.flags.contains(.write) : canWrite)
                leaf.noExec = !v.flags.contains(.exec)
                if wasWritable && !leaf.writable { lost = true }
                if wasExec && leaf.noExec { lost = true }
                if !accessible { lost = true }
                slot.pointee = PTEFormat.encode(leaf, arch: arch)
            }
            a += Page.size
        }
        return lost
    }

    // MARK: mlock

    /// mlock(): VM_LOCKED on the range, every page faulted in and moved to the unevictable list.
    public func mlock(_ t: Task, addr: UInt64, length: UInt64) -> SyscallResult<Void> {
        syscall(t) { setLocked(t, $0, addr & ~Page.offsetMask, length + (addr & Page.offsetMask), lock: true) }
    }

    /// munlock(): VM_LOCKED off; pages go back to the evictable LRU.
    public func munlock(_ t: Task, addr: UInt64, length: UInt64) -> SyscallResult<Void> {
        syscall(t) { setLocked(t, $0, addr & ~Page.offsetMask, length + (addr & Page.offsetMask), lock: false) }
    }

    func setLocked(_ t: Task, _ mm: MM, _ addr: UInt64, _ length: UInt64, lock: Bool) -> SyscallResult<Void> {
        let end: UInt64
        switch checkRange(mm, addr, length) {
        case .success(let e): end = e
        case .failure(let e): return .failure(e)
        }
        if end == addr { return .success(()) }
        guard isFullyMapped(mm, addr, end) else { return .failure(.ENOMEM) }
        modifyVMAs(mm, addr, end) { v in
            let was = v.flags.contains(.locked)
            if lock == was { return }
            if lock { v.flags.insert(.locked) } else { v.flags.remove(.locked) }
            mm.lockedVM += lock ? Int64(v.pages) : -Int64(v.pages)
            // mlock_vma_pages_range(): the pages already present change lists now.
            var a = v.start
            while a < v.end {
                if let slot = mm.pageTable.slot(VirtAddr(a), level: .pte), slot.pointee != 0,
                   let leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), leaf.present,
                   !(leaf.special && leaf.pfn == zeroPage) {
                    lock ? mlockPage(leaf.pfn) : munlockPage(leaf.pfn)
                }
                a += Page.size
            }
        }
        // __mm_populate(ignore_errors = 0): a PROT_NONE VMA in the range stays locked but
        // unpopulated, and its -EFAULT is ENOMEM (__mlock_posix_error_return()).
        if lock, !populate(t, mm, addr, end, ignoreErrors: false) { return .failure(.ENOMEM) }
        return .success(())
    }

    /// mlockall(): MCL_CURRENT locks every VMA now; MCL_FUTURE makes new mappings locked.
    public func mlockall(_ t: Task, current: Bool, future: Bool) -> SyscallResult<Void> {
        syscall(t) { mm in
            guard current || future else { return .failure(.EINVAL) }
            mm.lockFuture = future
            if current {
                for v in mm.vmas { _ = setLocked(t, mm, v.start, v.length, lock: true) }
            }
            return .success(())
        }
    }

    /// munlockall(): every VMA unlocked, new mappings no longer locked.
    public func munlockall(_ t: Task) -> SyscallResult<Void> {
        syscall(t) { mm in
            mm.lockFuture = false
            for v in mm.vmas where v.flags.contains(.locked) { _ = setLocked(t, mm, v.start, v.length, lock: false) }
            return .success(())
        }
    }

    /// mlock_folio(): to the unevictable list (unevictable_pgs_mlocked, _culled).
    func mlockPage(_ pfn: PFN) {
        let p = frames[pfn]
        guard !p.pointee.flags.contains(.mlocked) else { return }
        if p.pointee.flags.contains(.lruBatched) {
            // Still in an lru_add batch: marked now, culled to the unevictable list by the drain.
            p.pointee.flags.insert(.mlocked)
            let n = folioPages(p)
            counters.add(.nrMlock, n)
            counters.add(.unevictablePgsMlocked, n)
            allocator.zoneRefs[Int(p.pointee.zone)]._withUnsafeGuaranteedRef { $0.stats[VMStat.nrMlock.rawValue] += n }
            return
        }
        lruTake(pfn, p)
        lruAddMlocked(pfn, p)
    }

    /// munlock_folio(): back to the inactive list (unevictable_pgs_munlocked).
    func munlockPage(_ pfn: PFN) {
        let p = frames[pfn]
        guard p.pointee.flags.contains(.mlocked) else { return }
        let n = folioPages(p)
        p.pointee.flags.remove(.mlocked)
        counters.add(.nrMlock, -n)
        counters.add(.unevictablePgsMunlocked, n)
        allocator.zoneRefs[Int(p.pointee.zone)]._withUnsafeGuaranteedRef { $0.stats[VMStat.nrMlock.rawValue] -= n }
        // __munlock_folio(): a folio on the unevictable list goes back to an evictable one
        // (unevictable_pgs_rescued); one in an lru_add batch is placed when it drains.
        if p.pointee.flags.contains(.lru) && p.pointee.flags.contains(.unevictable) {
            let lv = folioLruvec(p)
            lruvecDel(lv, pfn, p)
            p.pointee.flags.remove(.unevictable)
            lruvecAdd(lv, pfn, p)
            counters.add(.unevictablePgsRescued, n)
        }
    }

    // MARK: madvise

    /// madvise(): MADV_DONTNEED/FREE drop or mark pages, WILLNEED reads ahead (nothing for
    /// anonymous memory), HUGEPAGE/NOHUGEPAGE/DONTFORK/DOFORK change flags, POPULATE_* fault in.
    public func madvise(_ t: Task, addr: UInt64, length: UInt64, advice: Advice) -> SyscallResult<Void> {
        syscall(t) { doMadvise(t, $0, addr, length, advice) }
    }

    func doMadvise(_ t: Task, _ mm: MM, _ addr: UInt64, _ length: UInt64, _ advice: Advice) -> SyscallResult<Void> {
        let end: UInt64
        switch checkRange(mm, addr, length) {
        case .success(let e): end = e
        case .failure(let e): return .failure(advice == .dontneed || advice == .free ? e : (e == .ENOMEM ? .EINVAL : e))
        }
        if end == addr { return .success(()) }
        let mapped = isFullyMapped(mm, addr, end)
        switch advice {
        case .dontneed, .free:
            for i in vmaRange(mm, addr, end) where mm.vmas[i].flags.contains(.locked) { return .failure(.EINVAL) }
            let tlb = MMUGather(machine: self, mm: mm)
            for i in vmaRange(mm, addr, end) {
                let v = mm.vmas[i]
                let s = max(v.start, addr), e = min(v.end, end)
                if advice == .dontneed {
                    zapRange(tlb, mm, v, start: s, end: e, reclaimTables: true)
                } else if v.isAnonymous && !v.isShared && !v.flags.contains(.hugetlb) {
                    markLazyFree(tlb, mm, s, e)
                } else {
                    // madvise_free_single_vma(): only private anonymous memory can be freed
                    // lazily (!vma_is_anonymous(): shared anonymous, file, hugetlb: EINVAL);
                    // the VMAs before this one have been done.
                    tlb.finish()
                    return .failure(.EINVAL)
                }
            }
            tlb.finish()
        case .willneed, .normal, .random, .sequential:
            break
        case .hugepage, .nohugepage, .dontfork, .dofork:
            modifyVMAs(mm, addr, end) { v in
                switch advice {
                case .hugepage: v.flags.remove(.nohugepage); v.flags.insert(.hugepage)
                case .nohugepage: v.flags.remove(.hugepage); v.flags.insert(.nohugepage)
                case .dontfork: v.flags.insert(.dontcopy)
                default: v.flags.remove(.dontcopy)
                }
            }
        case .populateRead, .populateWrite:
            // madvise_populate(): a PROT_NONE VMA is an incompatible mapping (EINVAL).
            if !populate(t, mm, addr, end, forceWrite: advice == .populateWrite, ignoreErrors: false) { return .failure(.EINVAL) }
        case .cold, .pageout:
            madviseColdOrPageout(mm, addr, end, pageout: advice == .pageout)
        }
        return mapped ? .success(()) : .failure(.ENOMEM)
    }

    /// madvise_free_pte_range(): exclusive anonymous pages become clean and lazily freeable
    /// (pglazyfree); reclaim may later drop them without writing them out.
    func markLazyFree(_ tlb: MMUGather, _ mm: MM, _ start: UInt64, _ end: UInt64) {
        var a = start
        while a < end {
            if let slot = mm.pageTable.slot(VirtAddr(a), level: .pte), slot.pointee != 0,
               var leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), leaf.present,
               !(leaf.special && leaf.pfn == zeroPage), frames[leaf.pfn].pointee.mapcount == 1 {
                if leaf.dirty || leaf.accessed {
                    leaf.dirty = false
                    leaf.accessed = false
                    slot.pointee = PTEFormat.encode(leaf, arch: arch)
                    tlb.noteCleared(a, Page.size, level: .pte)
                }
                counters.add(.pglazyfree, 1)
            }
            a += Page.size
        }
    }

    // MARK: mremap

    /// mremap(): shrink in place, grow in place when the space after is free, else move
    /// (with MREMAP_MAYMOVE) by moving the page-table entries (move_page_tables()).
    public func mremap(_ t: Task, oldAddr: UInt64, oldLength: UInt64, newLength: UInt64,
                       flags: MremapFlags = [], newAddr: UInt64 = 0) -> SyscallResult<UInt64> {
        syscall(t) { doMremap(t, $0, oldAddr, oldLength, newLength, flags, newAddr) }
    }

    func doMremap(_ t: Task, _ mm: MM, _ addr: UInt64, _ oldLength: UInt64, _ newLength: UInt64, _ flags: MremapFlags, _ newAddr: UInt64) -> SyscallResult<UInt64> {
        guard addr & Page.offsetMask == 0, newLength > 0 else { return .failure(.EINVAL) }
        if flags.contains(.fixed) && !flags.contains(.maymove) { return .failure(.EINVAL) }
        var oldLen = (oldLength + Page.offsetMask) & ~Page.offsetMask
        let newLen = (newLength + Page.offsetMask) & ~Page.offsetMask
        guard newLen <= mm.taskSize, addr <= mm.taskSize - max(oldLen, 1) else { return .failure(.EINVAL) }
        guard let i = mm.findVMAIndex(addr), mm.vmas[i].start <= addr, addr + oldLen <= mm.vmas[i].end else {
            return .failure(.EFAULT)
        }
        // Hugetlb mappings neither grow nor move here (the kernel moves them; not modelled).
        if mm.vmas[i].flags.contains(.hugetlb) && (newLen > oldLen || flags.contains(.fixed)) { return .failure(.EINVAL) }
        if newLen <= oldLen && !flags.contains(.fixed) {
            if newLen < oldLen { _ = doMunmap(t, mm, addr + newLen, oldLen - newLen) }
            return .success(addr)
        }
        if newLen < oldLen {
            // mremap_to() shrinking (MREMAP_FIXED): the source's tail goes first.
            _ = doMunmap(t, mm, addr + newLen, oldLen - newLen)
            oldLen = newLen
        }
        let v = mm.vmas[i]
        let delta = newLen - oldLen
        let pages = Int64(delta >> Page.shift)
        // vma_expand() in place: the old range ends the VMA and the space after it is free.
        if !flags.contains(.fixed) && addr + oldLen == v.end && addr + newLen <= mm.taskSize
            && vmaRange(mm, v.end, addr + newLen).isEmpty {
            if v.flags.contains(.account) {
                guard vmEnoughMemory(UInt64(pages), task: t, mm: mm) else { return .failure(.ENOMEM) }
                committedAS += pages
            }
            mm.vmas[i].end = addr + newLen
            rmapVMAResized(mm, i)
            mm.statAccount(v.flags, pages)
            if v.flags.contains(.locked) {
                mm.lockedVM += pages
                populate(t, mm, v.end, addr + newLen)
            }
            mergeVMA(mm, i)
            return .success(addr)
        }
        guard flags.contains(.maymove) else { return .failure(.ENOMEM) }
        // move_vma(): a new range, the entries moved, the old range unmapped.
        let dest: UInt64
        if flags.contains(.fixed) {
            guard newAddr & Page.offsetMask == 0, newAddr <= mm.taskSize - newLen else { return .failure(.EINVAL) }
            if newAddr < addr + oldLen && addr < newAddr + newLen { return .failure(.EINVAL) }
            _ = doMunmap(t, mm, newAddr, newLen)
            dest = newAddr
        } else {
            guard let d = unmappedArea(mm, len: newLen, hint: 0, anonymous: mm.vmas[i].isAnonymous && !mm.vmas[i].isShared) else { return .failure(.ENOMEM) }
            dest = d
        }
        // vrm_calc_charge(): an accounted mapping is charged the growth before it moves.
        if v.flags.contains(.account) && pages > 0 {
            guard vmEnoughMemory(UInt64(pages), task: t, mm: mm) else { return .failure(.ENOMEM) }
        }
        guard let j = mm.findVMAIndex(addr), mm.vmas[j].start <= addr else { return .failure(.EFAULT) }
        splitVMA(mm, at: addr)
        splitVMA(mm, at: addr + oldLen)
        guard let k = mm.findVMAIndex(addr) else { return .failure(.EFAULT) }
        var moved = mm.vmas[k]
        _ = j
        if moved.flags.contains(.account) { committedAS += pages }
        let tlb = MMUGather(machine: self, mm: mm)
        movePageTables(tlb, mm, from: addr, to: dest, length: oldLen)
        var floor = k > 0 ? mm.vmas[k - 1].end : 0
        var ceiling = k + 1 < mm.vmas.count ? mm.vmas[k + 1].start : 0
        // The new VMA is already in the tree when the kernel frees the old range's tables
        // (copy_vma() before do_vmi_munmap()): it bounds free_pgtables() like any neighbour.
        if dest >= addr + oldLen && (ceiling == 0 || dest < ceiling) { ceiling = dest }
        if dest + newLen <= addr && dest + newLen > floor { floor = dest + newLen }
        mm.vmas.remove(at: k)
        let old = moved
        mm.pageTable.freeTables(start: VirtAddr(addr), end: VirtAddr(addr + oldLen), floor: VirtAddr(floor),
                                ceiling: VirtAddr(ceiling)) { pfn, level in tlb.removeTable(pfn, level: level) }
        tlb.finish()
        moved.start = dest
        moved.end = dest + newLen
        mm.statAccount(moved.flags, pages)
        if moved.flags.contains(.locked) { mm.lockedVM += pages }
        let at = mm.findVMAIndex(dest) ?? mm.vmas.count
        // copy_vma(): a new vm_area_struct with the old one's chains (anon_vma_clone()), then
        // the old one goes (unlink_anon_vmas()); pages keep their anon_vma and index.
        // copy_vma(): an anonymous VMA never faulted (no anon_vma) takes the pgoff of its new
        // address, so that it can merge there.
        if moved.isAnonymous && moved.anonVMA == 0 { moved.pgoff = dest >> Page.shift }
        moved.id = 0
        mm.vmas.insert(moved, at: at)
        rmapVMAInserted(mm, at)
        anonVMAClone(mm, at, src: old)
        rmapVMARemoved(old)
        mergeVMA(mm, at)
        return .success(dest)
    }

    /// move_page_tables(): where source and destination are both PMD aligned over a whole
    /// 2 MiB, the PMD entry itself moves (move_pgt_entry(): the PTE table or huge page goes
    /// along, nothing is copied); elsewhere move_ptes() moves entry by entry.
    func movePageTables(_ tlb: MMUGather, _ mm: MM, from: UInt64, to: UInt64, length: UInt64) {
        let span = PageTableLevel.pmd.entrySpan
        var off: UInt64 = 0
        while off < length {
            let src = from + off, dst = to + off
            if src & (span - 1) == 0 && dst & (span - 1) == 0 && length - off >= span,
               let sp = mm.pageTable.slot(VirtAddr(src), level: .pmd), sp.pointee != 0,
               let dp = try? mm.pageTable.allocSlot(VirtAddr(dst), level: .pmd), dp.pointee == 0 {
                dp.pointee = sp.pointee
                sp.pointee = 0
                if let d = mm.pageTable.withdrawTable(src) { mm.pageTable.depositTable(dst, d) }
                // move_normal_pmd() flushes the old range with the VMA's own (4 KiB) stride:
                // every 4 KiB translation below the moved table must go.
                tlb.noteCleared(src, span, level: .pte)
                off += span
                continue
            }
            // move_page_tables(): a huge PMD that cannot move whole is split first
            // (split_huge_pmd()), then its PTEs move one by one.
            if let pmd = mm.pageTable.slot(VirtAddr(src), level: .pmd),
               case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch),
               let v = mm.vma(containing: src) {
                splitHugePMD(mm, v, src & ~(span - 1), pmd)
            }
            if let slot = mm.pageTable.slot(VirtAddr(src), level: .pte), slot.pointee != 0 {
                let pte = slot.pointee
                slot.pointee = 0
                tlb.noteCleared(src, Page.size, level: .pte)
                if let d = try? mm.pageTable.allocSlot(VirtAddr(dst), level: .pte) {
                    d.pointee = pte
                }
            }
            off += Page.size
        }
    }
}
