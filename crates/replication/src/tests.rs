use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};

use recoverite_blockstore::{BlockStore, Journal};

use super::*;

fn write(s: &BlockStore, id: &str, off: u64, byte: u8, len: usize) {
    let mut f = OpenOptions::new().write(true).open(s.image(id)).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(&vec![byte; len]).unwrap();
    Journal::open(&s.journal(id))
        .unwrap()
        .record(off, len as u64)
        .unwrap();
}

/// Protects one disk as `item`.
fn enable_one(e: &Engine, item: &str, src: &str, size: u64, time: &str) {
    e.enable(
        item,
        &[SourceDisk {
            unique_id: src.into(),
            seed: None,
            size,
        }],
        time,
    )
    .unwrap();
}

fn read(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut v = vec![0; len];
    f.read_exact(&mut v).unwrap();
    v
}

#[test]
fn points_materialize_exactly_and_survive_pruning() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    let size = 1 << 30;
    s.create("src", size).unwrap();
    write(&s, "src", 0, 1, 4096);
    let e = Engine::open(d.path(), s.clone()).unwrap();
    enable_one(&e, "item", "src", size, "t0");
    write(&s, "src", 100 << 20, 2, 1 << 20);
    let p1 = e
        .take_point("item", PointKind::CrashConsistent, "t1")
        .unwrap();
    write(&s, "src", 100 << 20, 3, 4096);
    write(&s, "src", 0, 4, 10);
    let p2 = e
        .take_point("item", PointKind::AppConsistent, "t2")
        .unwrap();
    let p3 = e
        .take_point("item", PointKind::CrashConsistent, "t3")
        .unwrap();
    assert_eq!(p3.changed_bytes, 0, "no change since the last point");
    // A 1 MiB write costs a 1 MiB delta (plus 16 bytes a block).
    assert!(p1.changed_bytes < (1 << 20) * 11 / 10);

    let out = d.path().join("at-p1.img");
    e.materialize("item", p1.seq, 0, &out).unwrap();
    assert_eq!(read(&out, 0, 4096), vec![1; 4096]);
    assert_eq!(read(&out, 100 << 20, 1 << 20), vec![2; 1 << 20]);
    e.materialize("item", p2.seq, 0, &out).unwrap();
    assert_eq!(read(&out, 0, 12), [vec![4; 10], vec![1; 2]].concat());
    assert_eq!(
        read(&out, 100 << 20, 4097),
        [vec![3; 4096], vec![2]].concat()
    );

    assert_eq!(e.prune("item", "t2").unwrap(), 1);
    let m = e.manifest("item").unwrap();
    assert_eq!(
        m.points.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![p2.seq, p3.seq]
    );
    assert!(
        e.materialize("item", p1.seq, 0, &out).is_err(),
        "pruned points are gone"
    );
    e.materialize("item", p2.seq, 0, &out).unwrap();
    assert_eq!(
        read(&out, 100 << 20, 4097),
        [vec![3; 4096], vec![2]].concat()
    );
    assert_eq!(read(&out, 100 << 20 | 4096, 4096), vec![2; 4096]);
}

#[test]
fn an_interrupted_merge_is_redone_on_open() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    s.create("src", 1 << 20).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable(
        "i",
        &[SourceDisk {
            unique_id: "src".into(),
            seed: None,
            size: 1 << 20,
        }],
        "t0",
    )
    .unwrap();
    write(&s, "src", 0, 9, 100);
    e.take_point("i", PointKind::CrashConsistent, "t1").unwrap();
    e.take_point("i", PointKind::CrashConsistent, "t2").unwrap();
    // Crash right after recording the merge, before folding the delta in.
    let dir = d.path().join("replication/i");
    let mut m = Manifest::load(&dir).unwrap();
    m.points.remove(0);
    m.merging = vec![0];
    m.save(&dir).unwrap();
    let out = d.path().join("o.img");
    e.materialize("i", 1, 0, &out).unwrap();
    assert_eq!(read(&out, 0, 100), vec![9; 100]);
    assert!(e.manifest("i").unwrap().merging.is_empty());
}

