//! The replication batch decoder (as the service checks a batch read from a
//! cache account) and the change-journal decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Disks of odd sizes too: the last block of a disk is short.
    let sizes = [1 << 20, 3 * 65536 + 512, 0];
    let _ = recoverite_replication::check_batch(data, &sizes);
    let _ = recoverite_replication::check_batch(data, &sizes[..1]);
    for (off, len) in recoverite_blockstore::journal_records(data) {
        if let Some(r) = recoverite_blockstore::record_blocks(off, len, sizes[1]) {
            assert!(*r.end() * recoverite_blockstore::BLOCK < sizes[1]);
        }
    }
});
