//! A stub resolver that asks from the VM's address, so the DNS server
//! answers for the VM's network.

use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// The IPv4 address `name` resolves to for a client at `from` (following CNAMEs).
pub async fn resolve(from: Ipv4Addr, server: SocketAddr, name: &str) -> Result<Ipv4Addr, String> {
    let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("{name} is not a DNS name: {e}"))?;
    let mut q = Message::new();
    let id: u16 = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    q.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    q.add_query(Query::query(qname, RecordType::A));
    let bytes = q.to_vec().map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind((from, 0))
        .await
        .map_err(|e| format!("cannot bind the VM's address {from}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        sock.send_to(&bytes, server)
            .await
            .map_err(|e| format!("DNS query failed: {e}"))?;
        let Ok(Ok((n, _))) = tokio::time::timeout(
            std::time::Duration::from_millis(700),
            sock.recv_from(&mut buf),
        )
        .await
        else {
            continue;
        };
        let resp = Message::from_vec(&buf[..n]).map_err(|e| format!("bad DNS answer: {e}"))?;
        if resp.id() != id {
            continue;
        }
        if resp.response_code() == ResponseCode::NXDomain {
            return Err(format!(
                "{name} does not resolve from the VM's network (NXDOMAIN)"
            ));
        }
        return resp
            .answers()
            .iter()
            .rev()
            .find_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .ok_or_else(|| format!("{name} has no address record for the VM's network"));
    }
    Err(format!(
        "the DNS server at {server} did not answer for {name}"
    ))
}
