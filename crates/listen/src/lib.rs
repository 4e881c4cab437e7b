//! One accept loop for every listener: at most `cap` connections at a time
//! (the next waits in the kernel's backlog until one ends), and a listener
//! that runs out of file descriptors (`EMFILE`, `ENFILE`) or memory backs off
//! instead of spinning: `accept` fails at once while the condition lasts, so
//! a bare `loop { accept }` takes a core at 100 %.

pub mod instance;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection cap shared by one listener's connections.
#[derive(Clone)]
pub struct Gate {
    name: &'static str,
    permits: Arc<Semaphore>,
}

/// Errors after which accepting again at once fails again.
fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl Gate {
    pub fn new(name: &'static str, cap: usize) -> Gate {
        Gate {
            name,
            permits: Arc::new(Semaphore::new(cap)),
        }
    }

    /// Connections open now.
    pub fn open(&self, cap: usize) -> usize {
        cap - self.permits.available_permits()
    }

    /// The next connection, once one of `cap` is free; the permit is held
    /// for as long as the connection is served. Errors are logged and
    /// retried: exhaustion after a pause that doubles up to a second.
    pub async fn next<S, A, F, Fut>(&self, mut accept: F) -> (S, A, OwnedSemaphorePermit)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::io::Result<(S, A)>>,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut pause = Duration::from_millis(10);
        loop {
            match accept().await {
                Ok((s, a)) => return (s, a, permit),
                Err(e) if is_exhaustion(&e) => {
                    tracing::warn!("{}: cannot accept ({e}); retrying in {pause:?}", self.name);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                // A connection reset before it was accepted, and the like.
                Err(e) => tracing::debug!("{}: accept failed: {e}", self.name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn exhaustion_backs_off_instead_of_spinning() {
        let gate = Gate::new("test", 4);
        let calls = AtomicUsize::new(0);
        let t0 = tokio::time::Instant::now();
        let (v, _, _p) = gate
            .next(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 5 {
                        Err(std::io::Error::from_raw_os_error(libc::EMFILE))
                    } else {
                        Ok((n, ()))
                    }
                }
            })
            .await;
        assert_eq!(v, 5);
        // 10 + 20 + 40 + 80 + 160 ms of pauses, not a busy loop.
        assert_eq!(t0.elapsed(), Duration::from_millis(310));
    }

    #[tokio::test]
    async fn at_most_cap_connections_at_a_time() {
        let gate = Gate::new("test", 2);
        let ok = || async { Ok::<_, std::io::Error>(((), ())) };
        let (_, _, a) = gate.next(ok).await;
        let (_, _, b) = gate.next(ok).await;
        assert_eq!(gate.open(2), 2);
        let third = tokio::time::timeout(Duration::from_millis(50), gate.next(ok)).await;
        assert!(third.is_err(), "a third waits while two are open");
        drop(a);
        let (_, _, _c) = gate.next(ok).await;
        drop(b);
    }
}
