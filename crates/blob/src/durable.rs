//! Local files whose puts are durable when they return: a Blob service that
//! answers `201 Created` has the bytes on stable storage (Azure's contract),
//! and the replication agent moves its cursor past a batch only after that
//! answer. `LocalFileSystem` alone writes a temporary file and renames it
//! without syncing either, so a power cut could keep the cursor and lose
//! the batch.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

#[derive(Debug)]
pub struct DurableLocal {
    inner: LocalFileSystem,
}

impl DurableLocal {
    pub fn new_with_prefix(dir: impl AsRef<std::path::Path>) -> Result<DurableLocal> {
        Ok(DurableLocal {
            inner: LocalFileSystem::new_with_prefix(dir)?,
        })
    }

    /// Syncs the file behind `location` and the directory that names it.
    async fn sync(&self, location: &Path) -> Result<()> {
        let file: PathBuf = self.inner.path_to_filesystem(location)?;
        tokio::task::spawn_blocking(move || sync_file_and_dir(&file))
            .await
            .map_err(|e| generic(e.to_string()))?
            .map_err(|e| generic(e.to_string()))
    }
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "DurableLocal",
        source: message.into(),
    }
}

fn sync_file_and_dir(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocal({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(r)
    }

    /// Multipart uploads are not used by the Blob service (a Put Block is a
    /// put of its own); they are passed through unsynced.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await?;
        self.sync(to).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to).await?;
        self.sync(to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await?;
        self.sync(to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn puts_land_as_files_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let s = DurableLocal::new_with_prefix(d.path()).unwrap();
        let p = Path::from("acct/c/batch-1");
        s.put(&p, PutPayload::from_static(b"bytes")).await.unwrap();
        assert_eq!(
            std::fs::read(d.path().join("acct/c/batch-1")).unwrap(),
            b"bytes"
        );
        let got = s.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"bytes");
        s.copy(&p, &Path::from("acct/c/batch-2")).await.unwrap();
        assert!(d.path().join("acct/c/batch-2").exists());
    }
}
