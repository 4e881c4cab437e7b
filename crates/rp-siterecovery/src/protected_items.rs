//! Replication protected items (A2A): enabling replication of a VM's managed
//! disks, its recovery points, unplanned failover to a point, commit, and
//! disabling replication. The bytes move through the replication engine.

use serde_json::{json, Value};

use recoverite_arm::{names, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_replication::{Engine, PointKind, SourceDisk};
use recoverite_rp_compute::disks::{self, Disk};
use recoverite_rp_compute::view::{DiskRole, Vm};
use recoverite_rp_network::view::{self, VirtualNetwork};
use recoverite_store::Reader;

use crate::enable_rules as rules;
use crate::fabrics::{found, parent_of};
use crate::records;
use crate::runtime::Runtime;
use crate::{jobs, targets, vault_of};

use crate::item::{self, A2ADetails, ItemProperties, ProtectedDisk};
pub use crate::item::{ReplicationItem, Side, ITEM_TYPE};
pub const POINT_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/recoveryPoints";
/// A protected item turns critical when its newest point is this old.
pub const CRITICAL_AFTER_SECS: i64 = 60 * 60;

pub(crate) fn io(e: std::io::Error) -> ArmError {
    ArmError::internal(format!("replication storage failed: {e}"))
}

pub(crate) fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// PUT: enable replication of a VM (`A2AEnableProtectionInput`).
const ENABLE_ACTION: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write";

pub fn enable(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    registry: &recoverite_privatelink::Registry,
    rt: &Runtime,
) -> Result<Reply, ArmError> {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or_default()
        .to_string();
    names::check_generic("replication protected item", &name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let p = &body["properties"];
    let a2a = &p["providerSpecificDetails"];
    rules::scenario(str_of(a2a, "instanceType"))?;
    let vm_id = a2a["fabricObjectId"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.providerSpecificDetails.fabricObjectId",
            "Name the VM to protect: its ARM id.",
        )
    })?;
    let id = req.path.id();
    // Validate everything and note what to replicate; the copy happens outside the store lock.
    let plan = ctx.store().view(|r| {
        plan_enable(
            ctx,
            r,
            req,
            &Target {
                id: &id,
                name: &name,
                vm_id,
            },
            p,
            a2a,
        )
    })?;
    targets::prepare_recovery_side(
        rt,
        &plan.target_location,
        plan.create_rg.then_some(plan.rg.as_str()),
        plan.recovery_set.as_deref().zip(plan.source_set.as_ref()),
    )?;
    // Document 003: without a recovery network, Site Recovery creates `{vnet}-asr`.
    let recovery_network = match &plan.source_vnet {
        Some(source) => Some(targets::recovery_network(
            rt,
            source,
            plan.named_network.as_deref(),
            &plan.rg,
            &plan.target_location,
            plan.existing_network.as_ref(),
        )?),
        None => None,
    };
    let lifecycle = uuid::Uuid::new_v4().to_string();
    let sources: Vec<SourceDisk> = plan
        .disks
        .iter()
        .map(|(disk, _)| SourceDisk {
            unique_id: disk.properties.unique_id.clone(),
            size: disk.properties.disk_size_bytes,
            seed: None,
        })
        .collect();
    let now = time::now_string();
    engine.enable(&lifecycle, &sources, &now).map_err(io)?;
    let doc = item_doc(
        &id,
        &name,
        &plan,
        recovery_network.as_deref(),
        &lifecycle,
        &now,
    );
    let done = ctx
        .store()
        .write(|tx| commit_enable(ctx, req, tx, registry, &plan, &doc));
    match done {
        Ok(op) => Ok(crate::accepted(ctx, req, &op)),
        Err(e) => {
            let _ = engine.disable(&lifecycle);
            Err(e)
        }
    }
}

