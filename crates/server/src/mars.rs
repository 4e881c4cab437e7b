//! The vault's Backup service for MARS agents, behind the gateway on model
//! port 443 of every vault's private endpoint addresses and its public
//! Backup addresses. The gateway admits a connection only when the network
//! lets it through (NSGs, routes, approval, the vault's public network
//! access for the public URLs) and tells this service which vault, by which
//! path, from which alias. Then, after the vault's greeting:
//!
//! ```text
//! vault {vault id}                      the vault the client meant
//! mars {"op": …, "len": n}\n<n bytes>   requests; answers are the same shape
//! ```
//!
//! Operations: `register` (vault credentials, signed), `hello` (an Entra
//! token of a registered machine), `begin`, `missing`, `put`, `flush`,
//! `progress`, `commit`, `fail` for a backup; `points`, `open`, `get`,
//! `done` for a restore. Lines that are none of these are echoed, as the
//! vault's other clients (Site Recovery's hello) expect.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;

use recoverite_arm::{time, ArmError};
use recoverite_backup_store::ChunkStore;
use recoverite_identity::{principals, TokenService};
use recoverite_rp_backup::mab::{self, Machine};
use recoverite_rp_backup::BackupProvider;
use recoverite_rp_recoveryservices::certificates;
use recoverite_rs_core::jobs::JobStatus;
use recoverite_store::Store;

/// A sealed chunk is at most the largest chunk, compressed badly, plus the tag.
const MAX_OBJECT: usize = 6 << 20;
const MAX_INDEX: usize = 256 << 20;
/// Sent chunks are made durable in batches of about this many bytes.
const FLUSH_BYTES: usize = 64 << 20;
const MAX_LINE: u64 = 1 << 20;
/// How far a registration's signature time may be from now.
const SIGNATURE_WINDOW_SECS: i64 = 300;

pub struct Mars {
    pub store: Store,
    pub backup: BackupProvider,
    pub tokens: Arc<TokenService>,
    pub tenant_id: String,
    pub authority: String,
}

/// Starts the service and registers it with the gateway (model port 443
/// of every vault).
pub async fn start(
    mars: Arc<Mars>,
    gateway: &Arc<recoverite_gateway::Gateway>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    crate::vault_port::serve(gateway, 443, move |stream, secret| {
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        let m = mars.clone();
        // Sessions are long and blocking (store, vault tier): a thread each.
        std::thread::spawn(move || {
            let _ = std_stream.set_nonblocking(false);
            if let Err(e) = serve(&m, std_stream, &secret) {
                tracing::debug!("MARS session ended: {e}");
            }
        });
    })
    .await
}

fn read_line(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut out = Vec::new();
    // Requests name at most a few thousand chunks at a time.
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut out)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&out)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

fn answer(w: &mut BufWriter<TcpStream>, v: Value, body: Option<&[u8]>) -> std::io::Result<()> {
    let mut v = v;
    if let Some(b) = body {
        v["len"] = json!(b.len());
    }
    w.write_all(v.to_string().as_bytes())?;
    w.write_all(b"\n")?;
    if let Some(b) = body {
        w.write_all(b)?;
    }
    w.flush()
}

fn refusal(code: &str, msg: impl Into<String>) -> Value {
    json!({"ok": false, "code": code, "error": msg.into()})
}

fn arm_refusal(e: &ArmError) -> Value {
    refusal(&e.body.code, e.body.message.clone())
}

/// Which of the vault's names a connection came for: the Backup service's,
/// or (version 1 vaults) its storage account's blob or queue endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Blob,
    Queue,
}

fn kind_of(fqdn: &str) -> Kind {
    let f = fqdn.to_ascii_lowercase();
    if f.contains(".blob.core.windows.net") {
        Kind::Blob
    } else if f.contains(".queue.core.windows.net") {
        Kind::Queue
    } else {
        Kind::Service
    }
}

/// A backup or restore session: its control connection and, for version 1
/// vaults, the data connection through the storage account's blob endpoint.
struct Shared {
    principal: String,
    /// Chunks a point opened in this session may be read of.
    readable: HashSet<String>,
}

