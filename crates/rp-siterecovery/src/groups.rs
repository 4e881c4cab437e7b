//! Replication groups (multi-VM consistency, document 003): VMs of one group
//! share crash- and app-consistent recovery points, need a policy with
//! multi-VM sync enabled, number at most 16, and reach each other on port
//! 20004 (their agents check it through the gateway).

use recoverite_arm::ArmError;
use recoverite_store::Reader;

use crate::item::{self, ReplicationItem};
use crate::policies::ReplicationPolicy;

pub const MAX_VMS: usize = 16;
pub const SYNC_PORT: u16 = 20004;

pub fn group_of(item: &ReplicationItem) -> Option<&str> {
    item.group()
}

/// The vault of an item (the id up to the vault's name).
pub fn vault_of_item(item_id: &str) -> &str {
    item_id
        .split("/replicationFabrics/")
        .next()
        .unwrap_or_default()
}

/// Members of a group in a vault, in id order.
pub fn members(
    r: &impl Reader,
    vault_id: &str,
    group: &str,
) -> Result<Vec<ReplicationItem>, ArmError> {
    let mut out: Vec<ReplicationItem> = item::list(r, vault_id)?
        .into_iter()
        .filter(|i| group_of(i).is_some_and(|g| g.eq_ignore_ascii_case(group)))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Checks a VM joining `group` under a policy; returns the group's id (an
/// existing member's, or a new one).
pub fn admit(
    r: &impl Reader,
    vault_id: &str,
    group: &str,
    policy: &ReplicationPolicy,
) -> Result<String, ArmError> {
    if !policy.settings().multi_vm_sync {
        return Err(ArmError::bad_request("MultiVmSyncNotEnabled", format!("Replication group '{group}' needs multi-VM consistency: use a replication policy with multiVmSyncStatus 'Enable'.")));
    }
    let existing = members(r, vault_id, group)?;
    if existing.len() >= MAX_VMS {
        return Err(ArmError::bad_request("ReplicationGroupFull", format!("Replication group '{group}' already has {MAX_VMS} VMs, the most a group can hold; use another group.")));
    }
    Ok(existing
        .first()
        .and_then(|m| {
            m.properties
                .provider_specific_details
                .multi_vm_group_id
                .clone()
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
}
