//! Every Site Recovery request, parsed once into a [`Route`] that declares
//! its RBAC action; the router authorizes the route and the provider serves
//! that same route.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PutFabric,
    GetFabric,
    DeleteFabric,
    ListFabrics,
    RemoveFabric,
    PutContainer,
    GetContainer,
    ListContainers,
    RemoveContainer,
    PutContainerMapping,
    GetContainerMapping,
    DeleteContainerMapping,
    ListContainerMappings,
    RemoveContainerMapping,
    EnableProtection,
    GetProtectedItem,
    PurgeProtectedItem,
    ListProtectedItems,
    DisableProtection,
    UnplannedFailover,
    FailoverCommit,
    TestFailover,
    TestFailoverCleanup,
    Reprotect,
    GetRecoveryPoint,
    ListRecoveryPoints,
    ListVaultProtectedItems,
    ListVaultContainers,
    ListVaultContainerMappings,
    PutNetworkMapping,
    GetNetworkMapping,
    DeleteNetworkMapping,
    ListNetworkMappings,
    ListVaultNetworkMappings,
    CreatePolicy,
    UpdatePolicy,
    GetPolicy,
    DeletePolicy,
    ListPolicies,
    GetJob,
    ListJobs,
}

macro_rules! v {
    ($t:literal) => {
        concat!("Microsoft.RecoveryServices/vaults/", $t)
    };
}
macro_rules! c {
    ($t:literal) => {
        concat!(
            "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/",
            $t
        )
    };
}
macro_rules! item {
    ($t:literal) => {
        concat!(
            "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/",
            $t
        )
    };
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        use Route::*;
        match self {
            PutFabric => v!("replicationFabrics/write"),
            GetFabric | ListFabrics => v!("replicationFabrics/read"),
            DeleteFabric => v!("replicationFabrics/delete"),
            RemoveFabric => v!("replicationFabrics/remove/action"),
            PutContainer => v!("replicationFabrics/replicationProtectionContainers/write"),
            GetContainer | ListContainers => {
                v!("replicationFabrics/replicationProtectionContainers/read")
            }
            RemoveContainer => c!("remove/action"),
            PutContainerMapping => c!("replicationProtectionContainerMappings/write"),
            GetContainerMapping | ListContainerMappings => {
                c!("replicationProtectionContainerMappings/read")
            }
            DeleteContainerMapping => c!("replicationProtectionContainerMappings/delete"),
            RemoveContainerMapping => c!("replicationProtectionContainerMappings/remove/action"),
            EnableProtection => c!("replicationProtectedItems/write"),
            GetProtectedItem | ListProtectedItems => c!("replicationProtectedItems/read"),
            PurgeProtectedItem => c!("replicationProtectedItems/delete"),
            DisableProtection => item!("remove/action"),
            UnplannedFailover => item!("unplannedFailover/action"),
            FailoverCommit => item!("failoverCommit/action"),
            TestFailover => item!("testFailover/action"),
            TestFailoverCleanup => item!("testFailoverCleanup/action"),
            Reprotect => item!("reprotect/action"),
            GetRecoveryPoint | ListRecoveryPoints => item!("recoveryPoints/read"),
            ListVaultProtectedItems => v!("replicationProtectedItems/read"),
            ListVaultContainers => v!("replicationProtectionContainers/read"),
            ListVaultContainerMappings => v!("replicationProtectionContainerMappings/read"),
            PutNetworkMapping => {
                v!("replicationFabrics/replicationNetworks/replicationNetworkMappings/write")
            }
            GetNetworkMapping | ListNetworkMappings => {
                v!("replicationFabrics/replicationNetworks/replicationNetworkMappings/read")
            }
            DeleteNetworkMapping => {
                v!("replicationFabrics/replicationNetworks/replicationNetworkMappings/delete")
            }
            ListVaultNetworkMappings => v!("replicationNetworkMappings/read"),
            CreatePolicy | UpdatePolicy => v!("replicationPolicies/write"),
            GetPolicy | ListPolicies => v!("replicationPolicies/read"),
            DeletePolicy => v!("replicationPolicies/delete"),
            GetJob | ListJobs => v!("replicationJobs/read"),
        }
    }

    fn is_list(&self) -> bool {
        use Route::*;
        matches!(
            self,
            ListFabrics
                | ListContainers
                | ListContainerMappings
                | ListProtectedItems
                | ListRecoveryPoints
                | ListVaultProtectedItems
                | ListVaultContainers
                | ListVaultContainerMappings
                | ListNetworkMappings
                | ListVaultNetworkMappings
                | ListPolicies
                | ListJobs
        )
    }
}

