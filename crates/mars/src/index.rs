//! A recovery point's index: every file, directory and symlink backed up,
//! with its metadata and the chunks (and their keys) its content is made of.
//! It is sealed under the machine key before it leaves the machine.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, CryptoError};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkRef {
    /// The hash of the key: not stored, made again when an index is opened.
    #[serde(skip_serializing, default)]
    pub id: String,
    /// The chunk's convergent key, hex.
    pub key: String,
    pub len: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Which of the backed-up roots it is under.
    pub root: usize,
    /// Its path under that root, `/`-separated; `""` is the root itself.
    pub rel: String,
    pub kind: Kind,
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub size: u64,
    /// The inode, with size and mtime what says a file is unchanged.
    pub ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub machine: String,
    /// The backed-up paths, absolute.
    pub roots: Vec<String>,
    pub entries: Vec<Entry>,
}

impl Snapshot {
    /// Every chunk id the snapshot names, once each, in first-use order.
    pub fn chunk_ids(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .flat_map(|e| e.chunks.iter())
            .filter(|c| seen.insert(c.id.clone()))
            .map(|c| c.id.clone())
            .collect()
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.size)
            .sum()
    }
}

/// The plaintext header of a sealed index: what another machine needs to
/// derive the key from the passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: String,
    salt: String,
}

const FORMAT: &str = "recoverite-mars-index-1";

/// `header json ‖ \n ‖ seal(zstd(json))`.
pub fn seal(s: &Snapshot, key: &[u8; 32], salt: &[u8]) -> Vec<u8> {
    let header = Header {
        format: FORMAT.into(),
        salt: hex::encode(salt),
    };
    let mut out = serde_json::to_vec(&header).expect("header serializes");
    out.push(b'\n');
    let json = serde_json::to_vec(s).expect("snapshot serializes");
    let packed = zstd::bulk::compress(&json, 3).expect("zstd compresses any input");
    out.extend(crypto::seal(key, &packed));
    out
}

/// The salt a sealed index was made with.
pub fn salt_of(sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nl = sealed
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| CryptoError::Malformed("no header".into()))?;
    let h: Header =
        serde_json::from_slice(&sealed[..nl]).map_err(|e| CryptoError::Malformed(e.to_string()))?;
    if h.format != FORMAT {
        return Err(CryptoError::Malformed(format!(
            "unknown index format {}",
            h.format
        )));
    }
    hex::decode(&h.salt).map_err(|e| CryptoError::Malformed(e.to_string()))
}

pub fn open(sealed: &[u8], key: &[u8; 32]) -> Result<Snapshot, CryptoError> {
    salt_of(sealed)?;
    let nl = sealed.iter().position(|b| *b == b'\n').unwrap_or(0);
    let packed = crypto::open(key, &sealed[nl + 1..])?;
    let json =
        zstd::stream::decode_all(&packed[..]).map_err(|e| CryptoError::Malformed(e.to_string()))?;
    let mut snap: Snapshot =
        serde_json::from_slice(&json).map_err(|e| CryptoError::Malformed(e.to_string()))?;
    for c in snap.entries.iter_mut().flat_map(|e| e.chunks.iter_mut()) {
        let key: [u8; 32] = hex::decode(&c.key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| CryptoError::Malformed("a chunk key is not 32 bytes".into()))?;
        c.id = crypto::chunk_key_id(&key);
    }
    Ok(snap)
}

/// Opens a sealed index with a passphrase (restore on another machine).
pub fn open_with_passphrase(sealed: &[u8], passphrase: &str) -> Result<Snapshot, CryptoError> {
    let salt = salt_of(sealed)?;
    open(sealed, &crypto::machine_key(passphrase, &salt)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_opens_with_its_passphrase_only() {
        let s = Snapshot {
            machine: "m1".into(),
            roots: vec!["/data".into()],
            entries: vec![],
        };
        let salt = [3u8; 16];
        let key = crypto::machine_key("a long enough passphrase", &salt).unwrap();
        let sealed = seal(&s, &key, &salt);
        assert_eq!(
            open_with_passphrase(&sealed, "a long enough passphrase").unwrap(),
            s
        );
        assert_eq!(
            open_with_passphrase(&sealed, "another long passphrase"),
            Err(CryptoError::Unsealed)
        );
    }
}
