//! Discovery (refresh, protectable items) and protection of Azure VMs:
//! enable, change policy, stop protection (keeping data), delete backup
//! data (soft delete: kept 14 days, undeletable), and the item lists.

use serde_json::{json, Value};

use recoverite_arm::{id, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rp_compute::disks;
use recoverite_rp_compute::view::Vm;
use recoverite_rs_core::backup_item::{BackupOp, BackupState};
use recoverite_rs_core::vault_record::Vault;
use recoverite_store::Reader;

use crate::{
    container_name, item_name, jobs, parse_workload_name, policy, vault_of, BackupProvider,
    ITEM_TYPE,
};

/// "Deleted backup data is kept for 14 days and can be undeleted in that time."
pub const SOFT_DELETE_DAYS: i64 = 14;

/// `az backup protection enable-for-vm`: "a policy protects at most 1,000 items".
pub const MAX_ITEMS_PER_POLICY: usize = 1000;

pub fn count_with_policy(
    r: &impl Reader,
    vault_id: &str,
    policy_id: &str,
) -> Result<usize, ArmError> {
    Ok(resource::list_of_type(r, vault_id, ITEM_TYPE)?
        .iter()
        .filter(|i| {
            i["properties"]["policyId"]
                .as_str()
                .is_some_and(|p| id::key(p) == id::key(policy_id))
        })
        .filter(|i| i["properties"]["protectionState"] != "ProtectionStopped")
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
) -> Result<Value, ArmError> {
    resource::get(r, &item_id(vault_id, container, item))?.ok_or_else(|| not_found(item))
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
    let protected: Vec<String> = resource::list_of_type(r, vid, ITEM_TYPE)?
        .iter()
        .filter_map(|i| i["properties"]["sourceResourceId"].as_str().map(id::key))
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

/// What azure-cli and the portal filter item lists by.
pub(crate) fn matches(item: &Value, filter: &str) -> bool {
    let p = &item["properties"];
    let check = |key: &str, field: &str| {
        recoverite_rs_core::containers::filter_allows(filter, key, p[field].as_str().unwrap_or(""))
    };
    check("backupManagementType", "backupManagementType")
        && check("itemType", "workloadType")
        && check("policyName", "policyName")
        && check("containerName", "containerName")
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let items: Vec<Value> = ctx
        .store()
        .view(|r| resource::list_of_type(r, &vid, ITEM_TYPE))?
        .into_iter()
        .filter(|i| matches(i, &filter))
        .collect();
    recoverite_arm::paging::page_visible(ctx, req, items)
}

pub fn get(ctx: &Ctx, req: &ArmRequest, container: &str, item: &str) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    Ok(Reply::ok(
        ctx.store().view(|r| load(r, &vid, container, item))?,
    ))
}

/// PUT of a protected item: enable protection (with a policy), change its
/// policy, stop protection keeping the data (`protectionState:
/// ProtectionStopped`), or undelete a soft-deleted item (`isRehydrate`).
pub fn put(ctx: &Ctx, req: &ArmRequest, container: &str, item: &str) -> Result<Reply, ArmError> {
    let body: Value = req.body_as()?;
    let p = body.get("properties").cloned().unwrap_or(json!({}));
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    if let Some(d) = ctx
        .store()
        .view(|r| resource::get(r, &item_id(&vid, container, item)))?
    {
        if d["properties"]["backupManagementType"] == "MAB" {
            return put_mab(ctx, req, &vid, d, &p);
        }
    }
    let (rg, vm_name) = parse_workload_name(item)
        .ok_or_else(|| ArmError::invalid_parameter("protectedItemName", format!("'{item}' is not an Azure VM item name; use vm;iaasvmcontainerv2;{{resourceGroup}};{{vm}}.")))?;
    let rid = item_id(&vid, container, item);
    // Protecting a VM takes the right to read it, as the caller.
    if p["policyId"].as_str().is_some_and(|s| !s.is_empty()) && p["isRehydrate"] != true {
        let vm_id = p["sourceResourceId"].as_str().or(p["virtualMachineId"].as_str()).map(str::to_string).unwrap_or_else(|| {
            let sub = id::parse_id(&vid).and_then(|x| x.subscription).unwrap_or_default();
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm_name}")
        });
        ctx.require_linked(
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
            &rid,
            "Microsoft.Compute/virtualMachines/read",
            &vm_id,
        )?;
    }
    let (doc, job) = ctx.store().write(|tx| {
        policy::ensure_defaults(tx, &vid)?;
        let vault = crate::vault_record(tx, &vid)?;
        let existing = resource::get(tx, &rid)?;
        let now = time::now_string();
        // Undelete within the soft-delete window.
        if p["isRehydrate"].as_bool() == Some(true) {
            let mut d = existing.ok_or_else(|| not_found(item))?;
            let next = transition(&d, BackupOp::Undelete, false)?;
            let pr = &mut d["properties"];
            pr["isScheduledForDeferredDelete"] = json!(false);
            pr["deferredDeleteTimeInUTC"] = Value::Null;
            pr["protectionState"] = json!(next.protection_state());
            resource::put(tx, &rid, &d)?;
            let job = jobs::record(tx, &vid, "Undelete", &d, &[("Undelete", 0)], json!({}))?;
            return Ok((d, job));
        }
        // Stop protection, keeping the data.
        if p["protectionState"].as_str() == Some("ProtectionStopped") {
            let mut d = existing.ok_or_else(|| not_found(item))?;
            let next = transition(&d, BackupOp::StopKeepingData, false)?;
            d["properties"]["protectionState"] = json!(next.protection_state());
            d["properties"]["protectionStatus"] = json!("Healthy");
            d["properties"]["policyId"] = json!("");
            d["properties"]["policyName"] = json!("");
            resource::put(tx, &rid, &d)?;
            let job = jobs::record(tx, &vid, "DisableBackup", &d, &[("Disable backup", 0)], json!({}))?;
            return Ok((d, job));
        }
        let policy_id = p["policyId"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            ArmError::invalid_parameter("properties.policyId", "Protecting a VM needs a backup policy id (for example the vault's DefaultPolicy).")
        })?;
        let pol = policy::find(tx, &vid, policy_id)?.ok_or_else(|| policy::not_found(policy_id))?;
        if pol["properties"]["backupManagementType"] != "AzureIaasVM" {
            return Err(ArmError::bad_request("BMSUserErrorInvalidPolicy", format!("Policy '{}' is not an Azure VM (AzureIaasVM) policy.", pol["name"].as_str().unwrap_or(""))));
        }
        let pol_id = pol["id"].as_str().unwrap_or_default().to_string();
        if count_with_policy(tx, &vid, &pol_id)? >= MAX_ITEMS_PER_POLICY {
            return Err(ArmError::bad_request("BMSUserErrorPolicyFull", format!("Policy '{}' already protects {MAX_ITEMS_PER_POLICY} items; use another policy.", pol["name"].as_str().unwrap_or(""))));
        }
        if let Some(mut d) = existing {
            // Change policy, or resume a stopped protection.
            let has_point = !d["properties"]["lastRecoveryPoint"].is_null();
            let next = transition(&d, BackupOp::Configure, has_point)?;
            let pr = &mut d["properties"];
            pr["policyId"] = json!(pol_id);
            pr["policyName"] = pol["name"].clone();
            pr["protectionState"] = json!(next.protection_state());
            resource::put(tx, &rid, &d)?;
            let job = jobs::record(tx, &vid, "ConfigureBackup", &d, &[("Configure backup", 0)], json!({"Policy Name": pol["name"]}))?;
            return Ok((d, job));
        }
        let vm_id = p["sourceResourceId"].as_str().or(p["virtualMachineId"].as_str()).map(str::to_string).unwrap_or_else(|| {
            let sub = id::parse_id(&vid).and_then(|x| x.subscription).unwrap_or_default();
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm_name}")
        });
        let (vm, _) = disks::of_vm(tx, &vm_id)?.ok_or_else(|| {
            ArmError::bad_request("BMSUserErrorVmNotFound", format!("The VM '{vm_id}' was not found; check its resource group and name."))
        })?;
        // `az backup protection enable-for-vm`: the VM must be in the vault's region.
        let (vm_loc, vault_loc) = (vm.location.as_str(), &vault.location);
        if !vm_loc.eq_ignore_ascii_case(vault_loc) {
            return Err(ArmError::bad_request("BMSUserErrorVmNotInVaultRegion", format!("VM '{vm_name}' is in '{vm_loc}' and vault is in '{vault_loc}'; Azure VM backup needs a vault in the VM's region.")));
        }
        if let Some(other) = resource::list_of_type(tx, &vid, ITEM_TYPE)?.into_iter().find(|i| i["properties"]["sourceResourceId"].as_str().map(id::key) == Some(id::key(&vm_id))) {
            return Err(ArmError::conflict("BMSUserErrorAlreadyProtected", format!("VM '{vm_name}' is already protected as '{}'.", other["name"].as_str().unwrap_or(""))));
        }
        let d = json!({
            "id": rid, "name": item, "type": ITEM_TYPE, "location": vault.location,
            "properties": {
                "protectedItemType": "Microsoft.Compute/virtualMachines",
                "backupManagementType": "AzureIaasVM", "workloadType": "VM",
                "containerName": container_name(&rg, &vm_name),
                "sourceResourceId": vm.id, "virtualMachineId": vm.id,
                "friendlyName": vm.name, "policyId": pol_id, "policyName": pol["name"],
                "protectionStatus": "Healthy", "protectionState": "IRPending", "healthStatus": "Passed",
                "lastBackupStatus": "", "lastRecoveryPoint": null, "protectedItemDataId": uuid::Uuid::new_v4().to_string(),
                "isScheduledForDeferredDelete": false, "createMode": "Default",
                "extendedInfo": {"recoveryPointCount": 0, "policyInconsistent": false},
                "vaultId": vid,
            }
        });
        resource::put(tx, &rid, &d)?;
        crate::schedule::start(tx, &rid)?;
        // Documents 000 and 001: a vault with items takes no new private endpoints.
        recoverite_rs_core::vault::mark_registered(tx, &vid)?;
        let job = jobs::record(tx, &vid, "ConfigureBackup", &d, &[("Configure backup", 0)], json!({"Policy Name": pol["name"]}))?;
        let _ = now;
        Ok::<_, ArmError>((d, job))
    })?;
    let _ = doc;
    jobs::accepted(ctx, req, &vid, &rid, &job)
}

