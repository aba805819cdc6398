//! The tracker role over HTTP: announces, peers, expiry, torrent registration and persistence.

use crate::support::{assert_json_error, content, poll, TestApp};
use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;
use serde_json::json;

fn torrent_bytes(name: &str, len: usize) -> (Vec<u8>, String, String) {
    let meta = create::from_bytes(
        name,
        &content(len),
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    (
        meta.bytes.to_vec(),
        meta.info_hash_v2.to_string(),
        meta.info_hash_v1.to_string(),
    )
}

#[actix_web::test]
async fn announced_seeders_are_listed_and_stopped_removes_them() {
    let app = TestApp::spawn().await;
    let hash = "ab".repeat(32);

    let response = app
        .announce(json!({"info_hash": hash, "url": "http://127.0.0.1:9/", "event": "started"}))
        .await;
    assert_eq!(response.status(), 200);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["interval"], 60);
    // The seeder's address as the tracker sees it, for the seeder to check its URL against.
    assert_eq!(reply["external_ip"], "127.0.0.1");
    app.announce(json!({"info_hash": hash, "url": "https://93.184.216.34/base"}))
        .await;

    let peers: serde_json::Value = app.peers(&hash).await.json().await.unwrap();
    let urls: Vec<&str> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 2);
    assert!(urls.contains(&"http://127.0.0.1:9") && urls.contains(&"https://93.184.216.34/base"));
    assert_eq!(peers["interval"], 60);

    app.announce(json!({"info_hash": hash, "url": "http://127.0.0.1:9", "event": "stopped"}))
        .await;
    assert_eq!(app.peer_urls(&hash).await.len(), 1);
}

#[actix_web::test]
async fn a_silent_seeder_is_dropped_after_twice_the_interval() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.announce_interval_secs", 1);
    })
    .await;
    let hash = "cd".repeat(32);
    app.announce(json!({"info_hash": hash, "url": "http://127.0.0.1:9"}))
        .await;
    assert_eq!(
        app.peers(&hash)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["peers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    poll("the silent seeder to expire", || async {
        app.peer_urls(&hash).await.is_empty()
    })
    .await;
}

#[actix_web::test]
async fn bad_announces_get_a_4xx_naming_the_value() {
    let app = TestApp::spawn().await;
    let hash = "ab".repeat(32);
    for (body, needle) in [
        (json!({"info_hash": "xyz", "url": "http://a"}), "xyz"),
        (json!({"info_hash": hash, "url": "ftp://a"}), "ftp://a"),
        (
            json!({"info_hash": hash, "url": "http://user:pw@a"}),
            "invalid seeder URL",
        ),
        (
            json!({"info_hash": hash, "url": "http://a", "event": "exploded"}),
            "exploded",
        ),
        (json!({"url": "http://a"}), "info_hash"),
    ] {
        let error = assert_json_error(app.announce(body).await, 400).await;
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    }
    let not_json = app
        .client
        .post(format!("{}/announce", app.url))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_json_error(not_json, 400).await;
    let huge = app
        .client
        .post(format!("{}/announce", app.url))
        .header("content-type", "application/json")
        .body(vec![b' '; 200_000])
        .send()
        .await
        .unwrap();
    assert_json_error(huge, 413).await;
    assert_json_error(app.peers("nope").await, 400).await;
    let no_hash = app
        .client
        .get(format!("{}/peers", app.url))
        .send()
        .await
        .unwrap();
    assert_json_error(no_hash, 400).await;
}

