//! `recoverite mars …`: the Microsoft Azure Recovery Services (MARS) agent
//! for files and folders.
//!
//! - `credentials` downloads vault credentials (a certificate uploaded to
//!   the vault, valid 10 days, with its private key);
//! - `register` registers a machine with them — a VM (`--vm`, whose network
//!   position every connection is made from) or an on-premises server
//!   (public DNS and addresses only);
//! - `backup`, `points` and `restore` do what they say.
//!
//! Every connection goes as document 001 describes: Entra ID at
//! `login.microsoftonline.com` (through the network, so an NSG must allow
//! `AzureActiveDirectory`), then the vault's private URL
//! `{vault}.prot1.privatelink.{geo}.backup.windowsazure.com`, and if that
//! fails its public URL `prot1.{geo}.backup.windowsazure.com`, which the
//! vault serves only with public network access enabled. Data is chunked,
//! deduplicated, compressed and sealed here (`recoverite-mars`); the vault
//! sees ciphertext only.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_agent::{self as agent, Aliases};
use recoverite_mars::{backup, crypto, index, restore, Remote};

use crate::agent_cmd::{url_encode, Api, ListedAliases};
use crate::file_recovery_cmd::explain;

const SERVICE: &str = "prot1";
const ENTRA_HOST: &str = "login.microsoftonline.com";
const CERT_API: &str = "2023-04-01";

/// The vault credentials file (what the portal's download holds).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    vault_id: String,
    vault_name: String,
    region: String,
    resource_id: u64,
    aad_tenant_id: String,
    aad_authority: String,
    aad_audience: String,
    certificate_name: String,
    /// DER, base64.
    certificate: String,
    /// PKCS#8 DER, base64.
    private_key: String,
    valid_to: String,
    private_host: String,
    public_host: String,
}

