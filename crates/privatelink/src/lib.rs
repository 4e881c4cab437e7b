//! Private link, as one interface.
//!
//! A *target* (a Recovery Services vault, a storage account, the built-in test
//! target) implements [`PrivateLinkTarget`]: its group ids, the members (one
//! IP configuration and FQDN each) a connection gets, its rules, and who may
//! approve. The *host* of endpoints (the network provider) implements
//! [`EndpointHost`], so a target can add FQDNs to its existing endpoints
//! later (Site Recovery adds two when replication is first enabled).
//! Connections live here, shared by both sides.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{id, ArmError, Caller};
use recoverite_store::{Reader, Table, WriteTx};

pub const CONNECTIONS: Table = Table("private_link_connections");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupInfo {
    pub group_id: String,
    pub required_members: Vec<String>,
    pub required_zone_names: Vec<String>,
}

/// One IP configuration of an endpoint: the member it serves and its FQDN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub member_name: String,
    pub fqdn: String,
}

/// A static IP the endpoint's creator asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StaticIp {
    pub name: String,
    pub group_id: String,
    pub member_name: String,
    pub ip: String,
}

/// What the endpoint being created asks of a target.
#[derive(Debug, Clone)]
pub struct ConnectionRequest {
    pub endpoint_id: String,
    pub endpoint_name: String,
    pub endpoint_location: String,
    pub subnet_id: String,
    pub group_ids: Vec<String>,
    /// `manualPrivateLinkServiceConnections`: always waits for approval.
    pub manual: bool,
    pub static_ips: Vec<StaticIp>,
    /// Free addresses left in the endpoint's subnet.
    pub free_ips: u64,
    pub request_message: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Disconnected,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            "disconnected" => Status::Disconnected,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Approved => "Approved",
            Status::Rejected => "Rejected",
            Status::Disconnected => "Disconnected",
        }
    }
}

/// A connection between an endpoint and a target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connection {
    /// Connection name on the target side (`{pe}.{guid}` style).
    pub name: String,
    pub target_id: String,
    pub endpoint_id: String,
    pub group_ids: Vec<String>,
    pub status: Status,
    pub description: String,
    pub actions_required: String,
    pub request_message: Option<String>,
    /// The name of the connection entry on the endpoint side.
    pub endpoint_connection_name: String,
    pub manual: bool,
    /// The endpoint was created with static addresses (`ipConfigurations`),
    /// which cannot be expanded when the target needs more members later.
    /// Records written before this was kept read as dynamic.
    #[serde(default)]
    pub static_ips: bool,
}

impl Connection {
    /// The connection's id under its target.
    pub fn id(&self) -> String {
        format!(
            "{}/privateEndpointConnections/{}",
            self.target_id, self.name
        )
    }

    /// `privateLinkServiceConnectionState` with the given spelling of the
    /// "actions required" key (`actionsRequired`, or storage's `actionRequired`).
    pub fn state_json(&self, actions_key: &str) -> Value {
        json!({"status": self.status.as_str(), "description": self.description, actions_key: self.actions_required})
    }

    pub fn carries_traffic(&self) -> bool {
        self.status == Status::Approved
    }
}

fn key(target_id: &str, endpoint_id: &str) -> String {
    format!("{}|{}", id::key(target_id), id::key(endpoint_id))
}

pub fn save(tx: &mut WriteTx, c: &Connection) -> Result<(), ArmError> {
    tx.put_json(CONNECTIONS, &key(&c.target_id, &c.endpoint_id), c)?;
    Ok(())
}

pub fn remove(tx: &mut WriteTx, target_id: &str, endpoint_id: &str) -> Result<(), ArmError> {
    tx.delete(CONNECTIONS, &key(target_id, endpoint_id))?;
    Ok(())
}

/// Every connection of a target.
pub fn of_target(r: &impl Reader, target_id: &str) -> Result<Vec<Connection>, ArmError> {
    Ok(
        r.scan_json::<Connection>(CONNECTIONS, &format!("{}|", id::key(target_id)))?
            .into_iter()
            .map(|(_, c)| c)
            .collect(),
    )
}

