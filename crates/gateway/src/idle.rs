//! Idle connections end, as they do behind Azure's load balancers: a
//! proxied flow with no bytes in either direction for the idle timeout is
//! closed, so a client that opens connections and walks away cannot hold
//! the gateway's connection slots (and their 2 × 256 KiB buffers) forever.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Azure Load Balancer's default TCP idle timeout (4 minutes; Azure lets it
/// be raised to 30), which also applies to flows through private endpoints
/// and NAT.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60);

/// A stream that notes when bytes last came out of it.
struct Noting<'a, S> {
    inner: &'a mut S,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Noting<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Noting<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Copies both ways until either side closes or nothing has moved for
/// `idle`; then both sides are dropped by the caller (closing them).
pub async fn copy_until_idle<A, B>(a: &mut A, b: &mut B, buffer: usize, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Noting {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = Noting {
        inner: b,
        start,
        last: last.clone(),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, buffer, buffer);
    let watchdog = async {
        loop {
            let since = start + Duration::from_millis(last.load(Ordering::Relaxed));
            let due = since + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    };
    tokio::select! {
        _ = copy => {}
        _ = watchdog => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_flow_ends_and_a_busy_one_does_not() {
        let (mut client, mut gw_side) = tokio::io::duplex(1024);
        let (mut gw_up, mut service) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(240);
        let proxy = tokio::spawn(async move {
            copy_until_idle(&mut gw_side, &mut gw_up, 1024, idle).await;
        });
        // Traffic every 3 minutes keeps it open well past one timeout.
        for i in 0..4u8 {
            client.write_all(&[i]).await.unwrap();
            let mut b = [0u8; 1];
            service.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], i);
            tokio::time::sleep(Duration::from_secs(180)).await;
            assert!(!proxy.is_finished(), "closed while in use (round {i})");
        }
        // Then silence: closed once 4 minutes have passed since the last byte.
        tokio::time::sleep(Duration::from_secs(61)).await;
        tokio::task::yield_now().await;
        assert!(proxy.is_finished());
    }
}
