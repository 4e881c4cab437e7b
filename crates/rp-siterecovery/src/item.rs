//! A replication protected item (A2A) as stored (issue 9, point 2): what
//! enable, failover, drills, reprotect, the replication loop and health
//! decide on is typed — its state in the core's state machine, the side it
//! is active on, the VM on each side, its disks, its cache accounts, its
//! group; what Azure only shows (monitoring figures, agent version) is kept
//! as written beside the typed fields. The wire document is rendered from it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::{document, ArmError};
use recoverite_rs_core::protection::{ItemState, ProtectionState, TestFailoverState, Transition};
use recoverite_store::{Reader, WriteTx};

pub const ITEM_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems";

/// One replicated managed disk (`A2AProtectedManagedDiskDetails`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedDisk {
    pub disk_id: String,
    pub disk_name: String,
    #[serde(default)]
    pub disk_capacity_in_bytes: u64,
    /// `OperatingSystem` or `Data`.
    pub disk_type: String,
    #[serde(default)]
    pub primary_staging_azure_storage_account_id: String,
    pub recovery_resource_group_id: String,
    #[serde(default)]
    pub recovery_replica_disk_account_type: Option<String>,
    #[serde(default)]
    pub recovery_target_disk_account_type: Option<String>,
    /// The disk a failover made in the recovery region (after one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target_disk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_replica_disk_id: Option<String>,
    #[serde(rename = "dataPendingAtSourceAgentInMB", default)]
    pub data_pending_at_source_agent_in_mb: f64,
    /// Monitoring figures and flags, as written.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

impl ProtectedDisk {
    pub fn is_os(&self) -> bool {
        self.disk_type == "OperatingSystem"
    }
}

/// `A2AReplicationDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct A2ADetails {
    /// The protected VM (in the primary region).
    pub fabric_object_id: String,
    /// The replication engine's id of this protection (new on reprotect).
    pub lifecycle_id: String,
    pub primary_fabric_location: String,
    pub recovery_fabric_location: String,
    #[serde(default)]
    pub os_type: Option<String>,
    pub recovery_azure_resource_group_id: String,
    #[serde(default)]
    pub multi_vm_group_name: Option<String>,
    #[serde(default)]
    pub multi_vm_group_id: Option<String>,
    #[serde(default)]
    pub selected_recovery_azure_network_id: Option<String>,
    #[serde(default)]
    pub recovery_subnet_name: Option<String>,
    #[serde(rename = "recoveryAzureVMName")]
    pub recovery_azure_vm_name: String,
    #[serde(rename = "recoveryAzureVMSize", default)]
    pub recovery_azure_vm_size: Option<String>,
    #[serde(default)]
    pub recovery_availability_set: Option<String>,
    pub protected_managed_disks: Vec<ProtectedDisk>,
    #[serde(default)]
    pub initial_replication_start_time: String,
    /// The VM a failover made in the recovery region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_fabric_object_id: Option<String>,
    /// The cache account the agent in the recovery region writes to (after
    /// a reprotect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_cache_storage_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_bytes: Option<u64>,
    /// A drill's disks, VM, network and VM name, until its cleanup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_failover_disk_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_failover_recovery_fabric_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_tfo_azure_network_id: Option<String>,
    #[serde(
        rename = "tfoAzureVMName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tfo_azure_vm_name: Option<String>,
    /// The instance type, agent version, protection state echoes, RPO
    /// figures shown on reads…: as written.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProperties {
    pub friendly_name: String,
    pub policy_id: String,
    pub recovery_fabric_id: String,
    pub recovery_container_id: String,
    pub protection_state: ProtectionState,
    pub protection_state_description: String,
    pub test_failover_state: TestFailoverState,
    #[serde(default)]
    pub test_failover_state_description: String,
    /// `Primary` or `Recovery`.
    pub active_location: String,
    pub replication_health: String,
    #[serde(default)]
    pub health_errors: Vec<Value>,
    #[serde(default)]
    pub allowed_operations: Vec<String>,
    #[serde(default)]
    pub last_successful_failover_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_test_failover_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_recovery_point_id: Option<String>,
    pub provider_specific_details: A2ADetails,
    /// Friendly names of fabrics and containers, providers, scenario…
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A VM replicating between two regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: ItemProperties,
}

recoverite_arm::impl_document!(ReplicationItem, ITEM_TYPE, "replication protected item");

/// Where a protected item is active: the side it replicates from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Primary,
    Recovery,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Recovery,
            Side::Recovery => Side::Primary,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Primary => "Primary",
            Side::Recovery => "Recovery",
        }
    }

    pub fn failover_direction(self) -> &'static str {
        match self {
            Side::Primary => "PrimaryToRecovery",
            Side::Recovery => "RecoveryToPrimary",
        }
    }

    /// The disk a failover from this side writes for a protected disk: the
    /// recovery disk (`{disk}-ASRReplica` until one exists), or on failback
    /// the original disk.
    pub fn failover_disk_id(self, disk: &ProtectedDisk) -> String {
        match self {
            Side::Primary => disk.recovery_target_disk_id.clone().unwrap_or_else(|| {
                format!(
                    "{}/providers/Microsoft.Compute/disks/{}-ASRReplica",
                    disk.recovery_resource_group_id, disk.disk_name
                )
            }),
            Side::Recovery => disk.disk_id.clone(),
        }
    }

    /// The disk replication reads from on this side.
    pub fn source_disk_id(self, disk: &ProtectedDisk) -> String {
        match self {
            Side::Primary => disk.disk_id.clone(),
            Side::Recovery => disk.recovery_target_disk_id.clone().unwrap_or_default(),
        }
    }
}