/// What a registered machine keeps (`registration.json`, owner-only).
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Registration {
    vault_id: String,
    machine: String,
    container: String,
    container_id: String,
    vm_id: Option<String>,
    client_id: String,
    client_secret: String,
    tenant_id: String,
    audience: String,
    dedup_key: String,
    private_host: String,
    public_host: String,
    /// The Argon2id salt and the key derived from the passphrase with it;
    /// the passphrase itself is not kept.
    salt: String,
    machine_key: String,
    /// A version 1 vault's storage account endpoints (blob for data, queue
    /// for the communication channel); none for version 2.
    #[serde(default)]
    storage: Option<StorageHosts>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StorageHosts {
    blob: String,
    queue: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The agent's log: every refusal it met, with name, address and reason.
fn log(dir: &Path, msg: &str) {
    eprintln!("mars: {msg}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
    {
        let _ = writeln!(f, "{} {msg}", recoverite_arm::time::now_string());
    }
}

pub fn credentials(data_dir: &Path, vault_id: &str, out: &Path) -> Result<()> {
    let api = Api::open(data_dir)?;
    let vault = api.get(&format!("{vault_id}?api-version={CERT_API}"))?;
    let name = vault["name"].as_str().unwrap_or_default().to_string();
    let region = vault["location"].as_str().unwrap_or_default().to_string();
    // Valid from the emulator's now, for the 10 days vault credentials last.
    let now = recoverite_arm::time::parse(
        api.get("/recoverite/clock")?["now"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_else(::time::OffsetDateTime::now_utc);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("CN=Windows Azure Tools {name}"),
    );
    params.not_before = now - ::time::Duration::minutes(5);
    params.not_after = now + ::time::Duration::days(10) - ::time::Duration::minutes(5);
    let cert = params.self_signed(&key)?;
    let cert_name = format!("{name}-{}-vaultcredentials", now.unix_timestamp());
    let got = api.send(
        "PUT",
        &format!("{vault_id}/certificates/{cert_name}?api-version={CERT_API}"),
        json!({"properties": {"authType": "AAD", "certificate": b64().encode(cert.der())}}),
    )?;
    let p = &got["properties"];
    let num = p["resourceId"]
        .as_u64()
        .ok_or_else(|| anyhow!("the vault answered no resourceId: {got}"))?;
    let geo = recoverite_arm::regions::find(&region)
        .map(|r| r.geo_code.to_string())
        .unwrap_or_else(|| region.clone());
    let creds = Credentials {
        vault_id: vault["id"].as_str().unwrap_or(vault_id).to_string(),
        vault_name: name,
        region,
        resource_id: num,
        aad_tenant_id: p["aadTenantId"].as_str().unwrap_or_default().to_string(),
        aad_authority: p["aadAuthority"].as_str().unwrap_or_default().to_string(),
        aad_audience: p["aadAudience"].as_str().unwrap_or_default().to_string(),
        certificate_name: cert_name,
        certificate: b64().encode(cert.der()),
        private_key: b64().encode(key.serialize_der()),
        valid_to: p["validTo"].as_str().unwrap_or_default().to_string(),
        private_host: format!("{num}.{SERVICE}.privatelink.{geo}.backup.windowsazure.com"),
        public_host: format!("{SERVICE}.{geo}.backup.windowsazure.com"),
    };
    write_private(out, serde_json::to_string_pretty(&creds)?.as_bytes())?;
    println!(
        "vault credentials for {} written to {} (valid until {})",
        creds.vault_name,
        out.display(),
        creds.valid_to
    );
    Ok(())
}

/// Where the machine stands: its loopback alias (a VM's NIC) or, for an
/// on-premises server, 127.0.0.1 (outside every virtual network).
struct Position {
    alias: Ipv4Addr,
    dns: SocketAddr,
    aliases: ListedAliases,
    /// The machine's hosts file (`{agent-dir}/hosts`): document 001's
    /// "DNS entries in host files", looked up before DNS, exact names only.
    hosts: Vec<(String, Ipv4Addr)>,
}

fn read_hosts(dir: &Path) -> Vec<(String, Ipv4Addr)> {
    let text = std::fs::read_to_string(dir.join("hosts")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut parts = line.split_whitespace();
        if let Some(Ok(ip)) = parts.next().map(str::parse::<Ipv4Addr>) {
            out.extend(parts.map(|n| (n.trim_end_matches('.').to_ascii_lowercase(), ip)));
        }
    }
    out
}

fn position(api: &Api, vm: Option<&str>, dir: &Path) -> Result<Position> {
    let dns: SocketAddr = api.conn.dns_server.parse()?;
    let alias = match vm {
        Some(vm) => api.get(&format!(
            "/recoverite/network/aliases?vm={}",
            url_encode(vm)
        ))?["value"][0]["alias"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("VM {vm} has no network position (no NIC with an address)"))?,
        None => Ipv4Addr::LOCALHOST,
    };
    let aliases = ListedAliases(
        api.get("/recoverite/network/aliases")?["value"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    Ok(Position {
        alias,
        dns,
        aliases,
        hosts: read_hosts(dir),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Resolves `host` from the position and connects on model port 443.
fn reach(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    pos: &Position,
    host: &str,
) -> Result<(TcpStream, Ipv4Addr, Ipv4Addr), String> {
    let listed = pos
        .hosts
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(host))
        .map(|(_, ip)| *ip);
    let ip = match listed {
        Some(ip) => ip,
        None => rt
            .block_on(agent::resolve(pos.alias, pos.dns, host))
            .map_err(|e| format!("{host} did not resolve from {}: {e}", pos.alias))?,
    };
    let alias = pos
        .aliases
        .alias_of(pos.alias, ip)
        .ok_or_else(|| format!("{host} resolves to {ip}, which is not reachable from {} (no such address in its network)", pos.alias))?;
    let s = rt
        .block_on(agent::connect_from(pos.alias, alias, 443))
        .map_err(|e| {
            format!(
                "{host} ({ip}:443): {}",
                explain(api, pos.alias, alias, 443).unwrap_or_else(|| e.to_string())
            )
        })?;
    let s = s.into_std().map_err(|e| e.to_string())?;
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok((s, ip, alias))
}

/// Signs in at Microsoft Entra ID from the machine's position: a TLS
/// connection through the network to the authority's public name.
fn sign_in(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    pos: &Position,
    reg: &Registration,
) -> Result<String> {
    let (s, ip, alias) = reach(rt, api, pos, ENTRA_HOST)
        .map_err(|e| anyhow!("sign-in at Microsoft Entra ID failed: {e}"))?;
    let refused = |e: String| {
        let why = explain(api, pos.alias, alias, 443).unwrap_or(e);
        anyhow!("sign-in at Microsoft Entra ID ({ENTRA_HOST}, {ip}:443) was refused: {why}. Private endpoints for Azure Backup do not include Entra ID: allow outbound access to the AzureActiveDirectory service tag")
    };
    let pem = std::fs::read(&api.conn.ca_cert_file)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // The emulator's one TLS certificate names localhost; the connection
    // itself went to Entra ID's model address through the network.
    let server = rustls::pki_types::ServerName::try_from("localhost")?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), server)?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        url_encode(&reg.client_id),
        url_encode(&reg.client_secret),
        url_encode(&format!("{}/.default", reg.audience))
    );
    let req = format!(
        "POST /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: {ENTRA_HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        reg.tenant_id,
        form.len()
    );
    tls.write_all(req.as_bytes())
        .map_err(|e| refused(e.to_string()))?;
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return Err(refused(
            "the connection was closed before Entra ID answered".into(),
        ));
    };
    let v: Value =
        serde_json::from_str(body.trim()).map_err(|_| anyhow!("Entra ID answered: {body}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "Entra ID refused the machine's sign-in: {}",
                v["error_description"].as_str().unwrap_or(body)
            )
        })
}

/// A connection to the vault's Backup service.
struct Vault {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    /// Which name it was reached by (and the way the vault saw it come:
    /// a private endpoint, or the public URL), and what failed before it.
    host: String,
    notes: Vec<String>,
}

impl Vault {
    fn send(&mut self, mut v: Value, body: &[u8]) -> std::io::Result<()> {
        v["len"] = json!(body.len());
        self.w.write_all(b"mars ")?;
        self.w.write_all(v.to_string().as_bytes())?;
        self.w.write_all(b"\n")?;
        self.w.write_all(body)?;
        Ok(())
    }

    fn call(&mut self, v: Value, body: &[u8]) -> std::io::Result<(Value, Vec<u8>)> {
        self.send(v, body)?;
        self.w.flush()?;
        self.answer()
    }

    fn answer(&mut self) -> std::io::Result<(Value, Vec<u8>)> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the vault closed the connection",
            ));
        }
        let a: Value = serde_json::from_str(line.trim())
            .map_err(|_| std::io::Error::other(format!("unexpected answer '{}'", line.trim())))?;
        let mut body = vec![0u8; a["len"].as_u64().unwrap_or(0) as usize];
        self.r.read_exact(&mut body)?;
        if a["ok"] != true {
            return Err(std::io::Error::other(format!(
                "{}: {}",
                a["code"].as_str().unwrap_or("Error"),
                a["error"].as_str().unwrap_or("")
            )));
        }
        Ok((a, body))
    }
}

