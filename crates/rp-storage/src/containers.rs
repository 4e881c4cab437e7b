//! Blob containers through ARM (`storageAccounts/{a}/blobServices/default/
//! containers/{c}`) and the blob service's properties. A container's
//! existence is the Blob data plane's record (a container made with the
//! Blob API is listed here, and one made here takes blobs at once); ARM
//! keeps only the container's management properties beside it.

use serde_json::{json, Value};

use recoverite_arm::{document, paging, resource, time, ArmError, ArmRequest, Ctx, Reply};

use crate::account::StorageAccount;
use crate::blob_docs::{self, BlobContainer, BlobService};
use crate::ACCOUNT_TYPE;

pub const SERVICE_TYPE: &str = "Microsoft.Storage/storageAccounts/blobServices";
pub const CONTAINER_TYPE: &str = "Microsoft.Storage/storageAccounts/blobServices/containers";

/// The Blob data plane's containers.
pub type Store = recoverite_blob::Containers;

fn blob_error(e: recoverite_blob::BlobError) -> ArmError {
    ArmError::new(e.status, &e.code, e.message)
}

/// `publicAccess`: None, Container or Blob; anything but None needs the
/// account's `allowBlobPublicAccess` ("Public access is not permitted on
/// this storage account").
pub fn check_public_access(value: &str, account_allows: bool) -> Result<&'static str, ArmError> {
    let v = match value.to_ascii_lowercase().as_str() {
        "none" => "None",
        "container" => "Container",
        "blob" => "Blob",
        _ => {
            return Err(ArmError::invalid_parameter(
                "properties.publicAccess",
                format!("publicAccess '{value}' is not valid; use None, Container or Blob."),
            ))
        }
    };
    if v != "None" && !account_allows {
        return Err(ArmError::conflict(
            "PublicAccessNotPermitted",
            "Public access is not permitted on this storage account: set allowBlobPublicAccess on the account first, or keep publicAccess None.",
        ));
    }
    Ok(v)
}

/// The account document the path names, and its name.
fn account(ctx: &Ctx, req: &ArmRequest) -> Result<(StorageAccount, String), ArmError> {
    let aid = req.path.prefix(8);
    let doc = ctx
        .store()
        .view(|r| crate::account::load(r, &aid))?
        .ok_or_else(|| {
            ArmError::resource_not_found(
                ACCOUNT_TYPE,
                aid.rsplit('/').next().unwrap_or_default(),
                req.path.resource_group.as_deref(),
            )
        })?;
    let name = doc.name.to_ascii_lowercase();
    Ok((doc, name))
}

/// The blob service is a singleton named `default`.
fn check_service(req: &ArmRequest) -> Result<String, ArmError> {
    let names = &req.provider_part()?.names;
    match names.get(1) {
        Some(n) if n.eq_ignore_ascii_case("default") => Ok(req.path.prefix(10)),
        Some(n) => Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The blob service of an account is named 'default', not '{n}'."),
        )),
        None => Ok(String::new()),
    }
}

fn service_doc(account: &StorageAccount, stored: Option<BlobService>) -> Result<Value, ArmError> {
    let properties = stored.map(|s| s.properties).unwrap_or_default();
    let mut doc = document::to_value(&BlobService {
        id: format!("{}/blobServices/default", account.id),
        name: "default".into(),
        kind: SERVICE_TYPE.into(),
        properties,
    })?;
    doc["sku"] = json!(account.sku);
    Ok(doc)
}

pub fn get_service(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (acct, _) = account(ctx, req)?;
    let sid = check_service(req)?;
    let stored = ctx.store().view(|r| blob_docs::load_service(r, &sid))?;
    Ok(Reply::ok(service_doc(&acct, stored)?))
}

pub fn list_services(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (acct, _) = account(ctx, req)?;
    let sid = format!("{}/blobServices/default", &acct.id);
    let stored = ctx.store().view(|r| blob_docs::load_service(r, &sid))?;
    Ok(Reply::ok(json!({"value": [service_doc(&acct, stored)?]})))
}

/// PUT: the service properties as given (CORS, soft-delete and versioning
/// settings are kept; the Blob plane does not act on them).
pub fn put_service(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (acct, _) = account(ctx, req)?;
    let sid = check_service(req)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let properties = blob_docs::service_properties(body.get("properties").unwrap_or(&json!({})))?;
    let service = BlobService {
        id: sid,
        name: "default".into(),
        kind: SERVICE_TYPE.into(),
        properties,
    };
    ctx.store().write(|tx| document::save(tx, &service))?;
    Ok(Reply::ok(service_doc(&acct, Some(service))?))
}

