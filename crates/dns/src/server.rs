//! DNS over UDP and TCP on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use recoverite_store::Store;

use crate::resolve::{self, Rcode, Value};
use crate::snapshot::{self, RType, Snapshot};

/// Answers queries from a snapshot rebuilt whenever the store changes.
pub struct Resolver {
    store: Store,
    current: RwLock<Arc<Snapshot>>,
    rebuild: Mutex<()>,
}

impl Resolver {
    pub fn new(store: Store) -> Resolver {
        Resolver {
            store,
            current: RwLock::new(Arc::new(Snapshot::default())),
            rebuild: Mutex::new(()),
        }
    }

    /// The snapshot of the store as it is now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let g = self.store.generation();
        {
            let cur = self.current.read().expect("snapshot lock");
            if cur.generation == g {
                return cur.clone();
            }
        }
        let _guard = self.rebuild.lock().expect("rebuild lock");
        {
            let cur = self.current.read().expect("snapshot lock");
            if cur.generation == self.store.generation() {
                return cur.clone();
            }
        }
        match snapshot::build(&self.store) {
            Ok(s) => {
                let s = Arc::new(s);
                *self.current.write().expect("snapshot lock") = s.clone();
                s
            }
            Err(e) => {
                tracing::error!("DNS snapshot failed: {e}");
                self.current.read().expect("snapshot lock").clone()
            }
        }
    }

    /// The network a source address sits in (case-folded id), if any.
    pub fn vnet_of(&self, snap: &Snapshot, source: IpAddr) -> Option<String> {
        match source {
            IpAddr::V4(ip) => snap.alias_vnet.get(&ip).cloned(),
            IpAddr::V6(_) => None,
        }
    }

    /// Answers one wire-format query from `source`.
    pub fn answer(&self, packet: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        let mut resp = Message::new();
        resp.set_id(req.id())
            .set_message_type(MessageType::Response)
            .set_op_code(req.op_code())
            .set_recursion_desired(req.recursion_desired())
            .set_recursion_available(true);
        let Some(q) = req.queries().first().cloned() else {
            resp.set_response_code(ResponseCode::FormErr);
            return resp.to_vec().ok();
        };
        resp.add_query(q.clone());
        if req.op_code() != OpCode::Query {
            resp.set_response_code(ResponseCode::NotImp);
            return resp.to_vec().ok();
        }
        let rtype = match q.query_type() {
            RecordType::A => RType::A,
            RecordType::AAAA => RType::Aaaa,
            RecordType::CNAME => RType::Cname,
            RecordType::TXT => RType::Txt,
            _ => {
                resp.set_response_code(ResponseCode::NoError);
                return resp.to_vec().ok();
            }
        };
        let snap = self.snapshot();
        let vnet = self.vnet_of(&snap, source);
        let r = resolve::resolve(&snap, vnet.as_deref(), &q.name().to_ascii(), rtype);
        resp.set_response_code(match r.rcode {
            Rcode::NoError => ResponseCode::NoError,
            Rcode::NxDomain => ResponseCode::NXDomain,
        });
        for a in r.answers {
            let Ok(name) = Name::from_ascii(format!("{}.", a.name)) else {
                continue;
            };
            let rdata = match a.value {
                Value::A(ip) => RData::A(A(ip)),
                Value::Aaaa(ip) => RData::AAAA(AAAA(ip)),
                Value::Cname(t) => match Name::from_ascii(format!("{t}.")) {
                    Ok(n) => RData::CNAME(CNAME(n)),
                    Err(_) => continue,
                },
                Value::Txt(t) => RData::TXT(TXT::new(t)),
            };
            resp.add_answer(Record::from_rdata(name, a.ttl, rdata));
        }
        resp.to_vec().ok()
    }
}

/// Serves DNS on `127.0.0.1:port` (UDP and TCP); returns the bound port and
/// the serving tasks (abort them to stop).
pub async fn serve(
    resolver: Arc<Resolver>,
    port: u16,
) -> std::io::Result<(u16, Vec<tokio::task::JoinHandle<()>>)> {
    let mut tasks = Vec::new();
    let (udp, tcp, port) = bind_both(port).await?;
    let udp = Arc::new(udp);
    // Two receive loops keep both cores busy under load.
    for _ in 0..2 {
        let (udp, resolver) = (udp.clone(), resolver.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(out) = resolver.answer(&buf[..n], from.ip()) {
                    let _ = udp.send_to(&out, from).await;
                }
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let gate = recoverite_listen::Gate::new("DNS over TCP", MAX_TCP_CONNECTIONS);
        loop {
            let (mut stream, from, permit) = gate.next(|| tcp.accept()).await;
            let resolver = resolver.clone();
            tokio::spawn(async move {
                let _ = tcp_session(&mut stream, from, &resolver).await;
                drop(permit);
            });
        }
    }));
    Ok((port, tasks))
}

/// DNS-over-TCP connections served at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// How long a TCP connection may wait for its next query.
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

async fn tcp_session(
    stream: &mut tokio::net::TcpStream,
    from: SocketAddr,
    resolver: &Resolver,
) -> std::io::Result<()> {
    loop {
        // RFC 7766 §6.2.3: a server closes connections idle for a while.
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(len) => len? as usize,
            Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        if let Some(out) = resolver.answer(&buf, from.ip()) {
            stream.write_u16(out.len() as u16).await?;
            stream.write_all(&out).await?;
        }
    }
}

/// UDP and TCP on the same port. With port 0 the UDP port is picked first
/// and its TCP twin may be taken (an outgoing connection's ephemeral port):
/// pick again rather than fail.
async fn bind_both(port: u16) -> std::io::Result<(UdpSocket, TcpListener, u16)> {
    let mut last = None;
    for _ in 0..if port == 0 { 32 } else { 1 } {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let p = udp.local_addr()?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, p)).await {
            Ok(tcp) => return Ok((udp, tcp, p)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port")))
}
