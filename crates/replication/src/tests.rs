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
    e.enable(
        "item",
        &[SourceDisk {
            unique_id: "src".into(),
            size,
        }],
        "t0",
    )
    .unwrap();
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
    assert_eq!(p3.changed_bytes, 8, "no change since the last point");
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
