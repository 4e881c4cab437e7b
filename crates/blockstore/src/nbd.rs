//! An NBD server (fixed newstyle handshake, simple replies) exporting managed
//! disks, so `qemu-io`, `qemu-nbd`, `nbd-client` or a real VM can read and
//! write them. Every write is journaled before it is acknowledged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;

use crate::Journal;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;

const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;

const TF_HAS_FLAGS: u16 = 1;
const TF_READ_ONLY: u16 = 2;
const TF_SEND_FLUSH: u16 = 4;
const TF_SEND_FUA: u16 = 8;
const TF_SEND_TRIM: u16 = 32;
const TF_SEND_WRITE_ZEROES: u16 = 64;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;

/// Forced unit access: the write is durable before it is acknowledged.
const CMD_FLAG_FUA: u16 = 1;

const EIO: u32 = 5;
const EPERM: u32 = 1;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// Largest request the server accepts (qemu sends up to 32 MiB).
const MAX_REQUEST: u32 = 32 << 20;

/// Sessions served at once per listener; more wait in the backlog.
const MAX_CONNECTIONS: usize = 256;

/// A client must finish the handshake within this long: a silent one holds
/// no session open.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Buffer sizes: large requests are read and written past the buffers, so
/// small ones serve every request size, and an idle connection costs little.
const BUFFER: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct Export {
    pub name: String,
    pub image: PathBuf,
    pub journal: PathBuf,
    pub size: u64,
    pub read_only: bool,
}

/// Finds exports by name, and lists them.
pub trait Exports: Send + Sync + 'static {
    fn find(&self, name: &str) -> Option<Export>;
    fn list(&self) -> Vec<String>;
}

/// Serves NBD on 127.0.0.1:`port` (anyone on the machine can connect: only
/// when asked for); returns the bound port and the accept task.
pub async fn serve(
    exports: Arc<dyn Exports>,
    port: u16,
) -> std::io::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let gate = recoverite_listen::Gate::new("NBD", MAX_CONNECTIONS);
        loop {
            let (stream, _, permit) = gate.next(|| listener.accept()).await;
            let _ = stream.set_nodelay(true);
            let exports = exports.clone();
            tokio::spawn(async move {
                if let Err(e) = session(stream, exports).await {
                    tracing::debug!("nbd session ended: {e}");
                }
                drop(permit);
            });
        }
    });
    Ok((port, task))
}

/// Serves NBD on a Unix socket created owner-only (0600) at `path`, which
/// `nbd+unix:///{export}?socket={path}` names to qemu-io and qemu-nbd. Only
/// the data directory's owner can reach it.
pub async fn serve_unix(
    exports: Arc<dyn Exports>,
    path: &std::path::Path,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Bind under a umask-proof name, fix the mode, then move it in place, so
    // the socket is never reachable with wider permissions.
    let staging = path.with_extension("sock.new");
    let _ = std::fs::remove_file(&staging);
    let listener = tokio::net::UnixListener::bind(&staging)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staging, path)?;
    let task = tokio::spawn(async move {
        let gate = recoverite_listen::Gate::new("NBD socket", MAX_CONNECTIONS);
        loop {
            let (stream, _, permit) = gate.next(|| listener.accept()).await;
            let exports = exports.clone();
            tokio::spawn(async move {
                if let Err(e) = session(stream, exports).await {
                    tracing::debug!("nbd session ended: {e}");
                }
                drop(permit);
            });
        }
    });
    Ok(task)
}

async fn reply_opt<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    opt: u32,
    kind: u32,
    data: &[u8],
) -> std::io::Result<()> {
    w.write_u64(REPLY_MAGIC).await?;
    w.write_u32(opt).await?;
    w.write_u32(kind).await?;
    w.write_u32(data.len() as u32).await?;
    w.write_all(data).await?;
    w.flush().await
}

fn transmission_flags(e: &Export) -> u16 {
    let mut f = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES;
    if e.read_only {
        f |= TF_READ_ONLY;
    }
    f
}

/// One NBD session over `stream` (handshake, then transmission).
pub async fn session<S>(stream: S, exports: Arc<dyn Exports>) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::with_capacity(BUFFER, r);
    let mut w = BufWriter::with_capacity(BUFFER, w);
    let export =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut r, &mut w, &*exports)).await {
            Ok(Ok(Some(e))) => e,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not finish the NBD handshake in time",
                ))
            }
        };
    transmit(&mut r, &mut w, export).await
}

