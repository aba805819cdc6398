//! Faults: kill -9 during a burst of registrations, and the downloader on a bad or full disk.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::content;
use crate::support::fake_seeder::{Behaviour, FakeSeeder};
use gotorrent_http::download::{self, Options, Silent};
use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;

/// The real binary as a tracker on a free port; returns the child and its URL.
fn spawn_tracker(state_dir: &Path) -> (Child, String) {
    let args: Vec<&OsStr> = [
        "serve",
        "--no-seeder",
        "--bind",
        "127.0.0.1:0",
        "--state-dir",
    ]
    .iter()
    .map(OsStr::new)
    .chain([state_dir.as_os_str()])
    .collect();
    let env = [
        ("GOTORRENT__TRACKER__RATE_LIMIT_PER_SECOND", "0"),
        ("GOTORRENT__LOG__LEVEL", "warn"),
    ];
    crate::support::spawn_binary(&args, &env)
}

#[actix_web::test]
async fn every_acknowledged_registration_survives_kill_9_mid_burst() {
    // Arrange: 300 distinct torrents, registered 8 at a time.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut child, url) = spawn_tracker(&state);
    let torrents: Vec<(String, Vec<u8>)> = (0..300u32)
        .map(|i| {
            let meta = create::from_bytes(
                &format!("t{i}.bin"),
                &i.to_le_bytes(),
                PieceLength::new(16384).unwrap(),
                vec![],
                vec![],
            )
            .unwrap();
            (meta.info_hash_v2.to_string(), meta.bytes.to_vec())
        })
        .collect();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();

    // Act: kill -9 once 100 are acknowledged, with requests still in flight.
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (torrents, acknowledged, next, client, url) = (
            torrents.clone(),
            acknowledged.clone(),
            next.clone(),
            client.clone(),
            url.clone(),
        );
        senders.push(actix_web::rt::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((hash, bytes)) = torrents.get(i) else {
                    break;
                };
                match client
                    .post(format!("{url}/torrents"))
                    .body(bytes.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().unwrap().push(hash.clone())
                    }
                    _ => break, // the server died
                }
            }
        }));
    }
    crate::support::poll("100 acknowledged registrations", || async {
        acknowledged.lock().unwrap().len() >= 100
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }

    // Assert
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() < torrents.len(),
        "killed too late to test anything"
    );
    let (mut restarted, url) = spawn_tracker(&state);
    for hash in &acked {
        let status = client
            .get(format!("{url}/torrents/{hash}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "acknowledged registration {hash} was lost");
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

fn fixture(dir: &Path, pieces: usize) -> (Vec<u8>, PathBuf) {
    let data = content(pieces * 16384);
    let meta = create::from_bytes(
        "disk test.bin",
        &data,
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    let torrent = dir.join("disk test.torrent");
    std::fs::write(&torrent, &meta.bytes).unwrap();
    (data, torrent)
}

#[actix_web::test]
async fn an_unusable_output_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = fixture(dir.path(), 4);
    let seeder = FakeSeeder::start(data, 16384, Behaviour::Good).await;
    std::fs::write(dir.path().join("a file"), b"not a directory").unwrap();

    let mut options = Options::new(
        torrent.to_str().unwrap(),
        dir.path().join("a file/downloads"),
    );
    options.seeders = vec![url::Url::parse(&seeder.url).unwrap()];
    let error = format!(
        "{:#}",
        download::download(&options, &Silent).await.unwrap_err()
    );

    assert!(error.contains("a file/downloads"), "{error}");
    assert_eq!(
        seeder.requests(),
        0,
        "nothing fetched without somewhere to put it"
    );
}

/// A size-limited tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk(at)
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[actix_web::test]
async fn a_full_disk_stops_the_download_cleanly_and_it_resumes_once_there_is_room() {
    // Arrange: a 1 MiB file and a 512 KiB disk.
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent) = fixture(dir.path(), 64);
    let seeder = FakeSeeder::start(data.clone(), 16384, Behaviour::Good).await;
    let disk = SmallDisk::mount(dir.path().join("small disk"), "512k");
    let mut options = Options::new(torrent.to_str().unwrap(), disk.0.join("out"));
    options.seeders = vec![url::Url::parse(&seeder.url).unwrap()];

    // Act
    let error = format!(
        "{:#}",
        download::download(&options, &Silent).await.unwrap_err()
    );

    // Assert: a clear error, no final file, partial state kept.
    assert!(
        error.contains("No space left on device") || error.contains("os error 28"),
        "{error}"
    );
    assert!(!disk.0.join("out/disk test.bin").exists());
    assert!(disk.0.join("out/disk test.bin.part").exists());

    disk.grow("4m");
    let report = download::download(&options, &Silent).await.unwrap();
    assert!(std::fs::read(&report.path).unwrap() == data);
    assert!(
        report.resumed_pieces > 0,
        "verified pieces were kept across the failure"
    );
}
