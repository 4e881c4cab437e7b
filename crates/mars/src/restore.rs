//! Restoring a recovery point: files byte-identical, with their modes and
//! mtimes, symlinks and empty directories, under `target/{root's name}/…`.
//! Every chunk is opened with its key and checked against its id before a
//! byte is written, and each file is written under a temporary name and
//! renamed into place, so a failed restore leaves no half-written file.
//! Like `cp` and restic, a restore leaves flushing the written files to the
//! operating system (`sync` when it must survive a power cut at once).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::crypto;
use crate::index::{Entry, Kind, Snapshot};
use crate::Remote;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Where `e` goes under `target`.
fn destination(s: &Snapshot, e: &Entry, target: &Path) -> PathBuf {
    let root = Path::new(&s.roots[e.root]);
    let mut p = target.join(
        root.file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "root".into()),
    );
    for part in e.rel.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." {
            continue; // an index never names these; never leave the target
        }
        p.push(part);
    }
    p
}

fn full_path(s: &Snapshot, e: &Entry) -> String {
    if e.rel.is_empty() {
        s.roots[e.root].clone()
    } else {
        format!("{}/{}", s.roots[e.root].trim_end_matches('/'), e.rel)
    }
}

/// Whether `e` is one of `paths` or under one (absolute paths as backed up).
fn under(s: &Snapshot, e: &Entry, paths: &[String]) -> bool {
    let full = full_path(s, e);
    paths.iter().any(|p| {
        let p = p.trim_end_matches('/');
        full == p || full.starts_with(&format!("{p}/"))
    })
}

/// Whether `e` is restored for `paths` (none: everything): the paths, what
/// is under them, and the directories above them.
fn selected(s: &Snapshot, e: &Entry, paths: &[String]) -> bool {
    if paths.is_empty() || under(s, e, paths) {
        return true;
    }
    let full = full_path(s, e);
    e.kind == Kind::Dir && paths.iter().any(|p| p.starts_with(&format!("{full}/")))
}

fn set_mtime(path: &Path, ns: i128, symlink: bool) -> io::Result<()> {
    let t = filetime::FileTime::from_unix_time(
        (ns.div_euclid(1_000_000_000)) as i64,
        (ns.rem_euclid(1_000_000_000)) as u32,
    );
    if symlink {
        filetime::set_symlink_file_times(path, t, t)
    } else {
        filetime::set_file_times(path, t, t)
    }
}

/// Restores the entries `paths` selects from `s` under `target`.
/// A file being written: its temporary name, its place, what it got so far.
struct Open<'a> {
    entry: &'a Entry,
    tmp: PathBuf,
    dst: PathBuf,
    file: fs::File,
    written: u64,
}

impl Open<'_> {
    fn finish(self) -> io::Result<u64> {
        if self.written != self.entry.size {
            return Err(bad(format!(
                "{} restored {} bytes, the index says {}",
                self.entry.rel, self.written, self.entry.size
            )));
        }
        self.file
            .set_permissions(fs::Permissions::from_mode(self.entry.mode))?;
        drop(self.file);
        fs::rename(&self.tmp, &self.dst)?;
        set_mtime(&self.dst, self.entry.mtime_ns, false)?;
        Ok(self.written)
    }
}

fn begin_file<'a>(s: &Snapshot, e: &'a Entry, target: &Path) -> io::Result<Open<'a>> {
    let dst = destination(s, e, target);
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    let tmp = dst.with_file_name(format!(
        ".{}.restoring",
        dst.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let file = fs::File::create(&tmp)?;
    Ok(Open {
        entry: e,
        tmp,
        dst,
        file,
        written: 0,
    })
}

/// Restores the entries `paths` selects from `s` under `target`. The
/// chunks of every file come in one stream, so a transport can keep many
/// requests in flight across small files.
pub fn run<R: Remote>(
    remote: &mut R,
    s: &Snapshot,
    paths: &[String],
    target: &Path,
) -> io::Result<Restored> {
    let mut out = Restored::default();
    let chosen: Vec<&Entry> = s
        .entries
        .iter()
        .filter(|e| e.root < s.roots.len() && selected(s, e, paths))
        .collect();
    if !paths.is_empty() && !chosen.iter().any(|e| under(s, e, paths)) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the recovery point holds none of {}", paths.join(", ")),
        ));
    }
    fs::create_dir_all(target)?;
    let mut dirs = Vec::new();
    for e in chosen.iter().filter(|e| e.kind == Kind::Dir) {
        let dst = destination(s, e, target);
        fs::create_dir_all(&dst)?;
        dirs.push((dst, *e));
        out.dirs += 1;
    }
    for e in chosen.iter().filter(|e| e.kind == Kind::Symlink) {
        let dst = destination(s, e, target);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        let _ = fs::remove_file(&dst);
        std::os::unix::fs::symlink(e.target.as_deref().unwrap_or(""), &dst)?;
        set_mtime(&dst, e.mtime_ns, true)?;
        out.symlinks += 1;
    }
    let files: Vec<&Entry> = chosen
        .iter()
        .filter(|e| e.kind == Kind::File)
        .copied()
        .collect();
    // Empty files have no chunks: written at once.
    for e in files.iter().filter(|e| e.chunks.is_empty()) {
        begin_file(s, e, target)?.finish()?;
        out.files += 1;
    }
    // Every other file's chunks, in order, as one stream.
    let order: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(fi, e)| (0..e.chunks.len()).map(move |ci| (fi, ci)))
        .collect();
    let ids: Vec<String> = order
        .iter()
        .map(|(fi, ci)| files[*fi].chunks[*ci].id.clone())
        .collect();
    let mut cur: Option<Open> = None;
    let res = remote.get_each(&ids, &mut |i, sealed| {
        let (fi, ci) = order[i];
        let e = files[fi];
        if ci == 0 {
            cur = Some(begin_file(s, e, target)?);
        }
        let c = &e.chunks[ci];
        let key: [u8; 32] = hex::decode(&c.key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad(format!("the index holds a malformed key for {}", e.rel)))?;
        if crypto::chunk_key_id(&key) != c.id {
            return Err(bad(format!(
                "chunk {} of {} does not match its id",
                c.id, e.rel
            )));
        }
        let plain = crypto::open_chunk(&key, &sealed, c.len as usize)
            .map_err(|x| bad(format!("chunk {} of {}: {x}", c.id, e.rel)))?;
        let open = cur
            .as_mut()
            .ok_or_else(|| bad("chunks out of order".into()))?;
        open.file.write_all(&plain)?;
        open.written += plain.len() as u64;
        if ci + 1 == e.chunks.len() {
            let done = cur.take().expect("open").finish()?;
            out.files += 1;
            out.bytes += done;
        }
        Ok(())
    });
    if let Err(x) = res {
        // Nothing half-written stays: the file being written goes.
        if let Some(o) = cur.take() {
            let _ = fs::remove_file(&o.tmp);
        }
        return Err(x);
    }
    // Directories last, deepest first: writing into them moved their mtimes.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, e) in dirs {
        fs::set_permissions(&p, fs::Permissions::from_mode(e.mode))?;
        set_mtime(&p, e.mtime_ns, false)?;
    }
    Ok(out)
}
