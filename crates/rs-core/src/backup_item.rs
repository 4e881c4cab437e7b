//! The Backup protected-item state machine (Azure VMs and MARS items alike):
//! the item's state is Azure's `protectionState` together with the soft
//! delete mark (`isScheduledForDeferredDelete`); each operation is allowed
//! from some states and leads to one. Handlers read the state, check the
//! operation and write the state it leads to in one transaction, so a
//! change made meanwhile is checked against what is really stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use recoverite_arm::{document, ArmError};
use recoverite_store::{Reader, WriteTx};

use crate::vault::BACKUP_ITEM_TYPE;

/// Where a Backup protected item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupState {
    /// Protected, no recovery point yet (`IRPending`).
    IrPending,
    /// Protected with at least one recovery point.
    Protected,
    /// Protection stopped, the data kept.
    ProtectionStopped,
    /// Protection stopped and the data deleted, kept for the soft-delete
    /// window ("Deleted backup data is retained for 14 additional days").
    SoftDeleted,
}

/// What is done to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupOp {
    /// An on-demand or scheduled backup.
    Backup,
    /// Change the policy, or resume a stopped protection (`ConfigureBackup`).
    Configure,
    /// Stop protection and keep the data (`DisableBackup`).
    StopKeepingData,
    /// Stop protection and delete the data (`DeleteBackupData`).
    DeleteData,
    /// Undo a soft delete (`isRehydrate`).
    Undelete,
}

/// Why an operation is not allowed, with the code Azure Backup answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupStateError {
    #[error("The item's backup data is deleted (soft delete); undelete it (isRehydrate) first.")]
    SoftDeleted,
    #[error("The item is not soft-deleted; nothing to undelete.")]
    NotSoftDeleted,
    #[error("Protection of the item is stopped; resume it with a policy before backing up.")]
    ProtectionStopped,
}

impl BackupStateError {
    pub fn code(&self) -> &'static str {
        match self {
            BackupStateError::SoftDeleted => "BMSUserErrorItemSoftDeleted",
            BackupStateError::NotSoftDeleted => "BMSUserErrorItemNotSoftDeleted",
            BackupStateError::ProtectionStopped => "BMSUserErrorProtectionStopped",
        }
    }

    pub fn to_arm(&self) -> ArmError {
        ArmError::bad_request(self.code(), self.to_string())
    }
}

impl From<BackupStateError> for ArmError {
    fn from(e: BackupStateError) -> ArmError {
        e.to_arm()
    }
}

impl BackupState {
    /// The state of an item from its `protectionState` and soft delete mark.
    pub fn of(protection_state: ProtectionState, soft_deleted: bool) -> BackupState {
        match (soft_deleted, protection_state) {
            (true, _) => BackupState::SoftDeleted,
            (false, ProtectionState::IrPending) => BackupState::IrPending,
            (false, ProtectionState::Protected) => BackupState::Protected,
            (false, ProtectionState::ProtectionStopped) => BackupState::ProtectionStopped,
        }
    }

    /// Azure's `protectionState` for this state (a soft-deleted item shows
    /// `ProtectionStopped`).
    pub fn protection_state(self) -> ProtectionState {
        match self {
            BackupState::IrPending => ProtectionState::IrPending,
            BackupState::Protected => ProtectionState::Protected,
            BackupState::ProtectionStopped | BackupState::SoftDeleted => {
                ProtectionState::ProtectionStopped
            }
        }
    }

    /// Whether `op` is allowed from this state.
    pub fn check(self, op: BackupOp) -> Result<(), BackupStateError> {
        use BackupOp::*;
        use BackupState::*;
        match (self, op) {
            (SoftDeleted, Undelete) => Ok(()),
            (_, Undelete) => Err(BackupStateError::NotSoftDeleted),
            (SoftDeleted, _) => Err(BackupStateError::SoftDeleted),
            (ProtectionStopped, Backup) => Err(BackupStateError::ProtectionStopped),
            _ => Ok(()),
        }
    }