/// Commits an enable: the item, the vault's marks and pairs, the job, in
/// one transaction that checks again that nobody protected the VM meanwhile.
fn commit_enable(
    ctx: &Ctx,
    req: &ArmRequest,
    tx: &mut recoverite_store::WriteTx,
    registry: &recoverite_privatelink::Registry,
    plan: &EnablePlan,
    doc: &ReplicationItem,
) -> Result<(recoverite_arm::lro::OperationRecord, String), ArmError> {
    let (id, name, vm_id) = (&doc.id, &doc.name, &plan.vm.id);
    let vault_id = &plan.vault_id;
    if resource::get(tx, id)?.is_some() {
        return Err(ArmError::conflict(
            "ProtectedItemAlreadyExists",
            format!("'{name}' was protected meanwhile."),
        ));
    }
    // Checked again where it commits: two enables of one VM racing
    // (under different item names) must not both protect it.
    vm_not_yet_protected(tx, vault_id, vm_id, &plan.vm.name)?;
    // Documents 000 and 001: private endpoints only for vaults with no
    // items registered; a protected VM is such an item.
    recoverite_rp_recoveryservices::meta::mark_registered(tx, vault_id)?;
    // Document 004: replication between a region pair needs the pair's
    // Site Recovery names on the vault's private endpoints.
    recoverite_rp_recoveryservices::target::enable_replication_pair(
        tx,
        registry,
        vault_id,
        &plan.source_location,
        &plan.target_location,
    )?;
    doc.save(tx)?;
    jobs::record(
        tx,
        vault_id,
        "EnableDr",
        "Enable replication",
        doc,
        &[
            "Prerequisites check for enabling protection",
            "Identifying the replication target",
            "Enabling replication",
            "Starting initial replication",
        ],
    )?;
    crate::finish(ctx, req, tx, Some(doc.to_value()?))
}

/// The item being made: its id and name, and the VM it protects.
struct Target<'a> {
    id: &'a str,
    name: &'a str,
    vm_id: &'a str,
}

/// A fabric, container or policy the item refers to.
struct Named {
    id: String,
    name: String,
}

impl Named {
    fn of(doc: &Value) -> Named {
        Named {
            id: str_of(doc, "id").to_string(),
            name: str_of(doc, "name").to_string(),
        }
    }
}

/// What enabling replication works from, checked in one snapshot of the
/// state; the recovery side's resources and the copy come after.
struct EnablePlan {
    vault_id: String,
    vm: Vm,
    fabric: Named,
    container: Named,
    target_fabric: Named,
    target_container: Named,
    policy: Named,
    source_location: String,
    target_location: String,
    /// The recovery resource group, and whether Site Recovery makes it.
    rg: String,
    create_rg: bool,
    recovery_set: Option<String>,
    source_set: Option<Value>,
    /// Each disk to replicate: its document and its input.
    disks: Vec<(Disk, Value)>,
    multi_vm_group_name: Option<String>,
    multi_vm_group_id: Option<String>,
    source_vnet: Option<VirtualNetwork>,
    named_network: Option<String>,
    existing_network: Option<VirtualNetwork>,
    recovery_subnet_name: Option<String>,
}

const ENABLE_INPUT: &str = "properties.providerSpecificDetails";

/// The recovery availability set: the one named, or `{set}-asr` in the
/// recovery group when the VM is in a set (none otherwise).
fn recovery_availability_set(
    named: Option<&str>,
    source: Option<&str>,
    rg_id: &str,
) -> Option<String> {
    match (named, source) {
        (Some(x), _) => Some(x.to_string()),
        (None, Some(src)) => Some(format!(
            "{rg_id}/providers/Microsoft.Compute/availabilitySets/{}-asr",
            targets::name_of(src)
        )),
        (None, None) => None,
    }
}

/// The cache account the agent writes to (documents 000 and 002): it must
/// exist and meet the storage provider's replication rules for the source
/// region, the VM's network and (with private endpoints) the vault's identity.
fn cache_account(
    ctx: &Ctx,
    r: &impl Reader,
    vault: &recoverite_rs_core::vault_record::Vault,
    cache_id: &str,
    source_loc: &str,
    source_vnet_id: Option<&str>,
) -> Result<recoverite_rp_storage::account::StorageAccount, ArmError> {
    let cache = recoverite_rp_storage::account::load(r, cache_id)?.ok_or_else(|| ArmError::bad_request("CacheStorageAccountNotFound", format!("Cache storage account '{cache_id}' was not found; create a storage account in {source_loc} first.")))?;
    let vault_private = recoverite_privatelink::of_target(r, &vault.id)?
        .iter()
        .any(|c| {
            c.group_ids
                .iter()
                .any(|g| g.eq_ignore_ascii_case("AzureSiteRecovery"))
        });
    recoverite_rp_storage::cache::check_for_replication(
        r,
        ctx.authorizer(),
        &cache,
        source_loc,
        source_vnet_id,
        vault_private.then_some(vault.principal_id()),
    )?;
    Ok(cache)
}

