//! Abuse and access control: tokens, allowlist, rate limits, seeder URL checks and verification.

use std::time::Duration;

use crate::support::fake_seeder::{Behaviour, FakeSeeder};
use crate::support::{assert_json_error, content, raw_request, TestApp};
use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;
use serde_json::json;

const WRITE: &str = "write-token-0123456789";
const READ: &str = "read-token-0123456789";

fn hash() -> String {
    "ab".repeat(32)
}

#[actix_web::test]
async fn tokens_guard_writes_and_reads_when_configured() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.write_token", WRITE);
        o.set("tracker.read_token", READ);
    })
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
    let tracker = TestApp::spawn_with(&[], |o| {
        o.no_seeder = true;
        o.set("tracker.write_token", WRITE);
    })
    .await;
    let data = content(20_000);
    let tracker_url = tracker.url.clone();
    let seeder = TestApp::spawn_with(&[("private.bin", &data[..])], |o| {
        o.no_tracker = true;
        o.tracker = Some(tracker_url);
        o.set("seeder.tracker_token", WRITE);
    })
    .await;
    let v2 = seeder.wait_for_torrent("private.bin").await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::support::poll("the seeder to be listed", || async {
        tracker.peer_urls(&v2).await.contains(&seeder.url)
    })
    .await;
}

#[actix_web::test]
async fn the_allowlist_admits_only_registered_torrents() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.allowlist", true);
    })
    .await;
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

/// Every protected operation: method, path (with `{h}` for an info-hash), and whether its
/// refusals are bencoded (BitTorrent protocol) rather than JSON.
const PROTECTED: &[(&str, &str, bool)] = &[
    ("POST", "/announce", false),
    ("GET", "/announce?info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB&peer_id=-XX0001-aaaaaaaaaaaa&port=6881&left=0", true),
    ("POST", "/torrents", false),
    ("GET", "/torrents", false),
    ("GET", "/torrents/{h}", false),
    ("GET", "/torrents/{h}/manifest", false),
    ("GET", "/peers?info_hash={h}", false),
    ("GET", "/scrape", true),
];

/// Other spellings of `path` (its query kept): letters percent-encoded (one, all, lower-case
/// hex), doubled and trailing slashes, dot segments, upper case, an encoded slash.
fn spellings(path_and_query: &str) -> Vec<String> {
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, String::new()), |(p, q)| {
            (p, format!("?{q}"))
        });
    let encode_all = |p: &str, lower: bool| -> String {
        p.chars()
            .map(|c| match c {
                '/' => "/".to_owned(),
                c if lower => format!("%{:02x}", c as u32),
                c => format!("%{:02X}", c as u32),
            })
            .collect()
    };
    let mut out = vec![
        format!("/%{:02X}{}", path.as_bytes()[1], &path[2..]),
        format!("/{}%{:02x}{}", &path[1..2], path.as_bytes()[2], &path[3..]),
        encode_all(path, false),
        encode_all(path, true),
        format!("/{path}"),
        format!("{path}/"),
        format!("/.{path}"),
        format!("/x/..{path}"),
        format!("%2F{}", &path[1..]),
        path.to_ascii_uppercase(),
        format!("{}{}", &path[..2].to_ascii_uppercase(), &path[2..]),
    ];
    for s in &mut out {
        s.push_str(&query);
    }
    out
}

/// The same request to every spelling, with its outcome: 404 (the router sends it nowhere) or
/// the plain path's refusal. With `spend_first`, each spelling comes from a client of its own
/// (X-Forwarded-For) that has just spent its one-request burst on the plain path, so a spelling
/// with a bucket of its own would get through. Returns how many spellings reached the protected
/// handler.
async fn assert_refused_like_the_plain_path(
    app: &TestApp,
    expect_status: u16,
    expect_text: &str,
    spend_first: bool,
) -> usize {
    let (mut reached, mut clients) = (0, 0);
    for (method, template, bencoded) in PROTECTED {
        let plain = template.replace("{h}", &hash());
        for target in std::iter::once(plain.clone()).chain(spellings(&plain)) {
            clients += 1;
            let client = format!("198.18.{}.{}", clients / 250, clients % 250 + 1);
            let headers: &[(&str, &str)] = if spend_first {
                &[("x-forwarded-for", &client)]
            } else {
                &[]
            };
            if spend_first {
                raw_request(&app.url, method, &plain, headers, b"{}").await;
            }
            let (status, body) = raw_request(&app.url, method, &target, headers, b"{}").await;
            let text = String::from_utf8_lossy(&body);
            // Not routed: 404, or 400 with no body from the HTTP parser (not an origin-form target).
            let unrouted = status == 404 || (status == 400 && body.is_empty());
            if unrouted && target != plain {
                continue;
            }
            let expected = if *bencoded { 200 } else { expect_status };
            assert!(
                status == expected && text.contains(expect_text),
                "{method} {target}: {status} {text}"
            );
            if *bencoded {
                assert!(text.contains("failure reason"), "{method} {target}: {text}");
            }
            reached += 1;
        }
    }
    reached
}