#[actix_web::test]
async fn registered_torrents_are_served_by_either_hash_and_survive_a_restart() {
    // Arrange
    let dirs = tempfile::tempdir().unwrap();
    let (data_dir, state_dir) = (dirs.path().join("data"), dirs.path().join("state ü"));
    let app = TestApp::start(
        crate::support::test_settings(&data_dir, &state_dir, |_| {}),
        vec![],
    )
    .await;
    let (bytes, v2, v1) = torrent_bytes("registered ü.iso", 100_000);

    // Act
    let created = app.register_torrent(bytes.clone()).await;
    let again = app.register_torrent(bytes.clone()).await;

    // Assert
    assert_eq!(created.status(), 201);
    assert_eq!(again.status(), 200);
    let summary: serde_json::Value = created.json().await.unwrap();
    assert_eq!(summary["info_hash_v2"], v2.as_str());
    assert_eq!(summary["piece_count"], 7);
    for hash in [&v2, &v1] {
        let fetched = app.get_torrent(hash).await;
        assert_eq!(
            fetched.headers()["content-type"],
            "application/x-bittorrent"
        );
        assert_eq!(fetched.bytes().await.unwrap(), &bytes[..]);
    }
    let manifest: serde_json::Value = app.get_manifest(&v1).await.json().await.unwrap();
    assert_eq!(manifest["piece_hashes"].as_array().unwrap().len(), 7);
    assert_eq!(manifest["name"], "registered ü.iso");

    // A v1 announce lands in the same swarm as the v2 one.
    app.announce(json!({"info_hash": v1, "url": "http://127.0.0.1:9"}))
        .await;
    assert_eq!(app.peer_urls(&v2).await.len(), 1);

    app.stop().await;
    let restarted = TestApp::start(
        crate::support::test_settings(&data_dir, &state_dir, |_| {}),
        vec![],
    )
    .await;
    assert_eq!(
        restarted.get_torrent(&v2).await.bytes().await.unwrap(),
        &bytes[..]
    );
    let listed = restarted.list_torrents().await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn the_listing_pages_shared_and_registered_torrents_by_hash_each_once() {
    // Arrange: two shared files (which the seeder also registers) and five registered torrents.
    let dirs = tempfile::tempdir().unwrap();
    let (data_dir, state_dir) = (dirs.path().join("data"), dirs.path().join("state"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let shared = ["shared <one>.bin", "shared twö.bin"];
    for name in shared {
        std::fs::write(data_dir.join(name), content(20_000 + name.len())).unwrap();
    }
    let app = TestApp::start(
        crate::support::test_settings(&data_dir, &state_dir, |_| {}),
        vec![],
    )
    .await;
    for name in shared {
        app.wait_for_torrent(name).await;
    }
    let mut expected = Vec::new();
    for i in 0..5 {
        let (bytes, v2, _) = torrent_bytes(&format!("registered {i} & co.iso"), 30_000 + i);
        assert_eq!(app.register_torrent(bytes).await.status(), 201);
        expected.push(v2);
    }
    for shared in app.list_torrents().await.as_array().unwrap() {
        expected.push(shared["info_hash_v2"].as_str().unwrap().to_owned());
    }
    expected.sort();
    expected.dedup();
    assert_eq!(expected.len(), 7);

    // Act: follow the Link header, three at a time.
    let mut listed = Vec::new();
    let mut sizes = Vec::new();
    let mut query = "limit=3".to_owned();
    loop {
        let response = app.list_torrents_page(&query).await;
        assert_eq!(response.status(), 200);
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: serde_json::Value = response.json().await.unwrap();
        let page = page.as_array().unwrap();
        sizes.push(page.len());
        listed.extend(
            page.iter()
                .map(|t| t["info_hash_v2"].as_str().unwrap().to_owned()),
        );
        let Some(link) = link else { break };
        let next = link
            .strip_prefix("</torrents?")
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("unexpected Link {link}"));
        query = next.to_owned();
    }

    // Assert
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(listed, expected, "every torrent once, in v2 hash order");
    crate::support::poll("the torrents gauge", || async {
        crate::support::metric(&app.url, "gotorrent_torrents").await == 7.0
    })
    .await;
    for (query, named) in [
        ("limit=0", "not 0"),
        ("limit=1001", "not 1001"),
        ("after=xyz", "\"xyz\""),
        (&format!("after={}", &expected[0][..40]), &expected[0][..40]),
    ] {
        let body = assert_json_error(app.list_torrents_page(query).await, 400).await;
        assert!(body["message"].as_str().unwrap().contains(named), "{body}");
    }
}

#[actix_web::test]
async fn unusable_torrents_are_rejected() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("server.max_body_bytes", 4096);
    })
    .await;
    assert_json_error(app.register_torrent(b"garbage".to_vec()).await, 422).await;
    assert_json_error(
        app.register_torrent(b"d4:infod4:name1:aee".to_vec()).await,
        422,
    )
    .await;
    let (big, _, _) = torrent_bytes("big", 2_000_000); // 123 pieces: about 6.4 KB of hashes
    assert_json_error(app.register_torrent(big).await, 413).await;
    assert_json_error(app.get_torrent(&"ef".repeat(32)).await, 404).await;
    assert_json_error(app.get_torrent("not-a-hash").await, 400).await;
    assert_json_error(app.get_manifest(&"ef".repeat(20)).await, 404).await;
}

