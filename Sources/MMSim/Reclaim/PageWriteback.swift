// fs/fs-writeback.c wakeup_flusher_threads(), mm/page-writeback.c: the flusher writing dirty page cache back when reclaim finds it.

extension Machine {
    /// wakeup_flusher_threads(WB_REASON_VMSCAN): reclaim met only dirty file folios not yet
    /// queued for I/O, so the flusher writes back every dirty page-cache folio, file by file
    /// in creation order and by index (writeback_sb_inodes() over the dirty inodes): each
    /// goes from NR_FILE_DIRTY to NR_WRITEBACK (pgpgout) and completes as the I/O model says;
    /// one that reclaim marked PG_reclaim then rotates to the tail of its inactive list.
    func wakeupFlusherThreads() {
        guard counters[.nrDirty] > 0 else { return }
        for f in files {
            for case let pfn? in f.cache {
                let p = frames[pfn]
                if p.pointee.flags.contains(.dirty) && !p.pointee.flags.contains(.writeback) { fileWriteout(pfn, p) }
            }
        }
    }
}