/// The connections an endpoint holds (normally one).
pub fn of_endpoint(r: &impl Reader, endpoint_id: &str) -> Result<Vec<Connection>, ArmError> {
    let ek = id::key(endpoint_id);
    Ok(r.scan_json::<Connection>(CONNECTIONS, "")?
        .into_iter()
        .filter(|(k, _)| k.split_once('|').is_some_and(|(_, e)| e == ek))
        .map(|(_, c)| c)
        .collect())
}

pub fn by_name(
    r: &impl Reader,
    target_id: &str,
    name: &str,
) -> Result<Option<Connection>, ArmError> {
    Ok(of_target(r, target_id)?
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name)))
}

/// Drops connections whose target or endpoint lived inside a deleted scope;
/// connections to a deleted target become Disconnected on the endpoint side.
pub fn scope_deleted(tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
    for (k, mut c) in tx.scan_json::<Connection>(CONNECTIONS, "")? {
        if id::scope_contains(scope, &c.endpoint_id) {
            tx.delete(CONNECTIONS, &k)?;
        } else if id::scope_contains(scope, &c.target_id) {
            c.status = Status::Disconnected;
            c.description = "The private link target was deleted.".into();
            tx.put_json(CONNECTIONS, &k, &c)?;
        }
    }
    Ok(())
}

/// What a private link target provides.
pub trait PrivateLinkTarget: Send + Sync {
    /// ARM type, e.g. `Microsoft.RecoveryServices/vaults`.
    fn resource_type(&self) -> &'static str;

    fn groups(&self, r: &dyn ReaderDyn, target: &Value) -> Result<Vec<GroupInfo>, ArmError>;

    /// Refuses a connection the target's rules do not allow.
    fn validate(
        &self,
        r: &dyn ReaderDyn,
        target: &Value,
        req: &ConnectionRequest,
    ) -> Result<(), ArmError>;

    /// The members (IP configurations and FQDNs) a new connection gets for a group.
    fn members(
        &self,
        r: &dyn ReaderDyn,
        target: &Value,
        group_id: &str,
        req: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError>;

    /// The action whose holder gets connections approved automatically.
    fn approval_action(&self) -> String;

    /// Whether the target accepts connections that do not come through an approved endpoint.
    fn public_network_access(&self, target: &Value) -> bool;

    /// Whether a connection that does not come through an approved endpoint
    /// is admitted from `source_subnet` (None: outside any network); the
    /// error says why not. Targets with a firewall refine this.
    fn admits(&self, target: &Value, source_subnet: Option<&str>) -> Result<(), String> {
        let _ = source_subnet;
        if self.public_network_access(target) {
            Ok(())
        } else {
            Err(format!(
                "{} has public network access disabled: it accepts connections only through its approved private endpoints",
                target["id"].as_str().unwrap_or_default()
            ))
        }
    }

    /// Called in the endpoint's transaction once a connection is made or removed.
    fn connections_changed(&self, tx: &mut WriteTx, target_id: &str) -> Result<(), ArmError> {
        let _ = (tx, target_id);
        Ok(())
    }

    /// Public names the target's service shares among all its instances
    /// (Backup's `{svc}.{geo}.backup.windowsazure.com`): a client names the
    /// instance in its first line (`vault <id>`), and the instance's public
    /// network access decides.
    fn shared_public_names(&self, r: &dyn ReaderDyn, target: &Value) -> Vec<String> {
        let _ = (r, target);
        Vec::new()
    }

    /// The spelling of "actions required" in this target's connection state.
    fn actions_key(&self) -> &'static str {
        "actionsRequired"
    }
}

