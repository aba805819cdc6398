//! Abuse and access control: tokens, allowlist, rate limits, seeder URL checks and verification.

mod support;

use std::time::Duration;

use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;
use serde_json::json;
use support::fake_seeder::{Behaviour, FakeSeeder};
use support::{assert_json_error, content, TestApp};

const WRITE: &str = "write-token-0123456789";
const READ: &str = "read-token-0123456789";

fn hash() -> String {
    "ab".repeat(32)
}

#[actix_web::test]
async fn tokens_guard_writes_and_reads_when_configured() {
    let app = TestApp::spawn_with(
        &[],
        |_| {},
        |s| {
            s.raw.tracker.write_token = Some(WRITE.into());
            s.raw.tracker.read_token = Some(READ.into());
        },
    )
    .await;
    let body = json!({"info_hash": hash(), "url": "http://127.0.0.1:9"});

    let anonymous = app.announce(body.clone()).await;
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_json_error(anonymous, 401).await;
    let announce_with = |token: &'static str| {
        app.client
            .post(format!("{}/announce", app.url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    assert_json_error(announce_with(READ).await.unwrap(), 401).await;
    assert_eq!(announce_with(WRITE).await.unwrap().status(), 200);

    assert_json_error(app.peers(&hash()).await, 401).await;
    assert_json_error(
        app.client
            .get(format!("{}/torrents", app.url))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let peers = app
        .client
        .get(format!("{}/peers?info_hash={}", app.url, hash()))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(peers.status(), 200);

    // BitTorrent clients carry the token in the announce URL and get bencoded refusals.
    let bt = |token: &str| {
        format!(
            "{}/announce?{token}info_hash={}&peer_id=-XX0001-aaaaaaaaaaaa&port=6881&left=0",
            app.url,
            "%AB".repeat(20)
        )
    };
    let refused = app.client.get(bt("")).send().await.unwrap();
    assert_eq!(refused.status(), 200);
    assert!(String::from_utf8_lossy(&refused.bytes().await.unwrap()).contains("failure reason"));
    let accepted = app
        .client
        .get(bt(&format!("token={WRITE}&")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&accepted).contains("8:interval"),
        "{accepted:?}"
    );

    // Seeders stay open: web-seed clients cannot send tokens.
    assert_eq!(app.health().await.status(), 200);
}

#[actix_web::test]
async fn a_seeder_announces_to_a_token_protected_tracker_with_its_token() {
    let tracker = TestApp::spawn_with(
        &[],
        |o| o.no_seeder = true,
        |s| s.raw.tracker.write_token = Some(WRITE.into()),
    )
    .await;
    let data = content(20_000);
    let tracker_url = tracker.url.clone();
    let seeder = TestApp::spawn_with(
        &[("private.bin", &data[..])],
        |o| {
            o.no_tracker = true;
            o.tracker = Some(tracker_url);
        },
        |s| s.raw.seeder.tracker_token = Some(WRITE.into()),
    )
    .await;
    let v2 = seeder.wait_for_torrent("private.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    support::poll("the seeder to be listed", || async {
        tracker.peer_urls(&v2).await.contains(&seeder.url)
    })
    .await;
}

#[actix_web::test]
async fn the_allowlist_admits_only_registered_torrents() {
    let app = TestApp::spawn_with(&[], |_| {}, |s| s.raw.tracker.allowlist = true).await;
    let meta = create::from_bytes(
        "listed.bin",
        &content(1000),
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();

    let unknown = app
        .announce(json!({"info_hash": meta.info_hash_v2.to_string(), "url": "http://127.0.0.1:9"}))
        .await;
    let error = assert_json_error(unknown, 403).await;
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("tracker.allowlist"));
    let bt = format!(
        "{}/announce?info_hash={}&peer_id=-XX0001-aaaaaaaaaaaa&port=6881",
        app.url,
        percent_encoding::percent_encode(&meta.info_hash_v1.0, percent_encoding::NON_ALPHANUMERIC)
    );
    let refused = app.get_bytes(&bt).await;
    assert!(String::from_utf8_lossy(&refused).contains("not registered"));

    app.register_torrent(meta.bytes.to_vec()).await;
    let known = app
        .announce(json!({"info_hash": meta.info_hash_v2.to_string(), "url": "http://127.0.0.1:9"}))
        .await;
    assert_eq!(known.status(), 200);
    let accepted = app.get_bytes(&bt).await;
    assert!(String::from_utf8_lossy(&accepted).contains("8:interval"));
}

#[actix_web::test]
async fn tracker_requests_are_rate_limited_per_client_address() {
    let app = TestApp::spawn_with(
        &[],
        |_| {},
        |s| {
            s.raw.tracker.rate_limit_per_second = 1;
            s.raw.tracker.rate_limit_burst = 3;
            s.raw.server.trusted_proxy_hops = 1;
        },
    )
    .await;
    let peers_as = |ip: &'static str| {
        app.client
            .get(format!("{}/peers?info_hash={}", app.url, hash()))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(peers_as("198.51.100.1").await.unwrap().status(), 200);
    }
    let limited = peers_as("198.51.100.1").await.unwrap();
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_json_error(limited, 429).await;
    assert_eq!(
        peers_as("198.51.100.2").await.unwrap().status(),
        200,
        "another client has its own budget"
    );
    // Seeder and health endpoints are not limited.
    assert_eq!(app.health().await.status(), 200);
}

#[actix_web::test]
async fn private_seeder_addresses_are_refused_unless_allowed() {
    let app =
        TestApp::spawn_with(&[], |_| {}, |s| s.raw.tracker.allow_private_seeders = false).await;
    for url in [
        "http://127.0.0.1:8080",
        "http://10.0.0.1",
        "http://localhost",
        "http://169.254.169.254",
    ] {
        let error = assert_json_error(
            app.announce(json!({"info_hash": hash(), "url": url})).await,
            400,
        )
        .await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("allow_private_seeders"),
            "{error}"
        );
    }
    assert_eq!(
        app.announce(json!({"info_hash": hash(), "url": "https://seed.example.com"}))
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn new_seeders_can_be_verified_by_one_chunk_before_listing() {
    let app = TestApp::spawn_with(&[], |_| {}, |s| s.raw.tracker.verify_seeders = true).await;
    let data = content(10 * 16384);
    let meta = create::from_bytes(
        "checked.bin",
        &data,
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    app.register_torrent(meta.bytes.to_vec()).await;
    let good = FakeSeeder::start(data.clone(), 16384, Behaviour::Good).await;
    let liar = FakeSeeder::start(data.clone(), 16384, Behaviour::Corrupt).await;
    let v2 = meta.info_hash_v2.to_string();

    let refused = app
        .announce(json!({"info_hash": v2, "url": liar.url}))
        .await;
    let error = assert_json_error(refused, 422).await;
    assert!(
        error["message"].as_str().unwrap().contains("SHA-256"),
        "{error}"
    );
    assert_eq!(
        app.announce(json!({"info_hash": v2, "url": good.url}))
            .await
            .status(),
        200
    );
    assert_eq!(app.peer_urls(&v2).await, vec![good.url.clone()]);
    // Re-announces of a listed seeder are not fetched again.
    let before = good.requests();
    app.announce(json!({"info_hash": v2, "url": good.url}))
        .await;
    assert_eq!(good.requests(), before);
}

#[actix_web::test]
async fn a_file_changed_on_disk_is_never_served_under_its_old_torrent() {
    let original = content(3 * 16384);
    let app = TestApp::spawn_with(
        &[("changing.bin", &original[..])],
        |_| {},
        |s| {
            s.piece_length = PieceLength::new(16384).unwrap();
            s.rescan_interval = Duration::from_secs(3600);
        },
    )
    .await;
    let old = app.wait_for_torrent("changing.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rewrite it with different content of another size.
    let changed = content(5 * 16384 + 1);
    let path = app.data_dir.join("changing.bin");
    std::fs::write(&path, &changed[changed.len() - 5 * 16384 - 1..]).unwrap();
    let response = app.get_chunk(&old, "0", None).await;
    assert_eq!(response.headers()["retry-after"], "30");
    assert_json_error(response, 503).await;

    // Serving noticed the change and rescanned at once (the interval is an hour): the new
    // content is shared under its own torrent, and the old one is withdrawn from the swarm
    // (the registry still knows it, with no seeders).
    support::poll("the new torrent to be shared", || async {
        let listed = app.list_torrents().await;
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "changing.bin" && t["info_hash_v2"] != old.as_str())
    })
    .await;
    support::poll("the old torrent to be announced as stopped", || async {
        app.peer_urls(&old).await.is_empty()
    })
    .await;
    assert_json_error(app.get_chunk(&old, "0", None).await, 404).await;
    let fresh = app
        .get_chunk(&support::percent_encode("changing.bin"), "0", None)
        .await;
    assert_eq!(fresh.bytes().await.unwrap(), &changed[..16384]);
}

#[actix_web::test]
async fn oversized_input_gets_a_clear_4xx() {
    let app = TestApp::spawn_with(&[], |_| {}, |s| s.raw.tracker.max_peers = 5).await;

    // A header far beyond any real client's.
    let huge = "x".repeat(64 * 1024);
    let status = app
        .client
        .get(format!("{}/torrents", app.url))
        .header("x-huge", huge)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_client_error(), "{status}");
    // A very long query value is a malformed info-hash, named (bounded) in the message.
    let long = "a".repeat(10_000);
    let error = assert_json_error(app.peers(&long).await, 400).await;
    assert!(
        error["message"].as_str().unwrap().len() < 300,
        "error messages stay bounded"
    );

    // numwant is capped by tracker.max_peers.
    let hash = "%11".repeat(20);
    for peer in 0..10u8 {
        let url = format!(
            "{}/announce?info_hash={hash}&peer_id={}&port={}&left=1",
            app.url,
            format!("%{peer:02x}").repeat(20),
            7000 + u16::from(peer)
        );
        app.client.get(url).send().await.unwrap();
    }
    let url = format!(
        "{}/announce?info_hash={hash}&peer_id={}&port=7999&left=1&numwant=1000",
        app.url,
        "%ff".repeat(20)
    );
    let body = app.get_bytes(&url).await;
    let reply = gotorrent_http::bencode::decode(&body).unwrap().value;
    assert_eq!(reply.get("peers").unwrap().as_bytes().unwrap().len(), 5 * 6);
}
