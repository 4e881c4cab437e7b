//! A replicating item's health errors, one per cause, named at the first hop
//! that failed — not at the last symptom — with the codes Azure documents
//! for Azure-to-Azure replication.
//!
//! The agent reports which hop of which connection failed ([`Blocked`]);
//! the runtime adds what only the platform knows ([`Facts`]: whether a
//! private endpoint should have answered the name, the network's verdict,
//! the roles the cache writer lacks); [`diagnose`] decides the cause and
//! [`health_error`] words it.

use serde::{Deserialize, Serialize};

use recoverite_agent::{self as agent, Blocked, Hop};

/// Azure's `HealthError`, as the replication protected item carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthError {
    pub error_source: String,
    pub error_type: String,
    /// `Error` (the item turns Critical) or `Warning`.
    pub error_level: String,
    pub error_category: String,
    pub error_code: String,
    pub summary_message: String,
    pub error_message: String,
    pub possible_causes: String,
    pub recommended_action: String,
    pub creation_time_utc: String,
    /// The resource the cause concerns (what to change).
    pub entity_id: String,
    pub error_id: String,
    pub customer_resolvability: String,
}

impl HealthError {
    pub fn is_error(&self) -> bool {
        self.error_level == "Error"
    }

    /// The same cause (its wording may carry fresher details): a persisting
    /// cause keeps the time it was first seen.
    pub fn same_cause(&self, other: &HealthError) -> bool {
        self.error_code == other.error_code
            && self.error_type == other.error_type
            && self.error_level == other.error_level
            && self.summary_message == other.summary_message
            && self.entity_id == other.entity_id
    }
}

/// What the platform knows about a failed connection.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The VM's virtual network.
    pub vnet_id: String,
    /// The name's target has an approved private endpoint whose records the
    /// VM's network should answer (the vault's `AzureSiteRecovery`, the
    /// cache account's `blob`).
    pub private_endpoint: bool,
    /// The network's verdict on the refused connection (route, security
    /// rule, endpoint approval, service firewall), when it refused it.
    pub verdict: Option<String>,
    /// When the Blob service refused the writer: who writes, and the roles
    /// it lacks on the account.
    pub roles: Option<RolesGap>,
    /// The item's target region (monitoring goes there).
    pub target_region: String,
    /// The item's source region (its storage tag).
    pub source_region: String,
    /// The VM the agent runs on and its cache account (what a fix may
    /// concern besides the network and the refusing security group).
    pub vm_id: String,
    pub cache_id: String,
}

