//! Microsoft.Compute: managed disks (bytes in sparse files, exported over
//! NBD), virtual machines and availability sets.

pub mod access;
pub mod availability_sets;
pub mod disks;
pub mod images;
pub mod machine;
pub mod managed_disk;
pub mod power;
pub mod restore_points;
pub mod route;
pub mod view;
pub mod vms;

use availability_sets::AvailabilitySet;
use recoverite_arm::tracked;
use recoverite_arm::{ArmError, ArmRequest, Ctx, Endpoints, ProviderInfo, Reply, ResourceType};
use recoverite_blockstore::BlockStore;
pub use route::{DiskKind, Route};

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

fn disk_type(kind: DiskKind) -> &'static str {
    match kind {
        DiskKind::Snapshot => disks::SNAPSHOT_TYPE,
        DiskKind::Disk => disks::DISK_TYPE,
    }
}

pub struct ComputeProvider {
    pub blocks: BlockStore,
}

impl ComputeProvider {
    fn info_of() -> ProviderInfo {
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
}

impl Endpoints for ComputeProvider {
    type Endpoint = Route;

    fn info(&self) -> ProviderInfo {
        Self::info_of()
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route::parse(req)
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Route) -> Result<Reply, ArmError> {
        let blocks = &self.blocks;
        use Route::*;
        match route {
            PutDisk(k) => disks::put(ctx, req, blocks, false, disk_type(k)),
            PatchDisk(k) => disks::put(ctx, req, blocks, true, disk_type(k)),
            GetDisk(k) => disks::get(ctx, req, disk_type(k)),
            DeleteDisk(k) => disks::delete(ctx, req, blocks, disk_type(k)),
            ListDisks(k) => disks::list(ctx, req, disk_type(k)),
            GrantAccess(_) => access::grant(ctx, req),
            RevokeAccess(_) => access::revoke(ctx, req),
            Power(action) => vms::power(ctx, req, action),
            InstanceView => vms::instance_view(ctx, req),
            AttachDetachDataDisks => vms::attach_detach(ctx, req, &self.blocks),
            PutVm => vms::put(ctx, req, blocks),
            PatchVm => vms::patch(ctx, req, blocks),
            GetVm => vms::get(ctx, req),
            DeleteVm => vms::delete(ctx, req),
            ListVms => vms::list(ctx, req),
            PutAvailabilitySet => tracked::put::<AvailabilitySet>(ctx, req, false),
            PatchAvailabilitySet => tracked::put::<AvailabilitySet>(ctx, req, true),
            GetAvailabilitySet => tracked::get::<AvailabilitySet>(ctx, req),
            DeleteAvailabilitySet => tracked::delete::<AvailabilitySet>(ctx, req),
            ListAvailabilitySets => tracked::list::<AvailabilitySet>(ctx, req),
            PutRestorePointCollection => restore_points::put_collection(ctx, req),
            GetRestorePointCollection => restore_points::get_collection(ctx, req),
            DeleteRestorePointCollection => restore_points::delete_collection(ctx, req, blocks),
            ListRestorePointCollections => restore_points::list_collections(ctx, req),
            PutRestorePoint => restore_points::put_point(ctx, req, blocks),
            GetRestorePoint => restore_points::get_point(ctx, req),
            DeleteRestorePoint => restore_points::delete_point(ctx, req, blocks),
            GetDiskRestorePoint => restore_points::get_disk_point(ctx, req),
            ListDiskRestorePoints => restore_points::list_disk_points(ctx, req),
        }
    }
}

/// What this crate brings to the server: VMs, disks, snapshots and their
/// images' clean-up.
pub fn manifest(blocks: &BlockStore) -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-compute")
        .provider(ComputeProvider {
            blocks: blocks.clone(),
        })
        .cascade(recoverite_manifest::Stage::Compute, images::ImagesCascade)
}
