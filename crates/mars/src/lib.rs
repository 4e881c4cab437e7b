//! The core of recoverite's MARS agent (Microsoft Azure Recovery Services
//! agent): backup of files and folders into a Recovery Services vault, and
//! their restore. Everything here runs on the machine; the vault only ever
//! receives sealed chunks and a sealed index ([`crypto`]).
//!
//! The transport is a [`Remote`]: the agent's connection to the vault's
//! Backup service through the emulated network, or memory in tests.

pub mod backup;
pub mod crypto;
pub mod index;
pub mod restore;

use std::io;

pub use backup::Stats;
pub use index::Snapshot;

/// The vault, as the agent sees it during one backup or restore.
pub trait Remote {
    /// Which of `ids` the vault does not hold (and keeps the rest for this
    /// session: they are not collected before it commits).
    fn missing(&mut self, ids: &[String]) -> io::Result<Vec<String>>;
    /// Sends one sealed chunk.
    fn put(&mut self, id: &str, sealed: &[u8]) -> io::Result<()>;
    /// Makes the chunks sent so far durable.
    fn flush(&mut self) -> io::Result<()>;
    fn get(&mut self, id: &str) -> io::Result<Vec<u8>>;
    /// Fetches `ids` in order, handing each to `f` with its index; a
    /// transport may keep many requests in flight.
    fn get_each(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(usize, Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        for (i, id) in ids.iter().enumerate() {
            let b = self.get(id)?;
            f(i, b)?;
        }
        Ok(())
    }
    /// Progress, for the job.
    fn progress(&mut self, _s: &Stats) {}
}

/// A vault in memory (tests, benchmarks of the agent alone).
#[derive(Default)]
pub struct MemRemote {
    pub chunks: std::collections::HashMap<String, Vec<u8>>,
    pub puts: u64,
}

impl Remote for MemRemote {
    fn missing(&mut self, ids: &[String]) -> io::Result<Vec<String>> {
        Ok(ids
            .iter()
            .filter(|i| !self.chunks.contains_key(*i))
            .cloned()
            .collect())
    }
    fn put(&mut self, id: &str, sealed: &[u8]) -> io::Result<()> {
        self.puts += 1;
        self.chunks.insert(id.to_string(), sealed.to_vec());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn get(&mut self, id: &str) -> io::Result<Vec<u8>> {
        self.chunks.get(id).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("chunk {id} is missing"))
        })
    }
}

#[cfg(test)]
mod tests;
