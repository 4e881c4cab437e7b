//! Backing up files and folders: walk the roots, find what changed since
//! the last point (size, mtime and inode), cut changed files into
//! content-defined chunks, and send only the chunks the vault lacks.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::crypto;
use crate::index::{ChunkRef, Entry, Kind, Snapshot};
use crate::Remote;

/// Chunk sizes (bytes): boundaries fall by content between these.
pub const MIN_CHUNK: u32 = 256 * 1024;
pub const AVG_CHUNK: u32 = 1024 * 1024;
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;
/// Files up to this size are read whole and cut in memory.
const SMALL_FILE: u64 = 16 << 20;
/// Larger files are cut in windows of this size (many chunks each).
const WINDOW: usize = 32 << 20;
/// Chunks are hashed, asked about and sent in batches of about this many bytes.
const BATCH_BYTES: usize = 32 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Files reused from the previous point without being read.
    pub unchanged_files: u64,
    /// Bytes of the data set.
    pub total_bytes: u64,
    /// Bytes read from changed files.
    pub read_bytes: u64,
    pub chunks: u64,
    /// Chunks the vault did not hold, their plaintext bytes and the bytes sent.
    pub new_chunks: u64,
    pub new_bytes: u64,
    pub sent_bytes: u64,
}

/// What to back up.
pub struct Spec<'a> {
    pub machine: &'a str,
    pub roots: &'a [PathBuf],
    pub exclude: &'a [String],
    pub dedup_key: &'a [u8; 32],
}

fn excludes(globs: &[String]) -> io::Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(globset::Glob::new(g).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("--exclude {g}: {e}"))
        })?);
    }
    b.build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// One chunk waiting in the batch, and where its reference goes: a range
/// of the buffer it was read into (chunks are not copied out of it).
struct Pending {
    entry: usize,
    slot: usize,
    buf: Arc<Vec<u8>>,
    off: usize,
    len: usize,
}

impl Pending {
    fn data(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
}

struct Run<'a, R: Remote> {
    remote: &'a mut R,
    dedup_key: [u8; 32],
    entries: Vec<Entry>,
    batch: Vec<Pending>,
    batch_bytes: usize,
    /// Window buffers of large files, for reuse once their chunks are sent.
    windows: Vec<Arc<Vec<u8>>>,
    /// Ids the vault is known to hold (answered or sent in this run).
    present: HashSet<String>,
    stats: Stats,
}

impl<'a, R: Remote> Run<'a, R> {
    fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let dk = self.dedup_key;
        let keyed: Vec<([u8; 32], String)> = batch
            .par_iter()
            .map(|p| crypto::chunk_key(&dk, p.data()))
            .collect();
        let ask: Vec<String> = {
            let mut seen = HashSet::new();
            keyed
                .iter()
                .map(|(_, id)| id.clone())
                .filter(|id| !self.present.contains(id) && seen.insert(id.clone()))
                .collect()
        };
        let mut missing: HashSet<String> = HashSet::new();
        for part in ask.chunks(4096) {
            missing.extend(self.remote.missing(part)?);
        }
        // Seal each missing chunk once, on every core.
        let mut first = HashSet::new();
        let to_send: Vec<usize> = (0..batch.len())
            .filter(|i| missing.contains(&keyed[*i].1) && first.insert(keyed[*i].1.clone()))
            .collect();
        let sealed: Vec<Vec<u8>> = to_send
            .par_iter()
            .map(|i| crypto::seal_chunk(&keyed[*i].0, batch[*i].data()))
            .collect();
        for (i, bytes) in to_send.iter().zip(&sealed) {
            self.remote.put(&keyed[*i].1, bytes)?;
            self.stats.new_chunks += 1;
            self.stats.new_bytes += batch[*i].len as u64;
            self.stats.sent_bytes += bytes.len() as u64;
        }