fn sessions(
) -> &'static std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<Shared>>>> {
    static S: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<Shared>>>>,
    > = std::sync::OnceLock::new();
    S.get_or_init(Default::default)
}

/// "Version 1 … the customer endpoints for the vault's blob and queue
/// storage": a v1 vault takes backup data through its storage account's
/// blob endpoint, a v2 vault through the Backup service's names.
fn check_data_path(
    pe_version: recoverite_rs_core::vault::PeVersion,
    kind: Kind,
    blob_host: &str,
) -> Result<(), String> {
    use recoverite_rs_core::vault::PeVersion;
    match (pe_version, kind) {
        (PeVersion::V1, Kind::Blob) | (PeVersion::V2, Kind::Service) => Ok(()),
        (PeVersion::V1, _) => Err(format!("this is a version 1 vault: backup data goes through its storage account's blob endpoint ({blob_host}), not the Backup service's URL")),
        (PeVersion::V2, _) => Err("a version 2 vault has no customer blob or queue endpoints: data goes through the Backup service's names".into()),
    }
}

/// One connection's state.
struct Conn {
    kind: Kind,
    pe_version: recoverite_rs_core::vault::PeVersion,
    blob_host: String,
    /// Whether this connection started its session (and ends it).
    owner: bool,
    shared: Option<Arc<std::sync::Mutex<Shared>>>,
    vault_id: String,
    via_private: bool,
    /// The private endpoint (and name) it came through, for the job.
    path: String,
    named: bool,
    machine: Option<Machine>,
    vault_num: u64,
    tier: Option<ChunkStore>,
    session: String,
    /// The running backup or restore: `(item id, job id)`.
    job: Option<(String, String)>,
    pending: Vec<(String, Vec<u8>)>,
    pending_bytes: usize,
    /// The batch being written in the background.
    writer: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
    last_progress: std::time::Instant,
}

fn serve(m: &Mars, stream: TcpStream, secret: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut r = BufReader::with_capacity(1 << 20, stream.try_clone()?);
    let mut w = BufWriter::with_capacity(1 << 20, stream);
    let Some(admit) = read_line(&mut r)? else {
        return Ok(());
    };
    let Some(json_text) = admit
        .strip_prefix("recoverite-admit ")
        .and_then(|rest| rest.strip_prefix(secret))
        .map(str::trim)
    else {
        return Ok(());
    };
    let admitted: Value = serde_json::from_str(json_text).unwrap_or_default();
    if let Some(g) = admitted["greeting"].as_str() {
        w.write_all(format!("{g}\n").as_bytes())?;
        w.flush()?;
    }
    let via_private = admitted["via"]["privateEndpoint"].is_string();
    let mut c = Conn {
        kind: kind_of(admitted["via"]["fqdn"].as_str().unwrap_or("")),
        pe_version: recoverite_rs_core::vault::PeVersion::V2,
        blob_host: String::new(),
        owner: false,
        shared: None,
        vault_id: admitted["target"].as_str().unwrap_or_default().to_string(),
        via_private,
        path: if via_private {
            format!(
                "private endpoint {} ({})",
                admitted["via"]["privateEndpoint"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or(""),
                admitted["via"]["fqdn"].as_str().unwrap_or("")
            )
        } else {
            "the public URL".into()
        },
        named: false,
        machine: None,
        vault_num: 0,
        tier: None,
        session: uuid::Uuid::new_v4().to_string(),
        job: None,
        pending: Vec::new(),
        pending_bytes: 0,
        writer: None,
        last_progress: std::time::Instant::now(),
    };
    let res = session(m, &mut c, &mut r, &mut w);
    if let Some(h) = c.writer.take() {
        let _ = h.join();
    }
    // A backup or restore whose connection ended without finishing failed.
    if let (Some((_, job)), Some(machine)) = (&c.job, &c.machine) {
        let _ = m.store.write(|tx| {
            mab::end_job(
                tx,
                machine,
                job,
                JobStatus::Failed,
                &[
                    "The agent's connection ended before the operation completed; run it again."
                        .to_string(),
                ],
            )
        });
    }
    if c.owner {
        if let Some(t) = &c.tier {
            t.unpin(&c.session);
        }
        sessions()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.session);
    }
    res
}

