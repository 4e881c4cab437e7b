//! A service the gateway hands the admitted connections of one model port
//! of every vault to (file recovery on 3260, the MARS agents' Backup
//! service on 443). Each connection opens with the gateway's admission
//! line, proved by a secret made here.

use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

/// Listens on a loopback port, registers it with the gateway for `port`
/// of every vault, and hands each connection from the gateway (with the
/// secret its admission line carries) to `on_connection`.
pub async fn serve(
    gateway: &Arc<recoverite_gateway::Gateway>,
    port: u16,
    on_connection: impl Fn(TcpStream, String) + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let secret = uuid::Uuid::new_v4().simple().to_string();
    gateway.register_port_backend(
        recoverite_rp_backup::VAULT_TYPE,
        port,
        listener.local_addr()?,
        &secret,
    );
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            // Only the gateway, which connects from 127.0.0.1, is let in
            // (and it proves itself with the secret).
            if peer.ip() != std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) {
                continue;
            }
            on_connection(stream, secret.clone());
        }
    }))
}
