//! The vault tier of Azure Backup: disk images cut into fixed 1 MiB chunks,
//! each stored once under its SHA-256 (zstd-compressed, or as it is when
//! compression would not make it smaller), and a manifest per
//! recovery point disk naming the chunks at each offset. Backups are
//! incremental forever: a chunk an earlier point already stored is not
//! written again; holes and all-zero chunks are not stored at all. Deleting
//! a point's manifests and collecting garbage frees exactly the chunks no
//! remaining manifest names.
//!
//! Chunks and manifests are objects of an `object_store::ObjectStore`
//! (`chunks/{hh}/{hash}`, `manifests/{name}.json` under the vault's prefix):
//! local files under the data directory, or any other backend the server is
//! configured with.
//!
//! Crash safety: on a local filesystem a chunk is put under a staging name,
//! the filesystem synced, then renamed into place before any manifest names
//! it; a manifest is published the same way, so a crash leaves at worst
//! unreferenced objects, which the next collection removes. (Remote object
//! stores make each put durable and atomic by themselves.) Fixed-size chunks
//! suit block devices, where a changed block keeps its offset.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The chunk size: the unit of change tracking, deduplication and restore.
pub const CHUNK: u64 = 1 << 20;
/// How many chunks a backup worker reads between asking whether to stop.
pub const STOP_EVERY: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The disk's size in bytes.
    pub size: u64,
    /// `(offset, sha256 hex)` of every stored chunk, in offset order;
    /// offsets not listed read as zeros.
    pub chunks: Vec<(u64, String)>,
}

/// What one backup of a disk cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Non-zero bytes read from the disk.
    pub scanned: u64,
    /// Chunks the vault did not hold yet, and their uncompressed bytes.
    pub new_chunks: u64,
    pub new_bytes: u64,
    /// Bytes written to the vault (compressed).
    pub stored_bytes: u64,
}

#[derive(Clone)]
pub struct ChunkStore {
    objects: Arc<dyn ObjectStore>,
    /// The vault's prefix in the object store (`""` for the whole store).
    prefix: String,
    /// Where the objects are on this machine's filesystem, when they are:
    /// what to sync for durability.
    local: Option<PathBuf>,
}

/// One lock per vault tier in this process: a collection must not delete a
/// chunk a running backup has just found and is about to name.
fn tier_lock(key: &str) -> Arc<std::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.to_string())
        .or_default()
        .clone()
}

/// Chunks that open sessions (MARS backups) were told the vault holds, or
/// are sending: a collection must not delete them before those sessions
/// commit or end. Keyed by tier, then session.
type Pins = std::collections::HashMap<String, std::collections::HashSet<String>>;

fn tier_pins(key: &str) -> Arc<std::sync::Mutex<Pins>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static PINS: OnceLock<Mutex<HashMap<String, Arc<Mutex<Pins>>>>> = OnceLock::new();
    PINS.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.to_string())
        .or_default()
        .clone()
}

/// A manifest as stored: zstd-compressed JSON (manifests of many small
/// chunks are mostly hex ids).
fn encode_manifest(m: &Manifest) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(m).map_err(|e| bad(e.to_string()))?;
    zstd::bulk::compress(&json, 3)
}

/// How every zstd frame begins.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A chunk as stored: zstd level 1 when that makes it smaller, else the
/// bytes as they are (random or already-compressed data would only grow
/// and cost a decompression on every restore). A raw chunk that happens to
/// begin like a zstd frame is stored compressed, so [`unpack`] never
/// mistakes one for the other.
fn pack(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // A sample first: a chunk whose first 64 KiB do not shrink is taken as
    // incompressible (random, encrypted, already compressed) without
    // compressing all of it.
    const SAMPLE: usize = 64 << 10;
    if data.len() > SAMPLE && !data.starts_with(&ZSTD_MAGIC) {
        let sample = &data[..SAMPLE];
        if zstd::bulk::compress(sample, 1)?.len() >= sample.len() {
            return Ok(data.to_vec());
        }
    }
    let packed = zstd::bulk::compress(data, 1)?;
    if packed.len() < data.len() || data.starts_with(&ZSTD_MAGIC) {
        Ok(packed)
    } else {
        Ok(data.to_vec())
    }
}

