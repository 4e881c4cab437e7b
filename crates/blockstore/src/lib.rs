//! Managed disk bytes: one sparse file per disk under `DATA/disks/`, and an
//! exact change journal beside it — every write acknowledged through NBD has
//! its range appended to `{disk}.changes` first, the way a filter driver
//! tracks changed blocks, so replication can ship exactly what changed.

pub mod gate;
pub mod nbd;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Change-tracking granularity.
pub const BLOCK: u64 = 64 * 1024;

#[derive(Clone, Debug)]
pub struct BlockStore {
    dir: PathBuf,
}

impl BlockStore {
    pub fn open(data_dir: &Path) -> std::io::Result<BlockStore> {
        let dir = data_dir.join("disks");
        std::fs::create_dir_all(&dir)?;
        Ok(BlockStore { dir })
    }

    pub fn image(&self, unique_id: &str) -> PathBuf {
        self.dir.join(format!("{unique_id}.img"))
    }

    pub fn journal(&self, unique_id: &str) -> PathBuf {
        self.dir.join(format!("{unique_id}.changes"))
    }

    /// Creates an empty (sparse) disk of `size` bytes.
    pub fn create(&self, unique_id: &str, size: u64) -> std::io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.image(unique_id))?;
        f.set_len(size)?;
        f.sync_all()
    }

    /// Copies a disk, keeping holes.
    pub fn copy(&self, from: &str, to: &str, size: u64) -> std::io::Result<()> {
        copy_sparse(&self.image(from), &self.image(to), size)
    }

    /// Grows a disk (Azure never shrinks one).
    pub fn resize(&self, unique_id: &str, size: u64) -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.image(unique_id))?;
        if f.metadata()?.len() < size {
            f.set_len(size)?;
        }
        f.sync_all()
    }

    pub fn delete(&self, unique_id: &str) -> std::io::Result<()> {
        for p in [self.image(unique_id), self.journal(unique_id)] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Bytes actually allocated on disk (sparse files use less than their size).
    pub fn allocated(&self, unique_id: &str) -> std::io::Result<u64> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(std::fs::metadata(self.image(unique_id))?.blocks() * 512)
        }
        #[cfg(not(unix))]
        {
            Ok(std::fs::metadata(self.image(unique_id))?.len())
        }
    }

    /// The change journal's length: a position to ask for later writes.
    pub fn journal_len(&self, unique_id: &str) -> std::io::Result<u64> {
        match std::fs::metadata(self.journal(unique_id)) {
            Ok(m) => Ok(m.len() / 16 * 16),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Frees the change journal's records before position `upto` (every
    /// consumer has read past them): the prefix becomes a hole, so positions
    /// stay valid and writers appending meanwhile are undisturbed. Returns
    /// the bytes the journal takes on disk afterwards.
    pub fn release_journal(&self, unique_id: &str, upto: u64) -> std::io::Result<u64> {
        let path = self.journal(unique_id);
        let f = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        // Whole filesystem pages only, and never past the journal's end.
        let end = upto.min(f.metadata()?.len()) / 4096 * 4096;
        if end > 0 {
            zero_range(&f, 0, end)?;
        }
        use std::os::unix::fs::MetadataExt;
        Ok(f.metadata()?.blocks() * 512)
    }

    /// The `(offset, length)` writes journaled from position `from` to
    /// `to` (positions from [`BlockStore::journal_len`]).
    pub fn written_between(
        &self,
        unique_id: &str,
        from: u64,
        to: u64,
    ) -> std::io::Result<Vec<(u64, u64)>> {
        use std::io::{Read, Seek, SeekFrom};
        if to <= from {
            return Ok(Vec::new());
        }
        let mut f = File::open(self.journal(unique_id))?;
        f.seek(SeekFrom::Start(from))?;
        let mut data = vec![0u8; (to - from) as usize];
        f.read_exact(&mut data)?;
        Ok(journal_records(&data).collect())
    }

    /// The changed ranges recorded so far, merged to whole blocks.
    pub fn changed_blocks(&self, unique_id: &str) -> std::io::Result<Vec<u64>> {
        let mut blocks = std::collections::BTreeSet::new();
        let data = match std::fs::read(self.journal(unique_id)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let size = std::fs::metadata(self.image(unique_id))?.len();
        for (off, len) in journal_records(&data) {
            if let Some(r) = record_blocks(off, len, size) {
                blocks.extend(r);
            }
        }
        Ok(blocks.into_iter().collect())
    }
}

/// Copies a sparse image: only allocated ranges are read (SEEK_DATA /
/// SEEK_HOLE), and zero blocks within them are skipped, so holes stay holes.
pub fn copy_sparse(from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
    copy_sparse_unsynced(from, to, size)?;
    OpenOptions::new().write(true).open(to)?.sync_all()
}

/// `copy_sparse` without the final sync (the caller syncs, or flushes later).
pub fn copy_sparse_unsynced(from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
    let mut src = File::open(from)?;
    let mut dst = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(to)?;
    dst.set_len(size)?;
    let ranges = data_ranges(&src)?;
    // In-kernel copy of the allocated ranges only; holes stay holes.
    if copy_ranges_in_kernel(&src, &dst, &ranges, size).is_ok() {
        return Ok(());
    }
    let mut buf = vec![0u8; BLOCK as usize];
    for (start, end) in ranges {
        let mut off = start;
        while off < end.min(size) {
            let n = ((end.min(size) - off) as usize).min(buf.len());
            src.seek(SeekFrom::Start(off))?;
            src.read_exact(&mut buf[..n])?;
            if buf[..n].iter().any(|b| *b != 0) {
                dst.seek(SeekFrom::Start(off))?;
                dst.write_all(&buf[..n])?;
            }
            off += n as u64;
        }
    }
    Ok(())
}

/// The allocated (non-hole) ranges of a sparse file.
pub fn data_ranges(f: &File) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let len = f.metadata()?.len();
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut off: i64 = 0;
    while (off as u64) < len {
        // SAFETY: lseek on a file descriptor we own; it only moves the offset.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            // No SEEK_DATA support: treat the whole file as data.
            return Ok(vec![(0, len)]);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { len as i64 } else { hole };
        out.push((data as u64, hole as u64));
        off = hole;
    }
    Ok(out)
}

/// Zeroes `len` bytes at `offset` by punching a hole (the disk keeps its
/// size and frees the blocks, as TRIM and WRITE_ZEROES mean); where the
/// filesystem cannot punch holes, zeros are written.
pub fn zero_range(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(());
    }
    let (Ok(o), Ok(l)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: fallocate on an open descriptor touches no Rust memory.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            o,
            l,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(e);
    }
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The records of a change journal: offset and length, each u64 LE. A torn
/// final record (fewer than 16 bytes, cut by a crash) is ignored.
pub fn journal_records(data: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    data.chunks_exact(16).map(|r| {
        let (off, len) = r.split_at(8);
        (
            u64::from_le_bytes(off.try_into().expect("8 bytes")),
            u64::from_le_bytes(len.try_into().expect("8 bytes")),
        )
    })
}

/// The whole blocks a journal record covers on a disk of `size` bytes. The
/// NBD server records only writes inside the disk; a record that says
/// otherwise (a damaged journal) is clamped to the disk, so it can make
/// replication ship more, never read or write outside the disk, and its
/// arithmetic cannot overflow.
pub fn record_blocks(off: u64, len: u64, size: u64) -> Option<std::ops::RangeInclusive<u64>> {
    let end = off.saturating_add(len).min(size);
    (off < end).then(|| off / BLOCK..=(end - 1) / BLOCK)
}

/// Appends `(offset, length)` records to a disk's change journal.
pub struct Journal {
    file: File,
}

impl Journal {
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        Ok(Journal {
            file: OpenOptions::new().create(true).append(true).open(path)?,
        })
    }

    pub fn record(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&offset.to_le_bytes());
        rec[8..].copy_from_slice(&len.to_le_bytes());
        self.file.write_all(&rec)
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// copy_file_range(2) for each range (fails where unsupported: the caller falls back).
fn copy_ranges_in_kernel(
    src: &File,
    dst: &File,
    ranges: &[(u64, u64)],
    size: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    for &(start, end) in ranges {
        let end = end.min(size);
        let mut off_in = start as i64;
        let mut off_out = start as i64;
        while (off_in as u64) < end {
            let len = (end - off_in as u64) as usize;
            // SAFETY: both descriptors are open files we own; the offsets are
            // passed by pointer and advanced by the kernel.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    len,
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_journal_records_stay_inside_the_disk() {
        let size = 4 * BLOCK;
        assert_eq!(record_blocks(0, 1, size), Some(0..=0));
        assert_eq!(record_blocks(BLOCK, BLOCK + 1, size), Some(1..=2));
        // Past the end, overflowing, empty: clamped or nothing.
        assert_eq!(record_blocks(3 * BLOCK, u64::MAX, size), Some(3..=3));
        assert_eq!(record_blocks(u64::MAX, u64::MAX, size), None);
        assert_eq!(record_blocks(5 * BLOCK, 1, size), None);
        assert_eq!(record_blocks(0, 0, size), None);
        let mut j = Vec::new();
        for (o, l) in [(1u64, 2u64), (u64::MAX, 7)] {
            j.extend_from_slice(&o.to_le_bytes());
            j.extend_from_slice(&l.to_le_bytes());
        }
        j.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            journal_records(&j).collect::<Vec<_>>(),
            vec![(1, 2), (u64::MAX, 7)]
        );
    }

    #[test]
    fn zeroing_a_range_punches_a_hole() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let s = BlockStore::open(d.path()).unwrap();
        s.create("z", 16 * BLOCK).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(s.image("z"))
            .unwrap();
        f.write_all_at(&vec![7u8; 8 * BLOCK as usize], 0).unwrap();
        f.sync_all().unwrap();
        let before = s.allocated("z").unwrap();
        zero_range(&f, BLOCK, 4 * BLOCK).unwrap();
        let mut back = vec![1u8; 6 * BLOCK as usize];
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back[..BLOCK as usize].iter().all(|b| *b == 7));
        assert!(back[BLOCK as usize..5 * BLOCK as usize]
            .iter()
            .all(|b| *b == 0));
        assert!(back[5 * BLOCK as usize..].iter().all(|b| *b == 7));
        assert!(
            s.allocated("z").unwrap() < before,
            "the zeroed blocks are freed"
        );
        assert_eq!(
            f.metadata().unwrap().len(),
            16 * BLOCK,
            "the disk keeps its size"
        );
    }

    #[test]
    fn sparse_create_copy_and_journal() {
        let d = tempfile::tempdir().unwrap();
        let s = BlockStore::open(d.path()).unwrap();
        s.create("a", 64 << 30).unwrap();
        assert!(
            s.allocated("a").unwrap() < 1 << 20,
            "a 64 GiB empty disk allocates almost nothing"
        );
        {
            let mut f = OpenOptions::new().write(true).open(s.image("a")).unwrap();
            f.seek(SeekFrom::Start(10 << 30)).unwrap();
            f.write_all(&[7u8; 4096]).unwrap();
        }
        s.copy("a", "b", 64 << 30).unwrap();
        assert!(s.allocated("b").unwrap() < 4 << 20, "copies keep holes");
        let mut j = Journal::open(&s.journal("a")).unwrap();
        j.record(10 << 30, 4096).unwrap();
        j.record(BLOCK - 1, 2).unwrap();
        assert_eq!(
            s.changed_blocks("a").unwrap(),
            vec![0, 1, (10u64 << 30) / BLOCK]
        );
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn a_released_prefix_frees_its_bytes_and_keeps_positions() {
        let d = tempfile::tempdir().unwrap();
        let s = BlockStore::open(d.path()).unwrap();
        s.create("a", 1 << 30).unwrap();
        let mut j = Journal::open(&s.journal("a")).unwrap();
        for i in 0..10_000u64 {
            j.record(i * 4096, 4096).unwrap();
        }
        j.sync().unwrap();
        let len = s.journal_len("a").unwrap();
        assert_eq!(len, 160_000);
        let before = std::fs::metadata(s.journal("a")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(before.blocks() * 512 >= 160_000);
        // A consumer has read up to record 9,000.
        let kept = s.release_journal("a", 9_000 * 16).unwrap();
        assert!(kept <= 20 * 1024, "{kept} bytes kept");
        assert_eq!(s.journal_len("a").unwrap(), len, "positions do not move");
        let tail = s.written_between("a", 9_000 * 16, len).unwrap();
        assert_eq!(tail.len(), 1_000);
        assert_eq!(tail[0], (9_000 * 4096, 4096));
        // Appends go on after a release; releasing past the end is clamped.
        j.record(7, 1).unwrap();
        assert_eq!(s.written_between("a", len, len + 16).unwrap(), vec![(7, 1)]);
        s.release_journal("a", u64::MAX).unwrap();
        assert_eq!(s.journal_len("a").unwrap(), len + 16);
        assert_eq!(s.release_journal("missing", 100).unwrap(), 0);
    }
}
