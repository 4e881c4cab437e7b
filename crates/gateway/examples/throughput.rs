//! Proxied TCP throughput through the gateway, next to plain loopback in the
//! same run. Usage: throughput SRC_ALIAS DST_ALIAS:PORT MEBIBYTES
//! (the destination must be the built-in test target, which echoes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

fn pump(mut s: TcpStream, bytes: usize) -> f64 {
    s.set_nodelay(true).ok();
    let mut reader = s.try_clone().unwrap();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            s.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        s.shutdown(std::net::Shutdown::Write).ok();
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < bytes {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.join().unwrap();
    assert_eq!(got, bytes, "all bytes came back");
    // Bytes moved through the proxy in both directions, per second.
    (2 * bytes) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src: std::net::IpAddr = args[1].parse().unwrap();
    let dst: SocketAddr = args[2].parse().unwrap();
    let mib: usize = args[3].parse().unwrap();
    let bytes = mib << 20;

    // Plain loopback echo, the baseline.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                std::io::copy(&mut r, &mut w).ok();
            });
        }
    });
    let direct = pump(TcpStream::connect(addr).unwrap(), bytes);

    let sock = socket2_bind(src, dst);
    let mut greeting = String::new();
    let mut br = BufReader::new(sock.try_clone().unwrap());
    br.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("recoverite test target"), "{greeting}");
    let proxied = pump(sock, bytes);
    println!("direct_loopback_gb_per_s {:.2}", direct / 1e9);
    println!("gateway_proxied_gb_per_s {:.2}", proxied / 1e9);
}

/// Connects from a chosen source address (the VM's alias).
fn socket2_bind(src: std::net::IpAddr, dst: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(src, 0).into())
        .expect("bind to the VM alias");
    s.connect(&dst.into()).expect("connect through the gateway");
    s.into()
}
