//! Every Microsoft.Storage request this crate serves, parsed once into a
//! [`Route`] that declares its RBAC action.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateAccount,
    UpdateAccount,
    GetAccount,
    DeleteAccount,
    ListAccounts,
    CheckNameAvailability,
    ListKeys,
    RegenerateKey,
    ListAccountSas,
    ListServiceSas,
    GetBlobService,
    PutBlobService,
    ListBlobServices,
    PutContainer,
    PatchContainer,
    GetContainer,
    DeleteContainer,
    ListContainers,
    ContainerLease,
    SetLegalHold,
    ClearLegalHold,
    MigrateContainer,
    GetImmutabilityPolicy,
    PutImmutabilityPolicy,
    DeleteImmutabilityPolicy,
    LockImmutabilityPolicy,
    ExtendImmutabilityPolicy,
    ListPrivateLinkResources,
    ListConnections,
    GetConnection,
    PutConnection,
    DeleteConnection,
}

macro_rules! sa {
    ($t:literal) => {
        concat!("Microsoft.Storage/storageAccounts", $t)
    };
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        use Route::*;
        match self {
            CreateAccount | UpdateAccount => sa!("/write"),
            GetAccount | ListAccounts => sa!("/read"),
            DeleteAccount => sa!("/delete"),
            CheckNameAvailability => "Microsoft.Storage/checkNameAvailability/action",
            ListKeys => sa!("/listKeys/action"),
            RegenerateKey => sa!("/regenerateKey/action"),
            ListAccountSas => sa!("/listAccountSas/action"),
            ListServiceSas => sa!("/listServiceSas/action"),
            GetBlobService | ListBlobServices => sa!("/blobServices/read"),
            PutBlobService => sa!("/blobServices/write"),
            PutContainer | PatchContainer => sa!("/blobServices/containers/write"),
            GetContainer | ListContainers => sa!("/blobServices/containers/read"),
            DeleteContainer => sa!("/blobServices/containers/delete"),
            ContainerLease => sa!("/blobServices/containers/lease/action"),
            SetLegalHold => sa!("/blobServices/containers/setLegalHold/action"),
            ClearLegalHold => sa!("/blobServices/containers/clearLegalHold/action"),
            MigrateContainer => sa!("/blobServices/containers/migrate/action"),
            GetImmutabilityPolicy => sa!("/blobServices/containers/immutabilityPolicies/read"),
            PutImmutabilityPolicy => sa!("/blobServices/containers/immutabilityPolicies/write"),
            DeleteImmutabilityPolicy => {
                sa!("/blobServices/containers/immutabilityPolicies/delete")
            }
            LockImmutabilityPolicy => {
                sa!("/blobServices/containers/immutabilityPolicies/lock/action")
            }
            ExtendImmutabilityPolicy => {
                sa!("/blobServices/containers/immutabilityPolicies/extend/action")
            }
            ListPrivateLinkResources => sa!("/privateLinkResources/read"),
            ListConnections | GetConnection => sa!("/privateEndpointConnections/read"),
            PutConnection => sa!("/privateEndpointConnections/write"),
            DeleteConnection => sa!("/privateEndpointConnections/delete"),
        }
    }

    fn is_list(&self) -> bool {
        use Route::*;
        matches!(
            self,
            ListAccounts
                | ListBlobServices
                | ListContainers
                | ListPrivateLinkResources
                | ListConnections
        )
    }
}

