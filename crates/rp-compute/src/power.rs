//! A VM's power state, as Azure reports it in the instance view
//! (`PowerState/running`, `PowerState/stopped`, `PowerState/deallocated`)
//! and changes it with `start`, `powerOff`, `restart` and `deallocate`.
//!
//! Stopping keeps the VM's compute allocation (and so its addresses and
//! disks); deallocating releases the compute but still keeps the disks and,
//! for the private addresses recoverite models, the NIC's address.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::ArmError;
use recoverite_store::{Reader, Table, WriteTx};

/// VM id (case-folded) → its power state. A VM without a row is running:
/// Azure starts a VM when it is created.
pub const POWER: Table = Table("vm_power");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    Running,
    Stopped,
    Deallocated,
}

impl PowerState {
    pub fn code(self) -> &'static str {
        match self {
            PowerState::Running => "PowerState/running",
            PowerState::Stopped => "PowerState/stopped",
            PowerState::Deallocated => "PowerState/deallocated",
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            PowerState::Running => "VM running",
            PowerState::Stopped => "VM stopped",
            PowerState::Deallocated => "VM deallocated",
        }
    }
}

/// A power operation Azure serves on a VM, by its path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    PowerOff,
    Restart,
    Deallocate,
}

impl PowerAction {
    pub fn parse(segment: &str) -> Option<PowerAction> {
        Some(match segment.to_ascii_lowercase().as_str() {
            "start" => PowerAction::Start,
            "poweroff" => PowerAction::PowerOff,
            "restart" => PowerAction::Restart,
            "deallocate" => PowerAction::Deallocate,
            _ => return None,
        })
    }
}

/// "Restart … is not allowed since the VM is deallocated" (Azure's
/// `OperationNotAllowed`): a restart needs a running or stopped VM with its
/// compute still allocated; start, power off and deallocate are accepted in
/// any state and end in theirs.
pub fn transition(from: PowerState, action: PowerAction) -> Result<PowerState, ArmError> {
    Ok(match action {
        PowerAction::Start => PowerState::Running,
        PowerAction::PowerOff => match from {
            PowerState::Deallocated => PowerState::Deallocated,
            _ => PowerState::Stopped,
        },
        PowerAction::Deallocate => PowerState::Deallocated,
        PowerAction::Restart => match from {
            PowerState::Deallocated => return Err(ArmError::conflict(
                "OperationNotAllowed",
                "Operation 'restart' is not allowed on a VM that is deallocated; start it instead.",
            )),
            _ => PowerState::Running,
        },
    })
}

pub fn get(r: &impl Reader, vm_id: &str) -> Result<PowerState, ArmError> {
    Ok(r.get_json(POWER, &recoverite_arm::id::key(vm_id))?
        .unwrap_or(PowerState::Running))
}

pub fn set(tx: &mut WriteTx, vm_id: &str, state: PowerState) -> Result<(), ArmError> {
    Ok(tx.put_json(POWER, &recoverite_arm::id::key(vm_id), &state)?)
}

pub fn forget(tx: &mut WriteTx, vm_id: &str) -> Result<(), ArmError> {
    tx.delete(POWER, &recoverite_arm::id::key(vm_id))?;
    Ok(())
}

/// The VM's instance view: provisioning and power status, and its disks.
pub fn instance_view(vm: &crate::machine::VirtualMachine, state: PowerState) -> Value {
    let disks: Vec<Value> = vm
        .disk_ids()
        .iter()
        .map(|d| {
            json!({"name": d.rsplit('/').next().unwrap_or_default(), "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"}]})
        })
        .collect();
    let computer_name = vm
        .properties
        .os_profile
        .as_ref()
        .and_then(|p| p["computerName"].as_str())
        .unwrap_or(&vm.name);
    json!({
        "computerName": computer_name,
        "disks": disks,
        "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
            {"code": state.code(), "level": "Info", "displayStatus": state.display()},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_transitions_follow_azure() {
        use PowerAction::*;
        use PowerState::*;
        assert_eq!(transition(Running, PowerOff).unwrap(), Stopped);
        assert_eq!(transition(Stopped, Start).unwrap(), Running);
        assert_eq!(transition(Running, Deallocate).unwrap(), Deallocated);
        assert_eq!(transition(Deallocated, PowerOff).unwrap(), Deallocated);
        assert_eq!(transition(Stopped, Restart).unwrap(), Running);
        assert_eq!(
            transition(Deallocated, Restart).unwrap_err().body.code,
            "OperationNotAllowed"
        );
        assert_eq!(PowerAction::parse("powerOff"), Some(PowerOff));
        assert_eq!(PowerAction::parse("redeploy"), None);
    }
}
