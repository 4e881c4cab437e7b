//! Vault CRUD and its read-only views.

use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{id, paging, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_identity::identity_block::{self, CombinedStyle};
use recoverite_privatelink::{self as pl, Status};
use recoverite_store::Reader;

use crate::meta::{self, PeVersion, VaultMeta};
use crate::target::{BACKUP, SITE_RECOVERY, VAULT_TYPE};
use recoverite_rs_core::vault_record::{self, Vault, VaultProperties, VaultSku};

/// Tag that selects the private endpoint experience of Azure Backup for a
/// vault (`v1` or `v2`, the default), so document 001's "no upgrade from v1
/// to v2" rule can be exercised.
pub const PE_VERSION_TAG: &str = "recoverite-backup-private-endpoint-version";

pub fn check_name(n: &str) -> Result<(), ArmError> {
    let ok = (2..=50).contains(&n.len())
        && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("Vault name '{n}' is invalid. Vault names are 2 to 50 characters, start with a letter, and contain only letters, numbers and hyphens."),
        ))
    }
}

pub fn connection_json(vault: &Vault, c: &pl::Connection) -> Value {
    json!({
        "id": c.id(),
        "name": c.name,
        "type": format!("{VAULT_TYPE}/privateEndpointConnections"),
        "location": vault.location,
        "properties": {
            "provisioningState": "Succeeded",
            "privateEndpoint": {"id": c.endpoint_id},
            "groupIds": c.group_ids,
            "privateLinkServiceConnectionState": c.state_json("actionsRequired"),
        }
    })
}

/// The vault as returned: connections and endpoint states come from the connection store.
pub fn assemble(r: &impl Reader, vault: &Vault) -> Result<Value, ArmError> {
    let mut d = vault.to_value()?;
    let vid = vault.id.clone();
    let conns = pl::of_target(r, &vid)?;
    let state = |group: &str| {
        let on = conns.iter().any(|c| {
            c.status != Status::Disconnected
                && c.group_ids.iter().any(|g| g.eq_ignore_ascii_case(group))
        });
        if on {
            "Enabled"
        } else {
            "None"
        }
    };
    let c = recoverite_rs_core::backup_config::get_config(r, &vid)?;
    d["properties"]["redundancySettings"] = json!({
        "standardTierStorageRedundancy": c.storage_type,
        "crossRegionRestore": if c.cross_region_restore { "Enabled" } else { "Disabled" },
    });
    d["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"] =
        json!(c.soft_delete);
    d["properties"]["privateEndpointStateForBackup"] = json!(state(BACKUP));
    d["properties"]["privateEndpointStateForSiteRecovery"] = json!(state(SITE_RECOVERY));
    d["properties"]["privateEndpointConnections"] =
        Value::Array(conns.iter().map(|c| connection_json(vault, c)).collect());
    Ok(d)
}

/// `redundancySettings` (`standardTierStorageRedundancy`, `crossRegionRestore`
/// Enabled/Disabled) and `securitySettings.softDeleteSettings.softDeleteState`
/// of a vault PUT/PATCH, checked by the same rules as Backup's settings.
fn apply_backup_settings(
    tx: &mut recoverite_store::WriteTx,
    vault_id: &str,
    props: &Value,
    ever_protected: bool,
) -> Result<(), ArmError> {
    use recoverite_rs_core::backup_config as bc;
    let rs = &props["redundancySettings"];
    let storage = rs["standardTierStorageRedundancy"].as_str();
    let crr = match rs["crossRegionRestore"].as_str() {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("Enabled") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("Disabled") => Some(false),
        Some(v) => {
            return Err(ArmError::invalid_parameter(
                "properties.redundancySettings.crossRegionRestore",
                format!("crossRegionRestore '{v}' is not Enabled or Disabled."),
            ))
        }
    };
    let soft = props["securitySettings"]["softDeleteSettings"]["softDeleteState"].as_str();
    if storage.is_none() && crr.is_none() && soft.is_none() {
        return Ok(());
    }
    let old = bc::get_config(tx, vault_id)?;
    let c = bc::check_storage_change(&old, storage, crr, ever_protected)?;
    let c = bc::check_soft_delete_change(&c, soft, None)?;
    bc::put_config(tx, vault_id, &c)
}

