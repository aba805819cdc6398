//! The BitTorrent tracker protocol over HTTP (BEP 3, 7, 23, 48), web-seed behaviour and magnets,
//! spoken with hand-built requests.

use crate::support::{content, scrape_stats, TestApp};
use gotorrent_http::bencode::{self, Value};
use gotorrent_http::metainfo::create;
use gotorrent_http::types::PieceLength;

fn escape(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `GET /announce` with raw bytes, as a client sends it; returns the decoded body.
async fn announce(
    app: &TestApp,
    hash: &[u8; 20],
    peer: u8,
    port: u16,
    left: u64,
    extra: &str,
    headers: &[(&str, &str)],
) -> Value {
    let url = format!(
        "{}/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        app.url,
        escape(hash),
        escape(&[peer; 20])
    );
    let mut req = app.client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-bittorrent"
    );
    bencode::decode(&response.bytes().await.unwrap())
        .unwrap()
        .value
}

#[actix_web::test]
async fn announce_returns_compact_peers_and_counts_and_scrape_agrees() {
    let app = TestApp::spawn().await;
    let hash = [7u8; 20];

    let first = announce(&app, &hash, 1, 6881, 0, "&event=started", &[]).await;
    assert_eq!(first.get("interval").unwrap().as_int(), Some(60));
    assert!(first.get("min interval").is_some());
    // BEP 24: the client's own address, as the tracker sees it.
    assert_eq!(
        first.get("external ip").unwrap().as_bytes().unwrap(),
        &[127, 0, 0, 1]
    );
    assert_eq!(first.get("peers").unwrap().as_bytes().unwrap().len(), 0);

    let second = announce(&app, &hash, 2, 6882, 1000, "&event=started&compact=1", &[]).await;
    assert_eq!(
        second.get("peers").unwrap().as_bytes().unwrap(),
        &[127, 0, 0, 1, 0x1a, 0xe1]
    );
    assert_eq!(second.get("complete").unwrap().as_int(), Some(1));
    assert_eq!(second.get("incomplete").unwrap().as_int(), Some(1));

    let listed = announce(&app, &hash, 3, 6883, 1000, "&compact=0", &[]).await;
    let peers = listed.get("peers").unwrap().as_list().unwrap();
    assert_eq!(peers.len(), 2);
    assert!(peers
        .iter()
        .all(|p| p.get("ip").unwrap().as_str() == Some("127.0.0.1") && p.get("peer id").is_some()));

    announce(&app, &hash, 2, 6882, 0, "&event=completed", &[]).await;
    announce(&app, &hash, 3, 6883, 1000, "&event=stopped", &[]).await;
    assert_eq!(scrape_stats(&app.scrape(&[hash]).await, &hash), (2, 0, 1));
    let everything = app.scrape(&[]).await;
    assert_eq!(scrape_stats(&everything, &hash), (2, 0, 1));
}

