//! Cross-region restore (CRR): with GeoRedundant storage and cross-region
//! restore on, each recovery point's vault-tier data is copied to the
//! vault's paired region once it has aged past the replication lag, into
//! a second chunk store (only the chunks the copy lacks travel). The
//! secondary region then lists the item and those points, and restores
//! disks from its own copy into resources of the paired region.
//!
//! The API is Azure's "passive stamp" (api-version 2021-11-15): the same
//! vault paths answer the secondary region's view, and
//! `locations/{region}/backup*` carry the token, the restore, its jobs and
//! its operation status, as azure-cli's `--use-secondary-region` follows
//! them.

use recoverite_rs_core::jobs::JobStatus;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{id, regions, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_backup_store::ChunkStore;
use recoverite_rs_core::backup_config::{self, VaultConfig};
use recoverite_rs_core::vault_record::Vault;
use recoverite_store::{Reader, Store, Table, WriteTx};

use crate::backup_job::BackupJob;
use crate::items::{item_id, load};
use crate::jobs::{self, filter_value, parse_filter_time};
use crate::points::{self, PointData, POINT_DATA};
use crate::recovery_point::{self, RecoveryPoint};
use crate::{vault_of, BackupProvider};
use recoverite_rs_core::backup_item::{self as core_item, ProtectedItem};

/// The passive stamp's api-version: on vault paths it asks for the
/// secondary region's view.
pub const API_VERSION: &str = "2021-11-15";
/// Backup data reaches the paired region within 12 hours of the point
/// (Azure: the secondary region's RPO is the primary's 24 hours plus up to
/// 12 hours of replication).
pub const LAG_HOURS: i64 = 12;
/// A CRR access token lasts this long.
const TOKEN_MINUTES: i64 = 60;

const TOKENS: Table = Table("backup_crr_tokens");
/// `{vault key}|{job id}` → the job document, seen only in the secondary region.
const CRR_JOBS: Table = Table("backup_crr_jobs");
const CRR_OPERATIONS: Table = Table("backup_crr_operations");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecondaryCopy {
    pub region: String,
    pub copied_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Token {
    vault_id: String,
    item_id: String,
    point_id: String,
    expires: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrrOperation {
    id: String,
    region: String,
    vault_id: String,
    status: String,
    start_time: String,
    end_time: String,
    job_id: Option<String>,
}

/// Whether a request on a vault path asks for the secondary region's view.
pub fn is_secondary_view(req: &ArmRequest) -> bool {
    req.api_version == API_VERSION
}

/// The vault tier's copy in `region` (the vault's paired region).
pub fn secondary_store(
    bp: &BackupProvider,
    vault_numeric_id: u64,
    region: &str,
) -> Result<ChunkStore, ArmError> {
    Ok(bp.tier(&format!(
        "{vault_numeric_id}.{}",
        region.to_ascii_lowercase()
    )))
}

/// The paired region of a vault's region, where its CRR copies go.
pub fn paired_region(location: &str) -> Option<String> {
    regions::find(location)
        .and_then(|r| r.paired)
        .map(str::to_string)
}

/// "With GeoRedundant storage and cross-region restore on, points become
/// available in the paired region after the replication lag": whether a
/// point taken at `point_time` is copied now.
pub fn due_for_copy(
    config: &VaultConfig,
    point_time: ::time::OffsetDateTime,
    now: ::time::OffsetDateTime,
) -> bool {
    config.storage_type == "GeoRedundant"
        && config.cross_region_restore
        && point_time + ::time::Duration::hours(LAG_HOURS) <= now
}

fn vault_of_point(point_id: &str) -> String {
    point_id.split('/').take(9).collect::<Vec<_>>().join("/")
}

/// Copies the points that are due to the paired region (on the emulator
/// clock), each recorded only once all its disks are there.
pub fn replicate(store: &Store, bp: &BackupProvider) -> Result<(), ArmError> {
    let now = time::now();
    let due: Vec<(String, PointData, String)> = store.view(|r| {
        let mut out = Vec::new();
        for (key, data) in r.scan_json::<PointData>(POINT_DATA, "")? {
            if data.secondary.is_some() {
                continue;
            }
            let Some(doc) = recovery_point::load(r, &key)? else {
                continue;
            };
            let config = backup_config::get_config(r, &vault_of_point(&key))?;
            let taken = doc.time();
            if taken.is_some_and(|t| due_for_copy(&config, t, now)) {
                if let Some(region) = paired_region(&data.location) {
                    out.push((key, data, region));
                }
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    for (key, data, region) in due {
        let primary = points::store_of(bp, data.vault_numeric_id)?;
        let secondary = secondary_store(bp, data.vault_numeric_id, &region)?;
        let mut copied = 0;
        for d in &data.disks {
            copied += primary
                .replicate_to(&secondary, &d.manifest)
                .map_err(points::io)?;
        }
        store.write(|tx| {
            // Pruned meanwhile: the copy is garbage the next prune collects.
            if let Some(mut d) = tx.get_json::<PointData>(POINT_DATA, &key)? {
                d.secondary = Some(SecondaryCopy {
                    region: region.clone(),
                    copied_at: time::now_string(),
                });
                tx.put_json(POINT_DATA, &key, &d)?;
            }
            Ok::<_, ArmError>(())
        })?;
        tracing::info!(point = %key, region = %region, bytes = copied, "recovery point copied to the paired region");
    }
    Ok(())
}

fn secondary_points(r: &impl Reader, item_id: &str) -> Result<Vec<RecoveryPoint>, ArmError> {
    let mut out = Vec::new();
    for p in recovery_point::of_item(r, item_id)? {
        if points::point_data(r, &p.id)?.is_some_and(|d| d.secondary.is_some()) {
            // Only the vault tier is copied: no snapshot in the paired region.
            out.push(p.with_tiers(false));
        }
    }
    Ok(out)
}

/// `GET {vault}/backupProtectedItems` (2021-11-15): the items with points
/// in the paired region.
pub fn protected_items(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let filter = req.query_get("$filter").unwrap_or("").to_string();
    let items: Vec<ProtectedItem> = ctx.store().view(|r| {
        let mut out = Vec::new();
        for i in core_item::list(r, &vid)? {
            if i.matches(&filter) && !secondary_points(r, &i.id)?.is_empty() {
                out.push(i);
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    recoverite_arm::paging::page_visible(ctx, req, crate::items::render(&items)?)
}

/// `GET …/recoveryPoints` (2021-11-15): the points in the paired region.
pub fn points_list(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    let f = req.query_get("$filter").unwrap_or("").to_string();
    let from = filter_value(&f, "startDate").and_then(|t| parse_filter_time(&t));
    let to = filter_value(&f, "endDate").and_then(|t| parse_filter_time(&t));
    let mut list = ctx.store().view(|r| {
        load(r, &vid, container, item)?;
        secondary_points(r, &item_id(&vid, container, item))
    })?;
    list.retain(|p| p.taken_within(from, to));
    list.reverse();
    let list = list
        .iter()
        .map(RecoveryPoint::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    recoverite_arm::paging::page_visible(ctx, req, list)
}

/// `GET …/recoveryPoints/{rp}` (2021-11-15).
pub fn point_get(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let vid = ctx.store().view(|r| vault_of(r, req))?;
    ctx.store()
        .view(|r| {
            load(r, &vid, container, item)?;
            secondary_points(r, &item_id(&vid, container, item))
        })?
        .into_iter()
        .find(|p| p.name.eq_ignore_ascii_case(point))
        .ok_or_else(|| not_in_secondary(point))?
        .to_value()
        .map(Reply::ok)
}

fn not_in_secondary(point: &str) -> ArmError {
    ArmError::new(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        format!("The recovery point '{point}' is not in the secondary region (yet): points reach it {LAG_HOURS} hours after they are taken, once cross-region restore is on."),
    )
}

/// `GET locations/{region}/backupAadProperties`: who the CRR token is for.
pub fn aad_properties(ctx: &Ctx, region: &str) -> Result<Reply, ArmError> {
    let geo = recoverite_rp_recoveryservices::target::geo(region);
    Ok(Reply::ok(json!({"properties": {
        "tenantId": ctx.env().tenant_id,
        "audience": format!("https://RecoveryServices/IaasCoord/aadmgmt/{geo}"),
        "servicePrincipalClientId": "262044b1-e2ce-469f-a196-69ab7ada62d3",
        "servicePrincipalObjectId": "262044b1-e2ce-469f-a196-69ab7ada62d3",
        "authority": "https://login.windows.net",
    }})))
}

/// `POST …/recoveryPoints/{rp}/accessToken`: a short-lived token that names
/// the point to the secondary region's restore.
pub fn access_token(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let (vid, pid) = points::point_path(ctx, req, container, item, point)?;
    let rid = item_id(&vid, container, item);
    let (it, vault, doc, data, config) = ctx.store().view(|r| {
        let it = load(r, &vid, container, item)?;
        let doc = recovery_point::load(r, &pid)?.ok_or_else(|| not_in_secondary(point))?;
        let data = points::point_data(r, &pid)?.ok_or_else(|| not_in_secondary(point))?;
        let vault = crate::vault_record(r, &vid)?;
        Ok::<_, ArmError>((it, vault, doc, data, backup_config::get_config(r, &vid)?))
    })?;
    if !config.cross_region_restore {
        return Err(ArmError::bad_request(
            "BMSUserErrorCrossRegionRestoreNotEnabled",
            "Cross-region restore is not enabled for this vault; turn it on in backupstorageconfig (crossRegionRestoreFlag) first.",
        ));
    }
    if data.secondary.is_none() {
        return Err(not_in_secondary(point));
    }
    let token = format!("crr-{}", uuid::Uuid::new_v4().simple());
    let expires = time::format(time::now() + ::time::Duration::minutes(TOKEN_MINUTES));
    ctx.store().write(|tx| {
        tx.put_json(
            TOKENS,
            &token,
            &Token {
                vault_id: vid.clone(),
                item_id: rid.clone(),
                point_id: pid.clone(),
                expires: expires.clone(),
            },
        )?;
        Ok::<_, ArmError>(())
    })?;
    let vm_id = it.vm_id();
    let parsed = recoverite_arm::id::parse_id(&vid);
    Ok(Reply::ok(json!({
        "properties": {
            "objectType": "CrrAccessToken",
            "accessTokenString": token,
            "subscriptionId": parsed.as_ref().and_then(|p| p.subscription.clone()),
            "resourceGroupName": parsed.as_ref().and_then(|p| p.resource_group.clone()),
            "resourceName": vault.name,
            "resourceId": vid,
            "protectionContainerId": 0,
            "recoveryPointId": point,
            "recoveryPointTime": doc.time_str(),
            "containerName": container,
            "containerType": "IaasVMContainer",
            "backupManagementType": "AzureIaasVM",
            "datasourceType": "VM",
            "datasourceName": vm_id.rsplit('/').next().unwrap_or(""),
            "datasourceId": vm_id,
            "datasourceContainerName": container,
            "rpTierInformation": {"HardenedRP": "Valid"},
            "rpIsManagedVirtualMachine": true,
            "rpVMSizeDescription": data.vm_size,
            "bMSActiveRegion": vault.location,
            "tokenExtendedInformation": expires,
        }
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrrRestoreProps {
    object_type: Option<String>,
    recovery_type: Option<String>,
    recovery_point_id: Option<String>,
    target_resource_group_id: Option<String>,
    storage_account_id: Option<String>,
    region: Option<String>,
    #[serde(default)]
    restore_disk_lun_list: Option<Vec<i64>>,
    target_virtual_machine_id: Option<String>,
    subnet_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrrRequest {
    cross_region_restore_access_details: Value,
    restore_request: CrrRestoreProps,
}

/// Cross-region restore of an Azure VM: `RestoreDisks`, or
/// `AlternateLocation` with the VM to create (`targetVirtualMachineId`) and
/// its subnet (`subnetId`) in the secondary region. Returns those two for
/// AlternateLocation.
pub fn crr_recovery_type(
    recovery_type: Option<&str>,
    vm_id: Option<&str>,
    subnet_id: Option<&str>,
) -> Result<Option<(String, String)>, ArmError> {
    match recovery_type {
        Some("RestoreDisks") => Ok(None),
        Some("AlternateLocation") => match (vm_id, subnet_id) {
            (Some(v), Some(s)) if !v.is_empty() && !s.is_empty() => Ok(Some((v.to_string(), s.to_string()))),
            _ => Err(ArmError::invalid_parameter(
                "restoreRequest.targetVirtualMachineId",
                "An AlternateLocation restore creates a VM in the secondary region: give targetVirtualMachineId and subnetId there.",
            )),
        },
        other => Err(ArmError::invalid_parameter(
            "restoreRequest.recoveryType",
            format!("Cross-region restore of an Azure VM is RestoreDisks or AlternateLocation, not '{}'.", other.unwrap_or("")),
        )),
    }
}

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, msg)
}

/// Documents 001 and 004: "you can do cross-region restore over a private
/// endpoint by replicating the private endpoint in a secondary region" —
/// a vault reached through Backup private endpoints restores across
/// regions through an approved `AzureBackup_secondary` endpoint.
pub fn check_secondary_endpoint(
    backup_endpoints: usize,
    secondary_endpoints: usize,
    vault: &str,
) -> Result<(), ArmError> {
    if backup_endpoints > 0 && secondary_endpoints == 0 {
        return Err(bad(
            "BMSUserErrorCrrSecondaryPrivateEndpointMissing",
            format!("Vault '{vault}' uses private endpoints for Azure Backup, so cross-region restore needs a private endpoint in the secondary region too: create one with groupIds ['AzureBackup_secondary'] (it may be added after items are protected), then restore again."),
        ));
    }
    Ok(())
}

/// `POST locations/{region}/backupCrossRegionRestore`: restores the disks of
/// a point from the paired region's copy into a resource group there, as
/// the caller. 202, then `backupCrrOperationsStatus/{id}` → `jobId`.
pub fn trigger(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    region: &str,
) -> Result<Reply, ArmError> {
    let body: CrrRequest = req.body_as()?;
    let token = body.cross_region_restore_access_details["accessTokenString"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let p = body.restore_request;
    if p.object_type
        .as_deref()
        .is_some_and(|o| o != "IaasVMRestoreRequest")
    {
        return Err(ArmError::invalid_parameter(
            "restoreRequest.objectType",
            "Cross-region restore of an Azure VM takes an IaasVMRestoreRequest.",
        ));
    }
    let alternate = crr_recovery_type(
        p.recovery_type.as_deref(),
        p.target_virtual_machine_id.as_deref(),
        p.subnet_id.as_deref(),
    )?;
    let t = valid_token(ctx, &token, p.recovery_point_id.as_deref())?;
    // The caller restores what it may restore in the primary region.
    ctx.require(
        "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
        &t.point_id,
    )?;
    let target_rg = p.target_resource_group_id.clone().ok_or_else(|| {
        ArmError::invalid_parameter("restoreRequest.targetResourceGroupId", "Cross-region restore writes the disks into a resource group of the secondary region: give targetResourceGroupId.")
    })?;
    let (it, data, vault) = ctx.store().view(|r| {
        let it = core_item::load(r, &t.item_id)?
            .ok_or_else(|| bad("BMSUserErrorItemNotFound", "The backup item was removed."))?;
        let data =
            points::point_data(r, &t.point_id)?.ok_or_else(|| not_in_secondary(&t.point_id))?;
        let vault = crate::vault_record(r, &t.vault_id)?;
        Ok::<_, ArmError>((it, data, vault))
    })?;
    let copy = data
        .secondary
        .clone()
        .ok_or_else(|| not_in_secondary(&t.point_id))?;
    if !copy.region.eq_ignore_ascii_case(region)
        || p.region
            .as_deref()
            .is_some_and(|x| !x.eq_ignore_ascii_case(region))
    {
        return Err(bad("BMSUserErrorCrrRegionMismatch", format!("Vault '{}' in '{}' restores across regions into its paired region '{}', not '{region}'.", &vault.name, &vault.location, copy.region)));
    }
    ctx.store().view(|r| {
        check_secondary_target(
            r,
            &t.vault_id,
            &vault,
            &target_rg,
            p.storage_account_id.as_deref(),
            region,
        )
    })?;
    ctx.require_linked(
        "Microsoft.RecoveryServices/locations/backupCrossRegionRestore/action",
        &t.point_id,
        "Microsoft.Compute/disks/write",
        &target_rg,
    )?;
    let point = t
        .point_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let store = secondary_store(bp, data.vault_numeric_id, &copy.region)?;
    let luns = p.restore_disk_lun_list.clone();
    // As every restore, it runs after its 202: the job (in the secondary
    // region's job list) is InProgress until the disks are made.
    let (job, op) = start_crr_job(ctx, &t.vault_id, &it, region)?;
    let (ctx2, req2, bp2, to) = (ctx.clone(), req.clone(), bp.clone(), region.to_string());
    let vault_id = t.vault_id.clone();
    std::thread::spawn(move || {
        let (ctx, req, bp) = (&ctx2, &req2, &bp2);
        let chosen: Vec<&points::PointDisk> = data
            .disks
            .iter()
            .filter(|d| d.lun < 0 || luns.as_ref().is_none_or(|l| l.contains(&d.lun)))
            .collect();
        let done = (|| {
            let written =
                points::restore_disks(ctx, bp, &store, &chosen, false, &point, &target_rg, &to)?;
            // AlternateLocation: a VM on the restored disks in the secondary
            // region, made as the caller; if it cannot be, the disks go again.
            if let Some((vm_id, subnet_id)) = &alternate {
                if let Err(e) =
                    points::bring_up_vm(ctx, req, bp, vm_id, subnet_id, &data, &written, &to)
                {
                    points::discard_restored(ctx, bp, &written);
                    return Err(e);
                }
            }
            let ids: Vec<&str> = written.iter().map(|(_, _, i)| i.as_str()).collect();
            let mut bag = json!({
                "Recovery point": point,
                "Restore source": "Vault (secondary region)",
                "Restore type": if alternate.is_some() { "AlternateLocation" } else { "RestoreDisks" },
                "Target region": to,
                "Target resource group": target_rg,
                "Restored disks": ids.join(","),
            });
            if let Some((vm_id, _)) = &alternate {
                bag["Target VM"] = json!(vm_id);
            }
            Ok(bag)
        })();
        if let Err(e) = ctx
            .store()
            .write(|tx| end_crr_job(tx, &vault_id, &job, &done))
        {
            tracing::warn!("ending cross-region restore job {job}: {}", e.body.message);
        }
        jobs::release(&job);
    });
    Ok(crr_accepted(ctx, req, region, &op))
}

/// The access token a cross-region restore presents: known, not expired,
/// and for the point the request names.
fn valid_token(ctx: &Ctx, token: &str, point: Option<&str>) -> Result<Token, ArmError> {
    let t: Token = ctx
        .store()
        .read(|r| Ok(r.get_json::<Token>(TOKENS, token)))??
        .filter(|t| time::parse(&t.expires).is_some_and(|e| e > time::now()))
        .ok_or_else(|| bad("BMSUserErrorCrrAccessTokenInvalid", "The cross-region restore access token is unknown or expired; get a new one with the recovery point's accessToken."))?;
    if point.is_some_and(|rp| {
        !t.point_id
            .to_ascii_lowercase()
            .ends_with(&format!("/{}", rp.to_ascii_lowercase()))
    }) {
        return Err(ArmError::invalid_parameter(
            "restoreRequest.recoveryPointId",
            "The recovery point is not the one the access token was issued for.",
        ));
    }
    Ok(t)
}

/// Where a cross-region restore writes: through the vault's secondary
/// endpoint when it has private endpoints (document 001), into an existing
/// group, staging through an account in the secondary region.
fn check_secondary_target(
    r: &impl Reader,
    vault_id: &str,
    vault: &Vault,
    target_rg: &str,
    staging: Option<&str>,
    region: &str,
) -> Result<(), ArmError> {
    let (mut primary, mut secondary) = (0, 0);
    for c in recoverite_privatelink::of_target(r, vault_id)? {
        if c.carries_traffic() {
            if c.group_ids.iter().any(|g| g == "AzureBackup") {
                primary += 1;
            }
            if c.group_ids.iter().any(|g| g == "AzureBackup_secondary") {
                secondary += 1;
            }
        }
    }
    check_secondary_endpoint(primary, secondary, &vault.name)?;
    if !recoverite_rp_resources::groups::group_exists(r, target_rg)? {
        return Err(bad(
            "BMSUserErrorTargetResourceGroupNotFound",
            format!("The target resource group '{target_rg}' does not exist; create it first."),
        ));
    }
    let staging = ("restoreRequest.storageAccountId", staging);
    points::check_staging(r, staging, region, "the secondary region")?;
    Ok(())
}

/// Records the finished cross-region restore's job and operation (in the
/// secondary region's tables); returns the operation's id.
/// Cross-region restores accepted and not ended, by `{vault key}|{job}`.
const CRR_ACCEPTED: Table = Table("backup_crr_accepted");

/// Starts a cross-region restore's job, `InProgress` in the secondary
/// region's job list, and the operation a client polls for it.
fn start_crr_job(
    ctx: &Ctx,
    vault_id: &str,
    item: &ProtectedItem,
    region: &str,
) -> Result<(String, String), ArmError> {
    let mut doc = jobs::running_job(
        vault_id,
        "CrossRegionRestore",
        item,
        &["Transfer data", "Create disks"],
        true,
    );
    doc.properties.actions_info.clear();
    let job_id = doc.name.clone();
    let key = format!("{}|{job_id}", id::key(vault_id));
    jobs::claim(&job_id);
    let op = uuid::Uuid::new_v4().to_string();
    let now = time::now_string();
    let stored = ctx.store().write(|tx| {
        tx.put_json(CRR_JOBS, &key, &doc)?;
        tx.put_json(CRR_ACCEPTED, &key, &job_id)?;
        tx.put_json(
            CRR_OPERATIONS,
            &op,
            &CrrOperation {
                id: op.clone(),
                region: region.to_ascii_lowercase(),
                vault_id: vault_id.to_string(),
                status: "Succeeded".into(),
                start_time: now.clone(),
                end_time: now,
                job_id: Some(job_id.clone()),
            },
        )?;
        Ok::<_, ArmError>(())
    });
    match stored {
        Ok(()) => Ok((job_id, op)),
        Err(e) => {
            jobs::release(&job_id);
            Err(e)
        }
    }
}

/// Ends a cross-region restore's job: `Completed` with what it restored, or
/// `Failed` with why; it is no longer accepted.
fn end_crr_job(
    tx: &mut WriteTx,
    vault_id: &str,
    job_id: &str,
    done: &Result<Value, ArmError>,
) -> Result<(), ArmError> {
    let key = format!("{}|{job_id}", id::key(vault_id));
    if let Some(mut doc) = tx.get_json::<BackupJob>(CRR_JOBS, &key)? {
        if !doc.properties.status.ended() {
            match done {
                Ok(bag) => {
                    if let Value::Object(b) = bag {
                        doc.properties.extended_info.property_bag.extend(b.clone());
                    }
                    doc.task_ended(0, time::now());
                    doc.finish(JobStatus::Completed, time::now());
                }
                Err(e) => {
                    doc.fail(e, time::now());
                }
            }
            tx.put_json(CRR_JOBS, &key, &doc)?;
        }
    }
    tx.delete(CRR_ACCEPTED, &key)?;
    Ok(())
}

/// Cross-region restores cut short by a restart end `Failed`, as other
/// restores do.
pub fn fail_interrupted(store: &recoverite_store::Store) -> Result<usize, ArmError> {
    let left: Vec<(String, String)> = store
        .read(|r| Ok(r.scan_json::<String>(CRR_ACCEPTED, "")))??
        .into_iter()
        .filter(|(_, job)| !jobs::is_running(job))
        .collect();
    let cut = ArmError::conflict(
        "BMSUserErrorRestoreInterrupted",
        "The cross-region restore was cut short by a restart of the service; no restored disk was kept. Trigger it again.",
    );
    for (key, job) in &left {
        let vault = key.split('|').next().unwrap_or_default().to_string();
        store.write(|tx| end_crr_job(tx, &vault, job, &Err(cut.clone())))?;
    }
    Ok(left.len())
}

/// 202 with the secondary region's operation result and status URLs.
fn crr_accepted(ctx: &Ctx, req: &ArmRequest, region: &str, op: &str) -> Reply {
    let base = format!(
        "{}/subscriptions/{}/providers/Microsoft.RecoveryServices/locations/{region}",
        ctx.base_url,
        req.path.subscription.as_deref().unwrap_or_default()
    );
    let url = |kind: &str| format!("{base}/{kind}/{op}?api-version={}", req.api_version);
    recoverite_arm::lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header("Location", url("backupCrrOperationResults"))
            .header("Azure-AsyncOperation", url("backupCrrOperationsStatus")),
    )
}

fn load_operation(ctx: &Ctx, region: &str, op: &str) -> Result<CrrOperation, ArmError> {
    let o = ctx
        .store()
        .read(|r| Ok(r.get_json::<CrrOperation>(CRR_OPERATIONS, op)))??
        .filter(|o| o.region.eq_ignore_ascii_case(region))
        .ok_or_else(|| {
            ArmError::new(
                404,
                "BMSUserErrorOperationNotFound",
                format!("No cross-region operation '{op}' in {region}."),
            )
        })?;
    // Only those who may read the vault's jobs see its operations.
    ctx.require(
        "Microsoft.RecoveryServices/Vaults/backupJobs/read",
        &o.vault_id,
    )?;
    Ok(o)
}

/// `GET locations/{region}/backupCrrOperationsStatus/{id}`.
pub fn operation_status(ctx: &Ctx, region: &str, op: &str) -> Result<Reply, ArmError> {
    let o = load_operation(ctx, region, op)?;
    let mut d = json!({"id": o.id, "name": o.id, "status": o.status, "startTime": o.start_time, "endTime": o.end_time});
    if let Some(j) = &o.job_id {
        d["properties"] = json!({"objectType": "OperationStatusJobExtendedInfo", "jobId": j});
    }
    Ok(Reply::ok(d))
}

/// `GET locations/{region}/backupCrrOperationResults/{id}`: done.
pub fn operation_result(ctx: &Ctx, region: &str, op: &str) -> Result<Reply, ArmError> {
    load_operation(ctx, region, op)?;
    Ok(Reply::empty(200))
}

fn vault_named(ctx: &Ctx, body: &Value, region: &str) -> Result<(String, Vault), ArmError> {
    let vid = body["resourceId"].as_str().unwrap_or_default();
    let vault = ctx
        .store()
        .view(|r| recoverite_rs_core::vault_record::load(r, vid))?
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "resourceId",
                format!("'{vid}' is not a Recovery Services vault."),
            )
        })?;
    let loc = vault.location.as_str();
    if paired_region(loc).is_none_or(|p| !p.eq_ignore_ascii_case(region)) {
        return Err(bad(
            "BMSUserErrorCrrRegionMismatch",
            format!(
                "'{region}' is not the secondary region of vault {} (in '{loc}').",
                &vault.name
            ),
        ));
    }
    ctx.require("Microsoft.RecoveryServices/Vaults/backupJobs/read", vid)?;
    Ok((vault.id.clone(), vault))
}

/// `POST locations/{region}/backupCrrJobs` (`CrrJobRequest`: the vault).
pub fn jobs_list(ctx: &Ctx, req: &ArmRequest, region: &str) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or_default();
    let (vid, _) = vault_named(ctx, &body, region)?;
    let mut all: Vec<BackupJob> = ctx
        .store()
        .read(|r| r.scan_json::<BackupJob>(CRR_JOBS, &format!("{}|", id::key(&vid))))?
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    all.sort_by(|a, b| a.properties.start_time.cmp(&b.properties.start_time));
    let f = req.query_get("$filter").unwrap_or("").to_string();
    Ok(Reply::ok(json!({"value": jobs::filtered(all, &f)?})))
}

/// `POST locations/{region}/backupCrrJob` (`CrrJobRequest`: the vault and
/// the job's name).
pub fn job_get(ctx: &Ctx, req: &ArmRequest, region: &str) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or_default();
    let (vid, _) = vault_named(ctx, &body, region)?;
    let name = body["jobName"].as_str().unwrap_or_default();
    ctx.store()
        .read(|r| Ok(r.get_json::<BackupJob>(CRR_JOBS, &format!("{}|{name}", id::key(&vid)))))??
        .ok_or_else(|| {
            ArmError::new(
                404,
                "BMSUserErrorJobNotFound",
                format!("The job '{name}' was not found in the secondary region."),
            )
        })?
        .to_value()
        .map(Reply::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_region_restore_makes_disks_or_a_vm_with_its_subnet() {
        assert_eq!(
            crr_recovery_type(Some("RestoreDisks"), None, None).unwrap(),
            None
        );
        assert_eq!(
            crr_recovery_type(Some("AlternateLocation"), Some("/vm"), Some("/s")).unwrap(),
            Some(("/vm".to_string(), "/s".to_string()))
        );
        assert!(crr_recovery_type(Some("AlternateLocation"), Some("/vm"), None).is_err());
        assert!(crr_recovery_type(Some("OriginalLocation"), None, None).is_err());
        assert!(crr_recovery_type(None, None, None).is_err());
    }

    #[test]
    fn points_reach_the_paired_region_after_the_lag_with_grs_and_crr_on() {
        let t = time::parse("2026-12-01T00:00:00Z").unwrap();
        let on = VaultConfig {
            cross_region_restore: true,
            ..VaultConfig::default()
        };
        assert!(!due_for_copy(&on, t, t + ::time::Duration::hours(11)));
        assert!(due_for_copy(&on, t, t + ::time::Duration::hours(12)));
        // Off, or not GeoRedundant: never.
        assert!(!due_for_copy(
            &VaultConfig::default(),
            t,
            t + ::time::Duration::days(9)
        ));
        let lrs = VaultConfig {
            storage_type: "LocallyRedundant".into(),
            ..on.clone()
        };
        assert!(!due_for_copy(&lrs, t, t + ::time::Duration::days(9)));
        assert_eq!(paired_region("eastus").as_deref(), Some("westus"));
    }

    #[test]
    fn private_endpoint_vaults_restore_across_regions_through_a_secondary_endpoint() {
        assert!(check_secondary_endpoint(0, 0, "v").is_ok());
        assert!(check_secondary_endpoint(1, 1, "v").is_ok());
        let e = check_secondary_endpoint(2, 0, "v").unwrap_err();
        assert_eq!(
            e.body.code,
            "BMSUserErrorCrrSecondaryPrivateEndpointMissing"
        );
        assert!(e.body.message.contains("AzureBackup_secondary"));
    }

    #[test]
    fn the_vault_of_a_point() {
        let p = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/Azure/protectionContainers/c/protectedItems/i/recoveryPoints/1";
        assert_eq!(
            vault_of_point(p),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
        );
    }
}