/// What the vault remembers beyond its document, after a PUT: its private
/// endpoint experience (from its tags) and its customer-managed key's key
/// vault, each under its rule.
fn vault_meta(
    tx: &mut recoverite_store::WriteTx,
    (vid, n, sub): (&str, &str, &str),
    tags: &serde_json::Map<String, Value>,
    props: &Value,
) -> Result<VaultMeta, ArmError> {
    let mut m = meta::get(tx, vid)?.unwrap_or_else(VaultMeta::new);
    let version = version_of(&Value::Object(tags.clone()))?;
    if version != m.pe_version {
        let backup_endpoints = pl::of_target(tx, vid)?
            .into_iter()
            .filter(|c| {
                c.status != Status::Disconnected
                    && c.group_ids.iter().any(|g| g.eq_ignore_ascii_case(BACKUP))
            })
            .count();
        check_experience_switch(n, m.pe_version, backup_endpoints)?;
        m.pe_version = version;
    }
    // Customer-managed keys: remember the key vault; a restricted one cannot
    // be combined with private endpoints (documents 001 and 004).
    if let Some(uri) = props["encryption"]["keyVaultProperties"]["keyUri"].as_str() {
        m.cmk_key_vault = crate::dependents::key_vault_of_uri(tx, sub, uri)?;
        if let Some(kid) = &m.cmk_key_vault {
            let live = pl::of_target(tx, vid)?
                .into_iter()
                .any(|c| c.status != Status::Disconnected);
            if live && crate::dependents::key_vault_restricted(tx, kid)? {
                return Err(crate::dependents::cmk_conflict(n, kid));
            }
        }
    }
    Ok(m)
}

/// "publicNetworkAccess is Enabled or Disabled; a vault's SKU is Standard (RS0)."
fn check_input(body: &Value, props: &Value) -> Result<(), ArmError> {
    if let Some(p) = props.get("publicNetworkAccess").and_then(Value::as_str) {
        if !["Enabled", "Disabled"].contains(&p) {
            return Err(ArmError::invalid_parameter(
                "properties.publicNetworkAccess",
                "publicNetworkAccess must be Enabled or Disabled.",
            ));
        }
    }
    let sku = body["sku"]["name"].as_str().unwrap_or("Standard");
    if !["Standard", "RS0"].contains(&sku) {
        return Err(ArmError::invalid_parameter(
            "sku.name",
            format!("SKU '{sku}' is not valid; use Standard (RS0)."),
        ));
    }
    Ok(())
}

/// "The location is required for a vault and cannot change."
fn vault_location(given: Option<&str>, existing: Option<&str>) -> Result<String, ArmError> {
    match (given, existing) {
        (Some(l), Some(e)) => {
            let r = regions::require(l, VAULT_TYPE)?;
            if r.name != e {
                return Err(ArmError::bad_request(
                    "LocationCannotBeChanged",
                    "A vault's location cannot change.",
                ));
            }
            Ok(r.name.to_string())
        }
        (Some(l), None) => Ok(regions::require(l, VAULT_TYPE)?.name.to_string()),
        (None, Some(e)) => Ok(e.to_string()),
        (None, None) => Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for a vault.",
        )),
    }
}

/// Document 001: a vault does not switch private endpoint experience
/// while it has Backup private endpoints of the other one.
fn check_experience_switch(
    vault: &str,
    from: PeVersion,
    backup_endpoints: usize,
) -> Result<(), ArmError> {
    if backup_endpoints > 0 {
        return Err(ArmError::bad_request(
            "PrivateEndpointVersionUpgradeNotSupported",
            format!("Vault {vault} has {backup_endpoints} Backup private endpoint(s) of the {from:?} experience; it cannot switch experience while they exist. Delete them all, then create new private endpoints."),
        ));
    }
    Ok(())
}