/// A stored chunk's bytes (see [`pack`]): borrowed when stored as they are.
fn unpack(stored: &[u8]) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
    if stored.starts_with(&ZSTD_MAGIC) {
        zstd::decode_all(stored).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(stored))
    }
}

/// Reads a stored manifest: compressed, or plain JSON as earlier versions wrote.
fn decode_manifest(bytes: &[u8]) -> std::io::Result<Manifest> {
    let json = if bytes.starts_with(&ZSTD_MAGIC) {
        zstd::decode_all(bytes)?
    } else {
        bytes.to_vec()
    };
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}

/// Whether `id` names a chunk object (64 lower-case hex digits).
pub fn is_object_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Syncs the whole filesystem holding `dir` (`syncfs`).
fn sync_fs(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own; it only flushes.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn os(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
        }
        e => std::io::Error::other(e.to_string()),
    }
}

/// How many threads hash, compress and write chunks: every core, at most 8.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// Runs `work(w)` for each worker `w` of [`workers`] on its own thread and
/// returns what each returned, in worker order; a worker that panicked
/// returns an error naming `what`.
fn on_workers<T: Send>(
    what: &str,
    work: impl Fn(usize) -> std::io::Result<T> + Sync,
) -> Vec<std::io::Result<T>> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers())
            .map(|w| scope.spawn(move || work(w)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(bad(format!("a {what} worker panicked"))))
            })
            .collect()
    })
}

/// Runs an object-store call to completion on this (blocking) thread.
fn run<T>(f: impl std::future::Future<Output = object_store::Result<T>>) -> std::io::Result<T> {
    futures::executor::block_on(f).map_err(os)
}

impl ChunkStore {
    /// The vault tier of one vault, as local files under `root`.
    pub fn open(root: &Path) -> std::io::Result<ChunkStore> {
        fs::create_dir_all(root)?;
        let objects = LocalFileSystem::new_with_prefix(root).map_err(os)?;
        Ok(ChunkStore {
            objects: Arc::new(objects),
            prefix: String::new(),
            local: Some(root.to_path_buf()),
        })
    }

    /// The vault tier of one vault under `prefix` of `objects`; `local`:
    /// where those objects are on this machine's filesystem, if they are.
    pub fn new(objects: Arc<dyn ObjectStore>, prefix: &str, local: Option<PathBuf>) -> ChunkStore {
        if let Some(l) = &local {
            let _ = fs::create_dir_all(l);
        }
        ChunkStore {
            objects,
            prefix: prefix.trim_matches('/').to_string(),
            local,
        }
    }

    fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn lock_key(&self) -> String {
        match &self.local {
            Some(l) => l.display().to_string(),
            None => format!("{:p}/{}", Arc::as_ptr(&self.objects), self.prefix),
        }
    }

    fn chunk_key(&self, hash: &str) -> ObjectPath {
        self.key(&format!("chunks/{}/{hash}", &hash[..2.min(hash.len())]))
    }

    fn manifest_key(&self, name: &str) -> ObjectPath {
        self.key(&format!("manifests/{name}.json"))
    }

    fn sync(&self) -> std::io::Result<()> {
        match &self.local {
            Some(l) => sync_fs(l),
            None => Ok(()),
        }
    }

    /// Puts `bytes` for `key` so that no reader sees it half-written: on a
    /// local filesystem under a staging name (returned; the caller syncs,
    /// then renames it to `key`), elsewhere at `key` itself, where a put is
    /// durable and atomic (returns `None`).
    fn put_staged(
        &self,
        key: &ObjectPath,
        bytes: Vec<u8>,
        tag: &str,
    ) -> std::io::Result<Option<ObjectPath>> {
        if self.local.is_none() {
            run(self.objects.put(key, PutPayload::from(bytes)))?;
            return Ok(None);
        }
        let staged = self.key(&format!("staging/{tag}"));
        run(self.objects.put(&staged, PutPayload::from(bytes)))?;
        Ok(Some(staged))
    }

