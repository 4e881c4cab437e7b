//! The recoverite process: one HTTPS listener serving the Entra token
//! service and Azure Resource Manager on the same origin.

mod admin;
mod agents;
mod arm_http;
pub mod bootstrap;
mod clock;
mod connectivity;
mod disk_access;
pub mod doctor;
mod entra;
mod file_recovery;
mod first_party;
mod graph;
pub mod imds;
mod journals;
mod mars;
mod netadmin;
mod replication;
pub mod tls;
mod vault_port;

#[cfg(test)]
mod manifest_tests;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde::Serialize;

use recoverite_arm::{Environment, Platform, Router};
use recoverite_identity::{Directory, TokenService};
use recoverite_manifest::Manifest;
use recoverite_privatelink::Registry;
use recoverite_store::Store;

pub use bootstrap::Bootstrap;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// HTTPS port; 0 picks a free one; `None`: 10443 plus the instance's
    /// slot (10443 for the first instance on the machine).
    pub port: Option<u16>,
    /// DNS port, likewise (`None`: 10053 plus the slot).
    pub dns_port: Option<u16>,
    /// A TCP port exporting managed disks over NBD as well (0 picks a free
    /// one); without it disks are served only on the data directory's
    /// owner-only Unix socket, `nbd.sock`.
    pub nbd_port: Option<u16>,
    /// Seconds clients are told to wait between long-running-operation polls.
    pub poll_after_secs: u64,
    /// Seconds between crash-consistent recovery points of a replicating VM.
    pub recovery_point_secs: u64,
    /// Emulated seconds per wall-clock second (see `recoverite_arm::time`).
    pub time_scale: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from(".recoverite"),
            port: None,
            dns_port: None,
            nbd_port: None,
            poll_after_secs: 1,
            recovery_point_secs: 300,
            time_scale: 1.0,
        }
    }
}

/// The file a test harness waits for: how to reach and sign in to this instance.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub arm_endpoint: String,
    pub authority: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub ca_cert_file: String,
    pub dns_server: String,
    /// Every subscription of the tenant, the first one included; kept up to
    /// date while the server runs (`recoverite subscription create`).
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionEntry>,
    /// The instance's slot (`recoverite_listen::instance`): model port `p` of
    /// its loopback aliases is served on `p + 10000 + slot` (below 1024) or
    /// `p + slot`; 0 for the first instance on a machine.
    #[serde(default)]
    pub instance_slot: u16,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionEntry {
    pub subscription_id: String,
    pub display_name: String,
}

