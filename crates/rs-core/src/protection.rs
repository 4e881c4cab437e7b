//! The protected-item state machine: which state a replication protected
//! item is in, which operations that state allows (Azure's
//! `allowedOperations`), and the state each operation leads to. Handlers
//! check a transition with [`ItemState::check`] when they start and again
//! inside the transaction that commits it, so racing requests cannot both
//! move an item from the same state.

use std::fmt;

use recoverite_arm::ArmError;

/// Azure's `protectionState` of a replication protected item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProtectionState {
    /// Replicating from its active side.
    Protected,
    /// Failed over; the failover is not committed yet.
    UnplannedFailoverCommitPending,
    /// Failed over and committed; replication stopped until reprotect.
    FailedOver,
}

/// Azure's `testFailoverState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TestFailoverState {
    None,
    TestFailoverCompleted,
}

/// What an operation does to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    UnplannedFailover,
    TestFailover,
    TestFailoverCleanup,
    Commit,
    Reprotect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemState {
    pub protection: ProtectionState,
    pub test_failover: TestFailoverState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("'{item}' is in state '{state}'; {needs}{next}")]
    NotAllowed {
        item: String,
        state: &'static str,
        needs: &'static str,
        next: &'static str,
    },
    #[error("A test failover of this item already exists; run testFailoverCleanup before the next drill.")]
    TestFailoverInProgress,
    #[error("A test failover of this item is not cleaned up yet; run testFailoverCleanup first.")]
    TestFailoverCleanupPending,
    #[error("There is no test failover to clean up.")]
    NoTestFailover,
    #[error("The stored protection state '{0}' is not one recoverite knows.")]
    Unknown(String),
}

impl TransitionError {
    pub fn to_arm(&self) -> ArmError {
        match self {
            TransitionError::TestFailoverInProgress => {
                ArmError::conflict("TestFailoverInProgress", self.to_string())
            }
            TransitionError::TestFailoverCleanupPending => {
                ArmError::conflict("TestFailoverCleanupPending", self.to_string())
            }
            TransitionError::Unknown(_) => ArmError::internal(self.to_string()),
            _ => ArmError::conflict("OperationNotAllowed", self.to_string()),
        }
    }
}

impl From<TransitionError> for ArmError {
    fn from(e: TransitionError) -> ArmError {
        e.to_arm()
    }
}

impl ProtectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtectionState::Protected => "Protected",
            ProtectionState::UnplannedFailoverCommitPending => "UnplannedFailoverCommitPending",
            ProtectionState::FailedOver => "FailedOver",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ProtectionState::Protected => "Protected",
            ProtectionState::UnplannedFailoverCommitPending => "Failover completed; commit pending",
            ProtectionState::FailedOver => "Failover committed; reprotect to replicate back",
        }
    }

    pub fn parse(s: &str) -> Result<ProtectionState, TransitionError> {
        [
            ProtectionState::Protected,
            ProtectionState::UnplannedFailoverCommitPending,
            ProtectionState::FailedOver,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| TransitionError::Unknown(s.to_string()))
    }

    /// What the user should do next, for error messages.
    pub fn next_step(self) -> &'static str {
        match self {
            ProtectionState::UnplannedFailoverCommitPending => " Commit the failover first.",
            ProtectionState::FailedOver => {
                " Reprotect it to replicate in the other direction first."
            }
            ProtectionState::Protected => "",
        }
    }
}

