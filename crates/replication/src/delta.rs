//! Change records: (block index u64 LE, length u64 LE, bytes), one after
//! another until the end of the file or buffer. Blocks are whole `BLOCK`s
//! except at the disk's end. The same stream is a batch's per-disk part, an
//! open point's accumulated changes (batches appended as they arrive) and a
//! sealed point's delta (compacted: each block once, newest content).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use recoverite_blockstore::BLOCK;

/// Appends the records of `blocks` of the image at `src` to `out`; returns bytes added.
pub fn collect(src: &Path, size: u64, blocks: &[u64], out: &mut Vec<u8>) -> std::io::Result<u64> {
    let mut img = File::open(src)?;
    let start = out.len();
    let mut buf = vec![0u8; BLOCK as usize];
    for b in blocks {
        let off = b * BLOCK;
        let n = BLOCK.min(size.saturating_sub(off)) as usize;
        if n == 0 {
            continue;
        }
        img.seek(SeekFrom::Start(off))?;
        img.read_exact(&mut buf[..n])?;
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        out.extend_from_slice(&buf[..n]);
    }
    Ok((out.len() - start) as u64)
}

/// A batch's part for one disk comes from the cache account, which anyone
/// with blob write on it can fill: before any of it is kept, every record
/// must be whole (a 16-byte header, then at most one block of bytes) and lie
/// inside the disk — a block index past the end, or arithmetic that would
/// overflow, is refused rather than written far outside the image.
pub fn check_part(part: &[u8], disk_size: u64) -> std::io::Result<()> {
    let bad =
        |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("batch: {m}"));
    let mut rest = part;
    while !rest.is_empty() {
        if rest.len() < 16 {
            return Err(bad(format!(
                "a change record header is cut short ({} bytes)",
                rest.len()
            )));
        }
        let block = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let n = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        let off = block
            .checked_mul(BLOCK)
            .filter(|o| *o < disk_size)
            .ok_or_else(|| {
                bad(format!(
                    "block {block} lies outside a disk of {disk_size} bytes"
                ))
            })?;
        if n == 0 || n > BLOCK.min(disk_size - off) {
            return Err(bad(format!(
                "block {block} carries {n} bytes; at most {} fit there",
                BLOCK.min(disk_size - off)
            )));
        }
        let body = rest
            .get(16..16 + n as usize)
            .ok_or_else(|| bad(format!("block {block}'s {n} bytes are cut short")))?;
        rest = &rest[16 + body.len()..];
    }
    Ok(())
}

/// Calls `f(block, bytes)` for each record of a stream, in order.
pub fn each(
    mut r: impl Read,
    mut f: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut word = [0u8; 8];
    let mut buf = vec![0u8; BLOCK as usize];
    loop {
        match r.read_exact(&mut word) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let block = u64::from_le_bytes(word);
        r.read_exact(&mut word)?;
        let n = u64::from_le_bytes(word);
        if n > BLOCK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "change record longer than a block",
            ));
        }
        r.read_exact(&mut buf[..n as usize])?;
        f(block, &buf[..n as usize])?;
    }
}

/// Writes a stream's blocks into `out` (idempotent).
pub fn apply(delta: &Path, out: &mut File) -> std::io::Result<()> {
    let r = BufReader::with_capacity(1 << 20, File::open(delta)?);
    each(r, |block, bytes| {
        out.seek(SeekFrom::Start(block * BLOCK))?;
        out.write_all(bytes)
    })
}

/// Block → (offset of its newest bytes, their length).
type Index = BTreeMap<u64, (u64, u64)>;

/// Where each block's newest record is in a stream (reading only the record
/// headers), and the stream's length.
fn index(src: &Path) -> std::io::Result<(Index, u64)> {
    let mut f = BufReader::with_capacity(1 << 16, File::open(src)?);
    let mut newest = BTreeMap::new();
    let mut pos = 0u64;
    let mut head = [0u8; 16];
    loop {
        match f.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((newest, pos)),
            Err(e) => return Err(e),
        }
        let block = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let n = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        if n > BLOCK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "change record longer than a block",
            ));
        }
        newest.insert(block, (pos + 16, n));
        f.seek_relative(n as i64)?;
        pos += 16 + n;
    }
}

/// Makes the stream at `src` a point's delta at `dst`: each block once, with
/// its newest content. When blocks were rarely rewritten (≤ 5% extra) the
/// stream already is one: `dst` becomes a second name for it (no copy; the
/// caller drops `src` after publishing). Returns the bytes `dst` holds.
pub fn compact(src: &Path, dst: &Path) -> std::io::Result<u64> {
    let (newest, len) = index(src)?;
    let unique: u64 = newest.values().map(|(_, n)| 16 + n).sum();
    if len <= unique + unique / 20 {
        match std::fs::remove_file(dst) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::hard_link(src, dst) {
            Ok(()) => {
                File::open(src)?.sync_all()?;
                return Ok(len);
            }
            // A filesystem without hard links (FUSE ones, vfat, some network
            // filesystems) answers EPERM or EOPNOTSUPP: write the copy instead.
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    || e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(e) => return Err(e),
        }
    }
    let mut input = File::open(src)?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dst)?);
    let mut buf = vec![0u8; BLOCK as usize];
    let mut total = 0;
    for (block, (off, n)) in newest {
        input.seek(SeekFrom::Start(off))?;
        input.read_exact(&mut buf[..n as usize])?;
        out.write_all(&block.to_le_bytes())?;
        out.write_all(&n.to_le_bytes())?;
        out.write_all(&buf[..n as usize])?;
        total += 16 + n;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(total)
}

#[cfg(test)]
mod part_checks {
    use super::*;

    fn record(block: u64, n: u64) -> Vec<u8> {
        let mut v = block.to_le_bytes().to_vec();
        v.extend_from_slice(&n.to_le_bytes());
        v.extend(std::iter::repeat_n(7u8, n as usize));
        v
    }

    #[test]
    fn parts_must_hold_whole_records_inside_the_disk() {
        let size = 3 * BLOCK + 100;
        let mut ok = record(0, BLOCK);
        ok.extend(record(3, 100));
        assert!(check_part(&ok, size).is_ok());
        assert!(check_part(&[], size).is_ok());
        // Past the end, overflowing, too long for the last block, cut short.
        assert!(check_part(&record(4, BLOCK), size).is_err());
        assert!(check_part(&record(u64::MAX, 1), size).is_err());
        assert!(check_part(&record(3, 101), size).is_err());
        assert!(check_part(&record(0, 0), size).is_err());
        let mut cut = record(1, BLOCK);
        cut.truncate(cut.len() - 1);
        assert!(check_part(&cut, size).is_err());
        assert!(check_part(&ok[..10], size).is_err());
    }
}