    /// Writes `bytes` at `key` durably.
    fn publish(&self, key: &ObjectPath, bytes: Vec<u8>) -> std::io::Result<()> {
        let tag = format!("{}.tmp", uuid_like());
        if let Some(staged) = self.put_staged(key, bytes, &tag)? {
            self.sync()?;
            run(self.objects.rename(&staged, key))?;
            self.sync()?;
        }
        Ok(())
    }

    fn get(&self, key: &ObjectPath) -> std::io::Result<Vec<u8>> {
        Ok(self.get_bytes(key)?.as_ref().to_vec())
    }

    /// An object's bytes as the store hands them (no copy).
    fn get_bytes(&self, key: &ObjectPath) -> std::io::Result<impl AsRef<[u8]>> {
        let r = run(self.objects.get(key))?;
        run(r.bytes())
    }

    fn list(&self, rel: &str) -> std::io::Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        let prefix = self.key(rel);
        run(self.objects.list(Some(&prefix)).try_collect::<Vec<_>>())
    }

    pub fn has_chunk(&self, hash: &str) -> bool {
        hash.len() == 64 && run(self.objects.head(&self.chunk_key(hash))).is_ok()
    }

    /// Backs up a disk image as manifest `name`: reads only its allocated
    /// ranges, stores the chunks the vault lacks, then publishes the manifest.
    pub fn backup(
        &self,
        image: &Path,
        size: u64,
        name: &str,
    ) -> std::io::Result<(Manifest, Transfer)> {
        self.backup_since(image, size, name, None)
    }

    /// As [`ChunkStore::backup`], incremental: with `since` = (the
    /// manifest of the previous point of this disk, the byte ranges written
    /// since that point), only the chunks those ranges touch are read; the
    /// others are the previous manifest's. Without it, or when the previous
    /// manifest is gone or of another size, the whole disk is read.
    pub fn backup_since(
        &self,
        image: &Path,
        size: u64,
        name: &str,
        since: Option<(&str, &[(u64, u64)])>,
    ) -> std::io::Result<(Manifest, Transfer)> {
        self.backup_since_unless(image, size, name, since, &|| false)
    }

    /// As [`ChunkStore::backup_since`], stopped (an `Interrupted` error,
    /// nothing published, new chunks removed) once `stop` says so: asked
    /// every [`STOP_EVERY`] chunks of each worker (a cancelled job).
    pub fn backup_since_unless(
        &self,
        image: &Path,
        size: u64,
        name: &str,
        since: Option<(&str, &[(u64, u64)])>,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> std::io::Result<(Manifest, Transfer)> {
        let lock = tier_lock(&self.lock_key());
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let f = File::open(image)?;
        let base = since.and_then(|(b, written)| {
            let m = self.manifest(b).ok().filter(|m| m.size == size)?;
            Some((m, written))
        });
        let mut kept: std::collections::BTreeMap<u64, String> = Default::default();
        let mut offsets: std::collections::BTreeSet<u64> = Default::default();
        let mut add_range = |start: u64, end: u64| {
            let mut c = start / CHUNK * CHUNK;
            while c < end.min(size) {
                offsets.insert(c);
                c += CHUNK;
            }
        };
        match &base {
            Some((m, written)) => {
                for &(off, len) in written.iter() {
                    if len > 0 {
                        add_range(off, off.saturating_add(len));
                    }
                }
                kept = m.chunks.iter().cloned().collect();
            }
            None => {
                for (start, end) in recoverite_blockstore::data_ranges(&f)? {
                    add_range(start, end);
                }
            }
        }
        for o in &offsets {
            kept.remove(o);
        }
        let offsets: Vec<u64> = offsets.into_iter().collect();
        // Hash and compress on every core: each worker reads its share of
        // the chunks; a chunk new to the vault is written once (`claimed`).
        let workers = workers();
        let claimed = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
        let tag = uuid_like();
        let tag = tag.as_str();
        type Found = (
            u64,
            String,
            Option<(Option<ObjectPath>, ObjectPath, u64)>,
            u64,
        );
        let results: Vec<std::io::Result<Vec<Found>>> = on_workers("backup", |w| {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; CHUNK as usize];
            let mut out = Vec::new();
            for (i, off) in offsets.iter().skip(w).step_by(workers).enumerate() {
                if i % STOP_EVERY == STOP_EVERY - 1 && stop() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        "the backup was stopped",
                    ));
                }
                let n = (size - off).min(CHUNK) as usize;
                let mut got = 0;
                while got < n {
                    match f.read_at(&mut buf[got..n], off + got as u64)? {
                        0 => break,
                        k => got += k,
                    }
                }
                buf[got..n].fill(0);
                let data = &buf[..n];
                if data.iter().all(|b| *b == 0) {
                    continue;
                }
                let hash = hex::encode(Sha256::digest(data));
                let fin = self.chunk_key(&hash);
                let mut written = None;
                if !self.has_chunk(&hash) && claimed.lock().expect("claimed").insert(hash.clone()) {
                    let packed = pack(data)?;
                    let stored = packed.len() as u64;
                    let staged = self.put_staged(&fin, packed, &format!("{tag}/{hash}"))?;
                    written = Some((staged, fin, stored));
                }
                out.push((*off, hash, written, n as u64));
            }
            Ok(out)
        });
        let mut t = Transfer::default();
        let mut pending: Vec<(ObjectPath, ObjectPath)> = Vec::new();
        let mut failed = None;
        for r in results {
            match r {
                Ok(found) => {
                    for (off, hash, written, n) in found {
                        t.scanned += n;
                        if let Some((staged, fin, stored)) = written {
                            if let Some(tmp) = staged {
                                pending.push((tmp, fin));
                            }
                            t.new_chunks += 1;
                            t.new_bytes += n;
                            t.stored_bytes += stored;
                        }
                        kept.insert(off, hash);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            for (tmp, _) in &pending {
                let _ = run(self.objects.delete(tmp));
            }
            return Err(e);
        }
        let manifest = Manifest {
            size,
            chunks: kept.into_iter().collect(),
        };
        // New chunks take their final names only once their bytes are on
        // disk (one filesystem sync instead of one per chunk), so a chunk
        // under its hash is always whole; the manifest comes after the
        // renames are durable too.
        if !pending.is_empty() {
            self.sync()?;
            for (tmp, fin) in &pending {
                run(self.objects.rename(tmp, fin))?;
            }
            self.sync()?;
        }
        let json = encode_manifest(&manifest)?;
        self.publish(&self.manifest_key(name), json)?;
        Ok((manifest, t))
    }

    pub fn manifest(&self, name: &str) -> std::io::Result<Manifest> {
        let bytes = self.get(&self.manifest_key(name))?;
        decode_manifest(&bytes).map_err(|e| bad(format!("manifest {name}: {e}")))
    }

    /// Writes manifest `name`'s disk into `dst` (a new sparse file), checking
    /// every chunk against its hash; the file is synced before it returns.
    /// Chunks are fetched, unpacked, checked and written on every core.
    pub fn restore(&self, name: &str, dst: &Path) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let m = self.manifest(name)?;
        if let Some((off, _)) = m.chunks.iter().find(|(off, _)| *off >= m.size) {
            return Err(bad(format!(
                "manifest {name}: chunk at {off} past the disk's end"
            )));
        }
        let out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dst)?;
        out.set_len(m.size)?;
        let workers = workers();
        let written = std::sync::atomic::AtomicU64::new(0);
        let results = on_workers("restore", |w| {
            for (off, hash) in m.chunks.iter().skip(w).step_by(workers) {
                let packed = self
                    .get_bytes(&self.chunk_key(hash))
                    .map_err(|e| bad(format!("chunk {hash} of {name} is missing: {e}")))?;
                let data = unpack(packed.as_ref())?;
                if hex::encode(Sha256::digest(&data)) != *hash {
                    return Err(bad(format!("chunk {hash} of {name} is corrupt")));
                }
                let n = (data.len() as u64).min(m.size - off) as usize;
                out.write_all_at(&data[..n], *off)?;
                written.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        });
        results.into_iter().collect::<std::io::Result<Vec<()>>>()?;
        out.sync_all()?;
        Ok(written.into_inner())
    }

    /// Copies manifest `name` into `other` (the paired region's copy of the
    /// vault tier, for cross-region restore): the chunks `other` lacks,
    /// each checked against its hash and published before the manifest.
    /// Returns the (compressed) bytes copied.
    pub fn replicate_to(&self, other: &ChunkStore, name: &str) -> std::io::Result<u64> {
        let m = self.manifest(name)?;
        let lock = tier_lock(&other.lock_key());
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut copied = 0;
        for (_, hash) in &m.chunks {
            if other.has_chunk(hash) {
                continue;
            }
            let packed = self
                .get(&self.chunk_key(hash))
                .map_err(|e| bad(format!("chunk {hash} of {name} is missing: {e}")))?;
            if hex::encode(Sha256::digest(unpack(&packed)?)) != *hash {
                return Err(bad(format!("chunk {hash} of {name} is corrupt")));
            }
            copied += packed.len() as u64;
            other.publish(&other.chunk_key(hash), packed)?;
        }
        let json = encode_manifest(&m)?;
        other.publish(&other.manifest_key(name), json)?;
        Ok(copied)
    }

    /// Forgets a manifest (its chunks go at the next [`ChunkStore::collect`]).
    pub fn delete(&self, name: &str) -> std::io::Result<()> {
        match run(self.objects.delete(&self.manifest_key(name))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => self.sync(),
        }
    }

    /// Deletes every chunk no manifest names, and what crashed backups left
    /// staged; returns the bytes freed.
    pub fn collect(&self) -> std::io::Result<u64> {
        let lock = tier_lock(&self.lock_key());
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = std::collections::HashSet::new();
        for o in self.list("manifests")? {
            if !o.location.as_ref().ends_with(".json") {
                continue;
            }
            let m: Manifest = decode_manifest(&self.get(&o.location)?)
                .map_err(|e| bad(format!("{}: {e}", o.location)))?;
            live.extend(m.chunks.into_iter().map(|(_, h)| h));
        }
        for ids in tier_pins(&self.lock_key())
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            live.extend(ids.iter().cloned());
        }
        let mut freed = 0;
        for o in self.list("chunks")? {
            let name = o.location.filename().unwrap_or("").to_string();
            if !live.contains(&name) {
                freed += o.size;
                run(self.objects.delete(&o.location))?;
            }
        }
        // No backup runs while the lock is held: nothing staged is in use.
        for o in self.list("staging")? {
            let _ = run(self.objects.delete(&o.location));
        }
        Ok(freed)
    }

    /// Which of `ids` the tier lacks. All of them stay pinned for `session`
    /// (collections keep them) until [`ChunkStore::unpin`].
    pub fn missing_pinned(&self, session: &str, ids: &[String]) -> std::io::Result<Vec<String>> {
        if let Some(bad_id) = ids.iter().find(|i| !is_object_id(i)) {
            return Err(bad(format!("'{bad_id}' is not a chunk id")));
        }
        let lock = tier_lock(&self.lock_key());
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let pins = tier_pins(&self.lock_key());
        pins.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session.to_string())
            .or_default()
            .extend(ids.iter().cloned());
        Ok(ids.iter().filter(|i| !self.has_chunk(i)).cloned().collect())
    }

    /// Whether `session` announced `id` (asked whether the tier has it).
    pub fn is_pinned(&self, session: &str, id: &str) -> bool {
        tier_pins(&self.lock_key())
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .is_some_and(|s| s.contains(id))
    }

    pub fn unpin(&self, session: &str) {
        tier_pins(&self.lock_key())
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }

    /// Stores sealed objects (already compressed and encrypted by their
    /// owner) under their ids, durably, with one sync for the batch.
    pub fn put_objects(&self, objs: Vec<(String, Vec<u8>)>) -> std::io::Result<u64> {
        if let Some((bad_id, _)) = objs.iter().find(|(i, _)| !is_object_id(i)) {
            return Err(bad(format!("'{bad_id}' is not a chunk id")));
        }
        // Staged objects are a collection's to remove only when no put runs.
        let lock = tier_lock(&self.lock_key());
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut bytes = 0;
        let mut pending = Vec::new();
        for (id, data) in objs {
            bytes += data.len() as u64;
            let key = self.chunk_key(&id);
            if let Some(staged) = self.put_staged(&key, data, &format!("{}.tmp", uuid_like()))? {
                pending.push((staged, key));
            }
        }
        if !pending.is_empty() {
            self.sync()?;
            for (tmp, fin) in &pending {
                run(self.objects.rename(tmp, fin))?;
            }
            self.sync()?;
        }
        Ok(bytes)
    }

    /// A stored object's bytes, as its owner sealed them.
    pub fn get_object(&self, id: &str) -> std::io::Result<Vec<u8>> {
        if !is_object_id(id) {
            return Err(bad(format!("'{id}' is not a chunk id")));
        }
        self.get(&self.chunk_key(id))
    }

    /// Publishes a manifest naming stored objects; every one must exist.
    pub fn put_manifest(&self, name: &str, m: &Manifest) -> std::io::Result<()> {
        if let Some((_, gone)) = m.chunks.iter().find(|(_, h)| !self.has_chunk(h)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("chunk {gone} is not in the vault"),
            ));
        }
        let json = encode_manifest(m)?;
        self.publish(&self.manifest_key(name), json)
    }

    /// Bytes the vault tier holds (chunks only).
    pub fn stored_bytes(&self) -> std::io::Result<u64> {
        Ok(self.list("chunks")?.iter().map(|o| o.size).sum())
    }
}

