//! `recoverite`: Azure Site Recovery and Backup vaults with private endpoints,
//! and what they depend on, as one offline program.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use recoverite_server::{Connection, ServeConfig};

mod agent_cmd;
mod file_recovery_cmd;
mod mars_cmd;
mod subscription_cmd;

#[derive(Parser)]
#[command(
    name = "recoverite",
    version,
    about = "Azure Recovery Services, offline, on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every service (ARM, Entra token service) in this process.
    Serve {
        /// Where state, keys and certificates are kept.
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
        /// HTTPS port for ARM and the token service (0 picks a free port;
        /// default 10443, plus the instance's slot when other recoverites run).
        #[arg(long)]
        port: Option<u16>,
        /// Port of the DNS server (default 10053, plus the instance's slot).
        #[arg(long)]
        dns_port: Option<u16>,
        /// Also export managed disks over NBD on this TCP port of 127.0.0.1
        /// (0 picks a free one). Without it they are served only on the
        /// owner-only Unix socket `DATA_DIR/nbd.sock`.
        #[arg(long)]
        nbd_port: Option<u16>,
        /// Seconds clients wait between long-running-operation polls (Retry-After).
        #[arg(long, default_value_t = 1)]
        poll_interval: u64,
        /// Seconds between crash-consistent recovery points of each replicating VM (Azure: 300).
        #[arg(long, default_value_t = 300)]
        recovery_point_interval: u64,
        /// Emulated seconds per wall-clock second: `--time-scale 3600` runs an
        /// hour of recovery points, retention and app-consistency cycles per second.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Run a protected VM's mobility agent as its own process (the server
    /// runs a built-in one for every VM otherwise). Needs a running server.
    Agent {
        /// The VM's ARM id.
        #[arg(long)]
        vm: String,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Azure Backup file recovery: the commands the provisioned script runs.
    FileRecovery {
        #[command(subcommand)]
        action: FileRecoveryCommand,
    },
    /// Say why a VM's disaster recovery would fail: every hop its agents
    /// need, from its network position, with the evidence and the fix.
    /// Exits 1 when a check fails (a CI gate).
    Doctor {
        /// The VM's ARM id.
        #[arg(long)]
        vm: String,
        /// The vault it uses (its private endpoints, names and access).
        #[arg(long)]
        vault: Option<String>,
        /// sr, backup, mars (the MARS agent on the VM) or both.
        #[arg(long, default_value = "both")]
        scenario: String,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// The MARS agent (Microsoft Azure Recovery Services agent): back up
    /// files and folders of a VM or an on-premises server into a Recovery
    /// Services vault, through its private endpoints or public URLs.
    Mars {
        #[command(subcommand)]
        action: MarsCommand,
    },
    /// Manage service principals.
    Principal {
        #[command(subcommand)]
        action: PrincipalCommand,
    },
    /// Manage the tenant's subscriptions.
    Subscription {
        #[command(subcommand)]
        action: SubscriptionCommand,
    },
}

#[derive(Subcommand)]
enum FileRecoveryCommand {
    /// Connect to a recovery point's file recovery session from a VM's
    /// network position and serve its disks on local NBD sockets until
    /// interrupted. The password comes from ILR_PASSWORD.
    Connect {
        /// The VM whose network position the connection is made from.
        #[arg(long)]
        vm: String,
        #[arg(long)]
        vault: String,
        #[arg(long)]
        session: String,
        /// The vault's private (vault-specific) name, tried first.
        #[arg(long)]
        host: String,
        /// The public name, tried when the private one fails.
        #[arg(long)]
        fallback_host: Option<String>,
        #[arg(long, default_value_t = 3260)]
        port: u16,
        /// The disks to serve, space- or comma-separated (`os lun0`).
        #[arg(long)]
        disks: String,
        /// Where the sockets `{disk}.sock` are made.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum MarsCommand {
    /// Download vault credentials (valid 10 days), as the portal does.
    Credentials {
        /// The vault's ARM id.
        #[arg(long)]
        vault: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Register this machine with the vault.
    Register {
        #[arg(long)]
        credentials: PathBuf,
        /// A file holding the encryption passphrase (at least 16
        /// characters). It never leaves the machine.
        #[arg(long)]
        passphrase_file: PathBuf,
        /// Where the agent keeps its registration and state.
        #[arg(long)]
        agent_dir: PathBuf,
        /// The VM the agent runs in (its network position); without it the
        /// machine is an on-premises server (public DNS and addresses only).
        #[arg(long)]
        vm: Option<String>,
        /// The machine's name (default: the VM's name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Back up folders now.
    Backup {
        #[arg(long)]
        agent_dir: PathBuf,
        /// Folders to back up (each is one protected item).
        #[arg(long = "path", required = true)]
        paths: Vec<PathBuf>,
        /// Glob patterns of files and folders to leave out.
        #[arg(long)]
        exclude: Vec<String>,
        /// A MARS (MAB) backup policy of the vault: the folders are then
        /// also backed up on its schedule (`recoverite mars run`) and their
        /// points kept as its retention says.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Run the agent's scheduler: the backups the policies make due, on the
    /// emulator clock.
    Run {
        #[arg(long)]
        agent_dir: PathBuf,
        #[arg(long)]
        exclude: Vec<String>,
        /// Run what is due now, then exit.
        #[arg(long)]
        once: bool,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// List the recovery points of the vault's machines.
    Points {
        #[arg(long)]
        agent_dir: PathBuf,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Restore a recovery point (of this machine, or of another machine of
    /// the vault with that machine's passphrase).
    Restore {
        #[arg(long)]
        agent_dir: PathBuf,
        /// The recovery point's ARM id.
        #[arg(long)]
        point: String,
        /// Only these paths (as backed up); default: everything.
        #[arg(long = "path")]
        paths: Vec<String>,
        #[arg(long)]
        target: PathBuf,
        /// The passphrase of the machine that made the point, when it is
        /// another machine.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum SubscriptionCommand {
    /// Create a subscription (the bootstrap principal becomes its Owner) and
    /// print its id.
    Create {
        /// Its display name.
        #[arg(long)]
        name: String,
        /// Place it under this management group instead of the root group.
        #[arg(long)]
        management_group: Option<String>,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// List the tenant's subscriptions.
    List {
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PrincipalCommand {
    /// Create a service principal and print its client id and secret.
    Create {
        #[arg(long)]
        name: String,
        /// Role to assign (e.g. Reader, Contributor, "Site Recovery Operator").
        #[arg(long)]
        role: Option<String>,
        /// Scope of the role assignment (default: the subscription).
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, default_value = ".recoverite", env = "RECOVERITE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECOVERITE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data_dir,
            port,
            dns_port,
            nbd_port,
            poll_interval,
            recovery_point_interval,
            time_scale,
        } => serve(ServeConfig {
            time_scale,
            data_dir,
            port,
            dns_port,
            nbd_port,
            poll_after_secs: poll_interval,
            recovery_point_secs: recovery_point_interval,
        }),
        Command::Agent { vm, data_dir } => agent_cmd::run(&data_dir, &vm),
        Command::Mars { action } => match action {
            MarsCommand::Credentials {
                vault,
                out,
                data_dir,
            } => mars_cmd::credentials(&data_dir, &vault, &out),
            MarsCommand::Register {
                credentials,
                passphrase_file,
                agent_dir,
                vm,
                name,
                data_dir,
            } => mars_cmd::register(
                &data_dir,
                mars_cmd::RegisterArgs {
                    credentials,
                    passphrase_file,
                    agent_dir,
                    vm,
                    name,
                },
            ),
            MarsCommand::Backup {
                agent_dir,
                paths,
                exclude,
                policy,
                data_dir,
            } => mars_cmd::backup(&data_dir, &agent_dir, &paths, &exclude, policy.as_deref()),
            MarsCommand::Run {
                agent_dir,
                exclude,
                once,
                data_dir,
            } => mars_cmd::run_scheduled(&data_dir, &agent_dir, &exclude, once),
            MarsCommand::Points {
                agent_dir,
                data_dir,
            } => mars_cmd::points(&data_dir, &agent_dir),
            MarsCommand::Restore {
                agent_dir,
                point,
                paths,
                target,
                passphrase_file,
                data_dir,
            } => mars_cmd::restore_cmd(
                &data_dir,
                &agent_dir,
                &point,
                &paths,
                &target,
                passphrase_file.as_deref(),
            ),
        },
        Command::Doctor {
            vm,
            vault,
            scenario,
            json,
            data_dir,
        } => doctor(&data_dir, &vm, vault.as_deref(), &scenario, json),
        Command::FileRecovery {
            action:
                FileRecoveryCommand::Connect {
                    vm,
                    vault,
                    session,
                    host,
                    fallback_host,
                    port,
                    disks,
                    dir,
                    data_dir,
                },
        } => file_recovery_cmd::run(
            &data_dir,
            file_recovery_cmd::Args {
                vm,
                vault,
                session,
                host,
                fallback_host,
                port,
                disks: disks
                    .split([' ', ','])
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect(),
                dir,
            },
        ),
        Command::Principal {
            action:
                PrincipalCommand::Create {
                    name,
                    role,
                    scope,
                    data_dir,
                },
        } => {
            let out = create_principal(&data_dir, &name, role.as_deref(), scope.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Subscription { action } => {
            let out = match action {
                SubscriptionCommand::Create {
                    name,
                    management_group,
                    data_dir,
                } => subscription_cmd::create(&data_dir, &name, management_group.as_deref())?,
                SubscriptionCommand::List { data_dir } => subscription_cmd::list(&data_dir)?,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

fn serve(cfg: ServeConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = recoverite_server::start(cfg).await?;
        print!("{}", recoverite_server::banner(&running));
        use std::io::Write;
        std::io::stdout().flush().ok();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            r = running.server => { r??; }
        }
        running
            .handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        let _ = std::fs::remove_file(&running.connection_file);
        Ok(())
    })
}

fn read_connection(data_dir: &Path) -> Option<Connection> {
    let text = std::fs::read_to_string(data_dir.join("connection.json")).ok()?;
    let c: Connection = serde_json::from_str(&text).ok()?;
    // Commands acting inside the server's network reach its gateway where
    // that instance's slot puts it.
    recoverite_listen::instance::set_slot(c.instance_slot);
    Some(c)
}

/// Creates a principal through the running server, or directly in the data
/// directory when no server holds it.
fn create_principal(
    data_dir: &Path,
    name: &str,
    role: Option<&str>,
    scope: Option<&str>,
) -> Result<Value> {
    if let Some(conn) = read_connection(data_dir) {
        match create_via_http(&conn, name, role, scope) {
            Ok(v) => return Ok(v),
            Err(HttpFailure::Unreachable(e)) => eprintln!(
                "recoverite is not reachable ({e}); writing to the data directory directly"
            ),
            Err(HttpFailure::Refused(e)) => bail!("{e}"),
        }
    }
    create_in_store(data_dir, name, role, scope)
}

enum HttpFailure {
    Unreachable(String),
    Refused(String),
}

fn agent_for(conn: &Connection) -> Result<ureq::Agent, HttpFailure> {
    let pem =
        std::fs::read(&conn.ca_cert_file).map_err(|e| HttpFailure::Unreachable(e.to_string()))?;
    let cert =
        ureq::tls::Certificate::from_pem(&pem).map_err(|e| HttpFailure::Refused(e.to_string()))?;
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into())
}

fn create_via_http(
    conn: &Connection,
    name: &str,
    role: Option<&str>,
    scope: Option<&str>,
) -> Result<Value, HttpFailure> {
    let agent = agent_for(conn)?;
    let token = token_for(&agent, conn)?;
    let mut resp = agent
        .post(&format!("{}/recoverite/principals", conn.arm_endpoint))
        .header("Authorization", &format!("Bearer {token}"))
        .content_type("application/json")
        .send(json!({"displayName": name, "role": role, "scope": scope}).to_string())
        .map_err(|e| HttpFailure::Unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    let v = read_json(&mut resp)?;
    if status != 201 {
        return Err(HttpFailure::Refused(format!(
            "recoverite refused ({status}): {v}"
        )));
    }
    Ok(v)
}

/// A token for ARM with the connection's dev credentials.
fn token_for(agent: &ureq::Agent, conn: &Connection) -> Result<String, HttpFailure> {
    let token_url = format!("{}/{}/oauth2/v2.0/token", conn.authority, conn.tenant_id);
    let mut resp = agent
        .post(&token_url)
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", conn.client_id.as_str()),
            ("client_secret", conn.client_secret.as_str()),
            ("scope", "https://management.azure.com/.default"),
        ])
        .map_err(|e| HttpFailure::Unreachable(e.to_string()))?;
    let tok = read_json(&mut resp)?;
    tok["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| HttpFailure::Refused(format!("token request failed: {tok}")))
}

fn read_json(resp: &mut ureq::http::Response<ureq::Body>) -> Result<Value, HttpFailure> {
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| HttpFailure::Refused(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| HttpFailure::Refused(format!("{e}: {text}")))
}

/// The state store of a data directory no server holds, and its bootstrap
/// record (tenant, first subscription, dev credentials).
fn open_data_dir(
    data_dir: &Path,
) -> Result<(recoverite_store::Store, recoverite_server::Bootstrap)> {
    let path = data_dir.join("state.redb");
    if !path.exists() {
        bail!(
            "{} has no recoverite state yet; run `recoverite serve --data-dir {}` once first",
            data_dir.display(),
            data_dir.display()
        );
    }
    let store = recoverite_store::Store::open(&path)
        .context("opening the state store (is a server using it without a connection.json?)")?;
    let boot: recoverite_server::Bootstrap = store
        .read(|r| {
            use recoverite_store::Reader;
            r.get_json(recoverite_server::bootstrap::META, "bootstrap")
        })?
        .ok_or_else(|| {
            anyhow!("the data directory was never initialised; run `recoverite serve` once first")
        })?;
    Ok((store, boot))
}

fn create_in_store(
    data_dir: &Path,
    name: &str,
    role: Option<&str>,
    scope: Option<&str>,
) -> Result<Value> {
    let (store, boot) = open_data_dir(data_dir)?;
    let scope = scope
        .map(str::to_string)
        .unwrap_or_else(|| format!("/subscriptions/{}", boot.subscription_id));
    let v = store.write(|tx| -> Result<Value, recoverite_arm::ArmError> {
        let (p, secret) = recoverite_identity::principals::create_service_principal(tx, name)?;
        let assignment = match role {
            Some(r) => Some(recoverite_identity::authorization_provider::assign(
                tx,
                r,
                &p.object_id,
                &scope,
                &boot.object_id,
            )?),
            None => None,
        };
        Ok(json!({
            "displayName": p.display_name,
            "objectId": p.object_id,
            "clientId": p.app_id,
            "clientSecret": secret,
            "tenantId": boot.tenant_id,
            "roleAssignment": assignment,
        }))
    })?;
    Ok(v)
}

/// `recoverite doctor`: asks the running server, prints the checks.
fn doctor(
    data_dir: &Path,
    vm: &str,
    vault: Option<&str>,
    scenario: &str,
    as_json: bool,
) -> Result<()> {
    let api = agent_cmd::Api::open(data_dir)?;
    let enc = agent_cmd::url_encode;
    let mut path = format!(
        "/recoverite/doctor?vm={}&scenario={}",
        enc(vm),
        enc(scenario)
    );
    if let Some(v) = vault {
        path.push_str(&format!("&vault={}", enc(v)));
    }
    let v = api.get(&path)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for c in v["checks"].as_array().into_iter().flatten() {
            println!(
                "{:<5} {}\n      {}",
                c["status"].as_str().unwrap_or("").to_uppercase(),
                c["check"].as_str().unwrap_or(""),
                c["evidence"].as_str().unwrap_or("")
            );
            if let Some(fix) = c["fix"].as_str() {
                println!("      fix: {fix}");
            }
        }
    }
    if v["passed"] != true {
        std::process::exit(1);
    }
    Ok(())
}