/// The vault's properties after a PUT or PATCH: what the body gives, else
/// what the vault had, else Azure's defaults (public access Enabled,
/// GeoRedundant storage, soft delete on for 14 days, job failure alerts).
fn vault_properties(props: &Value, old: Option<&VaultProperties>) -> VaultProperties {
    let pick = |k: &str, had: Option<&Value>, default: Value| {
        props
            .get(k)
            .cloned()
            .or_else(|| had.cloned())
            .unwrap_or(default)
    };
    VaultProperties {
        provisioning_state: "Succeeded".into(),
        public_network_access: props["publicNetworkAccess"]
            .as_str()
            .map(str::to_string)
            .or_else(|| old.map(|o| o.public_network_access.clone()))
            .unwrap_or_else(|| "Enabled".into()),
        redundancy_settings: pick(
            "redundancySettings",
            old.map(|o| &o.redundancy_settings),
            json!({"standardTierStorageRedundancy": "GeoRedundant", "crossRegionRestore": "Disabled"}),
        ),
        security_settings: pick(
            "securitySettings",
            old.map(|o| &o.security_settings),
            json!({"softDeleteSettings": {"softDeleteState": "Enabled", "softDeleteRetentionPeriodInDays": 14}}),
        ),
        monitoring_settings: pick(
            "monitoringSettings",
            old.map(|o| &o.monitoring_settings),
            json!({"azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled"}, "classicAlertSettings": {"alertsForCriticalOperations": "Disabled"}}),
        ),
        backup_storage_version: "V2".into(),
        encryption: props
            .get("encryption")
            .cloned()
            .or_else(|| old.and_then(|o| o.encryption.clone())),
    }
}

fn version_of(tags: &Value) -> Result<PeVersion, ArmError> {
    match tags
        .get(PE_VERSION_TAG)
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("v2") => Ok(PeVersion::V2),
        Some("v1") => Ok(PeVersion::V1),
        Some(o) => Err(ArmError::bad_request(
            "InvalidTag",
            format!("Tag {PE_VERSION_TAG} must be v1 or v2, not '{o}'."),
        )),
    }
}

