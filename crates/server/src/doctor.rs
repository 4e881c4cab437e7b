//! `recoverite doctor` (`GET /recoverite/doctor?vm=ID[&vault=ID][&scenario=sr|backup|both]`):
//! walks the hops a VM's agents need, from the VM's network position, and
//! says for each whether it passes, the evidence, and the fix — the
//! private endpoints' approval, each service name's resolution (privately,
//! through the zone the documents require), the network's decision for
//! each connection, Microsoft Entra ID egress, the vault's public network
//! access, and for a replicating VM its cache storage account.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use recoverite_arm::{resource, ArmError, Authorizer};
use recoverite_privatelink::{self as pl, Status};
use recoverite_rp_network::private_endpoint;
use recoverite_rp_network::watcher::{Connectivity, Probe};

use crate::connectivity::GatewayConnectivity;
use crate::AppState;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    /// `pass`, `fail` or `warn`.
    pub status: &'static str,
    pub evidence: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    SiteRecovery,
    Backup,
    /// The MARS agent on the VM (document 001): Backup's endpoints, the
    /// machine's registration, the public URL it falls back to.
    Mars,
    Both,
}

impl Scenario {
    pub fn parse(s: Option<&str>) -> Result<Scenario, ArmError> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("both") => Ok(Scenario::Both),
            Some("sr") | Some("siterecovery") => Ok(Scenario::SiteRecovery),
            Some("backup") => Ok(Scenario::Backup),
            Some("mars") | Some("mab") => Ok(Scenario::Mars),
            Some(o) => Err(ArmError::invalid_parameter(
                "scenario",
                format!("scenario '{o}': use sr, backup, mars or both."),
            )),
        }
    }
    fn wants(self, group: &str) -> bool {
        match self {
            Scenario::Both => true,
            Scenario::SiteRecovery => group == "AzureSiteRecovery",
            Scenario::Backup | Scenario::Mars => group.starts_with("AzureBackup"),
        }
    }
}

fn pass(check: String, evidence: String) -> Check {
    Check {
        check,
        status: "pass",
        evidence,
        fix: String::new(),
    }
}

fn fail(check: String, evidence: String, fix: String) -> Check {
    Check {
        check,
        status: "fail",
        evidence,
        fix,
    }
}

pub use recoverite_rp_siterecovery::health::zone_of;

/// One connection's verdict as a check: where the name went and what the
/// network decided; a private name answered publicly is DNS's fault.
fn connection_check(what: &str, name: &str, p: &Probe, expect_private: bool, vnet: &str) -> Check {
    let title = format!("{what}: {name}:443");
    let at = p.destination_address.clone().unwrap_or_default();
    if p.dns_failed {
        return fail(
            title,
            format!("{name} does not resolve from the VM's network"),
            format!(
                "add the record, or link the zone {} to {vnet}",
                zone_of(name)
            ),
        );
    }
    let private = at.starts_with("10.") || at.starts_with("172.") || at.starts_with("192.168.");
    if expect_private && !private {
        return fail(
            title,
            format!("{name} resolved publicly ({at}), not to its private endpoint: the private DNS zone is not linked to the VM's network"),
            format!("az network private-dns link vnet create -g <zone group> -z {} -n link-vm-network -v {vnet} -e false", zone_of(name)),
        );
    }
    if p.allowed {
        pass(
            title,
            format!("resolves to {at}; the network allows it ({})", p.reason),
        )
    } else {
        fail(
            title,
            format!("resolves to {at}; refused: {}", p.reason),
            "allow outbound TCP 443 to it in the named security group or route (document 002 lists the service tags)".into(),
        )
    }
}

