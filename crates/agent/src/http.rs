//! Just enough HTTP/1.1 for a Blob PUT over a stream the gateway carries.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Status {
    pub code: u16,
    pub error_code: String,
}

pub async fn put(
    mut s: TcpStream,
    host: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> Result<Status, String> {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nx-ms-version: 2025-01-05\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let io = |e: std::io::Error| format!("the connection to {host} broke: {e}");
    // The service may answer (an error) before the body is through and close
    // its side: a failed write still leaves its answer to read.
    let sent = async {
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await
    }
    .await;
    let mut resp = Vec::new();
    let read = tokio::time::timeout(crate::TIMEOUT * 10, s.read_to_end(&mut resp)).await;
    if resp.is_empty() {
        sent.map_err(io)?;
        read.map_err(|_| format!("{host} did not answer"))?
            .map_err(io)?;
    }
    let text = String::from_utf8_lossy(&resp);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            format!("{host} closed the connection without an HTTP answer (refused by the network?)")
        })?;
    let error_code = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-ms-error-code:"))
        .map(|l| l["x-ms-error-code:".len()..].trim().to_string())
        .unwrap_or_default();
    Ok(Status { code, error_code })
}