fn subscription_entries(store: &Store) -> Vec<SubscriptionEntry> {
    let mut all = store
        .read(|r| Ok(recoverite_arm::tenancy::subscriptions(r)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    all.into_iter()
        .map(|s| SubscriptionEntry {
            subscription_id: s.subscription_id,
            display_name: s.display_name,
        })
        .collect()
}

/// What the server does when the tenant gains a subscription: Site
/// Recovery's first-party principal becomes Contributor there (in the same
/// transaction), and `connection.json` is rewritten to list it.
struct TenantEvents {
    first_party: std::sync::OnceLock<String>,
    connection: std::sync::Mutex<Option<(PathBuf, Connection)>>,
    store: std::sync::OnceLock<Store>,
}

impl recoverite_arm::TenantHook for TenantEvents {
    fn subscription_created(
        &self,
        tx: &mut recoverite_store::WriteTx,
        subscription: &str,
    ) -> Result<(), recoverite_arm::ArmError> {
        if let Some(oid) = self.first_party.get() {
            first_party::grant(tx, oid, subscription)?;
        }
        Ok(())
    }

    fn subscriptions_changed(&self) {
        let (Some(store), Ok(mut guard)) = (self.store.get(), self.connection.lock()) else {
            return;
        };
        if let Some((path, conn)) = guard.as_mut() {
            conn.subscriptions = subscription_entries(store);
            if let Ok(json) = serde_json::to_vec_pretty(conn) {
                if let Err(e) = write_atomically(path, &json) {
                    tracing::warn!("cannot rewrite {}: {e}", path.display());
                }
            }
        }
    }
}

/// The largest token request body accepted (a client-credentials form is a
/// few hundred bytes; a client assertion a few kilobytes).
pub const TOKEN_BODY_LIMIT: usize = 64 * 1024;

/// Where managed disks are exported over NBD, as `{resourceGroup}/{disk}`.
#[derive(Clone, Debug)]
pub struct NbdEndpoints {
    /// `nbd://127.0.0.1:PORT`, only when TCP was asked for.
    pub tcp: Option<String>,
    /// The owner-only Unix socket, always served.
    pub socket: PathBuf,
}

impl NbdEndpoints {
    /// The URI qemu-io and qemu-nbd take for an export on the socket.
    pub fn unix_uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }
}

pub struct AppState {
    pub router: Arc<Router>,
    pub nbd: NbdEndpoints,
    pub registry: Arc<Registry>,
    pub gateway: Arc<recoverite_gateway::Gateway>,
    pub resolver: Arc<recoverite_dns::Resolver>,
    pub directory: Arc<Directory>,
    pub tokens: Arc<TokenService>,
    pub bootstrap: Bootstrap,
    pub arm_endpoint: String,
    pub engine: recoverite_replication::Engine,
    pub rt: Arc<recoverite_rp_siterecovery::runtime::Runtime>,
    pub blocks: recoverite_blockstore::BlockStore,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot use data directory {0}: {1}")]
    DataDir(PathBuf, String),
    #[error("cannot listen on 127.0.0.1:{0}: {1}")]
    Listen(u16, String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Arm(#[from] recoverite_arm::ArmError),
}

/// What the providers are wired to: one private link registry, the disk
/// and blob stores, the replication engine and Site Recovery runtime, and
/// the late-bound clients (calls as the caller, the connectivity check).
pub struct Wiring<'a> {
    pub registry: &'a Arc<Registry>,
    pub blocks: &'a recoverite_blockstore::BlockStore,
    pub engine: &'a recoverite_replication::Engine,
    pub rt: &'a Arc<recoverite_rp_siterecovery::runtime::Runtime>,
    pub data_dir: &'a Path,
    pub as_caller: &'a recoverite_arm::first_party::AsCaller,
    pub objects: &'a Arc<dyn object_store::ObjectStore>,
    pub connectivity: &'a recoverite_rp_network::watcher::LateConnectivity,
}

/// Every crate that serves a provider, each by its manifest (its providers,
/// delete cascades and private link targets in one place). A namespace
/// served by several crates is served by the first listed at its root:
/// resources before deployments, vaults before Site Recovery and Backup,
/// the network before private DNS.
pub fn manifests(w: &Wiring) -> std::io::Result<Vec<Manifest>> {
    let Wiring {
        registry,
        blocks,
        engine,
        rt,
        data_dir,
        as_caller,
        objects,
        connectivity,
    } = *w;
    Ok(vec![
        recoverite_rp_resources::manifest(),
        recoverite_rp_deployments::manifest(as_caller),
        recoverite_rp_management::manifest(),
        recoverite_identity::manifest(),
        recoverite_rp_msi::manifest(),
        recoverite_rp_recoveryservices::manifest(),
        recoverite_rp_siterecovery::manifest(engine, registry, rt),
        recoverite_rp_backup::manifest(blocks, data_dir.join("backup"), as_caller)?,
        recoverite_rp_network::manifest(registry, connectivity),
        recoverite_rp_privatedns::manifest(),
        recoverite_rp_storage::manifest(recoverite_blob::Containers::new(
            objects.clone(),
            tokio::runtime::Handle::current(),
        )),
        privatelink_manifest(registry),
        recoverite_rp_compute::manifest(blocks),
    ])
}

/// The private link crate sits beneath the manifests (they name its
/// traits), so its part is declared here: the connections' clean-up, run
/// first, and the built-in test target.
fn privatelink_manifest(registry: &Arc<Registry>) -> Manifest {
    use recoverite_privatelink::test_target::{TestTarget, TestTargetProvider};
    Manifest::new("recoverite-privatelink")
        .provider(TestTargetProvider {
            registry: registry.clone(),
        })
        .private_link_target(TestTarget)
        .cascade(
            recoverite_manifest::Stage::PrivateLinkConnections,
            recoverite_privatelink::PrivateLinkCascade,
        )
}

pub struct Running {
    pub connection: Connection,
    pub connection_file: PathBuf,
    pub addr: SocketAddr,
    pub handle: axum_server::Handle,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    pub started_in: std::time::Duration,
    pub gateway: Arc<recoverite_gateway::Gateway>,
    pub background: Vec<tokio::task::JoinHandle<()>>,
    pub nbd: NbdEndpoints,
    /// The HTTP application the listener serves, for in-process callers
    /// (the fuzz targets send requests through it without TLS).
    pub app: axum::Router,
    pub resolver: Arc<recoverite_dns::Resolver>,
    /// The instance slot, held until the server stops.
    pub instance: recoverite_listen::instance::Claim,
}

impl Running {
    /// Stops every listener and waits for the HTTPS server to finish, which
    /// releases the data directory.
    pub async fn stop(self) {
        self.gateway.stop();
        for t in &self.background {
            t.abort();
        }
        self.handle.shutdown();
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.connection_file);
    }
}

fn platform_store(s: &AppState) -> Store {
    s.directory.store.clone()
}

/// `connection.json` holds the dev credentials: written 0600, atomically.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    recoverite_identity::tokens::write_private_file(path, bytes)
}