fn one(id: &str, size: u64, seed: Option<&str>) -> Vec<SourceDisk> {
    vec![SourceDisk {
        unique_id: id.into(),
        size,
        seed: seed.map(str::to_string),
    }]
}

#[test]
fn a_seeded_enable_sends_only_the_difference() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    let size = 8 << 30;
    s.create("old", size).unwrap();
    write(&s, "old", 1 << 30, 5, 4 << 20);
    s.copy("old", "new", size).unwrap();
    write(&s, "new", 1 << 30, 6, 100); // one block differs
    write(&s, "new", 7 << 30, 7, 1 << 16); // and one more, where the seed has a hole
    let e = Engine::open(d.path(), s.clone()).unwrap();
    let m = e.enable("r", &one("new", size, Some("old")), "t0").unwrap();
    assert_eq!(m.seeded_bytes, 2 * BLOCK, "two blocks differ");
    let p = e.take_point("r", PointKind::CrashConsistent, "t1").unwrap();
    let out = d.path().join("o.img");
    e.materialize("r", p.seq, 0, &out).unwrap();
    assert_eq!(read(&out, 1 << 30, 101), [vec![6; 100], vec![5]].concat());
    assert_eq!(read(&out, 7 << 30, 1 << 16), vec![7; 1 << 16]);
}

#[test]
fn batches_are_applied_once_and_torn_appends_are_cut() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    s.create("src", 1 << 24).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable("i", &one("src", 1 << 24, None), "t0").unwrap();
    write(&s, "src", 0, 1, 1 << 20);
    let b = e.ship("i").unwrap().expect("changes to ship");
    assert_eq!(e.pending_at_source("i").unwrap(), vec![1 << 20]);
    assert_eq!(e.apply("i", &b.bytes, "t1").unwrap(), (1 << 20) + 16 * 16);
    assert_eq!(
        e.apply("i", &b.bytes, "t1").unwrap(),
        0,
        "a batch seen again is skipped"
    );
    e.shipped("i", &b).unwrap();
    assert_eq!(e.pending_at_source("i").unwrap(), vec![0]);
    assert!(e.ship("i").unwrap().is_none(), "nothing new to ship");
    // A crash mid-append leaves garbage past the recorded length.
    let open = d.path().join("replication/i/open-0.changes");
    OpenOptions::new()
        .append(true)
        .open(&open)
        .unwrap()
        .write_all(&[9; 37])
        .unwrap();
    write(&s, "src", 0, 2, 10);
    let b2 = e.ship("i").unwrap().unwrap();
    assert!(b2.seq > b.seq);
    e.apply("i", &b2.bytes, "t2").unwrap();
    let p = e.seal("i", PointKind::CrashConsistent, "t2").unwrap();
    // Rewritten blocks are stored once: a point costs about what changed.
    assert!(
        p.changed_bytes <= (1 << 20) * 11 / 10,
        "{}",
        p.changed_bytes
    );
    let out = d.path().join("o.img");
    e.materialize("i", p.seq, 0, &out).unwrap();
    assert_eq!(read(&out, 0, 12), [vec![2; 10], vec![1; 2]].concat());
    assert!(
        agent::parse(&b.bytes[..b.bytes.len() - 1]).is_err(),
        "a short batch is refused"
    );
}

