//! Directory objects: service principals (apps with a client secret) and
//! managed identities (system- or user-assigned, tied to a resource).

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use recoverite_arm::{id, time, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

pub const PRINCIPALS: Table = Table("principals");
/// app (client) id → object id.
pub const BY_APP_ID: Table = Table("principals_by_app_id");
/// `{resource id key}|{system|user}` → object id.
pub const BY_RESOURCE: Table = Table("principals_by_resource");

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum PrincipalKind {
    ServicePrincipal,
    SystemAssigned,
    UserAssigned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub object_id: String,
    pub app_id: String,
    pub display_name: String,
    pub kind: PrincipalKind,
    /// The resource a managed identity belongs to.
    pub resource_id: Option<String>,
    pub secret_salt: Option<String>,
    pub secret_sha256: Option<String>,
    pub created: String,
}

impl Principal {
    pub fn principal_type(&self) -> &'static str {
        "ServicePrincipal"
    }

    pub fn verify_secret(&self, secret: &str) -> bool {
        match (&self.secret_salt, &self.secret_sha256) {
            (Some(salt), Some(hash)) => {
                constant_time_eq(hash_secret(salt, secret).as_bytes(), hash.as_bytes())
            }
            _ => false,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hash_secret(salt: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A client secret in the shape Entra issues (`xxx8Q~…`, 40 characters).
pub fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut rng = rand::thread_rng();
    let body: String = (0..36)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}8Q~{}", &body[..3], &body[3..])
}

/// Creates a service principal; returns it with its one-time secret.
pub fn create_service_principal(
    tx: &mut WriteTx,
    display_name: &str,
) -> Result<(Principal, String), ArmError> {
    let secret = new_secret();
    let salt = uuid::Uuid::new_v4().to_string();
    let p = Principal {
        object_id: uuid::Uuid::new_v4().to_string(),
        app_id: uuid::Uuid::new_v4().to_string(),
        display_name: display_name.to_string(),
        kind: PrincipalKind::ServicePrincipal,
        resource_id: None,
        secret_sha256: Some(hash_secret(&salt, &secret)),
        secret_salt: Some(salt),
        created: time::now_string(),
    };
    save(tx, &p)?;
    Ok((p, secret))
}

fn resource_key(resource_id: &str, kind: PrincipalKind) -> String {
    let k = match kind {
        PrincipalKind::UserAssigned => "user",
        _ => "system",
    };
    format!("{}|{k}", id::key(resource_id))
}

/// Creates the managed identity of a resource (idempotent: returns the existing one).
pub fn ensure_managed_identity(
    tx: &mut WriteTx,
    resource_id: &str,
    kind: PrincipalKind,
) -> Result<Principal, ArmError> {
    if let Some(p) = for_resource(tx, resource_id, kind)? {
        return Ok(p);
    }
    let display = resource_id
        .rsplit('/')
        .next()
        .unwrap_or(resource_id)
        .to_string();
    let p = Principal {
        object_id: uuid::Uuid::new_v4().to_string(),
        app_id: uuid::Uuid::new_v4().to_string(),
        display_name: display,
        kind,
        resource_id: Some(resource_id.to_string()),
        secret_salt: None,
        secret_sha256: None,
        created: time::now_string(),
    };
    save(tx, &p)?;
    tx.put(
        BY_RESOURCE,
        &resource_key(resource_id, kind),
        p.object_id.as_bytes(),
    )?;
    Ok(p)
}

pub fn for_resource(
    r: &impl Reader,
    resource_id: &str,
    kind: PrincipalKind,
) -> Result<Option<Principal>, ArmError> {
    match r.get(BY_RESOURCE, &resource_key(resource_id, kind))? {
        Some(oid) => get(r, &String::from_utf8_lossy(&oid)),
        None => Ok(None),
    }
}

pub fn delete_managed_identity(
    tx: &mut WriteTx,
    resource_id: &str,
    kind: PrincipalKind,
) -> Result<(), ArmError> {
    if let Some(p) = for_resource(tx, resource_id, kind)? {
        remove(tx, &p)?;
    }
    tx.delete(BY_RESOURCE, &resource_key(resource_id, kind))?;
    Ok(())
}

/// Drops every managed identity of resources inside `scope`.
pub fn delete_under_scope(tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
    let k = id::key(scope);
    for prefix in [format!("{k}|"), format!("{k}/")] {
        for (key, oid) in tx.scan_prefix(BY_RESOURCE, &prefix)? {
            if let Some(p) = get(tx, &String::from_utf8_lossy(&oid))? {
                remove(tx, &p)?;
            }
            tx.delete(BY_RESOURCE, &key)?;
        }
    }
    Ok(())
}

fn save(tx: &mut WriteTx, p: &Principal) -> Result<(), ArmError> {
    tx.put_json(PRINCIPALS, &p.object_id, p)?;
    tx.put(
        BY_APP_ID,
        &p.app_id.to_ascii_lowercase(),
        p.object_id.as_bytes(),
    )?;
    Ok(())
}

fn remove(tx: &mut WriteTx, p: &Principal) -> Result<(), ArmError> {
    tx.delete(PRINCIPALS, &p.object_id)?;
    tx.delete(BY_APP_ID, &p.app_id.to_ascii_lowercase())?;
    Ok(())
}

pub fn get(r: &impl Reader, object_id: &str) -> Result<Option<Principal>, ArmError> {
    Ok(r.get_json(PRINCIPALS, &object_id.to_ascii_lowercase())?)
}

pub fn by_app_id(r: &impl Reader, app_id: &str) -> Result<Option<Principal>, ArmError> {
    match r.get(BY_APP_ID, &app_id.to_ascii_lowercase())? {
        Some(oid) => get(r, &String::from_utf8_lossy(&oid)),
        None => Ok(None),
    }
}

/// Every principal (service principals and managed identities).
pub fn all(r: &impl Reader) -> Result<Vec<Principal>, ArmError> {
    Ok(r.scan_json::<Principal>(PRINCIPALS, "")?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// A new client secret for a service principal (the old one stops working).
pub fn reset_secret(tx: &mut WriteTx, object_id: &str) -> Result<String, ArmError> {
    let mut p = get(tx, object_id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "PrincipalNotFound",
            format!("Principal {object_id} does not exist."),
        )
    })?;
    let secret = new_secret();
    let salt = uuid::Uuid::new_v4().to_string();
    p.secret_sha256 = Some(hash_secret(&salt, &secret));
    p.secret_salt = Some(salt);
    save(tx, &p)?;
    Ok(secret)
}

/// Takes a service principal's secret away: it cannot sign in until it gets one.
pub fn clear_secret(tx: &mut WriteTx, object_id: &str) -> Result<(), ArmError> {
    if let Some(mut p) = get(tx, object_id)? {
        p.secret_salt = None;
        p.secret_sha256 = None;
        save(tx, &p)?;
    }
    Ok(())
}

/// Deletes a service principal (not a managed identity: those go with their resource).
pub fn remove_service_principal(tx: &mut WriteTx, object_id: &str) -> Result<(), ArmError> {
    if let Some(p) = get(tx, object_id)?.filter(|p| p.kind == PrincipalKind::ServicePrincipal) {
        remove(tx, &p)?;
    }
    Ok(())
}
