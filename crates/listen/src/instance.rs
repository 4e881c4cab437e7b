//! Instances side by side: every running recoverite holds an instance slot
//! (0–99), claimed with a lock so two starts cannot take the same one and
//! kept in its data directory across restarts. Loopback aliases are data of
//! each instance's model (two instances may both have a VM at 127.100.0.3);
//! what tells them apart is where their gateways listen: model port `p` of
//! an alias is served on `real_port(p)`, which follows the slot. Slot 0 is
//! the layout a single instance always had (443 → 10443, IMDS on 10080).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

/// How many instances may run side by side on one machine.
pub const MAX_SLOTS: u16 = 100;

static SLOT: AtomicU16 = AtomicU16::new(0);

/// This process's instance slot (a server's own, or the one a CLI command
/// read from the server's `connection.json`).
pub fn slot() -> u16 {
    SLOT.load(Ordering::Relaxed)
}

pub fn set_slot(s: u16) {
    SLOT.store(s.min(MAX_SLOTS - 1), Ordering::Relaxed);
}

/// Where model port `model` of a loopback alias is served: ports below 1024
/// move up by 10000 (no privileges needed), then every port by the slot.
pub fn real_port(model: u16) -> u16 {
    port_in(model, slot())
}

/// `real_port` for a given slot.
pub fn port_in(model: u16, slot: u16) -> u16 {
    let base = if model < 1024 { model + 10000 } else { model };
    base.saturating_add(slot)
}

/// The model port behind a real one (the inverse of `real_port`).
pub fn model_port(real: u16) -> u16 {
    let r = real.saturating_sub(slot());
    if (10000..11024).contains(&r) {
        r - 10000
    } else {
        r
    }
}

/// A held slot: the lock lasts as long as this value.
#[derive(Debug)]
pub struct Claim {
    pub slot: u16,
    _lock: File,
}

fn locks_dir() -> PathBuf {
    std::env::temp_dir().join("recoverite-instances")
}

fn try_lock(slot: u16) -> std::io::Result<Option<File>> {
    let dir = locks_dir();
    std::fs::create_dir_all(&dir)?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("slot-{slot}.lock")))?;
    // SAFETY: flock on a descriptor this function owns.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok((r == 0).then_some(f))
}

/// Claims a slot for the instance of `data_dir`: the one it had last time
/// if it is free, else the lowest free one (remembered for next time).
pub fn claim(data_dir: &Path) -> std::io::Result<Claim> {
    let file = data_dir.join("instance-slot");
    let mut had = String::new();
    let previous = File::open(&file)
        .and_then(|mut f| f.read_to_string(&mut had))
        .ok()
        .and_then(|_| had.trim().parse::<u16>().ok())
        .filter(|s| *s < MAX_SLOTS);
    for s in previous.into_iter().chain(0..MAX_SLOTS) {
        if let Some(lock) = try_lock(s)? {
            if previous != Some(s) {
                let mut f = File::create(&file)?;
                writeln!(f, "{s}")?;
                f.sync_all()?;
            }
            set_slot(s);
            return Ok(Claim {
                slot: s,
                _lock: lock,
            });
        }
    }
    Err(std::io::Error::other(format!(
        "all {MAX_SLOTS} instance slots are taken: stop a running recoverite first"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_slot_and_slot_zero_is_the_old_layout() {
        assert_eq!(port_in(443, 0), 10443);
        assert_eq!(port_in(80, 0), 10080);
        assert_eq!(port_in(20004, 0), 20004);
        assert_eq!(port_in(443, 3), 10446);
        assert_eq!(port_in(3260, 3), 3263);
        // Each model port's window of 100 slots overlaps no other's.
        let models = [80u16, 443, 3260, 20004];
        let mut all = std::collections::HashSet::new();
        for m in models {
            for s in 0..MAX_SLOTS {
                assert!(all.insert(port_in(m, s)), "{m} in slot {s} collides");
            }
        }
    }

    #[test]
    fn two_data_directories_get_two_slots_and_keep_them() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ca = claim(a.path()).unwrap();
        let cb = claim(b.path()).unwrap();
        assert_ne!(ca.slot, cb.slot);
        let (sa, sb) = (ca.slot, cb.slot);
        drop(ca);
        drop(cb);
        // Restarted in the other order, each takes its own slot again.
        let cb = claim(b.path()).unwrap();
        let ca = claim(a.path()).unwrap();
        assert_eq!((ca.slot, cb.slot), (sa, sb));
    }
}
