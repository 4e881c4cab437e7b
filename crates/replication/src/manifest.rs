//! The item's manifest: disks, journal cursors, retained points.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// Journal bytes already shipped.
    pub cursor: u64,
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
}

impl Manifest {
    pub fn load(dir: &Path) -> std::io::Result<Manifest> {
        let data = std::fs::read(dir.join("manifest.json"))?;
        serde_json::from_slice(&data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Replaces the manifest atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("manifest.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("manifest.json"))?;
        std::fs::File::open(dir)?.sync_all()
    }
}
