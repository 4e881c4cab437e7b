//! Protection containers of protected Azure VMs: an Azure VM's container
//! (`iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}`) is registered in the
//! vault while the vault holds a protected item of the VM — soft-deleted
//! ones included, since their data is still there. The vault provider lists
//! them with the containers registered explicitly (workloads), with the
//! filters azure-cli sends.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::{document, ArmError};
use recoverite_store::{Reader, WriteTx};

pub const CONTAINER_TYPE: &str =
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers";

/// What the list filters and the rules read of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProperties {
    pub friendly_name: String,
    /// `AzureIaasVM`, `MAB`, `AzureWorkload`…
    pub backup_management_type: String,
    pub container_type: String,
    pub registration_status: String,
    pub health_status: String,
    /// The workload's own fields (a VM's id, a MARS agent's version…), as written.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A Backup protection container: one a workload or a MARS machine
/// registered (stored), or an Azure VM's (made from its protected item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupContainer {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: ContainerProperties,
}

recoverite_arm::impl_document!(BackupContainer, CONTAINER_TYPE, "protection container");

impl BackupContainer {
    /// A registered container of `backup_management_type` in the vault.
    pub fn registered(
        id: &str,
        name: &str,
        (friendly_name, backup_management_type, container_type): (&str, &str, &str),
        given: Map<String, Value>,
    ) -> BackupContainer {
        BackupContainer {
            id: id.to_string(),
            name: name.to_string(),
            kind: CONTAINER_TYPE.to_string(),
            properties: ContainerProperties {
                friendly_name: friendly_name.to_string(),
                backup_management_type: backup_management_type.to_string(),
                container_type: container_type.to_string(),
                registration_status: "Registered".into(),
                health_status: "Healthy".into(),
                given,
            },
        }
    }