/// The data directory is the instance's alone: 0700, and its state file 0600.
fn lock_down(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let state = data_dir.join("state.redb");
    if state.exists() {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Opens (or initialises) the data directory and starts listening. Returns
/// once the listener accepts connections and `connection.json` is written.
pub async fn start(cfg: ServeConfig) -> Result<Running, ServeError> {
    let t0 = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .map_err(|e| ServeError::DataDir(cfg.data_dir.clone(), e.to_string()))?;
    }
    let data_dir = std::fs::canonicalize(&cfg.data_dir)
        .map_err(|e| ServeError::DataDir(cfg.data_dir.clone(), e.to_string()))?;
    lock_down(&data_dir).map_err(|e| ServeError::DataDir(data_dir.clone(), e.to_string()))?;
    let conn_path = data_dir.join("connection.json");
    clock::start(&data_dir, cfg.time_scale);
    let _ = std::fs::remove_file(&conn_path);

    let store = Store::open(&data_dir.join("state.redb")).map_err(|e| {
        ServeError::DataDir(
            data_dir.clone(),
            format!("{e} (is another recoverite using it?)"),
        )
    })?;
    lock_down(&data_dir).map_err(|e| ServeError::DataDir(data_dir.clone(), e.to_string()))?;
    // The instance's slot: where its gateway, IMDS and default ports listen,
    // so that instances run side by side.
    let instance = recoverite_listen::instance::claim(&data_dir)
        .map_err(|e| ServeError::DataDir(data_dir.clone(), format!("instance slot: {e}")))?;
    let port = cfg.port.unwrap_or(10443 + instance.slot);
    let dns_listen = cfg.dns_port.unwrap_or(10053 + instance.slot);
    let registry = Arc::new(Registry::default());
    let blocks = recoverite_blockstore::BlockStore::open(&data_dir)
        .map_err(|e| ServeError::DataDir(data_dir.clone(), e.to_string()))?;
    let engine = recoverite_replication::Engine::open(&data_dir, blocks.clone())
        .map_err(|e| ServeError::DataDir(data_dir.clone(), e.to_string()))?;
    let rt = Arc::new(recoverite_rp_siterecovery::runtime::Runtime::default());
    let as_caller = recoverite_arm::first_party::AsCaller::default();
    let objects = replication::object_store(&data_dir)
        .map_err(|e| ServeError::DataDir(data_dir.clone(), format!("blob store: {e}")))?;
    let connectivity = recoverite_rp_network::watcher::LateConnectivity::default();
    // Backup's vault tiers (providers() opens them).
    std::fs::create_dir_all(data_dir.join("backup"))
        .map_err(|e| ServeError::DataDir(data_dir.join("backup"), e.to_string()))?;
    let manifests = manifests(&Wiring {
        registry: &registry,
        blocks: &blocks,
        engine: &engine,
        rt: &rt,
        data_dir: &data_dir,
        as_caller: &as_caller,
        objects: &objects,
        connectivity: &connectivity,
    })
    .map_err(|e| ServeError::DataDir(data_dir.join("backup"), e.to_string()))?;
    let assembled = recoverite_manifest::assemble(manifests, &registry)?;
    let providers = assembled.providers.clone();
    let catalog: Vec<_> = providers.iter().map(|p| p.info()).collect();
    let boot = bootstrap::load_or_create(&store, &catalog)?;

    let (tls, files) = tls::server_config(&data_dir).map_err(ServeError::Tls)?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| ServeError::Listen(port, e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Listen(port, e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Listen(port, e.to_string()))?;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());

    let tokens = Arc::new(TokenService::start(
        data_dir.join("keys").join("token-signing.pem"),
        &endpoint,
        &boot.tenant_id,
    ));
    let directory = Arc::new(Directory::new(store.clone(), tokens.clone()));
    let events = Arc::new(TenantEvents {
        first_party: std::sync::OnceLock::new(),
        connection: std::sync::Mutex::new(None),
        store: std::sync::OnceLock::new(),
    });
    let _ = events.store.set(store.clone());
    let platform = Arc::new(Platform {
        store,
        env: Environment {
            tenant_id: boot.tenant_id.clone(),
            poll_after_secs: cfg.poll_after_secs,
        },
        authz: directory.clone(),
        cascades: assembled.cascade_list(),
        catalog,
        tenant_hooks: vec![events.clone()],
    });
    let resolver = Arc::new(recoverite_dns::Resolver::new(platform.store.clone()));
    let (dns_port, dns_tasks) = recoverite_dns::serve(resolver.clone(), dns_listen)
        .await
        .map_err(|e| ServeError::Listen(dns_listen, format!("DNS: {e}")))?;
    let exports = Arc::new(DiskExports {
        store: platform.store.clone(),
        blocks: blocks.clone(),
    });
    let nbd_socket = data_dir.join("nbd.sock");
    let nbd_unix_task = recoverite_blockstore::nbd::serve_unix(exports.clone(), &nbd_socket)
        .await
        .map_err(|e| ServeError::DataDir(nbd_socket.clone(), format!("NBD socket: {e}")))?;
    let (nbd_tcp, nbd_task) = match cfg.nbd_port {
        Some(p) => {
            let (port, task) = recoverite_blockstore::nbd::serve(exports, p)
                .await
                .map_err(|e| ServeError::Listen(p, format!("NBD: {e}")))?;
            (Some(format!("nbd://127.0.0.1:{port}")), Some(task))
        }
        None => (None, None),
    };
    let nbd = NbdEndpoints {
        tcp: nbd_tcp,
        socket: nbd_socket,
    };
    // IMDS: a second instance on this machine cannot have the address too;
    // it then runs without one rather than not at all.
    let imds_task = match imds::serve(directory.clone(), recoverite_gateway::real_port(80)).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("IMDS not served on {}: {e}", imds::IMDS_ALIAS);
            None
        }
    };
    let gateway = recoverite_gateway::Gateway::new(platform.store.clone(), registry.clone());
    gateway
        .keep_flow_log(&data_dir.join("flowlog.jsonl"))
        .map_err(|e| ServeError::DataDir(data_dir.join("flowlog.jsonl"), e.to_string()))?;
    gateway
        .start()
        .await
        .map_err(|e| ServeError::Listen(0, format!("gateway: {e}")))?;
    connectivity.set(Arc::new(connectivity::GatewayConnectivity {
        store: platform.store.clone(),
        resolver: resolver.clone(),
        gateway: gateway.clone(),
    }));
    let state_store = platform.store.clone();
    let router = Arc::new(Router::new(platform, providers));
    as_caller.set(Arc::downgrade(&router));
    let first_party = first_party::ensure(&router.platform().store)?;
    let _ = events.first_party.set(first_party.object_id.clone());
    rt.arm.set(Arc::new(first_party::Client {
        router: Arc::downgrade(&router),
        tokens: tokens.clone(),
        principal: first_party.clone(),
        base_url: endpoint.clone(),
    }));
    let _ = rt
        .dns
        .set(std::net::SocketAddr::from(([127, 0, 0, 1], dns_port)));
    let blob_secret = uuid::Uuid::new_v4().simple().to_string();
    let (blob_addr, blob_task) = recoverite_blob::serve(
        objects.clone(),
        Arc::new(replication::BlobAuth {
            store: router.platform().store.clone(),
            tokens: tokens.clone(),
            first_party: first_party.object_id.clone(),
        }),
        blob_secret.clone(),
    )
    .await
    .map_err(|e| ServeError::Listen(0, format!("blob service: {e}")))?;
    let file_recovery_task =
        file_recovery::start(router.platform().store.clone(), blocks.clone(), &gateway)
            .await
            .map_err(|e| ServeError::Listen(0, format!("file recovery: {e}")))?;
    let mars_task = mars::start(
        Arc::new(mars::Mars {
            store: router.platform().store.clone(),
            backup: recoverite_rp_backup::BackupProvider::new(
                blocks.clone(),
                data_dir.join("backup"),
                as_caller.clone(),
            )
            .map_err(|e| ServeError::DataDir(data_dir.join("backup"), e.to_string()))?,
            tokens: tokens.clone(),
            tenant_id: boot.tenant_id.clone(),
            authority: endpoint.clone(),
        }),
        &gateway,
    )
    .await
    .map_err(|e| ServeError::Listen(0, format!("MARS service: {e}")))?;
    // Microsoft Entra ID behind its service tag's public addresses: agents
    // sign in through the emulated network (document 001).
    gateway.register_service_backend(
        "AzureActiveDirectory",
        &["login.microsoftonline.com", "login.microsoft.com"],
        addr,
    );
    // Site Recovery monitoring: an event hub namespace per region behind
    // `EventHub.{region}` (document 002), served by the same HTTPS endpoint.
    let monitoring: Vec<String> = recoverite_arm::regions::REGIONS
        .iter()
        .map(|r| recoverite_agent::monitoring_host(r.geo_code))
        .collect();
    gateway.register_service_backend(
        "EventHub",
        &monitoring.iter().map(String::as_str).collect::<Vec<_>>(),
        addr,
    );
    let _ = rt.authz.set(directory.clone());
    match std::fs::read(&files.ca_cert)
        .map_err(|e| e.to_string())
        .and_then(|pem| recoverite_agent::client_config(&pem))
    {
        Ok(tls) => {
            let _ = rt.services.set((boot.tenant_id.clone(), tls));
        }
        Err(e) => tracing::warn!("agents cannot trust the emulator's TLS ({e}): Entra ID and monitoring egress are not checked"),
    }
    gateway.register_admitting_backend(
        recoverite_rp_storage::ACCOUNT_TYPE,
        blob_addr,
        &blob_secret,
    );
    let _ = rt.tokens.set(Arc::new(replication::AgentTokens {
        store: router.platform().store.clone(),
        tokens: tokens.clone(),
        first_party,
    }));
    let _ = rt.cache.set(Arc::new(replication::BlobCache {
        store: objects.clone(),
        handle: tokio::runtime::Handle::current(),
    }));
    let _ = rt
        .explain
        .set(Arc::new(replication::GatewayExplain(gateway.clone())));
    let state = Arc::new(AppState {
        nbd: nbd.clone(),
        router,
        registry: registry.clone(),
        gateway: gateway.clone(),
        resolver,
        directory,
        tokens,
        bootstrap: boot.clone(),
        arm_endpoint: endpoint.clone(),
        engine: engine.clone(),
        rt: rt.clone(),
        blocks: blocks.clone(),
    });
    // Change journals: what every consumer read past is freed, once a minute.
    let journals = {
        let (store, blocks, engine) = (platform_store(&state), blocks.clone(), engine.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                let (s, b, e) = (store.clone(), blocks.clone(), engine.clone());
                if let Ok(Err(err)) =
                    tokio::task::spawn_blocking(move || journals::release(&s, &b, &e)).await
                {
                    tracing::warn!("releasing change journals: {}", err.body.message);
                }
            }
        })
    };
    // Azure Backup on the emulator clock: scheduled backups, pruning.
    let backup = {
        let bp = recoverite_rp_backup::BackupProvider::new(
            blocks.clone(),
            data_dir.join("backup"),
            as_caller.clone(),
        )
        .map_err(|e| ServeError::DataDir(data_dir.join("backup"), e.to_string()))?;
        let store = platform_store(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let (s, b) = (store.clone(), bp.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    recoverite_rp_backup::schedule::tick(&s, &b)
                })
                .await;
            }
        })
    };
    // Bytes of deleted scopes (disk images, blobs) freed after their commit.
    let sweeper = {
        let store = platform_store(&state);
        let blocks = blocks.clone();
        let blobs =
            recoverite_blob::Containers::new(objects.clone(), tokio::runtime::Handle::current());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let (s, b, c) = (store.clone(), blocks.clone(), blobs.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = recoverite_rp_compute::images::sweep(&s, &b) {
                        tracing::warn!("freeing disk images: {e}");
                    }
                    if let Err(e) = recoverite_rp_storage::containers::sweep(&s, &c) {
                        tracing::warn!("purging deleted accounts' blobs: {e}");
                    }
                })
                .await;
            }
        })
    };
    let replication = replication::spawn(
        data_dir.clone(),
        platform_store(&state),
        engine.clone(),
        rt.clone(),
        cfg.recovery_point_secs,
    );

    let app = axum::Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(entra::openid_configuration),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(entra::openid_configuration_v1),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(entra::keys))
        .route("/{tenant}/discovery/keys", get(entra::keys))
        // Token requests are small forms sent before any authentication:
        // they get a small body limit (the ARM surface checks its own 4 MiB).
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(entra::token_v2).layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .route(
            "/{tenant}/oauth2/token",
            post(entra::token_v1).layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .route("/common/discovery/instance", get(entra::instance_discovery))
        .route("/metadata/endpoints", get(admin::cloud_metadata))
        .route("/recoverite/principals", post(admin::create_principal))
        .route(
            "/recoverite/providers/{namespace}/registration",
            axum::routing::put(admin::set_registration_date),
        )
        .route(
            "/recoverite/vaults/replication-pair",
            post(admin::replication_pair),
        )
        .route("/recoverite/nbd", get(admin::nbd_info))
        .route(
            "/recoverite/disks/{token}",
            get(disk_access::download).head(disk_access::download),
        )
        .route("/recoverite/clock", get(clock::get_clock))
        .route("/recoverite/agents/placement", get(agents::placement))
        .route("/recoverite/agents/report", post(agents::report))
        .route("/recoverite/clock/advance", post(clock::advance))
        .route(
            "/recoverite/replication/points",
            post(admin::take_recovery_point),
        )
        .route("/recoverite/network/aliases", get(netadmin::aliases))
        .route("/recoverite/network/resolve", get(netadmin::resolve))
        .route("/recoverite/network/hosts", get(netadmin::hosts))
        .route("/recoverite/network/flowlog", get(netadmin::flow_log))
        .route("/recoverite/network/check", get(netadmin::check_flow))
        .route("/recoverite/doctor", get(doctor::http))
        .route("/recoverite/drills", get(netadmin::drills))
        .route(
            "/v1.0/{*path}",
            axum::routing::any(graph::handle).layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .route(
            &format!("/{}/messages", recoverite_agent::MONITORING_HUB),
            post(agents::monitoring_message).layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT)),
        )
        .fallback(arm_http::handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());

    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .handle(handle.clone())
    .serve(app.clone().into_make_service());
    let server = tokio::spawn(server);

    let connection = Connection {
        arm_endpoint: endpoint.clone(),
        authority: endpoint,
        tenant_id: boot.tenant_id.clone(),
        subscription_id: boot.subscription_id.clone(),
        client_id: boot.client_id.clone(),
        client_secret: boot.client_secret.clone(),
        ca_cert_file: files.ca_cert.display().to_string(),
        dns_server: format!("127.0.0.1:{dns_port}"),
        subscriptions: subscription_entries(&state_store),
        instance_slot: instance.slot,
    };
    let json = serde_json::to_vec_pretty(&connection).expect("connection serialises");
    write_atomically(&conn_path, &json)
        .map_err(|e| ServeError::DataDir(data_dir.clone(), e.to_string()))?;
    if let Ok(mut g) = events.connection.lock() {
        *g = Some((conn_path.clone(), connection.clone()));
    }
    Ok(Running {
        connection,
        connection_file: conn_path,
        addr,
        handle,
        server,
        started_in: t0.elapsed(),
        gateway,
        background: dns_tasks
            .into_iter()
            .chain([
                nbd_unix_task,
                replication,
                blob_task,
                backup,
                sweeper,
                file_recovery_task,
                mars_task,
                journals,
            ])
            .chain(nbd_task)
            .chain(imds_task)
            .collect(),
        nbd: nbd.clone(),
        app,
        resolver: state.resolver.clone(),
        instance,
    })
}

