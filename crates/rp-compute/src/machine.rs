//! A virtual machine as stored (issue 9, point 2). What recoverite decides
//! on — size, disks by role and LUN, NICs, availability set, identity — is
//! typed; what a VM PUT gives that recoverite only shows back (image
//! reference, caching, delete options, OS profile without its password) is
//! kept as given beside the typed fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::{id, ArmError};
use recoverite_store::{Reader, WriteTx};

pub const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDiskRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_type: Option<String>,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub create_option: String,
    #[serde(
        rename = "diskSizeGB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_size_gb: Option<u64>,
    pub managed_disk: ManagedDiskRef,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataDisk {
    pub lun: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub create_option: String,
    #[serde(
        rename = "diskSizeGB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_size_gb: Option<u64>,
    pub managed_disk: ManagedDiskRef,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    pub os_disk: OsDisk,
    #[serde(default)]
    pub data_disks: Vec<DataDisk>,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

impl NicRef {
    fn primary(&self) -> bool {
        self.properties
            .as_ref()
            .and_then(|p| p.get("primary"))
            .and_then(Value::as_bool)
            == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    pub network_interfaces: Vec<NicRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    pub vm_size: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProperties {
    pub vm_id: String,
    pub provisioning_state: String,
    pub hardware_profile: HardwareProfile,
    pub storage_profile: StorageProfile,
    pub network_profile: NetworkProfile,
    pub time_created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_set: Option<Ref>,
    /// As given, without `adminPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_profile: Option<Value>,
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualMachine {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    pub properties: VmProperties,
}

impl VirtualMachine {
    /// Its managed disks, the OS disk first, then data disks in LUN order
    /// as listed.
    pub fn disk_ids(&self) -> Vec<String> {
        let sp = &self.properties.storage_profile;
        std::iter::once(sp.os_disk.managed_disk.id.clone())
            .chain(sp.data_disks.iter().map(|d| d.managed_disk.id.clone()))
            .collect()
    }

    pub fn nic_ids(&self) -> Vec<String> {
        self.properties
            .network_profile
            .network_interfaces
            .iter()
            .map(|n| n.id.clone())
            .collect()
    }

    /// "The primary network interface": the one marked primary, or the only
    /// (first) one.
    pub fn primary_nic(&self) -> Option<&str> {
        let nics = &self.properties.network_profile.network_interfaces;
        nics.iter()
            .find(|n| n.primary())
            .or(nics.first())
            .map(|n| n.id.as_str())
    }

    /// The identity's principal, when the VM has a system-assigned one.
    pub fn principal_id(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .and_then(|i| i["principalId"].as_str())
    }

    pub fn has_disk(&self, disk_id: &str) -> bool {
        let k = id::key(disk_id);
        self.disk_ids().iter().any(|d| id::key(d) == k)
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }

    /// Reads a stored VM document.
    pub fn of(doc: Value) -> Result<VirtualMachine, ArmError> {
        document::read(doc)
    }
}

recoverite_arm::impl_document!(VirtualMachine, VM_TYPE, "virtual machine");

/// The VM at `id`, if it is one.
pub fn load(r: &impl Reader, vm_id: &str) -> Result<Option<VirtualMachine>, ArmError> {
    document::load(r, vm_id)
}

/// Every VM in `scope`.
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<VirtualMachine>, ArmError> {
    document::list(r, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::json!({"id": "/vm", "name": "vm", "type": VM_TYPE, "location": "westus", "tags": {},
            "properties": {"vmId": "u", "provisioningState": "Succeeded", "timeCreated": "t",
              "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
              "storageProfile": {"imageReference": {"offer": "ubuntu"},
                "osDisk": {"osType": "Linux", "name": "os", "createOption": "FromImage", "diskSizeGB": 30, "caching": "ReadWrite",
                           "managedDisk": {"id": "/d/os", "storageAccountType": "Premium_LRS"}},
                "dataDisks": [{"lun": 2, "name": "d2", "createOption": "Attach", "caching": "None", "diskSizeGB": 4,
                               "managedDisk": {"id": "/d/d2", "storageAccountType": "Standard_LRS"}}]},
              "networkProfile": {"networkInterfaces": [{"id": "/n/a"}, {"id": "/n/b", "properties": {"primary": true}}]}}})
    }

    #[test]
    fn a_vm_reads_back_as_written_keeping_what_it_only_echoes() {
        let vm = VirtualMachine::of(doc()).unwrap();
        assert_eq!(
            vm.disk_ids(),
            vec!["/d/os".to_string(), "/d/d2".to_string()]
        );
        assert!(vm.has_disk("/D/D2"));
        assert_eq!(vm.nic_ids().len(), 2);
        assert_eq!(
            vm.properties.storage_profile.given["imageReference"]["offer"],
            "ubuntu"
        );
        assert_eq!(
            vm.properties.storage_profile.os_disk.given["caching"],
            "ReadWrite"
        );
        assert_eq!(vm.to_value().unwrap(), doc());
    }

    #[test]
    fn the_primary_nic_is_the_one_marked_or_else_the_first() {
        let vm = VirtualMachine::of(doc()).unwrap();
        assert_eq!(vm.primary_nic(), Some("/n/b"));
        let mut d = doc();
        d["properties"]["networkProfile"]["networkInterfaces"] =
            serde_json::json!([{"id": "/n/a"}, {"id": "/n/b"}]);
        assert_eq!(VirtualMachine::of(d).unwrap().primary_nic(), Some("/n/a"));
        let mut bad = doc();
        bad["properties"]["storageProfile"]["dataDisks"][0]["lun"] = serde_json::json!("two");
        assert!(VirtualMachine::of(bad).is_err());
    }
}
