//! Every Microsoft.Compute request this crate serves, parsed once into a
//! [`Route`] that declares its RBAC action.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

use crate::power::PowerAction;

/// Disks and snapshots share their handlers; the kind picks the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskKind {
    Disk,
    Snapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PutDisk(DiskKind),
    PatchDisk(DiskKind),
    GetDisk(DiskKind),
    DeleteDisk(DiskKind),
    ListDisks(DiskKind),
    GrantAccess(DiskKind),
    RevokeAccess(DiskKind),
    Power(PowerAction),
    InstanceView,
    AttachDetachDataDisks,
    PutVm,
    PatchVm,
    GetVm,
    DeleteVm,
    ListVms,
    PutAvailabilitySet,
    PatchAvailabilitySet,
    GetAvailabilitySet,
    DeleteAvailabilitySet,
    ListAvailabilitySets,
    PutRestorePointCollection,
    GetRestorePointCollection,
    DeleteRestorePointCollection,
    ListRestorePointCollections,
    PutRestorePoint,
    GetRestorePoint,
    DeleteRestorePoint,
    GetDiskRestorePoint,
    ListDiskRestorePoints,
}

macro_rules! c {
    ($t:literal) => {
        concat!("Microsoft.Compute/", $t)
    };
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        use DiskKind::*;
        use Route::*;
        match self {
            PutDisk(Disk) | PatchDisk(Disk) => c!("disks/write"),
            PutDisk(Snapshot) | PatchDisk(Snapshot) => c!("snapshots/write"),
            GetDisk(Disk) | ListDisks(Disk) => c!("disks/read"),
            GetDisk(Snapshot) | ListDisks(Snapshot) => c!("snapshots/read"),
            DeleteDisk(Disk) => c!("disks/delete"),
            DeleteDisk(Snapshot) => c!("snapshots/delete"),
            GrantAccess(Disk) => c!("disks/beginGetAccess/action"),
            GrantAccess(Snapshot) => c!("snapshots/beginGetAccess/action"),
            RevokeAccess(Disk) => c!("disks/endGetAccess/action"),
            RevokeAccess(Snapshot) => c!("snapshots/endGetAccess/action"),
            Power(PowerAction::Start) => c!("virtualMachines/start/action"),
            Power(PowerAction::PowerOff) => c!("virtualMachines/powerOff/action"),
            Power(PowerAction::Restart) => c!("virtualMachines/restart/action"),
            Power(PowerAction::Deallocate) => c!("virtualMachines/deallocate/action"),
            InstanceView => c!("virtualMachines/instanceView/read"),
            AttachDetachDataDisks => c!("virtualMachines/attachDetachDataDisks/action"),
            PutVm | PatchVm => c!("virtualMachines/write"),
            GetVm | ListVms => c!("virtualMachines/read"),
            DeleteVm => c!("virtualMachines/delete"),
            PutAvailabilitySet | PatchAvailabilitySet => c!("availabilitySets/write"),
            GetAvailabilitySet | ListAvailabilitySets => c!("availabilitySets/read"),
            DeleteAvailabilitySet => c!("availabilitySets/delete"),
            PutRestorePointCollection => c!("restorePointCollections/write"),
            GetRestorePointCollection | ListRestorePointCollections => {
                c!("restorePointCollections/read")
            }
            DeleteRestorePointCollection => c!("restorePointCollections/delete"),
            PutRestorePoint => c!("restorePointCollections/restorePoints/write"),
            GetRestorePoint => c!("restorePointCollections/restorePoints/read"),
            DeleteRestorePoint => c!("restorePointCollections/restorePoints/delete"),
            GetDiskRestorePoint | ListDiskRestorePoints => {
                c!("restorePointCollections/restorePoints/diskRestorePoints/read")
            }
        }
    }

    fn is_list(&self) -> bool {
        use Route::*;
        matches!(
            self,
            ListDisks(_)
                | InstanceView
                | ListVms
                | ListAvailabilitySets
                | ListRestorePointCollections
                | ListDiskRestorePoints
        )
    }
}

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
    let disk = |k: &str| {
        if k == "snapshots" {
            DiskKind::Snapshot
        } else {
            DiskKind::Disk
        }
    };
    let r = match (t.as_slice(), res, m) {
        ([k @ ("disks" | "snapshots")], true, &M::PUT) => PutDisk(disk(k)),
        ([k @ ("disks" | "snapshots")], true, &M::PATCH) => PatchDisk(disk(k)),
        ([k @ ("disks" | "snapshots")], true, &M::GET) => GetDisk(disk(k)),
        ([k @ ("disks" | "snapshots")], true, &M::DELETE) => DeleteDisk(disk(k)),
        ([k @ ("disks" | "snapshots")], false, &M::GET) => ListDisks(disk(k)),
        ([k @ ("disks" | "snapshots"), "begingetaccess"], false, &M::POST) => GrantAccess(disk(k)),
        ([k @ ("disks" | "snapshots"), "endgetaccess"], false, &M::POST) => RevokeAccess(disk(k)),
        (["virtualmachines", "attachdetachdatadisks"], false, &M::POST) => AttachDetachDataDisks,
        (["virtualmachines", verb], false, &M::POST) => match PowerAction::parse(verb) {
            Some(a) => Power(a),
            None => return Err(ArmError::method_not_allowed(m.as_str())),
        },
        (["virtualmachines", "instanceview"], false, &M::GET) => InstanceView,
        (["virtualmachines"], true, &M::PUT) => PutVm,
        (["virtualmachines"], true, &M::PATCH) => PatchVm,
        (["virtualmachines"], true, &M::GET) => GetVm,
        (["virtualmachines"], true, &M::DELETE) => DeleteVm,
        (["virtualmachines"], false, &M::GET) => ListVms,
        (["availabilitysets"], true, &M::PUT) => PutAvailabilitySet,
        (["availabilitysets"], true, &M::PATCH) => PatchAvailabilitySet,
        (["availabilitysets"], true, &M::GET) => GetAvailabilitySet,
        (["availabilitysets"], true, &M::DELETE) => DeleteAvailabilitySet,
        (["availabilitysets"], false, &M::GET) => ListAvailabilitySets,
        (["restorepointcollections"], true, &M::PUT | &M::PATCH) => PutRestorePointCollection,
        (["restorepointcollections"], true, &M::GET) => GetRestorePointCollection,
        (["restorepointcollections"], true, &M::DELETE) => DeleteRestorePointCollection,
        (["restorepointcollections"], false, &M::GET) => ListRestorePointCollections,
        (["restorepointcollections", "restorepoints"], true, &M::PUT) => PutRestorePoint,
        (["restorepointcollections", "restorepoints"], true, &M::GET) => GetRestorePoint,
        (["restorepointcollections", "restorepoints"], true, &M::DELETE) => DeleteRestorePoint,
        (["restorepointcollections", "restorepoints", "diskrestorepoints"], true, &M::GET) => {
            GetDiskRestorePoint
        }
        (["restorepointcollections", "restorepoints", "diskrestorepoints"], false, &M::GET) => {
            ListDiskRestorePoints
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

    const G: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute";

    /// Every route declares the action ARM derives from its path, and is a
    /// list exactly when ARM treats the request as one.
    #[test]
    fn declared_actions_are_arms() {
        use Method as M;
        let vm = format!("{G}/virtualMachines/web");
        let rpc = format!("{G}/restorePointCollections/c");
        let rp = format!("{rpc}/restorePoints/p");
        let mut cases: Vec<(Method, String)> = vec![];
        for kind in ["disks", "snapshots"] {
            let d = format!("{G}/{kind}/d");
            cases.extend([
                (M::PUT, d.clone()),
                (M::PATCH, d.clone()),
                (M::GET, d.clone()),
                (M::DELETE, d.clone()),
                (M::GET, format!("{G}/{kind}")),
                (M::POST, format!("{d}/beginGetAccess")),
                (M::POST, format!("{d}/endGetAccess")),
            ]);
        }
        for verb in ["start", "powerOff", "restart", "deallocate"] {
            cases.push((M::POST, format!("{vm}/{verb}")));
        }
        cases.extend([
            (M::GET, format!("{vm}/instanceView")),
            (M::POST, format!("{vm}/attachDetachDataDisks")),
            (M::PUT, vm.clone()),
            (M::PATCH, vm.clone()),
            (M::GET, vm.clone()),
            (M::DELETE, vm.clone()),
            (M::GET, format!("{G}/virtualMachines")),
            (M::PUT, format!("{G}/availabilitySets/a")),
            (M::PATCH, format!("{G}/availabilitySets/a")),
            (M::GET, format!("{G}/availabilitySets/a")),
            (M::DELETE, format!("{G}/availabilitySets/a")),
            (M::GET, format!("{G}/availabilitySets")),
            (M::PUT, rpc.clone()),
            (M::GET, rpc.clone()),
            (M::DELETE, rpc.clone()),
            (M::GET, format!("{G}/restorePointCollections")),
            (M::PUT, rp.clone()),
            (M::GET, rp.clone()),
            (M::DELETE, rp.clone()),
            (M::GET, format!("{rp}/diskRestorePoints/d")),
            (M::GET, format!("{rp}/diskRestorePoints")),
        ]);
        let seen = assert_declared_actions(&crate::ComputeProvider::info_of(), &cases, parse);
        assert_eq!(seen.len(), 39, "every route is covered");
    }

    #[test]
    fn an_unknown_power_verb_is_405() {
        let e = parse(&request(
            Method::POST,
            &format!("{G}/virtualMachines/web/explode"),
        ));
        assert_eq!(e.unwrap_err().status, 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The parser never panics, whatever the path under the namespace.
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,7}", m in 0..6u8) {
            parse_any(G, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
