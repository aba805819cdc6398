//! Real BitTorrent clients against our seeder and tracker: aria2c, libtorrent and transmission
//! download through our web seed, and two libtorrent sessions meet through our tracker.
//! .ci/test installs the clients; a missing one fails the test, it is never skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gotorrent_http::metainfo::Metainfo;
use support::{content, TestApp};

const NAME: &str = "shared file ü.bin";

fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!("{program} is missing: install the Debian package {package} (.ci/test does)")
    })
}

fn python_with_libtorrent() -> &'static str {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let ok = Command::new(python)
        .args(["-c", "import libtorrent"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3-libtorrent is missing: install the Debian package python3-libtorrent (.ci/test does)");
    python
}

/// A server sharing a 3 MiB file (3 pieces of 1 MiB, the last one short).
async fn shared() -> (TestApp, Vec<u8>) {
    let data = content(3 * 1024 * 1024 - 1000);
    let app = TestApp::spawn_with(&[(NAME, &data[..])], |_| {}, |_| {}).await;
    app.wait_for_torrent(NAME).await;
    (app, data)
}

/// `gotorrent-http create` for the shared file, with extra flags; returns the .torrent path.
fn create(app: &TestApp, out_dir: &Path, flags: &[String]) -> PathBuf {
    let torrent = out_dir.join("made.torrent");
    let status = Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
        .arg("create")
        .arg(app.data_dir.join(NAME))
        .args(flags)
        .arg("-o")
        .arg(&torrent)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    torrent
}

fn web_seed_flag(app: &TestApp) -> Vec<String> {
    vec!["--web-seed".into(), format!("{}/files/", app.url)]
}

/// Runs `cmd` to completion within `limit`, returning its combined output; fails on a non-zero exit.
fn run(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

#[actix_web::test]
async fn aria2c_downloads_from_our_web_seed_alone() {
    let aria2c = require("aria2c", "aria2");
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = create(&app, dir.path(), &web_seed_flag(&app));

    let mut show = Command::new(&aria2c);
    show.arg("--show-files").arg(&torrent);
    let listing = actix_web::rt::task::spawn_blocking(move || run(show, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(
        !listing.contains("WARN") && !listing.contains("ERROR"),
        "{listing}"
    );
    assert!(listing.contains(NAME), "{listing}");

    let out = dir.path().join("aria2 out");
    let mut get = Command::new(&aria2c);
    get.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
    ])
    .args([
        "--seed-time=0",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--file-allocation=none",
    ])
    .arg(format!("--dir={}", out.display()))
    .arg(&torrent);
    actix_web::rt::task::spawn_blocking(move || run(get, Duration::from_secs(90)))
        .await
        .unwrap();

    assert!(
        std::fs::read(out.join(NAME)).unwrap() == data,
        "aria2c's file differs"
    );
}

#[actix_web::test]
async fn libtorrent_downloads_the_hybrid_torrent_from_our_web_seed() {
    let python = python_with_libtorrent();
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = create(&app, dir.path(), &web_seed_flag(&app));
    let out = dir.path().join("lt out");
    std::fs::create_dir_all(&out).unwrap();

    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_client.py"))
        .arg("webseed")
        .arg(&torrent)
        .arg(&out);
    let log = actix_web::rt::task::spawn_blocking(move || run(cmd, Duration::from_secs(100)))
        .await
        .unwrap();

    assert!(
        std::fs::read(out.join(NAME)).unwrap() == data,
        "libtorrent's file differs: {log}"
    );
}

#[actix_web::test]
async fn transmission_downloads_a_v1_only_torrent_from_our_web_seed() {
    let transmission = require("transmission-cli", "transmission-cli");
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = web_seed_flag(&app);
    flags.push("--v1-only".into());
    let torrent = create(&app, dir.path(), &flags);
    let (config, out) = (
        dir.path().join("config"),
        dir.path().join("transmission out"),
    );
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        config.join("settings.json"),
        r#"{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false, "port-forwarding-enabled": false}"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // transmission-cli seeds forever once done: wait for the file, then stop it.
    let mut child = Command::new(transmission)
        .arg("-g")
        .arg(&config)
        .arg("-w")
        .arg(&out)
        .args(["-p", &port.to_string()])
        .arg(&torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target = out.join(NAME);
    let done = support::poll("transmission to finish the download", || async {
        std::fs::read(&target).is_ok_and(|bytes| bytes == data)
    });
    let result = tokio::time::timeout(Duration::from_secs(20), done).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(result.is_ok(), "transmission did not finish");
}

#[actix_web::test]
async fn two_libtorrent_sessions_meet_through_our_tracker_and_scrape_counts_them() {
    let python = python_with_libtorrent();
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    // No web seed: the bytes can only travel over the BitTorrent peer protocol.
    let torrent = create(&app, dir.path(), &["--tracker".into(), app.url.clone()]);
    let leech = dir.path().join("leecher");
    std::fs::create_dir_all(&leech).unwrap();

    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_client.py"))
        .arg("swarm")
        .arg(&torrent)
        .arg(&app.data_dir)
        .arg(&leech);
    let log = actix_web::rt::task::spawn_blocking(move || run(cmd, Duration::from_secs(100)))
        .await
        .unwrap();

    assert!(
        std::fs::read(leech.join(NAME)).unwrap() == data,
        "the leecher's file differs: {log}"
    );
    let v1 = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap())
        .unwrap()
        .info_hash_v1
        .0;
    let (_, _, downloaded) = support::scrape_stats(&app.scrape(&[v1]).await, &v1);
    assert!(downloaded >= 1, "{log}");
}