fn container_name(req: &ArmRequest) -> Result<String, ArmError> {
    let n = req
        .provider_part()?
        .names
        .get(2)
        .cloned()
        .unwrap_or_default();
    recoverite_blob::check_container_name(&n).map_err(blob_error)?;
    Ok(n)
}

fn container_doc(
    acct: &StorageAccount,
    name: &str,
    stored: Option<&BlobContainer>,
    state: &recoverite_blob::worm::ContainerState,
) -> Result<Value, ArmError> {
    let id = format!("{}/blobServices/default/containers/{name}", &acct.id);
    let mut props = json!({
        "publicAccess": "None",
        "leaseStatus": "Unlocked",
        "leaseState": "Available",
        "hasImmutabilityPolicy": false,
        "hasLegalHold": false,
        "defaultEncryptionScope": "$account-encryption-key",
        "denyEncryptionScopeOverride": false,
        "deleted": false,
        "remainingRetentionDays": 0,
        "metadata": {},
    });
    let mut etag = "\"0x8D0000000000000\"".to_string();
    if let Some(s) = stored {
        if let (Some(p), Value::Object(sp)) =
            (props.as_object_mut(), document::to_value(&s.properties)?)
        {
            p.extend(sp);
        }
        etag = s.etag.clone();
    }
    if let Some(p) = props.as_object_mut() {
        crate::worm::decorate(p, &id, state);
    }
    Ok(json!({"id": id, "name": name, "type": CONTAINER_TYPE, "etag": etag, "properties": props}))
}

/// The container a path names: (account name, container name, its ARM id).
pub fn locate(ctx: &Ctx, req: &ArmRequest) -> Result<(String, String, String), ArmError> {
    let (acct, account_name) = account(ctx, req)?;
    check_service(req)?;
    let name = container_name(req)?;
    let cid = container_id(&acct, &name);
    Ok((account_name, name, cid))
}

pub fn account_location(ctx: &Ctx, req: &ArmRequest) -> Result<String, ArmError> {
    let (acct, _) = account(ctx, req)?;
    Ok(acct.location.clone())
}

/// Whether the account's blob service keeps versions (`isVersioningEnabled`).
pub fn versioning_enabled(ctx: &Ctx, req: &ArmRequest) -> Result<bool, ArmError> {
    let sid = req.path.prefix(10);
    let stored = ctx.store().view(|r| blob_docs::load_service(r, &sid))?;
    Ok(stored.is_some_and(|s| s.properties.is_versioning_enabled))
}

fn container_id(acct: &StorageAccount, name: &str) -> String {
    format!("{}/blobServices/default/containers/{name}", &acct.id)
}

pub fn not_found() -> ArmError {
    ArmError::new(
        404,
        "ContainerNotFound",
        "The specified container does not exist.",
    )
}

/// PUT (create or update) and PATCH (update an existing one).
pub fn put_container(
    ctx: &Ctx,
    req: &ArmRequest,
    blobs: &Store,
    patch: bool,
) -> Result<Reply, ArmError> {
    let (acct, account_name) = account(ctx, req)?;
    check_service(req)?;
    let name = container_name(req)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let cid = container_id(&acct, &name);
    let existed = blobs.exists(&account_name, &name).map_err(blob_error)?;
    if patch && !existed {
        return Err(not_found());
    }
    let stored = ctx.store().view(|r| blob_docs::load_container(r, &cid))?;
    let settings = blob_docs::container_settings(
        &props,
        stored.as_ref().map(|s| &s.properties),
        existed,
        patch,
        acct.properties.allow_blob_public_access,
    )?;
    let etag = format!(
        "\"0x{:X}\"",
        time::now().unix_timestamp_nanos() as u128 & 0xFFFF_FFFF_FFFF_FFFF
    );
    // The data plane's record first: a crash after it leaves a container
    // with default properties, never properties of a container that is not.
    if !existed {
        blobs.create(&account_name, &name).map_err(blob_error)?;
    }
    let container = BlobContainer {
        id: cid,
        name: name.clone(),
        kind: CONTAINER_TYPE.into(),
        etag,
        properties: settings,
    };
    ctx.store().write(|tx| document::save(tx, &container))?;
    let state = blobs.state(&account_name, &name).map_err(blob_error)?;
    let out = container_doc(&acct, &name, Some(&container), &state)?;
    Ok(Reply::json(if existed || patch { 200 } else { 201 }, out))
}

