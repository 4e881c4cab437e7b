//! The vault as a private link target: Site Recovery (`AzureSiteRecovery`),
//! Backup (`AzureBackup`, version 2 or 1) and cross-region restore
//! (`AzureBackup_secondary`), with every rule the documents state.

use serde_json::Value;

use recoverite_arm::{document, id, regions, time, ArmError};
use recoverite_privatelink::{
    ConnectionRequest, GroupInfo, Member, PrivateLinkTarget, ReaderDyn, Status,
};
use recoverite_rs_core::vault_record::Vault;

use crate::meta::{self, PeVersion, VaultMeta};

pub const VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";
pub const SITE_RECOVERY: &str = "AzureSiteRecovery";
pub const BACKUP: &str = "AzureBackup";
pub const BACKUP_SECONDARY: &str = "AzureBackup_secondary";

/// Site Recovery's microservices: one FQDN each on a new endpoint.
pub const ASR_TYPES: [&str; 5] = ["rcm1", "prot2", "tel1", "srs1", "id1"];
/// Added per region when replication is first enabled for a region pair.
pub const ASR_PAIR_TYPE: &str = "prot2b";
/// Azure Backup's services with an FQDN each.
pub const BACKUP_SERVICES: [&str; 8] = [
    "fab1", "rec2", "prot1", "ecs1", "tel1", "wbcm1", "fc1", "id1",
];
/// A version 2 Backup endpoint uses ten private IPs: the services plus
/// addresses held for dynamic IP expansion.
pub const BACKUP_V2_IPS: usize = 10;
pub const MAX_PRIVATE_ENDPOINTS: usize = 12;
/// Providers registered before this date must be re-registered (document 001).
pub const REGISTRATION_CUTOFF: &str = "2020-05-01T00:00:00Z";

pub fn geo(location: &str) -> String {
    regions::find(location)
        .map(|r| r.geo_code.to_string())
        .unwrap_or_else(|| location.to_string())
}

pub fn asr_fqdn(vault_num: u64, kind: &str, geo: &str) -> String {
    format!("{vault_num}-asr-pod01-{kind}.{geo}.privatelink.siterecovery.windowsazure.com")
}

/// The storage account behind a version 1 vault's blob and queue endpoints.
pub fn v1_storage_account(vault_num: u64, geo: &str) -> String {
    format!("bkp{vault_num}{geo}")
}

pub fn backup_fqdn(vault_num: u64, svc: &str, geo: &str) -> String {
    format!("{vault_num}.{svc}.privatelink.{geo}.backup.windowsazure.com")
}

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, msg)
}

pub fn meta_of(r: &dyn ReaderDyn, vault_id: &str) -> Result<VaultMeta, ArmError> {
    let v = r
        .record(meta::VAULTS, &id::key(vault_id))?
        .ok_or_else(|| ArmError::internal(format!("vault {vault_id} has no record")))?;
    serde_json::from_value(v).map_err(|e| ArmError::internal(e.to_string()))
}

fn has_system_identity(vault: &Vault) -> bool {
    vault
        .identity
        .as_ref()
        .and_then(|i| i["type"].as_str())
        .is_some_and(|t| t.to_ascii_lowercase().contains("systemassigned"))
}

/// The vault document the private link interface hands over, typed.
fn typed(doc: &Value) -> Result<Vault, ArmError> {
    document::read(doc.clone())
}

/// A vault's sub-resources in `location`: the members each takes and the
/// private DNS zones it needs (capabilities and endpoints both ask).
pub fn groups_in(location: &str) -> Vec<GroupInfo> {
    let g = geo(location);
    let backup_members: Vec<String> = BACKUP_SERVICES
        .iter()
        .map(|s| format!("backup-{s}"))
        .collect();
    vec![
        GroupInfo {
            group_id: SITE_RECOVERY.into(),
            required_members: ASR_TYPES
                .iter()
                .chain([&ASR_PAIR_TYPE])
                .map(|t| format!("siteRecovery-{t}"))
                .collect(),
            required_zone_names: vec![
                "privatelink.siterecovery.windowsazure.com".into(),
                "privatelink.queue.core.windows.net".into(),
                "privatelink.blob.core.windows.net".into(),
            ],
        },
        GroupInfo {
            group_id: BACKUP.into(),
            required_members: backup_members.clone(),
            required_zone_names: vec![
                format!("privatelink.{g}.backup.windowsazure.com"),
                "privatelink.queue.core.windows.net".into(),
                "privatelink.blob.core.windows.net".into(),
            ],
        },
        GroupInfo {
            group_id: BACKUP_SECONDARY.into(),
            required_members: backup_members,
            required_zone_names: vec![format!(
                "privatelink.{}.backup.windowsazure.com",
                secondary_geo(location)
            )],
        },
    ]
}

pub struct VaultTarget;