/// A unique name for staged objects.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{t:x}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn sealed_objects_are_kept_while_pinned_or_named_and_collected_after() {
        let t = tempfile::tempdir().unwrap();
        let st = ChunkStore::open(t.path()).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(
            st.missing_pinned("s1", &[a.clone(), b.clone()])
                .unwrap()
                .len(),
            2
        );
        st.put_objects(vec![
            (a.clone(), b"sealed a".to_vec()),
            (b.clone(), b"sealed b".to_vec()),
        ])
        .unwrap();
        assert!(st
            .missing_pinned("s1", std::slice::from_ref(&a))
            .unwrap()
            .is_empty());
        // Pinned by an open session: a collection keeps both.
        st.collect().unwrap();
        assert_eq!(st.get_object(&a).unwrap(), b"sealed a");
        st.put_manifest(
            "p1",
            &Manifest {
                size: 8,
                chunks: vec![(0, a.clone())],
            },
        )
        .unwrap();
        st.unpin("s1");
        st.collect().unwrap();
        assert!(st.has_chunk(&a) && !st.has_chunk(&b));
        // A manifest may only name what is stored.
        assert!(st
            .put_manifest(
                "p2",
                &Manifest {
                    size: 8,
                    chunks: vec![(0, b.clone())]
                }
            )
            .is_err());
        assert!(st.put_objects(vec![("../x".into(), vec![])]).is_err());
        assert!(st.get_object("../../etc/passwd").is_err());
    }

    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn incompressible_chunks_are_stored_as_they_are_and_read_back_exactly() {
        // Random bytes would only grow under zstd: stored as they are.
        let random: Vec<u8> = (0..CHUNK as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let stored = pack(&random).unwrap();
        assert!(stored.len() <= random.len());
        assert_eq!(unpack(&stored).unwrap(), random);
        // Text-like bytes shrink: stored compressed.
        let text = b"recovery point ".repeat(1000);
        let stored = pack(&text).unwrap();
        assert!(stored.len() < text.len() && stored.starts_with(&ZSTD_MAGIC));
        assert_eq!(unpack(&stored).unwrap(), text);
        // A raw chunk that begins like a zstd frame is never stored raw.
        let mut tricky = random.clone();
        tricky[..4].copy_from_slice(&ZSTD_MAGIC);
        let stored = pack(&tricky).unwrap();
        assert_eq!(unpack(&stored).unwrap(), tricky);
        // Chunks written before raw storage (always zstd) still read.
        let old = zstd::encode_all(&random[..], 1).unwrap();
        assert_eq!(unpack(&old).unwrap(), random);
    }

    #[test]
    fn manifests_are_stored_compressed_and_plain_ones_still_read() {
        let m = Manifest {
            size: 3 << 20,
            chunks: (0..3).map(|i| (i << 20, format!("{i:064x}"))).collect(),
        };
        let packed = encode_manifest(&m).unwrap();
        assert!(packed.len() < serde_json::to_vec(&m).unwrap().len());
        assert_eq!(decode_manifest(&packed).unwrap(), m);
        assert_eq!(
            decode_manifest(&serde_json::to_vec(&m).unwrap()).unwrap(),
            m
        );
    }

    fn write_at(p: &Path, off: u64, byte: u8, len: usize) {
        let mut f = OpenOptions::new().write(true).open(p).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&vec![byte; len]).unwrap();
    }

    fn disk(dir: &Path, size: u64) -> PathBuf {
        let p = dir.join("disk.img");
        File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    #[test]
    fn a_stopped_backup_publishes_nothing_and_keeps_no_new_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("vault")).unwrap();
        let size = 200 << 20;
        let img = disk(dir.path(), size);
        for i in 0..200u64 {
            write_at(&img, i << 20, i as u8 + 1, 1 << 20);
        }
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let e = store
            .backup_since_unless(&img, size, "p1", None, &|| {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            })
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
        assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        assert!(store.manifest("p1").is_err(), "nothing is published");
        // Whatever a worker had written before it stopped was removed: a
        // backup afterwards stores every chunk as new.
        let (_, t) = store.backup(&img, size, "p1").unwrap();
        assert_eq!(t.new_chunks, 200);
    }

    #[test]
    fn an_incremental_backup_reads_only_what_was_written_since() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("vault")).unwrap();
        let size = 16 << 20;
        let img = disk(dir.path(), size);
        for i in 0..8u64 {
            write_at(&img, i << 20, 0x10 + i as u8, 1 << 20);
        }
        let (_, full) = store.backup(&img, size, "p1").unwrap();
        assert_eq!(full.scanned, 8 << 20);
        // 4 KiB written at 3 MiB + 10 and the chunk at 12 MiB written new.
        write_at(&img, (3 << 20) + 10, 0x99, 4096);
        write_at(&img, 12 << 20, 0x77, 100);
        let written = [((3 << 20) + 10, 4096), (12 << 20, 100)];
        let (m, t) = store
            .backup_since(&img, size, "p2", Some(("p1", &written)))
            .unwrap();
        assert_eq!((t.scanned, t.new_chunks), (2 << 20, 2));
        assert_eq!(m.chunks.len(), 9);
        let out = dir.path().join("out.img");
        store.restore("p2", &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&img).unwrap());
        // A missing base reads everything.
        let (_, t) = store
            .backup_since(&img, size, "p3", Some(("gone", &written)))
            .unwrap();
        assert_eq!(t.scanned, 9 << 20);
        store.restore("p1", &out).unwrap();
        assert!(fs::read(&out).unwrap()[3 << 20..4 << 20]
            .iter()
            .all(|b| *b == 0x13));
    }

    #[test]
    fn replication_copies_only_missing_chunks_and_restores_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let primary = ChunkStore::open(&dir.path().join("eastus")).unwrap();
        let secondary = ChunkStore::open(&dir.path().join("westus")).unwrap();
        let size = 8 << 20;
        let img = disk(dir.path(), size);
        write_at(&img, 0, 0x41, 1 << 20);
        write_at(&img, 1 << 20, 0x43, 1 << 20);
        primary.backup(&img, size, "p1").unwrap();
        let chunks = |s: &ChunkStore| {
            fs::read_dir(s.local.as_ref().unwrap().join("chunks"))
                .unwrap()
                .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
                .sum::<usize>()
        };
        assert!(primary.replicate_to(&secondary, "p1").unwrap() > 0);
        assert_eq!(chunks(&secondary), 2);
        write_at(&img, 5 << 20, 0x42, 10);
        primary.backup(&img, size, "p2").unwrap();
        // Only the changed chunk travels the second time.
        assert!(primary.replicate_to(&secondary, "p2").unwrap() > 0);
        assert_eq!(chunks(&secondary), 3);
        assert_eq!(primary.replicate_to(&secondary, "p2").unwrap(), 0);
        let out = dir.path().join("out.img");
        secondary.restore("p1", &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert!(bytes[..1 << 20].iter().all(|b| *b == 0x41));
        assert!(bytes[1 << 20..2 << 20].iter().all(|b| *b == 0x43));
        assert!(bytes[5 << 20..(5 << 20) + 10].iter().all(|b| *b == 0));
        secondary.restore("p2", &out).unwrap();
        assert!(fs::read(&out).unwrap()[5 << 20..(5 << 20) + 10]
            .iter()
            .all(|b| *b == 0x42));
    }

    #[test]
    fn restores_exactly_and_stores_each_chunk_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("vault")).unwrap();
        let size = 64 << 20;
        let img = disk(dir.path(), size);
        write_at(&img, 0, 0x11, 3 << 20);
        write_at(&img, 40 << 20, 0x22, 100);
        let (_, t1) = store.backup(&img, size, "p1-d0").unwrap();
        // Three full chunks of 0x11 are one chunk stored once, plus the 0x22 chunk.
        assert_eq!(t1.new_chunks, 2);
        // Nothing changed: the second backup stores nothing new.
        let (_, t2) = store.backup(&img, size, "p2-d0").unwrap();
        assert_eq!(t2.new_chunks, 0);
        write_at(&img, 1 << 20, 0x33, 4096);
        let (_, t3) = store.backup(&img, size, "p3-d0").unwrap();
        assert_eq!((t3.new_chunks, t3.new_bytes), (1, CHUNK));

        let out = dir.path().join("restored.img");
        store.restore("p1-d0", &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes[..3 << 20].iter().all(|b| *b == 0x11));
        assert!(bytes[40 << 20..(40 << 20) + 100].iter().all(|b| *b == 0x22));
        assert!(bytes[(3 << 20)..(40 << 20)].iter().all(|b| *b == 0));
        store.restore("p3-d0", &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert!(bytes[1 << 20..(1 << 20) + 4096].iter().all(|b| *b == 0x33));
        assert!(bytes[..1 << 20].iter().all(|b| *b == 0x11));
    }

    #[test]
    fn deleting_points_frees_only_unshared_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("vault")).unwrap();
        let size = 8 << 20;
        let img = disk(dir.path(), size);
        write_at(&img, 0, 0x01, 1 << 20);
        store.backup(&img, size, "a").unwrap();
        write_at(&img, 2 << 20, 0x02, 1 << 20);
        store.backup(&img, size, "b").unwrap();
        store.delete("a").unwrap();
        // Every chunk of "a" is also in "b".
        assert_eq!(store.collect().unwrap(), 0);
        store.restore("b", &dir.path().join("r")).unwrap();
        store.delete("b").unwrap();
        assert!(store.collect().unwrap() > 0);
        assert_eq!(store.stored_bytes().unwrap(), 0);
    }

    #[test]
    fn a_missing_or_corrupt_chunk_fails_the_restore() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("vault")).unwrap();
        let img = disk(dir.path(), 2 << 20);
        write_at(&img, 0, 0x05, 10);
        let (m, _) = store.backup(&img, 2 << 20, "p").unwrap();
        let chunk = dir
            .path()
            .join("vault/chunks")
            .join(&m.chunks[0].1[..2])
            .join(&m.chunks[0].1);
        fs::write(&chunk, zstd::encode_all(&b"tampered"[..], 1).unwrap()).unwrap();
        let e = store.restore("p", &dir.path().join("r")).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        fs::remove_file(&chunk).unwrap();
        assert!(store
            .restore("p", &dir.path().join("r"))
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
