//! Compute's read model for other crates (Site Recovery, Backup, the
//! network's effective routes): a VM's disks, their roles and LUNs, its OS
//! type and NICs, typed, so no other crate reads a VM document's profile.

use serde::Deserialize;
use serde_json::Value;

use recoverite_arm::{id, resource, ArmError};
use recoverite_store::Reader;

#[derive(Deserialize)]
struct Ref {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OsDisk {
    os_type: Option<String>,
    managed_disk: Option<Ref>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataDisk {
    lun: u32,
    managed_disk: Option<Ref>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageProfile {
    os_disk: Option<OsDisk>,
    #[serde(default)]
    data_disks: Vec<DataDisk>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkProfile {
    #[serde(default)]
    network_interfaces: Vec<Ref>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HardwareProfile {
    vm_size: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmProperties {
    vm_id: Option<String>,
    availability_set: Option<Ref>,
    hardware_profile: Option<HardwareProfile>,
    storage_profile: Option<StorageProfile>,
    network_profile: Option<NetworkProfile>,
}

#[derive(Deserialize)]
struct VmDoc {
    id: String,
    name: String,
    location: String,
    properties: VmProperties,
}

/// Where a disk sits in a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskRole {
    Os,
    Data { lun: u32 },
}

/// A virtual machine as other providers need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub location: String,
    /// The VM's unique id (`properties.vmId`).
    pub vm_id: Option<String>,
    /// `hardwareProfile.vmSize`.
    pub size: Option<String>,
    /// `Linux` or `Windows`, as the VM's OS disk says.
    pub os_type: Option<String>,
    pub os_disk: Option<String>,
    /// `(lun, disk id)` of each attached managed data disk.
    pub data_disks: Vec<(u32, String)>,
    pub network_interfaces: Vec<String>,
    /// The availability set the VM is in.
    pub availability_set: Option<String>,
}

impl Vm {
    /// Reads a VM document (as stored, or as a provider kept it in a plan).
    pub fn of(doc: &Value) -> Result<Vm, ArmError> {
        let d: VmDoc = serde_json::from_value(doc.clone()).map_err(|e| {
            ArmError::internal(format!(
                "virtual machine document {} is malformed: {e}",
                doc["id"].as_str().unwrap_or_default()
            ))
        })?;
        let sp = d.properties.storage_profile;
        let (os_type, os_disk) = match sp.as_ref().and_then(|s| s.os_disk.as_ref()) {
            Some(o) => (
                o.os_type.clone(),
                o.managed_disk.as_ref().map(|m| m.id.clone()),
            ),
            None => (None, None),
        };
        Ok(Vm {
            id: d.id,
            name: d.name,
            location: d.location,
            vm_id: d.properties.vm_id,
            availability_set: d.properties.availability_set.map(|a| a.id),
            size: d.properties.hardware_profile.and_then(|h| h.vm_size),
            os_type,
            os_disk,
            data_disks: sp
                .map(|s| s.data_disks)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|x| Some((x.lun, x.managed_disk?.id)))
                .collect(),
            network_interfaces: d
                .properties
                .network_profile
                .map(|n| n.network_interfaces.into_iter().map(|r| r.id).collect())
                .unwrap_or_default(),
        })
    }

    /// The disk's role in this VM, if it is attached.
    pub fn role_of(&self, disk_id: &str) -> Option<DiskRole> {
        let key = id::key(disk_id);
        if self.os_disk.as_deref().map(id::key) == Some(key.clone()) {
            return Some(DiskRole::Os);
        }
        self.data_disks
            .iter()
            .find(|(_, d)| id::key(d) == key)
            .map(|(lun, _)| DiskRole::Data { lun: *lun })
    }
}

/// The VM `vm_id`, if it exists.
pub fn vm(r: &impl Reader, vm_id: &str) -> Result<Option<Vm>, ArmError> {
    resource::get(r, vm_id)?
        .filter(|v| {
            v["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(crate::vms::VM_TYPE))
        })
        .map(|doc| Vm::of(&doc))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_roles_and_luns_whatever_the_case_of_the_ids() {
        let vm = Vm::of(&serde_json::json!({"id": "/vm", "name": "vm", "location": "westus", "properties": {"storageProfile": {
            "osDisk": {"osType": "Linux", "managedDisk": {"id": "/d/OS"}},
            "dataDisks": [{"lun": 3, "managedDisk": {"id": "/d/data"}}]},
            "networkProfile": {"networkInterfaces": [{"id": "/n"}]}}}))
        .unwrap();
        assert_eq!(vm.role_of("/d/os"), Some(DiskRole::Os));
        assert_eq!(vm.role_of("/D/DATA"), Some(DiskRole::Data { lun: 3 }));
        assert_eq!(vm.role_of("/d/other"), None);
        assert_eq!(vm.os_type.as_deref(), Some("Linux"));
        assert_eq!(vm.network_interfaces, vec!["/n".to_string()]);
        // A document without properties is an error, not an empty VM.
        assert!(Vm::of(&serde_json::json!({"id": "/vm"})).is_err());
    }
}
