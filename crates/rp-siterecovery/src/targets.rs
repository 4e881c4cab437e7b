//! Where a protected VM lands in the recovery region, with document 003's
//! defaults: the recovery network (`{vnet}-asr`, made by Site Recovery when
//! none is named), and the failover VM itself with its network interface —
//! all created through ARM with Site Recovery's first-party principal, so
//! the network and compute providers' own rules apply.

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::ArmError;
use recoverite_store::Reader;

use crate::runtime::Runtime;
use recoverite_rp_network::view::VirtualNetwork;

pub const NETWORK_API: &str = "2026-03-01";
pub const COMPUTE_API: &str = "2026-04-01";

fn rg_of(id: &str) -> String {
    let l = id.to_ascii_lowercase();
    match l.find("/providers/") {
        Some(i) => id[..i].to_string(),
        None => id.to_string(),
    }
}

pub fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

/// The subnet of a VM's primary NIC.
pub fn vm_subnet(r: &impl Reader, vm_id: &str) -> Result<Option<String>, ArmError> {
    Ok(recoverite_rp_compute::view::primary_ipconfig(r, vm_id)?.map(|c| c.subnet_id().to_string()))
}

pub fn vnet_of_subnet(subnet_id: &str) -> String {
    recoverite_rp_network::aliases::vnet_of_subnet(subnet_id)
}

/// The recovery network: the one named in the input (it must be in the
/// recovery region), or `{source vnet}-asr` in the recovery resource group,
/// created like the source's address space and subnets when missing.
pub fn recovery_network(
    rt: &Runtime,
    source: &VirtualNetwork,
    named: Option<&str>,
    target_rg: &str,
    target_loc: &str,
    existing: Option<&VirtualNetwork>,
) -> Result<String, ArmError> {
    if let Some(id) = named {
        let n = existing.ok_or_else(|| ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryAzureNetworkId", format!("Network '{id}' was not found; create it first or omit it to let Site Recovery create one.")))?;
        if !n.location.eq_ignore_ascii_case(target_loc) {
            return Err(ArmError::invalid_parameter("properties.providerSpecificDetails.recoveryAzureNetworkId", format!("Network '{id}' is in '{}'; the recovery network must be in the recovery region '{target_loc}'.", n.location)));
        }
        return Ok(n.id.clone());
    }
    let id = default_network_id(&source.name, target_rg);
    if existing.is_some() {
        return Ok(id);
    }
    let subnets: Vec<Value> = source
        .subnets
        .iter()
        .map(|(name, prefix)| json!({"name": name, "properties": {"addressPrefix": prefix}}))
        .collect();
    let body = json!({"location": target_loc, "tags": {"createdBy": "Azure Site Recovery"}, "properties": {
        "addressSpace": {"addressPrefixes": source.address_prefixes}, "subnets": subnets}});
    rt.arm.call(Method::PUT, &id, NETWORK_API, Some(body))?;
    Ok(id)
}

/// The default recovery network's id for a source network (for lookups
/// before creating it): `{source}-asr` in the recovery group.
pub fn default_network_id(source_name: &str, target_rg: &str) -> String {
    format!("{target_rg}/providers/Microsoft.Network/virtualNetworks/{source_name}-asr")
}

/// A VM Site Recovery brings up on failed-over disks.
pub struct VmSpec<'a> {
    pub id: &'a str,
    pub availability_set: Option<&'a str>,
    pub location: &'a str,
    pub size: &'a str,
    pub os_disk: &'a str,
    pub os_type: &'a str,
    pub data_disks: &'a [(u64, String)],
    pub subnet_id: &'a str,
}

/// Creates the VM with a network interface `{vm}-nic` in its subnet.
pub fn create_vm(rt: &Runtime, vm: &VmSpec) -> Result<String, ArmError> {
    let nic_id = format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{}-nic",
        rg_of(vm.id),
        name_of(vm.id)
    );
    rt.arm.call(Method::PUT, &nic_id, NETWORK_API, Some(json!({"location": vm.location, "properties": {
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": vm.subnet_id}, "primary": true}}]}})))?;
    let data: Vec<Value> = vm
        .data_disks
        .iter()
        .map(|(lun, id)| json!({"lun": lun, "createOption": "Attach", "managedDisk": {"id": id}}))
        .collect();
    rt.arm.call(Method::PUT, vm.id, COMPUTE_API, Some(json!({"location": vm.location, "tags": {"createdBy": "Azure Site Recovery"}, "properties": {
        "hardwareProfile": {"vmSize": vm.size},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": vm.os_type, "managedDisk": {"id": vm.os_disk}}, "dataDisks": data},
        "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]},
        "availabilitySet": vm.availability_set.map(|id| json!({"id": id}))}})))?;
    Ok(vm.id.to_string())
}

/// Deletes a VM Site Recovery made, its network interface and its disks.
pub fn delete_vm(rt: &Runtime, vm_id: &str, disks: &[String]) -> Result<(), ArmError> {
    let nic_id = format!(
        "{}/providers/Microsoft.Network/networkInterfaces/{}-nic",
        rg_of(vm_id),
        name_of(vm_id)
    );
    rt.arm.call(Method::DELETE, vm_id, COMPUTE_API, None)?;
    rt.arm.call(Method::DELETE, &nic_id, NETWORK_API, None)?;
    for d in disks {
        rt.arm.call(Method::DELETE, d, "2026-03-02", None)?;
    }
    Ok(())
}

/// Document 003's defaults on the recovery side, made before replication
/// starts: the resource group `{source group}-asr` and the availability set
/// `{set}-asr` (same fault and update domain counts) when they are missing.
pub fn prepare_recovery_side(
    rt: &Runtime,
    target_location: &str,
    create_group: Option<&str>,
    recovery_set: Option<(&str, &Value)>,
) -> Result<(), ArmError> {
    if let Some(rg) = create_group {
        rt.arm.call(
            Method::PUT,
            rg,
            "2025-04-01",
            Some(
                json!({"location": target_location, "tags": {"createdBy": "Azure Site Recovery"}}),
            ),
        )?;
    }
    // `(recovery set id, source set document)`.
    if let Some((set, src)) = recovery_set {
        let props = &src["properties"];
        let body = json!({"location": target_location, "sku": src.get("sku").cloned().unwrap_or(json!({"name": "Aligned"})), "properties": {
            "platformFaultDomainCount": props["platformFaultDomainCount"], "platformUpdateDomainCount": props["platformUpdateDomainCount"]}});
        let exists = rt.arm.call(Method::GET, set, COMPUTE_API, None).is_ok();
        if !exists {
            rt.arm.call(Method::PUT, set, COMPUTE_API, Some(body))?;
        }
    }
    Ok(())
}
