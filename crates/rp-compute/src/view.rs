//! Compute's read model for other crates (Site Recovery, Backup, the
//! network's effective routes): a VM's disks, their roles and LUNs, its OS
//! type and NICs, typed, so no other crate reads a VM document's profile.

use recoverite_arm::{id, ArmError};
use recoverite_rp_network::interface::{self, IpConfiguration};
use recoverite_store::Reader;

use crate::machine::{self, VirtualMachine};

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

impl From<&VirtualMachine> for Vm {
    fn from(m: &VirtualMachine) -> Vm {
        let p = &m.properties;
        let sp = &p.storage_profile;
        Vm {
            id: m.id.clone(),
            name: m.name.clone(),
            location: m.location.clone(),
            vm_id: Some(p.vm_id.clone()),
            availability_set: p.availability_set.as_ref().map(|a| a.id.clone()),
            size: Some(p.hardware_profile.vm_size.clone()),
            os_type: sp.os_disk.os_type.clone(),
            os_disk: Some(sp.os_disk.managed_disk.id.clone()),
            data_disks: sp
                .data_disks
                .iter()
                .map(|d| (d.lun, d.managed_disk.id.clone()))
                .collect(),
            network_interfaces: m.nic_ids(),
        }
    }
}

impl Vm {
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
    Ok(machine::load(r, vm_id)?.map(|m| Vm::from(&m)))
}

/// Every VM in `scope` (a subscription or resource group).
pub fn vms_in(r: &impl Reader, scope: &str) -> Result<Vec<Vm>, ArmError> {
    Ok(machine::list(r, scope)?.iter().map(Vm::from).collect())
}

/// A VM's primary IP configuration: its primary (or only) NIC's primary
/// (or first) configuration; `None` when the VM or its NIC is missing.
pub fn primary_ipconfig(r: &impl Reader, vm_id: &str) -> Result<Option<IpConfiguration>, ArmError> {
    let Some(vm) = machine::load(r, vm_id)? else {
        return Ok(None);
    };
    let Some(nic) = vm.primary_nic() else {
        return Ok(None);
    };
    Ok(interface::load(r, nic)?.and_then(|n| n.primary().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_roles_and_luns_whatever_the_case_of_the_ids() {
        let vm = Vm {
            id: "/vm".into(),
            name: "vm".into(),
            location: "westus".into(),
            vm_id: None,
            size: None,
            os_type: Some("Linux".into()),
            os_disk: Some("/d/OS".into()),
            data_disks: vec![(3, "/d/data".into())],
            network_interfaces: vec!["/n".into()],
            availability_set: None,
        };
        assert_eq!(vm.role_of("/d/os"), Some(DiskRole::Os));
        assert_eq!(vm.role_of("/D/DATA"), Some(DiskRole::Data { lun: 3 }));
        assert_eq!(vm.role_of("/d/other"), None);
    }
}
