//! Microsoft.Compute: managed disks (bytes in sparse files, exported over
//! NBD), virtual machines and availability sets.

pub mod disks;
pub mod vms;

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply, ResourceType};
use recoverite_blockstore::BlockStore;

pub const NAMESPACE: &str = "Microsoft.Compute";
pub const VM_API: &[&str] = &[
    "2019-07-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    "2026-04-01",
];
pub const DISK_API: &[&str] = &[
    "2019-07-01",
    "2020-12-01",
    "2021-04-01",
    "2021-12-01",
    "2022-03-02",
    "2022-07-02",
    "2023-01-02",
    "2023-04-02",
    "2023-10-02",
    "2024-03-02",
    "2025-01-02",
    "2026-03-02",
];

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
                t("disks", DISK_API),
                t("virtualMachines", VM_API),
                t("availabilitySets", VM_API),
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
            ("disks", 1, true, M::PUT) => disks::put(ctx, req, &self.blocks, false),
            ("disks", 1, true, M::PATCH) => disks::put(ctx, req, &self.blocks, true),
            ("disks", 1, true, M::GET) => disks::get(ctx, req),
            ("disks", 1, true, M::DELETE) => disks::delete(ctx, req, &self.blocks),
            ("disks", 1, false, M::GET) => disks::list(ctx, req),
            ("virtualmachines", 1, true, M::PUT) => vms::put(ctx, req, &self.blocks),
            ("virtualmachines", 1, true, M::GET) => vms::get(ctx, req),
            ("virtualmachines", 1, true, M::PATCH) => vms::patch(ctx, req, &self.blocks),
            ("virtualmachines", 1, true, M::DELETE) => vms::delete(ctx, req),
            ("virtualmachines", 1, false, M::GET) => vms::list(ctx, req),
            ("availabilitysets", 1, true, M::PUT) => vms::put_set(ctx, req),
            ("availabilitysets", 1, true, M::GET) => vms::get_set(ctx, req),
            ("availabilitysets", 1, true, M::DELETE) => vms::delete_set(ctx, req),
            ("availabilitysets", 1, false, M::GET) => vms::list_sets(ctx, req),
            (_, _, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}
