// mm/mmap.c, mm/vma.c: mmap, munmap and brk: placing, splitting, merging and accounting VMAs.

extension Machine {
    /// sysctl vm.max_map_count default.
    public static let maxMapCount = 65530

    // MARK: VMA tree operations

    /// __split_vma(): cut the VMA containing `addr` in two at `addr` (no-op at a boundary).
    func splitVMA(_ mm: MM, at addr: UInt64) {
        guard let i = mm.findVMAIndex(addr), mm.vmas[i].start < addr else { return }
        // vma_adjust_trans_huge() -> split_huge_pmd_address(): a huge PMD across the new
        // boundary cannot belong to two VMAs; it becomes a table of PTEs first.
        let span = PageTableLevel.pmd.entrySpan
        if addr & (span - 1) != 0, !mm.vmas[i].flags.contains(.hugetlb),
           let pmd = mm.pageTable.slot(VirtAddr(addr), level: .pmd),
           case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch) {
            splitHugePMD(mm, mm.vmas[i], addr & ~(span - 1), pmd)
        }
        var hi = mm.vmas[i]
        hi.pgoff = hi.pgoff(of: addr)
        hi.start = addr
        mm.vmas[i].end = addr
        mm.vmas.insert(hi, at: i + 1)
        if case .shmem(let id) = hi.kind { retainShmemMapping(id) }
        // The new vm_area_struct: its own identity, the old one's chains (anon_vma_clone()).
        rmapVMAResized(mm, i)
        rmapVMAInserted(mm, i + 1)
        if mm.vmas[i].id != 0 { anonVMAClone(mm, i + 1, src: mm.vmas[i]) }
    }

    /// vma_merge_existing_range()/vma_merge_new_range(): join `i` with its neighbours when compatible.
    @discardableResult
    func mergeVMA(_ mm: MM, _ index: Int) -> Int {
        var i = index
        if i + 1 < mm.vmas.count, mm.vmas[i].canMerge(with: mm.vmas[i + 1]), anonMergeable(mm.vmas[i], mm.vmas[i + 1]) {
            let gone = mm.vmas[i + 1]
            dupAnonVMA(mm, dst: i, src: gone)
            mm.vmas[i].end = gone.end
            if case .shmem(let id) = gone.kind { releaseShmemMapping(id) }
            mm.vmas.remove(at: i + 1)
            rmapVMARemoved(gone)
            rmapVMAResized(mm, i)
        }
        if i > 0, mm.vmas[i - 1].canMerge(with: mm.vmas[i]), anonMergeable(mm.vmas[i - 1], mm.vmas[i]) {
            let gone = mm.vmas[i]
            dupAnonVMA(mm, dst: i - 1, src: gone)
            mm.vmas[i - 1].end = gone.end
            if case .shmem(let id) = gone.kind { releaseShmemMapping(id) }
            mm.vmas.remove(at: i)
            rmapVMARemoved(gone)
            i -= 1
            rmapVMAResized(mm, i)
        }
        return i
    }

    /// Indices of the VMAs overlapping [start, end).
    func vmaRange(_ mm: MM, _ start: UInt64, _ end: UInt64) -> Range<Int> {
        guard let first = mm.findVMAIndex(start) else { return mm.vmas.count..<mm.vmas.count }
        var last = first
        while last < mm.vmas.count && mm.vmas[last].start < end { last += 1 }
        return first..<last
    }

    /// True when [start, end) is covered by VMAs without holes.
    func isFullyMapped(_ mm: MM, _ start: UInt64, _ end: UInt64) -> Bool {
        var a = start
        for i in vmaRange(mm, start, end) {
            if mm.vmas[i].start > a { return false }
            a = mm.vmas[i].end
        }
        return a >= end
    }

    /// get_unmapped_area() top-down (arch_get_unmapped_area_topdown()): the highest gap of
    /// `len` bytes below mmap_base, or the hint when it is free.
    /// Anonymous mappings whose length is a multiple of 2 MiB are placed 2 MiB aligned, as
    /// __get_unmapped_area() does through thp_get_unmapped_area_vmflags(): it asks for
    /// len + 2 MiB and aligns the start up inside that.
    func unmappedArea(_ mm: MM, len: UInt64, hint: UInt64, anonymous: Bool) -> UInt64? {
        let pmd = PageTableLevel.pmd.entrySpan
        if anonymous && len & (pmd - 1) == 0 && hint == 0, let a = unmappedArea(mm, len: len + pmd, hint: 0) {
            return (a + pmd - 1) & ~(pmd - 1)
        }
        return unmappedArea(mm, len: len, hint: hint)
    }

    func unmappedArea(_ mm: MM, len: UInt64, hint: UInt64) -> UInt64? {
        if hint != 0, hint & Page.offsetMask == 0, hint <= mm.taskSize, len <= mm.taskSize - hint,
           vmaRange(mm, hint, hint + len).isEmpty {
            return hint
        }
        var top = mm.mmapBase
        var i = mm.vmas.count - 1
        while i >= 0 && mm.vmas[i].start >= top { i -= 1 }
        while true {
            let below = i >= 0 ? mm.vmas[i].end : Page.size * 16   // mmap_min_addr (64 KiB)
            let gapTop = min(top, i + 1 < mm.vmas.count ? mm.vmas[i + 1].start : top)
            if gapTop >= below && gapTop - below >= len { return gapTop - len }
            if i < 0 { return nil }
            top = mm.vmas[i].start
            i -= 1
        }
    }

    // MARK: Syscall entry

    /// The common entry of the memory syscalls: the task must be alive with an mm; the
    /// model acts on its CPU; the result is remembered as the task's last errno.
    func syscall<T>(_ t: Task, _ body: (MM) -> SyscallResult<T>) -> SyscallResult<T> {
        guard t.state == .running, let mm = t.mm else {
            t.lastErrno = .EINVAL
            return .failure(.EINVAL)
        }
        run(t, mm)
        let r = withMmapLock { body(mm) }
        t.lastErrno = r.failureValue
        return r
    }

    /// The task runs on its CPU: it wakes, and its mm is loaded there (the scheduler's
    /// context_switch() -> switch_mm_irqs_off()).
    func run(_ t: Task, _ mm: MM) {
        currentCPU = t.cpu
        cpus[t.cpu].task = t
        t.sleeping = false
        switchMM(mm, cpu: t.cpu)
    }

    /// The task blocks; with nothing else to run its CPU goes idle, lazily keeping the mm.
    public func sleep(_ t: Task) {
        guard t.state == .running else { return }
        t.sleeping = true
        enterLazyTLB(cpu: t.cpu)
    }

    // MARK: mmap

    /// do_mmap(): validate, place, account, insert (merging) and populate a mapping.
    public func mmap(_ t: Task, addr: UInt64 = 0, length: UInt64, prot: Prot, flags: MapFlags,
                     file: Int? = nil, offset: UInt64 = 0) -> SyscallResult<UInt64> {
        syscall(t) { doMmap(t, $0, addr: addr, length: length, prot: prot, flags: flags, file: file, offset: offset) }
    }

    func doMmap(_ t: Task, _ mm: MM, addr: UInt64, length: UInt64, prot: Prot, flags: MapFlags, file: Int?, offset: UInt64) -> SyscallResult<UInt64> {
        guard length > 0 else { return .failure(.EINVAL) }
        guard flags.contains(.shared) != flags.contains(.private) else { return .failure(.EINVAL) }
        guard offset & Page.offsetMask == 0 else { return .failure(.EINVAL) }
        if flags.contains(.hugetlb) { return hugetlbMmap(t, mm, addr: addr, length: length, prot: prot, flags: flags, file: file) }
        let (rounded, o) = length.addingReportingOverflow(Page.offsetMask)
        guard !o else { return .failure(.ENOMEM) }
        let len = rounded & ~Page.offsetMask
        guard len <= mm.taskSize else { return .failure(.ENOMEM) }
        guard file == nil || files.indices.contains(file!) else { return .failure(.EBADF) }
        let fixed = flags.contains(.fixed) || flags.contains(.fixedNoreplace)
        var start: UInt64
        if fixed {
            guard addr & Page.offsetMask == 0 else { return .failure(.EINVAL) }
            guard addr <= mm.taskSize, len <= mm.taskSize - addr else { return .failure(.ENOMEM) }
            start = addr
            if flags.contains(.fixedNoreplace) && !flags.contains(.fixed) && !vmaRange(mm, start, start + len).isEmpty {
                return .failure(.EEXIST)
            }
        } else {
            guard let a = unmappedArea(mm, len: len, hint: addr & ~Page.offsetMask, anonymous: file == nil && !flags.contains(.shared)) else { return .failure(.ENOMEM) }
            start = a
        }
        guard mm.vmas.count < Self.maxMapCount else { return .failure(.ENOMEM) }
        var vmFlags = VMFlags(prot: prot).union([.mayRead, .mayWrite, .mayExec])
        let kind: VMAKind
        if flags.contains(.shared) {
            vmFlags.formUnion([.shared, .mayShare])
            if let f = file { kind = .file(f) } else { kind = .shmem(newShmemObject(pages: len >> Page.shift)) }
        } else {
            kind = file.map { .file($0) } ?? .anon
        }
        if flags.contains(.growsdown) { vmFlags.insert(.growsdown) }
        if flags.contains(.noreserve) { vmFlags.insert(.noreserve) }
        if flags.contains(.locked) || mm.lockFuture { vmFlags.insert(.locked) }
        // accountable_mapping(): private writable memory (and shmem, charged by its object)
        // is charged to Committed_AS unless MAP_NORESERVE.
        let accountable = !flags.contains(.noreserve) && (
            (!flags.contains(.shared) && prot.contains(.write)) || (flags.contains(.shared) && file == nil))
        if accountable {
            guard vmEnoughMemory(len >> Page.shift, task: t, mm: mm) else { return .failure(.ENOMEM) }
            vmFlags.insert(.account)
        }
        // MAP_FIXED replaces what was there (do_vmi_munmap() first); when that fails (a
        // hugetlb VMA cut off its huge page boundaries: EINVAL), mmap_region() fails with it.
        if flags.contains(.fixed) && !vmaRange(mm, start, start + len).isEmpty {
            if case .failure(let e) = doMunmap(t, mm, start, len) { return .failure(e) }
        }
        if accountable { committedAS += Int64(len >> Page.shift) }
        let pgoff: UInt64 = file != nil || flags.contains(.shared) ? offset >> Page.shift : start >> Page.shift
        let vma = VMA(start: start, end: start + len, flags: vmFlags, pgoff: pgoff, kind: kind)
        let at = mm.findVMAIndex(start) ?? mm.vmas.count
        mm.vmas.insert(vma, at: at)
        rmapVMAInserted(mm, at)
        mm.statAccount(vmFlags, Int64(len >> Page.shift))
        if vmFlags.contains(.locked) { mm.lockedVM += Int64(len >> Page.shift) }
        if !flags.contains(.shared) { mergeVMA(mm, at) }
        if flags.contains(.populate) || vmFlags.contains(.locked) {
            populate(t, mm, start, start + len)
        }
        return .success(start)
    }

    /// __mm_populate() / populate_vma_page_range(): fault every page in as get_user_pages()
    /// does, writing for private writable mappings (so no zero page is mapped). A PROT_NONE
    /// VMA is not faulted in (populate_vma_page_range() sets FOLL_FORCE only for an accessible
    /// one, and check_vma_flags() refuses the rest with -EFAULT): with `ignoreErrors`
    /// (mmap's MAP_POPULATE/MAP_LOCKED, mlockall()) it is skipped, else (mlock(),
    /// MADV_POPULATE_*) populating stops there and the result is false.
    @discardableResult
    func populate(_ t: Task, _ mm: MM, _ start: UInt64, _ end: UInt64, forceWrite: Bool? = nil, ignoreErrors: Bool = true) -> Bool {
        var a = start
        while a < end {
            guard let i = mm.findVMAIndex(a), mm.vmas[i].start <= a else { return true }
            let v = mm.vmas[i]
            guard !v.flags.isDisjoint(with: [.read, .write, .exec]) else {
                if !ignoreErrors { return false }
                a = v.end
                continue
            }
            let write = forceWrite ?? (v.flags.contains(.write) && !v.flags.contains(.shared))
            let stop = min(end, v.end)
            while a < stop {
                if needsFault(mm, a, write: write) {
                    _ = try? handleMMFault(t, mm, i, a, write ? .write : .read)
                }
                a += Page.size
            }
        }
        return true
    }

    /// follow_page_pte(): would get_user_pages() need a fault for this page?
    func needsFault(_ mm: MM, _ a: UInt64, write: Bool) -> Bool {
        if let pud = mm.pageTable.slot(VirtAddr(a), level: .pud), case .leaf = PTEFormat.classify(pud.pointee, level: .pud, arch: arch),
           let leaf = PTEFormat.decode(pud.pointee, level: .pud, arch: arch) {
            return write && !leaf.writable
        }
        if let pmd = mm.pageTable.slot(VirtAddr(a), level: .pmd), case .leaf = PTEFormat.classify(pmd.pointee, level: .pmd, arch: arch),
           let leaf = PTEFormat.decode(pmd.pointee, level: .pmd, arch: arch) {
            return write && !leaf.writable
        }
        guard let slot = mm.pageTable.slot(VirtAddr(a), level: .pte), slot.pointee != 0,
              let leaf = PTEFormat.decode(slot.pointee, level: .pte, arch: arch), leaf.present else { return true }
        return write && !leaf.writable
    }

    // MARK: munmap

    /// munmap()
    public func munmap(_ t: Task, addr: UInt64, length: UInt64) -> SyscallResult<Void> {
        syscall(t) { mm in
            guard addr & Page.offsetMask == 0, length > 0 else { return .failure(.EINVAL) }
            let len = (length &+ Page.offsetMask) & ~Page.offsetMask
            guard len != 0, addr <= mm.taskSize, len <= mm.taskSize - addr else { return .failure(.EINVAL) }
            return doMunmap(t, mm, addr, len)
        }
    }

    /// do_vmi_munmap(): split at the edges, take the VMAs out, unmap their pages and page
    /// tables through one mmu_gather, give back their accounting.
    func doMunmap(_ t: Task, _ mm: MM, _ start: UInt64, _ len: UInt64) -> SyscallResult<Void> {
        let end = start + len
        guard !vmaRange(mm, start, end).isEmpty else { return .success(()) }
        guard hugetlbSplitAllowed(mm, start, end) else { return .failure(.EINVAL) }
        splitVMA(mm, at: start)
        splitVMA(mm, at: end)
        let range = vmaRange(mm, start, end)
        let removed = Array(mm.vmas[range])
        let floor = range.lowerBound > 0 ? mm.vmas[range.lowerBound - 1].end : 0
        let ceiling = range.upperBound < mm.vmas.count ? mm.vmas[range.upperBound].start : 0
        mm.vmas.removeSubrange(range)
        let tlb = MMUGather(machine: self, mm: mm)
        unmapRegion(tlb, mm, removed, floor: floor, ceiling: ceiling)
        tlb.finish()
        for v in removed {
            rmapVMARemoved(v)
            mm.statAccount(v.flags, -Int64(v.pages))
            if v.flags.contains(.account) { committedAS -= Int64(v.pages) }
            if v.flags.contains(.locked) { mm.lockedVM -= Int64(v.pages) }
            if case .shmem(let id) = v.kind { releaseShmemMapping(id) }
            if v.flags.contains(.hugetlb) { hugetlbVMAClose(mm, v) }
        }
        return .success(())
    }

    // MARK: brk

    /// brk(): move the program break; returns the new break (the old one when refused).
    @discardableResult
    public func brk(_ t: Task, _ newBrk: UInt64) -> UInt64 {
        guard t.state == .running, let mm = t.mm else { return 0 }
        run(t, mm)
        if newBrk < mm.startBrk { return mm.brk }
        let newAligned = (newBrk + Page.offsetMask) & ~Page.offsetMask
        let oldAligned = (mm.brk + Page.offsetMask) & ~Page.offsetMask
        if newAligned == oldAligned {
            mm.brk = newBrk
            return mm.brk
        }
        if newBrk <= mm.brk {
            // Shrinking: do_vmi_align_munmap() of the freed tail.
            _ = doMunmap(t, mm, newAligned, oldAligned - newAligned)
            mm.brk = newBrk
            return mm.brk
        }
        // Growing: the new range and a guard page above must be free.
        guard newAligned + Page.size <= mm.taskSize, vmaRange(mm, oldAligned, newAligned + Page.size).isEmpty else { return mm.brk }
        let pages = (newAligned - oldAligned) >> Page.shift
        guard vmEnoughMemory(pages, task: t, mm: mm) else { return mm.brk }
        // do_brk_flags(): extend the heap VMA when it ends at the old break, else a new one.
        let flags: VMFlags = [.read, .write, .mayRead, .mayWrite, .mayExec, .account]
        committedAS += Int64(pages)
        mm.statAccount(flags, Int64(pages))
        if let i = mm.findVMAIndex(oldAligned - 1), mm.vmas[i].end == oldAligned, mm.vmas[i].flags == flags,
           mm.vmas[i].kind == .heap {
            mm.vmas[i].end = newAligned
            rmapVMAResized(mm, i)
        } else {
            let v = VMA(start: oldAligned, end: newAligned, flags: flags, pgoff: oldAligned >> Page.shift, kind: .heap)
            let at = mm.findVMAIndex(oldAligned) ?? mm.vmas.count
            mm.vmas.insert(v, at: at)
            rmapVMAInserted(mm, at)
        }
        mm.brk = newBrk
        return mm.brk
    }
}

extension Result {
    /// The error, if this is a failure.
    public var failureValue: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