    /// The state `op` leads to (`has_point`: the item has a recovery point).
    pub fn after(self, op: BackupOp, has_point: bool) -> BackupState {
        let protecting = if has_point {
            BackupState::Protected
        } else {
            BackupState::IrPending
        };
        match op {
            BackupOp::Backup => BackupState::Protected,
            BackupOp::Configure => protecting,
            BackupOp::StopKeepingData | BackupOp::Undelete => BackupState::ProtectionStopped,
            BackupOp::DeleteData => BackupState::SoftDeleted,
        }
    }
}

/// Azure's `protectionState` of a Backup protected item, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectionState {
    #[serde(rename = "IRPending")]
    IrPending,
    Protected,
    ProtectionStopped,
}

/// What is only on an Azure VM's item (`AzureIaaSComputeVMProtectedItem`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmItem {
    pub source_resource_id: String,
    pub virtual_machine_id: String,
    pub protection_status: String,
    pub health_status: String,
    pub protected_item_data_id: String,
    pub create_mode: String,
}

/// What is only on a MARS agent's folder (`MabFileFolderProtectedItem`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MabItem {
    /// The registered machine's name.
    pub computer_name: String,
    #[serde(rename = "deferredDeleteSyncTimeInUTC", default)]
    pub deferred_delete_sync_time_in_utc: i64,
}

/// The two workloads' own fields, told apart by `backupManagementType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backupManagementType")]
pub enum Workload {
    #[serde(rename = "AzureIaasVM")]
    Vm(VmItem),
    #[serde(rename = "MAB")]
    Mab(MabItem),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemExtendedInfo {
    #[serde(default)]
    pub recovery_point_count: usize,
    #[serde(default)]
    pub oldest_recovery_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_inconsistent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refreshed_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProperties {
    pub protected_item_type: String,
    #[serde(flatten)]
    pub workload: Workload,
    pub workload_type: String,
    pub container_name: String,
    pub friendly_name: String,
    /// Empty when no policy protects the item (stopped, soft-deleted, or a
    /// MARS folder backed up without one), as Azure shows it.
    pub policy_id: String,
    pub policy_name: String,
    pub protection_state: ProtectionState,
    pub last_backup_status: String,
    #[serde(default)]
    pub last_backup_time: Option<String>,
    #[serde(default)]
    pub last_recovery_point: Option<String>,
    pub is_scheduled_for_deferred_delete: bool,
    #[serde(rename = "deferredDeleteTimeInUTC", default)]
    pub deferred_delete_time_in_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_delete_time_remaining: Option<String>,
    pub extended_info: ItemExtendedInfo,
    pub vault_id: String,
}

/// What a new item is: `protectedItemType`, its workload's own fields,
/// `workloadType`, its container, its name.
pub struct NewItem<'a> {
    pub protected_item_type: &'a str,
    pub workload: Workload,
    pub workload_type: &'a str,
    pub container_name: &'a str,
    pub friendly_name: &'a str,
}

impl ItemProperties {
    /// A newly protected item of the vault: no policy named yet, no backup
    /// and no point (`IRPending`), not deleted.
    pub fn new(item: NewItem, vault_id: &str) -> ItemProperties {
        ItemProperties {
            protected_item_type: item.protected_item_type.to_string(),
            workload: item.workload,
            workload_type: item.workload_type.to_string(),
            container_name: item.container_name.to_string(),
            friendly_name: item.friendly_name.to_string(),
            policy_id: String::new(),
            policy_name: String::new(),
            protection_state: ProtectionState::IrPending,
            last_backup_status: String::new(),
            last_backup_time: None,
            last_recovery_point: None,
            is_scheduled_for_deferred_delete: false,
            deferred_delete_time_in_utc: None,
            deferred_delete_time_remaining: None,
            extended_info: ItemExtendedInfo::default(),
            vault_id: vault_id.to_string(),
        }
    }
}

/// A Backup protected item: an Azure VM or a MARS agent's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectedItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: ItemProperties,
}

recoverite_arm::impl_document!(ProtectedItem, BACKUP_ITEM_TYPE, "protected item");