pub fn banner(r: &Running) -> String {
    let c = &r.connection;
    format!(
        "recoverite is running (ready in {} ms)\n\
         \n  ARM endpoint     {}\n  Authority        {}\n  Tenant           {}\n  Subscription     {}\n  Client id        {}\n  Client secret    {}\n  CA certificate   {}\n  DNS server       {}\n\
         \n  NBD (disks)      {}\n\
         \n  Connection file  {}\n\
         \nPoint the Azure SDK at it: base_url=<ARM endpoint>, authority=<Authority>, connection_verify=<CA certificate>.\n",
        r.started_in.as_millis(),
        c.arm_endpoint,
        c.authority,
        c.tenant_id,
        c.subscription_id,
        c.client_id,
        c.client_secret,
        c.ca_cert_file,
        c.dns_server,
        match &r.nbd.tcp {
            Some(tcp) => format!("{tcp}/RESOURCE_GROUP/DISK and {}", r.nbd.unix_uri("RESOURCE_GROUP/DISK")),
            None => r.nbd.unix_uri("RESOURCE_GROUP/DISK"),
        },
        r.connection_file.display()
    )
}

use recoverite_rp_compute::disks::{Disk, DISK_TYPE};

/// Managed disks as NBD exports: `{resourceGroup}/{disk}`, case-insensitive.
struct DiskExports {
    store: Store,
    blocks: recoverite_blockstore::BlockStore,
}