/// (method, path) → route; a served type with a method it does not take is
/// ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let types = req.types_lower()?;
    let t: Vec<&str> = types.iter().map(String::as_str).collect();
    use Method as M;
    use Route::*;
    let r = match (t.as_slice(), p.is_resource(), &req.method) {
        (["storageaccounts"], true, &M::PUT) => CreateAccount,
        (["storageaccounts"], true, &M::PATCH) => UpdateAccount,
        (["storageaccounts"], true, &M::GET) => GetAccount,
        (["storageaccounts"], true, &M::DELETE) => DeleteAccount,
        (["storageaccounts"], false, &M::GET) => ListAccounts,
        (["checknameavailability"], false, &M::POST) => CheckNameAvailability,
        (["storageaccounts", "listkeys"], false, &M::POST) => ListKeys,
        (["storageaccounts", "regeneratekey"], false, &M::POST) => RegenerateKey,
        (["storageaccounts", "listaccountsas"], false, &M::POST) => ListAccountSas,
        (["storageaccounts", "listservicesas"], false, &M::POST) => ListServiceSas,
        (["storageaccounts", "blobservices"], true, &M::GET) => GetBlobService,
        (["storageaccounts", "blobservices"], true, &M::PUT) => PutBlobService,
        (["storageaccounts", "blobservices"], false, &M::GET) => ListBlobServices,
        (["storageaccounts", "blobservices", "containers"], true, &M::PUT) => PutContainer,
        (["storageaccounts", "blobservices", "containers"], true, &M::PATCH) => PatchContainer,
        (["storageaccounts", "blobservices", "containers"], true, &M::GET) => GetContainer,
        (["storageaccounts", "blobservices", "containers"], true, &M::DELETE) => DeleteContainer,
        (["storageaccounts", "blobservices", "containers"], false, &M::GET) => ListContainers,
        (["storageaccounts", "blobservices", "containers", "lease"], false, &M::POST) => {
            ContainerLease
        }
        (["storageaccounts", "blobservices", "containers", "setlegalhold"], false, &M::POST) => {
            SetLegalHold
        }
        (["storageaccounts", "blobservices", "containers", "clearlegalhold"], false, &M::POST) => {
            ClearLegalHold
        }
        (["storageaccounts", "blobservices", "containers", "migrate"], false, &M::POST) => {
            MigrateContainer
        }
        (
            ["storageaccounts", "blobservices", "containers", "immutabilitypolicies"],
            true,
            &M::GET,
        ) => GetImmutabilityPolicy,
        (
            ["storageaccounts", "blobservices", "containers", "immutabilitypolicies"],
            true,
            &M::PUT,
        ) => PutImmutabilityPolicy,
        (
            ["storageaccounts", "blobservices", "containers", "immutabilitypolicies"],
            true,
            &M::DELETE,
        ) => DeleteImmutabilityPolicy,
        (
            ["storageaccounts", "blobservices", "containers", "immutabilitypolicies", "lock"],
            false,
            &M::POST,
        ) => LockImmutabilityPolicy,
        (
            ["storageaccounts", "blobservices", "containers", "immutabilitypolicies", "extend"],
            false,
            &M::POST,
        ) => ExtendImmutabilityPolicy,
        (["storageaccounts", "privatelinkresources"], false, &M::GET) => ListPrivateLinkResources,
        (["storageaccounts", "privateendpointconnections"], false, &M::GET) => ListConnections,
        (["storageaccounts", "privateendpointconnections"], true, &M::GET) => GetConnection,
        (["storageaccounts", "privateendpointconnections"], true, &M::PUT) => PutConnection,
        (["storageaccounts", "privateendpointconnections"], true, &M::DELETE) => DeleteConnection,
        (_, _, m) => return Err(ArmError::method_not_allowed(m.as_str())),
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};

    const A: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a";

    /// Every route declares the action ARM derives from its path, and is a
    /// list exactly when ARM treats the request as one.
    #[test]
    fn declared_actions_are_arms() {
        use Method as M;
        let c = format!("{A}/blobServices/default/containers/c");
        let pec = format!("{A}/privateEndpointConnections/pe");
        let cases: Vec<(Method, String)> = vec![
            (M::PUT, A.into()),
            (M::PATCH, A.into()),
            (M::GET, A.into()),
            (M::DELETE, A.into()),
            (
                M::GET,
                "/subscriptions/s/providers/Microsoft.Storage/storageAccounts".into(),
            ),
            (
                M::POST,
                "/subscriptions/s/providers/Microsoft.Storage/checkNameAvailability".into(),
            ),
            (M::POST, format!("{A}/listKeys")),
            (M::POST, format!("{A}/regenerateKey")),
            (M::POST, format!("{A}/ListAccountSas")),
            (M::POST, format!("{A}/ListServiceSas")),
            (M::GET, format!("{A}/blobServices/default")),
            (M::PUT, format!("{A}/blobServices/default")),
            (M::GET, format!("{A}/blobServices")),
            (M::PUT, c.clone()),
            (M::PATCH, c.clone()),
            (M::GET, c.clone()),
            (M::DELETE, c.clone()),
            (M::GET, format!("{A}/blobServices/default/containers")),
            (M::POST, format!("{c}/lease")),
            (M::POST, format!("{c}/setLegalHold")),
            (M::POST, format!("{c}/clearLegalHold")),
            (M::POST, format!("{c}/migrate")),
            (M::GET, format!("{c}/immutabilityPolicies/default")),
            (M::PUT, format!("{c}/immutabilityPolicies/default")),
            (M::DELETE, format!("{c}/immutabilityPolicies/default")),
            (M::POST, format!("{c}/immutabilityPolicies/default/lock")),
            (M::POST, format!("{c}/immutabilityPolicies/default/extend")),
            (M::GET, format!("{A}/privateLinkResources")),
            (M::GET, format!("{A}/privateEndpointConnections")),
            (M::GET, pec.clone()),
            (M::PUT, pec.clone()),
            (M::DELETE, pec),
        ];
        let seen = assert_declared_actions(&crate::StorageProvider::info_of(), &cases, parse);
        assert_eq!(seen.len(), 32, "every route is covered");
    }

    #[test]
    fn a_method_a_route_does_not_take_is_405() {
        assert_eq!(parse(&request(Method::POST, A)).unwrap_err().status, 405);
        let e = parse(&request(Method::GET, &format!("{A}/listKeys"))).unwrap_err();
        assert_eq!(e.status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under an account.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,7}", m in 0..6u8) {
            parse_any(A, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
