//! Microsoft.Compute: managed disks (bytes in sparse files, exported over
//! NBD), virtual machines and availability sets.

pub mod access;
pub mod disks;
pub mod images;
pub mod power;
pub mod restore_points;
pub mod vms;

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType};
use recoverite_blockstore::BlockStore;

pub const NAMESPACE: &str = "Microsoft.Compute";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    [
        "disks",
        "snapshots",
        "virtualMachines",
        "availabilitySets",
        "restorePointCollections"
    ]
);

fn disk_kind(kind: &str) -> &'static str {
    if kind == "snapshots" {
        disks::SNAPSHOT_TYPE
    } else {
        disks::DISK_TYPE
    }
}

pub struct ComputeProvider {
    pub blocks: BlockStore,
}

impl Provider for ComputeProvider {
    fn info(&self) -> ProviderInfo {
        let t = |name, api_versions| ResourceType {
            name,
            api_versions,
            global: false,
        };
        ProviderInfo {
            namespace: NAMESPACE,
            resource_types: vec![
                t("disks", API.versions("disks")),
                t("snapshots", API.versions("snapshots")),
                t("virtualMachines", API.versions("virtualMachines")),
                t(
                    "virtualMachines/instanceView",
                    API.versions("virtualMachines"),
                ),
                t("availabilitySets", API.versions("availabilitySets")),
                t(
                    "restorePointCollections",
                    API.versions("restorePointCollections"),
                ),
                t(
                    "restorePointCollections/restorePoints",
                    API.versions("restorePointCollections"),
                ),
                t(
                    "restorePointCollections/restorePoints/diskRestorePoints",
                    API.versions("restorePointCollections"),
                ),
            ],
            requires_registration: true,
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let kind = p.types[0].to_ascii_lowercase();
        use Method as M;
        match (
            kind.as_str(),
            p.types.len(),
            p.is_resource(),
            req.method.clone(),
        ) {
            ("disks" | "snapshots", 1, true, M::PUT | M::PATCH) => disks::put(
                ctx,
                req,
                &self.blocks,
                req.method == M::PATCH,
                disk_kind(&kind),
            ),
            ("disks" | "snapshots", 1, true, M::GET) => disks::get(ctx, req, disk_kind(&kind)),
            ("disks" | "snapshots", 1, true, M::DELETE) => disks::delete(ctx, req, &self.blocks),
            ("disks" | "snapshots", 1, false, M::GET) => disks::list(ctx, req, disk_kind(&kind)),
            ("disks" | "snapshots", 2, false, M::POST)
                if p.types[1].eq_ignore_ascii_case("beginGetAccess") =>
            {
                access::grant(ctx, req)
            }
            ("disks" | "snapshots", 2, false, M::POST)
                if p.types[1].eq_ignore_ascii_case("endGetAccess") =>
            {
                access::revoke(ctx, req)
            }
            ("virtualmachines", 2, false, M::POST) => vms::power(ctx, req),
            ("virtualmachines", 2, false, M::GET)
                if p.types[1].eq_ignore_ascii_case("instanceView") =>
            {
                vms::instance_view(ctx, req)
            }
            ("virtualmachines", 1, true, M::PUT) => vms::put(ctx, req, &self.blocks),
            ("virtualmachines", 1, true, M::GET) => vms::get(ctx, req),
            ("virtualmachines", 1, true, M::PATCH) => vms::patch(ctx, req, &self.blocks),
            ("virtualmachines", 1, true, M::DELETE) => vms::delete(ctx, req),
            ("virtualmachines", 1, false, M::GET) => vms::list(ctx, req),
            ("availabilitysets", 1, true, M::PUT) => vms::put_set(ctx, req),
            ("availabilitysets", 1, true, M::GET) => vms::get_set(ctx, req),
            ("availabilitysets", 1, true, M::PATCH) => vms::patch_set(ctx, req),
            ("availabilitysets", 1, true, M::DELETE) => vms::delete_set(ctx, req),
            ("restorepointcollections", 1, true, M::PUT | M::PATCH) => {
                restore_points::put_collection(ctx, req)
            }
            ("restorepointcollections", 1, true, M::GET) => {
                restore_points::get_collection(ctx, req)
            }
            ("restorepointcollections", 1, true, M::DELETE) => {
                restore_points::delete_collection(ctx, req, &self.blocks)
            }
            ("restorepointcollections", 1, false, M::GET) => {
                restore_points::list_collections(ctx, req)
            }
            ("restorepointcollections", 2, true, M::PUT) => {
                restore_points::put_point(ctx, req, &self.blocks)
            }
            ("restorepointcollections", 2, true, M::GET) => restore_points::get_point(ctx, req),
            ("restorepointcollections", 2, true, M::DELETE) => {
                restore_points::delete_point(ctx, req, &self.blocks)
            }
            ("restorepointcollections", 3, true, M::GET) => {
                restore_points::get_disk_point(ctx, req)
            }
            ("restorepointcollections", 3, false, M::GET) => {
                restore_points::list_disk_points(ctx, req)
            }
            ("availabilitysets", 1, false, M::GET) => vms::list_sets(ctx, req),
            (_, _, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}
