//! Change-journal truncation: once a minute, the records every consumer of a
//! disk's journal has read past — Site Recovery's agent (its cursor moves
//! only after the batch is durably in the cache) and Azure VM backup (the
//! newest point's position) — are freed (`BlockStore::release_journal`).
//! A disk nobody replicates or backs up keeps its journal whole.

use std::collections::HashMap;

use recoverite_arm::ArmError;
use recoverite_blockstore::BlockStore;
use recoverite_replication::Engine;
use recoverite_store::Store;

/// Releases what no consumer holds; returns the disks released.
pub fn release(store: &Store, blocks: &BlockStore, engine: &Engine) -> Result<usize, ArmError> {
    let io = |e: std::io::Error| ArmError::internal(e.to_string());
    // Lengths first: a consumer that starts after this holds a position at
    // or past them, so nothing it needs is freed.
    let disks = store.view(|r| {
        recoverite_rp_compute::managed_disk::list(r, "", recoverite_rp_compute::disks::DISK_TYPE)
    })?;
    let mut lens = HashMap::new();
    for d in &disks {
        let u = &d.properties.unique_id;
        lens.insert(u.clone(), blocks.journal_len(u).map_err(io)?);
    }
    let mut holds: HashMap<String, u64> = HashMap::new();
    let backup = store.view(recoverite_rp_backup::points::journal_holds)?;
    for (u, pos) in engine
        .journal_holds()
        .map_err(io)?
        .into_iter()
        .chain(backup)
    {
        let h = holds.entry(u).or_insert(pos);
        *h = (*h).min(pos);
    }
    let mut released = 0;
    for (u, hold) in holds {
        if let Some(len) = lens.get(&u) {
            blocks.release_journal(&u, hold.min(*len)).map_err(io)?;
            released += 1;
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recoverite_blockstore::Journal;
    use recoverite_rp_compute::disks;
    use std::os::unix::fs::MetadataExt;

    fn allocated(b: &BlockStore, u: &str) -> u64 {
        std::fs::metadata(b.journal(u)).unwrap().blocks() * 512
    }

    #[test]
    fn shipped_records_are_freed_and_unconsumed_journals_kept() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("state.redb")).unwrap();
        let blocks = BlockStore::open(d.path()).unwrap();
        let engine = Engine::open(d.path(), blocks.clone()).unwrap();
        for (name, u) in [("replicated", "u1"), ("alone", "u2")] {
            blocks.create(u, 64 << 20).unwrap();
            let id = format!(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/{name}"
            );
            let disk = disks::Disk::new(disks::NewDisk {
                id: &id,
                kind: disks::DISK_TYPE,
                location: "westus",
                sku: "Standard_LRS",
                size_bytes: 64 << 20,
                unique_id: u,
                creation: disks::CreationData {
                    create_option: "Empty".into(),
                    source_resource_id: None,
                },
                os_type: None,
            });
            store.write(|tx| disk.save(tx)).unwrap();
        }
        engine
            .enable(
                "item",
                &[recoverite_replication::SourceDisk {
                    unique_id: "u1".into(),
                    seed: None,
                    size: 64 << 20,
                }],
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
        for u in ["u1", "u2"] {
            let mut j = Journal::open(&blocks.journal(u)).unwrap();
            for i in 0..20_000u64 {
                j.record((i % 4096) * 4096, 4096).unwrap();
            }
            j.sync().unwrap();
        }
        // Nothing shipped yet: nothing freed.
        release(&store, &blocks, &engine).unwrap();
        assert!(allocated(&blocks, "u1") >= 320_000);
        while let Some(b) = engine.ship("item").unwrap() {
            engine.shipped("item", &b).unwrap();
        }
        assert_eq!(release(&store, &blocks, &engine).unwrap(), 1);
        assert!(
            allocated(&blocks, "u1") < 8192,
            "{}",
            allocated(&blocks, "u1")
        );
        assert!(
            allocated(&blocks, "u2") >= 320_000,
            "a journal nobody consumes stays"
        );
    }
}
