//! First-start state: the tenant, the subscription, and a bootstrap service
//! principal that is Owner of the subscription. Kept in the store so a
//! restart finds the same ids and credentials.

use serde::{Deserialize, Serialize};

use recoverite_arm::tenancy;
use recoverite_arm::{ArmError, ProviderInfo};
use recoverite_identity::authorization_provider::assign;
use recoverite_identity::principals;
use recoverite_store::{Reader, Store, Table};

pub const META: Table = Table("meta");
const BOOTSTRAP_KEY: &str = "bootstrap";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    pub tenant_id: String,
    pub subscription_id: String,
    pub client_id: String,
    /// The bootstrap principal's secret is a well-known dev credential of this
    /// data directory (like Azurite's account key), so it is kept to be shown.
    pub client_secret: String,
    pub object_id: String,
}

pub fn load_or_create(store: &Store, catalog: &[ProviderInfo]) -> Result<Bootstrap, ArmError> {
    if let Some(b) = store.read(|r| r.get_json::<Bootstrap>(META, BOOTSTRAP_KEY))? {
        store.write(|tx| {
            ensure_tenancy(tx, &b)?;
            // Namespaces added by a newer recoverite start out registered, as
            // the ones present at first start did, in every subscription
            // (one created offline by `recoverite subscription create` too);
            // an explicit unregister is kept.
            for s in tenancy::subscriptions(tx)? {
                let sub = s.subscription_id;
                let unseen: Vec<ProviderInfo> = catalog
                    .iter()
                    .filter(|i| {
                        matches!(
                            recoverite_arm::registration::get(tx, &sub, i.namespace),
                            Ok(None)
                        )
                    })
                    .cloned()
                    .collect();
                recoverite_rp_resources::register_all(tx, &sub, &unseen)?;
            }
            Ok::<_, ArmError>(())
        })?;
        return Ok(b);
    }
    store.write(|tx| {
        let tenant_id = uuid::Uuid::new_v4().to_string();
        let subscription_id = uuid::Uuid::new_v4().to_string();
        let (p, secret) = principals::create_service_principal(tx, "recoverite-bootstrap")?;
        assign(
            tx,
            "Owner",
            &p.object_id,
            &format!("/subscriptions/{subscription_id}"),
            &p.object_id,
        )?;
        recoverite_rp_resources::register_all(tx, &subscription_id, catalog)?;
        let b = Bootstrap {
            tenant_id,
            subscription_id,
            client_id: p.app_id.clone(),
            client_secret: secret,
            object_id: p.object_id.clone(),
        };
        tx.put_json(META, BOOTSTRAP_KEY, &b)?;
        ensure_tenancy(tx, &b)?;
        Ok(b)
    })
}

/// The tenant record (the bootstrap principal owns its billing account, so it
/// may create subscriptions) and the first subscription's record. Data
/// directories from before subscriptions were state get them here.
fn ensure_tenancy(tx: &mut recoverite_store::WriteTx, b: &Bootstrap) -> Result<(), ArmError> {
    // The bootstrap principal administers the directory's applications
    // (Microsoft Graph), as the tenant's first administrator does.
    recoverite_identity::graph::grant_app_admin(tx, &b.object_id)?;
    if tenancy::tenant(tx)?.is_none() {
        tenancy::save_tenant(
            tx,
            &tenancy::Tenant {
                tenant_id: b.tenant_id.clone(),
                billing_owners: vec![b.object_id.clone()],
            },
        )?;
    }
    if tenancy::subscription(tx, &b.subscription_id)?.is_none() {
        tenancy::save_subscription(
            tx,
            &tenancy::Subscription {
                subscription_id: b.subscription_id.clone(),
                display_name: "recoverite".into(),
                state: "Enabled".into(),
                management_group: None,
                created_at: recoverite_arm::time::now_string(),
            },
        )?;
    }
    Ok(())
}