#[test]
fn thinning_a_point_keeps_every_other_point_exact() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    s.create("src", 1 << 24).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable("t", &one("src", 1 << 24, None), "t0").unwrap();
    let mut seqs = Vec::new();
    for (i, off) in [(1u8, 0u64), (2, 1 << 20), (3, 0), (4, 2 << 20)] {
        write(&s, "src", off, i, 4096);
        seqs.push(
            e.take_point("t", PointKind::CrashConsistent, &format!("t{i}"))
                .unwrap()
                .seq,
        );
    }
    let expect: Vec<Vec<u8>> = seqs
        .iter()
        .map(|seq| {
            let out = d.path().join(format!("want-{seq}.img"));
            e.materialize("t", *seq, 0, &out).unwrap();
            [
                read(&out, 0, 4096),
                read(&out, 1 << 20, 4096),
                read(&out, 2 << 20, 4096),
            ]
            .concat()
        })
        .collect();
    assert!(e.thin("t", seqs[1]).unwrap());
    assert!(
        !e.thin("t", seqs[3]).unwrap(),
        "the newest point is never thinned"
    );
    for (k, seq) in seqs.iter().enumerate() {
        let out = d.path().join(format!("got-{seq}.img"));
        let r = e.materialize("t", *seq, 0, &out);
        if k == 1 {
            assert!(r.is_err(), "the thinned point is gone");
            continue;
        }
        r.unwrap();
        let got = [
            read(&out, 0, 4096),
            read(&out, 1 << 20, 4096),
            read(&out, 2 << 20, 4096),
        ]
        .concat();
        assert_eq!(got, expect[k], "point {seq} changed");
    }
    // A crash after the manifest recorded the thinning is finished on open.
    let dir = d.path().join("replication/t");
    let mut m = Manifest::load(&dir).unwrap();
    std::fs::copy(
        dir.join(format!("point-{}-0.delta", seqs[3])),
        dir.join(format!("point-{}-0.merged", seqs[3])),
    )
    .unwrap();
    m.thinning = Some((seqs[2], seqs[3]));
    m.points.retain(|p| p.seq != seqs[2]);
    m.save(&dir).unwrap();
    assert!(e.manifest("t").unwrap().thinning.is_none());
    assert!(!dir.join(format!("point-{}-0.delta", seqs[2])).exists());
}

#[test]
fn batches_are_bounded_and_ship_everything_in_turn() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    s.create("src", 1 << 30).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable("b", &one("src", 1 << 30, None), "t0").unwrap();
    for i in 0..100u64 {
        write(&s, "src", i << 20, (i % 250) as u8 + 1, 1 << 20);
    }
    let mut batches = 0;
    while let Some(b) = e.ship("b").unwrap() {
        assert!(
            b.payload() <= agent::MAX_BATCH + (1 << 20) + 8192,
            "{}",
            b.payload()
        );
        e.apply("b", &b.bytes, "t1").unwrap();
        e.shipped("b", &b).unwrap();
        batches += 1;
    }
    assert!(
        batches >= 4,
        "100 MiB of churn takes several bounded batches ({batches})"
    );
    let p = e.seal("b", PointKind::CrashConsistent, "t1").unwrap();
    let out = d.path().join("o.img");
    e.materialize("b", p.seq, 0, &out).unwrap();
    for i in [0u64, 37, 99] {
        assert_eq!(read(&out, i << 20, 4096), vec![(i % 250) as u8 + 1; 4096]);
    }
}