fn plan_enable(
    ctx: &Ctx,
    r: &impl Reader,
    req: &ArmRequest,
    t: &Target,
    p: &Value,
    a2a: &Value,
) -> Result<EnablePlan, ArmError> {
    let vault = vault_of(r, req)?;
    let vid = vault.id.clone();
    if resource::get(r, t.id)?.is_some() {
        return Err(ArmError::conflict(
            "ProtectedItemAlreadyExists",
            format!(
                "'{}' is already protected; disable replication first to protect it again.",
                t.name
            ),
        ));
    }
    let container_id = parent_of(t.id);
    let container = found(r, &container_id, "protection container")?;
    let fabric = records::fabric(r, &parent_of(&container_id), "fabric")?;
    let mapping = container_mapping(r, &container_id, p["policyId"].as_str())?;
    let target_container_id = mapping.properties.target_protection_container_id.clone();
    rules::recovery_container(a2a["recoveryContainerId"].as_str(), &target_container_id)?;
    let target_fabric = records::fabric(r, &parent_of(&target_container_id), "fabric")?;
    let source_loc = fabric.region().to_string();
    let target_loc = target_fabric.region().to_string();
    let (vm, vm_disks) = disks::of_vm(r, t.vm_id)?.ok_or_else(|| {
        ArmError::invalid_parameter(
            &format!("{ENABLE_INPUT}.fabricObjectId"),
            format!("VM '{}' was not found.", t.vm_id),
        )
    })?;
    rules::vm_in_fabric_region(&vm.name, &vm.location, &source_loc)?;
    vm_not_yet_protected(r, &vid, t.vm_id, &vm.name)?;
    rules::vault_region(&vault.name, &vault.location, &source_loc)?;
    let (rg_id, create_rg) = recovery_group(r, a2a, t.vm_id, &source_loc)?;
    let source_set_id = vm.availability_set.as_deref();
    let recovery_set = recovery_availability_set(
        a2a["recoveryAvailabilitySetId"].as_str(),
        source_set_id,
        &rg_id,
    );
    let source_set = match source_set_id {
        Some(id) => resource::get(r, id)?,
        None => None,
    };
    let chosen = chosen_disks(a2a, &vm.name, &vm_disks)?;
    let subnet = targets::vm_subnet(r, &vm.id)?;
    let source_vnet_id = subnet.as_deref().map(targets::vnet_of_subnet);
    let cache_id = str_of(&chosen[0].1, "primaryStagingAzureStorageAccountId");
    let cache = cache_account(
        ctx,
        r,
        &vault,
        cache_id,
        &source_loc,
        source_vnet_id.as_deref(),
    )?;
    // "To enable replication for a new virtual machine, a user must have
    // permission to create a virtual machine in the selected resource
    // group … in the selected virtual network … and to write to the
    // selected storage account" (Site Recovery RBAC): checked as the caller.
    let group_action = if create_rg {
        "Microsoft.Resources/subscriptions/resourceGroups/write"
    } else {
        "Microsoft.Compute/virtualMachines/write"
    };
    ctx.require_linked(ENABLE_ACTION, t.id, group_action, &rg_id)?;
    ctx.require_linked(
        ENABLE_ACTION,
        t.id,
        "Microsoft.Storage/storageAccounts/listkeys/action",
        &cache.id,
    )?;
    let net = recovery_network_plan(ctx, r, t, a2a, &vid, source_vnet_id.as_deref(), &rg_id)?;
    let policy = crate::policies::found(r, &mapping.properties.policy_id)?;
    let multi_vm_group_id = match a2a["multiVmGroupName"].as_str().filter(|g| !g.is_empty()) {
        Some(g) => Some(crate::groups::admit(r, &vid, g, &policy)?),
        None => None,
    };
    let target_container = found(r, &target_container_id, "protection container")?;
    Ok(EnablePlan {
        vault_id: vid,
        vm,
        fabric: Named {
            id: fabric.id.clone(),
            name: fabric.name.clone(),
        },
        container: Named::of(&container),
        target_fabric: Named {
            id: target_fabric.id.clone(),
            name: target_fabric.name.clone(),
        },
        target_container: Named::of(&target_container),
        policy: Named {
            id: policy.id.clone(),
            name: policy.name.clone(),
        },
        source_location: source_loc,
        target_location: target_loc,
        rg: rg_id,
        create_rg,
        recovery_set,
        source_set,
        disks: chosen,
        multi_vm_group_name: a2a["multiVmGroupName"].as_str().map(str::to_string),
        multi_vm_group_id,
        source_vnet: net.source_vnet,
        named_network: net.named,
        existing_network: net.existing,
        recovery_subnet_name: a2a["recoverySubnetName"]
            .as_str()
            .map(str::to_string)
            .or_else(|| subnet.as_deref().map(|s| targets::name_of(s).to_string())),
    })
}