impl ReplicationItem {
    fn details(&self) -> &A2ADetails {
        &self.properties.provider_specific_details
    }

    /// The replication engine's id of the item's current protection.
    pub fn engine_id(&self) -> &str {
        &self.details().lifecycle_id
    }

    /// The vault the item is in (its id up to the vault's name).
    pub fn vault_id(&self) -> &str {
        crate::groups::vault_of_item(&self.id)
    }

    pub fn side(&self) -> Side {
        if self.properties.active_location == "Recovery" {
            Side::Recovery
        } else {
            Side::Primary
        }
    }

    /// The VM on `side` (the protected one, or the one failover made).
    pub fn vm_on(&self, side: Side) -> &str {
        let d = self.details();
        match side {
            Side::Primary => &d.fabric_object_id,
            Side::Recovery => d.recovery_fabric_object_id.as_deref().unwrap_or(""),
        }
    }

    /// The region a failover from `side` lands in.
    pub fn target_location(&self, side: Side) -> &str {
        let d = self.details();
        match side {
            Side::Primary => &d.recovery_fabric_location,
            Side::Recovery => &d.primary_fabric_location,
        }
    }

    /// The region replication reads from on `side`.
    pub fn source_location(&self, side: Side) -> &str {
        self.target_location(side.other())
    }

    /// The cache storage account the agent on `side` writes to.
    pub fn cache_account_id(&self, side: Side) -> &str {
        let d = self.details();
        match side {
            Side::Primary => d
                .protected_managed_disks
                .first()
                .map(|x| x.primary_staging_azure_storage_account_id.as_str())
                .unwrap_or(""),
            Side::Recovery => d.recovery_cache_storage_account_id.as_deref().unwrap_or(""),
        }
    }

    /// The item's replication group (multi-VM consistency), if it has one.
    pub fn group(&self) -> Option<&str> {
        self.details()
            .multi_vm_group_name
            .as_deref()
            .filter(|g| !g.is_empty())
    }

    /// Where the item is in the core's state machine.
    pub fn state(&self) -> ItemState {
        ItemState {
            protection: self.properties.protection_state,
            test_failover: self.properties.test_failover_state,
        }
    }

    /// Whether `t` may start from the item's state.
    pub fn check(&self, t: Transition) -> Result<(), ArmError> {
        Ok(self.state().check(&self.name, t)?)
    }

    /// Checks `t` against the item as it is now (inside the committing
    /// transaction) and moves the item to the state it leads to.
    pub fn apply(&mut self, t: Transition) -> Result<ItemState, ArmError> {
        self.check(t)?;
        let next = self.state().after(t);
        self.set_state(next);
        Ok(next)
    }

    /// Writes a state, with Azure's descriptions and allowed operations.
    pub fn set_state(&mut self, s: ItemState) {
        let p = &mut self.properties;
        p.protection_state = s.protection;
        p.protection_state_description = s.protection.description().to_string();
        p.test_failover_state = s.test_failover;
        p.allowed_operations = s
            .allowed_operations()
            .into_iter()
            .map(str::to_string)
            .collect();
    }