/// Runs every check for `vm` (and `vault`).
pub fn run(
    s: &Arc<AppState>,
    vm: &str,
    vault: Option<&str>,
    scenario: Scenario,
) -> Result<Vec<Check>, ArmError> {
    let store = s.directory.store.clone();
    let probe = GatewayConnectivity {
        store: store.clone(),
        resolver: s.resolver.clone(),
        gateway: s.gateway.clone(),
    };
    let mut out = Vec::new();
    let position = store.view(|r| {
        let cfg = recoverite_rp_compute::view::primary_ipconfig(r, vm)?;
        Ok::<_, ArmError>(match cfg {
            Some(c) => recoverite_rp_network::aliases::of_owner(r, &c.id)?,
            None => None,
        })
    })?;
    let Some(alias) = position else {
        out.push(fail(
            "VM network position".into(),
            format!("'{vm}' is not a VM with a network interface in a virtual network"),
            "create the VM with a NIC in a subnet".into(),
        ));
        return Ok(out);
    };
    let vnet = alias.vnet_id.clone();
    out.push(pass(
        "VM network position".into(),
        format!(
            "{} in {}",
            alias.private_ip.map(|i| i.to_string()).unwrap_or_default(),
            vnet
        ),
    ));

    // Microsoft Entra ID has no private endpoint (documents 000–002).
    let entra = probe.probe(vm, "login.microsoftonline.com", 443)?;
    out.push(connection_check(
        "Microsoft Entra ID",
        "login.microsoftonline.com",
        &entra,
        false,
        &vnet,
    ));

    // Site Recovery monitoring goes to an event hub in the target region
    // (document 002: EventHub.{target region}); refused, it is a warning.
    // The replicating item whose agent runs on the VM, if any.
    let replicating = recoverite_rp_siterecovery::runtime::item_of_vm(&store, vm)?;
    if matches!(scenario, Scenario::SiteRecovery | Scenario::Both) {
        let target = match &replicating {
            Some(item) => Some(item.target_location(item.side()).to_string()),
            None => match vault {
                Some(v) => store
                    .view(|r| recoverite_rs_core::vault_record::load(r, v))?
                    .map(|v| v.location),
                None => None,
            },
        };
        if let Some(region) = target {
            let host = recoverite_agent::monitoring_host(
                &recoverite_rp_recoveryservices::target::geo(&region),
            );
            let p = probe.probe(vm, &host, 443)?;
            let mut c = connection_check("Site Recovery monitoring", &host, &p, false, &vnet);
            if c.status == "fail" {
                c.status = "warn";
                c.fix = format!("allow outbound TCP 443 to the EventHub.{region} service tag (document 002); replication works without it, its health is not reported");
            }
            out.push(c);
        }
    }

    // Document 003: "Using an authenticated proxy to control network
    // connectivity isn't supported by Site Recovery".
    if let Some(proxy) = store.view(|r| {
        Ok::<_, ArmError>(
            resource::get(r, vm)?
                .and_then(|v| v["tags"]["recoverite-proxy"].as_str().map(str::to_string)),
        )
    })? {
        out.push(
            match recoverite_agent::refuse_authenticating_proxy(Some(&proxy)) {
                Ok(()) => pass(
                    "proxy".into(),
                    format!("{proxy}: unauthenticated, which Site Recovery supports"),
                ),
                Err(b) => fail(
                    "proxy".into(),
                    b.reason,
                    "use an unauthenticated proxy, or let the VM reach the service tags directly"
                        .into(),
                ),
            },
        );
    }

    if let Some(vault_id) = vault {
        let (doc, conns) = store.view(|r| {
            let doc = resource::get(r, vault_id)?.ok_or_else(|| {
                ArmError::invalid_parameter("vault", format!("'{vault_id}' is not a vault"))
            })?;
            let mut conns = Vec::new();
            for c in pl::of_target(r, vault_id)? {
                let pe = recoverite_rp_network::endpoint::load(r, &c.endpoint_id)?;
                let members = match &pe {
                    Some(pe) => private_endpoint::members_of(r, pe)?,
                    None => Vec::new(),
                };
                conns.push((c, members));
            }
            Ok::<_, ArmError>((doc, conns))
        })?;
        let public_access = doc["properties"]["publicNetworkAccess"].as_str() != Some("Disabled");
        let mut wanted = 0;
        for (c, members) in &conns {
            let group = c.group_ids.first().cloned().unwrap_or_default();
            if !scenario.wants(&group) {
                continue;
            }
            wanted += 1;
            let pe_name = c.endpoint_id.rsplit('/').next().unwrap_or_default();
            if c.status != Status::Approved {
                out.push(fail(
                    format!("private endpoint {pe_name} ({group})"),
                    format!(
                        "the connection is {}: no traffic flows through it",
                        c.status.as_str()
                    ),
                    format!(
                        "az network private-endpoint-connection approve --id {}",
                        c.id()
                    ),
                ));
                continue;
            }
            out.push(pass(
                format!("private endpoint {pe_name} ({group})"),
                "Approved".into(),
            ));
            if group == "AzureSiteRecovery" && replicating.is_none() {
                if let Some(c) = free_ip_check(&store, &c.endpoint_id, pe_name)? {
                    out.push(c);
                }
            }
            // Secondary-region endpoints serve cross-region restore, not this VM's region.
            if group == "AzureBackup_secondary" {
                continue;
            }
            for m in members {
                for fqdn in &m.fqdns {
                    let p = probe.probe(vm, fqdn, 443)?;
                    out.push(connection_check(&group, fqdn, &p, true, &vnet));
                }
            }
        }
        if scenario == Scenario::Mars {
            out.extend(mars_checks(
                &store,
                vm,
                vault_id,
                public_access,
                wanted > 0,
            )?);
        }
        if wanted == 0 {
            out.push(if public_access {
                Check {
                    check: "vault endpoints".into(),
                    status: "warn",
                    evidence: "the vault has no private endpoint for this scenario: agents use its public URLs, which its public network access allows".into(),
                    fix: "create private endpoints before protecting items (documents 000, 001)".into(),
                }
            } else {
                fail(
                    "vault endpoints".into(),
                    "the vault has no private endpoint for this scenario and denies public network access: nothing can reach it".into(),
                    "create a private endpoint for the vault, or enable public network access".into(),
                )
            });
        }
    }

    // A replicating VM's agent writes to its cache storage account.
    if matches!(scenario, Scenario::SiteRecovery | Scenario::Both) {
        if let Some(item) = &replicating {
            let placement = store.view(|r| {
                Ok::<_, ArmError>(
                    recoverite_rp_siterecovery::runtime::placement(r, &s.rt, item).ok(),
                )
            })?;
            if let Some(p) = placement {
                let cache = probe.probe(vm, &p.cache_host, 443)?;
                let linked_private = cache
                    .destination_address
                    .as_deref()
                    .is_some_and(|a| a.starts_with("10."));
                out.push(connection_check(
                    "cache storage",
                    &p.cache_host,
                    &cache,
                    linked_private,
                    &vnet,
                ));
            }
            // Document 000: the account's region, its firewall's trusted
            // services, and (with private endpoints) the vault identity's roles.
            let cache_id = item
                .cache_account_id(recoverite_rp_siterecovery::item::Side::Primary)
                .to_string();
            let verdict = store.view(|r| {
                let Some(acct) = recoverite_rp_storage::account::load(r, &cache_id)? else {
                    return Ok::<_, ArmError>(None);
                };
                let vid = item.vault_id().to_string();
                let vault = recoverite_rs_core::vault_record::load(r, &vid)?;
                let private = pl::of_target(r, &vid)?
                    .iter()
                    .any(|c| c.group_ids.iter().any(|g| g == "AzureSiteRecovery"));
                let region = recoverite_rp_compute::view::vm(r, vm)?
                    .map(|v| v.location)
                    .unwrap_or_default();
                let res = recoverite_rp_storage::cache::check_for_replication(
                    r,
                    &*s.directory,
                    &acct,
                    &region,
                    Some(&vnet),
                    private.then_some(vault.as_ref().and_then(|v| v.principal_id())),
                );
                Ok(Some((acct.name.clone(), res)))
            })?;
            match verdict {
                Some((name, Ok(()))) => out.push(pass(
                    format!("cache storage account {name}"),
                    "in the source region; reachable by Site Recovery (trusted services / network rules); the vault identity holds the roles it needs".into(),
                )),
                Some((name, Err(e))) => out.push(fail(
                    format!("cache storage account {name}"),
                    format!("{}: {}", e.body.code, e.body.message),
                    e.body.message.clone(),
                )),
                None => out.push(fail(
                    "cache storage account".into(),
                    format!("'{cache_id}' does not exist any more"),
                    "create the account in the source region, or re-enable replication with another".into(),
                )),
            }
        }
    }
    // Name the group that holds each zone to link, when there is one: the
    // zone of that name holding the endpoint's record first (another group
    // may have a zone of the same name for other endpoints).
    let zones = store.view(recoverite_rp_privatedns::view::zones_for_resolution)?;
    for c in &mut out {
        let Some(i) = c.fix.find("-z ") else {
            continue;
        };
        let zone = c.fix[i + 3..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let rel = c
            .check
            .split(": ")
            .nth(1)
            .and_then(|h| h.strip_suffix(":443"))
            .map(str::to_ascii_lowercase)
            .and_then(|h| h.strip_suffix(&format!(".{zone}")).map(str::to_string));
        let named: Vec<_> = zones.iter().filter(|z| z.name == zone).collect();
        let holding = named.iter().find(|z| {
            rel.as_ref()
                .is_some_and(|rel| z.records.keys().any(|(n, _)| n == rel))
        });
        let group = holding
            .or(named.first())
            .and_then(|z| recoverite_arm::id::parse_id(&z.id)?.resource_group);
        match group {
            Some(rg) => c.fix = c.fix.replace("<zone group>", &rg),
            None => c.fix = format!("create the private DNS zone {zone} with the endpoint's records (a zone group does it), then {}", c.fix),
        }
    }

    Ok(out)
}

/// Document 000: "when you enable the replication, it adds two additional
/// private links" — the endpoint's subnet needs two free addresses before
/// replication is enabled.
fn free_ip_check(
    store: &recoverite_store::Store,
    endpoint_id: &str,
    pe_name: &str,
) -> Result<Option<Check>, ArmError> {
    store.view(|r| {
        let Some((subnet_id, free)) =
            recoverite_rp_network::view::endpoint_subnet_capacity(r, endpoint_id)?
        else {
            return Ok(None);
        };
        let title = format!("free addresses for {pe_name}'s two extra FQDNs");
        Ok(Some(if free >= 2 {
            pass(title, format!("{free} free in {subnet_id}; enabling replication adds 2 (a cache storage endpoint would take 1 more)"))
        } else {
            fail(title, format!("{free} free in {subnet_id}: enabling replication adds 2 private link addresses to the endpoint"), "free addresses in the endpoint's subnet, or recreate the endpoint in a larger subnet before enabling replication".into())
        }))
    })
}

/// Document 001 for a MARS agent on the VM: "Only extensions and agents
/// that are registered to the vault can communicate with Azure Backup over
/// these endpoints", and the public URL it falls back to.
fn mars_checks(
    store: &recoverite_store::Store,
    vm: &str,
    vault_id: &str,
    public_access: bool,
    has_endpoints: bool,
) -> Result<Vec<Check>, ArmError> {
    let machines = store.view(|r| recoverite_rp_backup::mab::machines_of(r, vault_id))?;
    let mine: Vec<String> = machines
        .iter()
        .filter(|m| {
            m.vm_id
                .as_deref()
                .is_some_and(|v| recoverite_arm::id::key(v) == recoverite_arm::id::key(vm))
        })
        .map(|m| m.container.clone())
        .collect();
    let mut out = vec![if mine.is_empty() {
        fail(
            "MARS agent registration".into(),
            "no MARS agent on this VM is registered to the vault: only registered agents may use its private URLs".into(),
            format!("recoverite mars credentials --vault {vault_id} --out creds && recoverite mars register --credentials creds --passphrase-file … --agent-dir … --vm {vm}"),
        )
    } else {
        pass(
            "MARS agent registration".into(),
            format!("registered as {}", mine.join(", ")),
        )
    }];
    out.push(match (has_endpoints, public_access) {
        (true, false) => pass(
            "public URL fallback".into(),
            "public network access is Disabled: the vault refuses the public URL, so the private path above must work (document 001's recommendation)".into(),
        ),
        (true, true) => Check {
            check: "public URL fallback".into(),
            status: "warn",
            evidence: "public network access is Enabled: an agent whose private URL fails falls back to the public URL, which the vault accepts".into(),
            fix: "set the vault's public network access to Disabled along with private endpoints (document 001 recommends it)".into(),
        },
        (false, _) => Check {
            check: "public URL fallback".into(),
            status: "warn",
            evidence: "no Backup private endpoint: the agent uses the public URL only".into(),
            fix: String::new(),
        },
    });
    Ok(out)
}

pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != "fail")
}

