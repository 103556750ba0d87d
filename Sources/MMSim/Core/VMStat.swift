// include/linux/mmzone.h, include/linux/vm_event_item.h, mm/vmstat.c: every counter, in /proc/vmstat order.

/// Kind of a vmstat item, as the kernel splits them into enums.
public enum VMStatKind: Sendable { case zone, numa, node, global, event }

/// Every counter of /proc/vmstat in the order Linux 6.18 prints it (x86-64, with the
/// CONFIG_DEBUG_TLBFLUSH counters always present). `name` is the exact /proc spelling.
public enum VMStat: Int, CaseIterable, Sendable {
    // enum zone_stat_item
    case nrFreePages
    case nrFreePagesBlocks
    case nrZoneInactiveAnon
    case nrZoneActiveAnon
    case nrZoneInactiveFile
    case nrZoneActiveFile
    case nrZoneUnevictable
    case nrZoneWritePending
    case nrMlock
    case nrBounce
    case nrZspages
    case nrFreeCma
    // enum numa_stat_item
    case numaHit
    case numaMiss
    case numaForeign
    case numaInterleave
    case numaLocal
    case numaOther
    // enum node_stat_item
    case nrInactiveAnon
    case nrActiveAnon
    case nrInactiveFile
    case nrActiveFile
    case nrUnevictable
    case nrSlabReclaimable
    case nrSlabUnreclaimable
    case nrIsolatedAnon
    case nrIsolatedFile
    case workingsetNodes
    case workingsetRefaultAnon
    case workingsetRefaultFile
    case workingsetActivateAnon
    case workingsetActivateFile
    case workingsetRestoreAnon
    case workingsetRestoreFile
    case workingsetNodereclaim
    case nrAnonPages
    case nrMapped
    case nrFilePages
    case nrDirty
    case nrWriteback
    case nrWritebackTemp
    case nrShmem
    case nrShmemHugepages
    case nrShmemPmdmapped
    case nrFileHugepages
    case nrFilePmdmapped
    case nrAnonTransparentHugepages
    case nrVmscanWrite
    case nrVmscanImmediateReclaim
    case nrDirtied
    case nrWritten
    case nrThrottledWritten
    case nrKernelMiscReclaimable
    case nrFollPinAcquired
    case nrFollPinReleased
    case nrKernelStack
    case nrPageTablePages
    case nrSecPageTablePages
    case nrIommuPages
    case nrSwapcached
    case pgpromoteSuccess
    case pgpromoteCandidate
    case pgdemoteKswapd
    case pgdemoteDirect
    case pgdemoteKhugepaged
    case pgdemoteProactive
    case nrHugetlb
    case nrBalloonPages
    // enum vm_stat_item
    case nrDirtyThreshold
    case nrDirtyBackgroundThreshold
    case nrMemmapPages
    case nrMemmapBootPages
    // enum vm_event_item
    case pgpgin
    case pgpgout
    case pswpin
    case pswpout
    case pgallocDma
    case pgallocDma32
    case pgallocNormal
    case pgallocMovable
    case allocstallDma
    case allocstallDma32
    case allocstallNormal
    case allocstallMovable
    case pgskipDma
    case pgskipDma32
    case pgskipNormal
    case pgskipMovable
    case pgfree
    case pgactivate
    case pgdeactivate
    case pglazyfree
    case pgfault
    case pgmajfault
    case pglazyfreed
    case pgrefill
    case pgreuse
    case pgstealKswapd
    case pgstealDirect
    case pgstealKhugepaged
    case pgstealProactive
    case pgscanKswapd
    case pgscanDirect
    case pgscanKhugepaged
    case pgscanProactive
    case pgscanDirectThrottle
    case pgscanAnon
    case pgscanFile
    case pgstealAnon
    case pgstealFile
    case zoneReclaimSuccess
    case zoneReclaimFailed
    case pginodesteal
    case slabsScanned
    case kswapdInodesteal
    case kswapdLowWmarkHitQuickly
    case kswapdHighWmarkHitQuickly
    case pageoutrun
    case pgrotated
    case dropPagecache
    case dropSlab
    case oomKill
    case numaPteUpdates
    case numaHugePteUpdates
    case numaHintFaults
    case numaHintFaultsLocal
    case numaPagesMigrated
    case pgmigrateSuccess
    case pgmigrateFail
    case thpMigrationSuccess
    case thpMigrationFail
    case thpMigrationSplit
    case compactMigrateScanned
    case compactFreeScanned
    case compactIsolated
    case compactStall
    case compactFail
    case compactSuccess
    case compactDaemonWake
    case compactDaemonMigrateScanned
    case compactDaemonFreeScanned
    case htlbBuddyAllocSuccess
    case htlbBuddyAllocFail
    case unevictablePgsCulled
    case unevictablePgsScanned
    case unevictablePgsRescued
    case unevictablePgsMlocked
    case unevictablePgsMunlocked
    case unevictablePgsCleared
    case unevictablePgsStranded
    case thpFaultAlloc
    case thpFaultFallback
    case thpFaultFallbackCharge
    case thpCollapseAlloc
    case thpCollapseAllocFailed
    case thpFileAlloc
    case thpFileFallback
    case thpFileFallbackCharge
    case thpFileMapped
    case thpSplitPage
    case thpSplitPageFailed
    case thpDeferredSplitPage
    case thpUnderusedSplitPage
    case thpSplitPmd
    case thpScanExceedNonePte
    case thpScanExceedSwapPte
    case thpScanExceedSharePte
    case thpSplitPud
    case thpZeroPageAlloc
    case thpZeroPageAllocFailed
    case thpSwpout
    case thpSwpoutFallback
    case balloonInflate
    case balloonDeflate
    case balloonMigrate
    case nrTlbRemoteFlush
    case nrTlbRemoteFlushReceived
    case nrTlbLocalFlushAll
    case nrTlbLocalFlushOne
    case swapRa
    case swapRaHit
    case swpinZero
    case swpoutZero
    case ksmSwpinCopy
    case cowKsm
    case zswpin
    case zswpout
    case zswpwb
    case directMapLevel2Splits
    case directMapLevel3Splits
    case directMapLevel2Collapses
    case directMapLevel3Collapses

