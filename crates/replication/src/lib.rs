//! The replication engine. For a protected item it keeps, per disk, a
//! **base image** (the disk as it was at the oldest retained point) and one
//! **delta** per recovery point holding the blocks that changed since the
//! point before, read from the source disk after its change journal named
//! them. Any retained point is materialized as base + deltas up to it.
//!
//! Crash safety: a delta is written and synced before the manifest that
//! lists it is atomically replaced (write, sync, rename), so a point is
//! either fully there or absent; pruning records the merge it is about to
//! do before doing it, and redoes it on open (applying a delta is idempotent).

mod delta;
mod manifest;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use recoverite_blockstore::{copy_sparse, BlockStore, BLOCK};

pub use manifest::{DiskReplica, Manifest, PointKind, RecoveryPoint};

#[derive(Clone, Debug)]
pub struct Engine {
    dir: PathBuf,
    blocks: BlockStore,
    /// One change at a time: the replication loop and failovers share items.
    lock: std::sync::Arc<std::sync::Mutex<()>>,
}

/// One disk to protect: the source's block-store id and size.
#[derive(Clone, Debug)]
pub struct SourceDisk {
    pub unique_id: String,
    pub size: u64,
}

impl Engine {
    pub fn open(data_dir: &Path, blocks: BlockStore) -> std::io::Result<Engine> {
        let dir = data_dir.join("replication");
        std::fs::create_dir_all(&dir)?;
        Ok(Engine {
            dir,
            blocks,
            lock: Default::default(),
        })
    }

    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn item_dir(&self, item: &str) -> PathBuf {
        self.dir.join(item)
    }

    /// Initial replication: notes where each disk's journal ends, then copies
    /// the disk into its base. Writes racing the copy are in the journal past
    /// that mark and are shipped again with the first point.
    pub fn enable(
        &self,
        item: &str,
        disks: &[SourceDisk],
        time: &str,
    ) -> std::io::Result<Manifest> {
        let _g = self.guard();
        let dir = self.item_dir(item);
        std::fs::create_dir_all(&dir)?;
        let mut m = Manifest::default();
        for (i, d) in disks.iter().enumerate() {
            let cursor = journal_len(&self.blocks.journal(&d.unique_id))?;
            copy_sparse(
                &self.blocks.image(&d.unique_id),
                &base_path(&dir, i),
                d.size,
            )?;
            m.disks.push(DiskReplica {
                source: d.unique_id.clone(),
                size: d.size,
                cursor,
            });
        }
        m.base_time = time.to_string();
        m.save(&dir)?;
        Ok(m)
    }

    pub fn manifest(&self, item: &str) -> std::io::Result<Manifest> {
        let _g = self.guard();
        self.manifest_locked(item)
    }

    fn manifest_locked(&self, item: &str) -> std::io::Result<Manifest> {
        let dir = self.item_dir(item);
        let m = Manifest::load(&dir)?;
        self.finish_merge(&dir, m)
    }

    /// Takes a recovery point: ships every block the journals name since the
    /// last point into one delta per disk, then publishes the point.
    pub fn take_point(
        &self,
        item: &str,
        kind: PointKind,
        time: &str,
    ) -> std::io::Result<RecoveryPoint> {
        let _g = self.guard();
        let dir = self.item_dir(item);
        let mut m = self.manifest_locked(item)?;
        let seq = m.next_seq;
        let mut shipped = 0;
        let mut cursors = Vec::new();
        for (i, d) in m.disks.iter().enumerate() {
            let (blocks, end) = changed_since(&self.blocks.journal(&d.source), d.cursor)?;
            shipped += delta::write(
                &self.blocks.image(&d.source),
                d.size,
                &blocks,
                &delta_path(&dir, seq, i),
            )?;
            cursors.push(end);
        }
        let point = RecoveryPoint {
            seq,
            time: time.to_string(),
            kind,
            changed_bytes: shipped,
        };
        for (d, c) in m.disks.iter_mut().zip(cursors) {
            d.cursor = c;
        }
        m.points.push(point.clone());
        m.next_seq += 1;
        m.save(&dir)?;
        Ok(point)
    }

