//! What a vault remembers that ARM does not show: its numeric id (used in
//! its private-link FQDNs), whether anything was **ever** registered or
//! protected in it ("empty now" is not "new"), its private endpoint
//! experience, and the region pairs replication was enabled for.

use serde::{Deserialize, Serialize};

use recoverite_arm::{id, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

pub const VAULTS: Table = Table("recoveryservices_vaults");

/// The protected items of the vault's two services, stored under the vault.
pub const BACKUP_ITEM_TYPE: &str =
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems";
pub const SITE_RECOVERY_ITEM_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems";

/// Site Recovery's pairing of a protection container with its recovery
/// container: one existing means replication is configured in the vault.
pub const SITE_RECOVERY_MAPPING_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectionContainerMappings";

/// Whether Site Recovery has paired containers in the vault (the vault
/// provider refuses to delete it until the mappings are gone).
pub fn replication_configured(r: &impl Reader, vault_id: &str) -> Result<bool, ArmError> {
    Ok(
        !recoverite_arm::resource::list_of_type(r, vault_id, SITE_RECOVERY_MAPPING_TYPE)?
            .is_empty(),
    )
}

/// How many items (Backup's, soft-deleted ones included, and Site
/// Recovery's) the vault holds: "a vault with items cannot be deleted".
pub fn protected_items(r: &impl Reader, vault_id: &str) -> Result<usize, ArmError> {
    let mut n = 0;
    for t in [BACKUP_ITEM_TYPE, SITE_RECOVERY_ITEM_TYPE] {
        n += recoverite_arm::resource::list_of_type(r, vault_id, t)?.len();
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PeVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VaultMeta {
    pub numeric_id: u64,
    pub ever_registered: bool,
    pub pe_version: PeVersion,
    /// `(source, target)` region pairs replication was enabled for.
    pub replication_pairs: Vec<(String, String)>,
    /// The key vault of the vault's customer-managed key, if any.
    #[serde(default)]
    pub cmk_key_vault: Option<String>,
}

impl VaultMeta {
    pub fn new() -> VaultMeta {
        // Vault ids are large positive numbers (19 digits).
        let n: u64 = rand::Rng::gen_range(
            &mut rand::thread_rng(),
            1_000_000_000_000_000_000..9_000_000_000_000_000_000,
        );
        VaultMeta {
            numeric_id: n,
            ever_registered: false,
            pe_version: PeVersion::V2,
            replication_pairs: Vec::new(),
            cmk_key_vault: None,
        }
    }
}

impl Default for VaultMeta {
    fn default() -> Self {
        VaultMeta::new()
    }
}

pub fn get(r: &impl Reader, vault_id: &str) -> Result<Option<VaultMeta>, ArmError> {
    Ok(r.get_json(VAULTS, &id::key(vault_id))?)
}

pub fn put(tx: &mut WriteTx, vault_id: &str, m: &VaultMeta) -> Result<(), ArmError> {
    tx.put_json(VAULTS, &id::key(vault_id), m)?;
    Ok(())
}

pub fn forget_under(tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
    let s = id::key(scope);
    for (k, _) in tx.scan_prefix(VAULTS, &s)? {
        if id::scope_contains(&s, &k) {
            tx.delete(VAULTS, &k)?;
        }
    }
    Ok(())
}

/// Records that an item was registered or protected in the vault; the mark is permanent.
pub fn mark_registered(tx: &mut WriteTx, vault_id: &str) -> Result<(), ArmError> {
    let mut m = get(tx, vault_id)?
        .ok_or_else(|| ArmError::internal(format!("vault {vault_id} has no record")))?;
    m.ever_registered = true;
    put(tx, vault_id, &m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_have_19_digits_and_the_mark_is_permanent() {
        for _ in 0..100 {
            assert_eq!(VaultMeta::new().numeric_id.to_string().len(), 19);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let v = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v";
        let other =
            "/subscriptions/s/resourceGroups/rg2/providers/Microsoft.RecoveryServices/vaults/v";
        store
            .write(|tx| {
                put(tx, v, &VaultMeta::new())?;
                put(tx, other, &VaultMeta::new())?;
                mark_registered(tx, v)
            })
            .unwrap();
        assert!(store.view(|r| get(r, v)).unwrap().unwrap().ever_registered);
        assert!(
            !store
                .view(|r| get(r, other))
                .unwrap()
                .unwrap()
                .ever_registered
        );
        // Marking an unknown vault is an error, not a silent default.
        assert!(store
            .write(|tx| mark_registered(tx, &format!("{v}x")))
            .is_err());
        // A deleted resource group forgets its vaults, and only those.
        store
            .write(|tx| forget_under(tx, "/subscriptions/s/resourceGroups/rg"))
            .unwrap();
        assert!(store.view(|r| get(r, v)).unwrap().is_none());
        assert!(store.view(|r| get(r, other)).unwrap().is_some());
    }
}