/// The disks to replicate, as the input lists them: each attached disk's
/// document with its input.
fn chosen_disks(
    a2a: &Value,
    vm_name: &str,
    vm_disks: &[Disk],
) -> Result<Vec<(Disk, Value)>, ArmError> {
    let inputs = a2a["vmManagedDisks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let typed: Vec<rules::DiskInput> = inputs
        .iter()
        .map(|d| rules::DiskInput {
            disk_id: str_of(d, "diskId"),
            cache_account: d["primaryStagingAzureStorageAccountId"].as_str(),
        })
        .collect();
    let attached: Vec<&str> = vm_disks.iter().map(|x| x.id.as_str()).collect();
    Ok(rules::disks_to_replicate(vm_name, &typed, &attached)?
        .into_iter()
        .zip(&inputs)
        .map(|(at, input)| (vm_disks[at].clone(), input.clone()))
        .collect())
}

/// The source network as the recovery side copies it, the recovery network
/// named (in the input or by the vault's network mapping), and the network
/// the item will use if it exists already.
struct NetworkPlan {
    source_vnet: Option<VirtualNetwork>,
    named: Option<String>,
    existing: Option<VirtualNetwork>,
}

fn recovery_network_plan(
    ctx: &Ctx,
    r: &impl Reader,
    t: &Target,
    a2a: &Value,
    vault_id: &str,
    source_vnet_id: Option<&str>,
    rg_id: &str,
) -> Result<NetworkPlan, ArmError> {
    let source_vnet = match source_vnet_id {
        Some(v) => view::virtual_network(r, v)?,
        None => None,
    };
    // Named, or the source network's mapping, or (later) `{vnet}-asr`.
    let mapped = match source_vnet_id {
        Some(v) => crate::network_mappings::recovery_network_for(r, vault_id, v)?,
        None => None,
    };
    let named = a2a["recoveryAzureNetworkId"]
        .as_str()
        .map(str::to_string)
        .or(mapped);
    let lookup = match &named {
        Some(n) => n.clone(),
        None => targets::default_network_id(
            source_vnet
                .as_ref()
                .map(|v| v.name.as_str())
                .unwrap_or_default(),
            rg_id,
        ),
    };
    let existing = view::virtual_network(r, &lookup)?;
    if let Some(net) = &existing {
        ctx.require_linked(
            ENABLE_ACTION,
            t.id,
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            &net.id,
        )?;
    }
    Ok(NetworkPlan {
        source_vnet,
        named,
        existing,
    })
}

/// The container's mapping with the policy asked for (any, when none is).
fn container_mapping(
    r: &impl Reader,
    container_id: &str,
    policy_id: Option<&str>,
) -> Result<records::ContainerMapping, ArmError> {
    records::mappings_of(r, container_id)?
        .into_iter()
        .find(|m| policy_id.is_none_or(|pid| m.properties.policy_id.eq_ignore_ascii_case(pid)))
        .ok_or_else(|| ArmError::bad_request("ProtectionContainerNotPaired", "The protection container has no container mapping with that policy. Pair it with a container in the recovery region first."))
}

/// The recovery resource group — the one named, or `{source group}-asr` —
/// and whether Site Recovery has to make it.
fn recovery_group(
    r: &impl Reader,
    a2a: &Value,
    vm_id: &str,
    source_loc: &str,
) -> Result<(String, bool), ArmError> {
    let vm_rg = vm_id
        .split("/providers/")
        .next()
        .unwrap_or_default()
        .to_string();
    match a2a["recoveryResourceGroupId"].as_str() {
        Some(x) => {
            let rg = resource::get(r, x)?.ok_or_else(|| ArmError::invalid_parameter(&format!("{ENABLE_INPUT}.recoveryResourceGroupId"), format!("Resource group '{x}' was not found; create it first, or omit it for '{vm_rg}-asr'.")))?;
            rules::recovery_group_region(str_of(&rg, "location"), source_loc)?;
            Ok((x.to_string(), false))
        }
        None => {
            let d = format!("{vm_rg}-asr");
            let missing = resource::get(r, &d)?.is_none();
            Ok((d, missing))
        }
    }
}

/// A VM is protected once in a vault: no other replication protected item
/// of the vault names it as its source.
fn vm_not_yet_protected(
    r: &impl Reader,
    vault_id: &str,
    vm_id: &str,
    vm_name: &str,
) -> Result<(), ArmError> {
    let other = item::list(r, vault_id)?
        .into_iter()
        .find(|i| i.vm_on(Side::Primary).eq_ignore_ascii_case(vm_id));
    match other {
        Some(o) => Err(ArmError::conflict(
            "VmAlreadyProtected",
            format!("VM '{vm_name}' is already protected as '{}'.", o.name),
        )),
        None => Ok(()),
    }
}

fn item_doc(
    id: &str,
    name: &str,
    plan: &EnablePlan,
    recovery_network: Option<&str>,
    lifecycle: &str,
    now: &str,
) -> ReplicationItem {
    let vm = &plan.vm;
    let text = |input: &Value, k: &str| input[k].as_str().map(str::to_string);
    let disks = plan
        .disks
        .iter()
        .map(|(disk, input)| {
            let shown = json!({"monitoringPercentageCompletion": 100, "monitoringJobType": "InitialReplication",
                "dataPendingInStagingStorageAccountInMB": 0.0, "isDiskEncrypted": false});
            ProtectedDisk {
                disk_id: disk.id.clone(),
                disk_name: disk.name.clone(),
                disk_capacity_in_bytes: disk.properties.disk_size_bytes,
                disk_type: if vm.role_of(&disk.id) == Some(DiskRole::Os) { "OperatingSystem" } else { "Data" }.into(),
                primary_staging_azure_storage_account_id: text(input, "primaryStagingAzureStorageAccountId").unwrap_or_default(),
                recovery_resource_group_id: text(input, "recoveryResourceGroupId").unwrap_or_else(|| plan.rg.clone()),
                recovery_replica_disk_account_type: text(input, "recoveryReplicaDiskAccountType").or_else(|| Some(disk.sku.name.clone())),
                recovery_target_disk_account_type: text(input, "recoveryTargetDiskAccountType").or_else(|| Some(disk.sku.name.clone())),
                recovery_target_disk_id: None,
                recovery_replica_disk_id: None,
                data_pending_at_source_agent_in_mb: 0.0,
                given: shown.as_object().cloned().unwrap_or_default(),
            }
        })
        .collect();
    let shown = json!({
        "instanceType": "A2A",
        "initialPrimaryFabricLocation": plan.source_location,
        "initialRecoveryFabricLocation": plan.target_location,
        "multiVmGroupCreateOption": if plan.multi_vm_group_name.is_some() { "UserSpecified" } else { "AutoCreated" },
        "vmProtectionState": "Protected", "vmProtectionStateDescription": "Protected",
        "lastHeartbeat": now,
        "agentVersion": "9.60.0.0 (recoverite)",
        "isReplicationAgentUpdateRequired": false,
    });
    let details = A2ADetails {
        fabric_object_id: vm.id.clone(),
        lifecycle_id: lifecycle.to_string(),
        primary_fabric_location: plan.source_location.clone(),
        recovery_fabric_location: plan.target_location.clone(),
        os_type: vm.os_type.clone(),
        recovery_azure_resource_group_id: plan.rg.clone(),
        multi_vm_group_name: plan.multi_vm_group_name.clone(),
        multi_vm_group_id: plan.multi_vm_group_id.clone(),
        selected_recovery_azure_network_id: recovery_network.map(str::to_string),
        recovery_subnet_name: plan.recovery_subnet_name.clone(),
        recovery_azure_vm_name: vm.name.clone(),
        recovery_azure_vm_size: vm.size.clone(),
        recovery_availability_set: plan.recovery_set.clone(),
        protected_managed_disks: disks,
        initial_replication_start_time: now.to_string(),
        recovery_fabric_object_id: None,
        recovery_cache_storage_account_id: None,
        replication_direction: None,
        resync_bytes: None,
        test_failover_disk_ids: Vec::new(),
        test_failover_recovery_fabric_object_id: None,
        selected_tfo_azure_network_id: None,
        tfo_azure_vm_name: None,
        given: shown.as_object().cloned().unwrap_or_default(),
    };
    let shown = json!({
        "protectedItemType": "ProtectedItem",
        "protectableItemId": vm.id,
        "primaryFabricFriendlyName": plan.fabric.name,
        "primaryProtectionContainerFriendlyName": plan.container.name,
        "recoveryFabricFriendlyName": plan.target_fabric.name,
        "recoveryProtectionContainerFriendlyName": plan.target_container.name,
        "primaryFabricProvider": "Azure", "recoveryFabricProvider": "Azure",
        "policyFriendlyName": plan.policy.name,
        "failoverHealth": "Normal",
        "currentScenario": {"scenarioName": "None"},
    });
    let mut item = ReplicationItem {
        id: id.to_string(),
        name: name.to_string(),
        kind: ITEM_TYPE.to_string(),
        location: plan.source_location.clone(),
        properties: ItemProperties {
            friendly_name: vm.name.clone(),
            policy_id: plan.policy.id.clone(),
            recovery_fabric_id: plan.target_fabric.id.clone(),
            recovery_container_id: plan.target_container.id.clone(),
            protection_state: recoverite_rs_core::protection::ProtectionState::Protected,
            protection_state_description: String::new(),
            test_failover_state: recoverite_rs_core::protection::TestFailoverState::None,
            test_failover_state_description: "None".into(),
            active_location: Side::Primary.name().into(),
            replication_health: "Normal".into(),
            health_errors: Vec::new(),
            allowed_operations: Vec::new(),
            last_successful_failover_time: None,
            last_successful_test_failover_time: None,
            failover_recovery_point_id: None,
            provider_specific_details: details,
            given: shown.as_object().cloned().unwrap_or_default(),
        },
    };
    item.set_state(recoverite_rs_core::protection::ItemState::NEW);
    item
}

/// The item as read: RPO and health come from its newest recovery point.
pub fn decorate(item: &ReplicationItem, engine: &Engine) -> Result<Value, ArmError> {
    let Ok(m) = engine.manifest(item.engine_id()) else {
        return item.to_value();
    };
    let mut item = item.clone();
    let now = time::now();
    let newest = m
        .points
        .last()
        .map(|p| p.time.clone())
        .unwrap_or(m.base_time.clone());
    let age = time::parse(&newest)
        .map(|t| (now - t).whole_seconds())
        .unwrap_or(0);
    let pending = engine
        .pending_at_source(item.engine_id())
        .unwrap_or_default();
    let vm_id = item.vm_on(Side::Primary).to_string();
    let d = &mut item.properties.provider_specific_details;
    for (disk, p) in d.protected_managed_disks.iter_mut().zip(pending) {
        disk.data_pending_at_source_agent_in_mb = p as f64 / (1 << 20) as f64;
    }
    d.given.insert("rpoInSeconds".into(), json!(age));
    d.given
        .insert("lastRpoCalculatedTime".into(), json!(time::format(now)));
    d.given.insert(
        "lastRecoveryPointReceived".into(),
        json!(m.points.last().map(|p| p.time.clone())),
    );
    if item.is_replicating() && age > CRITICAL_AFTER_SECS {
        item.properties.replication_health = "Critical".into();
        let rpo = json!(crate::health::no_recent_point(
            age,
            &vm_id,
            &time::format(now)
        ));
        item.properties.health_errors.push(rpo);
    }
    item.to_value()
}

pub fn get(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let id = req.path.id();
    let item = ctx.store().view(|r| {
        vault_of(r, req)?;
        item::load(r, &id)?.ok_or_else(|| not_found(&id))
    })?;
    Ok(Reply::ok(decorate(&item, engine)?))
}

pub fn list(
    ctx: &Ctx,
    req: &ArmRequest,
    engine: &Engine,
    in_vault: bool,
) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        if in_vault {
            item::list(r, &v.id)
        } else {
            item::in_container(r, &req.path.parent_id())
        }
    })?;
    let items = items
        .iter()
        .map(|i| decorate(i, engine))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, items)?))
}