    /// Writes disk `disk` as it was at point `seq` into `dst` (a new image).
    pub fn materialize(
        &self,
        item: &str,
        seq: u64,
        disk: usize,
        dst: &Path,
    ) -> std::io::Result<()> {
        let _g = self.guard();
        let dir = self.item_dir(item);
        let m = self.manifest_locked(item)?;
        let d = m
            .disks
            .get(disk)
            .ok_or_else(|| not_found("no such disk in the protected item"))?;
        if !m.points.iter().any(|p| p.seq == seq) {
            return Err(not_found("no such recovery point"));
        }
        copy_sparse(&base_path(&dir, disk), dst, d.size)?;
        let mut out = OpenOptions::new().write(true).open(dst)?;
        for p in m.points.iter().filter(|p| p.seq <= seq) {
            delta::apply(&delta_path(&dir, p.seq, disk), &mut out)?;
        }
        out.sync_all()
    }

    /// Drops the points older than `keep_from` (an RFC 3339 time), folding
    /// their deltas into the base so the oldest kept point stays exact.
    pub fn prune(&self, item: &str, keep_from: &str) -> std::io::Result<usize> {
        let _g = self.guard();
        let dir = self.item_dir(item);
        let mut m = self.manifest_locked(item)?;
        let drop: Vec<u64> = m
            .points
            .iter()
            .filter(|p| p.time.as_str() < keep_from)
            .map(|p| p.seq)
            .collect();
        if drop.is_empty() {
            return Ok(0);
        }
        m.points.retain(|p| !drop.contains(&p.seq));
        m.merging = drop.clone();
        if let Some(last) = drop.last() {
            m.base_time = format!("point {last}");
        }
        m.save(&dir)?;
        self.finish_merge(&dir, m)?;
        Ok(drop.len())
    }

    fn finish_merge(&self, dir: &Path, mut m: Manifest) -> std::io::Result<Manifest> {
        if m.merging.is_empty() {
            return Ok(m);
        }
        for i in 0..m.disks.len() {
            let mut base = OpenOptions::new().write(true).open(base_path(dir, i))?;
            for seq in &m.merging {
                delta::apply(&delta_path(dir, *seq, i), &mut base)?;
            }
            base.sync_all()?;
        }
        for seq in std::mem::take(&mut m.merging) {
            for i in 0..m.disks.len() {
                remove_if_there(&delta_path(dir, seq, i))?;
            }
        }
        m.save(dir)?;
        Ok(m)
    }

    /// Bytes the item's base and deltas take on disk.
    pub fn stored_bytes(&self, item: &str) -> std::io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let mut total = 0;
        for e in std::fs::read_dir(self.item_dir(item))? {
            total += e?.metadata()?.blocks() * 512;
        }
        Ok(total)
    }

    /// Stops replication and deletes every point.
    pub fn disable(&self, item: &str) -> std::io::Result<()> {
        let _g = self.guard();
        match std::fs::remove_dir_all(self.item_dir(item)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn base_path(dir: &Path, disk: usize) -> PathBuf {
    dir.join(format!("base-{disk}.img"))
}

fn delta_path(dir: &Path, seq: u64, disk: usize) -> PathBuf {
    dir.join(format!("point-{seq}-{disk}.delta"))
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

/// The blocks named by journal records from byte `from` on, and where the
/// whole records end (a torn last record is left for the next point).
fn changed_since(journal: &Path, from: u64) -> std::io::Result<(Vec<u64>, u64)> {
    let mut f = match File::open(journal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), from)),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(from))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let whole = data.len() / 16 * 16;
    let mut set = std::collections::BTreeSet::new();
    for rec in data[..whole].chunks_exact(16) {
        let off = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(rec[8..].try_into().expect("8 bytes"));
        if len > 0 {
            set.extend(off / BLOCK..=(off + len - 1) / BLOCK);
        }
    }
    Ok((set.into_iter().collect(), from + whole as u64))
}

#[cfg(test)]
mod tests;
