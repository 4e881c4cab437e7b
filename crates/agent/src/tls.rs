//! TLS to the emulator's public services (Entra ID, monitoring) over a
//! connection the gateway carries from the VM.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client configuration trusting the emulator's CA (PEM).
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let c = c.map_err(|e| format!("CA certificate: {e}"))?;
        roots.add(c).map_err(|e| format!("CA certificate: {e}"))?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Sends `request` over TLS and reads the answer until the server closes.
/// A connection the network refused ends in the handshake.
pub async fn exchange(
    s: TcpStream,
    cfg: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Result<String, String> {
    // The emulator's one certificate names localhost; the connection itself
    // went to the service's model address through the network.
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| e.to_string())?
        .to_owned();
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let io = async {
        let mut tls = connector
            .connect(name, s)
            .await
            .map_err(|e| format!("the TLS handshake did not complete ({e})"))?;
        tls.write_all(request)
            .await
            .map_err(|e| format!("the connection broke: {e}"))?;
        let mut resp = Vec::new();
        // A server that closes without close_notify still said what it said.
        let _ = tls.read_to_end(&mut resp).await;
        Ok::<_, String>(String::from_utf8_lossy(&resp).into_owned())
    };
    tokio::time::timeout(crate::TIMEOUT * 2, io)
        .await
        .map_err(|_| "the service did not answer in time".to_string())?
}