impl PrivateLinkTarget for VaultTarget {
    fn resource_type(&self) -> &'static str {
        VAULT_TYPE
    }

    fn groups(&self, _: &dyn ReaderDyn, doc: &Value) -> Result<Vec<GroupInfo>, ArmError> {
        Ok(groups_in(&typed(doc)?.location))
    }

    fn validate(
        &self,
        r: &dyn ReaderDyn,
        doc: &Value,
        req: &ConnectionRequest,
    ) -> Result<(), ArmError> {
        let vault = typed(doc)?;
        let vault = &vault;
        let vid = vault.id.as_str();
        let m = meta_of(r, vid)?;
        // Document 001: a registration from before May 2020 must be renewed first.
        let sub = id::parse_id(vid)
            .and_then(|p| p.subscription)
            .unwrap_or_default();
        if let Some(reg) = r.registration(&sub, "Microsoft.RecoveryServices")? {
            let old = reg
                .registered_at
                .as_deref()
                .and_then(time::parse)
                .zip(time::parse(REGISTRATION_CUTOFF))
                .is_some_and(|(a, b)| a < b);
            if old {
                return Err(bad(
                    "ResourceProviderReregistrationRequired",
                    "The Microsoft.RecoveryServices provider was registered with this subscription before May 1, 2020. Re-register it (POST /subscriptions/{id}/providers/Microsoft.RecoveryServices/register) and then create the private endpoint.",
                ));
            }
        }
        if let Some(kid) = &m.cmk_key_vault {
            if crate::dependents::key_vault_restricted(r, kid)? {
                return Err(crate::dependents::cmk_conflict(&vault.name, kid));
            }
        }
        let live: Vec<_> = r
            .connections(vid)?
            .into_iter()
            .filter(|c| c.status != Status::Disconnected)
            .collect();
        if live.len() >= MAX_PRIVATE_ENDPOINTS {
            return Err(bad(
                "PrivateEndpointLimitReached",
                format!("Vault {} already has {} private endpoints; a vault can have at most {MAX_PRIVATE_ENDPOINTS}.", vault.name, live.len()),
            ));
        }
        let endpoint_name = |id: &str| id.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
        if live
            .iter()
            .any(|c| endpoint_name(&c.endpoint_id) == req.endpoint_name.to_ascii_lowercase())
        {
            return Err(bad(
                "PrivateEndpointNameAlreadyUsed",
                format!("Vault {} already has a private endpoint named {}; private endpoints of one vault need distinct names.", vault.name, req.endpoint_name),
            ));
        }
        for g in &req.group_ids {
            match g.as_str() {
                x if x.eq_ignore_ascii_case(SITE_RECOVERY) => {
                    if !req.static_ips.is_empty() {
                        return Err(bad(
                            "StaticIpNotSupportedForSiteRecoveryPrivateEndpoint",
                            "Private endpoints for Site Recovery support only dynamic IP addresses; remove ipConfigurations from the request.",
                        ));
                    }
                    if m.ever_registered {
                        return Err(never_registered_error(vault));
                    }
                }
                x if x.eq_ignore_ascii_case(BACKUP) => {
                    if m.ever_registered {
                        return Err(never_registered_error(vault));
                    }
                    if m.pe_version == PeVersion::V1 && !has_system_identity(vault) {
                        return Err(bad(
                            "UserErrorVaultManagedIdentityNotEnabled",
                            "Version 1 private endpoints for Azure Backup need the vault's system-assigned managed identity; enable it (identity.type SystemAssigned) first.",
                        ));
                    }
                }
                // Cross-region restore endpoints may come before or after items are protected.
                _ => {}
            }
        }
        Ok(())
    }

    fn members(
        &self,
        r: &dyn ReaderDyn,
        doc: &Value,
        group_id: &str,
        _: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError> {
        let vault = typed(doc)?;
        let m = meta_of(r, &vault.id)?;
        Ok(members_for(&vault.location, &m, group_id))
    }

    fn approval_action(&self) -> String {
        format!("{VAULT_TYPE}/privateEndpointConnectionsApproval/action")
    }

    fn public_network_access(&self, doc: &Value) -> bool {
        // A vault that does not read back is treated as closed.
        typed(doc).is_ok_and(|v| !v.public_access_disabled())
    }

    /// Backup's public URLs, `{svc}.{geo}.backup.windowsazure.com` (document 001).
    /// Backup's shared URLs in the vault's region, and Site Recovery's
    /// public service names in the vault's region and in every region
    /// replication was enabled for (agents reach the vault there when no
    /// private endpoint answers for them).
    fn shared_public_names(&self, r: &dyn ReaderDyn, doc: &Value) -> Vec<String> {
        let Ok(vault) = typed(doc) else {
            return Vec::new();
        };
        let loc = vault.location.as_str();
        let g = geo(loc);
        let mut out: Vec<String> = BACKUP_SERVICES
            .iter()
            .map(|s| format!("{s}.{g}.backup.windowsazure.com"))
            .collect();
        let Ok(m) = meta_of(r, &vault.id) else {
            return out;
        };
        let mut regions = vec![loc.to_string()];
        for (a, b) in &m.replication_pairs {
            regions.extend([a.clone(), b.clone()]);
        }
        for region in regions {
            let name =
                asr_fqdn(m.numeric_id, ASR_PAIR_TYPE, &geo(&region)).replace(".privatelink.", ".");
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

fn never_registered_error(vault: &Vault) -> ArmError {
    bad(
        "PrivateEndpointNotSupportedForVaultWithRegisteredItems",
        format!(
            "Private endpoints can be created only for Recovery Services vaults that have never had items registered; vault {} has. Create the private endpoints before adding items, or use a new vault.",
            vault.name
        ),
    )
}

fn secondary_geo(loc: &str) -> String {
    regions::find(loc)
        .and_then(|r| r.paired)
        .map(geo)
        .unwrap_or_else(|| geo(loc))
}

/// The members (FQDNs) an endpoint of `group_id` gets now.
pub fn members_for(location: &str, m: &VaultMeta, group_id: &str) -> Vec<Member> {
    let g = geo(location);
    let n = m.numeric_id;
    let member = |name: String, fqdn: String| Member {
        member_name: name,
        fqdn,
    };
    if group_id.eq_ignore_ascii_case(SITE_RECOVERY) {
        let mut out: Vec<Member> = ASR_TYPES
            .iter()
            .map(|t| member(format!("siteRecovery-{t}"), asr_fqdn(n, t, &g)))
            .collect();
        out.extend(pair_members(m));
        return out;
    }
    let geo_for = if group_id.eq_ignore_ascii_case(BACKUP_SECONDARY) {
        secondary_geo(location)
    } else {
        g
    };
    let mut out: Vec<Member> = BACKUP_SERVICES
        .iter()
        .map(|s| member(format!("backup-{s}"), backup_fqdn(n, s, &geo_for)))
        .collect();
    if group_id.eq_ignore_ascii_case(BACKUP) {
        match m.pe_version {
            PeVersion::V2 => {
                for i in out.len()..BACKUP_V2_IPS {
                    out.push(member(
                        format!("backup-expansion{}", i - BACKUP_SERVICES.len() + 1),
                        String::new(),
                    ));
                }
            }
            PeVersion::V1 => {
                // Version 1 also gives the customer endpoints for the vault's blob and queue storage.
                let acct = v1_storage_account(n, &geo_for);
                out.push(member(
                    "blob".into(),
                    format!("{acct}.privatelink.blob.core.windows.net"),
                ));
                out.push(member(
                    "queue".into(),
                    format!("{acct}.privatelink.queue.core.windows.net"),
                ));
            }
        }
    }
    out
}

/// The two FQDNs per region pair that enabling replication adds.
pub fn pair_members(m: &VaultMeta) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for (src, tgt) in &m.replication_pairs {
        for region in [src, tgt] {
            let fqdn = asr_fqdn(m.numeric_id, ASR_PAIR_TYPE, &geo(region));
            if !out.iter().any(|x| x.fqdn == fqdn) {
                out.push(Member {
                    member_name: format!("siteRecovery-{ASR_PAIR_TYPE}"),
                    fqdn,
                });
            }
        }
    }
    out
}

/// What enabling replication for a new region pair does to the vault's
/// private endpoints: every Site Recovery endpoint gets two more FQDNs (one
/// per region of the pair) and addresses for them, and zone groups get the
/// records — or, when a subnet cannot give the addresses, nothing changes and
/// replication is refused (document 000).
pub fn enable_replication_pair(
    tx: &mut recoverite_store::WriteTx,
    registry: &recoverite_privatelink::Registry,
    vault_id: &str,
    source: &str,
    target: &str,
) -> Result<Vec<Member>, ArmError> {
    let (src, tgt) = (
        regions::require(source, VAULT_TYPE)?.name.to_string(),
        regions::require(target, VAULT_TYPE)?.name.to_string(),
    );
    if src == tgt {
        return Err(bad(
            "InvalidReplicationRegionPair",
            "The target region must differ from the source region.",
        ));
    }
    let mut m = meta::get(tx, vault_id)?
        .ok_or_else(|| ArmError::internal(format!("vault {vault_id} has no record")))?;
    if m.replication_pairs
        .iter()
        .any(|(a, b)| *a == src && *b == tgt)
    {
        return Ok(Vec::new());
    }
    m.replication_pairs.push((src, tgt));
    let members = pair_members(&m);
    registry
        .host()?
        .add_members(tx, vault_id, SITE_RECOVERY, &members)?;
    meta::put(tx, vault_id, &m)?;
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vaults_sub_resources_need_zones_of_its_region_and_its_pair() {
        let groups = groups_in("eastus");
        let ids: Vec<&str> = groups.iter().map(|g| g.group_id.as_str()).collect();
        assert_eq!(ids, vec![SITE_RECOVERY, BACKUP, BACKUP_SECONDARY]);
        let backup = &groups[1].required_zone_names[0];
        let secondary = &groups[2].required_zone_names[0];
        assert!(backup.starts_with("privatelink.") && backup.ends_with(".backup.windowsazure.com"));
        assert_ne!(
            backup, secondary,
            "the secondary zone is the paired region's"
        );
        // A document that is not a vault is refused, not read as an empty one.
        assert!(typed(&serde_json::json!({"location": "eastus"})).is_err());
    }
}
