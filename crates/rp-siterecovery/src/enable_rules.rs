//! The rules enabling replication checks before anything is made, as pure
//! functions, each under the sentence it implements. `protected_items::
//! enable` gathers the facts from the store and calls them.

use recoverite_arm::ArmError;

const DETAILS: &str = "properties.providerSpecificDetails";

/// Azure's API: `providerSpecificDetails.instanceType` names the scenario;
/// Azure to Azure is `A2A`, the only one recoverite serves.
pub fn scenario(instance_type: &str) -> Result<(), ArmError> {
    if instance_type.eq_ignore_ascii_case("A2A") {
        return Ok(());
    }
    Err(ArmError::invalid_parameter(
        "properties.providerSpecificDetails.instanceType",
        "Send 'A2A' (Azure to Azure): the only replication scenario recoverite serves.",
    ))
}

/// Document 003: "Create the vault in any region, except the source region."
pub fn vault_region(vault: &str, vault_location: &str, source: &str) -> Result<(), ArmError> {
    if !vault_location.eq_ignore_ascii_case(source) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "VaultInSourceRegion",
        format!("Vault '{vault}' is in '{source}', the region of the VMs it would protect; create the vault in any other region (ideally the recovery region)."),
    ))
}

/// Azure's API: a protection container belongs to the fabric of one region,
/// and protects the VMs of that region only.
pub fn vm_in_fabric_region(vm: &str, vm_location: &str, source: &str) -> Result<(), ArmError> {
    if vm_location.eq_ignore_ascii_case(source) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "VmNotInFabricRegion",
        format!("VM '{vm}' is in '{vm_location}' but the protection container's fabric is for '{source}'. Use the container of the VM's region."),
    ))
}

/// Document 003: "resource group location of the target resource group can
/// be any region except the region where your source virtual machines are
/// hosted."
pub fn recovery_group_region(group_location: &str, source: &str) -> Result<(), ArmError> {
    if !group_location.eq_ignore_ascii_case(source) {
        return Ok(());
    }
    Err(ArmError::invalid_parameter(
        &format!("{DETAILS}.recoveryResourceGroupId"),
        format!("The recovery resource group is in '{source}', the source VM's region; use a group in any other region."),
    ))
}

/// Azure's API: the recovery container, when named, is the one the
/// container mapping pairs with the source container.
pub fn recovery_container(named: Option<&str>, paired: &str) -> Result<(), ArmError> {
    match named {
        Some(c) if !c.eq_ignore_ascii_case(paired) => Err(ArmError::invalid_parameter(
            &format!("{DETAILS}.recoveryContainerId"),
            "recoveryContainerId must be the container the mapping pairs with this one.",
        )),
        _ => Ok(()),
    }
}

/// One entry of `vmManagedDisks` as the caller sent it.
#[derive(Debug, Clone, Copy)]
pub struct DiskInput<'a> {
    pub disk_id: &'a str,
    pub cache_account: Option<&'a str>,
}

/// Document 003: "Cache storage accounts: Site Recovery uses a storage
/// account in the source region. Changes to source VMs are sent to this
/// account before replication" — so every disk listed must be the VM's and
/// name its cache account. Returns, for each input, the index of the
/// attached disk it names.
pub fn disks_to_replicate(
    vm: &str,
    inputs: &[DiskInput],
    attached: &[&str],
) -> Result<Vec<usize>, ArmError> {
    if inputs.is_empty() {
        return Err(ArmError::invalid_parameter(
            &format!("{DETAILS}.vmManagedDisks"),
            "List the VM's managed disks to replicate, each with diskId and primaryStagingAzureStorageAccountId (the cache storage account).",
        ));
    }
    inputs
        .iter()
        .map(|d| {
            let at = attached
                .iter()
                .position(|a| a.eq_ignore_ascii_case(d.disk_id))
                .ok_or_else(|| {
                    ArmError::invalid_parameter(
                        &format!("{DETAILS}.vmManagedDisks.diskId"),
                        format!("Disk '{}' is not attached to VM '{vm}'.", d.disk_id),
                    )
                })?;
            if d.cache_account.is_none() {
                return Err(ArmError::invalid_parameter(
                    &format!("{DETAILS}.vmManagedDisks.primaryStagingAzureStorageAccountId"),
                    "Each disk needs a cache storage account in the source region.",
                ));
            }
            Ok(at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<impl std::fmt::Debug, ArmError>) -> String {
        r.unwrap_err().body.code.clone()
    }

    #[test]
    fn only_azure_to_azure() {
        assert!(scenario("a2a").is_ok());
        assert_eq!(code(scenario("HyperVReplicaAzure")), "InvalidParameter");
    }

    #[test]
    fn the_vault_is_anywhere_but_the_source_region() {
        assert!(vault_region("v", "westus", "eastus").is_ok());
        let e = vault_region("v", "EastUS", "eastus").unwrap_err();
        assert_eq!(
            (e.status, e.body.code.as_str()),
            (400, "VaultInSourceRegion")
        );
    }

    #[test]
    fn the_vm_is_in_its_containers_region() {
        assert!(vm_in_fabric_region("web", "eastus", "EastUS").is_ok());
        assert_eq!(
            code(vm_in_fabric_region("web", "westus", "eastus")),
            "VmNotInFabricRegion"
        );
    }

    #[test]
    fn the_recovery_group_is_outside_the_source_region() {
        assert!(recovery_group_region("westus", "eastus").is_ok());
        let e = recovery_group_region("eastus", "eastus").unwrap_err();
        assert!(e.body.message.contains("any other region"));
    }

    #[test]
    fn a_named_recovery_container_is_the_paired_one() {
        assert!(recovery_container(None, "/c/west").is_ok());
        assert!(recovery_container(Some("/C/WEST"), "/c/west").is_ok());
        assert_eq!(
            code(recovery_container(Some("/c/north"), "/c/west")),
            "InvalidParameter"
        );
    }

    #[test]
    fn every_listed_disk_is_the_vms_and_names_a_cache() {
        let attached = ["/d/os", "/d/data"];
        let ok = [
            DiskInput {
                disk_id: "/D/DATA",
                cache_account: Some("/s/c"),
            },
            DiskInput {
                disk_id: "/d/os",
                cache_account: Some("/s/c"),
            },
        ];
        assert_eq!(
            disks_to_replicate("web", &ok, &attached).unwrap(),
            vec![1, 0]
        );
        assert!(disks_to_replicate("web", &[], &attached).is_err());
        let foreign = [DiskInput {
            disk_id: "/d/other",
            cache_account: Some("/s/c"),
        }];
        assert!(disks_to_replicate("web", &foreign, &attached)
            .unwrap_err()
            .body
            .message
            .contains("not attached"));
        let no_cache = [DiskInput {
            disk_id: "/d/os",
            cache_account: None,
        }];
        assert!(disks_to_replicate("web", &no_cache, &attached)
            .unwrap_err()
            .body
            .message
            .contains("cache storage account"));
    }
}