#[actix_web::test]
async fn a_seeder_registers_and_announces_its_files_to_its_own_tracker() {
    let data = content(200_000);
    let app = TestApp::spawn_with(&[("shared.bin", &data[..])], |_| {}).await;
    let summary = app.wait_for_torrent("shared.bin").await;
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();

    poll("the seeder to announce itself", || async {
        app.peer_urls(&v2).await.contains(&app.url)
    })
    .await;

    // The served .torrent points at this tracker and at this server's /files/ web seed.
    let meta = gotorrent_http::metainfo::Metainfo::from_bytes(
        &app.get_torrent(&v2).await.bytes().await.unwrap(),
    )
    .unwrap();
    assert_eq!(meta.trackers, vec![format!("{}/announce", app.url)]);
    assert_eq!(meta.url_list, vec![format!("{}/files/shared.bin", app.url)]);
}

#[actix_web::test]
async fn with_the_tracker_role_off_a_seeder_announces_to_another_server() {
    let tracker = TestApp::spawn_with(&[], |o| o.no_seeder = true).await;
    let data = content(50_000);
    let tracker_url = format!("{}/announce", tracker.url);
    let seeder = TestApp::spawn_with(&[("remote.bin", &data[..])], |o| {
        o.no_tracker = true;
        o.tracker = Some(tracker_url);
    })
    .await;
    let v2 = seeder.wait_for_torrent("remote.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();

    poll("the remote tracker to list the seeder", || async {
        tracker.peer_urls(&v2).await.contains(&seeder.url)
    })
    .await;
    assert_eq!(
        tracker.get_torrent(&v2).await.status(),
        200,
        "registered with the tracker"
    );
    assert_json_error(seeder.peers(&v2).await, 404).await;
    assert_json_error(tracker.get_chunk(&v2, "0", None).await, 404).await;

    // Graceful shutdown says "stopped": the tracker forgets the seeder at once.
    seeder.stop().await;
    poll("the stopped seeder to leave the swarm", || async {
        tracker.peer_urls(&v2).await.is_empty()
    })
    .await;
}

#[actix_web::test]
async fn sigterm_makes_the_binary_announce_stopped_and_exit_cleanly() {
    use std::process::Command;

    // Arrange: an in-process tracker, and the real binary seeding one file to it.
    let tracker = TestApp::spawn_with(&[], |o| o.no_seeder = true).await;
    let dirs = tempfile::tempdir().unwrap();
    let file = dirs.path().join("signal ü.bin");
    std::fs::write(&file, content(30_000)).unwrap();
    let (data_dir, state_dir) = (dirs.path().join("data"), dirs.path().join("state"));
    let args: [&std::ffi::OsStr; 11] = [
        "seed".as_ref(),
        file.as_os_str(),
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--no-tracker".as_ref(),
        "--tracker".as_ref(),
        tracker.url.as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ];
    let (mut child, _) = crate::support::spawn_binary(&args, &[("GOTORRENT__LOG__FORMAT", "text")]);
    let v2 = gotorrent_http::metainfo::create::from_bytes(
        "signal ü.bin",
        &content(30_000),
        PieceLength::new(1 << 20).unwrap(),
        vec![],
        vec![],
    )
    .unwrap()
    .info_hash_v2
    .to_string();
    poll("the seeder to announce", || async {
        !tracker.peer_urls(&v2).await.is_empty()
    })
    .await;

    // Act
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = actix_web::rt::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();

    // Assert
    assert!(status.success(), "exit status {status}");
    assert!(tracker.peer_urls(&v2).await.is_empty());
}
