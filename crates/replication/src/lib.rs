//! The replication engine, in two halves that meet only through **batches**
//! (bytes that travel through the cache storage account):
//!
//! - the **agent** side (`agent.rs`) reads a source disk's change journal
//!   past its cursor, collects the changed blocks into a batch, and moves its
//!   cursor once the batch is safely in the cache;
//! - the **service** side (`service.rs`) appends each batch to the item's
//!   open point, **seals** the open point into a recovery point (one
//!   compacted delta per disk), materializes any retained point as a disk
//!   (base + deltas up to it) and prunes old points into the base.
//!
//! Crash safety: every file a manifest names is synced before the manifest
//! that names it is atomically replaced, so a point is fully there or
//! absent; a torn append to the open point is cut back to the length the
//! manifest records; pruning records its merge before doing it and redoes it
//! on open (applying a delta is idempotent).

mod agent;
mod delta;
mod manifest;
mod service;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use recoverite_blockstore::{copy_sparse, data_ranges, BlockStore, BLOCK};

pub use agent::{check_batch, Batch};
pub use manifest::{AgentState, DiskReplica, Manifest, PointKind, RecoveryPoint};

#[derive(Clone, Debug)]
pub struct Engine {
    dir: PathBuf,
    blocks: BlockStore,
    /// One change at a time per item (agents, the service loop and
    /// failovers share an item), items in parallel: the locks are striped by
    /// item, so a whole-disk copy of one item holds up only its stripe.
    locks: std::sync::Arc<[std::sync::Mutex<()>; STRIPES]>,
}

/// Lock stripes: items hashing to different stripes never wait on each other.
const STRIPES: usize = 64;

/// The stripe of an item (FNV-1a: stable, cheap, well spread for ids).
fn stripe(item: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in item.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % STRIPES as u64) as usize
}

/// One disk to protect: the source's block-store id and size.
#[derive(Clone, Debug)]
pub struct SourceDisk {
    pub unique_id: String,
    pub size: u64,
    /// A disk already holding (most of) the same bytes in the recovery
    /// region: initial replication compares against it and sends only the
    /// difference (reprotect), instead of a full copy.
    pub seed: Option<String>,
}

impl Engine {
    pub fn open(data_dir: &Path, blocks: BlockStore) -> std::io::Result<Engine> {
        let dir = data_dir.join("replication");
        std::fs::create_dir_all(&dir)?;
        Ok(Engine {
            dir,
            blocks,
            locks: std::sync::Arc::new(std::array::from_fn(|_| std::sync::Mutex::new(()))),
        })
    }

    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    fn guard(&self, item: &str) -> std::sync::MutexGuard<'_, ()> {
        self.locks[stripe(item)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn item_dir(&self, item: &str) -> PathBuf {
        self.dir.join(item)
    }

    /// Initial replication: notes where each disk's journal ends (the agent
    /// ships from there), then builds the base — a copy of the disk, or the
    /// seed patched with the blocks that differ. Writes racing the copy are in
    /// the journal past that mark and are shipped again with the first batch.
    pub fn enable(
        &self,
        item: &str,
        disks: &[SourceDisk],
        time: &str,
    ) -> std::io::Result<Manifest> {
        let _g = self.guard(item);
        let dir = self.item_dir(item);
        std::fs::create_dir_all(&dir)?;
        let mut m = Manifest::default();
        let mut agent = AgentState::default();
        for (i, d) in disks.iter().enumerate() {
            agent
                .cursors
                .push(journal_len(&self.blocks.journal(&d.unique_id))?);
            let src = self.blocks.image(&d.unique_id);
            let base = base_path(&dir, i);
            m.seeded_bytes += match &d.seed {
                Some(seed) => {
                    copy_sparse(&self.blocks.image(seed), &base, d.size)?;
                    patch_differences(&src, &base, d.size)?
                }
                None => {
                    copy_sparse(&src, &base, d.size)?;
                    allocated(&base)?
                }
            };
            m.disks.push(DiskReplica {
                source: d.unique_id.clone(),
                size: d.size,
            });
            m.open.push(0);
        }
        m.base_time = time.to_string();
        manifest::save(&dir.join("agent.json"), &agent)?;
        m.save(&dir)?;
        Ok(m)
    }

    pub fn manifest(&self, item: &str) -> std::io::Result<Manifest> {
        let _g = self.guard(item);
        self.manifest_locked(item)
    }

    /// Bytes the item's base and deltas take on disk.
    pub fn stored_bytes(&self, item: &str) -> std::io::Result<u64> {
        let mut total = 0;
        for e in std::fs::read_dir(self.item_dir(item))? {
            total += allocated(&e?.path())?;
        }
        Ok(total)
    }

    /// Stops replication and deletes every point.
    pub fn disable(&self, item: &str) -> std::io::Result<()> {
        let _g = self.guard(item);
        match std::fs::remove_dir_all(self.item_dir(item)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// In-process convenience: the agent ships everything written so far, the
    /// service applies it and seals a point.
    pub fn take_point(
        &self,
        item: &str,
        kind: PointKind,
        time: &str,
    ) -> std::io::Result<RecoveryPoint> {
        if let Some(b) = self.ship(item)? {
            self.apply(item, &b.bytes, time)?;
            self.shipped(item, &b)?;
        }
        self.seal(item, kind, time)
    }
}

fn allocated(p: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p)?.blocks() * 512)
}

/// Writes into `base` every block of `src` that differs from it; returns the
/// bytes that had to be sent.
fn patch_differences(src: &Path, base: &Path, size: u64) -> std::io::Result<u64> {
    let mut s = File::open(src)?;
    let mut b = OpenOptions::new().read(true).write(true).open(base)?;
    // Only blocks allocated in either file can differ (holes read as zeros).
    let mut blocks = std::collections::BTreeSet::new();
    for (start, end) in data_ranges(&s)?.into_iter().chain(data_ranges(&b)?) {
        let end = end.min(size);
        if start < end {
            blocks.extend(start / BLOCK..=(end - 1) / BLOCK);
        }
    }
    let (mut x, mut y) = (vec![0u8; BLOCK as usize], vec![0u8; BLOCK as usize]);
    let mut sent = 0;
    for blk in blocks {
        let off = blk * BLOCK;
        let n = BLOCK.min(size - off) as usize;
        s.seek(SeekFrom::Start(off))?;
        s.read_exact(&mut x[..n])?;
        b.seek(SeekFrom::Start(off))?;
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            b.seek(SeekFrom::Start(off))?;
            b.write_all(&x[..n])?;
            sent += n as u64;
        }
    }
    b.sync_all()?;
    Ok(sent)
}

fn base_path(dir: &Path, disk: usize) -> PathBuf {
    dir.join(format!("base-{disk}.img"))
}

fn delta_path(dir: &Path, seq: u64, disk: usize) -> PathBuf {
    dir.join(format!("point-{seq}-{disk}.delta"))
}

fn open_path(dir: &Path, disk: usize) -> PathBuf {
    dir.join(format!("open-{disk}.changes"))
}

fn not_found(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string())
}

fn remove_if_there(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn journal_len(p: &Path) -> std::io::Result<u64> {
    match std::fs::metadata(p) {
        Ok(m) => Ok(m.len() / 16 * 16),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
