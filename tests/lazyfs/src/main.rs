//! lazyfs: a passthrough FUSE filesystem over a backing directory that keeps
//! every file's written data in its own memory until the file is synced
//! (`fsync`/`fdatasync`), as a disk's volatile cache would — in the spirit
//! of Jepsen's LazyFS. Killing the process is a power cut: what was not
//! synced is gone, and the backing directory holds exactly what a machine
//! would find after it rebooted.
//!
//! Metadata operations (create, mkdir, rename, unlink, truncate) go through
//! to the backing directory at once, as LazyFS does by default: the power
//! cut this models loses data, not names.
//!
//! `SIGUSR1` is a power cut with torn writes: a random half of the unsynced
//! pages reach the backing files first, then the process exits.
//!
//! Usage: `recoverite-lazyfs BACKING MOUNTPOINT` (runs until unmounted or killed).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

const PAGE: u64 = 4096;
/// Attributes are never cached by the kernel: sizes change under it.
const TTL: Duration = Duration::ZERO;

/// A file's unsynced state: whole pages as last written, and its length.
struct Dirty {
    pages: BTreeMap<u64, Vec<u8>>,
    size: u64,
}

#[derive(Default)]
struct State {
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    dirty: HashMap<u64, Dirty>,
    handles: HashMap<u64, File>,
    next_fh: u64,
}

