//! Every Microsoft.RecoveryServices request this crate serves, parsed once
//! into a [`Route`] that declares its RBAC action. The router authorizes the
//! route and the provider serves that same route; nothing matches the path
//! a second time.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateVault,
    UpdateVault,
    GetVault,
    DeleteVault,
    ListVaults,
    PutExtendedInfo,
    PatchExtendedInfo,
    GetExtendedInfo,
    UploadCertificate,
    DeleteRegisteredIdentity,
    GetConnection,
    PutConnection,
    DeleteConnection,
    ListConnections,
    ConnectionOperationStatus,
    GetPrivateLinkResource,
    ListPrivateLinkResources,
    Usages,
    ReplicationUsages,
    RegisterContainer,
    GetContainer,
    UnregisterContainer,
    ListContainers,
    CheckNameAvailability,
    VaultOperationStatus,
    VaultOperationResult,
    Capabilities,
    ListDeletedVaults,
    GetDeletedVault,
    UndeleteVault,
    DeletedVaultOperationStatus,
}

const NS: &str = "Microsoft.RecoveryServices";

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        use Route::*;
        match self {
            CreateVault | UpdateVault => "Microsoft.RecoveryServices/vaults/write",
            GetVault | ListVaults => "Microsoft.RecoveryServices/vaults/read",
            DeleteVault => "Microsoft.RecoveryServices/vaults/delete",
            PutExtendedInfo | PatchExtendedInfo => {
                "Microsoft.RecoveryServices/vaults/extendedInformation/write"
            }
            GetExtendedInfo => "Microsoft.RecoveryServices/vaults/extendedInformation/read",
            UploadCertificate => "Microsoft.RecoveryServices/vaults/certificates/write",
            DeleteRegisteredIdentity => {
                "Microsoft.RecoveryServices/vaults/registeredIdentities/delete"
            }
            GetConnection | ListConnections => {
                "Microsoft.RecoveryServices/vaults/privateEndpointConnections/read"
            }
            PutConnection => "Microsoft.RecoveryServices/vaults/privateEndpointConnections/write",
            DeleteConnection => {
                "Microsoft.RecoveryServices/vaults/privateEndpointConnections/delete"
            }
            ConnectionOperationStatus => {
                "Microsoft.RecoveryServices/vaults/privateEndpointConnections/operationsStatus/read"
            }
            GetPrivateLinkResource | ListPrivateLinkResources => {
                "Microsoft.RecoveryServices/vaults/privateLinkResources/read"
            }
            Usages => "Microsoft.RecoveryServices/vaults/usages/read",
            ReplicationUsages => "Microsoft.RecoveryServices/vaults/replicationUsages/read",
            RegisterContainer => {
                "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/write"
            }
            GetContainer => {
                "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/read"
            }
            UnregisterContainer => {
                "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/delete"
            }
            ListContainers => "Microsoft.RecoveryServices/vaults/backupProtectionContainers/read",
            CheckNameAvailability => {
                "Microsoft.RecoveryServices/locations/checkNameAvailability/action"
            }
            VaultOperationStatus => "Microsoft.RecoveryServices/vaults/operationStatus/read",
            VaultOperationResult => "Microsoft.RecoveryServices/vaults/operationResults/read",
            Capabilities => "Microsoft.RecoveryServices/locations/capabilities/action",
            ListDeletedVaults | GetDeletedVault => {
                "Microsoft.RecoveryServices/locations/deletedVaults/read"
            }
            UndeleteVault => "Microsoft.RecoveryServices/locations/deletedVaults/undelete/action",
            DeletedVaultOperationStatus => {
                "Microsoft.RecoveryServices/locations/deletedVaults/operations/read"
            }
        }
    }

    fn is_list(&self) -> bool {
        matches!(
            self,
            Route::ListVaults
                | Route::ListConnections
                | Route::ListContainers
                | Route::ListPrivateLinkResources
                | Route::Usages
                | Route::ReplicationUsages
                | Route::ListDeletedVaults
        )
    }
}

