//! Resource-provider registration per subscription.

use serde::{Deserialize, Serialize};

use recoverite_store::{Reader, Table, WriteTx};

use crate::error::ArmError;

pub const REGISTRATIONS: Table = Table("registrations");

pub const REGISTERED: &str = "Registered";
pub const NOT_REGISTERED: &str = "NotRegistered";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    pub state: String,
    /// When the namespace was last registered; some rules depend on its age.
    pub registered_at: Option<String>,
}

fn key(subscription: &str, namespace: &str) -> String {
    format!(
        "{}/{}",
        subscription.to_ascii_lowercase(),
        namespace.to_ascii_lowercase()
    )
}

pub fn get(
    r: &impl Reader,
    subscription: &str,
    namespace: &str,
) -> Result<Option<Registration>, ArmError> {
    Ok(r.get_json(REGISTRATIONS, &key(subscription, namespace))?)
}

pub fn set(
    tx: &mut WriteTx,
    subscription: &str,
    namespace: &str,
    reg: &Registration,
) -> Result<(), ArmError> {
    tx.put_json(REGISTRATIONS, &key(subscription, namespace), reg)?;
    Ok(())
}

pub fn missing(namespace: &str) -> ArmError {
    ArmError::conflict(
        "MissingSubscriptionRegistration",
        format!(
            "The subscription is not registered to use namespace '{namespace}'. See https://aka.ms/rps-not-found for how to register subscriptions."
        ),
    )
}