impl ProtectedItem {
    pub fn vm(&self) -> Option<&VmItem> {
        match &self.properties.workload {
            Workload::Vm(v) => Some(v),
            Workload::Mab(_) => None,
        }
    }

    pub fn mab(&self) -> Option<&MabItem> {
        match &self.properties.workload {
            Workload::Mab(m) => Some(m),
            Workload::Vm(_) => None,
        }
    }

    pub fn is_mab(&self) -> bool {
        self.mab().is_some()
    }

    /// The protected VM's id (empty for a MARS folder).
    pub fn vm_id(&self) -> &str {
        self.vm()
            .map(|v| v.source_resource_id.as_str())
            .unwrap_or("")
    }

    /// The item's container, as its id names it.
    pub fn container(&self) -> &str {
        self.id
            .split("/protectionContainers/")
            .nth(1)
            .and_then(|t| t.split('/').next())
            .unwrap_or("")
    }

    /// Where the item is in the state machine.
    pub fn state(&self) -> BackupState {
        let p = &self.properties;
        BackupState::of(p.protection_state, p.is_scheduled_for_deferred_delete)
    }

    /// Whether a backup has made a point of it.
    pub fn has_point(&self) -> bool {
        self.properties.last_recovery_point.is_some() || self.properties.last_backup_time.is_some()
    }

    /// Checks `op` against the item's state and moves the item to the state
    /// it leads to (the soft-delete mark, the time the data goes, and the
    /// policy a stopped item no longer has). Called on the item as read in
    /// the transaction that writes it.
    pub fn apply(&mut self, op: BackupOp, now: OffsetDateTime) -> Result<(), BackupStateError> {
        let state = self.state();
        state.check(op)?;
        let next = state.after(op, self.has_point());
        let p = &mut self.properties;
        p.protection_state = next.protection_state();
        match op {
            BackupOp::Undelete => {
                p.is_scheduled_for_deferred_delete = false;
                p.deferred_delete_time_in_utc = None;
                p.deferred_delete_time_remaining = None;
            }
            BackupOp::DeleteData => {
                let until = now + time::Duration::days(SOFT_DELETE_DAYS);
                p.is_scheduled_for_deferred_delete = true;
                p.deferred_delete_time_in_utc = Some(recoverite_arm::time::format(until));
                p.deferred_delete_time_remaining = Some(format!("P{SOFT_DELETE_DAYS}D"));
                p.policy_id.clear();
            }
            BackupOp::StopKeepingData => {
                if let Workload::Vm(v) = &mut p.workload {
                    v.protection_status = "Healthy".into();
                    p.policy_id.clear();
                    p.policy_name.clear();
                }
            }
            BackupOp::Backup | BackupOp::Configure => {}
        }
        Ok(())
    }

    /// Whether the soft-delete window of a deleted item is over at `now`.
    pub fn purge_due(&self, now: OffsetDateTime) -> bool {
        let p = &self.properties;
        p.is_scheduled_for_deferred_delete
            && p.deferred_delete_time_in_utc
                .as_deref()
                .and_then(recoverite_arm::time::parse)
                .is_some_and(|t| t <= now)
    }

    /// A backup made a point at `at`; the item now has `count`.
    pub fn record_point(&mut self, at: &str, count: usize) {
        let p = &mut self.properties;
        p.protection_state = ProtectionState::Protected;
        p.last_backup_status = "Completed".into();
        p.last_backup_time = Some(at.to_string());
        p.last_recovery_point = Some(at.to_string());
        p.extended_info.recovery_point_count = count;
        if p.extended_info.oldest_recovery_point.is_none() {
            p.extended_info.oldest_recovery_point = Some(at.to_string());
        }
    }

    /// Points were pruned: `count` are left, the oldest taken at `oldest`.
    pub fn set_points(&mut self, count: usize, oldest: Option<String>) {
        self.properties.extended_info.recovery_point_count = count;
        self.properties.extended_info.oldest_recovery_point = oldest;
    }

