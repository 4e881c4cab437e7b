//! The replication service's half: apply batches to the open point, seal
//! points, materialize a point as a disk, prune old points into the base.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::manifest::{Manifest, PointKind, RecoveryPoint};
use crate::{agent, base_path, delta, delta_path, not_found, open_path, remove_if_there, Engine};
use recoverite_blockstore::copy_sparse_unsynced;

/// How far ahead of the last applied batch a batch's sequence number may
/// be: far more than a cache ever holds in flight.
pub const MAX_BATCHES_AHEAD: u64 = 1 << 20;

impl Engine {
    pub(crate) fn manifest_locked(&self, item: &str) -> std::io::Result<Manifest> {
        let dir = self.item_dir(item);
        let m = Manifest::load(&dir)?;
        // Cut torn appends back to what the manifest vouches for.
        for i in 0..m.disks.len() {
            let p = open_path(&dir, i);
            let valid = m.open.get(i).copied().unwrap_or(0);
            if std::fs::metadata(&p)
                .map(|md| md.len() > valid)
                .unwrap_or(false)
            {
                if valid == 0 {
                    // A sealed point may share this file (see `delta::compact`):
                    // drop the name, never truncate the bytes.
                    remove_if_there(&p)?;
                } else {
                    OpenOptions::new().write(true).open(&p)?.set_len(valid)?;
                }
            }
        }
        let m = self.finish_thinning(&dir, m)?;
        self.finish_merge(&dir, m)
    }

    /// Appends a batch to the open point. A batch already applied is skipped,
    /// so a batch delivered twice (agent crash, retry) changes nothing.
    /// Returns the change bytes applied.
    pub fn apply(&self, item: &str, batch: &[u8], time: &str) -> std::io::Result<u64> {
        let mut once = Some(batch.to_vec());
        self.apply_stream(item, time, || Ok(once.take()))
    }