#[actix_web::test]
async fn errors_are_bencoded_failure_reasons_with_status_200() {
    let app = TestApp::spawn().await;
    for query in [
        "",
        "info_hash=short&peer_id=x&port=1",
        &format!(
            "info_hash={}&peer_id={}&port=0",
            escape(&[1; 20]),
            escape(&[1; 20])
        ),
    ] {
        let response = app
            .client
            .get(format!("{}/announce?{query}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = bencode::decode(&response.bytes().await.unwrap())
            .unwrap()
            .value;
        assert!(
            body.get("failure reason").unwrap().as_str().is_some(),
            "{query}"
        );
    }
    let too_many = app.scrape(&[[1; 20]; 101]).await;
    assert!(too_many.get("failure reason").is_some());
}

#[actix_web::test]
async fn a_hybrid_torrents_v1_and_truncated_v2_hashes_share_one_swarm() {
    let app = TestApp::spawn().await;
    let meta = create::from_bytes(
        "hybrid.bin",
        &content(50_000),
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    app.register_torrent(meta.bytes.to_vec()).await;
    let v1 = meta.info_hash_v1.0;
    let v2_truncated: [u8; 20] = meta.info_hash_v2.0[..20].try_into().unwrap();

    announce(&app, &v1, 1, 7001, 0, "", &[]).await;
    let reply = announce(&app, &v2_truncated, 2, 7002, 100, "", &[]).await;

    assert_eq!(
        reply.get("peers").unwrap().as_bytes().unwrap().len(),
        6,
        "the v2 announcer sees the v1 one"
    );
    let scraped = app.scrape(&[v1, v2_truncated]).await;
    assert_eq!(scrape_stats(&scraped, &v1), (1, 1, 0));
    assert_eq!(scrape_stats(&scraped, &v2_truncated), (1, 1, 0));
}

#[actix_web::test]
async fn forwarded_addresses_only_behind_a_trusted_proxy_and_ip_only_when_allowed() {
    let hash = [9u8; 20];
    let xff = [("x-forwarded-for", "203.0.113.9, 2001:db8::7")];

    // Default: X-Forwarded-For and ip= are ignored; the socket address is used.
    let plain = TestApp::spawn().await;
    announce(&plain, &hash, 1, 7001, 0, "&ip=198.51.100.1", &xff).await;
    let seen = announce(&plain, &hash, 2, 7002, 10, "", &[]).await;
    assert_eq!(
        seen.get("peers").unwrap().as_bytes().unwrap(),
        &[127, 0, 0, 1, 0x1b, 0x59]
    );

    // One trusted hop: the address that proxy saw (the rightmost entry), IPv6 in peers6.
    let proxied = TestApp::spawn_with(&[], |o| {
        o.set("server.trusted_proxy_hops", 1);
    })
    .await;
    announce(&proxied, &hash, 1, 7001, 0, "", &xff).await;
    let seen = announce(&proxied, &hash, 2, 7002, 10, "", &[]).await;
    let v6 = seen.get("peers6").unwrap().as_bytes().unwrap();
    assert_eq!(
        &v6[..16],
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );

    // ip= honoured only when configured.
    let trusting = TestApp::spawn_with(&[], |o| {
        o.set("tracker.accept_ip_param", true);
    })
    .await;
    announce(&trusting, &hash, 1, 7001, 0, "&ip=198.51.100.1", &[]).await;
    let seen = announce(&trusting, &hash, 2, 7002, 10, "", &[]).await;
    assert_eq!(
        &seen.get("peers").unwrap().as_bytes().unwrap()[..4],
        &[198, 51, 100, 1]
    );
}

#[actix_web::test]
async fn torrents_list_magnets_that_download_can_use() {
    let data = content(70_000);
    let app = TestApp::spawn_with(&[("magnetic ü.bin", &data[..])], |_| {}).await;
    let summary = app.wait_for_torrent("magnetic ü.bin").await;
    let magnet = summary["magnet"].as_str().unwrap();
    assert!(magnet.contains(&format!(
        "urn:btih:{}",
        summary["info_hash_v1"].as_str().unwrap()
    )));
    assert!(magnet.contains(&format!(
        "urn:btmh:1220{}",
        summary["info_hash_v2"].as_str().unwrap()
    )));
    assert!(magnet.contains("&tr=") && magnet.contains("&ws="));

    // By its tracker, and with only a web seed to go on.
    let out = tempfile::tempdir().unwrap();
    let options = gotorrent_http::download::Options::new(magnet, out.path().join("a"));
    gotorrent_http::download::download(&options, &gotorrent_http::download::Silent)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("a/magnetic ü.bin")).unwrap(),
        data
    );
    let ws_only: String = magnet
        .split('&')
        .filter(|p| !p.starts_with("tr="))
        .collect::<Vec<_>>()
        .join("&");
    let options = gotorrent_http::download::Options::new(ws_only, out.path().join("b"));
    gotorrent_http::download::download(&options, &gotorrent_http::download::Silent)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("b/magnetic ü.bin")).unwrap(),
        data
    );
}

#[actix_web::test]
async fn a_busy_seeder_answers_503_with_retry_after() {
    // Larger than the socket buffers on both sides can absorb (tcp_rmem may reach 32 MiB), so
    // an unread response really holds its stream.
    let data = content(96 * 1024 * 1024);
    let app = TestApp::spawn_with(&[("busy.bin", &data[..])], |o| {
        o.set("seeder.max_streams", 1);
    })
    .await;
    app.wait_for_torrent("busy.bin").await;
    // Hold the only stream open by not reading the body.
    let held = app.get_file("busy.bin", &[]).await;
    let refused = app.get_file("busy.bin", &[]).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    crate::support::assert_json_error(refused, 503).await;
    drop(held);
    crate::support::poll("the stream permit to be released", || async {
        app.get_file("busy.bin", &[("range", "bytes=0-0")])
            .await
            .status()
            == 206
    })
    .await;
}