/// PUT of a MARS item (the agent makes them by backing up): stop
/// protection keeping the data, resume it, or undelete it.
fn put_mab(
    ctx: &Ctx,
    req: &ArmRequest,
    vid: &str,
    existing: Value,
    p: &Value,
) -> Result<Reply, ArmError> {
    let rid = existing["id"].as_str().unwrap_or_default().to_string();
    let job = ctx.store().write(|tx| {
        let mut d = resource::get(tx, &rid)?.unwrap_or(existing);
        let has_point = !d["properties"]["lastBackupTime"].is_null();
        let (op, name, task) = if p["isRehydrate"] == true {
            (BackupOp::Undelete, "Undelete", "Undelete")
        } else if p["protectionState"] == "ProtectionStopped" {
            (BackupOp::StopKeepingData, "DisableBackup", "Disable backup")
        } else if p["protectionState"] == "Protected" {
            (BackupOp::Configure, "ConfigureBackup", "Configure backup")
        } else {
            return Err(ArmError::bad_request("BMSUserErrorInvalidInput", "A MARS item is protected by backing it up from the agent; a PUT may only stop protection (protectionState ProtectionStopped), resume it (Protected) or undelete it (isRehydrate)."));
        };
        let next = transition(&d, op, has_point)?;
        let pr = &mut d["properties"];
        if op == BackupOp::Undelete {
            pr["isScheduledForDeferredDelete"] = json!(false);
            pr["deferredDeleteTimeInUTC"] = Value::Null;
        }
        pr["protectionState"] = json!(next.protection_state());
        resource::put(tx, &rid, &d)?;
        jobs::record(tx, vid, name, &d, &[(task, 0)], json!({}))
    })?;
    jobs::accepted(ctx, req, vid, &rid, &job)
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
    if !soft {
        // Without soft delete the data goes now: points, both tiers, the item.
        let job = ctx.store().write(|tx| {
            let Some(d) = resource::get(tx, &rid)? else {
                return Ok(None);
            };
            let gone = crate::points::forget_points(tx, &rid)?;
            resource::delete_tree(tx, &rid)?;
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
        return match job {
            Some((j, gone)) => {
                crate::points::free(bp, &gone);
                jobs::accepted_plain(ctx, req, &vid, &j)
            }
            None => Ok(Reply::empty(204)),
        };
    }
    let job = ctx.store().write(|tx| {
        let Some(mut d) = resource::get(tx, &rid)? else {
            return Ok(None);
        };
        if d["properties"]["isScheduledForDeferredDelete"] == true {
            return Ok(None);
        }
        let next = transition(&d, BackupOp::DeleteData, false)?;
        let until = time::now() + ::time::Duration::days(SOFT_DELETE_DAYS);
        let pr = &mut d["properties"];
        pr["protectionState"] = json!(next.protection_state());
        pr["isScheduledForDeferredDelete"] = json!(true);
        pr["deferredDeleteTimeInUTC"] = json!(time::format(until));
        pr["deferredDeleteTimeRemaining"] = json!(format!("P{SOFT_DELETE_DAYS}D"));
        pr["policyId"] = json!("");
        resource::put(tx, &rid, &d)?;
        Ok::<_, ArmError>(Some(jobs::record(
            tx,
            &vid,
            "DeleteBackupData",
            &d,
            &[("Delete backup data", 0)],
            json!({}),
        )?))
    })?;
    match job {
        Some(j) => jobs::accepted_plain(ctx, req, &vid, &j),
        None => Ok(Reply::empty(204)),
    }
}

/// The state an operation leads an item to, checked against the item as
/// stored in the transaction that writes the result.
/// `has_point`: the item has a recovery point (a resumed protection is then
/// `Protected`, else `IRPending`).
fn transition(item: &Value, op: BackupOp, has_point: bool) -> Result<BackupState, ArmError> {
    let state = BackupState::of_item(item).map_err(|e| e.to_arm())?;
    state.check(op).map_err(|e| e.to_arm())?;
    Ok(state.after(op, has_point))
}
