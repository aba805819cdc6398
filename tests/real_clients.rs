//! Real BitTorrent clients against our seeder and tracker: aria2c, libtorrent and transmission
//! download through our web seed, and two libtorrent sessions meet through our tracker.
//! .ci/test installs the clients; a missing one fails the test, it is never skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use gotorrent_http::metainfo::Metainfo;
use support::clients::{
    aria2c_download, libtorrent_webseed_download, python_with_libtorrent, require, run,
};
use support::{content, TestApp};

const NAME: &str = "shared file ü.bin";

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
    aria2c_download(&torrent, &out).await;

    assert!(
        std::fs::read(out.join(NAME)).unwrap() == data,
        "aria2c's file differs"
    );
}

#[actix_web::test]
async fn libtorrent_downloads_the_hybrid_torrent_from_our_web_seed() {
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = create(&app, dir.path(), &web_seed_flag(&app));
    let out = dir.path().join("lt out");
    let log = libtorrent_webseed_download(&torrent, &out).await;

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