/// The fixed newstyle handshake: the export the client chose, or `None`
/// when it left (or asked for an export that does not exist the old way).
async fn handshake<R, W>(
    r: &mut R,
    w: &mut W,
    exports: &dyn Exports,
) -> std::io::Result<Option<Export>>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    w.write_u64(NBDMAGIC).await?;
    w.write_u64(IHAVEOPT).await?;
    w.write_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).await?;
    w.flush().await?;
    let client_flags = r.read_u32().await?;
    let no_zeroes = client_flags & (FLAG_NO_ZEROES as u32) != 0;
    let export = loop {
        if r.read_u64().await? != IHAVEOPT {
            return Ok(None);
        }
        let opt = r.read_u32().await?;
        let len = r.read_u32().await?;
        if len > 64 * 1024 {
            return Ok(None);
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data).await?;
        match opt {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).to_string();
                let Some(e) = exports.find(&name) else {
                    return Ok(None);
                };
                w.write_u64(e.size).await?;
                w.write_u16(transmission_flags(&e)).await?;
                if !no_zeroes {
                    w.write_all(&[0u8; 124]).await?;
                }
                w.flush().await?;
                break e;
            }
            OPT_GO | OPT_INFO => {
                if data.len() < 6 {
                    reply_opt(w, opt, REP_ERR_UNSUP, b"").await?;
                    continue;
                }
                let nlen = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
                let name =
                    String::from_utf8_lossy(data.get(4..4 + nlen).unwrap_or_default()).to_string();
                match exports.find(&name) {
                    None => {
                        reply_opt(
                            w,
                            opt,
                            REP_ERR_UNKNOWN,
                            format!("no disk exported as '{name}'").as_bytes(),
                        )
                        .await?
                    }
                    Some(e) => {
                        let mut info = Vec::with_capacity(12);
                        info.extend_from_slice(&0u16.to_be_bytes());
                        info.extend_from_slice(&e.size.to_be_bytes());
                        info.extend_from_slice(&transmission_flags(&e).to_be_bytes());
                        reply_opt(w, opt, REP_INFO, &info).await?;
                        reply_opt(w, opt, REP_ACK, b"").await?;
                        if opt == OPT_GO {
                            break e;
                        }
                    }
                }
            }
            OPT_LIST => {
                for name in exports.list() {
                    let mut d = (name.len() as u32).to_be_bytes().to_vec();
                    d.extend_from_slice(name.as_bytes());
                    reply_opt(w, opt, REP_SERVER, &d).await?;
                }
                reply_opt(w, opt, REP_ACK, b"").await?;
            }
            OPT_ABORT => {
                let _ = reply_opt(w, opt, REP_ACK, b"").await;
                return Ok(None);
            }
            _ => reply_opt(w, opt, REP_ERR_UNSUP, b"").await?,
        }
    };
    Ok(Some(export))
}

/// Makes what was acknowledged so far durable: the journal first, then the
/// disk. A power cut between the two leaves a journaled range whose bytes
/// may be old, which replication ships again; the other order could leave
/// new bytes no journal record names, which replication would never ship.
fn durable(journal: &mut Journal, file: &File) -> std::io::Result<()> {
    journal.sync()?;
    file.sync_data()
}

