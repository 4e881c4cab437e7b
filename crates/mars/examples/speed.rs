//! Where the agent's time goes on one large file (no network): chunking
//! alone, keying alone, then the whole backup into memory (ONLY_BACKUP=1:
//! just that). `cargo run --release -p
//! recoverite-mars --example speed -- FILE`.
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("a file");
    let only_backup = std::env::var_os("ONLY_BACKUP").is_some();
    if !only_backup {
        in_memory(&path);
    }
    let size = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
    if only_backup {
        return backup_only(&path);
    }
    let t = Instant::now();
    let f = std::fs::File::open(&path).unwrap();
    let n = fastcdc::v2020::StreamCDC::new(f, 256 << 10, 1 << 20, 4 << 20).count();
    let s = t.elapsed().as_secs_f64();
    println!("chunking: {n} chunks, {s:.2} s, {:.0} MiB/s", size / s);
    let t = Instant::now();
    let data = vec![0u8; 4 << 20];
    let mut k = [0u8; 32];
    for _ in 0..(size as usize / 4) {
        k = recoverite_mars::crypto::chunk_key(&[1; 32], &data).0;
    }
    let s = t.elapsed().as_secs_f64();
    println!("keying: {s:.2} s, {:.0} MiB/s ({})", size / s, k[0]);
    let t = Instant::now();
    let mut f = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 32 << 20];
    let mut total = 0;
    let mut chunks = 0;
    loop {
        use std::io::Read;
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        for c in fastcdc::v2020::FastCDC::new(&buf[..n], 256 << 10, 1 << 20, 4 << 20) {
            // The copy the agent makes of each chunk.
            chunks += usize::from(!buf[c.offset..c.offset + c.length].to_vec().is_empty());
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!("read + window chunking + copies: {chunks} chunks of {total} bytes, {s:.2} s");
    backup_only(&path);
}

/// The whole backup of the file's directory into memory.
fn backup_only(path: &str) {
    let mut remote = recoverite_mars::MemRemote::default();
    let roots = [std::path::PathBuf::from(path)
        .parent()
        .unwrap()
        .to_path_buf()];
    let t = Instant::now();
    let spec = recoverite_mars::backup::Spec {
        machine: "m",
        roots: &roots,
        exclude: &[],
        dedup_key: &[2; 32],
    };
    let (_, st) = recoverite_mars::backup::run(&mut remote, &spec, None).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "backup to memory: {s:.2} s, {:.0} MiB/s, {} new chunks",
        st.total_bytes as f64 / (1 << 20) as f64 / s,
        st.new_chunks
    );
}

fn in_memory(path: &str) {
    let data = std::fs::read(path).unwrap();
    let t = Instant::now();
    let n = fastcdc::v2020::FastCDC::new(&data, 256 << 10, 1 << 20, 4 << 20).count();
    let s = t.elapsed().as_secs_f64();
    println!(
        "in-memory chunking: {n} chunks, {s:.2} s, {:.0} MiB/s",
        data.len() as f64 / (1 << 20) as f64 / s
    );
}