pub fn put(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let n = req.resource_name().to_string();
    check_name(&n)?;
    let body = req.body.clone().unwrap_or(json!({}));
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    check_input(&body, &props)?;
    let rid = req.path.id();
    let tenant = ctx.env().tenant_id.clone();
    let (created, doc, op) = ctx.store().write(|tx| {
        let existing = vault_record::load(tx, &rid)?;
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(
                VAULT_TYPE,
                &n,
                req.path.resource_group.as_deref(),
            ));
        }
        if existing.is_none() {
            let sub = req.path.subscription.clone().unwrap_or_default();
            crate::deleted_vaults::purge_expired(ctx, tx, &sub)?;
            crate::deleted_vaults::check_not_held(tx, &rid)?;
        }
        let location = vault_location(
            body["location"].as_str(),
            existing.as_ref().map(|e| e.location.as_str()),
        )?;
        let vid = existing
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or(rid.clone());
        let tags = match body.get("tags") {
            Some(t) => resource::validate_tags(Some(t))?,
            None => existing
                .as_ref()
                .map(|e| e.tags.clone())
                .unwrap_or_default(),
        };
        let sub = req.path.subscription.clone().unwrap_or_default();
        let m = vault_meta(tx, (&vid, &n, &sub), &tags, &props)?;
        // Storage redundancy and soft delete are the vault's Backup settings
        // (one record, also `backupstorageconfig`/`backupconfig`), with their rules.
        apply_backup_settings(tx, &vid, &props, m.ever_registered)?;
        identity_block::require_assign(
            ctx,
            "Microsoft.RecoveryServices/vaults/write",
            &vid,
            body.get("identity"),
        )?;
        let old_identity = existing.as_ref().and_then(|e| e.identity.clone());
        let identity = identity_block::apply(
            tx,
            &tenant,
            &vid,
            body.get("identity")
                .or(if patch { None } else { Some(&Value::Null) }),
            old_identity.as_ref(),
            CombinedStyle::Spaced,
        )?;
        let vault = Vault {
            id: vid.clone(),
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or(n.clone()),
            kind: VAULT_TYPE.into(),
            location,
            tags,
            etag: format!(
                "W/\"datetime'{}'\"",
                recoverite_arm::time::now_string().replace(':', "%3A")
            ),
            sku: VaultSku {
                name: "RS0".into(),
                tier: "Standard".into(),
            },
            identity,
            properties: vault_properties(&props, existing.as_ref().map(|e| &e.properties)),
        };
        vault.save(tx)?;
        meta::put(tx, &vid, &m)?;
        let shown = assemble(tx, &vault)?;
        // The vault RP answers PUT as a long-running operation polled
        // through Location; its record commits with the vault.
        let op = OperationRecord::new(ctx, "Microsoft.RecoveryServices", &vid)
            .succeed(Some(shown.clone()));
        if !patch {
            op.save(tx)?;
        }
        Ok((existing.is_none(), shown, op))
    })?;
    if patch {
        return Ok(Reply::ok(doc));
    }
    let sub = req.path.subscription.clone().unwrap_or_default();
    let location = doc["location"].as_str().unwrap_or_default().to_string();
    let url = lro::result_url(ctx, &sub, &location, &op, &req.api_version);
    let reply = if created {
        Reply::created(doc)
    } else {
        Reply::ok(doc)
    };
    Ok(lro::with_retry_after(ctx, reply.header("Location", url)))
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| match vault_record::load(r, &req.path.id())? {
            Some(v) => Ok(Reply::ok(assemble(r, &v)?)),
            None => Err(ArmError::resource_not_found(
                VAULT_TYPE,
                req.resource_name(),
                req.path.resource_group.as_deref(),
            )),
        })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    let items = ctx.store().view(|r| {
        vault_record::list(r, &scope)?
            .iter()
            .map(|v| assemble(r, v))
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let op = OperationRecord::new(ctx, "Microsoft.RecoveryServices", &rid).succeed(None);
    let loc = ctx.store().write(|tx| {
        let Some(vault) = vault_record::load(tx, &rid)? else { return Ok::<_, ArmError>(None) };
        let live = pl::of_target(tx, &rid)?.into_iter().filter(|c| c.status != Status::Disconnected).count();
        if live > 0 {
            return Err(ArmError::bad_request(
                "ServiceResourceNotEmpty",
                format!("Vault {} cannot be deleted: it has {live} private endpoint connection(s). Delete the private endpoints first.", vault.name),
            ));
        }
        if crate::containers::count(tx, &rid)? > 0 {
            return Err(ArmError::bad_request(
                "ServiceResourceNotEmpty",
                "Vault cannot be deleted as there are existing resources within the vault. Unregister the protection containers first.",
            ));
        }
        // A paired container means Site Recovery replication is configured.
        if recoverite_rs_core::vault::replication_configured(tx, &rid)? {
            return Err(ArmError::bad_request(
                "ServiceResourceNotEmpty",
                "Vault cannot be deleted as there are existing resources within the vault. Delete the Site Recovery protection container mappings first.",
            ));
        }
        // Backup items, soft-deleted ones included, keep the vault.
        let items = recoverite_rs_core::vault::protected_items(tx, &rid)?;
        if items > 0 {
            return Err(ArmError::bad_request(
                "ServiceResourceNotEmpty",
                format!("Vault cannot be deleted as there are existing resources within the vault: {items} protected item(s), soft-deleted ones included. Stop protection and delete the backup data of each item (and wait out or undo soft delete, then delete it permanently), then delete the vault."),
            ));
        }
        // Secure by default: where it applies the vault is kept, recoverable,
        // with everything under its id; elsewhere the delete is final.
        if crate::deleted_vaults::soft_deletes_vaults(&vault.location) {
            crate::deleted_vaults::soft_delete(tx, &vault.to_value()?)?;
        } else {
            resource::delete_tree(tx, &rid)?;
            ctx.cascade_delete(tx, &rid)?;
        }
        op.save(tx)?;
        Ok(Some(vault.location))
    })?;
    let Some(loc) = loc else {
        return Ok(Reply::empty(204));
    };
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &loc, &op, &req.api_version),
        ),
    ))
}

pub fn check_name_availability(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let name = body["name"]
        .as_str()
        .ok_or_else(|| ArmError::invalid_parameter("name", "Give the vault name to check."))?;
    let rg = req.path.resource_group_id().unwrap_or_default();
    let vid = format!("{rg}/providers/Microsoft.RecoveryServices/vaults/{name}");
    let exists = ctx.store().view(|r| resource::get(r, &vid))?.is_some();
    Ok(Reply::ok(if exists {
        json!({"nameAvailable": false, "reason": "AlreadyExists", "message": format!("Resource name '{name}' already exists in the resource group.")})
    } else if check_name(name).is_err() {
        json!({"nameAvailable": false, "reason": "Invalid", "message": "Vault names are 2 to 50 characters, start with a letter, and contain only letters, numbers and hyphens."})
    } else {
        json!({"nameAvailable": true})
    }))
}

