// mm/shmem.c: shared anonymous memory: an unlinked shmem object whose pages live in its page cache.

/// One shmem object (the file behind a MAP_SHARED|MAP_ANONYMOUS mapping).
final class ShmemObject {
    let id: Int
    /// Page-cache pages by index (nil = hole).
    var pages: [PFN?]
    /// Mappings referring to the object (the file's reference count, as far as we need it).
    var mappings = 1
    init(id: Int, pages: UInt64) {
        self.id = id
        self.pages = [PFN?](repeating: nil, count: Int(pages))
    }
}

extension Machine {
    func newShmemObject(pages: UInt64) -> Int {
        let id = shmemObjects.count
        shmemObjects.append(ShmemObject(id: id, pages: pages))
        return id
    }

    /// A split or copied VMA holds another reference (vma_dup / get_file()).
    func retainShmemMapping(_ id: Int) { shmemObjects[id].mappings += 1 }

    /// fput() of a mapping: the last one truncates the object and frees its pages.
    func releaseShmemMapping(_ id: Int) {
        let obj = shmemObjects[id]
        obj.mappings -= 1
        guard obj.mappings == 0 else { return }
        for case let pfn? in obj.pages {
            counters.add(.nrShmem, -1)
            counters.add(.nrFilePages, -1)
            frames[pfn].pointee.mapping = 0
            putPage(pfn)
        }
        obj.pages.removeAll()
    }

    /// shmem_fault(): find the page at this index, or allocate it (a read does not map the
    /// zero page), and map it shared (RSS shmem, nr_mapped).
    func shmemFault(_ mm: MM, _ vma: VMA, _ id: Int, _ va: VirtAddr, _ slot: UnsafeMutablePointer<UInt64>, write: Bool) throws(FaultError) {
        let obj = shmemObjects[id]
        // A shmem VMA's pgoff is its offset into the object (0 for a fresh mapping).
        let idx = Int(vma.pgoff(of: va.raw))
        guard idx < obj.pages.count else { throw .sigbus }
        let pfn: PFN
        if let p = obj.pages[idx] {
            pfn = p
            frames[pfn].pointee.refcount += 1
        } else {
            guard let p = allocator.allocPages([.highuserMovable, .zero]) else { throw .oom }
            pfn = p
            let m = frames[pfn]
            m.pointee.flags.insert([.swapbacked, .uptodate])
            m.pointee.mapping = UInt32(truncatingIfNeeded: 0x4000_0000 | id)
            m.pointee.index = UInt64(idx)
            obj.pages[idx] = pfn
            counters.add(.nrShmem, 1)
            counters.add(.nrFilePages, 1)
            folioAddLRU(pfn, m)
            // The page cache holds one reference, the mapping another.
            m.pointee.refcount = 2
        }
        let m = frames[pfn]
        m.pointee.mapcount += 1
        if m.pointee.mapcount == 1 { counters.add(.nrMapped, 1) }
        mm.addRSS(.shmemPages, 1)
        slot.pointee = PTEFormat.encode(LeafEntry(pfn: pfn, writable: vma.flags.contains(.write), user: true, accessed: true,
                                                  dirty: write, noExec: !vma.flags.contains(.exec)), arch: arch)
    }

    /// folio_remove_rmap_pte() for a page-cache page.
    func removeFileRmap(_ pfn: PFN) {
        frames[pfn].pointee.mapcount -= 1
        if frames[pfn].pointee.mapcount == 0 { counters.add(.nrMapped, -1) }
    }
}
