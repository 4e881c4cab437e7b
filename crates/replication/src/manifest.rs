//! The item's manifest (the replication service's side: disks, retained
//! points, the open point's accumulated changes) and the agent's state (how
//! far into each disk's change journal it has shipped).

use std::io::Write;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PointKind {
    CrashConsistent,
    AppConsistent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub seq: u64,
    pub time: String,
    pub kind: PointKind,
    /// Bytes this point's deltas hold.
    pub changed_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiskReplica {
    pub source: String,
    pub size: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub disks: Vec<DiskReplica>,
    pub points: Vec<RecoveryPoint>,
    pub next_seq: u64,
    pub base_time: String,
    /// Deltas being folded into the base (redone on open after a crash).
    #[serde(default)]
    pub merging: Vec<u64>,
    /// Valid length of each disk's open-point file; bytes past it are a torn
    /// append and are cut off on open.
    #[serde(default)]
    pub open: Vec<u64>,
    /// Sequence number of the last batch applied (a batch seen again is skipped).
    #[serde(default)]
    pub applied_batch: u64,
    /// When the last batch arrived.
    #[serde(default)]
    pub last_batch_time: Option<String>,
    /// Bytes initial replication (or a reprotect's resync) had to send.
    #[serde(default)]
    pub seeded_bytes: u64,
    /// A point being thinned into the next one (finished on open after a crash).
    #[serde(default)]
    pub thinning: Option<(u64, u64)>,
}

/// The agent's side: the journal position each disk has been shipped to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentState {
    pub cursors: Vec<u64>,
    pub next_batch: u64,
}

pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> std::io::Result<T> {
    let data = std::fs::read(path)?;
    serde_json::from_slice(&data)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Replaces a JSON file atomically (write, sync, rename, sync the directory).
pub(crate) fn save<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(v).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Replaces a JSON file atomically against process crashes (write, rename).
pub(crate) fn save_unsynced<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(v).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

impl Manifest {
    pub fn load(dir: &Path) -> std::io::Result<Manifest> {
        load(&dir.join("manifest.json"))
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        save(&dir.join("manifest.json"), self)
    }
}
