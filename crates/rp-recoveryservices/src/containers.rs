//! Backup protection containers: registering one is registering an item in
//! the vault, which permanently closes the vault to new private endpoints.

use serde_json::{json, Value};

use recoverite_arm::{document, paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_privatelink::{self as pl, Status};
use recoverite_rs_core::containers::{self as core_containers, BackupContainer};
use recoverite_store::Reader;

use crate::meta;
use crate::target::BACKUP;
use crate::vault::vault_of;

pub use recoverite_rs_core::containers::CONTAINER_TYPE;

/// The containers registered in the vault (workloads, MARS machines).
pub(crate) fn all(r: &impl Reader, vault_id: &str) -> Result<Vec<BackupContainer>, ArmError> {
    r.scan_json::<Value>(
        recoverite_arm::RESOURCES,
        &format!("{}/backupfabrics/", recoverite_arm::id::key(vault_id)),
    )?
    .into_iter()
    .map(|(_, v)| v)
    .filter(|v| {
        v["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(CONTAINER_TYPE))
    })
    .map(document::read)
    .collect()
}

pub fn count(r: &impl Reader, vault_id: &str) -> Result<u64, ArmError> {
    Ok(all(r, vault_id)?.len() as u64)
}

/// Whether a live Backup endpoint of the vault was created with static IPs
/// (as its connection records it: the vault reads the private link
/// interface, not the network's endpoint documents).
fn static_backup_endpoint(r: &impl Reader, vault_id: &str) -> Result<Option<String>, ArmError> {
    Ok(pl::of_target(r, vault_id)?
        .into_iter()
        .find(|c| {
            c.static_ips
                && c.status != Status::Disconnected
                && c.group_ids.iter().any(|g| g.eq_ignore_ascii_case(BACKUP))
        })
        .map(|c| c.endpoint_id))
}

pub fn register(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    // Registering marks the vault for good (no new private endpoints), so an
    // empty or shapeless body changes nothing.
    let props = req
        .body
        .as_ref()
        .map(|b| b["properties"].clone())
        .filter(|p| p["containerType"].is_string() || p["backupManagementType"].is_string())
        .ok_or_else(|| {
            ArmError::bad_request(
                "BMSUserErrorInvalidInput",
                "Registering a container needs properties.containerType and properties.backupManagementType (for example VMAppContainer and AzureWorkload).",
            )
        })?;
    let rid = req.path.id();
    let name = req.resource_name().to_string();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let existing = core_containers::load(tx, &rid)?;
        if existing.is_none() && count(tx, &vid)? > 0 {
            // Document 001: static IPs cannot grow, so with items already protected
            // a new registration needing more addresses fails.
            if let Some(pe) = static_backup_endpoint(tx, &vid)? {
                return Err(ArmError::bad_request(
                    "UserErrorPrivateEndpointStaticIpExpansionFailed",
                    format!("Registration failed: the vault already protects items and its Backup private endpoint {pe} uses static IP addresses, which cannot be expanded dynamically (unsupported in the version 2 experience). Recreate the endpoint with dynamic IPs."),
                ));
            }
        }
        let shown = json!({"sourceResourceId": props["sourceResourceId"], "workloadType": props["workloadType"]});
        let c = BackupContainer::registered(
            &rid,
            &name,
            (
                props["friendlyName"].as_str().unwrap_or(&name),
                props["backupManagementType"].as_str().unwrap_or("AzureWorkload"),
                props["containerType"].as_str().unwrap_or("VMAppContainer"),
            ),
            shown.as_object().cloned().unwrap_or_default(),
        );
        c.save(tx)?;
        meta::mark_registered(tx, &vid)?;
        Ok(Reply::ok(c.to_value()?))
    })
}

/// A registered container, or the container of a protected Azure VM.
pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = req.resource_name().to_string();
    ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        if let Some(c) = core_containers::load(r, &req.path.id())? {
            return Ok(Reply::ok(c.to_value()?));
        }
        core_containers::vm_containers(r, &v.id)?
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(&name))
            .ok_or_else(|| {
                ArmError::resource_not_found(
                    CONTAINER_TYPE,
                    &name,
                    req.path.resource_group.as_deref(),
                )
            })?
            .to_value()
            .map(Reply::ok)
    })
}

/// Unregistering leaves the vault marked: it has had items.
pub fn unregister(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        vault_of(tx, req)?;
        let existed = resource::delete_tree(tx, &rid)?;
        Ok(Reply::empty(if existed { 200 } else { 204 }))
    })
}

/// Registered containers and the containers of protected Azure VMs, with
/// azure-cli's `$filter` (`backupManagementType`, `status`, `friendlyName`).
pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        let vid = &v.id;
        let mut items = all(r, vid)?;
        items.extend(core_containers::vm_containers(r, vid)?);
        Ok::<_, ArmError>(items)
    })?;
    let items = items
        .iter()
        .filter(|c| c.matches(&filter))
        .map(BackupContainer::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}