pub fn json(checks: &[Check]) -> Value {
    serde_json::json!({"passed": passed(checks), "checks": checks})
}

/// `GET /recoverite/doctor?vm=ID[&vault=ID][&scenario=sr|backup|both]`.
pub async fn http(
    axum::extract::State(s): axum::extract::State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let fail = crate::admin::err;
    let caller = match s
        .directory
        .authenticate(headers.get("authorization").and_then(|v| v.to_str().ok()))
    {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let Some(vm) = q.get("vm").cloned() else {
        return fail(ArmError::invalid_parameter(
            "vm",
            "Give vm= as the VM's resource id.",
        ));
    };
    let scenario = match Scenario::parse(q.get("scenario").map(String::as_str)) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let vault = q.get("vault").cloned();
    let s2 = s.clone();
    let res = tokio::task::spawn_blocking(move || {
        // The doctor reads what its caller may read.
        s2.directory
            .require(&caller, "Microsoft.Compute/virtualMachines/read", &vm)?;
        if let Some(v) = &vault {
            s2.directory
                .require(&caller, "Microsoft.RecoveryServices/vaults/read", v)?;
        }
        run(&s2, &vm, vault.as_deref(), scenario)
    })
    .await;
    match res {
        Ok(Ok(checks)) => axum::Json(json(&checks)).into_response(),
        Ok(Err(e)) => fail(e),
        Err(_) => fail(ArmError::internal("the doctor stopped unexpectedly")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_name_answered_publicly_is_dns_failing() {
        let p = Probe {
            destination_address: Some("52.136.1.2".into()),
            allowed: false,
            reason: "denied by network security group x, rule y".into(),
            ..Probe::default()
        };
        let c = connection_check(
            "AzureSiteRecovery",
            "1-asr-pod01-rcm1.eus.privatelink.siterecovery.windowsazure.com",
            &p,
            true,
            "vnet1",
        );
        assert_eq!(c.status, "fail");
        assert!(
            c.evidence.contains("not linked") && c.fix.contains("private-dns link vnet create"),
            "{c:?}"
        );
        let ok = Probe {
            destination_address: Some("10.0.2.4".into()),
            allowed: true,
            reason: "allowed".into(),
            ..Probe::default()
        };
        assert_eq!(connection_check("x", "n", &ok, true, "v").status, "pass");
        let nsg = Probe {
            destination_address: Some("10.0.2.4".into()),
            allowed: false,
            reason: "denied by rule deny-all".into(),
            ..Probe::default()
        };
        let c = connection_check("x", "n", &nsg, true, "v");
        assert!(c.status == "fail" && c.evidence.contains("deny-all"));
    }
}