pub(crate) fn point_doc(
    item: &ReplicationItem,
    p: &recoverite_replication::RecoveryPoint,
) -> Value {
    let kind = match p.kind {
        PointKind::CrashConsistent => "CrashConsistent",
        PointKind::AppConsistent => "AppConsistent",
    };
    json!({
        "id": format!("{}/recoveryPoints/{}", item.id, p.seq), "name": p.seq.to_string(), "type": POINT_TYPE,
        "properties": {
            "recoveryPointTime": p.time, "recoveryPointType": kind,
            "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointSyncType": if item.group().is_some() { "MultiVmSyncRecoveryPoint" } else { "PerVmRecoveryPoint" }},
        }
    })
}

pub(crate) fn item_of(
    ctx: &Ctx,
    req: &ArmRequest,
    item_id: &str,
) -> Result<ReplicationItem, ArmError> {
    ctx.store().view(|r| {
        vault_of(r, req)?;
        item::load(r, item_id)?.ok_or_else(|| not_found(item_id))
    })
}

/// The item named by `id` is not in the vault.
pub(crate) fn not_found(id: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!(
            "The replication protected item '{}' was not found in the vault; list replicationProtectedItems for the ones it has.",
            id.rsplit('/').next().unwrap_or_default()
        ),
    )
}