impl Facts {
    /// The resource the fix for `cause` concerns: the network for DNS, the
    /// account for a refused writer, else the refusing security group when
    /// the verdict names one, else the VM.
    fn entity(&self, cause: Cause) -> String {
        let nsg = self.verdict.as_deref().and_then(|v| {
            let rest = v.split("network security group ").nth(1)?;
            Some(rest.split([',', ' ']).next()?.to_string())
        });
        match (cause, nsg) {
            (Cause::Dns, _) => self.vnet_id.clone(),
            (Cause::StorageAccess, _) => self.cache_id.clone(),
            (_, Some(nsg)) => nsg,
            _ => self.vm_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolesGap {
    pub principal: String,
    pub account: String,
    pub roles: Vec<String>,
}

/// The causes Azure's Azure-to-Azure troubleshooting guidance tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// "Connection cannot be established to site recovery endpoints due to
    /// DNS resolution failure." (151195)
    Dns,
    /// "A connection can't be established to Microsoft 365 authentication
    /// and identity IP4 endpoints." (151196)
    EntraId,
    /// "A connection can't be established to Azure Site Recovery service
    /// endpoints." (151197)
    SiteRecovery,
    /// Outbound connectivity to the cache storage account (151037).
    Storage,
    /// The cache account's service refused the writer (its roles, its firewall).
    StorageAccess,
    /// "The custom proxy settings are invalid" — only unauthenticated
    /// proxies are supported (151072).
    Proxy,
    /// Document 003: a replication group's VMs reach each other on 20004.
    GroupPeer,
    /// Document 002: "EventHub service tag-based NSG rule for the target
    /// region, allowing access to Site Recovery monitoring" — a warning.
    Monitoring,
    /// The agent itself (its VM or journal), not the network.
    Agent,
}

impl Cause {
    /// The error code Azure documents for the cause.
    pub fn code(self) -> &'static str {
        match self {
            Cause::Dns => "151195",
            Cause::EntraId => "151196",
            Cause::SiteRecovery => "151197",
            Cause::Proxy => "151072",
            Cause::Storage | Cause::StorageAccess | Cause::GroupPeer | Cause::Monitoring => {
                "151037"
            }
            Cause::Agent => "150000",
        }
    }
}

/// Documents 000–002 order the hops: the DNS answer, the route, the
/// security rules, the endpoint's approval, public access, the storage
/// firewall, then RBAC. The first that failed is the cause; in particular
/// "When a private endpoint is created for a vault, the vault is locked
/// down" — a private name answered publicly is DNS failing, whatever then
/// refused the public address.
pub fn diagnose(b: &Blocked, f: &Facts) -> Cause {
    if b.hop == Hop::Proxy {
        return Cause::Proxy;
    }
    if b.hop == Hop::Agent {
        return Cause::Agent;
    }
    let went_public = b.address.is_some_and(|a| !a.is_private());
    if b.hop == Hop::Dns
        || (f.private_endpoint
            && went_public
            && b.endpoint != agent::ENTRA
            && b.endpoint != agent::MONITORING)
    {
        // Entra ID and monitoring have no private endpoint: their DNS
        // failures are still theirs, not a zone's.
        return match b.endpoint.as_str() {
            agent::ENTRA if b.hop != Hop::Dns => Cause::EntraId,
            agent::MONITORING => Cause::Monitoring,
            _ => Cause::Dns,
        };
    }
    match b.endpoint.as_str() {
        agent::ENTRA => Cause::EntraId,
        agent::MONITORING => Cause::Monitoring,
        agent::PEER => Cause::GroupPeer,
        agent::VAULT => Cause::SiteRecovery,
        agent::CACHE => match b.hop {
            Hop::Http(403, _) => Cause::StorageAccess,
            _ => Cause::Storage,
        },
        _ => Cause::Agent,
    }
}

/// The private DNS zone a name is answered from when it has a private
/// endpoint (document 000: `privatelink.siterecovery.windowsazure.com`;
/// document 001: `privatelink.{geo}.backup.windowsazure.com`; storage:
/// `privatelink.blob.core.windows.net`).
pub fn zone_of(fqdn: &str) -> String {
    match fqdn.find("privatelink.") {
        Some(i) => fqdn[i..].to_string(),
        None => {
            let rest = fqdn.split_once('.').map(|(_, r)| r).unwrap_or(fqdn);
            let rest = rest.strip_prefix("privatelink.").unwrap_or(rest);
            // {id}-asr-pod01-{type}.{geo}.siterecovery… → the zone has no geo label.
            match rest.find("siterecovery.windowsazure.com") {
                Some(i) => format!("privatelink.{}", &rest[i..]),
                None => format!("privatelink.{rest}"),
            }
        }
    }
}

/// What the network's verdict asks to change.
fn network_fix(verdict: Option<&str>, tag: &str) -> String {
    let v = verdict.unwrap_or_default();
    if v.contains("network security group") {
        format!("Change the named security rule so that outbound TCP 443 to the {tag} service tag is allowed, with a higher priority than the rule that denies it (document 002).")
    } else if v.contains("route") {
        format!("Let the route table send {tag} traffic to the Internet (or a service endpoint) instead of the appliance that drops it (document 002: forced tunneling).")
    } else if v.contains("carries no traffic") || v.contains("no connection") {
        "Approve the private endpoint connection on the target (its owner approves it under Private endpoint connections).".into()
    } else {
        format!("Allow outbound TCP 443 to the {tag} service tag from the VM's subnet and NIC.")
    }
}

fn region_tag(service: &str, region: &str) -> String {
    match recoverite_arm::regions::find(region) {
        Some(r) => format!("{service}.{}", r.display_name.replace(' ', "")),
        None => service.to_string(),
    }
}

/// The health error for a cause, worded for the one who must fix it.
pub fn health_error(cause: Cause, b: &Blocked, f: &Facts, now: &str) -> HealthError {
    let to = match b.address {
        Some(a) => format!("{} ({a})", b.fqdn),
        None => b.fqdn.clone(),
    };
    let verdict = f.verdict.as_deref();
    let said = match verdict {
        Some(v) if !b.reason.contains(v) => format!("{}; the network: {v}", b.reason),
        _ => b.reason.clone(),
    };
    let (source, kind, summary, message, causes, action) = match cause {
        Cause::Dns => {
            let zone = zone_of(&b.fqdn);
            if b.hop == Hop::Dns {
                (
                    "MobilityAgent",
                    "DnsResolution",
                    "The Site Recovery agent cannot resolve a name it needs".to_string(),
                    format!("The {} name {} does not resolve from the VM's network {}: {}", b.endpoint, b.fqdn, f.vnet_id, b.reason),
                    format!("The name has no record for the VM's network: the private DNS zone {zone} is not linked to the network, lacks the endpoint's records, or the network's DNS server does not answer."),
                    format!("Link the private DNS zone {zone} to {} (az network private-dns link vnet create -z {zone} -v {} -e false) and make sure it holds the private endpoint's records (a DNS zone group adds them); with custom DNS, make the server reachable from this region.", f.vnet_id, f.vnet_id),
                )
            } else {
                (
                    "MobilityAgent",
                    "DnsResolution",
                    format!("The {} name resolves publicly instead of to its private endpoint", b.endpoint),
                    format!("{} resolved to a public address from the VM's network {}, although the {} has an approved private endpoint; the public path then failed: {said}", to, f.vnet_id, b.endpoint),
                    format!("The private DNS zone {zone} is not linked to the VM's network, so its private records are not answered there (documents 000, 001: link the zone to the network). Opening the public path is not the fix: the target is locked down to its private endpoints."),
                    format!("Link the private DNS zone {zone} to {} (az network private-dns link vnet create -z {zone} -v {} -e false), or add the endpoint's records to the zone the network uses.", f.vnet_id, f.vnet_id),
                )
            }
        }
        Cause::EntraId => (
            "MobilityAgent",
            "Connectivity",
            "Site Recovery configuration failed: Microsoft Entra ID is unreachable from the VM".to_string(),
            format!("The Site Recovery agent cannot reach Microsoft Entra ID at {to}: {said}"),
            "A connection can't be established to Microsoft Entra ID (login.microsoftonline.com), which authorizes and authenticates the agent to Site Recovery. Entra ID has no private endpoint, so its public addresses must be allowed outbound (documents 000, 002).".to_string(),
            network_fix(verdict, "AzureActiveDirectory"),
        ),
        Cause::SiteRecovery => {
            let action = if b.hop == Hop::Service {
                "Create a private endpoint for the vault (AzureSiteRecovery) in this network, or peer the network with one that has it; or enable the vault's public network access.".to_string()
            } else {
                network_fix(verdict, "AzureSiteRecovery")
            };
            (
                "MobilityAgent",
                "Connectivity",
                "Site Recovery configuration failed: the Site Recovery service is unreachable from the VM".to_string(),
                format!("The Site Recovery agent cannot reach the vault at {to}: {said}"),
                "A connection can't be established to Azure Site Recovery service endpoints: a security rule or route refuses them, the private endpoint is not approved, or the vault refuses its public URL.".to_string(),
                action,
            )
        }
        Cause::Storage => (
            "MobilityAgent",
            "Connectivity",
            "Replication is blocked: the cache storage account is unreachable from the VM".to_string(),
            format!("The Site Recovery agent cannot write to the cache storage account at {to}: {said}"),
            format!("The VM's outbound connections to Azure Storage in its region ({}) are refused, so changed data cannot be written to the cache (document 002).", region_tag("Storage", &f.source_region)),
            network_fix(verdict, &region_tag("Storage", &f.source_region)),
        ),
        Cause::StorageAccess => match &f.roles {
            Some(g) if !g.roles.is_empty() => (
                "ReplicationService",
                "Authorization",
                "Replication is blocked: the cache storage account refuses Site Recovery's writer".to_string(),
                format!("The cache storage account {} refused the write ({}): the principal {} lacks {} on it.", g.account, b.reason, g.principal, g.roles.join(" and ")),
                "The role assignments Site Recovery writes to the cache with were removed or never made (document 000: grant the vault's managed identity Contributor and Storage Blob Data Contributor, or Storage Blob Data Owner for premium accounts).".to_string(),
                format!("Assign {} to principal {} at the scope of the account {} (az role assignment create --assignee-object-id {} --role \"{}\" --scope <account id>).", g.roles.join(" and "), g.principal, g.account, g.principal, g.roles[0]),
            ),
            _ => (
                "ReplicationService",
                "Authorization",
                "Replication is blocked: the cache storage account refuses Site Recovery's writer".to_string(),
                format!("The cache storage account at {to} refused the write: {}", b.reason),
                "The account's firewall refuses the VM's network, or its role assignments do not let Site Recovery write.".to_string(),
                "Allow the VM's subnet in the account's network rules (with a Microsoft.Storage service endpoint) and trusted Microsoft services, and check the writer's role assignments on the account.".to_string(),
            ),
        },
        Cause::Proxy => (
            "MobilityAgent",
            "Configuration",
            "Replication failed: the network traffic goes through an unsupported proxy".to_string(),
            format!("The Site Recovery agent cannot use the proxy {}: {}", b.fqdn, b.reason),
            "The custom proxy settings are invalid: the Site Recovery Mobility service agent supports only unauthenticated proxies.".to_string(),
            "Remove the proxy's credentials (use an unauthenticated proxy) or let the VM reach the service tags directly.".to_string(),
        ),
        Cause::GroupPeer => (
            "MobilityAgent",
            "Connectivity",
            "Multi-VM consistency is blocked: a VM of the replication group is unreachable".to_string(),
            format!("The Site Recovery agent cannot reach the {} {} on port {}: {said}", agent::PEER, b.fqdn, agent::MULTI_VM_SYNC_PORT),
            format!("VMs of a replication group must reach each other on TCP {} (document 003).", agent::MULTI_VM_SYNC_PORT),
            format!("Allow TCP {} between the group's VMs in their security groups.", agent::MULTI_VM_SYNC_PORT),
        ),
        Cause::Monitoring => {
            let tag = region_tag("EventHub", &f.target_region);
            (
                "MobilityAgent",
                "Connectivity",
                "Site Recovery monitoring is unreachable from the VM".to_string(),
                format!("The Site Recovery agent cannot send monitoring data to {to}: {said}"),
                format!("Outbound access to Site Recovery monitoring in the target region ({tag}, *.servicebus.windows.net) is refused (document 002). Replication goes on; the agent's health is not reported."),
                network_fix(verdict, &tag),
            )
        }
        Cause::Agent => (
            "MobilityAgent",
            "Agent",
            "The Site Recovery agent cannot run".to_string(),
            format!("The Site Recovery agent cannot run: {}", b.reason),
            "The protected VM, its network interface or its disks are not as replication needs them.".to_string(),
            "Check the protected VM and its network interface exist, then retry.".to_string(),
        ),
    };
    let level = if cause == Cause::Monitoring {
        "Warning"
    } else {
        "Error"
    };
    HealthError {
        error_source: source.into(),
        error_type: kind.into(),
        error_level: level.into(),
        error_category: "Replication".into(),
        error_code: cause.code().into(),
        summary_message: summary,
        error_message: message,
        possible_causes: causes,
        recommended_action: action,
        creation_time_utc: now.into(),
        entity_id: f.entity(cause),
        error_id: String::new(),
        customer_resolvability: "Allowed".into(),
    }
}

/// Azure's RPO alert: "No crash consistent recovery point available for the
/// VM in the last 60 minutes." (Error ID 153007)
pub fn no_recent_point(age_secs: i64, entity_id: &str, now: &str) -> HealthError {
    HealthError {
        error_source: "ReplicationService".into(),
        error_type: "RecoveryPoint".into(),
        error_level: "Error".into(),
        error_category: "Replication".into(),
        error_code: "153007".into(),
        summary_message: "No crash consistent recovery point available for the VM in the last 60 minutes.".into(),
        error_message: format!("The newest recovery point is {} minutes old.", age_secs / 60),
        possible_causes: "The agent cannot ship the VM's changes (see its other health errors), or the data change rate is beyond what replication sustains.".into(),
        recommended_action: "Check that the mobility agent can reach the vault and the cache storage account.".into(),
        creation_time_utc: now.into(),
        entity_id: entity_id.into(),
        error_id: String::new(),
        customer_resolvability: "Allowed".into(),
    }
}

/// Keeps the creation time of causes that persist; the item's errors are
/// exactly `now` (a fixed cause clears).
pub fn carry_over(before: &[HealthError], now: Vec<HealthError>) -> Vec<HealthError> {
    now.into_iter()
        .map(|mut e| {
            if let Some(old) = before.iter().find(|o| o.same_cause(&e)) {
                e.creation_time_utc = old.creation_time_utc.clone();
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn b(endpoint: &str, hop: Hop, address: Option<Ipv4Addr>) -> Blocked {
        Blocked {
            endpoint: endpoint.into(),
            fqdn: "1-asr-pod01-rcm1.eus.siterecovery.windowsazure.com".into(),
            address,
            reason: "the connection was closed".into(),
            flow: None,
            hop,
        }
    }

    const PUBLIC: Option<Ipv4Addr> = Some(Ipv4Addr::new(52, 136, 1, 1));
    const PRIVATE: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 0, 2, 4));

    #[test]
    fn a_private_name_answered_publicly_is_dns_whatever_refused_it_next() {
        let f = Facts {
            private_endpoint: true,
            verdict: Some("denied by network security group nsg, rule deny-asr".into()),
            ..Facts::default()
        };
        assert_eq!(
            diagnose(&b(agent::VAULT, Hop::Network, PUBLIC), &f),
            Cause::Dns
        );
        // The wrong fix (allowing AzureSiteRecovery) makes the vault refuse: still DNS.
        assert_eq!(
            diagnose(&b(agent::VAULT, Hop::Service, PUBLIC), &f),
            Cause::Dns
        );
        // Privately answered and refused by a rule: the rule is the cause.
        assert_eq!(
            diagnose(&b(agent::VAULT, Hop::Network, PRIVATE), &f),
            Cause::SiteRecovery
        );
        // No private endpoint: the public path is the path.
        let public = Facts::default();
        assert_eq!(
            diagnose(&b(agent::VAULT, Hop::Network, PUBLIC), &public),
            Cause::SiteRecovery
        );
        let e = health_error(Cause::Dns, &b(agent::VAULT, Hop::Network, PUBLIC), &f, "t");
        assert_eq!(e.error_code, "151195");
        assert!(e
            .recommended_action
            .contains("privatelink.siterecovery.windowsazure.com"));
        assert!(e.possible_causes.contains("not linked"), "{e:?}");
    }

    #[test]
    fn each_endpoint_has_its_own_code() {
        let f = Facts::default();
        let cases = [
            (agent::ENTRA, Hop::Network, "151196", Cause::EntraId),
            (agent::VAULT, Hop::Network, "151197", Cause::SiteRecovery),
            (agent::CACHE, Hop::Network, "151037", Cause::Storage),
            (
                agent::CACHE,
                Hop::Http(403, "AuthorizationPermissionMismatch".into()),
                "151037",
                Cause::StorageAccess,
            ),
            (agent::AGENT, Hop::Proxy, "151072", Cause::Proxy),
            (agent::VAULT, Hop::Dns, "151195", Cause::Dns),
        ];
        for (endpoint, hop, code, cause) in cases {
            let c = diagnose(&b(endpoint, hop, PUBLIC), &f);
            assert_eq!((c, c.code()), (cause, code), "{endpoint}");
        }
        // Entra ID has no private endpoint: a refused Entra ID is Entra's.
        let with_pe = Facts {
            private_endpoint: true,
            ..Facts::default()
        };
        assert_eq!(
            diagnose(&b(agent::ENTRA, Hop::Network, PUBLIC), &with_pe),
            Cause::EntraId
        );
    }

    #[test]
    fn monitoring_is_a_warning_naming_the_target_regions_tag() {
        let f = Facts {
            target_region: "centralus".into(),
            verdict: Some("denied by network security group n, rule deny-eh".into()),
            ..Facts::default()
        };
        let blk = b(agent::MONITORING, Hop::Network, PUBLIC);
        let c = diagnose(&blk, &f);
        let e = health_error(c, &blk, &f, "t");
        assert_eq!(c, Cause::Monitoring);
        assert_eq!(e.error_level, "Warning");
        assert!(!e.is_error());
        assert!(e.recommended_action.contains("EventHub.CentralUS"), "{e:?}");
    }

    #[test]
    fn roles_gap_names_the_roles_and_the_principal() {
        let f = Facts {
            roles: Some(RolesGap {
                principal: "p1".into(),
                account: "cache1".into(),
                roles: vec!["Storage Blob Data Contributor".into()],
            }),
            ..Facts::default()
        };
        let blk = b(
            agent::CACHE,
            Hop::Http(403, "AuthorizationPermissionMismatch".into()),
            PUBLIC,
        );
        let e = health_error(diagnose(&blk, &f), &blk, &f, "t");
        assert!(
            e.error_message.contains("Storage Blob Data Contributor")
                && e.error_message.contains("p1")
        );
        assert!(e.recommended_action.contains("cache1"));
    }

    #[test]
    fn the_entity_is_what_the_fix_changes() {
        let f = Facts {
            vnet_id: "net".into(),
            vm_id: "vm".into(),
            cache_id: "acct".into(),
            verdict: Some("denied by network security group /x/nsg1, rule securityRules/r".into()),
            ..Facts::default()
        };
        assert_eq!(f.entity(Cause::Dns), "net");
        assert_eq!(f.entity(Cause::StorageAccess), "acct");
        assert_eq!(f.entity(Cause::Storage), "/x/nsg1");
        let quiet = Facts { verdict: None, ..f };
        assert_eq!(quiet.entity(Cause::EntraId), "vm");
    }

    #[test]
    fn network_fixes_follow_the_verdict() {
        assert!(network_fix(
            Some("denied by network security group x, rule y"),
            "Storage"
        )
        .contains("security rule"));
        assert!(
            network_fix(Some("dropped by route r to a virtual appliance"), "Storage")
                .contains("route table")
        );
        assert!(network_fix(
            Some("private endpoint e carries no traffic: its connection to v is Pending"),
            "T"
        )
        .contains("Approve"));
    }

    #[test]
    fn persisting_causes_keep_their_creation_time_and_fixed_ones_clear() {
        let f = Facts::default();
        let blk = b(agent::VAULT, Hop::Network, PUBLIC);
        let first = health_error(Cause::SiteRecovery, &blk, &f, "2026-01-01T00:00:00Z");
        let again = health_error(Cause::SiteRecovery, &blk, &f, "2026-01-01T00:05:00Z");
        let kept = carry_over(std::slice::from_ref(&first), vec![again]);
        assert_eq!(kept[0].creation_time_utc, "2026-01-01T00:00:00Z");
        assert!(carry_over(&[first], Vec::new()).is_empty());
    }

    #[test]
    fn zones_of_names() {
        assert_eq!(
            zone_of("1-asr-pod01-rcm1.eus.privatelink.siterecovery.windowsazure.com"),
            "privatelink.siterecovery.windowsazure.com"
        );
        assert_eq!(
            zone_of("1-asr-pod01-rcm1.eus.siterecovery.windowsazure.com"),
            "privatelink.siterecovery.windowsazure.com"
        );
        assert_eq!(
            zone_of("cache1.blob.core.windows.net"),
            "privatelink.blob.core.windows.net"
        );
        assert_eq!(
            zone_of("123.fab1.privatelink.eus.backup.windowsazure.com"),
            "privatelink.eus.backup.windowsazure.com"
        );
    }
}
