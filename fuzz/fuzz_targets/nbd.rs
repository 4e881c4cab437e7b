//! The NBD protocol state machine: a client sending anything, handshake and
//! transmission, to a writable and a read-only 1 MiB disk. Whatever it
//! sends, the disk image keeps its size and the session ends.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use recoverite_blockstore::nbd::{self, Export, Exports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIZE: u64 = 1 << 20;

struct Disks(std::path::PathBuf);

impl Exports for Disks {
    fn find(&self, name: &str) -> Option<Export> {
        let read_only = match name {
            "rg/disk" => false,
            "rg/ro" => true,
            _ => return None,
        };
        Some(Export {
            name: name.to_string(),
            image: self.0.join("disk.img"),
            journal: self.0.join("disk.journal"),
            size: SIZE,
            read_only,
        })
    }
    fn list(&self) -> Vec<String> {
        vec!["rg/disk".into(), "rg/ro".into()]
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    disks: Arc<Disks>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let f = std::fs::File::create(dir.path().join("disk.img")).expect("image");
        f.set_len(SIZE).expect("size");
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            disks: Arc::new(Disks(dir.path().to_path_buf())),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let exports: Arc<dyn Exports> = f.disks.clone();
    f.rt.block_on(async {
        let session = tokio::spawn(nbd::session(server, exports));
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let send = async {
            let _ = wr.write_all(data).await;
            let _ = wr.shutdown().await;
        };
        let drain = async {
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        };
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            tokio::join!(send, drain);
        })
        .await;
        drop(client);
        let _ = session.await;
        assert!(ended.is_ok(), "the session did not end when its client did");
    });
    let len = std::fs::metadata(f.disks.0.join("disk.img")).expect("image").len();
    assert_eq!(len, SIZE, "a request wrote outside the disk");
});