fn session(
    m: &Mars,
    c: &mut Conn,
    r: &mut BufReader<TcpStream>,
    w: &mut BufWriter<TcpStream>,
) -> std::io::Result<()> {
    while let Some(line) = read_line(r)? {
        if let Some(v) = line.strip_prefix("vault ") {
            if !v.trim().eq_ignore_ascii_case(&c.vault_id) {
                w.write_all(b"refused this address belongs to another vault: its private URLs are specific to that vault\n")?;
                return w.flush();
            }
            c.named = true;
            continue;
        }
        let Some(req) = line.strip_prefix("mars ") else {
            // Not ours: the vault's plain echo, as before.
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            w.flush()?;
            continue;
        };
        let req: Value = match serde_json::from_str(req) {
            Ok(v) => v,
            Err(e) => {
                answer(
                    w,
                    refusal("BadRequest", format!("the request is not JSON: {e}")),
                    None,
                )?;
                return Ok(());
            }
        };
        let len = req["len"].as_u64().unwrap_or(0) as usize;
        let limit = if req["op"] == "commit" {
            MAX_INDEX
        } else {
            MAX_OBJECT
        };
        if len > limit {
            answer(
                w,
                refusal(
                    "BadRequest",
                    format!("a body of {len} bytes is larger than the {limit} allowed"),
                ),
                None,
            )?;
            return Ok(());
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        if !c.named {
            answer(
                w,
                refusal("BadRequest", "name the vault first ('vault {id}')"),
                None,
            )?;
            return Ok(());
        }
        match handle(m, c, &req, body) {
            Ok(Some((v, b))) => answer(w, v, b.as_deref())?,
            Ok(None) => {}
            Err(v) => {
                let fatal = v["fatal"] == true;
                answer(w, v, None)?;
                if fatal {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

type Answer = Result<Option<(Value, Option<Vec<u8>>)>, Value>;

fn ok(v: Value) -> Answer {
    Ok(Some((v, None)))
}

fn fatal(code: &str, msg: impl Into<String>) -> Value {
    let mut v = refusal(code, msg);
    v["fatal"] = json!(true);
    v
}

fn handle(m: &Mars, c: &mut Conn, req: &Value, body: Vec<u8>) -> Answer {
    let op = req["op"].as_str().unwrap_or("");
    if op == "register" {
        return register(m, c, req);
    }
    if op == "hello" {
        return hello(m, c, req);
    }
    let machine = c.machine.clone().ok_or_else(|| {
        fatal(
            "Unauthorized",
            "sign in first (hello with a token of a registered machine)",
        )
    })?;
    let tier = c.tier.clone().expect("set with the machine");
    let arm = |e: ArmError| arm_refusal(&e);
    let io = |e: std::io::Error| refusal("InternalError", e.to_string());
    let data_op = matches!(op, "missing" | "put" | "flush" | "get");
    if data_op {
        check_data_path(c.pe_version, c.kind, &c.blob_host)
            .map_err(|why| fatal("UserErrorWrongEndpoint", why))?;
    } else if c.kind != Kind::Service {
        return Err(fatal("UserErrorWrongEndpoint", "the vault's storage endpoints take backup data only; send requests to the Backup service's URL"));
    }
    match op {
        "begin" => {
            if c.job.is_some() {
                return Err(refusal(
                    "BadRequest",
                    "a backup or restore is already running on this connection",
                ));
            }
            let root = req["root"].as_str().unwrap_or_default().to_string();
            if root.is_empty() {
                return Err(refusal(
                    "BadRequest",
                    "begin needs the folder's path (root)",
                ));
            }
            let mut notes: Vec<String> = req["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            notes.push(format!("connected through {}", c.path));
            let policy = req["policy"].as_str().filter(|p| !p.is_empty());
            let (item, job) = m
                .store
                .write(|tx| mab::begin_backup(tx, &machine, &root, policy, &notes))
                .map_err(arm)?;
            c.job = Some((item.clone(), job.clone()));
            ok(json!({"ok": true, "item": item, "job": job}))
        }
        "missing" => {
            // A job cancelled meanwhile stops here: its agent is told before
            // it sends more.
            if let Some((_, job)) = &c.job {
                m.store
                    .view(|r| mab::check_running(r, &machine.vault_id, job))
                    .map_err(arm)?;
            }
            let ids: Vec<String> = req["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            let missing = tier
                .missing_pinned(&c.session, &ids)
                .map_err(|e| refusal("BadRequest", e.to_string()))?;
            ok(json!({"ok": true, "missing": missing}))
        }
        "put" => {
            let id = req["id"].as_str().unwrap_or_default().to_string();
            if !tier.is_pinned(&c.session, &id) {
                return Err(fatal(
                    "BadRequest",
                    format!("chunk {id} was not announced (ask with 'missing' first)"),
                ));
            }
            c.pending_bytes += body.len();
            c.pending.push((id, body));
            if c.pending_bytes >= FLUSH_BYTES {
                flush(c, &tier, false).map_err(io)?;
            }
            Ok(None)
        }
        "flush" => {
            let stored = flush(c, &tier, true).map_err(io)?;
            ok(json!({"ok": true, "stored": stored}))
        }
        "progress" => {
            if let Some((_, job)) = &c.job {
                if c.last_progress.elapsed() >= Duration::from_secs(1) {
                    c.last_progress = std::time::Instant::now();
                    let _ = m
                        .store
                        .write(|tx| mab::progress(tx, &machine.vault_id, job, &req["bag"]));
                }
            }
            Ok(None)
        }
        "commit" => {
            let Some((item, job)) = c.job.clone() else {
                return Err(refusal("BadRequest", "no backup is running (begin first)"));
            };
            flush(c, &tier, true).map_err(io)?;
            // The body: the point's chunk ids, one per line, then the sealed index.
            let ids_len = (req["idsLen"].as_u64().unwrap_or(0) as usize).min(body.len());
            let chunks: Vec<String> = String::from_utf8_lossy(&body[..ids_len])
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            let body = body[ids_len..].to_vec();
            if let Some(stranger) = chunks.iter().find(|id| !tier.is_pinned(&c.session, id)) {
                return Err(refusal(
                    "BadRequest",
                    format!("chunk {stranger} was not announced in this session"),
                ));
            }
            let index_id = hex::encode(sha2::Sha256::digest(&body));
            tier.put_objects(vec![(index_id.clone(), body)])
                .map_err(io)?;
            let total = req["totalBytes"].as_u64().unwrap_or(0);
            let done = mab::commit(
                &m.store,
                &tier,
                c.vault_num,
                &machine,
                &item,
                &job,
                &index_id,
                &chunks,
                total,
                &req["bag"],
            )
            .map_err(arm)?;
            c.job = None;
            tier.unpin(&c.session);
            ok(json!({"ok": true, "point": done.point_id, "job": job}))
        }
        "fail" => {
            if let Some((_, job)) = c.job.take() {
                let why = req["error"]
                    .as_str()
                    .unwrap_or("the agent failed")
                    .to_string();
                m.store
                    .write(|tx| mab::end_job(tx, &machine, &job, JobStatus::Failed, &[why]))
                    .map_err(arm)?;
            }
            ok(json!({"ok": true}))
        }
        "due" => {
            let due = m.store.view(|r| mab::due_of(r, &machine)).map_err(arm)?;
            ok(
                json!({"ok": true, "due": due.iter().map(|(p, s)| json!({"path": p, "slot": s})).collect::<Vec<_>>()}),
            )
        }
        "points" => {
            let pts = m
                .store
                .view(|r| mab::points_of_vault(r, &machine.vault_id))
                .map_err(arm)?;
            ok(json!({"ok": true, "points": pts}))
        }
        "open" => {
            if c.job.is_some() {
                return Err(refusal(
                    "BadRequest",
                    "a backup or restore is already running on this connection",
                ));
            }
            let pid = req["point"].as_str().unwrap_or_default();
            let p = m
                .store
                .view(|r| mab::restorable(r, &m.backup, &machine, pid))
                .map_err(arm)?;
            let index = tier.get_object(&p.index_id).map_err(|e| {
                refusal(
                    "BMSUserErrorMissingBackupData",
                    format!("the point's index is not in the vault: {e}"),
                )
            })?;
            let job = m
                .store
                .write(|tx| mab::begin_restore(tx, &machine, &p.point_id, &p.root))
                .map_err(arm)?;
            if let Some(sh) = &c.shared {
                sh.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .readable
                    .extend(p.chunk_ids.iter().cloned());
            }
            c.job = Some((p.point_id.clone(), job.clone()));
            Ok(Some((
                json!({"ok": true, "point": p.point_id, "root": p.root, "sourceMachine": p.source_machine, "job": job}),
                Some(index),
            )))
        }
        "get" => {
            let id = req["id"].as_str().unwrap_or_default();
            let readable = c.shared.as_ref().is_some_and(|sh| {
                sh.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .readable
                    .contains(id)
            });
            if !readable {
                return Err(refusal(
                    "Forbidden",
                    format!("chunk {id} is not part of a point opened on this connection"),
                ));
            }
            let bytes = tier.get_object(id).map_err(|e| {
                refusal("BMSUserErrorMissingBackupData", format!("chunk {id}: {e}"))
            })?;
            Ok(Some((json!({"ok": true}), Some(bytes))))
        }
        "done" => {
            let Some((_, job)) = c.job.take() else {
                return Err(refusal("BadRequest", "no restore is running"));
            };
            let status = if req["error"].is_string() {
                JobStatus::Failed
            } else {
                JobStatus::Completed
            };
            let errors: Vec<String> = req["error"]
                .as_str()
                .map(|e| vec![e.to_string()])
                .unwrap_or_default();
            m.store
                .write(|tx| {
                    mab::progress(tx, &machine.vault_id, &job, &req["bag"])?;
                    mab::end_job(tx, &machine, &job, status, &errors)
                })
                .map_err(arm)?;
            ok(json!({"ok": true}))
        }
        other => Err(refusal(
            "BadRequest",
            format!("unknown operation '{other}'"),
        )),
    }
}

/// Hands the chunks received so far to the vault tier. With `wait`, they
/// are durable when it returns (a `flush`, a commit); otherwise they are
/// written in the background while the next ones arrive (one batch in
/// flight at a time).
fn flush(c: &mut Conn, tier: &ChunkStore, wait: bool) -> std::io::Result<u64> {
    c.pending_bytes = 0;
    let batch = std::mem::take(&mut c.pending);
    let mut stored = match c.writer.take() {
        Some(h) => h
            .join()
            .map_err(|_| std::io::Error::other("the vault tier's writer failed"))??,
        None => 0,
    };
    if !batch.is_empty() {
        if wait {
            stored += tier.put_objects(batch)?;
        } else {
            let t = tier.clone();
            c.writer = Some(std::thread::spawn(move || t.put_objects(batch)));
        }
    }
    Ok(stored)
}

/// Registration with vault credentials: the vault certificate the
/// credentials carry, and a signature by its private key over the vault,
/// the machine and the time.
fn register(m: &Mars, c: &mut Conn, req: &Value) -> Answer {
    let b64 = base64::engine::general_purpose::STANDARD;
    let machine_name = req["machine"].as_str().unwrap_or_default();
    let container = mab::check_machine_name(machine_name).map_err(|e| arm_refusal(&e))?;
    let cert_name = req["certificateName"].as_str().unwrap_or_default();
    let der = b64
        .decode(req["certificate"].as_str().unwrap_or_default())
        .map_err(|_| {
            refusal(
                "UserErrorVaultCredentialsInvalid",
                "the vault credentials' certificate is not base64",
            )
        })?;
    let stored = m
        .store
        .view(|r| certificates::get_certificate(r, &c.vault_id, cert_name))
        .map_err(|e| arm_refusal(&e))?
        .ok_or_else(|| refusal("UserErrorVaultCredentialsInvalid", format!("the vault has no certificate '{cert_name}': these vault credentials are not this vault's; download the vault's credentials")))?;
    if b64.decode(&stored.certificate).ok().as_deref() != Some(&der[..]) {
        return Err(refusal(
            "UserErrorVaultCredentialsInvalid",
            "the certificate does not match the one uploaded to the vault",
        ));
    }
    let (from, to) = (
        time::parse(&stored.valid_from),
        time::parse(&stored.valid_to),
    );
    let (Some(from), Some(to)) = (from, to) else {
        return Err(refusal(
            "InternalError",
            "the stored certificate has no validity",
        ));
    };
    mab::check_credentials(from, to, time::now()).map_err(|e| arm_refusal(&e))?;
    let signed_at = req["signedAt"].as_i64().unwrap_or(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (wall - signed_at).abs() > SIGNATURE_WINDOW_SECS {
        return Err(refusal(
            "UserErrorVaultCredentialsInvalid",
            "the registration's signature is stale (signed more than five minutes away from now)",
        ));
    }
    let message = format!(
        "recoverite-mars-register\n{}\n{container}\n{signed_at}",
        c.vault_id.to_ascii_lowercase()
    );
    let sig = b64
        .decode(req["signature"].as_str().unwrap_or_default())
        .unwrap_or_default();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| {
        refusal(
            "UserErrorVaultCredentialsInvalid",
            "the certificate is not X.509",
        )
    })?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.to_vec(),
    );
    key.verify(message.as_bytes(), &sig).map_err(|_| {
        refusal(
            "UserErrorVaultCredentialsInvalid",
            "the registration is not signed by the vault credentials' key",
        )
    })?;
    let vm_id = req["vmId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let vid = c.vault_id.clone();
    let (machine, secret, dedup) = m
        .store
        .write(|tx| {
            let vault = registered_vault(tx, &vid)?;
            let (p, secret) =
                principals::create_service_principal(tx, &format!("{}-{container}", vault.name))?;
            let machine = Machine {
                vault_id: vid.clone(),
                container: container.clone(),
                friendly_name: machine_name.to_string(),
                vm_id: vm_id.clone(),
                principal_object_id: p.object_id.clone(),
                client_id: p.app_id.clone(),
                certificate_thumbprint: stored.thumbprint.clone(),
                registered_at: time::now_string(),
            };
            mab::register(tx, &machine)?;
            let dedup = mab::dedup_key(tx, &vid)?;
            Ok::<_, ArmError>((machine, secret, dedup))
        })
        .map_err(|e| arm_refusal(&e))?;
    tracing::info!(vault = %vid, machine = %machine.container, via = %c.path, "MARS agent registered");
    let (meta, vault) = m
        .store
        .view(|r| {
            Ok::<_, ArmError>((
                recoverite_rs_core::vault::get(r, &vid)?.unwrap_or_default(),
                registered_vault(r, &vid)?,
            ))
        })
        .map_err(|e| arm_refusal(&e))?;
    let (blob, queue) = storage_hosts(&vault.location, meta.numeric_id);
    let v1 = meta.pe_version == recoverite_rs_core::vault::PeVersion::V1;
    ok(json!({
        "peVersion": if v1 { "V1" } else { "V2" },
        "storage": if v1 { json!({"blob": blob, "queue": queue}) } else { Value::Null },
        "ok": true, "container": machine.container, "clientId": machine.client_id, "clientSecret": secret,
        "tenantId": m.tenant_id, "authority": m.authority, "dedupKey": dedup,
        "containerId": mab::container_id(&vid, &machine.container), "path": c.path,
    }))
}

/// The vault an agent registered with; gone, the agent is told so.
fn registered_vault(
    r: &impl recoverite_store::Reader,
    vid: &str,
) -> Result<recoverite_rs_core::vault_record::Vault, ArmError> {
    recoverite_rs_core::vault_record::load(r, vid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            recoverite_rs_core::vault_record::VAULT_TYPE,
            vid.rsplit('/').next().unwrap_or_default(),
            recoverite_arm::id::parse_id(vid)
                .and_then(|p| p.resource_group)
                .as_deref(),
        )
    })
}

/// Sign-in: an Entra token of a machine registered to this vault. Over a
/// private URL only registered agents are served (document 001).
fn hello(m: &Mars, c: &mut Conn, req: &Value) -> Answer {
    let audience = req["audience"].as_str().unwrap_or_default();
    let token = req["token"].as_str().unwrap_or_default();
    let vid = c.vault_id.clone();
    let (num, want, pe_version, blob) = m
        .store
        .view(|r| {
            let vault = registered_vault(r, &vid)?;
            let meta = recoverite_rs_core::vault::get(r, &vid)?.unwrap_or_default();
            let (blob, _) = storage_hosts(&vault.location, meta.numeric_id);
            Ok::<_, ArmError>((
                meta.numeric_id,
                certificates::aad_audience(&vault, meta.numeric_id),
                meta.pe_version,
                blob,
            ))
        })
        .map_err(|e| arm_refusal(&e))?;
    if !audience.is_empty() && !audience.eq_ignore_ascii_case(&want) {
        return Err(fatal(
            "Unauthorized",
            format!("the token's audience {audience} is another vault's; this vault's is {want}"),
        ));
    }
    let machine = match m.tokens.verify_for_audience(token, &want) {
        Ok(claims) => m
            .store
            .view(|r| mab::machine_by_principal(r, &vid, &claims.oid))
            .map_err(|e| arm_refusal(&e))?,
        Err(_) => None,
    };
    if let Err(why) = mab::check_private_url_use(c.via_private, machine.is_some()) {
        tracing::info!(vault = %vid, via = %c.path, reason = %why, "MARS request refused");
        return Err(fatal("UserErrorAgentNotRegistered", why));
    }
    let machine = machine.expect("checked");
    // A storage endpoint's connection joins its control connection's session.
    match req["attach"].as_str() {
        Some(sid) => {
            let sh = sessions()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(sid)
                .cloned();
            match sh {
                Some(sh)
                    if sh.lock().unwrap_or_else(|p| p.into_inner()).principal
                        == machine.principal_object_id =>
                {
                    c.session = sid.to_string();
                    c.shared = Some(sh);
                }
                _ => return Err(fatal("Unauthorized", "no session of this machine to join")),
            }
        }
        None => {
            let sh = Arc::new(std::sync::Mutex::new(Shared {
                principal: machine.principal_object_id.clone(),
                readable: HashSet::new(),
            }));
            sessions()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.session.clone(), sh.clone());
            c.shared = Some(sh);
            c.owner = true;
        }
    }
    c.pe_version = pe_version;
    c.blob_host = blob;
    c.vault_num = num;
    c.tier =
        Some(recoverite_rp_backup::points::store_of(&m.backup, num).map_err(|e| arm_refusal(&e))?);
    let container = machine.container.clone();
    c.machine = Some(machine);
    ok(json!({"ok": true, "container": container, "path": c.path, "session": c.session}))
}

/// A version 1 vault's storage account names: `(blob, queue)`.
fn storage_hosts(location: &str, numeric_id: u64) -> (String, String) {
    let geo = recoverite_rp_recoveryservices::target::geo(location);
    let acct = recoverite_rp_recoveryservices::target::v1_storage_account(numeric_id, &geo);
    (
        format!("{acct}.blob.core.windows.net"),
        format!("{acct}.queue.core.windows.net"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use recoverite_rs_core::vault::PeVersion;

    #[test]
    fn version_1_data_goes_through_the_blob_endpoint_version_2_through_the_service() {
        assert!(check_data_path(PeVersion::V1, Kind::Blob, "b").is_ok());
        assert!(check_data_path(
            PeVersion::V1,
            Kind::Service,
            "bkp1eus.blob.core.windows.net"
        )
        .unwrap_err()
        .contains("bkp1eus.blob.core.windows.net"));
        assert!(check_data_path(PeVersion::V1, Kind::Queue, "b").is_err());
        assert!(check_data_path(PeVersion::V2, Kind::Service, "").is_ok());
        assert!(check_data_path(PeVersion::V2, Kind::Blob, "").is_err());
    }

    #[test]
    fn connections_are_told_apart_by_the_name_they_came_for() {
        assert_eq!(
            kind_of("bkp1eus.privatelink.blob.core.windows.net"),
            Kind::Blob
        );
        assert_eq!(
            kind_of("bkp1eus.privatelink.queue.core.windows.net"),
            Kind::Queue
        );
        assert_eq!(
            kind_of("1.prot1.privatelink.eus.backup.windowsazure.com"),
            Kind::Service
        );
        assert_eq!(kind_of(""), Kind::Service);
    }
}