#[actix_web::test]
async fn every_spelling_that_reaches_a_protected_route_needs_its_token() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.write_token", WRITE);
        o.set("tracker.read_token", READ);
    })
    .await;
    let reached = assert_refused_like_the_plain_path(&app, 401, "token", false).await;
    // The plain paths, and the percent-encoded letters the router decodes, all met the guard.
    assert!(
        reached >= PROTECTED.len() * 5,
        "only {reached} spellings were routed"
    );
}

/// An app allowing each client (by X-Forwarded-For, one trusted hop) 1 request/s after a burst.
async fn rate_limited_app(burst: u32) -> TestApp {
    TestApp::spawn_with(&[], move |o| {
        o.set("tracker.rate_limit_per_second", 1);
        o.set("tracker.rate_limit_burst", burst);
        o.set("server.trusted_proxy_hops", 1);
    })
    .await
}

#[actix_web::test]
async fn every_spelling_that_reaches_a_protected_route_shares_its_rate_limit() {
    let app = rate_limited_app(1).await;
    let reached = assert_refused_like_the_plain_path(&app, 429, "too many requests", true).await;
    assert!(
        reached >= PROTECTED.len() * 5,
        "only {reached} spellings were routed"
    );
    // An IPv6 client cannot take a fresh bucket per address of its /64.
    let v6 = |ip: &'static str| [("x-forwarded-for", ip)];
    let (status, _) = raw_request(&app.url, "GET", "/torrents", &v6("2001:db8:5:6::1"), b"").await;
    assert_eq!(status, 200);
    let (status, _) = raw_request(
        &app.url,
        "GET",
        "/torrents",
        &v6("2001:db8:5:6:ffff::2"),
        b"",
    )
    .await;
    assert_eq!(status, 429, "the same /64 shares one bucket");
    let (status, _) = raw_request(&app.url, "GET", "/torrents", &v6("2001:db8:5:7::1"), b"").await;
    assert_eq!(status, 200, "another /64 is another client");
}

