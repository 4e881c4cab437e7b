//! The agent's half: turn a disk's change journal into batches.
//!
//! A batch: `RCB1`, header length (u32 LE), a JSON header
//! `{"seq", "disks":[{"cursor","len"}]}`, then each disk's change records.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{self, AgentState, Manifest};
use crate::{delta, Engine, BLOCK};

const MAGIC: &[u8; 4] = b"RCB1";
/// Most block bytes one batch carries.
pub const MAX_BATCH: u64 = 16 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub seq: u64,
    pub disks: Vec<DiskPart>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DiskPart {
    /// Journal position this batch ships up to.
    pub cursor: u64,
    pub len: u64,
}

/// A batch of changes on its way from the agent to the replication service.
#[derive(Clone, Debug)]
pub struct Batch {
    pub seq: u64,
    pub bytes: Vec<u8>,
    pub(crate) cursors: Vec<u64>,
}

impl Batch {
    /// Bytes of changed data carried (headers excluded).
    pub fn payload(&self) -> u64 {
        self.bytes.len() as u64
    }
}

pub(crate) fn parse(bytes: &[u8]) -> std::io::Result<(Header, &[u8])> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("batch: {m}"));
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(bad("not a recoverite change batch"));
    }
    let n = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    let h: Header = serde_json::from_slice(bytes.get(8..8 + n).ok_or_else(|| bad("short header"))?)
        .map_err(|e| bad(&e.to_string()))?;
    let body = &bytes[8 + n..];
    let total = h
        .disks
        .iter()
        .try_fold(0u64, |t, d| t.checked_add(d.len))
        .ok_or_else(|| bad("its part lengths overflow"))?;
    if total != body.len() as u64 {
        return Err(bad("length does not match its header"));
    }
    Ok((h, body))
}

/// A parsed batch's part for each disk, every one checked before any is
/// kept (the batch is all or nothing).
pub(crate) fn split_parts<'a>(
    h: &Header,
    mut body: &'a [u8],
    disk_sizes: &[u64],
) -> std::io::Result<Vec<&'a [u8]>> {
    if h.disks.len() != disk_sizes.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "batch is for another set of disks",
        ));
    }
    let mut parts = Vec::with_capacity(h.disks.len());
    for (part, &size) in h.disks.iter().zip(disk_sizes) {
        // parse() checked that the lengths add up to the body.
        let (mine, rest) = body.split_at(part.len as usize);
        body = rest;
        delta::check_part(mine, size)?;
        parts.push(mine);
    }
    Ok(parts)
}

/// Checks a batch as the replication service does before applying it, for
/// disks of `disk_sizes` bytes; returns its sequence number.
pub fn check_batch(bytes: &[u8], disk_sizes: &[u64]) -> std::io::Result<u64> {
    let (h, body) = parse(bytes)?;
    split_parts(&h, body, disk_sizes)?;
    Ok(h.seq)
}

impl Engine {
    fn agent_state(&self, item: &str) -> std::io::Result<AgentState> {
        match manifest::load(&self.item_dir(item).join("agent.json")) {
            // Torn by a power failure: start over from the journal's start
            // (everything is shipped again; nothing is lost).
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(AgentState::default()),
            other => other,
        }
    }

