//! Times the engine's stages on one disk: ship, apply, seal, materialize.
//! `cargo run --release -p recoverite-replication --example pipeline [GiB-disk] [MiB-churn]`

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::time::Instant;

use recoverite_blockstore::{BlockStore, Journal};
use recoverite_replication::{Engine, PointKind, SourceDisk};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (disk_gib, churn_mib) = (
        args.first().copied().unwrap_or(64),
        args.get(1).copied().unwrap_or(1024),
    );
    let d =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    let size = disk_gib << 30;
    s.create("src", size).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable(
        "i",
        &[SourceDisk {
            unique_id: "src".into(),
            size,
            seed: None,
        }],
        "t0",
    )
    .unwrap();
    let chunk = 4u64 << 20;
    let slots = size / chunk;
    let mut f = OpenOptions::new().write(true).open(s.image("src")).unwrap();
    let mut j = Journal::open(&s.journal("src")).unwrap();
    let buf = vec![0x5au8; chunk as usize];
    let t = Instant::now();
    for k in 0..churn_mib / 4 {
        let off = (k * 7919 % slots) * chunk;
        j.record(off, chunk).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
    let w = t.elapsed();
    let bytes = (churn_mib << 20) as f64;
    let (mut ship, mut apply) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    loop {
        let t = Instant::now();
        let Some(b) = e.ship("i").unwrap() else { break };
        ship += t.elapsed();
        let t = Instant::now();
        e.apply("i", &b.bytes, "t1").unwrap();
        e.shipped("i", &b).unwrap();
        apply += t.elapsed();
    }
    let t = Instant::now();
    let p = e.seal("i", PointKind::CrashConsistent, "t1").unwrap();
    let seal = t.elapsed();
    let t = Instant::now();
    e.materialize("i", p.seq, 0, &d.path().join("out.img"))
        .unwrap();
    let mat = t.elapsed();
    let mbs = |x: std::time::Duration| bytes / x.as_secs_f64() / 1e6;
    println!("write {:.0} MB/s, ship {:.0} MB/s, apply {:.0} MB/s, seal {:.2} s, materialize {:.2} s ({} GiB disk, {} MiB churn)",
        mbs(w), mbs(ship), mbs(apply), seal.as_secs_f64(), mat.as_secs_f64(), disk_gib, churn_mib);
}
