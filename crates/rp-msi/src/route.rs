//! Every Microsoft.ManagedIdentity request, parsed once into a [`Route`]
//! that declares its RBAC action.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Create,
    Update,
    Get,
    Delete,
    List,
    ListAssociatedResources,
    /// `{resource}/providers/Microsoft.ManagedIdentity/identities/default`
    SystemIdentity,
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        match self {
            Route::Create | Route::Update => {
                "Microsoft.ManagedIdentity/userAssignedIdentities/write"
            }
            Route::Get | Route::List => "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            Route::Delete => "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            Route::ListAssociatedResources => {
                "Microsoft.ManagedIdentity/userAssignedIdentities/listAssociatedResources/action"
            }
            Route::SystemIdentity => "Microsoft.ManagedIdentity/identities/read",
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, Route::List)
    }
}

/// (method, path) → route; a served type with a method it does not take is
/// ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let types = req.types_lower()?;
    let t: Vec<&str> = types.iter().map(String::as_str).collect();
    use Method as M;
    let r = match (t.as_slice(), p.is_resource(), &req.method) {
        (["userassignedidentities"], true, &M::PUT) => Route::Create,
        (["userassignedidentities"], true, &M::PATCH) => Route::Update,
        (["userassignedidentities"], true, &M::GET) => Route::Get,
        (["userassignedidentities"], true, &M::DELETE) => Route::Delete,
        (["userassignedidentities"], false, &M::GET) => Route::List,
        (["userassignedidentities", "listassociatedresources"], false, &M::POST) => {
            Route::ListAssociatedResources
        }
        (["identities"], true, &M::GET) => Route::SystemIdentity,
        (_, _, m) => return Err(ArmError::method_not_allowed(m.as_str())),
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};

    const U: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";

    #[test]
    fn declared_actions_are_arms() {
        use Method as M;
        let cases: Vec<(Method, String)> = vec![
            (M::PUT, U.into()),
            (M::PATCH, U.into()),
            (M::GET, U.into()),
            (M::DELETE, U.into()),
            (M::GET, "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities".into()),
            (M::POST, format!("{U}/listAssociatedResources")),
            (M::GET, "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.ManagedIdentity/identities/default".into()),
        ];
        let seen = assert_declared_actions(&crate::info_of(), &cases, parse);
        assert_eq!(seen.len(), 7, "every route is covered");
    }

    #[test]
    fn a_method_a_route_does_not_take_is_405() {
        assert_eq!(parse(&request(Method::POST, U)).unwrap_err().status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,5}", m in 0..6u8) {
            parse_any(U, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