    /// Collects every change since the agent's cursors into a batch; `None`
    /// when nothing was written.
    pub fn ship(&self, item: &str) -> std::io::Result<Option<Batch>> {
        let _g = self.guard(item);
        // The agent only reads the manifest (the service owns it), so it can
        // run in another process.
        let m = Manifest::load(&self.item_dir(item))?;
        let st = self.agent_state(item)?;
        let mut parts = Vec::new();
        let mut body = Vec::with_capacity((MAX_BATCH + (2 << 20)) as usize);
        let mut any = false;
        // A batch carries at most MAX_BATCH bytes of blocks (whole journal
        // records), so the agent's memory stays bounded whatever the churn.
        let mut budget = (MAX_BATCH / BLOCK) as usize;
        for (i, d) in m.disks.iter().enumerate() {
            let from = st.cursors.get(i).copied().unwrap_or(0);
            let (blocks, end) =
                changed_since_capped(&self.blocks.journal(&d.source), d.size, from, budget)?;
            budget = budget.saturating_sub(blocks.len());
            any |= end != from;
            let len = delta::collect(&self.blocks.image(&d.source), d.size, &blocks, &mut body)?;
            parts.push(DiskPart { cursor: end, len });
        }
        if !any {
            return Ok(None);
        }
        let seq = st.next_batch.max(m.applied_batch) + 1;
        let cursors = parts.iter().map(|p| p.cursor).collect();
        let header =
            serde_json::to_vec(&Header { seq, disks: parts }).map_err(std::io::Error::other)?;
        // The header goes in front of the body in place: one buffer per batch.
        let mut prefix = Vec::with_capacity(8 + header.len());
        prefix.extend_from_slice(MAGIC);
        prefix.extend_from_slice(&(header.len() as u32).to_le_bytes());
        prefix.extend_from_slice(&header);
        let mut bytes = body;
        bytes.splice(0..0, prefix);
        Ok(Some(Batch {
            seq,
            bytes,
            cursors,
        }))
    }

    /// Where each replicated disk's change journal is still needed from:
    /// `(source disk's block-store id, the agent's cursor)` for every item.
    /// Records before a cursor were shipped into the cache, durably, before
    /// the cursor moved, so the journal may free them.
    pub fn journal_holds(&self) -> std::io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let Some(item) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let _g = self.guard(&item);
            let Ok(m) = Manifest::load(&e.path()) else {
                continue; // not an item, or being removed
            };
            let st = self.agent_state(&item)?;
            for (i, d) in m.disks.iter().enumerate() {
                out.push((d.source.clone(), st.cursors.get(i).copied().unwrap_or(0)));
            }
        }
        Ok(out)
    }

    /// The batch is safely in the cache: move the cursors past it.
    pub fn shipped(&self, item: &str, b: &Batch) -> std::io::Result<()> {
        let _g = self.guard(item);
        let st = AgentState {
            cursors: b.cursors.clone(),
            next_batch: b.seq,
        };
        // Not synced: a cursor lost in a power failure only re-ships a
        // range (applying a range twice changes nothing).
        manifest::save_unsynced(&self.item_dir(item).join("agent.json"), &st)
    }

    /// Bytes written at the source and not yet shipped (whole blocks), per disk.
    pub fn pending_at_source(&self, item: &str) -> std::io::Result<Vec<u64>> {
        let _g = self.guard(item);
        let m = Manifest::load(&self.item_dir(item))?;
        let st = self.agent_state(item)?;
        let mut out = Vec::new();
        for (i, d) in m.disks.iter().enumerate() {
            let (blocks, _) = changed_since(
                &self.blocks.journal(&d.source),
                d.size,
                st.cursors.get(i).copied().unwrap_or(0),
            )?;
            out.push(blocks.len() as u64 * BLOCK);
        }
        Ok(out)
    }
}

/// The blocks named by journal records from byte `from` on, and where the
/// whole records end (a torn last record is left for the next batch).
fn changed_since(journal: &Path, size: u64, from: u64) -> std::io::Result<(Vec<u64>, u64)> {
    changed_since_capped(journal, size, from, usize::MAX)
}

/// Like `changed_since`, but stops after the record that brings the block
/// set to `max_blocks` (0: nothing this time).
fn changed_since_capped(
    journal: &Path,
    size: u64,
    from: u64,
    max_blocks: usize,
) -> std::io::Result<(Vec<u64>, u64)> {
    if max_blocks == 0 {
        return Ok((Vec::new(), from));
    }
    let mut f = match File::open(journal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), from)),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(from))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let mut set = std::collections::BTreeSet::new();
    let mut end = from;
    for (off, len) in recoverite_blockstore::journal_records(&data) {
        if let Some(blocks) = recoverite_blockstore::record_blocks(off, len, size) {
            set.extend(blocks);
        }
        end += 16;
        if set.len() >= max_blocks {
            break;
        }
    }
    Ok((set.into_iter().collect(), end))
}