/// Chunk requests kept in flight during a restore.
const GET_WINDOW: usize = 64;

impl Remote for Vault {
    fn get_each(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(usize, Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut sent = 0;
        for i in 0..ids.len() {
            while sent < ids.len() && sent < i + GET_WINDOW {
                self.send(json!({"op": "get", "id": ids[sent]}), &[])?;
                sent += 1;
            }
            self.w.flush()?;
            let got = self.answer().and_then(|(_, body)| f(i, body));
            if let Err(e) = got {
                // Read what is still in flight, so the connection stays usable.
                for _ in i + 1..sent {
                    if self.answer().is_err() {
                        break;
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }
    fn missing(&mut self, ids: &[String]) -> std::io::Result<Vec<String>> {
        let (a, _) = self.call(json!({"op": "missing", "ids": ids}), &[])?;
        Ok(a["missing"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect())
    }
    fn put(&mut self, id: &str, sealed: &[u8]) -> std::io::Result<()> {
        self.send(json!({"op": "put", "id": id}), sealed)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.call(json!({"op": "flush"}), &[]).map(|_| ())
    }
    fn get(&mut self, id: &str) -> std::io::Result<Vec<u8>> {
        self.call(json!({"op": "get", "id": id}), &[])
            .map(|(_, b)| b)
    }
    fn progress(&mut self, s: &backup::Stats) {
        let _ = self.send(json!({"op": "progress", "bag": bag(s)}), &[]);
    }
}

fn bag(s: &backup::Stats) -> Value {
    json!({"Files": s.files, "Unchanged files": s.unchanged_files, "Data size (bytes)": s.total_bytes,
           "Read (bytes)": s.read_bytes, "New chunks": s.new_chunks, "Transferred (bytes)": s.sent_bytes})
}

/// The private URL first, then the public one (document 001); `first`
/// is what the vault is asked once connected (register or hello).
fn open_vault(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    pos: &Position,
    dir: &Path,
    vault_id: &str,
    hosts: &[&str],
    first: Value,
) -> Result<(Vault, Value)> {
    let mut notes = Vec::new();
    for &host in hosts {
        let attempt = (|| -> Result<(Vault, Value), String> {
            let (s, ip, alias) = reach(rt, api, pos, host)?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(600)))
                .map_err(|e| e.to_string())?;
            let mut v = Vault {
                r: BufReader::with_capacity(1 << 20, s.try_clone().map_err(|e| e.to_string())?),
                w: BufWriter::with_capacity(1 << 20, s),
                host: host.to_string(),
                notes: Vec::new(),
            };
            let closed = |e: String| match explain(api, pos.alias, alias, 443) {
                Some(why) => format!("{host} ({ip}:443): {why}"),
                None => format!("{host} ({ip}:443): {e}"),
            };
            v.w.write_all(format!("vault {vault_id}\n").as_bytes())
                .and_then(|_| v.w.flush())
                .map_err(|e| closed(e.to_string()))?;
            let mut greeting = String::new();
            match v.r.read_line(&mut greeting) {
                Ok(n) if n > 0 => {}
                _ => {
                    return Err(closed(
                        "the connection was closed before the vault answered".into(),
                    ))
                }
            }
            if let Some(why) = greeting.strip_prefix("refused ") {
                return Err(format!("{host} ({ip}:443): {}", why.trim()));
            }
            let (a, _) = v
                .call(first.clone(), &[])
                .map_err(|e| format!("{host} ({ip}:443): the vault refused: {e}"))?;
            Ok((v, a))
        })();
        match attempt {
            Ok((mut v, a)) => {
                v.notes = notes;
                if let Some(p) = a["path"].as_str() {
                    v.host = format!("{} through {p}", v.host);
                }
                return Ok((v, a));
            }
            Err(e) => {
                log(dir, &e);
                notes.push(format!("{host} did not work: {e}"));
            }
        }
    }
    bail!(
        "the vault's Backup service is unreachable: {}",
        notes.join("; ")
    )
}

pub struct RegisterArgs {
    pub credentials: PathBuf,
    pub passphrase_file: PathBuf,
    pub agent_dir: PathBuf,
    pub vm: Option<String>,
    pub name: Option<String>,
}

fn read_passphrase(path: &Path) -> Result<String> {
    let p = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    let p = p.trim_end_matches(['\n', '\r']).to_string();
    crypto::check_passphrase(&p)?;
    Ok(p)
}

pub fn register(data_dir: &Path, a: RegisterArgs) -> Result<()> {
    let passphrase = read_passphrase(&a.passphrase_file)?;
    let creds: Credentials = serde_json::from_slice(
        &std::fs::read(&a.credentials)
            .with_context(|| format!("cannot read {}", a.credentials.display()))?,
    )
    .context("not a vault credentials file")?;
    let api = Api::open(data_dir)?;
    let machine = match (&a.name, &a.vm) {
        (Some(n), _) => n.clone(),
        (None, Some(vm)) => vm.rsplit('/').next().unwrap_or("vm").to_string(),
        (None, None) => {
            bail!("give the machine a --name (an on-premises server has no VM to be named after)")
        }
    };
    let container = machine.to_ascii_lowercase();
    std::fs::create_dir_all(&a.agent_dir)?;
    let pos = position(&api, a.vm.as_deref(), &a.agent_dir)?;
    let rt = runtime()?;
    let signed_at = ::time::OffsetDateTime::now_utc().unix_timestamp();
    let msg = format!(
        "recoverite-mars-register\n{}\n{container}\n{signed_at}",
        creds.vault_id.to_ascii_lowercase()
    );
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = b64().decode(&creds.private_key)?;
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
        &rng,
    )
    .map_err(|e| anyhow!("the credentials' key is unusable: {e}"))?;
    let sig = key
        .sign(&rng, msg.as_bytes())
        .map_err(|e| anyhow!("signing failed: {e}"))?;
    let ask = json!({"op": "register", "machine": machine, "vmId": a.vm, "certificateName": creds.certificate_name,
                     "certificate": creds.certificate, "signedAt": signed_at, "signature": b64().encode(sig.as_ref())});
    std::fs::create_dir_all(&a.agent_dir)?;
    let (v, got) = open_vault(
        &rt,
        &api,
        &pos,
        &a.agent_dir,
        &creds.vault_id,
        &[&creds.private_host, &creds.public_host],
        ask,
    )?;
    let salt: [u8; 16] = crypto::random_bytes();
    let mk = crypto::machine_key(&passphrase, &salt)?;
    let reg = Registration {
        vault_id: creds.vault_id.clone(),
        machine: machine.clone(),
        container: got["container"].as_str().unwrap_or(&container).to_string(),
        container_id: got["containerId"].as_str().unwrap_or_default().to_string(),
        vm_id: a.vm.clone(),
        client_id: got["clientId"].as_str().unwrap_or_default().to_string(),
        client_secret: got["clientSecret"].as_str().unwrap_or_default().to_string(),
        tenant_id: got["tenantId"]
            .as_str()
            .unwrap_or(&creds.aad_tenant_id)
            .to_string(),
        audience: creds.aad_audience.clone(),
        dedup_key: got["dedupKey"].as_str().unwrap_or_default().to_string(),
        private_host: creds.private_host.clone(),
        public_host: creds.public_host.clone(),
        salt: hex::encode(salt),
        machine_key: hex::encode(mk),
        storage: serde_json::from_value(got["storage"].clone()).ok(),
    };
    write_private(
        &a.agent_dir.join("registration.json"),
        serde_json::to_string_pretty(&reg)?.as_bytes(),
    )?;
    println!(
        "registered {machine} to {} as container {} (via {})",
        creds.vault_name, reg.container_id, v.host
    );
    Ok(())
}

fn load(dir: &Path) -> Result<Registration> {
    let path = dir.join("registration.json");
    serde_json::from_slice(&std::fs::read(&path).with_context(|| {
        format!(
            "{} is not a registered agent (no registration.json); run `recoverite mars register`",
            dir.display()
        )
    })?)
    .context("registration.json is damaged")
}

fn key32(hex_text: &str) -> Result<[u8; 32]> {
    hex::decode(hex_text)?
        .try_into()
        .map_err(|_| anyhow!("a key must be 32 bytes"))
}

/// Signs in and connects: the session every backup and restore uses.
/// A signed-in session: the connection to the Backup service and, for a
/// version 1 vault, the one to its storage account's blob endpoint that
/// the data goes through.
struct Session {
    control: Vault,
    data: Option<Vault>,
}

impl Session {
    fn data(&mut self) -> &mut Vault {
        self.data.as_mut().unwrap_or(&mut self.control)
    }
    fn call(&mut self, v: Value, body: &[u8]) -> std::io::Result<(Value, Vec<u8>)> {
        self.control.call(v, body)
    }
}

impl Remote for Session {
    fn missing(&mut self, ids: &[String]) -> std::io::Result<Vec<String>> {
        self.data().missing(ids)
    }
    fn put(&mut self, id: &str, sealed: &[u8]) -> std::io::Result<()> {
        self.data().put(id, sealed)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.data().flush()
    }
    fn get(&mut self, id: &str) -> std::io::Result<Vec<u8>> {
        self.data().get(id)
    }
    fn get_each(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(usize, Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.data().get_each(ids, f)
    }
    fn progress(&mut self, s: &backup::Stats) {
        self.control.progress(s)
    }
}

fn connect(data_dir: &Path, dir: &Path, reg: &Registration) -> Result<(Api, Session)> {
    let api = Api::open(data_dir)?;
    let pos = position(&api, reg.vm_id.as_deref(), dir)?;
    let rt = runtime()?;
    let token = sign_in(&rt, &api, &pos, reg).inspect_err(|e| log(dir, &e.to_string()))?;
    let hello = json!({"op": "hello", "token": token, "audience": reg.audience});
    let (control, a) = open_vault(
        &rt,
        &api,
        &pos,
        dir,
        &reg.vault_id,
        &[&reg.private_host, &reg.public_host],
        hello,
    )?;
    let mut session = Session {
        control,
        data: None,
    };
    if let Some(st) = &reg.storage {
        // Version 1: the queue is the communication channel, the blob
        // endpoint takes the data; both must resolve to the vault's
        // private endpoint (private DNS zones, custom DNS or the hosts file).
        let join = json!({"op": "hello", "token": token, "audience": reg.audience, "attach": a["session"]});
        for (what, host) in [("queue", &st.queue), ("blob", &st.blob)] {
            let (v, _) = open_vault(&rt, &api, &pos, dir, &reg.vault_id, &[host], join.clone())
                .map_err(|e| anyhow!("the vault's storage {what} endpoint is unreachable (version 1 vaults need it): {e}"))?;
            if what == "blob" {
                session.control.host = format!("{} (data via {})", session.control.host, v.host);
                session.data = Some(v);
            }
        }
    }
    Ok((api, session))
}

fn last_index_path(dir: &Path, root: &Path) -> PathBuf {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(root.display().to_string().as_bytes()));
    dir.join("last").join(format!("{}.idx", &h[..16]))
}

pub fn backup(
    data_dir: &Path,
    dir: &Path,
    paths: &[PathBuf],
    exclude: &[String],
    policy: Option<&str>,
) -> Result<()> {
    let reg = load(dir)?;
    let (_api, mut v) = connect(data_dir, dir, &reg)?;
    backup_on(&mut v, dir, &reg, paths, exclude, policy)
}

/// The agent's scheduler: runs the backups the vault's clock says are due
/// (from each folder's MARS policy), until interrupted, or once.
pub fn run_scheduled(data_dir: &Path, dir: &Path, exclude: &[String], once: bool) -> Result<()> {
    let reg = load(dir)?;
    loop {
        let (_api, mut v) = connect(data_dir, dir, &reg)?;
        let (a, _) = v.call(json!({"op": "due"}), &[])?;
        let due: Vec<PathBuf> = a["due"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["path"].as_str().map(PathBuf::from))
            .collect();
        for d in a["due"].as_array().into_iter().flatten() {
            println!(
                "scheduled backup of {} (slot {})",
                d["path"].as_str().unwrap_or(""),
                d["slot"].as_str().unwrap_or("")
            );
        }
        if !due.is_empty() {
            if let Err(e) = backup_on(&mut v, dir, &reg, &due, exclude, None) {
                log(dir, &format!("scheduled backup failed: {e}"));
                if once {
                    return Err(e);
                }
            }
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn backup_on(
    v: &mut Session,
    dir: &Path,
    reg: &Registration,
    paths: &[PathBuf],
    exclude: &[String],
    policy: Option<&str>,
) -> Result<()> {
    let (mk, dk, salt) = (
        key32(&reg.machine_key)?,
        key32(&reg.dedup_key)?,
        hex::decode(&reg.salt)?,
    );
    for p in paths {
        let root =
            std::fs::canonicalize(p).with_context(|| format!("cannot back up {}", p.display()))?;
        let last = last_index_path(dir, &root);
        let previous = std::fs::read(&last)
            .ok()
            .and_then(|b| index::open(&b, &mk).ok());
        let notes = v.control.notes.clone();
        let (a, _) = v.call(
            json!({"op": "begin", "root": root.display().to_string(), "notes": notes, "policy": policy}),
            &[],
        )?;
        let job = a["job"].as_str().unwrap_or_default().to_string();
        let started = std::time::Instant::now();
        let spec = backup::Spec {
            machine: &reg.machine,
            roots: std::slice::from_ref(&root),
            exclude,
            dedup_key: &dk,
        };
        let (snap, stats) = match backup::run(v, &spec, previous.as_ref()) {
            Ok(x) => x,
            Err(e) => {
                let _ = v.call(json!({"op": "fail", "error": e.to_string()}), &[]);
                return Err(anyhow!("backup of {} failed: {e}", root.display()));
            }
        };
        let sealed = index::seal(&snap, &mk, &salt);
        // The point's chunk ids, one per line, then the sealed index.
        let mut body = snap.chunk_ids().join("\n").into_bytes();
        let ids_len = body.len();
        body.extend_from_slice(&sealed);
        let (a, _) = v.call(json!({"op": "commit", "idsLen": ids_len, "totalBytes": snap.total_bytes(), "bag": bag(&stats)}), &body)?;
        write_private(&last, &sealed)?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}: point {} (job {job}): {} files, {} bytes, {} read, {} new chunks, {} bytes sent in {secs:.2} s via {}",
            root.display(), a["point"].as_str().unwrap_or(""), stats.files, stats.total_bytes, stats.read_bytes, stats.new_chunks, stats.sent_bytes, v.control.host
        );
    }
    Ok(())
}

pub fn points(data_dir: &Path, dir: &Path) -> Result<()> {
    let reg = load(dir)?;
    let (_api, mut v) = connect(data_dir, dir, &reg)?;
    let (a, _) = v.call(json!({"op": "points"}), &[])?;
    println!("{}", serde_json::to_string_pretty(&a["points"])?);
    Ok(())
}

pub fn restore_cmd(
    data_dir: &Path,
    dir: &Path,
    point: &str,
    paths: &[String],
    target: &Path,
    passphrase_file: Option<&Path>,
) -> Result<()> {
    let reg = load(dir)?;
    let (_api, mut v) = connect(data_dir, dir, &reg)?;
    let (a, sealed) = v.call(json!({"op": "open", "point": point}), &[])?;
    let opened = match passphrase_file {
        Some(f) => read_passphrase(f).and_then(|p| Ok(index::open_with_passphrase(&sealed, &p)?)),
        None => key32(&reg.machine_key).and_then(|k| Ok(index::open(&sealed, &k)?)),
    };
    let snap = match opened {
        Ok(s) => s,
        Err(e) => {
            let why = format!("the recovery point cannot be decrypted: {e}. A point backed up by another machine ({}) needs that machine's passphrase (--passphrase-file)", a["sourceMachine"].as_str().unwrap_or(""));
            let _ = v.call(json!({"op": "done", "error": why}), &[]);
            bail!(why);
        }
    };
    let started = std::time::Instant::now();
    match restore::run(&mut v, &snap, paths, target) {
        Ok(r) => {
            let _ = v.call(json!({"op": "done", "bag": {"Restored files": r.files, "Restored bytes": r.bytes, "Target": target.display().to_string()}}), &[]);
            println!(
                "restored {} files, {} directories, {} symlinks, {} bytes of {} into {} in {:.2} s",
                r.files,
                r.dirs,
                r.symlinks,
                r.bytes,
                a["root"].as_str().unwrap_or(""),
                target.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            let _ = v.call(json!({"op": "done", "error": e.to_string()}), &[]);
            Err(anyhow!("restore failed: {e}"))
        }
    }
}
