//! Containers as one record of existence shared by both planes: the data
//! plane (`PUT ?restype=container`) and the management plane (ARM's
//! `blobServices/default/containers`) create, list and delete the same
//! marker objects, so a container made through either is seen by both.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};

use crate::worm::ContainerState;
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

/// The container's state (legal holds, policy, lease) from its marker; a
/// marker written before state was kept is an empty state.
pub(crate) async fn state(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
) -> Result<ContainerState, BlobError> {
    let got = store.get(&marker(account, c)).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => BlobError::new(
            404,
            "ContainerNotFound",
            "The specified container does not exist.",
        ),
        e => internal(e),
    })?;
    let bytes = got.bytes().await.map_err(internal)?;
    if bytes.is_empty() {
        return Ok(ContainerState::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        BlobError::new(
            500,
            "InternalError",
            format!("container state unreadable: {e}"),
        )
    })
}

pub(crate) async fn put_state(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
    st: &ContainerState,
) -> Result<(), BlobError> {
    let bytes =
        serde_json::to_vec(st).map_err(|e| BlobError::new(500, "InternalError", e.to_string()))?;
    store
        .put(&marker(account, c), PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(internal)
}

/// How many blobs of the container its policy still protects at `now`.
pub(crate) async fn protected_blobs(
    store: &dyn ObjectStore,
    account: &str,
    c: &str,
    st: &ContainerState,
    now: time::OffsetDateTime,
) -> Result<usize, BlobError> {
    if st.policy.is_none() {
        return Ok(0);
    }
    let prefix = ObjPath::from(format!("{account}/{c}"));
    let written: Vec<_> = store
        .list(Some(&prefix))
        .map_ok(|m| m.last_modified)
        .try_collect()
        .await
        .map_err(internal)?;
    Ok(written
        .into_iter()
        .filter_map(|w| time::OffsetDateTime::from_unix_timestamp(w.timestamp()).ok())
        .filter(|w| st.protects_until(*w).is_some_and(|u| now < u))
        .count())
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
    lock: Arc<std::sync::Mutex<()>>,
}

impl Containers {
    pub fn new(store: Arc<dyn ObjectStore>, handle: tokio::runtime::Handle) -> Containers {
        Containers {
            store,
            handle,
            lock: Arc::default(),
        }
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

    pub fn state(&self, account: &str, c: &str) -> Result<ContainerState, BlobError> {
        self.handle.block_on(state(self.store.as_ref(), account, c))
    }

    /// Changes the container's state under one lock, so two management
    /// calls never lose each other's change.
    pub fn update_state<T>(
        &self,
        account: &str,
        c: &str,
        f: impl FnOnce(&mut ContainerState) -> Result<T, BlobError>,
    ) -> Result<T, BlobError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = self.state(account, c)?;
        let out = f(&mut st)?;
        self.handle
            .block_on(put_state(self.store.as_ref(), account, c, &st))?;
        Ok(out)
    }

    /// Deletes the container unless its state forbids it (legal hold, blobs
    /// its policy still protects, a lease held without `lease_id`).
    pub fn delete_checked(
        &self,
        account: &str,
        c: &str,
        lease_id: Option<&str>,
        now: time::OffsetDateTime,
    ) -> Result<(), BlobError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.handle.block_on(async {
            let st = state(self.store.as_ref(), account, c).await?;
            let n = protected_blobs(self.store.as_ref(), account, c, &st, now).await?;
            st.check_container_delete(lease_id, n, now)?;
            delete(self.store.as_ref(), account, c).await
        })
    }

    /// Whether any container of the account still holds data it must keep
    /// (a legal hold, or blobs under a locked policy): the account cannot
    /// be deleted then.
    pub fn keeping(
        &self,
        account: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<String>, BlobError> {
        self.handle.block_on(async {
            for c in list(self.store.as_ref(), account).await? {
                let st = state(self.store.as_ref(), account, &c).await?;
                let locked = st.policy.as_ref().is_some_and(|p| p.locked);
                let kept = st.has_legal_hold()
                    || (locked
                        && protected_blobs(self.store.as_ref(), account, &c, &st, now).await? > 0);
                if kept {
                    return Ok(Some(c));
                }
            }
            Ok(None)
        })
    }
}
