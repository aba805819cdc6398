//! Real BitTorrent clients against our seeder and tracker: aria2c, libtorrent and transmission
//! download a file and a folder through our web seed (qBittorrent a folder), and two libtorrent sessions meet through our tracker.
//! .ci/test installs the clients; a missing one fails the test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::clients::{
    aria2c_download, libtorrent_webseed_download, python_with_libtorrent, require, run,
};
use crate::support::{content, TestApp};
use gotorrent_http::metainfo::Metainfo;

const NAME: &str = "shared file ü.bin";

/// A server sharing a 3 MiB file (3 pieces of 1 MiB, the last one short).
async fn shared() -> (TestApp, Vec<u8>) {
    let data = content(3 * 1024 * 1024 - 1000);
    let app = TestApp::spawn_with(&[(NAME, &data[..])], |_| {}).await;
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
    let (app, data) = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = web_seed_flag(&app);
    flags.push("--v1-only".into());
    let torrent = create(&app, dir.path(), &flags);
    let out = dir.path().join("transmission out");
    let target = out.join(NAME);
    let finished = transmission_download(&torrent, &out, || {
        std::fs::read(&target).is_ok_and(|bytes| bytes == data)
    })
    .await;
    assert!(finished, "transmission did not finish");
}

/// transmission-cli downloads `torrent` into `out` (DHT, LPD, PEX, uTP and port mapping off)
/// until `done` holds, for at most 30 s; returns whether it did. It seeds forever once done,
/// so it is stopped either way.
async fn transmission_download(torrent: &Path, out: &Path, done: impl Fn() -> bool) -> bool {
    let transmission = require("transmission-cli", "transmission-cli");
    let config = out.with_extension("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(out).unwrap();
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
    let child = Command::new(transmission)
        .arg("-g")
        .arg(&config)
        .arg("-w")
        .arg(out)
        .args(["-p", &port.to_string()])
        .arg(torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until_done(child, "transmission to finish the download", done).await
}

/// Clients seed forever once done: waits up to 30 s for `done`, then stops `client` either
/// way; returns whether `done` came true.
async fn until_done(mut client: std::process::Child, what: &str, done: impl Fn() -> bool) -> bool {
    let finished = crate::support::poll(what, || async { done() });
    let result = tokio::time::timeout(Duration::from_secs(30), finished).await;
    client.kill().unwrap();
    client.wait().unwrap();
    result.is_ok()
}

/// No `<>:"|?*`: transmission 3.00 replaces them with `_` in names, web-seed URLs included.
const FOLDER: &str = "shared folder ü & co";
/// The folder's files: nested directories, an empty file, files smaller than a piece, an exact
/// multiple of the piece length (1 MiB) and a name with a space.
const FOLDER_FILES: &[(&str, usize)] = &[
    ("a/b/tiny.txt", 10),
    ("a/one and a half.bin", 1_500_000),
    ("empty.txt", 0),
    ("exact.bin", 1 << 20),
    ("z last.bin", 70_000),
];

/// A server sharing FOLDER; returns it and the v2 info-hash of the folder's torrent.
async fn shared_folder() -> (TestApp, String) {
    let files: Vec<(String, Vec<u8>)> = FOLDER_FILES
        .iter()
        .map(|(path, len)| (format!("{FOLDER}/{path}"), content(*len)))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let app = TestApp::spawn_with(&borrowed, |_| {}).await;
    let summary = app.wait_for_torrent(FOLDER).await;
    assert_eq!(
        summary["files"].as_array().unwrap().len(),
        FOLDER_FILES.len()
    );
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();
    (app, v2)
}

/// The seeder's own .torrent of the folder (hybrid, web seed `<url>/files/`), written to `dir`.
async fn folder_torrent(app: &TestApp, v2: &str, dir: &Path) -> PathBuf {
    let bytes = app.get_torrent(v2).await.bytes().await.unwrap();
    let path = dir.join("folder.torrent");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Every file of FOLDER is under `out` with its content (empty ones only if `empty_files`).
fn assert_folder_downloaded(out: &Path, empty_files: bool, client: &str) {
    for (path, len) in FOLDER_FILES {
        let file = out.join(FOLDER).join(path);
        if *len == 0 && !empty_files {
            continue;
        }
        let got =
            std::fs::read(&file).unwrap_or_else(|e| panic!("{client}: {}: {e}", file.display()));
        assert!(got == content(*len), "{client}: {path} differs");
    }
}

#[actix_web::test]
async fn aria2c_downloads_a_folder_from_our_web_seed() {
    let (app, v2) = shared_folder().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = folder_torrent(&app, &v2, dir.path()).await;
    let out = dir.path().join("aria2 out");

    // aria2c 1.36 knows no BEP 47: it fetches the pad files too, as <name>/.pad/<N>.
    aria2c_download(&torrent, &out).await;

    assert_folder_downloaded(&out, true, "aria2c");
}

#[actix_web::test]
async fn libtorrent_downloads_a_folder_from_our_web_seed() {
    let (app, v2) = shared_folder().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = folder_torrent(&app, &v2, dir.path()).await;
    let out = dir.path().join("lt out");

    let log = libtorrent_webseed_download(&torrent, &out).await;

    assert!(
        !out.join(FOLDER).join(".pad").exists(),
        "libtorrent wrote pad files: {log}"
    );
    assert_folder_downloaded(&out, true, "libtorrent");
}

#[actix_web::test]
async fn transmission_downloads_a_v1_only_folder_torrent_from_our_web_seed() {
    let (app, _) = shared_folder().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = dir.path().join("v1 folder.torrent");
    let status = Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
        .arg("create")
        .arg(app.data_dir.join(FOLDER))
        .args(web_seed_flag(&app))
        .arg("--v1-only")
        .arg("-o")
        .arg(&torrent)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("transmission out");

    let finished = transmission_download(&torrent, &out, || {
        // transmission 3.00 does not create empty files.
        FOLDER_FILES
            .iter()
            .filter(|(_, len)| *len > 0)
            .all(|(path, len)| {
                std::fs::read(out.join(FOLDER).join(path)).is_ok_and(|b| b == content(*len))
            })
    })
    .await;

    assert!(finished, "transmission did not finish the folder");
    assert_folder_downloaded(&out, false, "transmission");
}

#[actix_web::test]
async fn qbittorrent_downloads_a_folder_from_our_web_seed() {
    // Arrange: the seeder's .torrent, and qbittorrent-nox in a fresh profile: legal notice
    // accepted, DHT, LSD, PeX and port mapping off, Web UI and peer port on loopback.
    let qbittorrent = require("qbittorrent-nox", "qbittorrent-nox");
    let (app, v2) = shared_folder().await;
    let dir = tempfile::tempdir().unwrap();
    let torrent = folder_torrent(&app, &v2, dir.path()).await;
    let (profile, out) = (
        dir.path().join("profile"),
        dir.path().join("qbittorrent out"),
    );
    let config = profile.join("qBittorrent/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        config.join("qBittorrent.conf"),
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
         Session\\PeXEnabled=false\nSession\\Interface=lo\nSession\\InterfaceName=lo\n\n\
         [Network]\nPortForwardingEnabled=false\n\n\
         [Preferences]\nConnection\\UPnP=false\nWebUI\\Address=127.0.0.1\n",
    )
    .unwrap();
    let (webui, peers) = (crate::support::free_port(), crate::support::free_port());
    let child = Command::new(qbittorrent)
        .arg(format!("--profile={}", profile.display()))
        .arg(format!("--webui-port={webui}"))
        .arg(format!("--torrenting-port={peers}"))
        .arg(format!("--save-path={}", out.display()))
        .arg("--skip-dialog=true")
        .arg(&torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Act
    let finished = until_done(child, "qBittorrent to finish the folder", || {
        FOLDER_FILES.iter().all(|(path, len)| {
            std::fs::read(out.join(FOLDER).join(path)).is_ok_and(|b| b == content(*len))
        })
    })
    .await;

    // Assert
    assert!(finished, "qBittorrent did not finish the folder");
    assert_folder_downloaded(&out, true, "qBittorrent");
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
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/lt_client.py"))
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
    let (_, _, downloaded) = crate::support::scrape_stats(&app.scrape(&[v1]).await, &v1);
    assert!(downloaded >= 1, "{log}");
}