#[actix_web::test]
async fn tracker_requests_are_rate_limited_per_client_address() {
    let app = rate_limited_app(3).await;
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

/// Registers a torrent of `data` (16 KiB pieces) with the app's tracker.
async fn register(app: &TestApp, name: &str, data: &[u8]) -> gotorrent_http::metainfo::Metainfo {
    let meta =
        create::from_bytes(name, data, PieceLength::new(16384).unwrap(), vec![], vec![]).unwrap();
    assert!(app
        .register_torrent(meta.bytes.to_vec())
        .await
        .status()
        .is_success());
    meta
}

/// Announces `url` as if from `client` (the app trusts one proxy hop).
async fn announce_from(app: &TestApp, client: &str, url: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/announce", app.url))
        .header("x-forwarded-for", client)
        .json(&json!({"info_hash": hash(), "url": url}))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn private_seeders_are_listed_for_clients_on_their_own_network_only() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("server.trusted_proxy_hops", 1);
    })
    .await;

    // A laptop or LAN with default settings: this machine may name itself and private hosts.
    for url in [
        "http://127.0.0.1:8081",
        "http://localhost:8081",
        "http://10.0.0.1",
    ] {
        assert_eq!(
            announce_from(&app, "127.0.0.1", url).await.status(),
            200,
            "{url}"
        );
    }
    // A LAN client may name LAN hosts, but not this machine.
    let lan = announce_from(&app, "192.168.1.5", "http://10.0.0.1").await;
    assert_eq!(lan.status(), 200);
    // The echo is the address the trusted proxy saw, not the proxy's own.
    assert_eq!(
        lan.json::<serde_json::Value>().await.unwrap()["external_ip"],
        "192.168.1.5"
    );
    let error = assert_json_error(
        announce_from(&app, "192.168.1.5", "http://localhost:8080").await,
        400,
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("from this machine"),
        "{error}"
    );
    // From the internet, no internal host joins, and the refusal says why.
    for url in [
        "http://127.0.0.1:8080",
        "http://10.0.0.2",
        "http://localhost",
        "http://169.254.169.254",
    ] {
        let error = assert_json_error(announce_from(&app, "8.8.8.8", url).await, 400).await;
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("tracker.private_seeders = same-network")
                && message.contains("public address 8.8.8.8"),
            "{error}"
        );
    }
    assert_eq!(
        announce_from(&app, "8.8.8.8", "http://93.184.216.34")
            .await
            .status(),
        200
    );
    // Leaving is always allowed: "stopped" needs no admission.
    let stopped = app
        .client
        .post(format!("{}/announce", app.url))
        .header("x-forwarded-for", "8.8.8.8")
        .json(&json!({"info_hash": hash(), "url": "http://10.0.0.9", "event": "stopped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 200);
}

#[actix_web::test]
async fn the_private_seeder_rule_can_be_forced_either_way() {
    let never = TestApp::spawn_with(&[], |o| {
        o.set("tracker.private_seeders", "never");
    })
    .await;
    let refused = never
        .announce(json!({"info_hash": hash(), "url": "http://127.0.0.1:9"}))
        .await;
    let error = assert_json_error(refused, 400).await;
    assert!(
        error["message"].as_str().unwrap().contains("= never"),
        "{error}"
    );

    let always = TestApp::spawn_with(&[], |o| {
        o.set("server.trusted_proxy_hops", 1);
        o.set("tracker.private_seeders", "always");
    })
    .await;
    assert_eq!(
        announce_from(&always, "8.8.8.8", "http://10.0.0.1")
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn new_seeders_can_be_verified_by_one_chunk_before_listing() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.verify_seeders", true);
    })
    .await;
    let data = content(10 * 16384);
    let meta = register(&app, "checked.bin", &data).await;
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
async fn seeder_verification_follows_no_redirect_and_keeps_the_fetch_error_to_itself() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.verify_seeders", true);
    })
    .await;
    let data = content(4 * 16384);
    let meta = register(&app, "v.bin", &data).await;
    // The real chunks are at `good`; a "seeder" that redirects the tracker there must fail.
    let good = FakeSeeder::start(data, 16384, Behaviour::Good).await;
    let target = good.url.clone();
    let redirector = actix_web::HttpServer::new(move || {
        let target = target.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest| {
                let location = format!("{target}{}", req.path());
                async move {
                    actix_web::HttpResponse::Found()
                        .insert_header(("location", location))
                        .finish()
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let redirector_url = format!("http://{}", redirector.addrs()[0]);
    actix_web::rt::spawn(redirector.run());

    let refused = app
        .announce(json!({"info_hash": meta.info_hash_v2.to_string(), "url": redirector_url}))
        .await;

    let error = assert_json_error(refused, 422).await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("could not fetch piece"), "{message}");
    assert!(
        !message.contains("302") && !message.contains(&good.url),
        "no detail echoed: {message}"
    );
    assert_eq!(good.requests(), 0, "the redirect was not followed");
}

#[actix_web::test]
async fn head_checks_the_file_is_still_the_one_hashed() {
    let app = TestApp::spawn_with(&[("head.bin", &content(3 * 16384)[..])], |o| {
        o.set("storage.rescan_interval_secs", 3600);
    })
    .await;
    app.wait_for_torrent("head.bin").await;
    assert_eq!(app.head_file("head.bin").await.status(), 200);

    std::fs::write(app.data_dir.join("head.bin"), content(16384 + 7)).unwrap();

    let response = app.head_file("head.bin").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
}

#[actix_web::test]
async fn a_file_changed_on_disk_is_never_served_under_its_old_torrent() {
    let original = content(3 * 16384);
    let app = TestApp::spawn_with(&[("changing.bin", &original[..])], |o| {
        o.set("seeder.piece_length", 16384);
        o.set("storage.rescan_interval_secs", 3600);
    })
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
    crate::support::poll("the new torrent to be shared", || async {
        let listed = app.list_torrents().await;
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "changing.bin" && t["info_hash_v2"] != old.as_str())
    })
    .await;
    crate::support::poll("the old torrent to be announced as stopped", || async {
        app.peer_urls(&old).await.is_empty()
    })
    .await;
    assert_json_error(app.get_chunk(&old, "0", None).await, 404).await;
    let fresh = app
        .get_chunk(&crate::support::percent_encode("changing.bin"), "0", None)
        .await;
    assert_eq!(fresh.bytes().await.unwrap(), &changed[..16384]);
}

#[actix_web::test]
async fn oversized_input_gets_a_clear_4xx() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.max_peers", 5);
    })
    .await;

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

#[actix_web::test]
async fn our_clients_report_the_servers_reason_for_a_refusal() {
    use gotorrent_http::seeder::announcer::TrackerClient;
    use gotorrent_http::types::{InfoHashV2, SeederUrl};
    let tracker = TestApp::spawn_with(&[], |o| {
        o.no_seeder = true;
        o.set("tracker.private_seeders", "never");
    })
    .await;
    let client = TrackerClient::Remote {
        base: url::Url::parse(&tracker.url).unwrap(),
        http: reqwest::Client::new(),
        token: None,
    };

    let error = client
        .announce(
            InfoHashV2([7; 32]),
            &SeederUrl::parse("http://127.0.0.1:9").unwrap(),
            None,
        )
        .await
        .unwrap_err();

    let text = format!("{error:#}");
    assert!(
        text.contains("400 Bad Request") && text.contains("tracker.private_seeders = never"),
        "{text}"
    );
}