    /// Whether a list's `$filter` (as azure-cli and the portal send it) keeps the item.
    pub fn matches(&self, filter: &str) -> bool {
        let p = &self.properties;
        let management = if self.is_mab() { "MAB" } else { "AzureIaasVM" };
        crate::containers::filter_allows(filter, "backupManagementType", management)
            && crate::containers::filter_allows(filter, "itemType", &p.workload_type)
            && crate::containers::filter_allows(filter, "policyName", &p.policy_name)
            && crate::containers::filter_allows(filter, "containerName", &p.container_name)
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

/// "Deleted backup data is kept for 14 days and can be undeleted in that time."
pub const SOFT_DELETE_DAYS: i64 = 14;

/// The item at `id`, if there is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<ProtectedItem>, ArmError> {
    document::load(r, id)
}

/// The vault's items ("" for every vault's).
pub fn list(r: &impl Reader, vault_id: &str) -> Result<Vec<ProtectedItem>, ArmError> {
    document::list(r, vault_id)
}

/// The items of one container.
pub fn in_container(r: &impl Reader, container_id: &str) -> Result<Vec<ProtectedItem>, ArmError> {
    document::children::<ProtectedItem>(r, container_id, "protectedItems")
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackupOp::*;
    use BackupState::*;

    #[test]
    fn backups_need_protection_and_soft_deleted_items_only_undelete() {
        for s in [IrPending, Protected] {
            assert!(s.check(Backup).is_ok());
            assert_eq!(s.after(Backup, false), Protected);
        }
        assert_eq!(
            ProtectionStopped.check(Backup),
            Err(BackupStateError::ProtectionStopped)
        );
        for op in [Backup, Configure, StopKeepingData, DeleteData] {
            assert_eq!(
                SoftDeleted.check(op).unwrap_err().code(),
                "BMSUserErrorItemSoftDeleted"
            );
        }
        assert!(SoftDeleted.check(Undelete).is_ok());
        assert_eq!(SoftDeleted.after(Undelete, true), ProtectionStopped);
        for s in [IrPending, Protected, ProtectionStopped] {
            assert_eq!(s.check(Undelete), Err(BackupStateError::NotSoftDeleted));
        }
    }

    #[test]
    fn resuming_depends_on_points_and_states_read_back() {
        assert_eq!(ProtectionStopped.after(Configure, false), IrPending);
        assert_eq!(ProtectionStopped.after(Configure, true), Protected);
        assert_eq!(Protected.after(DeleteData, true), SoftDeleted);
        assert_eq!(
            SoftDeleted.protection_state(),
            ProtectionState::ProtectionStopped
        );
        assert_eq!(
            BackupState::of(ProtectionState::Protected, true),
            SoftDeleted
        );
        assert_eq!(
            BackupState::of(ProtectionState::IrPending, false),
            IrPending
        );
        for s in [IrPending, Protected, ProtectionStopped] {
            assert_eq!(BackupState::of(s.protection_state(), false), s);
        }
    }

    fn vm_item() -> serde_json::Value {
        // As the VM item was stored before it was typed.
        serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/Azure/protectionContainers/iaasvmcontainer;iaasvmcontainerv2;g;vm1/protectedItems/vm;iaasvmcontainerv2;g;vm1",
            "name": "vm;iaasvmcontainerv2;g;vm1", "type": BACKUP_ITEM_TYPE, "location": "westeurope",
            "properties": {
                "protectedItemType": "Microsoft.Compute/virtualMachines",
                "backupManagementType": "AzureIaasVM", "workloadType": "VM",
                "containerName": "iaasvmcontainer;iaasvmcontainerv2;g;vm1",
                "sourceResourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1",
                "virtualMachineId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1",
                "friendlyName": "vm1", "policyId": "/p/DefaultPolicy", "policyName": "DefaultPolicy",
                "protectionStatus": "Healthy", "protectionState": "IRPending", "healthStatus": "Passed",
                "lastBackupStatus": "", "lastRecoveryPoint": null, "protectedItemDataId": "d",
                "isScheduledForDeferredDelete": false, "createMode": "Default",
                "extendedInfo": {"recoveryPointCount": 0, "policyInconsistent": false},
                "vaultId": "/v",
            }
        })
    }

    #[test]
    fn stored_items_of_both_workloads_read_back_typed() {
        let vm: ProtectedItem = serde_json::from_value(vm_item()).unwrap();
        assert_eq!(vm.state(), IrPending);
        assert!(vm.vm_id().ends_with("/vm1") && !vm.is_mab());
        assert_eq!(vm.container(), "iaasvmcontainer;iaasvmcontainerv2;g;vm1");
        let back = vm.to_value().unwrap();
        assert_eq!(back["properties"]["backupManagementType"], "AzureIaasVM");
        assert_eq!(back["properties"]["protectionState"], "IRPending");
        assert_eq!(
            back["properties"]["extendedInfo"]["policyInconsistent"],
            false
        );
        let mab: ProtectedItem = serde_json::from_value(serde_json::json!({
            "id": "/v/backupFabrics/Azure/protectionContainers/c/protectedItems/FileFolder;x", "name": "FileFolder;x",
            "type": BACKUP_ITEM_TYPE, "location": "westeurope",
            "properties": {
                "protectedItemType": "MabFileFolderProtectedItem", "backupManagementType": "MAB",
                "workloadType": "FileFolder", "containerName": "c", "friendlyName": "C:\\data",
                "computerName": "host1", "protectionState": "Protected", "lastBackupStatus": "Completed",
                "lastBackupTime": "2026-01-01T00:00:00Z", "deferredDeleteSyncTimeInUTC": 0,
                "isScheduledForDeferredDelete": false, "policyId": "", "policyName": "",
                "extendedInfo": {"lastRefreshedAt": "t", "oldestRecoveryPoint": null, "recoveryPointCount": 1},
                "vaultId": "/v",
            }
        }))
        .unwrap();
        assert_eq!(mab.mab().unwrap().computer_name, "host1");
        assert!(mab.has_point() && mab.vm_id().is_empty());
        // A misspelled state is refused, not read as an empty one.
        let mut bad = vm_item();
        bad["properties"]["protectionState"] = serde_json::json!("Bogus");
        assert!(serde_json::from_value::<ProtectedItem>(bad).is_err());
    }

    #[test]
    fn delete_keeps_data_fourteen_days_and_undelete_restores_a_stopped_item() {
        let now = recoverite_arm::time::parse("2026-03-01T00:00:00Z").unwrap();
        let mut it: ProtectedItem = serde_json::from_value(vm_item()).unwrap();
        it.record_point("2026-02-28T00:00:00Z", 1);
        assert_eq!(it.state(), Protected);
        it.apply(DeleteData, now).unwrap();
        assert_eq!(it.state(), SoftDeleted);
        let p = &it.properties;
        assert_eq!(
            p.deferred_delete_time_in_utc.as_deref(),
            Some("2026-03-15T00:00:00.0000000Z")
        );
        assert!(p.policy_id.is_empty());
        assert!(!it.purge_due(now) && it.purge_due(now + time::Duration::days(14)));
        assert_eq!(
            it.clone().apply(Backup, now),
            Err(BackupStateError::SoftDeleted)
        );
        it.apply(Undelete, now).unwrap();
        assert_eq!(it.state(), ProtectionStopped);
        assert!(it.properties.deferred_delete_time_in_utc.is_none());
        assert!(!it.purge_due(now + time::Duration::days(30)));
    }

    #[test]
    fn stopping_a_vm_clears_its_policy_and_filters_read_typed_fields() {
        let now = recoverite_arm::time::now();
        let mut it: ProtectedItem = serde_json::from_value(vm_item()).unwrap();
        assert!(it.matches("backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"));
        assert!(it.matches("policyName eq 'DefaultPolicy'"));
        assert!(!it.matches("backupManagementType eq 'MAB'"));
        it.apply(StopKeepingData, now).unwrap();
        assert_eq!(
            it.properties.protection_state,
            ProtectionState::ProtectionStopped
        );
        assert!(it.properties.policy_name.is_empty());
        assert!(!it.matches("policyName eq 'DefaultPolicy'"));
        // Resuming without a point goes back to IRPending.
        it.apply(Configure, now).unwrap();
        assert_eq!(it.state(), IrPending);
    }
}
