//! A Backup request as the router authorizes it: the [`Route`] parsed once
//! from the path, the method, and the RBAC action the pair declares. A pair
//! with no action is ARM's 405, refused before anything runs.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

use crate::{CrrRoute, FileRecoveryAction, Route};

#[derive(Debug)]
pub struct Call {
    pub route: Route,
    pub method: Method,
    action: &'static str,
}

impl Call {
    pub fn parse(req: &ArmRequest) -> Result<Call, ArmError> {
        let route = crate::route(req)?;
        let action = action_of(&route, &req.method)
            .ok_or_else(|| ArmError::method_not_allowed(req.method.as_str()))?;
        Ok(Call {
            route,
            method: req.method.clone(),
            action,
        })
    }
}

impl Endpoint for Call {
    fn action(&self) -> &'static str {
        self.action
    }

    /// Collections read with GET: a caller without the action on the vault
    /// still sees the items it may read one by one.
    fn is_list(&self) -> bool {
        self.method == Method::GET
            && matches!(
                self.route,
                Route::Policies
                    | Route::Points { .. }
                    | Route::ProtectableItems
                    | Route::ProtectedItems
                    | Route::Jobs
                    | Route::ResourceGuardProxies(None)
                    | Route::Crr {
                        kind: CrrRoute::AadProperties,
                        ..
                    }
            )
    }
}

macro_rules! rs {
    ($t:literal) => {
        concat!("Microsoft.RecoveryServices/", $t)
    };
}

