//! Site Recovery's first-party principal and its ARM client: a service
//! principal created once per data directory, Contributor on the
//! subscription (as Azure's first-party app acts on the customer's behalf
//! once they enabled replication), whose calls go through the router.

use std::sync::{Arc, Weak};

use http::{HeaderValue, Method};
use serde_json::Value;

use recoverite_arm::first_party::ArmClient;
use recoverite_arm::tenancy;
use recoverite_arm::{ArmError, Router};
use recoverite_identity::authorization_provider::assign;
use recoverite_identity::{principals, TokenService};
use recoverite_store::{Reader, Store};

use crate::bootstrap::META;

const KEY: &str = "site-recovery-first-party";
pub const DISPLAY_NAME: &str = "Azure Site Recovery (recoverite first-party)";

/// The first-party principal (created on first use), Contributor on every
/// subscription of the tenant: the ones that existed before it and any made
/// offline since the last start get their assignment here.
pub fn ensure(store: &Store) -> Result<principals::Principal, ArmError> {
    let existing = match store.read(|r| r.get_json::<String>(META, KEY))? {
        Some(oid) => store.view(|r| principals::get(r, &oid))?,
        None => None,
    };
    store.write(|tx| {
        let p = match existing {
            Some(p) => p,
            None => {
                let (p, _) = principals::create_service_principal(tx, DISPLAY_NAME)?;
                tx.put_json(META, KEY, &p.object_id)?;
                p
            }
        };
        for s in tenancy::subscriptions(tx)? {
            grant(tx, &p.object_id, &s.subscription_id)?;
        }
        Ok(p)
    })
}

/// Contributor on one subscription, unless it already has it.
pub fn grant(
    tx: &mut recoverite_store::WriteTx,
    oid: &str,
    subscription: &str,
) -> Result<(), ArmError> {
    let scope = format!("/subscriptions/{subscription}");
    let contributor = recoverite_identity::roles::builtin_by_name("Contributor")
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let has = recoverite_identity::rbac::for_principal(tx, oid)?
        .iter()
        .any(|a| {
            recoverite_arm::id::key(&a.scope) == recoverite_arm::id::key(&scope)
                && a.role_guid.eq_ignore_ascii_case(&contributor)
        });
    if !has {
        assign(tx, "Contributor", oid, &scope, oid)?;
    }
    Ok(())
}

pub struct Client {
    pub router: Weak<Router>,
    pub tokens: Arc<TokenService>,
    pub principal: principals::Principal,
    pub base_url: String,
}

impl ArmClient for Client {
    fn call(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<Value>,
    ) -> Result<Value, ArmError> {
        let router = self
            .router
            .upgrade()
            .ok_or_else(|| ArmError::internal("the server is stopping"))?;
        let token = self
            .tokens
            .issue(&self.principal, "https://management.azure.com/", 600)
            .map_err(ArmError::internal)?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| ArmError::internal(e.to_string()))?;
        recoverite_arm::first_party::dispatch_with(
            &router,
            Some(auth),
            method,
            path,
            api_version,
            body,
            &self.base_url,
        )
    }
}