impl TestFailoverState {
    pub fn as_str(self) -> &'static str {
        match self {
            TestFailoverState::None => "None",
            TestFailoverState::TestFailoverCompleted => "TestFailoverCompleted",
        }
    }

    pub fn parse(s: &str) -> Result<TestFailoverState, TransitionError> {
        match s {
            "" | "None" => Ok(TestFailoverState::None),
            "TestFailoverCompleted" => Ok(TestFailoverState::TestFailoverCompleted),
            other => Err(TransitionError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for ProtectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ItemState {
    pub const NEW: ItemState = ItemState {
        protection: ProtectionState::Protected,
        test_failover: TestFailoverState::None,
    };

    pub fn parse(protection: &str, test_failover: &str) -> Result<ItemState, TransitionError> {
        Ok(ItemState {
            protection: ProtectionState::parse(protection)?,
            test_failover: TestFailoverState::parse(test_failover)?,
        })
    }

    /// Whether `t` may start from this state. Document 003: failover and
    /// drills need a replicating item; a drill at a time, and a failover
    /// waits for the drill's cleanup; commit follows a failover; reprotect
    /// follows a commit.
    pub fn check(self, item: &str, t: Transition) -> Result<(), TransitionError> {
        let not_allowed = |needs: &'static str| TransitionError::NotAllowed {
            item: item.to_string(),
            state: self.protection.as_str(),
            needs,
            next: self.protection.next_step(),
        };
        match t {
            Transition::UnplannedFailover => {
                if self.protection != ProtectionState::Protected {
                    return Err(not_allowed("failover needs an item that is replicating."));
                }
                if self.test_failover != TestFailoverState::None {
                    return Err(TransitionError::TestFailoverCleanupPending);
                }
            }
            Transition::TestFailover => {
                if self.protection != ProtectionState::Protected {
                    return Err(not_allowed(
                        "a test failover needs an item that is replicating.",
                    ));
                }
                if self.test_failover != TestFailoverState::None {
                    return Err(TransitionError::TestFailoverInProgress);
                }
            }
            Transition::TestFailoverCleanup => {
                if self.test_failover == TestFailoverState::None {
                    return Err(TransitionError::NoTestFailover);
                }
            }
            Transition::Commit => {
                if self.protection != ProtectionState::UnplannedFailoverCommitPending {
                    return Err(not_allowed("commit follows a failover."));
                }
            }
            Transition::Reprotect => {
                if self.protection != ProtectionState::FailedOver {
                    return Err(not_allowed("reprotect follows a committed failover."));
                }
            }
        }
        Ok(())
    }

    /// The state `t` leads to (after [`ItemState::check`] allowed it).
    pub fn after(self, t: Transition) -> ItemState {
        match t {
            Transition::UnplannedFailover => ItemState {
                protection: ProtectionState::UnplannedFailoverCommitPending,
                ..self
            },
            Transition::TestFailover => ItemState {
                test_failover: TestFailoverState::TestFailoverCompleted,
                ..self
            },
            Transition::TestFailoverCleanup => ItemState {
                test_failover: TestFailoverState::None,
                ..self
            },
            Transition::Commit => ItemState {
                protection: ProtectionState::FailedOver,
                ..self
            },
            Transition::Reprotect => ItemState {
                protection: ProtectionState::Protected,
                ..self
            },
        }
    }

    /// Azure's `allowedOperations` for this state.
    pub fn allowed_operations(self) -> Vec<&'static str> {
        match (self.protection, self.test_failover) {
            (_, TestFailoverState::TestFailoverCompleted) => {
                vec!["TestFailoverCleanup", "DisableProtection"]
            }
            (ProtectionState::Protected, _) => {
                vec!["UnplannedFailover", "TestFailover", "DisableProtection"]
            }
            (ProtectionState::UnplannedFailoverCommitPending, _) => {
                vec!["Commit", "DisableProtection"]
            }
            (ProtectionState::FailedOver, _) => vec!["ReverseReplicate", "DisableProtection"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Transition; 5] = [
        Transition::UnplannedFailover,
        Transition::TestFailover,
        Transition::TestFailoverCleanup,
        Transition::Commit,
        Transition::Reprotect,
    ];

    fn code(r: Result<(), TransitionError>) -> String {
        r.map_err(|e| e.to_arm().body.code.clone())
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn the_whole_cycle_follows_the_documented_order() {
        let mut s = ItemState::NEW;
        for t in [
            Transition::TestFailover,
            Transition::TestFailoverCleanup,
            Transition::UnplannedFailover,
            Transition::Commit,
            Transition::Reprotect,
            Transition::UnplannedFailover,
        ] {
            s.check("vm", t).unwrap();
            s = s.after(t);
        }
        assert_eq!(
            s.protection,
            ProtectionState::UnplannedFailoverCommitPending
        );
    }

    #[test]
    fn one_drill_at_a_time_and_failover_waits_for_the_cleanup() {
        let drilled = ItemState::NEW.after(Transition::TestFailover);
        assert_eq!(
            code(drilled.check("vm", Transition::TestFailover)),
            "TestFailoverInProgress"
        );
        assert_eq!(
            code(drilled.check("vm", Transition::UnplannedFailover)),
            "TestFailoverCleanupPending"
        );
        assert_eq!(
            drilled.allowed_operations(),
            ["TestFailoverCleanup", "DisableProtection"]
        );
        assert_eq!(
            code(ItemState::NEW.check("vm", Transition::TestFailoverCleanup)),
            "OperationNotAllowed"
        );
    }

    #[test]
    fn a_failed_over_item_cannot_fail_over_again_until_reprotected() {
        let pending = ItemState::NEW.after(Transition::UnplannedFailover);
        let e = pending
            .check("web", Transition::UnplannedFailover)
            .unwrap_err();
        assert_eq!(e.to_arm().body.code, "OperationNotAllowed");
        assert_eq!(e.to_arm().status, 409);
        assert!(e.to_string().contains("Commit the failover first"), "{e}");
        assert_eq!(
            code(pending.check("web", Transition::Reprotect)),
            "OperationNotAllowed"
        );
        let committed = pending.after(Transition::Commit);
        assert_eq!(
            code(committed.check("web", Transition::Commit)),
            "OperationNotAllowed"
        );
        assert!(committed.check("web", Transition::Reprotect).is_ok());
        assert_eq!(
            committed.allowed_operations(),
            ["ReverseReplicate", "DisableProtection"]
        );
    }

    #[test]
    fn every_state_allows_exactly_what_check_accepts() {
        let states = [
            ItemState::NEW,
            ItemState::NEW.after(Transition::TestFailover),
            ItemState::NEW.after(Transition::UnplannedFailover),
            ItemState::NEW
                .after(Transition::UnplannedFailover)
                .after(Transition::Commit),
        ];
        let name = |t: Transition| match t {
            Transition::UnplannedFailover => "UnplannedFailover",
            Transition::TestFailover => "TestFailover",
            Transition::TestFailoverCleanup => "TestFailoverCleanup",
            Transition::Commit => "Commit",
            Transition::Reprotect => "ReverseReplicate",
        };
        for s in states {
            for t in ALL {
                assert_eq!(
                    s.check("x", t).is_ok(),
                    s.allowed_operations().contains(&name(t)),
                    "{s:?} {t:?}"
                );
            }
        }
    }

    #[test]
    fn stored_states_parse_back() {
        for p in ["Protected", "UnplannedFailoverCommitPending", "FailedOver"] {
            assert_eq!(ProtectionState::parse(p).unwrap().as_str(), p);
        }
        assert!(ItemState::parse("Protected", "None").is_ok());
        assert!(ItemState::parse("Protected", "").is_ok());
        assert!(ProtectionState::parse("Sideways").is_err());
    }
}