/// The action each (route, method) pair needs, as Azure Backup's role
/// definitions name it; `None` for a method the route does not take.
fn action_of(route: &Route, m: &Method) -> Option<&'static str> {
    use Method as M;
    Some(match (route, m) {
        (Route::Policies, &M::GET) | (Route::Policy(_), &M::GET) => {
            rs!("vaults/backupPolicies/read")
        }
        (Route::Policy(_), &M::PUT) => rs!("vaults/backupPolicies/write"),
        (Route::Policy(_), &M::DELETE) => rs!("vaults/backupPolicies/delete"),
        (Route::RefreshContainers, &M::POST) => rs!("vaults/backupFabrics/refreshContainers/action"),
        (Route::FabricOperationResult(_), &M::GET) => {
            rs!("vaults/backupFabrics/operationResults/read")
        }
        (Route::Item { .. }, &M::PUT) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/write")
        }
        (Route::Item { .. }, &M::GET) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/read")
        }
        (Route::Item { .. }, &M::DELETE) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/delete")
        }
        (Route::ItemOperation { status: true, .. }, &M::GET) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read")
        }
        (Route::ItemOperation { status: false, .. }, &M::GET) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/operationResults/read")
        }
        (Route::Backup { .. }, &M::POST) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/backup/action")
        }
        (Route::Points { .. } | Route::Point { .. }, &M::GET) => {
            rs!("vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read")
        }
        (Route::Restore { .. }, &M::POST) => rs!(
            "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action"
        ),
        (Route::FileRecovery { action, .. }, &M::POST) => match action {
            FileRecoveryAction::Provision => rs!("vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/provisionInstantItemRecovery/action"),
            FileRecoveryAction::Revoke => rs!("vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/revokeInstantItemRecovery/action"),
            FileRecoveryAction::Result => rs!("vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/listInstantItemRecoveryOperationResult/action"),
        },
        (Route::AccessToken { .. }, &M::POST) => rs!(
            "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/accessToken/action"
        ),
        (Route::Crr { kind, .. }, m) => match (kind, m) {
            (CrrRoute::AadProperties, &M::GET) => rs!("locations/backupAadProperties/read"),
            (CrrRoute::Restore, &M::POST) => rs!("locations/backupCrossRegionRestore/action"),
            (CrrRoute::Jobs, &M::POST) => rs!("locations/backupCrrJobs/action"),
            (CrrRoute::Job, &M::POST) => rs!("locations/backupCrrJob/action"),
            (CrrRoute::OperationStatus(_), &M::GET) => {
                rs!("locations/backupCrrOperationsStatus/read")
            }
            (CrrRoute::OperationResult(_), &M::GET) => {
                rs!("locations/backupCrrOperationResults/read")
            }
            _ => return None,
        },
        (Route::ProtectableItems, &M::GET) => rs!("vaults/backupProtectableItems/read"),
        (Route::ProtectedItems, &M::GET) => rs!("vaults/backupProtectedItems/read"),
        (Route::Jobs | Route::Job(_), &M::GET) => rs!("vaults/backupJobs/read"),
        (Route::CancelJob(_), &M::POST) => rs!("vaults/backupJobs/cancel/action"),
        (Route::JobOperationResult(..), &M::GET) => rs!("vaults/backupJobs/operationResults/read"),
        (Route::StorageConfig, &M::GET) => rs!("vaults/backupstorageconfig/read"),
        (Route::StorageConfig, &M::PUT | &M::PATCH) => rs!("vaults/backupstorageconfig/write"),
        (Route::VaultConfig, &M::GET) => rs!("vaults/backupconfig/read"),
        (Route::VaultConfig, &M::PUT | &M::PATCH) => rs!("vaults/backupconfig/write"),
        (Route::EncryptionConfig, &M::GET) => rs!("vaults/backupEncryptionConfigs/read"),
        (Route::EncryptionConfig, &M::PUT | &M::PATCH) => {
            rs!("vaults/backupEncryptionConfigs/write")
        }
        (Route::ResourceGuardProxies(_), &M::GET) => rs!("vaults/backupResourceGuardProxies/read"),
        (Route::Operation(_), &M::GET) => rs!("vaults/backupOperations/read"),
        (Route::OperationResult(_), &M::GET) => rs!("vaults/backupOperationResults/read"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};
    use recoverite_arm::Endpoints;

    const V: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v";
    const L: &str = "/subscriptions/s/providers/Microsoft.RecoveryServices/locations/westus";

    /// Every pair the provider serves declares the action ARM derives from
    /// its path, and is a list exactly when ARM treats it as one.
    #[test]
    fn declared_actions_are_arms() {
        let dir = tempfile::tempdir().unwrap();
        let provider = crate::BackupProvider::new(
            recoverite_blockstore::BlockStore::open(&dir.path().join("d")).unwrap(),
            dir.path().join("b"),
            recoverite_arm::first_party::AsCaller::default(),
        )
        .unwrap();
        let it = format!("{V}/backupFabrics/Azure/protectionContainers/c/protectedItems/i");
        let rp = format!("{it}/recoveryPoints/p");
        use Method as M;
        let cases: Vec<(Method, String)> = vec![
            (M::GET, format!("{V}/backupPolicies")),
            (M::GET, format!("{V}/backupPolicies/p")),
            (M::PUT, format!("{V}/backupPolicies/p")),
            (M::DELETE, format!("{V}/backupPolicies/p")),
            (
                M::POST,
                format!("{V}/backupFabrics/Azure/refreshContainers"),
            ),
            (
                M::GET,
                format!("{V}/backupFabrics/Azure/operationResults/o"),
            ),
            (M::PUT, it.clone()),
            (M::GET, it.clone()),
            (M::DELETE, it.clone()),
            (M::GET, format!("{it}/operationResults/o")),
            (M::GET, format!("{it}/operationsStatus/o")),
            (M::POST, format!("{it}/backup")),
            (M::GET, format!("{it}/recoveryPoints")),
            (M::GET, rp.clone()),
            (M::POST, format!("{rp}/restore")),
            (M::POST, format!("{rp}/provisionInstantItemRecovery")),
            (M::POST, format!("{rp}/revokeInstantItemRecovery")),
            (
                M::POST,
                format!("{rp}/listInstantItemRecoveryOperationResult"),
            ),
            (M::POST, format!("{rp}/accessToken")),
            (M::GET, format!("{L}/backupAadProperties")),
            (M::POST, format!("{L}/backupCrossRegionRestore")),
            (M::POST, format!("{L}/backupCrrJobs")),
            (M::POST, format!("{L}/backupCrrJob")),
            (M::GET, format!("{L}/backupCrrOperationsStatus/o")),
            (M::GET, format!("{L}/backupCrrOperationResults/o")),
            (M::GET, format!("{V}/backupProtectableItems")),
            (M::GET, format!("{V}/backupProtectedItems")),
            (M::GET, format!("{V}/backupJobs")),
            (M::GET, format!("{V}/backupJobs/j")),
            (M::POST, format!("{V}/backupJobs/j/cancel")),
            (M::GET, format!("{V}/backupJobs/j/operationResults/o")),
            (
                M::GET,
                format!("{V}/backupstorageconfig/vaultstorageconfig"),
            ),
            (
                M::PUT,
                format!("{V}/backupstorageconfig/vaultstorageconfig"),
            ),
            (
                M::PATCH,
                format!("{V}/backupstorageconfig/vaultstorageconfig"),
            ),
            (M::GET, format!("{V}/backupconfig/vaultconfig")),
            (M::PATCH, format!("{V}/backupconfig/vaultconfig")),
            (
                M::GET,
                format!("{V}/backupEncryptionConfigs/backupResourceEncryptionConfig"),
            ),
            (
                M::PUT,
                format!("{V}/backupEncryptionConfigs/backupResourceEncryptionConfig"),
            ),
            (M::GET, format!("{V}/backupResourceGuardProxies")),
            (M::GET, format!("{V}/backupResourceGuardProxies/x")),
            (M::GET, format!("{V}/backupOperations/o")),
            (M::GET, format!("{V}/backupOperationResults/o")),
        ];
        assert_declared_actions(&Endpoints::info(&provider), &cases, Call::parse);
    }

    #[test]
    fn a_method_a_route_does_not_take_is_405_before_anything_runs() {
        let e = Call::parse(&request(Method::DELETE, &format!("{V}/backupJobs/j"))).unwrap_err();
        assert_eq!(e.status, 405);
        let e = Call::parse(&request(
            Method::GET,
            &format!("{L}/backupCrossRegionRestore"),
        ))
        .unwrap_err();
        assert_eq!(e.status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under a vault.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,11}", m in 0..6u8) {
            parse_any(V, &rest, m, |r| {
                let _ = Call::parse(r);
            });
        }
    }
}