const F: &str = "replicationfabrics";
const PC: &str = "replicationprotectioncontainers";
const PCM: &str = "replicationprotectioncontainermappings";
const PI: &str = "replicationprotecteditems";
const NM: &str = "replicationnetworkmappings";

/// (method, path) → route; a served type with a method it does not take is
/// ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let types = req.types_lower()?;
    let t: Vec<&str> = types.iter().map(String::as_str).collect();
    let res = p.is_resource();
    use Method as M;
    use Route::*;
    let m = &req.method;
    let r = match t.as_slice() {
        ["vaults", f] if *f == F => match (res, m) {
            (true, &M::PUT) => PutFabric,
            (true, &M::GET) => GetFabric,
            (true, &M::DELETE) => DeleteFabric,
            (false, &M::GET) => ListFabrics,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", f, "remove"] if *f == F && !res && m == M::POST => RemoveFabric,
        ["vaults", f, c] if *f == F && *c == PC => match (res, m) {
            (true, &M::PUT) => PutContainer,
            (true, &M::GET) => GetContainer,
            (false, &M::GET) => ListContainers,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", f, c, "remove"] if *f == F && *c == PC && !res && m == M::POST => {
            RemoveContainer
        }
        ["vaults", f, c, cm] if *f == F && *c == PC && *cm == PCM => match (res, m) {
            (true, &M::PUT) => PutContainerMapping,
            (true, &M::GET) => GetContainerMapping,
            (true, &M::DELETE) => DeleteContainerMapping,
            (false, &M::GET) => ListContainerMappings,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", f, c, cm, "remove"]
            if *f == F && *c == PC && *cm == PCM && !res && m == M::POST =>
        {
            RemoveContainerMapping
        }
        ["vaults", f, c, i] if *f == F && *c == PC && *i == PI => match (res, m) {
            (true, &M::PUT) => EnableProtection,
            (true, &M::GET) => GetProtectedItem,
            (true, &M::DELETE) => PurgeProtectedItem,
            (false, &M::GET) => ListProtectedItems,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", f, c, i, verb] if *f == F && *c == PC && *i == PI && !res && m == M::POST => {
            match *verb {
                "remove" => DisableProtection,
                "unplannedfailover" => UnplannedFailover,
                "failovercommit" => FailoverCommit,
                "testfailover" => TestFailover,
                "testfailovercleanup" => TestFailoverCleanup,
                "reprotect" => Reprotect,
                _ => return Err(ArmError::method_not_allowed(m.as_str())),
            }
        }
        ["vaults", f, c, i, "recoverypoints"] if *f == F && *c == PC && *i == PI && m == M::GET => {
            if res {
                GetRecoveryPoint
            } else {
                ListRecoveryPoints
            }
        }
        ["vaults", i] if *i == PI && !res && m == M::GET => ListVaultProtectedItems,
        ["vaults", c] if *c == PC && !res && m == M::GET => ListVaultContainers,
        ["vaults", cm] if *cm == PCM && !res && m == M::GET => ListVaultContainerMappings,
        ["vaults", f, "replicationnetworks", nm] if *f == F && *nm == NM => match (res, m) {
            (true, &M::PUT | &M::PATCH) => PutNetworkMapping,
            (true, &M::GET) => GetNetworkMapping,
            (true, &M::DELETE) => DeleteNetworkMapping,
            (false, &M::GET) => ListNetworkMappings,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", nm] if *nm == NM && !res && m == M::GET => ListVaultNetworkMappings,
        ["vaults", "replicationpolicies"] => match (res, m) {
            (true, &M::PUT) => CreatePolicy,
            (true, &M::PATCH) => UpdatePolicy,
            (true, &M::GET) => GetPolicy,
            (true, &M::DELETE) => DeletePolicy,
            (false, &M::GET) => ListPolicies,
            _ => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        ["vaults", "replicationjobs"] if m == M::GET => {
            if res {
                GetJob
            } else {
                ListJobs
            }
        }
        _ => return Err(ArmError::method_not_allowed(m.as_str())),
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

    /// Every route declares the action ARM derives from its path (the
    /// actions Site Recovery's built-in roles name), and is a list exactly
    /// when ARM treats the request as one.
    #[test]
    fn declared_actions_are_arms() {
        let f = format!("{V}/replicationFabrics/east");
        let c = format!("{f}/replicationProtectionContainers/east-c");
        let cm = format!("{c}/replicationProtectionContainerMappings/m");
        let i = format!("{c}/replicationProtectedItems/web");
        let nm = format!("{f}/replicationNetworks/n/replicationNetworkMappings/nm");
        use Method as M;
        let cases: Vec<(Method, String)> = vec![
            (M::PUT, f.clone()),
            (M::GET, f.clone()),
            (M::DELETE, f.clone()),
            (M::GET, format!("{V}/replicationFabrics")),
            (M::POST, format!("{f}/remove")),
            (M::PUT, c.clone()),
            (M::GET, c.clone()),
            (M::GET, format!("{f}/replicationProtectionContainers")),
            (M::POST, format!("{c}/remove")),
            (M::PUT, cm.clone()),
            (M::GET, cm.clone()),
            (M::DELETE, cm.clone()),
            (
                M::GET,
                format!("{c}/replicationProtectionContainerMappings"),
            ),
            (M::POST, format!("{cm}/remove")),
            (M::PUT, i.clone()),
            (M::GET, i.clone()),
            (M::DELETE, i.clone()),
            (M::GET, format!("{c}/replicationProtectedItems")),
            (M::POST, format!("{i}/remove")),
            (M::POST, format!("{i}/unplannedFailover")),
            (M::POST, format!("{i}/failoverCommit")),
            (M::POST, format!("{i}/testFailover")),
            (M::POST, format!("{i}/testFailoverCleanup")),
            (M::POST, format!("{i}/reprotect")),
            (M::GET, format!("{i}/recoveryPoints/3")),
            (M::GET, format!("{i}/recoveryPoints")),
            (M::GET, format!("{V}/replicationProtectedItems")),
            (M::GET, format!("{V}/replicationProtectionContainers")),
            (
                M::GET,
                format!("{V}/replicationProtectionContainerMappings"),
            ),
            (M::PUT, nm.clone()),
            (M::PATCH, nm.clone()),
            (M::GET, nm.clone()),
            (M::DELETE, nm.clone()),
            (
                M::GET,
                format!("{f}/replicationNetworks/n/replicationNetworkMappings"),
            ),
            (M::GET, format!("{V}/replicationNetworkMappings")),
            (M::PUT, format!("{V}/replicationPolicies/p")),
            (M::PATCH, format!("{V}/replicationPolicies/p")),
            (M::GET, format!("{V}/replicationPolicies/p")),
            (M::DELETE, format!("{V}/replicationPolicies/p")),
            (M::GET, format!("{V}/replicationPolicies")),
            (M::GET, format!("{V}/replicationJobs/j")),
            (M::GET, format!("{V}/replicationJobs")),
        ];
        let info = crate::SiteRecoveryProvider::info_of();
        let seen = assert_declared_actions(&info, &cases, parse);
        assert_eq!(seen.len(), 41, "every route is covered");
    }

    #[test]
    fn a_method_a_route_does_not_take_is_405() {
        let i = format!("{V}/replicationFabrics/e/replicationProtectionContainers/c/replicationProtectedItems/web");
        assert_eq!(parse(&request(Method::POST, &i)).unwrap_err().status, 405);
        let e = parse(&request(Method::GET, &format!("{i}/unplannedFailover"))).unwrap_err();
        assert_eq!(e.status, 405);
        let e = parse(&request(Method::POST, &format!("{i}/explode"))).unwrap_err();
        assert_eq!(e.status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under a vault.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,11}", m in 0..6u8) {
            parse_any(V, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
