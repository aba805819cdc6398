//! The web page in a real browser: Debian's chromium, headless, driven by playwright-core
//! (tests/web/browser.mjs; `npm ci --prefix tests/web` installs it, as .ci/test does). A missing
//! browser or package fails the test; it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{sharing_awkward_names, AWKWARD, HOSTILE};
use crate::support::clients::{require, run};
use crate::support::fake_seeder::{Behaviour, FakeSeeder};
use crate::support::{content, TestApp};

/// Runs browser.mjs with `args`; returns what it printed, parsed.
async fn drive(args: Vec<String>) -> serde_json::Value {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
    require("chromium", "chromium");
    let node = require("node", "nodejs");
    assert!(
        here.join("node_modules/playwright-core").exists()
            && here.join("node_modules/axe-core").exists(),
        "playwright-core and axe-core are missing: run `npm ci --prefix tests/web` (.ci/test does)"
    );
    let mut cmd = Command::new(node);
    cmd.arg(here.join("browser.mjs"))
        .args(args)
        .current_dir(&here);
    let out = actix_web::rt::task::spawn_blocking(move || run(cmd, Duration::from_secs(120)))
        .await
        .unwrap();
    let json = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the browser: {out}"));
    serde_json::from_str(json).unwrap()
}

/// Where screenshots go for people to look at: target/screenshots/.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[actix_web::test]
async fn the_pages_work_in_chromium_accessibly_at_phone_and_desktop_sizes() {
    // Arrange: awkward and hostile names, and a folder.
    let (app, v2) = sharing_awkward_names().await;
    let shots = screenshot_dir();

    // Act
    let seen = drive(vec![
        "pages".into(),
        app.url.clone(),
        v2.clone(),
        shots.display().to_string(),
    ])
    .await;

    // Assert: names shown as text, nothing injected ran, no console error.
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen}");
    let names: Vec<&str> = seen["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names, [HOSTILE, "album", AWKWARD]);
    assert_eq!(seen["visibleAfterFilter"], serde_json::json!([AWKWARD]));
    // The torrent page: its title, a magnet naming it, a .torrent that parses to it, a QR code.
    assert_eq!(seen["title"], AWKWARD);
    assert!(seen["magnet"]
        .as_str()
        .unwrap()
        .contains(&format!("urn:btmh:1220{v2}")));
    let torrent = hex::decode(seen["torrentHex"].as_str().unwrap()).unwrap();
    let meta = gotorrent_http::metainfo::Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(meta.info_hash_v2.to_string(), v2);
    assert_eq!(seen["qr"], 1);
    // Keyboard users can skip to the content first.
    assert_eq!(seen["firstFocus"], "Skip to content");
    // axe-core: no serious or critical violation on either page at either size.
    for (page, violations) in seen["violations"].as_object().unwrap() {
        assert_eq!(violations, &serde_json::json!([]), "{page}: {violations}");
    }
    for shot in seen["screenshots"].as_array().unwrap() {
        let shot = shot.as_str().unwrap();
        assert!(std::fs::metadata(shot).unwrap().len() > 1000, "{shot}");
    }
}

#[actix_web::test]
async fn a_file_shared_through_the_page_downloads_back_byte_identical() {
    use sha2::Digest;
    // Arrange: uploads on, and a 5 MiB file with an awkward name on the browser's disk.
    let app = TestApp::spawn_with(&[], |o| {
        o.set("seeder.uploads", true);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared from the page ü & co.bin");
    let data = content(5 * 1024 * 1024 + 7);
    std::fs::write(&file, &data).unwrap();

    // Act
    let seen = drive(vec![
        "upload".into(),
        app.url.clone(),
        file.display().to_string(),
    ])
    .await;

    // Assert: it links the new torrent's page, and the bytes came back the same.
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["violations"], serde_json::json!([]), "{seen}");
    let summary = app
        .wait_for_torrent("shared from the page ü & co.bin")
        .await;
    assert_eq!(
        seen["href"],
        format!("/t/{}", summary["info_hash_v2"].as_str().unwrap())
    );
    assert_eq!(seen["sha256"], hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(seen["progress"], 1.0);
}

#[actix_web::test]
async fn the_verified_browser_download_takes_every_seeder_and_refetches_a_bad_piece() {
    use gotorrent_http::download::{self, Options, Silent};
    use sha2::Digest;
    // Arrange: 32 MiB (1 MiB pieces) on a real seeder, and a second seeder, announced to the
    // first's tracker, that corrupts the first piece it sends.
    let data = content(32 << 20);
    let name = "big ü & co.bin";
    let app = TestApp::spawn_with(&[(name, &data[..])], |o| {
        o.set("tracker.verify_seeders", false);
    })
    .await;
    let v2 = app.wait_for_torrent(name).await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    let liar = FakeSeeder::start(data.clone(), 1 << 20, Behaviour::CorruptFirst).await;
    let announced = app
        .announce(serde_json::json!({"info_hash": v2, "url": liar.url, "event": "started"}))
        .await;
    assert!(announced.status().is_success());
    assert_eq!(app.wait_for_seeders(&v2, 2).await.len(), 2);

    // Act
    let seen = drive(vec!["verified".into(), app.url.clone(), v2.clone()]).await;

    // Assert: the same bytes, the bad piece named and fetched again.
    assert_eq!(seen["problems"], serde_json::json!([]), "{seen}");
    assert_eq!(
        seen["sha256"],
        hex::encode(sha2::Sha256::digest(&data)),
        "{seen}"
    );
    let status = seen["status"].as_str().unwrap();
    assert!(status.contains("1 bad piece fetched again"), "{status}");
    assert!(status.contains(&format!(" from {}", liar.url)), "{status}");
    assert!(status.contains("from 2 seeders"), "{status}");

    // The CLI on the same file from the same two seeders, for comparison (printed).
    let out = tempfile::tempdir().unwrap();
    let mut options = Options::new(format!("{}/torrents/{v2}", app.url), out.path());
    options.seeders = vec![
        url::Url::parse(&app.url).unwrap(),
        url::Url::parse(&liar.url).unwrap(),
    ];
    let report = download::download(&options, &Silent).await.unwrap();
    eprintln!(
        "32 MiB, 2 seeders (one corrupting a piece): browser {:.2} s, CLI {:.2} s",
        seen["seconds"].as_f64().unwrap(),
        report.elapsed.as_secs_f64()
    );
}
