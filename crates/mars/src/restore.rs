//! Restoring a recovery point: files byte-identical, with their modes and
//! mtimes, symlinks and empty directories, under `target/{root's name}/…`.
//! Every chunk is opened with its key and checked against its id before a
//! byte is written, and each file is written under a temporary name and
//! renamed into place, so a failed restore leaves no half-written file.

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
    for e in &chosen {
        let dst = destination(s, e, target);
        match e.kind {
            Kind::Dir => {
                fs::create_dir_all(&dst)?;
                dirs.push((dst, e));
                out.dirs += 1;
            }
            Kind::Symlink => {
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                let _ = fs::remove_file(&dst);
                std::os::unix::fs::symlink(e.target.as_deref().unwrap_or(""), &dst)?;
                set_mtime(&dst, e.mtime_ns, true)?;
                out.symlinks += 1;
            }
            Kind::File => {
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                let tmp = dst.with_file_name(format!(
                    ".{}.restoring",
                    dst.file_name().and_then(|n| n.to_str()).unwrap_or("file")
                ));
                let res = (|| -> io::Result<u64> {
                    let mut f = fs::File::create(&tmp)?;
                    let mut n = 0u64;
                    for c in &e.chunks {
                        let key: [u8; 32] = hex::decode(&c.key)
                            .ok()
                            .and_then(|k| k.try_into().ok())
                            .ok_or_else(|| {
                                bad(format!("the index holds a malformed key for {}", e.rel))
                            })?;
                        let sealed = remote.get(&c.id)?;
                        let plain = crypto::open_chunk(&key, &sealed, c.len as usize)
                            .map_err(|x| bad(format!("chunk {} of {}: {x}", c.id, e.rel)))?;
                        if crypto::chunk_key_id(&key) != c.id {
                            return Err(bad(format!(
                                "chunk {} of {} does not match its id",
                                c.id, e.rel
                            )));
                        }
                        f.write_all(&plain)?;
                        n += plain.len() as u64;
                    }
                    if n != e.size {
                        return Err(bad(format!(
                            "{} restored {n} bytes, the index says {}",
                            e.rel, e.size
                        )));
                    }
                    f.set_permissions(fs::Permissions::from_mode(e.mode))?;
                    f.sync_all()?;
                    Ok(n)
                })();
                match res {
                    Ok(n) => {
                        fs::rename(&tmp, &dst)?;
                        set_mtime(&dst, e.mtime_ns, false)?;
                        out.files += 1;
                        out.bytes += n;
                    }
                    Err(x) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(x);
                    }
                }
            }
        }
    }
    // Directories last, deepest first: writing into them moved their mtimes.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, e) in dirs {
        fs::set_permissions(&p, fs::Permissions::from_mode(e.mode))?;
        set_mtime(&p, e.mtime_ns, false)?;
    }
    Ok(out)
}