/// (method, path) → route. A path of a served type with a method it does
/// not take is ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    if !p.namespace.eq_ignore_ascii_case(NS) {
        return Err(ArmError::bad_request(
            "InvalidResourceNamespace",
            format!("The resource namespace '{}' is invalid.", p.namespace),
        ));
    }
    let types = req.types_lower()?;
    let t: Vec<&str> = types.iter().map(String::as_str).collect();
    use Method as M;
    use Route::*;
    let r = match (t.as_slice(), p.is_resource(), &req.method) {
        (["vaults"], true, &M::PUT) => CreateVault,
        (["vaults"], true, &M::PATCH) => UpdateVault,
        (["vaults"], true, &M::GET) => GetVault,
        (["vaults"], true, &M::DELETE) => DeleteVault,
        (["vaults"], false, &M::GET) => ListVaults,
        (["vaults", "extendedinformation"], true, &M::PUT) => PutExtendedInfo,
        (["vaults", "extendedinformation"], true, &M::PATCH) => PatchExtendedInfo,
        (["vaults", "extendedinformation"], true, &M::GET) => GetExtendedInfo,
        (["vaults", "certificates"], true, &M::PUT) => UploadCertificate,
        (["vaults", "registeredidentities"], true, &M::DELETE) => DeleteRegisteredIdentity,
        (["vaults", "privateendpointconnections"], true, &M::GET) => GetConnection,
        (["vaults", "privateendpointconnections"], true, &M::PUT) => PutConnection,
        (["vaults", "privateendpointconnections"], true, &M::DELETE) => DeleteConnection,
        (["vaults", "privateendpointconnections"], false, &M::GET) => ListConnections,
        (["vaults", "privateendpointconnections", "operationsstatus"], true, &M::GET) => {
            ConnectionOperationStatus
        }
        (["vaults", "privatelinkresources"], true, &M::GET) => GetPrivateLinkResource,
        (["vaults", "privatelinkresources"], false, &M::GET) => ListPrivateLinkResources,
        (["vaults", "usages"], false, &M::GET) => Usages,
        (["vaults", "replicationusages"], false, &M::GET) => ReplicationUsages,
        (["vaults", "backupfabrics", "protectioncontainers"], true, &M::PUT) => RegisterContainer,
        (["vaults", "backupfabrics", "protectioncontainers"], true, &M::GET) => GetContainer,
        (["vaults", "backupfabrics", "protectioncontainers"], true, &M::DELETE) => {
            UnregisterContainer
        }
        (["vaults", "backupprotectioncontainers"], false, &M::GET) => ListContainers,
        (["locations", "checknameavailability"], false, &M::POST) => CheckNameAvailability,
        (["vaults", "operationstatus"], true, &M::GET) => VaultOperationStatus,
        (["vaults", "operationresults"], true, &M::GET) => VaultOperationResult,
        (["locations", "capabilities"], false, &M::POST) => Capabilities,
        (["locations", "deletedvaults"], false, &M::GET) => ListDeletedVaults,
        (["locations", "deletedvaults"], true, &M::GET) => GetDeletedVault,
        (["locations", "deletedvaults", "undelete"], false, &M::POST) => UndeleteVault,
        (["locations", "deletedvaults", "operations"], true, &M::GET) => {
            DeletedVaultOperationStatus
        }
        (_, _, m) => return Err(ArmError::method_not_allowed(m.as_str())),
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};

    const V: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v";
    const L: &str = "/subscriptions/s/providers/Microsoft.RecoveryServices/locations/westcentralus";

    /// Each route's declared action is the one ARM derives from its path
    /// (`{ns}/{types}/read|write|delete`, `…/action`), so declaring it
    /// cannot drift from what role definitions name.
    #[test]
    fn declared_actions_are_arms() {
        let info = crate::RecoveryServicesProvider.info_of();
        let cases = [
            (Method::PUT, V.to_string()),
            (Method::PATCH, V.to_string()),
            (Method::GET, V.to_string()),
            (Method::DELETE, V.to_string()),
            (Method::GET, "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults".into()),
            (Method::PUT, format!("{V}/extendedInformation/vaultExtendedInfo")),
            (Method::PATCH, format!("{V}/extendedInformation/vaultExtendedInfo")),
            (Method::GET, format!("{V}/extendedInformation/vaultExtendedInfo")),
            (Method::PUT, format!("{V}/certificates/c")),
            (Method::DELETE, format!("{V}/registeredIdentities/i")),
            (Method::GET, format!("{V}/privateEndpointConnections/c")),
            (Method::PUT, format!("{V}/privateEndpointConnections/c")),
            (Method::DELETE, format!("{V}/privateEndpointConnections/c")),
            (Method::GET, format!("{V}/privateEndpointConnections")),
            (Method::GET, format!("{V}/privateEndpointConnections/c/operationsStatus/o")),
            (Method::GET, format!("{V}/privateLinkResources")),
            (Method::GET, format!("{V}/privateLinkResources/backupResource")),
            (Method::GET, format!("{V}/usages")),
            (Method::GET, format!("{V}/replicationUsages")),
            (Method::PUT, format!("{V}/backupFabrics/Azure/protectionContainers/c")),
            (Method::GET, format!("{V}/backupFabrics/Azure/protectionContainers/c")),
            (Method::DELETE, format!("{V}/backupFabrics/Azure/protectionContainers/c")),
            (Method::GET, format!("{V}/backupProtectionContainers")),
            (Method::POST, "/subscriptions/s/providers/Microsoft.RecoveryServices/locations/eastus/checkNameAvailability".into()),
            (Method::GET, format!("{V}/operationStatus/o")),
            (Method::GET, format!("{V}/operationResults/o")),
            (Method::POST, format!("{L}/capabilities")),
            (Method::GET, format!("{L}/deletedVaults")),
            (Method::GET, format!("{L}/deletedVaults/d")),
            (Method::POST, format!("{L}/deletedVaults/d/undelete")),
            (Method::GET, format!("{L}/deletedVaults/d/operations/o")),
        ];
        let seen = assert_declared_actions(&info, &cases, parse);
        assert_eq!(seen.len(), 31, "every route is covered");
    }

    #[test]
    fn a_method_a_type_does_not_take_is_405() {
        let e = parse(&request(Method::POST, V)).unwrap_err();
        assert_eq!(e.status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under the namespace.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,9}", m in 0..6u8) {
            parse_any("/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices", &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
