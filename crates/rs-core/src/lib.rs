//! The Recovery Services core beneath the vault, Site Recovery and (coming)
//! Backup providers: what a vault remembers beyond its ARM document (its
//! numeric id and the permanent "has had items registered or protected"
//! mark) and the protected-item state machine.

pub mod backup_config;
pub mod backup_item;
pub mod containers;
pub mod drills;
pub mod jobs;
pub mod protection;
pub mod vault;
pub mod vault_record;

// Microsoft.RecoveryServices api-versions by resource type: vaults, Site
// Recovery and Backup each have their own spec folders, so their own sections.
recoverite_arm::api_versions!(
    "../api-versions.txt",
    [
        "vaults",
        "vaults/privateEndpointConnections",
        "locations/checkNameAvailability",
        "vaults/replicationFabrics/replicationProtectionContainers",
        "vaults/replicationJobs",
        "vaults/backupPolicies",
        "vaults/backupFabrics/protectionContainers/protectedItems",
    ]
);

#[cfg(test)]
mod api_sections {
    #[test]
    fn site_recovery_and_backup_have_their_own_versions() {
        let t = &super::API;
        // Site Recovery and Backup are told apart from the vault's own versions.
        assert_ne!(
            t.versions("vaults/replicationPolicies"),
            t.versions("vaults")
        );
        assert_ne!(t.versions("vaults/backupPolicies"), t.versions("vaults"));
    }
}