impl DiskExports {
    fn disks(&self) -> Vec<Disk> {
        self.store
            .view(|r| recoverite_rp_compute::managed_disk::list(r, "", DISK_TYPE))
            .unwrap_or_else(|e| {
                tracing::warn!("could not list disks for NBD: {}", e.body.message);
                Vec::new()
            })
    }

    fn name_of(d: &Disk) -> String {
        let rg = recoverite_arm::id::parse_id(&d.id)
            .and_then(|p| p.resource_group)
            .unwrap_or_default();
        format!("{rg}/{}", d.name)
    }
}

impl recoverite_blockstore::nbd::Exports for DiskExports {
    /// `{resourceGroup}/{disk}`, or `{subscription}/{resourceGroup}/{disk}`
    /// where two subscriptions hold groups and disks of the same names.
    fn find(&self, name: &str) -> Option<recoverite_blockstore::nbd::Export> {
        let want = name.trim_start_matches('/').to_ascii_lowercase();
        let qualified = |d: &Disk| {
            let sub = recoverite_arm::id::parse_id(&d.id)
                .and_then(|p| p.subscription)
                .unwrap_or_default();
            format!("{sub}/{}", Self::name_of(d)).to_ascii_lowercase()
        };
        self.disks()
            .into_iter()
            .find(|d| Self::name_of(d).to_ascii_lowercase() == want || qualified(d) == want)
            .map(|d| {
                let unique = &d.properties.unique_id;
                recoverite_blockstore::nbd::Export {
                    name: Self::name_of(&d),
                    image: self.blocks.image(unique),
                    journal: self.blocks.journal(unique),
                    size: d.properties.disk_size_bytes,
                    read_only: false,
                }
            })
    }

    fn list(&self) -> Vec<String> {
        self.disks().iter().map(Self::name_of).collect()
    }
}