pub fn get_container(ctx: &Ctx, req: &ArmRequest, blobs: &Store) -> Result<Reply, ArmError> {
    let (acct, account_name) = account(ctx, req)?;
    check_service(req)?;
    let name = container_name(req)?;
    if !blobs.exists(&account_name, &name).map_err(blob_error)? {
        return Err(not_found());
    }
    let stored = ctx
        .store()
        .view(|r| blob_docs::load_container(r, &container_id(&acct, &name)))?;
    let state = blobs.state(&account_name, &name).map_err(blob_error)?;
    Ok(Reply::ok(container_doc(
        &acct,
        &name,
        stored.as_ref(),
        &state,
    )?))
}

pub fn delete_container(ctx: &Ctx, req: &ArmRequest, blobs: &Store) -> Result<Reply, ArmError> {
    let (acct, account_name) = account(ctx, req)?;
    check_service(req)?;
    let name = container_name(req)?;
    if !blobs.exists(&account_name, &name).map_err(blob_error)? {
        ctx.store().write(|tx| {
            tx.delete(crate::worm::KEEPING, &format!("{account_name}/{name}"))?;
            Ok::<_, ArmError>(())
        })?;
        return Ok(Reply::empty(204));
    }
    blobs
        .delete_checked(&account_name, &name, None, time::now())
        .map_err(blob_error)?;
    let cid = container_id(&acct, &name);
    ctx.store().write(|tx| {
        tx.delete(crate::worm::KEEPING, &format!("{account_name}/{name}"))?;
        resource::delete_tree(tx, &cid).map(|_| ())
    })?;
    Ok(Reply::empty(200))
}

pub fn list_containers(ctx: &Ctx, req: &ArmRequest, blobs: &Store) -> Result<Reply, ArmError> {
    let (acct, account_name) = account(ctx, req)?;
    check_service(req)?;
    let names = blobs.list(&account_name).map_err(blob_error)?;
    let states = names
        .iter()
        .map(|n| blobs.state(&account_name, n).map_err(blob_error))
        .collect::<Result<Vec<_>, ArmError>>()?;
    let items = ctx.store().view(|r| {
        names
            .iter()
            .zip(&states)
            .map(|(n, st)| {
                container_doc(
                    &acct,
                    n,
                    blob_docs::load_container(r, &container_id(&acct, n))?.as_ref(),
                    st,
                )
            })
            .collect::<Result<Vec<_>, ArmError>>()
    })?;
    paging::page_visible(ctx, req, items)
}

/// Names of deleted accounts whose blobs are still to be purged (an outbox
/// written in the transaction that removed them).
pub const TO_PURGE: recoverite_store::Outbox =
    recoverite_store::Outbox(recoverite_store::Table("storage_accounts_to_purge"));

/// Purges the blobs of accounts recorded in `TO_PURGE` that no account of
/// that name has claimed since; returns how many records were handled.
pub fn sweep(state: &recoverite_store::Store, blobs: &Store) -> Result<usize, ArmError> {
    TO_PURGE.drain(state, |name| {
        if state
            .view(|r| crate::accounts::find_by_name(r, name))?
            .is_none()
        {
            delete_all(blobs, name)?;
        }
        Ok(true)
    })
}

/// An account whose containers still keep data (a legal hold, blobs under
/// a locked policy) cannot be deleted.
pub fn check_account_delete(blobs: &Store, account_name: &str) -> Result<(), ArmError> {
    if let Some(c) = blobs
        .keeping(account_name, time::now())
        .map_err(blob_error)?
    {
        return Err(ArmError::conflict(
            "StorageAccountOperationFailure",
            format!("Storage account '{account_name}' cannot be deleted: container '{c}' has a legal hold or a locked immutability policy still protecting blobs."),
        ));
    }
    Ok(())
}

/// Deleting an account deletes its containers' data.
pub fn delete_all(blobs: &Store, account_name: &str) -> Result<(), ArmError> {
    for c in blobs.list(account_name).map_err(blob_error)? {
        blobs.delete(account_name, &c).map_err(blob_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_access_needs_the_account_to_allow_it() {
        assert_eq!(check_public_access("none", false).unwrap(), "None");
        assert_eq!(check_public_access("Blob", true).unwrap(), "Blob");
        assert_eq!(
            check_public_access("Container", false).unwrap_err().code(),
            "PublicAccessNotPermitted"
        );
        assert_eq!(
            check_public_access("everyone", true).unwrap_err().code(),
            "InvalidParameter"
        );
    }
}