    pub fn is_replicating(&self) -> bool {
        self.properties.protection_state == ProtectionState::Protected
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

/// The item at `id`, if there is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<ReplicationItem>, ArmError> {
    document::load(r, id)
}

/// The vault's items ("" for every vault's).
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<ReplicationItem>, ArmError> {
    document::list(r, scope)
}

/// The items of one protection container.
pub fn in_container(r: &impl Reader, container_id: &str) -> Result<Vec<ReplicationItem>, ArmError> {
    document::children(r, container_id, "replicationProtectedItems")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An item as enable stored it before items were typed.
    pub(crate) fn stored() -> Value {
        json!({
            "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationFabrics/east/replicationProtectionContainers/east-c/replicationProtectedItems/web",
            "name": "web", "type": ITEM_TYPE, "location": "eastus",
            "properties": {
                "friendlyName": "web", "protectedItemType": "ProtectedItem", "protectableItemId": "/vm/web",
                "primaryFabricFriendlyName": "east", "recoveryFabricId": "/f/west", "recoveryContainerId": "/c/west",
                "policyId": "/p", "policyFriendlyName": "p",
                "protectionState": "Protected", "protectionStateDescription": "Protected",
                "activeLocation": "Primary", "testFailoverState": "None", "testFailoverStateDescription": "None",
                "replicationHealth": "Normal", "failoverHealth": "Normal", "healthErrors": [],
                "allowedOperations": ["PlannedFailover"], "currentScenario": {"scenarioName": "None"},
                "lastSuccessfulFailoverTime": null,
                "providerSpecificDetails": {
                    "instanceType": "A2A", "fabricObjectId": "/vm/web", "lifecycleId": "life-1",
                    "primaryFabricLocation": "eastus", "recoveryFabricLocation": "westus",
                    "osType": "Linux", "recoveryAzureResourceGroupId": "/rg/west",
                    "multiVmGroupName": null, "multiVmGroupId": null,
                    "selectedRecoveryAzureNetworkId": "/vnet/west-asr", "recoverySubnetName": "vms",
                    "recoveryAzureVMName": "web", "recoveryAzureVMSize": "Standard_B2s", "recoveryAvailabilitySet": null,
                    "agentVersion": "9.60.0.0 (recoverite)", "initialReplicationStartTime": "t",
                    "protectedManagedDisks": [{
                        "diskId": "/disks/web-os", "diskName": "web-os", "diskCapacityInBytes": 1024,
                        "diskType": "OperatingSystem", "primaryStagingAzureStorageAccountId": "/sa/cache",
                        "recoveryResourceGroupId": "/rg/west", "recoveryReplicaDiskAccountType": "Premium_LRS",
                        "recoveryTargetDiskAccountType": "Premium_LRS", "monitoringPercentageCompletion": 100,
                        "dataPendingAtSourceAgentInMB": 0.0,
                    }],
                },
            }
        })
    }

    #[test]
    fn a_stored_item_reads_back_typed_and_keeps_what_azure_only_shows() {
        let item: ReplicationItem = serde_json::from_value(stored()).unwrap();
        assert_eq!(item.engine_id(), "life-1");
        assert_eq!(item.side(), Side::Primary);
        assert_eq!(item.vm_on(Side::Primary), "/vm/web");
        assert_eq!(item.vm_on(Side::Recovery), "", "no VM until a failover");
        assert_eq!(item.target_location(Side::Primary), "westus");
        assert_eq!(item.source_location(Side::Primary), "eastus");
        assert_eq!(item.cache_account_id(Side::Primary), "/sa/cache");
        assert_eq!(item.group(), None);
        assert_eq!(
            item.vault_id(),
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v"
        );
        let back = item.to_value().unwrap();
        assert_eq!(
            back["properties"]["providerSpecificDetails"]["agentVersion"],
            "9.60.0.0 (recoverite)"
        );
        assert_eq!(back["properties"]["primaryFabricFriendlyName"], "east");
        assert_eq!(
            back["properties"]["providerSpecificDetails"]["protectedManagedDisks"][0]
                ["monitoringPercentageCompletion"],
            100
        );
        assert!(back["properties"]["providerSpecificDetails"]
            .get("testFailoverDiskIds")
            .is_none());
        // A state the core does not know is an error, not an empty state.
        let mut bad = stored();
        bad["properties"]["protectionState"] = json!("Replicating?");
        assert!(serde_json::from_value::<ReplicationItem>(bad).is_err());
    }

    #[test]
    fn transitions_move_the_item_and_refuse_what_its_state_does_not_allow() {
        let mut item: ReplicationItem = serde_json::from_value(stored()).unwrap();
        item.apply(Transition::TestFailover).unwrap();
        assert_eq!(
            item.properties.test_failover_state,
            TestFailoverState::TestFailoverCompleted
        );
        assert_eq!(
            item.apply(Transition::UnplannedFailover)
                .unwrap_err()
                .body
                .code,
            "TestFailoverCleanupPending"
        );
        item.apply(Transition::TestFailoverCleanup).unwrap();
        item.apply(Transition::UnplannedFailover).unwrap();
        assert_eq!(
            item.properties.protection_state,
            ProtectionState::UnplannedFailoverCommitPending
        );
        assert!(!item.is_replicating());
        assert_eq!(item.apply(Transition::Reprotect).unwrap_err().status, 409);
        item.apply(Transition::Commit).unwrap();
        item.apply(Transition::Reprotect).unwrap();
        assert!(item.is_replicating());
        assert!(item
            .properties
            .allowed_operations
            .iter()
            .any(|o| o == "DisableProtection"));
    }

    #[test]
    fn failover_disks_are_the_replicas_then_the_originals_on_failback() {
        let item: ReplicationItem = serde_json::from_value(stored()).unwrap();
        let mut disk = item
            .properties
            .provider_specific_details
            .protected_managed_disks[0]
            .clone();
        assert!(disk.is_os());
        assert_eq!(
            Side::Primary.failover_disk_id(&disk),
            "/rg/west/providers/Microsoft.Compute/disks/web-os-ASRReplica"
        );
        disk.recovery_target_disk_id = Some("/rg/west/disks/web-os-r".into());
        assert_eq!(
            Side::Primary.failover_disk_id(&disk),
            "/rg/west/disks/web-os-r"
        );
        assert_eq!(Side::Recovery.failover_disk_id(&disk), "/disks/web-os");
        assert_eq!(
            Side::Recovery.source_disk_id(&disk),
            "/rg/west/disks/web-os-r"
        );
        assert_eq!(Side::Primary.other(), Side::Recovery);
    }
}
