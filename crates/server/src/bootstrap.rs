//! First-start state: the tenant, the subscription, and a bootstrap service
//! principal that is Owner of the subscription. Kept in the store so a
//! restart finds the same ids and credentials.

use serde::{Deserialize, Serialize};

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
        // Namespaces added by a newer recoverite start out registered, as the
        // ones present at first start did; an explicit unregister is kept.
        store.write(|tx| {
            let unseen: Vec<ProviderInfo> = catalog
                .iter()
                .filter(|i| {
                    matches!(
                        recoverite_arm::registration::get(tx, &b.subscription_id, i.namespace),
                        Ok(None)
                    )
                })
                .cloned()
                .collect();
            recoverite_rp_resources::register_all(tx, &b.subscription_id, &unseen)
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
        Ok(b)
    })
}