/// GET …/recoveryPoints[/{seq}], newest first.
pub fn points(ctx: &Ctx, req: &ArmRequest, engine: &Engine, one: bool) -> Result<Reply, ArmError> {
    let item_id = if one {
        parent_of(&req.path.id())
    } else {
        req.path.parent_id()
    };
    let item = item_of(ctx, req, &item_id)?;
    let m = engine.manifest(item.engine_id()).unwrap_or_default();
    // recoverite adds whether a test failover has used the point (the
    // drill reports, `/recoverite/drills`): a point proven to boot.
    let docs: Vec<Value> = ctx.store().view(|r| {
        m.points
            .iter()
            .rev()
            .map(|p| {
                let mut d = point_doc(&item, p);
                d["properties"]["testedByDrill"] =
                    json!(recoverite_rs_core::drills::tested(r, str_of(&d, "id"))?);
                Ok(d)
            })
            .collect::<Result<Vec<Value>, ArmError>>()
    })?;
    if one {
        let want = req
            .path
            .provider
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or_default();
        return docs
            .into_iter()
            .find(|d| d["name"] == want)
            .map(Reply::ok)
            .ok_or_else(|| ArmError::new(404, "NotFound", format!("Recovery point '{want}' was not found; it may have aged out of the policy's retention.")));
    }
    Ok(Reply::ok(recoverite_arm::paging::page(ctx, req, docs)?))
}

