//! The tenant hierarchy: new subscriptions (`Microsoft.Subscription/aliases`,
//! as `azure-mgmt-subscription` and `az account alias` create them) and the
//! management-group tree above them (`Microsoft.Management`), whose role
//! assignments reach every subscription beneath a group.

pub mod aliases;
pub mod groups;

use recoverite_arm::tenancy::{self, Subscription};
use recoverite_arm::{time, ArmError, ProviderInfo};
use recoverite_identity::authorization_provider::assign;
use recoverite_store::WriteTx;

pub use aliases::SubscriptionProvider;
pub use groups::ManagementProvider;

/// Creates a subscription in the tenant: its record, and Owner for `owner`
/// at its scope (Azure makes the creator the subscription's owner). With
/// `catalog`, it also registers every namespace there, as the first
/// subscription has them (a data directory written offline is completed
/// by the server's start-up reconciliation instead).
pub fn create_subscription(
    tx: &mut WriteTx,
    display_name: &str,
    owner: &str,
    group: Option<&str>,
    catalog: Option<&[ProviderInfo]>,
) -> Result<Subscription, ArmError> {
    tenancy::check_display_name(display_name)?;
    let tenant = tenancy::tenant(tx)?
        .ok_or_else(|| ArmError::internal("the tenant was never initialised"))?;
    let management_group = match group {
        None => None,
        Some(g) if g.eq_ignore_ascii_case(&tenant.tenant_id) => None,
        Some(g) => Some(
            tenancy::group(tx, g)?
                .ok_or_else(|| tenancy::TenancyError::GroupNotFound(g.to_string()))?
                .name,
        ),
    };
    let s = Subscription {
        subscription_id: uuid::Uuid::new_v4().to_string(),
        display_name: display_name.to_string(),
        state: "Enabled".into(),
        management_group,
        created_at: time::now_string(),
    };
    tenancy::save_subscription(tx, &s)?;
    assign(
        tx,
        "Owner",
        owner,
        &format!("/subscriptions/{}", s.subscription_id),
        owner,
    )?;
    if let Some(catalog) = catalog {
        recoverite_rp_resources::register_all(tx, &s.subscription_id, catalog)?;
    }
    Ok(s)
}

/// The management-group name a body's `…/managementGroups/{name}` id names.
pub(crate) fn group_name_of_id(id: &str) -> Result<String, ArmError> {
    tenancy::group_of_scope(id).ok_or_else(|| {
        ArmError::bad_request(
            "InvalidManagementGroupId",
            format!("'{id}' is not a management group id; use /providers/Microsoft.Management/managementGroups/{{name}}."),
        )
    })
}

/// What this crate brings to the server: subscriptions (aliases) and
/// management groups.
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-management")
        .provider(recoverite_arm::Routes(SubscriptionProvider))
        .provider(recoverite_arm::Routes(ManagementProvider))
}