    /// Whether a list's `$filter` keeps the container.
    pub fn matches(&self, filter: &str) -> bool {
        let p = &self.properties;
        filter_allows(filter, "backupManagementType", &p.backup_management_type)
            && filter_allows(filter, "status", &p.registration_status)
            && filter_allows(filter, "friendlyName", &p.friendly_name)
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

/// The container at `id`, if one is registered there.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<BackupContainer>, ArmError> {
    document::load(r, id)
}

/// Whether an OData `$filter` of `key eq 'value'` clauses (joined by
/// `and`, as azure-cli and the portal send them) allows `value` for `key`;
/// a key the filter does not name allows anything.
/// A registered machine (MARS, DPM, Backup server) may be unregistered only
/// once it protects nothing: its items' backup data must be deleted, and
/// soft-deleted data must be gone, first.
pub fn check_unregister(item_count: usize, container: &str) -> Result<(), ArmError> {
    if item_count > 0 {
        return Err(ArmError::bad_request("BMSUserErrorContainerHasDatasources", format!("The machine '{container}' still has {item_count} protected item(s) (soft-deleted ones included); stop protection and delete their backup data, and let soft delete end, before unregistering it.")));
    }
    Ok(())
}

pub fn filter_allows(filter: &str, key: &str, value: &str) -> bool {
    let f = filter.to_ascii_lowercase();
    let needle = format!("{} eq '", key.to_ascii_lowercase());
    match f.find(&needle) {
        Some(at) => f[at + needle.len()..]
            .split('\'')
            .next()
            .is_some_and(|v| v == value.to_ascii_lowercase()),
        None => true,
    }
}

fn doc(vault_id: &str, name: &str, vm_id: &str) -> BackupContainer {
    let parts: Vec<&str> = name.split(';').collect();
    let (rg, vm) = match parts.as_slice() {
        [_, _, rg, vm] => (rg.to_string(), vm.to_string()),
        _ => (String::new(), name.to_string()),
    };
    let shown = json!({
        "protectableObjectType": "Microsoft.Compute/virtualMachines",
        "virtualMachineId": vm_id,
        "virtualMachineVersion": "Compute",
        "resourceGroup": rg,
    });
    BackupContainer::registered(
        &format!("{vault_id}/backupFabrics/Azure/protectionContainers/{name}"),
        name,
        (&vm, "AzureIaasVM", "Microsoft.Compute/virtualMachines"),
        shown.as_object().cloned().unwrap_or_default(),
    )
}

/// The containers of the vault's protected VMs, one per VM (a MARS
/// machine's folders are in the container it registered, not one of these).
pub fn vm_containers(r: &impl Reader, vault_id: &str) -> Result<Vec<BackupContainer>, ArmError> {
    let mut out: Vec<BackupContainer> = Vec::new();
    for i in crate::backup_item::list(r, vault_id)? {
        let Some(vm) = i.vm() else {
            continue;
        };
        let name = i.container();
        if !out.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
            out.push(doc(vault_id, name, &vm.virtual_machine_id));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn unregistering_needs_no_items_left() {
        assert!(check_unregister(0, "m").is_ok());
        assert_eq!(
            check_unregister(2, "m").unwrap_err().body.code,
            "BMSUserErrorContainerHasDatasources"
        );
    }

    use super::*;

    #[test]
    fn filters_as_azure_cli_sends_them() {
        let f = "backupManagementType eq 'AzureIaasVM' and friendlyName eq 'vm1' and status eq 'Registered'";
        assert!(filter_allows(f, "friendlyName", "VM1"));
        assert!(!filter_allows(f, "friendlyName", "vm2"));
        assert!(
            filter_allows(f, "itemType", "anything"),
            "a key the filter does not name"
        );
        let c = doc("/v", "iaasvmcontainer;iaasvmcontainerv2;rg;app", "/vm");
        assert_eq!(c.properties.friendly_name, "app");
        assert_eq!(c.to_value().unwrap()["properties"]["resourceGroup"], "rg");
        assert!(!c.matches(f));
        assert!(c.matches("backupManagementType eq 'AzureIaasVM' and friendlyName eq 'app'"));
    }

    #[test]
    fn only_vm_items_make_vm_containers() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let v = "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v";
        let item = |container: &str, name: &str, props: Value| {
            let mut p = json!({
                "containerName": container, "friendlyName": name, "workloadType": "VM",
                "policyId": "", "policyName": "", "protectionState": "Protected",
                "lastBackupStatus": "", "isScheduledForDeferredDelete": false,
                "extendedInfo": {"recoveryPointCount": 0}, "vaultId": v,
            });
            p.as_object_mut()
                .unwrap()
                .extend(props.as_object().unwrap().clone());
            let id = format!(
                "{v}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{name}"
            );
            (
                id.clone(),
                json!({"id": id, "name": name, "type": crate::vault::BACKUP_ITEM_TYPE, "location": "westeurope", "properties": p}),
            )
        };
        let vm = item(
            "iaasvmcontainer;iaasvmcontainerv2;g;app",
            "vm;iaasvmcontainerv2;g;app",
            json!({
            "protectedItemType": "Microsoft.Compute/virtualMachines", "backupManagementType": "AzureIaasVM",
            "sourceResourceId": "/vm/app", "virtualMachineId": "/vm/app", "protectionStatus": "Healthy",
            "healthStatus": "Passed", "protectedItemDataId": "x", "createMode": "Default"}),
        );
        let mars = item(
            "MARS_host1",
            "FileFolder;C:\\data",
            json!({
            "protectedItemType": "MabFileFolderProtectedItem", "backupManagementType": "MAB",
            "computerName": "host1"}),
        );
        store
            .write(|tx| {
                recoverite_arm::resource::put(tx, &vm.0, &vm.1)?;
                recoverite_arm::resource::put(tx, &mars.0, &mars.1)
            })
            .unwrap();
        let cs = store.view(|r| vm_containers(r, v)).unwrap();
        assert_eq!(cs.len(), 1, "{cs:?}");
        assert_eq!(cs[0].properties.given["virtualMachineId"], "/vm/app");
    }
}