struct LazyFs {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

fn kind_of(m: &std::fs::Metadata) -> FileType {
    let t = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

impl State {
    fn intern(&mut self, rel: &Path) -> u64 {
        if let Some(i) = self.inodes.get(rel) {
            return *i;
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.paths.insert(ino, rel.to_path_buf());
        self.inodes.insert(rel.to_path_buf(), ino);
        ino
    }

    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.inodes.remove(rel) {
            self.paths.remove(&ino);
            self.dirty.remove(&ino);
        }
    }

    /// Moves `from` (and everything under it) to `to`.
    fn rename(&mut self, from: &Path, to: &Path) {
        self.forget_path(to);
        let moved: Vec<(PathBuf, u64)> = self
            .inodes
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, ino) in moved {
            self.inodes.remove(&p);
            // (`join("")` would add a trailing slash.)
            let rest = p.strip_prefix(from).expect("under from");
            let np = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            self.inodes.insert(np.clone(), ino);
            self.paths.insert(ino, np);
        }
    }

    /// Writes `ino`'s unsynced pages to `f` and makes them durable; with
    /// `keep` set, only pages it returns true for (a torn write).
    fn persist(
        &mut self,
        ino: u64,
        f: &File,
        mut keep: impl FnMut() -> bool,
    ) -> std::io::Result<()> {
        let Some(d) = self.dirty.remove(&ino) else {
            return Ok(());
        };
        for (idx, page) in &d.pages {
            let off = idx * PAGE;
            if off >= d.size || !keep() {
                continue;
            }
            let n = (d.size - off).min(PAGE) as usize;
            f.write_all_at(&page[..n], off)?;
        }
        if f.metadata()?.len() != d.size {
            f.set_len(d.size)?;
        }
        f.sync_data()
    }
}

impl LazyFs {
    fn backing(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn path_of(&self, st: &State, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino.0 == 1 {
            return Ok(PathBuf::new());
        }
        st.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    /// `name` under the directory `parent`.
    fn child(&self, st: &State, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        self.path_of(st, parent).map(|p| p.join(name))
    }

    /// mknod and mkdir: `mk` creates the backing entry, which is then looked up.
    fn make(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        mk: impl FnOnce(&Path) -> std::io::Result<()>,
    ) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if let Err(e) = mk(&self.backing(&rel)) {
            return reply.error(errno(e));
        }
        self.entry(&mut st, rel, reply)
    }

    /// unlink and rmdir: removes the backing entry, then forgets it.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        rm: fn(&Path) -> std::io::Result<()>,
    ) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match rm(&self.backing(&rel)) {
            Ok(()) => {
                st.forget_path(&rel);
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn attr(&self, st: &State, ino: u64, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.backing(rel)).map_err(errno)?;
        let size = st.dirty.get(&ino).map(|d| d.size).unwrap_or(m.len());
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: m.blocks().max(size.div_ceil(512)),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: time(m.ctime(), m.ctime_nsec()),
            kind: kind_of(&m),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn entry(&self, st: &mut State, rel: PathBuf, reply: ReplyEntry) {
        let ino = st.intern(&rel);
        match self.attr(st, ino, &rel) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => {
                st.forget_path(&rel);
                reply.error(e)
            }
        }
    }

    /// A handle on the backing file for reading pages in.
    fn file_for(&self, st: &State, ino: u64) -> std::io::Result<File> {
        let rel = st.paths.get(&ino).ok_or(std::io::ErrorKind::NotFound)?;
        File::open(self.backing(rel))
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.state.lock().expect("state");
        match self.path_of(&st, parent) {
            Ok(p) => self.entry(&mut st, p.join(name), reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.state.lock().expect("state");
        match self
            .path_of(&st, ino)
            .and_then(|p| self.attr(&st, ino.0, &p))
        {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.path_of(&st, ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let path = self.backing(&rel);
        let res = (|| -> std::io::Result<()> {
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m & 0o7777))?;
            }
            if let Some(n) = size {
                // Truncation is metadata: it reaches the backing file now;
                // unsynced pages past the new end are dropped.
                OpenOptions::new().write(true).open(&path)?.set_len(n)?;
                if let Some(d) = st.dirty.get_mut(&ino.0) {
                    d.size = n;
                    d.pages.retain(|i, _| i * PAGE < n);
                    if let Some(last) = d.pages.get_mut(&(n / PAGE)) {
                        last[(n % PAGE) as usize..].fill(0);
                    }
                }
            }
            if let Some(t) = mtime {
                let t = match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                File::options().write(true).open(&path)?.set_modified(t)?;
            }
            Ok(())
        })();
        match res.map_err(errno).and_then(|_| self.attr(&st, ino.0, &rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, reply, |path| {
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
            // SAFETY: a valid C string; mknod touches no Rust memory.
            match unsafe { libc::mknod(c.as_ptr(), mode & !umask, rdev as libc::dev_t) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(parent, name, reply, |path| {
            std::fs::create_dir(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !umask))
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_file(p))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_dir(p))
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock().expect("state");
        let (from, to) = match (self.path_of(&st, parent), self.path_of(&st, newparent)) {
            (Ok(a), Ok(b)) => (a.join(name), b.join(newname)),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        match std::fs::rename(self.backing(&from), self.backing(&to)) {
            Ok(()) => {
                st.rename(&from, &to);
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.path_of(&st, ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let path = self.backing(&rel);
        let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        let f = OpenOptions::new().read(true).write(writable).open(&path);
        match f {
            Ok(f) => {
                st.next_fh += 1;
                let fh = st.next_fh;
                st.handles.insert(fh, f);
                reply.opened(FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.child(&st, parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).mode(mode & !umask);
        if flags & libc::O_EXCL != 0 {
            o.create_new(true);
        }
        if flags & libc::O_TRUNC != 0 {
            o.truncate(true);
        }
        match o.open(self.backing(&rel)) {
            Ok(f) => {
                let ino = st.intern(&rel);
                st.dirty.remove(&ino);
                st.next_fh += 1;
                let fh = st.next_fh;
                st.handles.insert(fh, f);
                match self.attr(&st, ino, &rel) {
                    Ok(a) => {
                        reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
                    }
                    Err(e) => reply.error(e),
                }
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.state.lock().expect("state");
        let Some(f) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let logical = match st.dirty.get(&ino.0) {
            Some(d) => d.size,
            None => match f.metadata() {
                Ok(m) => m.len(),
                Err(e) => return reply.error(errno(e)),
            },
        };
        let end = offset.saturating_add(size as u64).min(logical);
        if end <= offset {
            return reply.data(&[]);
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        // The backing file first (short reads past its end stay zero)...
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return reply.error(errno(e)),
            }
        }
        // ...then the pages written since the last sync on top.
        if let Some(d) = st.dirty.get(&ino.0) {
            for (idx, page) in d.pages.range(offset / PAGE..=(end - 1) / PAGE) {
                let p0 = idx * PAGE;
                let from = p0.max(offset);
                let to = (p0 + PAGE).min(end);
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&page[(from - p0) as usize..(to - p0) as usize]);
            }
        }
        reply.data(&buf)
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.state.lock().expect("state");
        if !st.handles.contains_key(&fh.0) {
            return reply.error(Errno::EBADF);
        }
        let backing = match self.file_for(&st, ino.0) {
            Ok(f) => f,
            Err(e) => return reply.error(errno(e)),
        };
        let base = backing.metadata().map(|m| m.len()).unwrap_or(0);
        let d = st.dirty.entry(ino.0).or_insert_with(|| Dirty {
            pages: BTreeMap::new(),
            size: base,
        });
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let idx = pos / PAGE;
            let page = d.pages.entry(idx).or_insert_with(|| {
                let mut p = vec![0u8; PAGE as usize];
                // A page not written since the last sync starts as the
                // backing file has it (only up to the logical end).
                if idx * PAGE < d.size {
                    let _ = backing.read_at(&mut p, idx * PAGE);
                    let keep = (d.size - idx * PAGE).min(PAGE) as usize;
                    p[keep..].fill(0);
                }
                p
            });
            let in_page = (pos - idx * PAGE) as usize;
            let n = (PAGE as usize - in_page).min((end - pos) as usize);
            let src = (pos - offset) as usize;
            page[in_page..in_page + n].copy_from_slice(&data[src..src + n]);
            pos += n as u64;
        }
        d.size = d.size.max(end);
        reply.written(data.len() as u32)
    }

    /// SEEK_DATA and SEEK_HOLE, as ext4 answers them: data is what the
    /// backing file holds plus every unsynced page, so sparse files stay
    /// sparse when recoverite copies them (without this, every hole reads as
    /// data and a 1 GiB empty disk is copied whole, into memory).
    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let st = self.state.lock().expect("state");
        let Some(f) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let backing_len = match f.metadata() {
            Ok(m) => m.len(),
            Err(e) => return reply.error(errno(e)),
        };
        let dirty = st.dirty.get(&ino.0);
        let size = dirty.map(|d| d.size).unwrap_or(backing_len);
        let Ok(off) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        if off >= size {
            return reply.error(Errno::ENXIO);
        }
        let is_dirty = |p: u64| dirty.is_some_and(|d| d.pages.contains_key(&(p / PAGE)));
        // The backing file's own answer (None: no data at or after `p`).
        let backing = |p: u64, how: i32| -> Option<u64> {
            if p >= backing_len {
                return None;
            }
            use std::os::fd::AsRawFd;
            // SAFETY: lseek on a descriptor we own moves only its offset.
            let r = unsafe { libc::lseek(f.as_raw_fd(), p as libc::off_t, how) };
            (r >= 0).then_some(r as u64)
        };
        match whence {
            libc::SEEK_DATA => {
                let from_backing = backing(off, libc::SEEK_DATA);
                let from_pages = dirty
                    .and_then(|d| d.pages.range(off / PAGE..).next())
                    .map(|(idx, _)| (idx * PAGE).max(off));
                match [from_backing, from_pages].into_iter().flatten().min() {
                    Some(x) if x < size => reply.offset(x as i64),
                    _ => reply.error(Errno::ENXIO),
                }
            }
            libc::SEEK_HOLE => {
                let mut p = off;
                while p < size {
                    if is_dirty(p) {
                        p = (p / PAGE + 1) * PAGE;
                    } else if backing(p, libc::SEEK_DATA) == Some(p) {
                        p = backing(p, libc::SEEK_HOLE)
                            .unwrap_or(backing_len)
                            .max(p + 1);
                    } else {
                        break;
                    }
                }
                reply.offset(p.min(size) as i64)
            }
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a durability point.
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // The unsynced pages stay: a page cache outlives the descriptor.
        self.state.lock().expect("state").handles.remove(&fh.0);
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock().expect("state");
        let res = OpenOptions::new()
            .write(true)
            .open(match st.paths.get(&ino.0) {
                Some(p) => self.backing(p),
                None => return reply.ok(),
            })
            .and_then(|f| st.persist(ino.0, &f, || true));
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state.lock().expect("state");
        let rel = match self.path_of(&st, ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        match std::fs::read_dir(self.backing(&rel)) {
            Ok(rd) => {
                let mut names: Vec<_> = rd.flatten().collect();
                names.sort_by_key(|e| e.file_name());
                for e in names {
                    let kind = e
                        .metadata()
                        .map(|m| kind_of(&m))
                        .unwrap_or(FileType::RegularFile);
                    let child = st.intern(&rel.join(e.file_name()));
                    entries.push((child, kind, e.file_name()));
                }
            }
            Err(e) => return reply.error(errno(e)),
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let c = std::ffi::CString::new(self.root.as_os_str().as_bytes()).expect("path");
        // SAFETY: statvfs fills the struct we own.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return reply.error(errno(std::io::Error::last_os_error()));
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        )
    }
}

static TORN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    TORN.store(true, Ordering::SeqCst);
}

/// On SIGUSR1: a random half of the unsynced pages reach the backing files,
/// then the process ends without syncing anything else (a torn power cut).
fn watch_for_torn_cut(root: PathBuf, state: Arc<Mutex<State>>) {
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t) };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(5));
        if !TORN.load(Ordering::SeqCst) {
            continue;
        }
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        let inos: Vec<u64> = st.dirty.keys().copied().collect();
        for ino in inos {
            let Some(p) = st.paths.get(&ino).map(|p| root.join(p)) else {
                continue;
            };
            if let Ok(f) = OpenOptions::new().write(true).open(p) {
                let _ = st.persist(ino, &f, || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed & 1 == 0
                });
            }
        }
        // SAFETY: ends the process at once, as a power cut would.
        unsafe { libc::_exit(0) };
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: recoverite-lazyfs BACKING MOUNTPOINT");
        std::process::exit(2);
    }
    let root = std::fs::canonicalize(&args[1]).expect("the backing directory exists");
    let state = Arc::new(Mutex::new(State {
        next_ino: 1,
        ..State::default()
    }));
    watch_for_torn_cut(root.clone(), state.clone());
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName("lazyfs".into()),
        MountOption::DefaultPermissions,
    ];
    let fs = LazyFs { root, state };
    if let Err(e) = fuser::mount(fs, &args[2], &cfg) {
        eprintln!("lazyfs: cannot mount on {}: {e}", args[2]);
        std::process::exit(1);
    }
}