/// A batch with `header` (its JSON rewritten by `f`) and `body`.
fn forged(real: &[u8], body: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let n = u32::from_le_bytes(real[4..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&real[8..8 + n]).unwrap();
    f(&mut h);
    let h = serde_json::to_vec(&h).unwrap();
    let mut out = real[..4].to_vec();
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    out
}

#[test]
fn forged_batches_are_refused_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    s.create("src", 1 << 20).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    e.enable("i", &one("src", 1 << 20, None), "t0").unwrap();
    write(&s, "src", 0, 1, 4096);
    let b = e.ship("i").unwrap().unwrap();
    let n = u32::from_le_bytes(b.bytes[4..8].try_into().unwrap()) as usize;
    let body = &b.bytes[8 + n..];
    // A sequence number far ahead would make every later batch look applied.
    let ahead = forged(&b.bytes, body, |h| h["seq"] = serde_json::json!(u64::MAX));
    assert!(e.apply("i", &ahead, "t1").is_err());
    // A block far past the end of a 1 MiB disk.
    let mut rec = (1u64 << 40).to_le_bytes().to_vec();
    rec.extend_from_slice(&16u64.to_le_bytes());
    rec.extend_from_slice(&[1; 16]);
    let outside = forged(&b.bytes, &rec, |h| {
        h["disks"][0]["len"] = serde_json::json!(rec.len())
    });
    assert!(e.apply("i", &outside, "t1").is_err());
    // Part lengths whose sum overflows.
    let overflow =
        forged(
            &b.bytes,
            body,
            |h| {
                h["disks"] =
                    serde_json::json!([{"cursor": 0, "len": u64::MAX}, {"cursor": 0, "len": 2}])
            },
        );
    assert!(e.apply("i", &overflow, "t1").is_err());
    // The real batch still applies, and the point holds its bytes only.
    assert!(e.apply("i", &b.bytes, "t1").unwrap() > 0);
    let p = e.seal("i", PointKind::CrashConsistent, "t1").unwrap();
    let out = d.path().join("o.img");
    e.materialize("i", p.seq, 0, &out).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1 << 20);
}

#[test]
fn one_items_lock_does_not_hold_up_another() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    let e = Engine::open(d.path(), s).unwrap();
    let a = "item-a".to_string();
    let other = (0..)
        .map(|i| format!("item-{i}"))
        .find(|b| stripe(b) != stripe(&a))
        .unwrap();
    let same = (0..)
        .map(|i| format!("item-{i}"))
        .find(|b| *b != a && stripe(b) == stripe(&a))
        .unwrap();
    // Item a is busy (a whole-disk copy, say).
    let held = e.guard(&a);
    let run = |item: String| {
        let (tx, rx) = std::sync::mpsc::channel();
        let e2 = e.clone();
        std::thread::spawn(move || {
            let _ = e2.pending_at_source(&item);
            let _ = tx.send(());
        });
        rx
    };
    let free = run(other);
    assert!(
        free.recv_timeout(std::time::Duration::from_secs(5)).is_ok(),
        "an item in another stripe waited"
    );
    let waits = run(same);
    assert!(waits
        .recv_timeout(std::time::Duration::from_millis(200))
        .is_err());
    drop(held);
    assert!(waits
        .recv_timeout(std::time::Duration::from_secs(5))
        .is_ok());
}

#[test]
fn shipped_records_are_held_no_longer_and_may_be_released() {
    let d = tempfile::tempdir().unwrap();
    let s = BlockStore::open(d.path()).unwrap();
    let size = 64 << 20;
    s.create("src", size).unwrap();
    let e = Engine::open(d.path(), s.clone()).unwrap();
    enable_one(&e, "item", "src", size, "2026-01-01T00:00:00Z");
    assert_eq!(e.journal_holds().unwrap(), vec![("src".to_string(), 0)]);
    for i in 0..2_000 {
        write(&s, "src", (i % 512) * 4096, i as u8, 4096);
    }
    // Not shipped yet: everything is held.
    assert_eq!(e.journal_holds().unwrap()[0].1, 0);
    let b = e.ship("item").unwrap().unwrap();
    e.shipped("item", &b).unwrap();
    let (_, hold) = e.journal_holds().unwrap().remove(0);
    assert_eq!(hold, s.journal_len("src").unwrap());
    s.release_journal("src", hold).unwrap();
    // What is written next still ships, and the point has the bytes.
    write(&s, "src", 8 << 20, 0xee, 4096);
    e.apply("item", &b.bytes, "2026-01-01T00:01:00Z").unwrap();
    let p = e
        .take_point("item", PointKind::CrashConsistent, "2026-01-01T00:02:00Z")
        .unwrap();
    let out = d.path().join("out.img");
    e.materialize_with("item", p.seq, 0, &out, false).unwrap();
    assert_eq!(read(&out, 8 << 20, 4096), vec![0xee; 4096]);
}
