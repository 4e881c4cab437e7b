//! Write gates: every write to a disk passes its gate, and a snapshot of
//! several disks closes all their gates at once. While closed, no write
//! reaches any of the disks, so copies taken one after the other hold the
//! disks as they were at one instant — crash-consistent across the disks
//! of a VM, as Azure Backup's snapshot is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

#[derive(Default)]
struct State {
    closed: bool,
    writers: usize,
}

#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

fn gates() -> &'static Mutex<HashMap<PathBuf, Arc<Gate>>> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<Gate>>>> = OnceLock::new();
    GATES.get_or_init(Default::default)
}

/// The gate of the disk image at `image`.
pub fn of(image: &Path) -> Arc<Gate> {
    gates()
        .lock()
        .expect("gates")
        .entry(image.to_path_buf())
        .or_default()
        .clone()
}

/// A write in progress; the gate cannot close until it is dropped.
pub struct Writing(Arc<Gate>);

impl Drop for Writing {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().expect("gate");
        s.writers -= 1;
        self.0.changed.notify_all();
    }
}

impl Gate {
    /// Enters for one write, unless the gate is closed.
    pub fn try_enter(self: &Arc<Gate>) -> Option<Writing> {
        let mut s = self.state.lock().expect("gate");
        if s.closed {
            return None;
        }
        s.writers += 1;
        Some(Writing(self.clone()))
    }
}

/// Closed gates: dropped, they open again.
pub struct Frozen(Vec<Arc<Gate>>);

impl Drop for Frozen {
    fn drop(&mut self) {
        for g in &self.0 {
            g.state.lock().expect("gate").closed = false;
            g.changed.notify_all();
        }
    }
}

/// Closes the gates of `images` (in path order, so two freezes never wait
/// on each other crosswise) and waits for the writes in progress to finish.
/// Blocks: call it off the async runtime.
pub fn freeze(images: &[PathBuf]) -> Frozen {
    let mut paths: Vec<&PathBuf> = images.iter().collect();
    paths.sort();
    paths.dedup();
    let mut closed = Vec::new();
    for p in paths {
        let g = of(p);
        let mut s = g.state.lock().expect("gate");
        while s.closed {
            s = g.changed.wait(s).expect("gate");
        }
        s.closed = true;
        drop(s);
        closed.push(g);
    }
    for g in &closed {
        let mut s = g.state.lock().expect("gate");
        while s.writers > 0 {
            s = g.changed.wait(s).expect("gate");
        }
    }
    Frozen(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_closed_gate_admits_no_write_and_waits_for_those_in_progress() {
        let a = PathBuf::from("/gate-test/a.img");
        let b = PathBuf::from("/gate-test/b.img");
        let writing = of(&a).try_enter().expect("open");
        let (tx, rx) = std::sync::mpsc::channel();
        let (a2, b2) = (a.clone(), b.clone());
        let t = std::thread::spawn(move || {
            let f = freeze(&[b2, a2]);
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(f);
        });
        // The freeze waits for the write in progress on a.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(writing);
        rx.recv_timeout(Duration::from_secs(5)).expect("frozen");
        assert!(of(&a).try_enter().is_none());
        assert!(of(&b).try_enter().is_none());
        t.join().unwrap();
        assert!(of(&a).try_enter().is_some());
        assert!(of(&b).try_enter().is_some());
    }
}