    /// Applies batches one after another (`next` yields them, one in memory
    /// at a time), then makes them durable together: one sync per disk and
    /// one manifest write for the lot. The caller removes the batches from
    /// the cache only after this returns.
    pub fn apply_stream(
        &self,
        item: &str,
        time: &str,
        mut next: impl FnMut() -> std::io::Result<Option<Vec<u8>>>,
    ) -> std::io::Result<u64> {
        let _g = self.guard(item);
        let dir = self.item_dir(item);
        let mut m = self.manifest_locked(item)?;
        let mut files: Vec<Option<std::fs::File>> = (0..m.disks.len()).map(|_| None).collect();
        let mut total = 0;
        let mut any = false;
        while let Some(batch) = next()? {
            let (h, body) = agent::parse(&batch)?;
            if h.seq <= m.applied_batch {
                continue;
            }
            // Sequence numbers grow by one per batch the agent ships; one far
            // ahead (u64::MAX) would make every later batch look applied.
            if h.seq - m.applied_batch > MAX_BATCHES_AHEAD {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("batch {} is {} ahead of the last one applied ({}); the agent never ships that far ahead", h.seq, h.seq - m.applied_batch, m.applied_batch),
                ));
            }
            let sizes: Vec<u64> = m.disks.iter().map(|d| d.size).collect();
            let parts = agent::split_parts(&h, body, &sizes)?;
            for (i, (part, mine)) in h.disks.iter().zip(parts).enumerate() {
                if mine.is_empty() {
                    continue;
                }
                if files[i].is_none() {
                    files[i] = Some(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(open_path(&dir, i))?,
                    );
                }
                files[i].as_mut().expect("opened above").write_all(mine)?;
                m.open[i] += part.len;
                total += part.len;
            }
            m.applied_batch = h.seq;
            any = true;
        }
        if !any {
            return Ok(0);
        }
        for f in files.iter().flatten() {
            f.sync_data()?;
        }
        m.last_batch_time = Some(time.to_string());
        m.save(&dir)?;
        Ok(total)
    }

    /// Seals the open point into a recovery point: one compacted delta per disk.
    pub fn seal(&self, item: &str, kind: PointKind, time: &str) -> std::io::Result<RecoveryPoint> {
        let _g = self.guard(item);
        let dir = self.item_dir(item);
        let mut m = self.manifest_locked(item)?;
        let seq = m.next_seq;
        let mut stored = 0;
        for i in 0..m.disks.len() {
            let open = open_path(&dir, i);
            if m.open[i] == 0 {
                std::fs::File::create(delta_path(&dir, seq, i))?.sync_all()?;
                continue;
            }
            stored += delta::compact(&open, &delta_path(&dir, seq, i))?;
        }
        let point = RecoveryPoint {
            seq,
            time: time.to_string(),
            kind,
            changed_bytes: stored,
        };
        m.points.push(point.clone());
        m.next_seq += 1;
        m.open.iter_mut().for_each(|o| *o = 0);
        m.save(&dir)?;
        for i in 0..m.disks.len() {
            remove_if_there(&open_path(&dir, i))?;
        }
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
        self.materialize_with(item, seq, disk, dst, true)
    }

    /// `materialize`, optionally leaving the bytes to the page cache (they
    /// survive a process crash, not a power cut; a caller that publishes
    /// the image asks for `durable`).
    pub fn materialize_with(
        &self,
        item: &str,
        seq: u64,
        disk: usize,
        dst: &Path,
        durable: bool,
    ) -> std::io::Result<()> {
        let _g = self.guard(item);
        let dir = self.item_dir(item);
        let m = self.manifest_locked(item)?;
        let d = m
            .disks
            .get(disk)
            .ok_or_else(|| not_found("no such disk in the protected item"))?;
        if !m.points.iter().any(|p| p.seq == seq) {
            return Err(not_found("no such recovery point"));
        }
        copy_sparse_unsynced(&base_path(&dir, disk), dst, d.size)?;
        let mut out = OpenOptions::new().write(true).open(dst)?;
        for p in m.points.iter().filter(|p| p.seq <= seq) {
            delta::apply(&delta_path(&dir, p.seq, disk), &mut out)?;
        }
        if durable {
            out.sync_all()?;
        }
        Ok(())
    }

    /// Drops the points older than `keep_from` (an RFC 3339 time), folding
    /// their deltas into the base so the oldest kept point stays exact.
    pub fn prune(&self, item: &str, keep_from: &str) -> std::io::Result<usize> {
        let _g = self.guard(item);
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

    pub(crate) fn finish_merge(&self, dir: &Path, mut m: Manifest) -> std::io::Result<Manifest> {
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
}

impl Engine {
    /// Drops point `seq` from the middle of the retained points: its changes
    /// fold into the next point's delta, so every other point stays exact.
    /// Crash-safe: the merged deltas are written and synced first, the
    /// manifest records the thinning, and an interrupted one is finished on
    /// open (renames and removals are idempotent).
    pub fn thin(&self, item: &str, seq: u64) -> std::io::Result<bool> {
        let _g = self.guard(item);
        let dir = self.item_dir(item);
        let mut m = self.manifest_locked(item)?;
        let Some(pos) = m.points.iter().position(|p| p.seq == seq) else {
            return Ok(false);
        };
        let Some(next) = m.points.get(pos + 1).map(|p| p.seq) else {
            return Ok(false); // the newest point is never thinned
        };
        let mut stored = 0;
        for i in 0..m.disks.len() {
            let both = merged_path(&dir, next, i).with_extension("both");
            {
                let mut out = std::fs::File::create(&both)?;
                for s in [seq, next] {
                    std::io::copy(&mut std::fs::File::open(delta_path(&dir, s, i))?, &mut out)?;
                }
            }
            stored += delta::compact(&both, &merged_path(&dir, next, i))?;
            std::fs::remove_file(both)?;
        }
        m.points.remove(pos);
        if let Some(p) = m.points.iter_mut().find(|p| p.seq == next) {
            p.changed_bytes = stored;
        }
        m.thinning = Some((seq, next));
        m.save(&dir)?;
        self.finish_thinning(&dir, m)?;
        Ok(true)
    }

    pub(crate) fn finish_thinning(&self, dir: &Path, mut m: Manifest) -> std::io::Result<Manifest> {
        let Some((seq, next)) = m.thinning else {
            return Ok(m);
        };
        for i in 0..m.disks.len() {
            let merged = merged_path(dir, next, i);
            if merged.exists() {
                std::fs::rename(&merged, delta_path(dir, next, i))?;
            }
            remove_if_there(&delta_path(dir, seq, i))?;
        }
        std::fs::File::open(dir)?.sync_all()?;
        m.thinning = None;
        m.save(dir)?;
        Ok(m)
    }
}

fn merged_path(dir: &Path, seq: u64, disk: usize) -> std::path::PathBuf {
    dir.join(format!("point-{seq}-{disk}.merged"))
}