    /// The /proc/vmstat spelling.
    public var name: String { Self.names[rawValue] }
    public static let names: [String] = [
        "nr_free_pages", "nr_free_pages_blocks", "nr_zone_inactive_anon", "nr_zone_active_anon",
        "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending",
        "nr_mlock", "nr_bounce", "nr_zspages", "nr_free_cma",
        "numa_hit", "numa_miss", "numa_foreign", "numa_interleave",
        "numa_local", "numa_other", "nr_inactive_anon", "nr_active_anon",
        "nr_inactive_file", "nr_active_file", "nr_unevictable", "nr_slab_reclaimable",
        "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file", "workingset_nodes",
        "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon", "workingset_activate_file",
        "workingset_restore_anon", "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages",
        "nr_mapped", "nr_file_pages", "nr_dirty", "nr_writeback",
        "nr_writeback_temp", "nr_shmem", "nr_shmem_hugepages", "nr_shmem_pmdmapped",
        "nr_file_hugepages", "nr_file_pmdmapped", "nr_anon_transparent_hugepages", "nr_vmscan_write",
        "nr_vmscan_immediate_reclaim", "nr_dirtied", "nr_written", "nr_throttled_written",
        "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired", "nr_foll_pin_released", "nr_kernel_stack",
        "nr_page_table_pages", "nr_sec_page_table_pages", "nr_iommu_pages", "nr_swapcached",
        "pgpromote_success", "pgpromote_candidate", "pgdemote_kswapd", "pgdemote_direct",
        "pgdemote_khugepaged", "pgdemote_proactive", "nr_hugetlb", "nr_balloon_pages",
        "nr_dirty_threshold", "nr_dirty_background_threshold", "nr_memmap_pages", "nr_memmap_boot_pages",
        "pgpgin", "pgpgout", "pswpin", "pswpout",
        "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_movable",
        "allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable",
        "pgskip_dma", "pgskip_dma32", "pgskip_normal", "pgskip_movable",
        "pgfree", "pgactivate", "pgdeactivate", "pglazyfree",
        "pgfault", "pgmajfault", "pglazyfreed", "pgrefill",
        "pgreuse", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
        "pgsteal_proactive", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged",
        "pgscan_proactive", "pgscan_direct_throttle", "pgscan_anon", "pgscan_file",
        "pgsteal_anon", "pgsteal_file", "zone_reclaim_success", "zone_reclaim_failed",
        "pginodesteal", "slabs_scanned", "kswapd_inodesteal", "kswapd_low_wmark_hit_quickly",
        "kswapd_high_wmark_hit_quickly", "pageoutrun", "pgrotated", "drop_pagecache",
        "drop_slab", "oom_kill", "numa_pte_updates", "numa_huge_pte_updates",
        "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success",
        "pgmigrate_fail", "thp_migration_success", "thp_migration_fail", "thp_migration_split",
        "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
        "compact_fail", "compact_success", "compact_daemon_wake", "compact_daemon_migrate_scanned",
        "compact_daemon_free_scanned", "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail", "unevictable_pgs_culled",
        "unevictable_pgs_scanned", "unevictable_pgs_rescued", "unevictable_pgs_mlocked", "unevictable_pgs_munlocked",
        "unevictable_pgs_cleared", "unevictable_pgs_stranded", "thp_fault_alloc", "thp_fault_fallback",
        "thp_fault_fallback_charge", "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc",
        "thp_file_fallback", "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page",
        "thp_split_page_failed", "thp_deferred_split_page", "thp_underused_split_page", "thp_split_pmd",
        "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte", "thp_scan_exceed_share_pte", "thp_split_pud",
        "thp_zero_page_alloc", "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback",
        "balloon_inflate", "balloon_deflate", "balloon_migrate", "nr_tlb_remote_flush",
        "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "swap_ra",
        "swap_ra_hit", "swpin_zero", "swpout_zero", "ksm_swpin_copy",
        "cow_ksm", "zswpin", "zswpout", "zswpwb",
        "direct_map_level2_splits", "direct_map_level3_splits", "direct_map_level2_collapses", "direct_map_level3_collapses",
    ]
    public static let firstNuma = VMStat.numaHit
    public static let firstNode = VMStat.nrInactiveAnon
    public static let firstGlobal = VMStat.nrDirtyThreshold
    public static let firstEvent = VMStat.pgpgin
    public var kind: VMStatKind {
        if rawValue < Self.firstNuma.rawValue { return .zone }
        if rawValue < Self.firstNode.rawValue { return .numa }
        if rawValue < Self.firstGlobal.rawValue { return .node }
        if rawValue < Self.firstEvent.rawValue { return .global }
        return .event
    }
    /// Looks an item up by its /proc/vmstat name.
    public init?(name: String) {
        guard let i = Self.names.firstIndex(of: name) else { return nil }
        self.init(rawValue: i)
    }
}
