//! Storage account access keys: two 512-bit keys per account, listed with
//! `listKeys` (which needs `storageAccounts/listkeys/action`), replaced one
//! at a time with `regenerateKey`, and accepted by the Blob service for
//! Shared Key requests while the account allows shared key access.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{id, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table, WriteTx};

/// Account id (case-folded) → its keys. Kept apart from the account
/// document, which any reader of the account may GET.
pub const KEYS: Table = Table("storage_keys");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountKey {
    pub name: String,
    pub value: String,
    pub created: String,
}

fn new_key(name: &str) -> AccountKey {
    let mut bytes = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut bytes);
    AccountKey {
        name: name.to_string(),
        value: base64::engine::general_purpose::STANDARD.encode(bytes),
        created: time::now_string(),
    }
}

/// The account's keys, made on first use.
pub fn ensure(tx: &mut WriteTx, account_id: &str) -> Result<Vec<AccountKey>, ArmError> {
    if let Some(k) = tx.get_json::<Vec<AccountKey>>(KEYS, &id::key(account_id))? {
        return Ok(k);
    }
    let keys = vec![new_key("key1"), new_key("key2")];
    tx.put_json(KEYS, &id::key(account_id), &keys)?;
    Ok(keys)
}

/// The keys, if any were made yet (Shared Key requests before anyone listed
/// them cannot be signed with them anyway).
pub fn of(r: &impl Reader, account_id: &str) -> Result<Vec<AccountKey>, ArmError> {
    Ok(r.get_json(KEYS, &id::key(account_id))?.unwrap_or_default())
}

/// Deleting an account, or the group or subscription holding it, deletes
/// its keys in the same transaction.
pub struct KeysCascade;

impl recoverite_arm::ScopeCascade for KeysCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        let prefix = id::key(scope);
        for (k, _) in tx.scan_prefix(KEYS, &prefix)? {
            if id::scope_contains(scope, &k) {
                tx.delete(KEYS, &k)?;
            }
        }
        Ok(())
    }

    /// The blobs of accounts in a deleted scope are purged after the commit
    /// (`crate::containers::sweep`).
    fn scope_deleting(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        for doc in recoverite_arm::resource::list_of_type(tx, scope, crate::ACCOUNT_TYPE)? {
            if let Some(name) = doc["name"].as_str() {
                let name = name.to_ascii_lowercase();
                // An account whose containers keep data by law is not
                // deleted, and so neither is the scope holding it.
                if let Some(c) = crate::worm::keeping(tx, &name)? {
                    return Err(ArmError::conflict(
                        "StorageAccountOperationFailure",
                        format!("Storage account '{name}' cannot be deleted: container '{c}' has a legal hold or a locked immutability policy. Clear the legal hold (or wait out the policy's retention and delete the blobs and container) first."),
                    ));
                }
                crate::containers::TO_PURGE.record(tx, &name)?;
            }
        }
        Ok(())
    }
}

/// Which key `regenerateKey` replaces: `key1` or `key2` (Azure also takes
/// `kerb1`/`kerb2`, which recoverite does not serve).
pub fn regenerate_target(key_name: &str) -> Result<&'static str, ArmError> {
    match key_name.to_ascii_lowercase().as_str() {
        "key1" => Ok("key1"),
        "key2" => Ok("key2"),
        _ => Err(ArmError::invalid_parameter(
            "keyName",
            format!("'{key_name}' is not a key of the account; regenerate 'key1' or 'key2'."),
        )),
    }
}

fn render(keys: &[AccountKey]) -> Value {
    json!({"keys": keys.iter().map(|k| json!({
        "keyName": k.name, "value": k.value, "permissions": "FULL", "creationTime": k.created,
    })).collect::<Vec<_>>()})
}

pub fn account_id(ctx: &Ctx, req: &ArmRequest) -> Result<String, ArmError> {
    let aid = req.path.prefix(req.path.segments.len() - 1);
    let doc = ctx
        .store()
        .view(|r| crate::account::load(r, &aid))?
        .ok_or_else(|| {
            ArmError::resource_not_found(
                crate::ACCOUNT_TYPE,
                aid.rsplit('/').next().unwrap_or_default(),
                req.path.resource_group.as_deref(),
            )
        })?;
    Ok(doc.id)
}

/// `POST …/storageAccounts/{account}/listKeys`.
pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let aid = account_id(ctx, req)?;
    let keys = ctx.store().write(|tx| ensure(tx, &aid))?;
    Ok(Reply::ok(render(&keys)))
}

/// `POST …/storageAccounts/{account}/regenerateKey {"keyName": "key1"}`.
pub fn regenerate(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        key_name: String,
    }
    let body: Body = req.body_as()?;
    let which = regenerate_target(&body.key_name)?;
    let aid = account_id(ctx, req)?;
    let keys = ctx.store().write(|tx| {
        let mut keys = ensure(tx, &aid)?;
        for k in keys.iter_mut().filter(|k| k.name == which) {
            *k = new_key(which);
        }
        tx.put_json(KEYS, &id::key(&aid), &keys)?;
        Ok::<_, ArmError>(keys)
    })?;
    Ok(Reply::ok(render(&keys)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key1_and_key2_can_be_regenerated() {
        assert_eq!(regenerate_target("KEY1").unwrap(), "key1");
        assert_eq!(regenerate_target("key2").unwrap(), "key2");
        assert!(regenerate_target("kerb1").is_err());
    }

    #[test]
    fn keys_are_512_bits_of_base64() {
        let k = new_key("key1");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&k.value)
            .unwrap();
        assert_eq!(raw.len(), 64);
        assert_ne!(new_key("key1").value, k.value);
    }
}
