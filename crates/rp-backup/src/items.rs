//! Discovery (refresh, protectable items) and protection of Azure VMs:
//! enable, change policy, stop protection (keeping data), delete backup
//! data (soft delete: kept 14 days, undeletable), and the item lists.

use serde_json::{json, Value};

use recoverite_arm::{id, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rp_compute::disks;
use recoverite_rp_compute::view::Vm;
use recoverite_rs_core::backup_item::{
    self as core_item, BackupOp, ItemProperties, NewItem, ProtectedItem, ProtectionState, VmItem,
    Workload,
};
use recoverite_rs_core::vault_record::Vault;
use recoverite_store::{Reader, WriteTx};

use crate::policy::Policy;
use crate::{
    container_name, item_name, jobs, parse_workload_name, policy, vault_of, BackupProvider,
    ITEM_TYPE,
};

pub use recoverite_rs_core::backup_item::SOFT_DELETE_DAYS;

/// `az backup protection enable-for-vm`: "a policy protects at most 1,000 items".
pub const MAX_ITEMS_PER_POLICY: usize = 1000;

/// How many items a policy protects (stopped ones no longer count).
pub fn count_with_policy(
    r: &impl Reader,
    vault_id: &str,
    policy_id: &str,
) -> Result<usize, ArmError> {
    Ok(core_item::list(r, vault_id)?
        .iter()
        .filter(|i| id::key(&i.properties.policy_id) == id::key(policy_id))
        .filter(|i| i.properties.protection_state != ProtectionState::ProtectionStopped)
        .count())
}

pub fn item_id(vault_id: &str, container: &str, item: &str) -> String {
    format!("{vault_id}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{item}")
}

fn not_found(item: &str) -> ArmError {
    ArmError::new(404, "BMSUserErrorItemNotFound", format!("The protected item '{item}' was not found in the vault; enable protection for the VM first."))
}

pub fn load(
    r: &impl Reader,
    vault_id: &str,
    container: &str,
    item: &str,
) -> Result<ProtectedItem, ArmError> {
    core_item::load(r, &item_id(vault_id, container, item))?.ok_or_else(|| not_found(item))
}

/// The items as the API shows them.
pub fn render(items: &[ProtectedItem]) -> Result<Vec<Value>, ArmError> {
    items.iter().map(ProtectedItem::to_value).collect()
}

/// POST refreshContainers: discovery finds the subscription's VMs; it is
/// an operation the client polls (202 + Location).
pub fn refresh(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let op = ctx
        .store()
        .write(|tx| jobs::finished_operation(tx, &vid, None))?;
    let url = format!(
        "{}{vid}/backupFabrics/Azure/operationResults/{op}?api-version={}",
        ctx.base_url, req.api_version
    );
    Ok(recoverite_arm::lro::with_retry_after(
        ctx,
        Reply::empty(202).header("Location", url),
    ))
}

/// The VMs a vault may protect: in its region, not protected yet.
fn candidates(r: &impl Reader, vault: &Vault) -> Result<Vec<Vm>, ArmError> {
    let vid = &vault.id;
    let sub = id::parse_id(vid)
        .and_then(|p| p.subscription)
        .unwrap_or_default();
    let protected: Vec<String> = core_item::list(r, vid)?
        .iter()
        .filter_map(|i| i.vm().map(|v| id::key(&v.source_resource_id)))
        .collect();
    Ok(
        recoverite_rp_compute::view::vms_in(r, &format!("/subscriptions/{sub}"))?
            .into_iter()
            .filter(|v| v.location.eq_ignore_ascii_case(&vault.location))
            .filter(|v| !protected.contains(&id::key(&v.id)))
            .collect(),
    )
}

fn rg_of(vm_id: &str) -> String {
    id::parse_id(vm_id)
        .and_then(|p| p.resource_group)
        .unwrap_or_default()
}

pub fn protectable(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let filter = req.query_get("$filter").unwrap_or("").to_ascii_lowercase();
    if filter.contains("backupmanagementtype") && !filter.contains("'azureiaasvm'") {
        return Ok(Reply::ok(json!({"value": []})));
    }
    let items: Vec<Value> = ctx.store().view(|r| {
        let vault = crate::vault_record(r, &vid)?;
        Ok::<_, ArmError>(candidates(r, &vault)?.into_iter().map(|v| {
            let vm_id = v.id.as_str();
            let (rg, name) = (rg_of(vm_id), v.name.clone());
            json!({
                "id": format!("{vid}/backupFabrics/Azure/protectionContainers/{}/protectableItems/{}", container_name(&rg, &name), item_name(&rg, &name)),
                "name": item_name(&rg, &name),
                "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectableItems",
                "properties": {
                    "protectableItemType": "Microsoft.Compute/virtualMachines",
                    "backupManagementType": "AzureIaasVM", "workloadType": "VM",
                    "friendlyName": name, "protectionState": "NotProtected",
                    "virtualMachineId": vm_id, "resourceGroup": rg,
                }
            })
        }).collect())
    })?;
    recoverite_arm::paging::page_visible(ctx, req, items)
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let items: Vec<ProtectedItem> = ctx
        .store()
        .view(|r| core_item::list(r, &vid))?
        .into_iter()
        .filter(|i| i.matches(&filter))
        .collect();
    recoverite_arm::paging::page_visible(ctx, req, render(&items)?)
}

pub fn get(ctx: &Ctx, req: &ArmRequest, container: &str, item: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    Ok(Reply::ok(
        ctx.store()
            .view(|r| load(r, &vid, container, item))?
            .to_value()?,
    ))
}

/// What a PUT of an Azure VM's item asks for.
#[derive(Debug, PartialEq)]
enum ItemRequest {
    /// Undelete a soft-deleted item (`isRehydrate`).
    Undelete,
    /// Stop protection, keeping the data (`protectionState: ProtectionStopped`).
    Stop,
    /// Protect the VM with a policy, change its policy, or resume protection.
    Protect { policy_id: String },
}

impl ItemRequest {
    fn of(p: &Value) -> Result<ItemRequest, ArmError> {
        if p["isRehydrate"].as_bool() == Some(true) {
            return Ok(ItemRequest::Undelete);
        }
        if p["protectionState"].as_str() == Some("ProtectionStopped") {
            return Ok(ItemRequest::Stop);
        }
        match p["policyId"].as_str().filter(|s| !s.is_empty()) {
            Some(id) => Ok(ItemRequest::Protect {
                policy_id: id.to_string(),
            }),
            None => Err(ArmError::invalid_parameter(
                "properties.policyId",
                "Protecting a VM needs a backup policy id (for example the vault's DefaultPolicy).",
            )),
        }
    }
}

/// The policy an Azure VM is protected with: an AzureIaasVM policy of the
/// vault with room for one more item.
fn vm_policy(tx: &WriteTx, vid: &str, policy_id: &str) -> Result<Policy, ArmError> {
    let pol = policy::find(tx, vid, policy_id)?.ok_or_else(|| policy::not_found(policy_id))?;
    let name = &pol.name;
    if pol.vm().is_none() {
        return Err(ArmError::bad_request(
            "BMSUserErrorInvalidPolicy",
            format!("Policy '{name}' is not an Azure VM (AzureIaasVM) policy."),
        ));
    }
    let in_use = count_with_policy(tx, vid, &pol.id)?;
    if in_use >= MAX_ITEMS_PER_POLICY {
        return Err(ArmError::bad_request("BMSUserErrorPolicyFull", format!("Policy '{name}' already protects {MAX_ITEMS_PER_POLICY} items; use another policy.")));
    }
    Ok(pol)
}

/// A new item for a VM, protected with `pol`: no point yet (`IRPending`).
fn new_vm_item(vault: &Vault, rid: &str, name: &str, vm: &Vm, pol: &Policy) -> ProtectedItem {
    let rg = rg_of(&vm.id);
    let workload = Workload::Vm(VmItem {
        source_resource_id: vm.id.clone(),
        virtual_machine_id: vm.id.clone(),
        protection_status: "Healthy".into(),
        health_status: "Passed".into(),
        protected_item_data_id: uuid::Uuid::new_v4().to_string(),
        create_mode: "Default".into(),
    });
    let new = NewItem {
        protected_item_type: "Microsoft.Compute/virtualMachines",
        workload,
        workload_type: "VM",
        container_name: &container_name(&rg, &vm.name),
        friendly_name: &vm.name,
    };
    let mut properties = ItemProperties::new(new, &vault.id);
    properties.policy_id = pol.id.clone();
    properties.policy_name = pol.name.clone();
    properties.extended_info.policy_inconsistent = Some(false);
    ProtectedItem {
        id: rid.to_string(),
        name: name.to_string(),
        kind: ITEM_TYPE.to_string(),
        location: vault.location.clone(),
        properties,
    }
}

/// PUT of a protected item: enable protection (with a policy), change its
/// policy, stop protection keeping the data (`protectionState:
/// ProtectionStopped`), or undelete a soft-deleted item (`isRehydrate`).
pub fn put(ctx: &Ctx, req: &ArmRequest, container: &str, item: &str) -> Result<Reply, ArmError> {
    let body: Value = req.body_as()?;
    let p = body.get("properties").cloned().unwrap_or(json!({}));
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let rid = item_id(&vid, container, item);
    if ctx
        .store()
        .view(|r| core_item::load(r, &rid))?
        .is_some_and(|d| d.is_mab())
    {
        return put_mab(ctx, req, &vid, &rid, &p);
    }
    let (rg, vm_name) = parse_workload_name(item)
        .ok_or_else(|| ArmError::invalid_parameter("protectedItemName", format!("'{item}' is not an Azure VM item name; use vm;iaasvmcontainerv2;{{resourceGroup}};{{vm}}.")))?;
    let vm_id = p["sourceResourceId"].as_str().or(p["virtualMachineId"].as_str()).map(str::to_string).unwrap_or_else(|| {
        let sub = id::parse_id(&vid).and_then(|x| x.subscription).unwrap_or_default();
        format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm_name}")
    });
    let wanted = ItemRequest::of(&p)?;
    // Protecting a VM takes the right to read it, as the caller.
    if matches!(wanted, ItemRequest::Protect { .. }) {
        ctx.require_linked(
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
            &rid,
            "Microsoft.Compute/virtualMachines/read",
            &vm_id,
        )?;
    }
    let job = ctx.store().write(|tx| {
        policy::ensure_defaults(tx, &vid)?;
        let existing = core_item::load(tx, &rid)?;
        let now = recoverite_arm::time::now();
        let (op, operation, task) = match &wanted {
            ItemRequest::Undelete => (BackupOp::Undelete, "Undelete", "Undelete"),
            ItemRequest::Stop => (BackupOp::StopKeepingData, "DisableBackup", "Disable backup"),
            ItemRequest::Protect { policy_id } => {
                let pol = vm_policy(tx, &vid, policy_id)?;
                let bag = json!({"Policy Name": pol.name});
                let d = match existing {
                    // Change policy, or resume a stopped protection.
                    Some(mut d) => {
                        d.apply(BackupOp::Configure, now)?;
                        d.properties.policy_id = pol.id.clone();
                        d.properties.policy_name = pol.name.clone();
                        d
                    }
                    None => protect_vm(tx, &vid, &rid, item, &vm_id, &vm_name, &pol)?,
                };
                d.save(tx)?;
                return jobs::record(
                    tx,
                    &vid,
                    "ConfigureBackup",
                    &d,
                    &[("Configure backup", 0)],
                    bag,
                );
            }
        };
        let mut d = existing.ok_or_else(|| not_found(item))?;
        d.apply(op, now)?;
        d.save(tx)?;
        jobs::record(tx, &vid, operation, &d, &[(task, 0)], json!({}))
    })?;
    jobs::accepted(ctx, req, &vid, &rid, &job)
}

