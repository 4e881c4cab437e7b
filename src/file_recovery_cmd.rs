//! `recoverite file-recovery connect`: what Azure's file recovery script
//! does, from a VM's network position. It resolves the vault's private
//! name through the VM's DNS, falls back to the public name, connects
//! through the gateway on port 3260, and serves each disk of the recovery
//! point on a local NBD socket (`DIR/{disk}.sock`) for `qemu-nbd -r`,
//! `qemu-io -r` or `guestmount`. Every local connection is a new connection
//! through the emulated network, so a network change takes effect at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};

use recoverite_agent::{self as agent, Aliases};

use crate::agent_cmd::{url_encode, Api, ListedAliases};

pub struct Args {
    pub vm: String,
    pub vault: String,
    pub session: String,
    pub host: String,
    pub fallback_host: Option<String>,
    pub port: u16,
    pub disks: Vec<String>,
    pub dir: PathBuf,
}

/// Where the vault's file recovery service was reached: the name, the
/// address it resolved to and the alias the gateway listens on.
#[derive(Clone)]
struct Reached {
    host: String,
    address: Ipv4Addr,
    alias: Ipv4Addr,
}

struct Ctx {
    vm_alias: Ipv4Addr,
    vault: String,
    session: String,
    password: String,
    port: u16,
}

/// One connection for `disk` through the gateway; answered `ok {size}`.
async fn open(c: &Ctx, to: &Reached, disk: &str) -> Result<BufReader<TcpStream>, String> {
    let s = agent::connect_from(c.vm_alias, to.alias, c.port)
        .await
        .map_err(|e| format!("connection to {}:{} failed: {e}", to.address, c.port))?;
    let mut s = BufReader::new(s);
    let hello = format!(
        "vault {}\nilr {} {} {disk}\n",
        c.vault, c.session, c.password
    );
    s.get_mut()
        .write_all(hello.as_bytes())
        .await
        .map_err(|_| "the connection was closed".to_string())?;
    let mut line = String::new();
    match tokio::time::timeout(agent::TIMEOUT * 3, s.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Err("the connection was closed before the service answered".into()),
    }
    let line = line.trim();
    if let Some(why) = line.strip_prefix("refused ") {
        return Err(format!("the vault refused: {why}"));
    }
    if !line.starts_with("ok ") {
        return Err(format!("unexpected answer '{line}'"));
    }
    Ok(s)
}

/// Why the gateway closed a connection, from its decision.
pub(crate) fn explain(api: &Api, from: Ipv4Addr, to: Ipv4Addr, port: u16) -> Option<String> {
    let d = api
        .get(&format!(
            "/recoverite/network/check?from={from}&to={to}&port={port}"
        ))
        .ok()?;
    (d["allowed"] == false).then(|| d["reason"].as_str().unwrap_or_default().to_string())
}

async fn try_host(
    api: &Api,
    al: &ListedAliases,
    dns: SocketAddr,
    c: &Ctx,
    host: &str,
    disk: &str,
) -> Result<Reached, String> {
    let address = agent::resolve(c.vm_alias, dns, host)
        .await
        .map_err(|e| format!("{host} did not resolve from the VM: {e}"))?;
    let alias = al.alias_of(c.vm_alias, address).ok_or_else(|| {
        format!("{host} resolves to {address}, which is not reachable from the VM's network")
    })?;
    let to = Reached {
        host: host.to_string(),
        address,
        alias,
    };
    match open(c, &to, disk).await {
        Ok(_) => Ok(to),
        Err(e) => {
            let why = tokio::task::block_in_place(|| explain(api, c.vm_alias, alias, c.port));
            Err(match why {
                Some(w) => format!("{host} ({address}:{}): {w}", c.port),
                None => format!("{host} ({address}:{}): {e}", c.port),
            })
        }
    }
}

pub fn run(data_dir: &Path, args: Args) -> Result<()> {
    let password = std::env::var("ILR_PASSWORD")
        .map_err(|_| anyhow!("set ILR_PASSWORD to the connection's password (the script does)"))?;
    let api = Api::open(data_dir)?;
    let dns: SocketAddr = api.conn.dns_server.parse()?;
    let mine = api.get(&format!(
        "/recoverite/network/aliases?vm={}",
        url_encode(&args.vm)
    ))?;
    let vm_alias: Ipv4Addr = mine["value"][0]["alias"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("VM {} has no network position", args.vm))?;
    let al = ListedAliases(
        api.get("/recoverite/network/aliases")?["value"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let c = Ctx {
        vm_alias,
        vault: args.vault.clone(),
        session: args.session.clone(),
        password,
        port: args.port,
    };
    let first = args
        .disks
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no disk to serve (--disks)"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The vault-specific private name first, then the public one.
        let mut failures = Vec::new();
        let mut reached = None;
        for host in std::iter::once(&args.host).chain(args.fallback_host.iter()) {
            match try_host(&api, &al, dns, &c, host, &first).await {
                Ok(r) => {
                    reached = Some(r);
                    break;
                }
                Err(e) => {
                    eprintln!("file recovery: {e}");
                    failures.push(e);
                }
            }
        }
        let Some(to) = reached else {
            bail!(
                "the vault's file recovery service is unreachable from {} ({vm_alias}): {}",
                args.vm,
                failures.join("; ")
            );
        };
        std::fs::create_dir_all(&args.dir)?;
        let mut listeners = Vec::new();
        for d in &args.disks {
            let path = args.dir.join(format!("{d}.sock"));
            let _ = std::fs::remove_file(&path);
            listeners.push((d.clone(), UnixListener::bind(&path)?, path));
        }
        println!(
            "file recovery: connected to {} ({}:{}) from {vm_alias}",
            to.host, to.address, c.port
        );
        for (d, _, path) in &listeners {
            println!(
                "disk {d}: nbd+unix:///{d}?socket={}  (e.g. qemu-nbd -r -c /dev/nbd0 …, or qemu-io -r -f raw …)",
                path.display()
            );
        }
        println!("ready");
        use std::io::Write;
        std::io::stdout().flush().ok();
        let c = std::sync::Arc::new(c);
        let mut tasks = Vec::new();
        for (disk, listener, _) in listeners {
            let (c, to) = (c.clone(), to.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((mut local, _)) = listener.accept().await else {
                        continue;
                    };
                    let (c, to, disk) = (c.clone(), to.clone(), disk.clone());
                    tokio::spawn(async move {
                        match open(&c, &to, &disk).await {
                            Ok(mut remote) => {
                                let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                            }
                            Err(e) => eprintln!("file recovery: disk {disk}: {e}"),
                        }
                    });
                }
            }));
        }
        tokio::signal::ctrl_c().await.ok();
        Ok(())
    })
}
