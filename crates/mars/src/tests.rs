use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

const DK: [u8; 32] = [9u8; 32];

fn spec<'a>(roots: &'a [PathBuf], exclude: &'a [String]) -> backup::Spec<'a> {
    backup::Spec {
        machine: "m1",
        roots,
        exclude,
        dedup_key: &DK,
    }
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("docs/empty")).unwrap();
    fs::write(dir.join("docs/a.txt"), b"hello mars").unwrap();
    fs::write(dir.join("big.bin"), pseudo_random(5 << 20, 42)).unwrap();
    fs::write(dir.join("skip.tmp"), b"excluded").unwrap();
    fs::set_permissions(dir.join("docs/a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("docs/a.txt", dir.join("link")).unwrap();
}

/// Every entry's content and metadata, for comparing two trees.
/// `(path, mode, mtime, content hash, link target)`.
type Described = (String, u32, i64, Option<String>, Option<PathBuf>);

fn describe(root: &Path) -> Vec<Described> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let content = m.is_file().then(|| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(fs::read(&p).unwrap()))
        });
        let link = m
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(&p).unwrap());
        out.push((rel, m.mode() & 0o7777, m.mtime(), content, link));
    }
    out.sort();
    out
}

#[test]
fn a_restore_is_byte_identical_with_metadata_and_honours_excludes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    tree(&src);
    let mut remote = MemRemote::default();
    let roots = [src.clone()];
    let ex = ["*.tmp".to_string()];
    let (snap, stats) = backup::run(&mut remote, &spec(&roots, &ex), None).unwrap();
    assert_eq!(stats.files, 2);
    assert!(
        stats.new_chunks >= 3,
        "5 MiB in chunks of at most 4 MiB, plus a small file"
    );
    let out = t.path().join("out");
    let r = restore::run(&mut remote, &snap, &[], &out).unwrap();
    assert_eq!(r.files, 2);
    let when = filetime::FileTime::from_last_modification_time(&fs::metadata(&src).unwrap());
    fs::remove_file(src.join("skip.tmp")).unwrap();
    filetime::set_file_mtime(&src, when).unwrap();
    assert_eq!(describe(&src), describe(&out.join("data")));
}

#[test]
fn an_unchanged_tree_uploads_nothing_and_a_changed_file_only_new_chunks() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    tree(&src);
    let mut remote = MemRemote::default();
    let roots = [src.clone()];
    let (first, _) = backup::run(&mut remote, &spec(&roots, &[]), None).unwrap();
    let puts = remote.puts;
    let (second, s2) = backup::run(&mut remote, &spec(&roots, &[]), Some(&first)).unwrap();
    assert_eq!((remote.puts, s2.new_chunks, s2.read_bytes), (puts, 0, 0));
    assert_eq!(s2.unchanged_files, 3);
    // Append to the big file: content-defined boundaries keep the first chunks.
    let mut big = fs::read(src.join("big.bin")).unwrap();
    big.extend(pseudo_random(1000, 7));
    fs::write(src.join("big.bin"), &big).unwrap();
    let (_, s3) = backup::run(&mut remote, &spec(&roots, &[]), Some(&second)).unwrap();
    assert!(s3.new_chunks >= 1 && s3.new_chunks < s3.chunks, "{s3:?}");
}

#[test]
fn identical_files_are_stored_once_and_a_lost_chunk_is_sent_again() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    fs::create_dir_all(&src).unwrap();
    let body = pseudo_random(300_000, 1);
    for i in 0..5 {
        fs::write(src.join(format!("copy{i}")), &body).unwrap();
    }
    let mut remote = MemRemote::default();
    let roots = [src.clone()];
    let (first, s) = backup::run(&mut remote, &spec(&roots, &[]), None).unwrap();
    assert_eq!((s.chunks, s.new_chunks), (5, 1));
    // The vault lost the chunk (its point was deleted): the next backup
    // reads the files again rather than naming a chunk that is gone.
    remote.chunks.clear();
    let (second, s2) = backup::run(&mut remote, &spec(&roots, &[]), Some(&first)).unwrap();
    assert_eq!(s2.new_chunks, 1);
    let out = t.path().join("out");
    restore::run(&mut remote, &second, &[], &out).unwrap();
    assert_eq!(fs::read(out.join("data/copy3")).unwrap(), body);
}

#[test]
fn a_tampered_chunk_fails_the_restore_and_leaves_no_partial_file() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(10_000, 3)).unwrap();
    let mut remote = MemRemote::default();
    let (snap, _) = backup::run(&mut remote, &spec(std::slice::from_ref(&src), &[]), None).unwrap();
    for v in remote.chunks.values_mut() {
        v[0] ^= 1;
    }
    let out = t.path().join("out");
    assert!(restore::run(&mut remote, &snap, &[], &out).is_err());
    assert!(!out.join("data/f").exists());
    assert_eq!(fs::read_dir(out.join("data")).unwrap().count(), 0);
}

#[test]
fn a_restore_of_selected_paths_writes_only_those() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    tree(&src);
    let mut remote = MemRemote::default();
    let (snap, _) = backup::run(&mut remote, &spec(std::slice::from_ref(&src), &[]), None).unwrap();
    let root = fs::canonicalize(&src).unwrap();
    let out = t.path().join("out");
    let want = format!("{}/docs", root.display());
    restore::run(&mut remote, &snap, &[want], &out).unwrap();
    assert!(out.join("data/docs/a.txt").exists() && out.join("data/docs/empty").is_dir());
    assert!(!out.join("data/big.bin").exists());
    let nothing = format!("{}/nope", root.display());
    assert!(restore::run(&mut remote, &snap, &[nothing], &t.path().join("o2")).is_err());
}

#[test]
fn small_files_cut_in_memory_cut_as_the_stream_chunker_does() {
    let data = pseudo_random(12 << 20, 11);
    let mem: Vec<(usize, usize)> = fastcdc::v2020::FastCDC::new(
        &data,
        backup::MIN_CHUNK,
        backup::AVG_CHUNK,
        backup::MAX_CHUNK,
    )
    .map(|c| (c.offset, c.length))
    .collect();
    let stream: Vec<(usize, usize)> = fastcdc::v2020::StreamCDC::new(
        &data[..],
        backup::MIN_CHUNK,
        backup::AVG_CHUNK,
        backup::MAX_CHUNK,
    )
    .map(|c| {
        let c = c.unwrap();
        (c.offset as usize, c.length)
    })
    .collect();
    assert_eq!(mem, stream);
}

#[test]
fn large_files_cut_in_windows_cut_as_one_pass_does() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    fs::create_dir_all(&src).unwrap();
    // Larger than the small-file limit and than one window.
    let data = pseudo_random(70 << 20, 5);
    fs::write(src.join("big"), &data).unwrap();
    let mut remote = MemRemote::default();
    let (snap, _) = backup::run(&mut remote, &spec(std::slice::from_ref(&src), &[]), None).unwrap();
    let lens: Vec<usize> = snap
        .entries
        .iter()
        .find(|e| e.rel == "big")
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.len as usize)
        .collect();
    let one_pass: Vec<usize> = fastcdc::v2020::FastCDC::new(
        &data,
        backup::MIN_CHUNK,
        backup::AVG_CHUNK,
        backup::MAX_CHUNK,
    )
    .map(|c| c.length)
    .collect();
    assert_eq!(lens, one_pass);
    let out = t.path().join("out");
    restore::run(&mut remote, &snap, &[], &out).unwrap();
    assert_eq!(fs::read(out.join("data/big")).unwrap(), data);
}