/// Protects a VM for the first time: it must exist, be in the vault's
/// region and not be protected already (checked in the transaction that
/// writes the item, so two racing requests cannot both protect it).
fn protect_vm(
    tx: &mut WriteTx,
    vid: &str,
    rid: &str,
    item: &str,
    vm_id: &str,
    vm_name: &str,
    pol: &Policy,
) -> Result<ProtectedItem, ArmError> {
    let vault = crate::vault_record(tx, vid)?;
    let (vm, _) = disks::of_vm(tx, vm_id)?.ok_or_else(|| {
        ArmError::bad_request(
            "BMSUserErrorVmNotFound",
            format!("The VM '{vm_id}' was not found; check its resource group and name."),
        )
    })?;
    // `az backup protection enable-for-vm`: the VM must be in the vault's region.
    let (vm_loc, vault_loc) = (vm.location.as_str(), &vault.location);
    if !vm_loc.eq_ignore_ascii_case(vault_loc) {
        return Err(ArmError::bad_request("BMSUserErrorVmNotInVaultRegion", format!("VM '{vm_name}' is in '{vm_loc}' and vault is in '{vault_loc}'; Azure VM backup needs a vault in the VM's region.")));
    }
    let same_vm = |i: &ProtectedItem| id::key(i.vm_id()) == id::key(vm_id);
    if let Some(other) = core_item::list(tx, vid)?.into_iter().find(same_vm) {
        return Err(ArmError::conflict(
            "BMSUserErrorAlreadyProtected",
            format!("VM '{vm_name}' is already protected as '{}'.", other.name),
        ));
    }
    let d = new_vm_item(&vault, rid, item, &vm, pol);
    crate::schedule::start(tx, rid)?;
    // Documents 000 and 001: a vault with items takes no new private endpoints.
    recoverite_rs_core::vault::mark_registered(tx, vid)?;
    Ok(d)
}