/// DELETE or POST …/remove: stop replicating and drop the recovery points.
pub fn disable(ctx: &Ctx, req: &ArmRequest, engine: &Engine) -> Result<Reply, ArmError> {
    let item_id = req.path.id();
    let vault_id = req.path.prefix(8);
    let (op, eid) = ctx.store().write(|tx| {
        vault_of(tx, req)?;
        let Some(item) = item::load(tx, &item_id)? else {
            return Err(not_found(&item_id));
        };
        resource::delete_tree(tx, &item_id)?;
        jobs::record(
            tx,
            &vault_id,
            "DisableDr",
            "Disable replication",
            &item,
            &["Disabling protection", "Cleaning up"],
        )?;
        Ok((
            crate::finish(ctx, req, tx, None)?,
            Some(item.engine_id().to_string()),
        ))
    })?;
    if let Some(e) = eid {
        engine.disable(&e).map_err(io)?;
    }
    Ok(crate::accepted(ctx, req, &op))
}

/// Whether any protected item still uses `container_id` or `policy_id` (so
/// the mapping behind it stays).
pub fn uses(r: &impl Reader, vault_id: &str, container_id: &str) -> Result<bool, ArmError> {
    Ok(item::list(r, vault_id)?
        .iter()
        .any(|i| parent_of(&i.id).eq_ignore_ascii_case(container_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_set_is_the_named_one_or_the_vms_set_with_asr() {
        let rg = "/subscriptions/s/resourceGroups/west";
        let src =
            "/subscriptions/s/resourceGroups/east/providers/Microsoft.Compute/availabilitySets/web";
        assert_eq!(
            recovery_availability_set(None, Some(src), rg).as_deref(),
            Some("/subscriptions/s/resourceGroups/west/providers/Microsoft.Compute/availabilitySets/web-asr")
        );
        assert_eq!(
            recovery_availability_set(Some("/mine"), Some(src), rg).as_deref(),
            Some("/mine")
        );
        assert_eq!(recovery_availability_set(None, None, rg), None);
    }
}
