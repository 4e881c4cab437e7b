//! The state store: one redb file in the data directory.
//!
//! Every mutation runs inside one write transaction that commits only when the
//! closure returns `Ok`, so a request either changes everything it meant to or
//! nothing at all — including when the process is killed mid-request (redb's
//! commit is atomic and durable).

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A named key/value table. Keys are strings (ARM ids are lower-cased by the
/// callers so lookups are case-insensitive), values are bytes (usually JSON).
#[derive(Clone, Copy, Debug)]
pub struct Table(pub &'static str);

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Db(String),
    #[error("state store: corrupt record in {table}/{key}: {err}")]
    Corrupt {
        table: &'static str,
        key: String,
        err: String,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Bumped after every committed write, so readers can cache derived views.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        Ok(Store {
            db: Arc::new(db),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        })
    }

    /// Changes whenever a write commits.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs `f` against a consistent snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read()?;
        f(&ReadTx { tx })
    }

    /// Like [`Store::read`], for closures that fail with the caller's own error type.
    pub fn view<T, E>(
        &self,
        f: impl FnOnce(&ReadTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self.db.begin_read().map_err(StoreError::from)?;
        f(&ReadTx { tx })
    }

    /// Runs `f` in one write transaction; commits only if `f` returns `Ok`.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self.db.begin_write().map_err(StoreError::from)?;
        let mut w = WriteTx { tx };
        let out = f(&mut w)?;
        w.tx.commit().map_err(StoreError::from)?;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(out)
    }
}

/// Reading operations shared by read and write transactions.
pub trait Reader {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    fn get_json<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        match self.get(table, key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        table: table.0,
                        key: key.to_string(),
                        err: e.to_string(),
                    })
            }
        }
    }

    fn scan_json<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        self.scan_prefix(table, prefix)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| StoreError::Corrupt {
                        table: table.0,
                        key: k,
                        err: e.to_string(),
                    })
            })
            .collect()
    }
}

fn get_in<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    Ok(t.get(key)?.map(|v| v.value().to_vec()))
}

fn scan_in<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for item in t.range(prefix..)? {
        let (k, v) = item?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_string(), v.value().to_vec()));
    }
    Ok(out)
}

/// Keys to act on once the transaction that recorded them has committed (a
/// transactional outbox): work outside the store, such as freeing files,
/// that must follow a commit and survive a crash before it is done.
pub struct Outbox(pub Table);

impl Outbox {
    pub fn record(&self, tx: &mut WriteTx, key: &str) -> Result<()> {
        tx.put(self.0, key, b"")
    }

    /// Calls `act` for every recorded key; a key whose `act` answers true is
    /// removed, false keeps it for the next drain. Returns how many went.
    pub fn drain<E: From<StoreError>>(
        &self,
        store: &Store,
        mut act: impl FnMut(&str) -> std::result::Result<bool, E>,
    ) -> std::result::Result<usize, E> {
        let keys: Vec<String> = store.read(|r| {
            Ok(r.scan_prefix(self.0, "")?
                .into_iter()
                .map(|(k, _)| k)
                .collect())
        })?;
        let mut done = 0;
        for k in keys {
            if act(&k)? {
                store.write(|tx| tx.delete(self.0, &k).map(|_| ()))?;
                done += 1;
            }
        }
        Ok(done)
    }
}

pub struct ReadTx {
    tx: redb::ReadTransaction,
}

impl Reader for ReadTx {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        match self.tx.open_table(table.def()) {
            Ok(t) => get_in(&t, key),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn scan_prefix(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        match self.tx.open_table(table.def()) {
            Ok(t) => scan_in(&t, prefix),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

pub struct WriteTx {
    tx: redb::WriteTransaction,
}

impl Reader for WriteTx {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self.tx.open_table(table.def())?;
        get_in(&t, key)
    }
    fn scan_prefix(&self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self.tx.open_table(table.def())?;
        scan_in(&t, prefix)
    }
}

impl WriteTx {
    pub fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<()> {
        let mut t = self.tx.open_table(table.def())?;
        t.insert(key, value)?;
        Ok(())
    }

    pub fn put_json<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Db(e.to_string()))?;
        self.put(table, key, &bytes)
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool> {
        let mut t = self.tx.open_table(table.def())?;
        let existed = t.remove(key)?.is_some();
        Ok(existed)
    }

    /// Removes every key starting with `prefix`; returns the removed keys.
    pub fn delete_prefix(&mut self, table: Table, prefix: &str) -> Result<Vec<String>> {
        let keys: Vec<String> = self
            .scan_prefix(table, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut t = self.tx.open_table(table.def())?;
        for k in &keys {
            t.remove(k.as_str())?;
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table("t");

    #[test]
    fn an_outbox_keeps_what_was_not_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let out = Outbox(Table("out"));
        store
            .write(|tx| -> Result<()> {
                out.record(tx, "a")?;
                out.record(tx, "b")
            })
            .unwrap();
        let done = out
            .drain(&store, |k| Ok::<_, StoreError>(k == "a"))
            .unwrap();
        assert_eq!(done, 1);
        let mut left = Vec::new();
        out.drain(&store, |k| {
            left.push(k.to_string());
            Ok::<_, StoreError>(true)
        })
        .unwrap();
        assert_eq!(left, ["b"]);
        assert_eq!(out.drain(&store, |_| Ok::<_, StoreError>(true)).unwrap(), 0);
    }

    #[test]
    fn write_commits_only_on_ok() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|tx| -> Result<()> { tx.put(T, "a", b"1") })
            .unwrap();
        let failed: std::result::Result<(), StoreError> = store.write(|tx| {
            tx.put(T, "b", b"2")?;
            Err(StoreError::Db("boom".into()))
        });
        assert!(failed.is_err());
        store
            .read(|tx| {
                assert_eq!(tx.get(T, "a")?, Some(b"1".to_vec()));
                assert_eq!(tx.get(T, "b")?, None, "aborted write must leave nothing");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn prefix_scan_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|tx| -> Result<()> {
                for k in ["/a/1", "/a/2", "/ab", "/b"] {
                    tx.put(T, k, k.as_bytes())?;
                }
                Ok(())
            })
            .unwrap();
        let keys: Vec<String> = store
            .read(|tx| tx.scan_prefix(T, "/a/"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["/a/1", "/a/2"]);
        let removed = store.write(|tx| tx.delete_prefix(T, "/a")).unwrap();
        assert_eq!(removed.len(), 3);
        assert!(store.read(|tx| tx.scan_prefix(T, "/")).unwrap().len() == 1);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| tx.put_json(T, "k", &serde_json::json!({"x": 1})))
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let v: Option<serde_json::Value> = store.read(|tx| tx.get_json(T, "k")).unwrap();
        assert_eq!(v.unwrap()["x"], 1);
    }
}