/// PUT of a MARS item (the agent makes them by backing up): stop
/// protection keeping the data, resume it, or undelete it.
fn put_mab(
    ctx: &Ctx,
    req: &ArmRequest,
    vid: &str,
    rid: &str,
    p: &Value,
) -> Result<Reply, ArmError> {
    let (op, name, task) = if p["isRehydrate"] == true {
        (BackupOp::Undelete, "Undelete", "Undelete")
    } else if p["protectionState"] == "ProtectionStopped" {
        (BackupOp::StopKeepingData, "DisableBackup", "Disable backup")
    } else if p["protectionState"] == "Protected" {
        (BackupOp::Configure, "ConfigureBackup", "Configure backup")
    } else {
        return Err(ArmError::bad_request("BMSUserErrorInvalidInput", "A MARS item is protected by backing it up from the agent; a PUT may only stop protection (protectionState ProtectionStopped), resume it (Protected) or undelete it (isRehydrate)."));
    };
    let job = ctx.store().write(|tx| {
        let mut d = core_item::load(tx, rid)?.ok_or_else(|| not_found(rid))?;
        d.apply(op, recoverite_arm::time::now())?;
        d.save(tx)?;
        jobs::record(tx, vid, name, &d, &[(task, 0)], json!({}))
    })?;
    jobs::accepted(ctx, req, vid, rid, &job)
}