/// `Reader` as a trait object, so targets can be called with any transaction.
pub trait ReaderDyn {
    fn get_value(&self, id: &str) -> Result<Option<Value>, ArmError>;
    fn connections(&self, target_id: &str) -> Result<Vec<Connection>, ArmError>;
    /// A provider's own record (outside the resources table).
    fn record(&self, table: Table, key: &str) -> Result<Option<Value>, ArmError>;
    fn registration(
        &self,
        subscription: &str,
        namespace: &str,
    ) -> Result<Option<recoverite_arm::registration::Registration>, ArmError>;
}

impl<R: Reader> ReaderDyn for R {
    fn get_value(&self, id: &str) -> Result<Option<Value>, ArmError> {
        recoverite_arm::resource::get(self, id)
    }
    fn connections(&self, target_id: &str) -> Result<Vec<Connection>, ArmError> {
        of_target(self, target_id)
    }
    fn record(&self, table: Table, key: &str) -> Result<Option<Value>, ArmError> {
        Ok(self.get_json(table, key)?)
    }
    fn registration(
        &self,
        subscription: &str,
        namespace: &str,
    ) -> Result<Option<recoverite_arm::registration::Registration>, ArmError> {
        recoverite_arm::registration::get(self, subscription, namespace)
    }
}

/// What hosts endpoints (the network provider).
pub trait EndpointHost: Send + Sync {
    /// Adds members to every endpoint connected to `target_id` for `group_id`,
    /// allocating addresses in each endpoint's subnet and updating DNS zone
    /// groups; fails whole if any subnet lacks the addresses.
    fn add_members(
        &self,
        tx: &mut WriteTx,
        target_id: &str,
        group_id: &str,
        members: &[Member],
    ) -> Result<(), ArmError>;
}

/// Targets and the endpoint host, wired together when the server starts:
/// the providers are built holding the registry, and the targets the
/// crates' manifests declare are installed once, before the first request.
#[derive(Default)]
pub struct Registry {
    targets: OnceLock<Vec<Arc<dyn PrivateLinkTarget>>>,
    host: OnceLock<Arc<dyn EndpointHost>>,
}

impl Registry {
    pub fn new(targets: Vec<Arc<dyn PrivateLinkTarget>>) -> Registry {
        let r = Registry::default();
        r.install(targets);
        r
    }

    /// Installs the targets; the first installation stands.
    pub fn install(&self, targets: Vec<Arc<dyn PrivateLinkTarget>>) {
        let _ = self.targets.set(targets);
    }

    fn targets(&self) -> &[Arc<dyn PrivateLinkTarget>] {
        self.targets.get().map(Vec::as_slice).unwrap_or_default()
    }

    pub fn target_for(&self, resource_type: &str) -> Option<&Arc<dyn PrivateLinkTarget>> {
        self.targets()
            .iter()
            .find(|t| t.resource_type().eq_ignore_ascii_case(resource_type))
    }

    /// Every target's resource type.
    pub fn resource_types(&self) -> Vec<&'static str> {
        self.targets().iter().map(|t| t.resource_type()).collect()
    }

    pub fn set_host(&self, host: Arc<dyn EndpointHost>) {
        let _ = self.host.set(host);
    }

    pub fn host(&self) -> Result<&Arc<dyn EndpointHost>, ArmError> {
        self.host
            .get()
            .ok_or_else(|| ArmError::internal("no private endpoint host is installed"))
    }
}

/// Whether `caller` may approve connections of a target (by the target's approval action).
pub fn may_approve(
    authz: &dyn recoverite_arm::Authorizer,
    caller: &Caller,
    target: &dyn PrivateLinkTarget,
    target_id: &str,
) -> Result<bool, ArmError> {
    authz.is_allowed(caller, &target.approval_action(), target_id)
}

pub mod test_target;

/// Keeps connections consistent when scopes are deleted.
pub struct PrivateLinkCascade;

impl recoverite_arm::ScopeCascade for PrivateLinkCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        scope_deleted(tx, scope)
    }
}