#[actix_web::test]
async fn slow_readers_cannot_hold_every_stream() {
    use tokio::io::AsyncWriteExt;
    // Larger than the socket buffers on both sides can absorb (tcp_rmem may reach 32 MiB), so
    // an unread response really holds its stream.
    let data = content(96 << 20);
    let app = TestApp::spawn_with(&[("big file.bin", &data[..])], |o| {
        o.set("seeder.max_streams", 4);
        o.set("seeder.max_streams_per_client", 2);
        o.set("server.trusted_proxy_hops", 1);
    })
    .await;
    app.wait_for_torrent("big file.bin").await;
    // A fresh connection per request, as separate downloaders would open.
    let get_as = |client: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/files/big%20file.bin", app.url))
            .header("x-forwarded-for", client)
            .send()
    };

    // Two requests from one client that never read their bodies.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut socket = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = "GET /files/big%20file.bin HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n";
        socket.write_all(request.as_bytes()).await.unwrap();
        stalled.push(socket);
    }
    crate::support::poll("both slow streams to hold their permits", || async {
        get_as("198.51.100.9")
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;

    let refused = get_as("198.51.100.9").await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    let error = assert_json_error(refused, 503).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("seeder.max_streams_per_client"),
        "{error}"
    );
    let other = get_as("198.51.100.10").await.unwrap();
    assert_eq!(other.status(), 200, "another client still gets a stream");
    assert_eq!(other.bytes().await.unwrap().len(), data.len());
    drop(stalled);
}

/// A BEP 3 announce of a made-up torrent; returns the bencoded reply as text.
async fn bt_announce(app: &TestApp, torrent: u32, event: &str) -> String {
    let hash: String = format!("{torrent:040x}")
        .as_bytes()
        .chunks(2)
        .map(|pair| format!("%{}", std::str::from_utf8(pair).unwrap()))
        .collect();
    let url = format!(
        "{}/announce?info_hash={hash}&peer_id=-XX0001-aaaaaaaaaaaa&port=6881&left=0&event={event}",
        app.url
    );
    String::from_utf8_lossy(&app.get_bytes(&url).await).into_owned()
}

#[actix_web::test]
async fn tracker_memory_is_capped_and_a_full_table_says_so() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.max_swarms", 5);
        o.set("tracker.max_torrents", 1);
    })
    .await;

    // Completed events for random info-hashes: each a swarm, up to the cap.
    for torrent in 0..5 {
        assert!(bt_announce(&app, torrent, "completed")
            .await
            .contains("8:interval"));
    }
    let refused = bt_announce(&app, 99, "completed").await;
    assert!(
        refused.contains("failure reason") && refused.contains("tracker.max_swarms = 5"),
        "{refused}"
    );
    // The native swarm table has the same cap.
    for torrent in 0..5u8 {
        let hash = format!("{torrent:02x}").repeat(32);
        let ok = app
            .announce(json!({"info_hash": hash, "url": "http://127.0.0.1:9"}))
            .await;
        assert_eq!(ok.status(), 200);
    }
    let full = app
        .announce(json!({"info_hash": "ff".repeat(32), "url": "http://127.0.0.1:9"}))
        .await;
    assert_eq!(full.headers()["retry-after"], "60");
    let error = assert_json_error(full, 503).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("tracker.max_swarms"),
        "{error}"
    );
    // And the registry.
    let torrent = |name: &str| {
        create::from_bytes(name, b"x", PieceLength::new(16384).unwrap(), vec![], vec![])
            .unwrap()
            .bytes
            .to_vec()
    };
    assert_eq!(app.register_torrent(torrent("one.bin")).await.status(), 201);
    let error = assert_json_error(app.register_torrent(torrent("two.bin")).await, 503).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("tracker.max_torrents = 1"),
        "{error}"
    );
}

#[actix_web::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn().await;
    for n in 0..50 {
        let method = reqwest::Method::from_bytes(format!("BREW{n}").as_bytes()).unwrap();
        app.client
            .request(method, format!("{}/torrents", app.url))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
}

#[actix_web::test]
async fn a_body_of_millions_of_empty_lists_is_refused_without_decoding_it_all() {
    let app = TestApp::spawn().await;
    let mut body = b"l".to_vec();
    body.extend(b"le".repeat((5 << 20) - 1));
    body.push(b'e');
    assert_eq!(body.len(), 10 << 20, "just within server.max_body_bytes");

    let started = std::time::Instant::now();
    let error = assert_json_error(app.register_torrent(body).await, 422).await;

    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("more than 1000000 values"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
