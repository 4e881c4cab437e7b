//! Containers as one record of existence shared by both planes: the data
//! plane (`PUT ?restype=container`) and the management plane (ARM's
//! `blobServices/default/containers`) create, list and delete the same
//! marker objects, so a container made through either is seen by both.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};

use crate::{internal, BlobError};

pub(crate) fn marker(account: &str, c: &str) -> ObjPath {
    ObjPath::from(format!("{account}/$containers/{c}"))
}

pub(crate) async fn exists(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
) -> Result<bool, BlobError> {
    match store.head(&marker(account, c)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(internal(e)),
    }
}

pub(crate) async fn create(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
) -> Result<(), BlobError> {
    store
        .put(&marker(account, c), PutPayload::from_static(b""))
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Deletes the container's blobs, then its marker: a crash in between
/// leaves an empty container, never blobs of a container that is gone.
pub(crate) async fn delete(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
) -> Result<(), BlobError> {
    let prefix = ObjPath::from(format!("{account}/{c}"));
    let names: Vec<_> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(internal)?;
    for n in names {
        store.delete(&n).await.map_err(internal)?;
    }
    match store.delete(&marker(account, c)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(internal(e)),
    }
}

pub(crate) async fn list(store: &dyn ObjectStore, account: &str) -> Result<Vec<String>, BlobError> {
    let prefix = ObjPath::from(format!("{account}/$containers"));
    let mut names: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
        .try_collect()
        .await
        .map_err(internal)?;
    names.sort();
    Ok(names)
}

/// The same operations for synchronous callers (ARM providers run on
/// blocking threads), on the server's runtime.
#[derive(Clone)]
pub struct Containers {
    store: Arc<dyn ObjectStore>,
    handle: tokio::runtime::Handle,
}

impl Containers {
    pub fn new(store: Arc<dyn ObjectStore>, handle: tokio::runtime::Handle) -> Containers {
        Containers { store, handle }
    }

    pub fn exists(&self, account: &str, c: &str) -> Result<bool, BlobError> {
        self.handle
            .block_on(exists(self.store.as_ref(), account, c))
    }

    pub fn create(&self, account: &str, c: &str) -> Result<(), BlobError> {
        self.handle
            .block_on(create(self.store.as_ref(), account, c))
    }

    pub fn delete(&self, account: &str, c: &str) -> Result<(), BlobError> {
        self.handle
            .block_on(delete(self.store.as_ref(), account, c))
    }

    pub fn list(&self, account: &str) -> Result<Vec<String>, BlobError> {
        self.handle.block_on(list(self.store.as_ref(), account))
    }
}