pub fn vault_of(r: &impl Reader, req: &ArmRequest) -> Result<Vault, ArmError> {
    vault_record::of_request(r, req)
}

pub fn usages(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (vault, containers) = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        let c = crate::containers::count(r, &v.id)?;
        Ok::<_, ArmError>((v, c))
    })?;
    let _ = vault;
    let usage = |value: &str, localized: &str, current: u64| json!({"unit": "Count", "quotaPeriod": "P1D", "currentValue": current, "limit": -1, "name": {"value": value, "localizedValue": localized}});
    let items = vec![
        usage("ProtectedItemCount", "Protected Items", containers),
        usage("RegisteredServerCount", "Registered Servers", containers),
        usage(
            "BackupManagementServerCount",
            "Backup Management Servers",
            0,
        ),
    ];
    Ok(Reply::ok(json!({"value": items})))
}

pub fn replication_usages(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| vault_of(r, req))?;
    Ok(Reply::ok(json!({"value": [{
        "monitoringSummary": {"unHealthyVmCount": 0, "unHealthyProviderCount": 0, "eventsCount": 0, "deprecatedProviderCount": 0, "supportedProviderCount": 0, "unsupportedProviderCount": 0},
        "jobsSummary": {"failedJobs": 0, "suspendedJobs": 0, "inProgressJobs": 0},
        "protectedItemCount": 0, "recoveryPlanCount": 0, "registeredServersCount": 0, "recoveryServicesProviderAuthType": 1
    }]})))
}

pub fn key(v: &Vault) -> String {
    id::key(&v.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_takes_standard_and_an_access_setting_azure_knows() {
        assert!(check_input(&json!({"sku": {"name": "RS0"}}), &json!({})).is_ok());
        assert!(check_input(&json!({}), &json!({"publicNetworkAccess": "Disabled"})).is_ok());
        let e = check_input(&json!({"sku": {"name": "Premium"}}), &json!({})).unwrap_err();
        assert!(e.body.message.contains("Standard (RS0)"));
        let e = check_input(&json!({}), &json!({"publicNetworkAccess": "Open"})).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn a_vaults_location_is_required_and_never_changes() {
        assert_eq!(vault_location(Some("East US"), None).unwrap(), "eastus");
        assert_eq!(vault_location(None, Some("eastus")).unwrap(), "eastus");
        assert_eq!(
            vault_location(Some("eastus"), Some("eastus")).unwrap(),
            "eastus"
        );
        assert_eq!(
            vault_location(Some("westus"), Some("eastus"))
                .unwrap_err()
                .body
                .code,
            "LocationCannotBeChanged"
        );
        assert_eq!(
            vault_location(None, None).unwrap_err().body.code,
            "LocationRequired"
        );
    }

    #[test]
    fn the_private_endpoint_experience_switches_only_without_backup_endpoints() {
        assert!(check_experience_switch("v", PeVersion::V1, 0).is_ok());
        let e = check_experience_switch("v", PeVersion::V1, 2).unwrap_err();
        assert_eq!(e.body.code, "PrivateEndpointVersionUpgradeNotSupported");
        assert!(e
            .body
            .message
            .contains("2 Backup private endpoint(s) of the V1"));
    }

    #[test]
    fn properties_come_from_the_body_then_the_vault_then_azures_defaults() {
        let new = vault_properties(&json!({}), None);
        assert_eq!(new.public_network_access, "Enabled");
        assert_eq!(
            new.redundancy_settings["standardTierStorageRedundancy"],
            "GeoRedundant"
        );
        assert_eq!(
            new.security_settings["softDeleteSettings"]["softDeleteRetentionPeriodInDays"],
            14
        );
        let mut had = new.clone();
        had.public_network_access = "Disabled".into();
        let patched = vault_properties(&json!({"monitoringSettings": {"x": 1}}), Some(&had));
        assert_eq!(
            patched.public_network_access, "Disabled",
            "kept from the vault"
        );
        assert_eq!(
            patched.monitoring_settings,
            json!({"x": 1}),
            "taken from the body"
        );
    }
}