/// Waits (without blocking the runtime) while a snapshot holds the gate.
async fn enter(gate: &Arc<crate::gate::Gate>) -> crate::gate::Writing {
    loop {
        if let Some(w) = gate.try_enter() {
            return w;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn reply<W: AsyncWriteExt + Unpin>(w: &mut W, err: u32, handle: u64) -> std::io::Result<()> {
    w.write_u32(SIMPLE_REPLY_MAGIC).await?;
    w.write_u32(err).await?;
    w.write_u64(handle).await
}

/// Disk I/O on the blocking pool: a slow disk (a sync, a large read) must
/// not stall the runtime's other connections.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)
}

/// A writable export's state, moved to the blocking pool for each request.
struct Disk {
    file: Arc<File>,
    journal: Option<Journal>,
}

impl Disk {
    /// Journals the range, then changes it (`None`: zeroes it), FUA making
    /// both durable before the answer.
    fn change(
        &mut self,
        offset: u64,
        len: u64,
        data: Option<&[u8]>,
        fua: bool,
    ) -> std::io::Result<()> {
        let j = self
            .journal
            .as_mut()
            .ok_or_else(|| std::io::Error::from_raw_os_error(EPERM as i32))?;
        j.record(offset, len)?;
        match data {
            Some(d) => self.file.write_all_at(d, offset)?,
            None => crate::zero_range(&self.file, offset, len)?,
        }
        if fua {
            durable(j, &self.file)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.journal.as_mut() {
            Some(j) => durable(j, &self.file),
            None => Ok(()),
        }
    }
}

async fn transmit<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    r: &mut R,
    w: &mut W,
    e: Export,
) -> std::io::Result<()> {
    let file: File = OpenOptions::new()
        .read(true)
        .write(!e.read_only)
        .open(&e.image)?;
    let journal = if e.read_only {
        None
    } else {
        Some(Journal::open(&e.journal)?)
    };
    // Moved into each blocking call and back (one request at a time).
    let mut disk = Some(Disk {
        file: Arc::new(file),
        journal,
    });
    let mut buf = Vec::new();
    let gate = crate::gate::of(&e.image);
    loop {
        if r.read_u32().await? != REQUEST_MAGIC {
            return Ok(());
        }
        let flags = r.read_u16().await?;
        let fua = flags & CMD_FLAG_FUA != 0;
        let cmd = r.read_u16().await?;
        let handle = r.read_u64().await?;
        let offset = r.read_u64().await?;
        let len = r.read_u32().await?;
        let in_range = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= e.size);
        let mut d = disk
            .take()
            .ok_or_else(|| std::io::Error::other("disk state lost"))?;
        match cmd {
            CMD_READ => {
                if !in_range || len > MAX_REQUEST {
                    disk = Some(d);
                    reply(w, EINVAL, handle).await?;
                    continue;
                }
                let mut b = std::mem::take(&mut buf);
                b.resize(len as usize, 0);
                let file = d.file.clone();
                let (res, b) = blocking(move || {
                    let res = file.read_exact_at(&mut b, offset);
                    (res, b)
                })
                .await?;
                buf = b;
                disk = Some(d);
                match res {
                    Ok(()) => {
                        reply(w, 0, handle).await?;
                        w.write_all(&buf).await?;
                    }
                    Err(_) => reply(w, EIO, handle).await?,
                }
            }
            CMD_WRITE => {
                if len > MAX_REQUEST {
                    return Ok(());
                }
                buf.resize(len as usize, 0);
                r.read_exact(&mut buf).await?;
                let err = if e.read_only {
                    disk = Some(d);
                    EPERM
                } else if !in_range {
                    disk = Some(d);
                    ENOSPC
                } else {
                    let _writing = enter(&gate).await;
                    let b = std::mem::take(&mut buf);
                    let (res, d, b) = blocking(move || {
                        let res = d.change(offset, len as u64, Some(&b), fua);
                        (res, d, b)
                    })
                    .await?;
                    buf = b;
                    disk = Some(d);
                    if res.is_ok() {
                        0
                    } else {
                        EIO
                    }
                };
                reply(w, err, handle).await?;
            }
            CMD_WRITE_ZEROES | CMD_TRIM => {
                let err = if e.read_only {
                    disk = Some(d);
                    EPERM
                } else if !in_range {
                    disk = Some(d);
                    ENOSPC
                } else {
                    let _writing = enter(&gate).await;
                    let (res, d) = blocking(move || {
                        let res = d.change(offset, len as u64, None, fua);
                        (res, d)
                    })
                    .await?;
                    disk = Some(d);
                    if res.is_ok() {
                        0
                    } else {
                        EIO
                    }
                };
                reply(w, err, handle).await?;
            }
            CMD_FLUSH => {
                let (res, d) = blocking(move || {
                    let res = d.flush();
                    (res, d)
                })
                .await?;
                disk = Some(d);
                reply(w, if res.is_ok() { 0 } else { EIO }, handle).await?;
            }
            CMD_DISC => {
                w.flush().await?;
                let _ = blocking(move || d.flush()).await;
                return Ok(());
            }
            _ => {
                disk = Some(d);
                reply(w, EINVAL, handle).await?
            }
        }
        w.flush().await?;
    }
}
