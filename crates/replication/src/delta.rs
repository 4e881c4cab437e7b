//! A delta file: `count` (u64 LE), then `count` × (block index u64 LE,
//! length u64 LE, bytes). Blocks are whole `BLOCK`s except at the disk's end.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use recoverite_blockstore::BLOCK;

/// Reads `blocks` of the image at `src` and writes them to `dst`; returns bytes written.
pub fn write(src: &Path, size: u64, blocks: &[u64], dst: &Path) -> std::io::Result<u64> {
    let mut img = File::open(src)?;
    let f = File::create(dst)?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    out.write_all(&(blocks.len() as u64).to_le_bytes())?;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut total = 8;
    for b in blocks {
        let off = b * BLOCK;
        let n = BLOCK.min(size.saturating_sub(off)) as usize;
        img.seek(SeekFrom::Start(off))?;
        img.read_exact(&mut buf[..n])?;
        out.write_all(&b.to_le_bytes())?;
        out.write_all(&(n as u64).to_le_bytes())?;
        out.write_all(&buf[..n])?;
        total += 16 + n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(total)
}

/// Writes a delta's blocks into `out` (idempotent).
pub fn apply(delta: &Path, out: &mut File) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(delta)?);
    let mut word = [0u8; 8];
    r.read_exact(&mut word)?;
    let count = u64::from_le_bytes(word);
    let mut buf = vec![0u8; BLOCK as usize];
    for _ in 0..count {
        r.read_exact(&mut word)?;
        let block = u64::from_le_bytes(word);
        r.read_exact(&mut word)?;
        let n = u64::from_le_bytes(word).min(BLOCK) as usize;
        r.read_exact(&mut buf[..n])?;
        out.seek(SeekFrom::Start(block * BLOCK))?;
        out.write_all(&buf[..n])?;
    }
    Ok(())
}