/// DELETE of a protected item: stop protection and delete its backup data.
/// With soft delete (on unless the vault turned it off) the data is kept 14
/// days and the item says when it goes; otherwise its points go now.
pub fn delete(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let rid = item_id(&vid, container, item);
    let soft = ctx
        .store()
        .view(|r| crate::config::get_config(r, &vid))?
        .soft_delete
        != "Disabled";
    let done = ctx.store().write(|tx| {
        let Some(mut d) = core_item::load(tx, &rid)? else {
            return Ok(None);
        };
        let gone = if soft {
            if d.properties.is_scheduled_for_deferred_delete {
                return Ok(None);
            }
            d.apply(BackupOp::DeleteData, recoverite_arm::time::now())?;
            d.save(tx)?;
            Vec::new()
        } else {
            // Without soft delete the data goes now: points, both tiers, the item.
            let gone = crate::points::forget_points(tx, &rid)?;
            resource::delete_tree(tx, &rid)?;
            gone
        };
        let job = jobs::record(
            tx,
            &vid,
            "DeleteBackupData",
            &d,
            &[("Delete backup data", 0)],
            json!({}),
        )?;
        Ok::<_, ArmError>(Some((job, gone)))
    })?;
    match done {
        Some((j, gone)) => {
            crate::points::free(bp, &gone);
            jobs::accepted_plain(ctx, req, &vid, &j)
        }
        None => Ok(Reply::empty(204)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_body_asks_for_one_thing_and_protecting_needs_a_policy() {
        let of = |v: Value| ItemRequest::of(&v);
        assert_eq!(
            of(json!({"isRehydrate": true, "policyId": "/p"})).unwrap(),
            ItemRequest::Undelete
        );
        assert_eq!(
            of(json!({"protectionState": "ProtectionStopped", "policyId": "/p"})).unwrap(),
            ItemRequest::Stop
        );
        assert_eq!(
            of(json!({"policyId": "/p/DefaultPolicy"})).unwrap(),
            ItemRequest::Protect {
                policy_id: "/p/DefaultPolicy".into()
            }
        );
        for body in [
            json!({}),
            json!({"policyId": ""}),
            json!({"isRehydrate": false}),
        ] {
            let e = of(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.body.message.contains("DefaultPolicy"),
                "{}",
                e.body.message
            );
        }
    }
}
