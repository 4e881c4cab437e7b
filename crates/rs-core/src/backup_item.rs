//! The Backup protected-item state machine (Azure VMs and MARS items alike):
//! the item's state is Azure's `protectionState` together with the soft
//! delete mark (`isScheduledForDeferredDelete`); each operation is allowed
//! from some states and leads to one. Handlers read the state, check the
//! operation and write the state it leads to in one transaction, so a
//! change made meanwhile is checked against what is really stored.

use recoverite_arm::ArmError;

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
    #[error("The stored protection state '{0}' is not one Azure Backup has.")]
    Unknown(String),
}

impl BackupStateError {
    pub fn code(&self) -> &'static str {
        match self {
            BackupStateError::SoftDeleted => "BMSUserErrorItemSoftDeleted",
            BackupStateError::NotSoftDeleted => "BMSUserErrorItemNotSoftDeleted",
            BackupStateError::ProtectionStopped => "BMSUserErrorProtectionStopped",
            BackupStateError::Unknown(_) => "InternalError",
        }
    }

    pub fn to_arm(&self) -> ArmError {
        match self {
            BackupStateError::Unknown(_) => ArmError::internal(self.to_string()),
            _ => ArmError::bad_request(self.code(), self.to_string()),
        }
    }
}

impl BackupState {
    /// The state of an item from its `protectionState` and soft delete mark.
    pub fn of(protection_state: &str, soft_deleted: bool) -> Result<BackupState, BackupStateError> {
        if soft_deleted {
            return Ok(BackupState::SoftDeleted);
        }
        match protection_state {
            "IRPending" => Ok(BackupState::IrPending),
            "Protected" => Ok(BackupState::Protected),
            "ProtectionStopped" => Ok(BackupState::ProtectionStopped),
            other => Err(BackupStateError::Unknown(other.to_string())),
        }
    }

    /// The item's state as stored on a protected item document.
    pub fn of_item(item: &serde_json::Value) -> Result<BackupState, BackupStateError> {
        let p = &item["properties"];
        BackupState::of(
            p["protectionState"].as_str().unwrap_or_default(),
            p["isScheduledForDeferredDelete"] == true,
        )
    }

    /// Azure's `protectionState` for this state (a soft-deleted item shows
    /// `ProtectionStopped`).
    pub fn protection_state(self) -> &'static str {
        match self {
            BackupState::IrPending => "IRPending",
            BackupState::Protected => "Protected",
            BackupState::ProtectionStopped | BackupState::SoftDeleted => "ProtectionStopped",
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
        assert_eq!(SoftDeleted.protection_state(), "ProtectionStopped");
        assert_eq!(BackupState::of("Protected", true), Ok(SoftDeleted));
        assert_eq!(BackupState::of("IRPending", false), Ok(IrPending));
        assert!(BackupState::of("Bogus", false).is_err());
        for s in [IrPending, Protected, ProtectionStopped] {
            assert_eq!(BackupState::of(s.protection_state(), false), Ok(s));
        }
    }
}