        for (p, (key, id)) in batch.iter().zip(keyed) {
            self.present.insert(id.clone());
            self.entries[p.entry].chunks[p.slot] = ChunkRef {
                id,
                key: hex::encode(key),
                len: p.len as u32,
            };
        }
        self.remote.progress(&self.stats);
        Ok(())
    }

    /// An empty window buffer: one whose chunks have all been sent, or a
    /// new one (reusing them spares the kernel clearing fresh pages).
    fn window(&mut self) -> Vec<u8> {
        if let Some(i) = self.windows.iter().position(|w| Arc::strong_count(w) == 1) {
            if let Ok(mut v) = Arc::try_unwrap(self.windows.swap_remove(i)) {
                v.clear();
                return v;
            }
        }
        // Those still in use stay tracked; at most a few are.
        self.windows.retain(|w| Arc::strong_count(w) > 1);
        Vec::with_capacity(WINDOW)
    }

    /// Queues one chunk of `entry`'s content.
    fn push(
        &mut self,
        entry: usize,
        slot: usize,
        buf: &Arc<Vec<u8>>,
        off: usize,
        len: usize,
    ) -> io::Result<()> {
        self.stats.read_bytes += len as u64;
        self.stats.chunks += 1;
        self.entries[entry].chunks.push(ChunkRef {
            id: String::new(),
            key: String::new(),
            len: 0,
        });
        self.batch_bytes += len;
        self.batch.push(Pending {
            entry,
            slot,
            buf: buf.clone(),
            off,
            len,
        });
        if self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn read_file(&mut self, path: &Path, entry: usize) -> io::Result<()> {
        // Small files are read whole and cut in memory: a stream chunker's
        // buffer is as large as the largest chunk, for every file.
        let size = fs::symlink_metadata(path)?.len();
        if size <= SMALL_FILE {
            let data = Arc::new(fs::read(path)?);
            if data.len() <= MIN_CHUNK as usize {
                return self.push(entry, 0, &data, 0, data.len());
            }
            let cuts: Vec<(usize, usize)> =
                fastcdc::v2020::FastCDC::new(&data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                    .map(|c| (c.offset, c.length))
                    .collect();
            for (slot, (off, len)) in cuts.into_iter().enumerate() {
                self.push(entry, slot, &data, off, len)?;
            }
            return Ok(());
        }
        // Larger files: cut in windows of a large buffer (the in-memory
        // chunker runs at twice the stream chunker's speed here). A cut
        // depends only on the bytes from its chunk's start, so the cuts are
        // those of one pass over the whole file.
        let mut f = fs::File::open(path)?;
        let mut carry: Vec<u8> = Vec::new();
        let mut slot = 0;
        let mut eof = false;
        while !eof || !carry.is_empty() {
            // A new buffer per window (its chunks stay in the batch): the
            // previous window's uncut tail, then fresh bytes.
            let mut buf = self.window();
            buf.extend_from_slice(&carry);
            while !eof && buf.len() < WINDOW {
                let want = (WINDOW - buf.len()) as u64;
                eof = (&mut f).take(want).read_to_end(&mut buf)? == 0;
            }
            let buf = Arc::new(buf);
            self.windows.push(buf.clone());
            let cuts: Vec<(usize, usize)> =
                fastcdc::v2020::FastCDC::new(&buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                    .map(|c| (c.offset, c.length))
                    .collect();
            // Unless the file ended, the window's last chunk may be cut short
            // by the window: it is made again with the next bytes.
            // (A full window holds at least eight chunks.)
            let keep = if eof { cuts.len() } else { cuts.len() - 1 };
            let mut used = 0;
            for &(off, len) in &cuts[..keep] {
                self.push(entry, slot, &buf, off, len)?;
                slot += 1;
                used = off + len;
            }
            carry = buf[used..].to_vec();
        }
        Ok(())
    }
}

fn walk(
    root: &Path,
    rel: &str,
    set: &globset::GlobSet,
    out: &mut Vec<(PathBuf, String, fs::Metadata)>,
) -> io::Result<()> {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    if !rel.is_empty() && (set.is_match(&path) || path.file_name().is_some_and(|n| set.is_match(n)))
    {
        return Ok(());
    }
    let meta = fs::symlink_metadata(&path)?;
    let is_dir = meta.is_dir();
    out.push((path.clone(), rel.to_string(), meta));
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(&path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            let n = n.to_string_lossy().to_string();
            let child = if rel.is_empty() {
                n
            } else {
                format!("{rel}/{n}")
            };
            walk(root, &child, set, out)?;
        }
    }
    Ok(())
}

/// Backs up `spec.roots`, reusing `previous`'s chunks for files whose size,
/// mtime and inode did not change (once the vault confirms it still holds
/// them). Returns the new index; nothing is committed here.
pub fn run<R: Remote>(
    remote: &mut R,
    spec: &Spec<'_>,
    previous: Option<&Snapshot>,
) -> io::Result<(Snapshot, Stats)> {
    let set = excludes(spec.exclude)?;
    let mut roots = Vec::new();
    for r in spec.roots {
        roots.push(
            fs::canonicalize(r)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", r.display())))?,
        );
    }
    let old: HashMap<(String, String), &Entry> = previous
        .map(|p| {
            p.entries
                .iter()
                .filter(|e| e.kind == Kind::File)
                .filter_map(|e| p.roots.get(e.root).map(|r| ((r.clone(), e.rel.clone()), e)))
                .collect()
        })
        .unwrap_or_default();
    let mut run = Run {
        remote,
        dedup_key: *spec.dedup_key,
        entries: Vec::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        windows: Vec::new(),
        present: HashSet::new(),
        stats: Stats::default(),
    };
    // Unchanged files whose chunks the vault must still be asked about.
    let mut reused: Vec<(PathBuf, usize)> = Vec::new();
    for (ri, root) in roots.iter().enumerate() {
        let mut found = Vec::new();
        walk(root, "", &set, &mut found)?;
        for (path, rel, meta) in found {
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else {
                continue; // sockets, devices, fifos: not file data
            };
            let mut e = Entry {
                root: ri,
                rel: rel.clone(),
                kind,
                mode: meta.mode() & 0o7777,
                mtime_ns: mtime_ns(&meta),
                size: if kind == Kind::File { meta.len() } else { 0 },
                ino: meta.ino(),
                target: None,
                chunks: Vec::new(),
            };
            let idx = run.entries.len();
            match kind {
                Kind::Symlink => {
                    e.target = Some(fs::read_link(&path)?.to_string_lossy().to_string());
                    run.stats.symlinks += 1;
                    run.entries.push(e);
                }
                Kind::Dir => {
                    run.stats.dirs += 1;
                    run.entries.push(e);
                }
                Kind::File => {
                    run.stats.files += 1;
                    run.stats.total_bytes += e.size;
                    let key = (root.display().to_string(), rel.clone());
                    match old.get(&key) {
                        Some(o)
                            if o.size == e.size && o.mtime_ns == e.mtime_ns && o.ino == e.ino =>
                        {
                            e.chunks = o.chunks.clone();
                            run.entries.push(e);
                            reused.push((path, idx));
                        }
                        _ => {
                            run.entries.push(e);
                            run.read_file(&path, idx)?;
                        }
                    }
                }
            }
        }
    }
    run.flush()?;
    // Reused chunks the vault no longer holds (their points were deleted):
    // those files are read again.
    let ask: Vec<String> = {
        let mut seen = HashSet::new();
        reused
            .iter()
            .flat_map(|(_, i)| run.entries[*i].chunks.iter().map(|c| c.id.clone()))
            .filter(|id| !run.present.contains(id) && seen.insert(id.clone()))
            .collect()
    };
    let mut gone = HashSet::new();
    for part in ask.chunks(4096) {
        gone.extend(run.remote.missing(part)?);
    }
    for (path, i) in reused {
        let c = run.entries[i].chunks.clone();
        if c.iter().any(|c| gone.contains(&c.id)) {
            run.entries[i].chunks.clear();
            run.read_file(&path, i)?;
        } else {
            run.stats.unchanged_files += 1;
            run.stats.chunks += c.len() as u64;
        }
    }
    run.flush()?;
    // Everything sent is durable before the point is committed.
    run.remote.flush()?;
    let snap = Snapshot {
        machine: spec.machine.to_string(),
        roots: roots.iter().map(|r| r.display().to_string()).collect(),
        entries: run.entries,
    };
    Ok((snap, run.stats))
}