/// Storage accounts accept private endpoints only as General Purpose v2
/// (`kind: StorageV2`), documents 000 and 001. The storage provider calls
/// this from its target's `validate`.
pub fn require_general_purpose_v2(kind: &str, account: &str) -> Result<(), ArmError> {
    if kind.eq_ignore_ascii_case("StorageV2") {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "PrivateEndpointRequiresGeneralPurposeV2",
            format!("Private endpoints can be created only on General Purpose v2 storage accounts; {account} is of kind {kind}. Upgrade it to StorageV2 or use another account."),
        ))
    }
}

/// GET / PUT (approve or reject; not an LRO) / DELETE of one connection of
/// `target_id`, named by the request's last segment — the same for every
/// target; `to_json` renders the connection in the target's own shape.
pub fn connection_api(
    ctx: &recoverite_arm::Ctx,
    req: &recoverite_arm::ArmRequest,
    target_id: &str,
    m: http::Method,
    to_json: fn(&Connection) -> Value,
) -> Result<recoverite_arm::Reply, ArmError> {
    use recoverite_arm::Reply;
    let tid = target_id.to_string();
    let name = req.resource_name().to_string();
    let not_found = || {
        ArmError::new(
            404,
            "PrivateEndpointConnectionNotFound",
            format!("Private endpoint connection {name} was not found on {tid}."),
        )
    };
    match m {
        http::Method::GET => ctx
            .store()
            .view(|r| by_name(r, &tid, &name))?
            .map(|c| Reply::ok(to_json(&c)))
            .ok_or_else(not_found),
        http::Method::PUT => {
            let body = req.body.clone().unwrap_or(json!({}));
            let decision = requested_decision(&body)?;
            ctx.store().write(|tx| {
                let mut c = by_name(tx, &tid, &name)?.ok_or_else(not_found)?;
                decision.apply(&mut c)?;
                save(tx, &c)?;
                Ok(Reply::ok(to_json(&c)))
            })
        }
        http::Method::DELETE => ctx.store().write(|tx| {
            let Some(mut c) = by_name(tx, &tid, &name)? else {
                return Ok(Reply::empty(204));
            };
            // The endpoint stays; its connection becomes Disconnected.
            c.status = Status::Disconnected;
            c.description = "The connection was removed by the target's owner.".into();
            save(tx, &c)?;
            Ok(Reply::empty(200))
        }),
        other => Err(ArmError::method_not_allowed(other.as_str())),
    }
}

/// The target owner's decision on a connection, from a PUT body's
/// `properties.privateLinkServiceConnectionState`.
pub struct Decision {
    pub status: Status,
    pub description: String,
}

pub fn requested_decision(body: &Value) -> Result<Decision, ArmError> {
    let state = &body["properties"]["privateLinkServiceConnectionState"];
    let status = state["status"]
        .as_str()
        .and_then(Status::parse)
        .filter(|s| *s != Status::Disconnected)
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.privateLinkServiceConnectionState.status",
                "status must be Approved, Rejected or Pending.",
            )
        })?;
    Ok(Decision {
        status,
        description: state["description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

impl Decision {
    /// Applies the decision; a rejected connection is never approved again.
    pub fn apply(&self, c: &mut Connection) -> Result<(), ArmError> {
        if c.status == Status::Rejected && self.status == Status::Approved {
            return Err(ArmError::bad_request(
                "CannotApproveRejectedPrivateEndpointConnection",
                "A rejected private endpoint connection cannot be approved; delete the private endpoint and create a new one.",
            ));
        }
        c.status = self.status;
        c.description = self.description.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_private_endpoints_need_gpv2() {
        assert!(super::require_general_purpose_v2("StorageV2", "a").is_ok());
        for k in ["Storage", "BlobStorage", "BlockBlobStorage", "FileStorage"] {
            assert_eq!(
                super::require_general_purpose_v2(k, "a")
                    .unwrap_err()
                    .code(),
                "PrivateEndpointRequiresGeneralPurposeV2"
            );
        }
    }
}
