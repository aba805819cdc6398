//! Several tracker instances sharing one real Redis (`tracker.redis_url`): what one is told,
//! every one answers; Redis going away is a clear 503 and recovers by itself.

use crate::support::{assert_json_error, content, poll, scrape_stats, RedisServer, TestApp};
use gotorrent_http::metainfo::create;
use gotorrent_http::settings::Overrides;
use gotorrent_http::types::PieceLength;
use serde_json::json;

/// A tracker-only instance on `redis`.
async fn tracker_on(redis: &RedisServer) -> TestApp {
    let url = redis.url.clone();
    TestApp::spawn_with(&[], move |o| {
        o.no_seeder = true;
        o.set("tracker.redis_url", url);
    })
    .await
}

fn bt_announce_url(app: &TestApp, hash: &[u8; 20], peer: char, event: &str) -> String {
    format!(
        "{}/announce?info_hash={}&peer_id=-XX0001-{}&port=6881&left=0&event={event}",
        app.url,
        percent_encoding::percent_encode(hash, percent_encoding::NON_ALPHANUMERIC),
        peer.to_string().repeat(12),
    )
}

#[actix_web::test]
async fn tracker_instances_sharing_redis_answer_for_each_other() {
    let redis = RedisServer::start();
    let (a, b) = (tracker_on(&redis).await, tracker_on(&redis).await);
    let meta = create::from_bytes(
        "shared ü.bin",
        &content(40_000),
        PieceLength::new(16384).unwrap(),
        vec![],
        vec![],
    )
    .unwrap();
    let v2 = meta.info_hash_v2.to_string();

    // Registered through A, served by B at once, by either hash.
    assert_eq!(a.register_torrent(meta.bytes.to_vec()).await.status(), 201);
    assert_eq!(b.register_torrent(meta.bytes.to_vec()).await.status(), 200);
    assert_eq!(
        b.get_torrent(&v2).await.bytes().await.unwrap()[..],
        meta.bytes[..]
    );
    assert_eq!(
        b.get_torrent(&meta.info_hash_v1.to_string()).await.status(),
        200
    );
    assert_eq!(b.list_torrents().await.as_array().unwrap().len(), 1);
    let past_it = b.list_torrents_page(&format!("after={v2}")).await;
    assert!(past_it.headers().get("link").is_none());
    assert_eq!(
        past_it.json::<serde_json::Value>().await.unwrap(),
        json!([])
    );
    assert_eq!(
        crate::support::metric(&b.url, "gotorrent_torrents").await,
        1.0
    );

    // A seeder announced to A is listed by B; "stopped" to B removes it everywhere.
    let seeder = json!({"info_hash": v2, "url": "http://127.0.0.1:9", "event": "started"});
    assert_eq!(a.announce(seeder).await.status(), 200);
    assert_eq!(b.peer_urls(&v2).await, ["http://127.0.0.1:9"]);
    let summary = &b.list_torrents().await[0];
    assert_eq!(summary["seeders"], 1);
    let stopped = json!({"info_hash": v2, "url": "http://127.0.0.1:9", "event": "stopped"});
    assert_eq!(b.announce(stopped).await.status(), 200);
    assert!(a.peer_urls(&v2).await.is_empty());

    // BitTorrent: a peer announced to A is handed out by B, and its download is counted once.
    let v1 = meta.info_hash_v1.0;
    a.get_bytes(&bt_announce_url(&a, &v1, 'a', "completed"))
        .await;
    a.get_bytes(&bt_announce_url(&a, &v1, 'a', "completed"))
        .await;
    let reply = b.get_bytes(&bt_announce_url(&b, &v1, 'b', "started")).await;
    let reply = gotorrent_http::bencode::decode(&reply).unwrap().value;
    assert_eq!(
        reply.get("complete").unwrap().as_int(),
        Some(2),
        "{reply:?}"
    );
    let (complete, _, downloaded) = scrape_stats(&b.scrape(&[v1]).await, &v1);
    assert_eq!((complete, downloaded), (2, 1));
}

#[actix_web::test]
async fn redis_going_away_is_a_clear_503_and_the_tracker_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let app = tracker_on(&redis).await;
    let hash = "ab".repeat(32);
    let seeder = json!({"info_hash": hash, "url": "http://127.0.0.1:9"});
    assert_eq!(app.announce(seeder.clone()).await.status(), 200);
    assert_eq!(app.ready().await.status(), 200);

    redis.kill();
    let error = assert_json_error(app.peers(&hash).await, 503).await;
    assert!(
        error["message"].as_str().unwrap().contains("Redis"),
        "{error}"
    );
    let ready = app
        .client
        .get(format!("{}/ready", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let bt = app
        .get_bytes(&bt_announce_url(&app, &[7; 20], 'c', "started"))
        .await;
    assert!(String::from_utf8_lossy(&bt).contains("failure reason"));

    redis.restart();
    poll("the tracker to reach Redis again", || async {
        app.peers(&hash).await.status() == 200
    })
    .await;
    assert_eq!(
        app.peer_urls(&hash).await,
        ["http://127.0.0.1:9"],
        "the append-only file kept it"
    );
    assert_eq!(app.ready().await.status(), 200);
}

#[actix_web::test]
async fn redis_expires_silent_seeders_for_every_instance() {
    let redis = RedisServer::start();
    let url = redis.url.clone();
    let quick = |url: String| {
        move |o: &mut Overrides| {
            o.no_seeder = true;
            o.set("tracker.redis_url", url);
            // Told to announce every second: silent for more than 2 s is gone.
            o.set("tracker.announce_interval_secs", 1);
        }
    };
    let a = TestApp::spawn_with(&[], quick(url.clone())).await;
    let b = TestApp::spawn_with(&[], quick(url)).await;
    let hash = "cd".repeat(32);
    let seeder = json!({"info_hash": hash, "url": "http://127.0.0.1:9"});
    assert_eq!(a.announce(seeder).await.status(), 200);
    assert_eq!(b.peer_urls(&hash).await.len(), 1);

    poll("the silent seeder to expire", || async {
        b.peer_urls(&hash).await.is_empty()
    })
    .await;
}

mod parity {
    //! The same scenarios against both implementations of each store: the embedded ones every
    //! test already covers (memory swarms, the SQLite registry) and Redis. Time is an argument,
    //! so both are deterministic.

    use std::net::SocketAddr;
    use std::sync::Arc;

    use gotorrent_http::db::StateDb;
    use gotorrent_http::metainfo::{create, Metainfo};
    use gotorrent_http::tracker::bep3::AnnounceEvent;
    use gotorrent_http::tracker::bt_swarm::Announce;
    use gotorrent_http::tracker::redis_store::{connect, RedisSwarms, RedisTorrents};
    use gotorrent_http::tracker::store::{
        MemorySwarms, SqliteTorrents, StoreError, SwarmStore, TorrentStore,
    };
    use gotorrent_http::tracker::swarm::Event;
    use gotorrent_http::tracker::{Limits, Registered};
    use gotorrent_http::types::{InfoHash, InfoHashV2, PieceLength, SeederUrl};

    use crate::support::RedisServer;

    const TTL: u64 = 120;

    fn limits() -> Limits {
        Limits {
            max_swarms: 3,
            max_peers_per_swarm: 4,
            ..Limits::default()
        }
    }

    fn peer(key: u8, peer: u8, left: u64, event: Option<AnnounceEvent>) -> Announce {
        Announce {
            key: [key; 20],
            peer_id: [peer; 20],
            addr: SocketAddr::from(([10, 0, 0, peer], 6881)),
            left,
            event,
            numwant: 50,
        }
    }

    fn full_key(e: StoreError) -> &'static str {
        match e {
            StoreError::Full(full) => full.key,
            other => panic!("{other}"),
        }
    }

    async fn bittorrent_scenarios(store: &dyn SwarmStore) {
        use AnnounceEvent::{Completed, Started, Stopped};
        // Counts, and a download counted once per peer.
        store
            .bt_announce(peer(1, 1, 0, Some(Started)), 100)
            .await
            .unwrap();
        let out = store
            .bt_announce(peer(1, 2, 500, Some(Started)), 100)
            .await
            .unwrap();
        assert_eq!(out.peers.len(), 1, "the leecher gets the seeder");
        assert_eq!((out.stats.complete, out.stats.incomplete), (1, 1));
        store
            .bt_announce(peer(1, 2, 0, Some(Completed)), 101)
            .await
            .unwrap();
        store
            .bt_announce(peer(1, 2, 0, Some(Completed)), 102)
            .await
            .unwrap();
        let stats = &store.bt_stats(vec![[1; 20]], 102).await.unwrap()[0];
        assert_eq!(
            (stats.complete, stats.incomplete, stats.downloaded),
            (2, 0, 1)
        );
        // Seeders are not sent seeders; leechers get everyone; numwant caps.
        let out = store.bt_announce(peer(1, 3, 0, None), 103).await.unwrap();
        assert!(out.peers.is_empty(), "{:?}", out.peers);
        let mut leecher = peer(1, 4, 10, None);
        leecher.numwant = 2;
        let out = store.bt_announce(leecher, 103).await.unwrap();
        assert_eq!(out.peers.len(), 2);
        assert!(
            out.peers.iter().all(|p| p.peer_id != [4; 20]),
            "never itself"
        );
        // The swarm is full at 4 peers; a known peer still refreshes.
        let refused = store
            .bt_announce(peer(1, 5, 10, None), 104)
            .await
            .unwrap_err();
        assert_eq!(full_key(refused), "tracker.max_peers_per_swarm");
        store.bt_announce(peer(1, 4, 10, None), 104).await.unwrap();
        // Stopped removes at once; silence expires after the TTL.
        store
            .bt_announce(peer(1, 4, 10, Some(Stopped)), 105)
            .await
            .unwrap();
        let stats = &store.bt_stats(vec![[1; 20]], 105).await.unwrap()[0];
        assert_eq!((stats.complete, stats.incomplete), (3, 0));
        let stats = &store.bt_stats(vec![[1; 20]], 104 + TTL + 1).await.unwrap()[0];
        assert_eq!(
            (stats.complete, stats.incomplete, stats.downloaded),
            (0, 0, 1)
        );
        // Swarm table cap: three swarms at most.
        store.bt_announce(peer(2, 1, 10, None), 106).await.unwrap();
        store.bt_announce(peer(3, 1, 10, None), 106).await.unwrap();
        let refused = store
            .bt_announce(peer(4, 1, 10, None), 106)
            .await
            .unwrap_err();
        assert_eq!(full_key(refused), "tracker.max_swarms");
    }

    async fn seeder_scenarios(store: &dyn SwarmStore) {
        let torrent = InfoHash::V2(InfoHashV2([9; 32]));
        let url = |n: u8| SeederUrl::parse(&format!("http://10.0.1.{n}:8080")).unwrap();
        store
            .announce(torrent, url(1), Some(Event::Started), 1000)
            .await
            .unwrap();
        store.announce(torrent, url(2), None, 1001).await.unwrap();
        store.announce(torrent, url(1), None, 1002).await.unwrap();
        let peers = store.seeders(torrent, 1002, 10).await.unwrap();
        let urls: Vec<&str> = peers.iter().map(|p| p.url.as_str()).collect();
        assert_eq!(
            urls,
            ["http://10.0.1.1:8080", "http://10.0.1.2:8080"],
            "freshest first"
        );
        assert_eq!((peers[0].first_seen, peers[0].last_announce), (1000, 1002));
        assert!(store.is_listed(torrent, url(2), 1002).await.unwrap());
        assert_eq!(store.live_seeders(vec![torrent], 1002).await.unwrap(), [2]);
        let unknown = InfoHash::V2(InfoHashV2([8; 32]));
        assert_eq!(
            store
                .live_seeders(vec![unknown, torrent], 1002)
                .await
                .unwrap(),
            [0, 2],
            "one call for many swarms, in order"
        );
        assert!(store.live_seeders(vec![], 1002).await.unwrap().is_empty());
        assert_eq!(store.total_live_seeders(1002).await.unwrap(), 2);
        store
            .announce(torrent, url(1), Some(Event::Stopped), 1003)
            .await
            .unwrap();
        assert_eq!(store.seeders(torrent, 1003, 1).await.unwrap().len(), 1);
        assert_eq!(
            store
                .live_seeders(vec![torrent], 1001 + TTL + 1)
                .await
                .unwrap(),
            [0]
        );
        assert!(!store
            .is_listed(torrent, url(2), 1001 + TTL + 1)
            .await
            .unwrap());
    }

    fn torrent(n: usize) -> Metainfo {
        let name = format!("registered {n} é.bin");
        create::from_bytes(
            &name,
            name.as_bytes(),
            PieceLength::new(16384).unwrap(),
            vec![],
            vec![],
        )
        .unwrap()
    }

    async fn registry_scenarios(store: &dyn TorrentStore) {
        let (a, b) = (torrent(1), torrent(2));
        let (outcome, stored) = store.insert(a.clone(), 3, 10).await.unwrap();
        assert_eq!(
            (outcome, stored.info_hash_v2),
            (Registered::Created, a.info_hash_v2)
        );
        let (outcome, _) = store.insert(a.clone(), 3, 11).await.unwrap();
        assert_eq!(outcome, Registered::Existing);
        store.insert(b.clone(), 3, 12).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);

        // Found by every hash a client may use.
        let truncated: [u8; 20] = a.info_hash_v2.0[..20].try_into().unwrap();
        for found in [
            store.get(InfoHash::V2(a.info_hash_v2)).await.unwrap(),
            store.get(InfoHash::V1(a.info_hash_v1)).await.unwrap(),
            store.get_bt(a.info_hash_v1.0).await.unwrap(),
            store.get_bt(truncated).await.unwrap(),
        ] {
            assert_eq!(found.unwrap().bytes, a.bytes);
        }
        assert!(store.get_bt([7; 20]).await.unwrap().is_none());
        let unknown = InfoHashV2([7; 32]);
        assert_eq!(
            store
                .contains(vec![a.info_hash_v2, unknown, b.info_hash_v2])
                .await
                .unwrap(),
            [true, false, true],
            "one call for many, in order"
        );
        assert!(store.contains(vec![]).await.unwrap().is_empty());

        // Listed in registration order, and paged in v2 hash order.
        let all: Vec<_> = store
            .all()
            .await
            .unwrap()
            .iter()
            .map(|m| m.info_hash_v2)
            .collect();
        assert_eq!(all, [a.info_hash_v2, b.info_hash_v2]);
        let mut sorted = all.clone();
        sorted.sort();
        let first = store.page(None, 1).await.unwrap();
        assert_eq!(first[0].info_hash_v2, sorted[0]);
        let rest = store.page(Some(sorted[0]), 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].info_hash_v2, sorted[1]);

        // Full at its cap; a known torrent is still answered.
        store.insert(torrent(3), 3, 13).await.unwrap();
        let refused = store.insert(torrent(4), 3, 14).await.unwrap_err();
        assert_eq!(full_key(refused), "tracker.max_torrents");
        assert_eq!(
            store.insert(b, 3, 15).await.unwrap().0,
            Registered::Existing
        );
    }

    /// Registrations racing for the last places: exactly the cap is acknowledged and kept.
    async fn registrations_racing_at_the_cap(store: Arc<dyn TorrentStore>) {
        const CAP: usize = 10;
        let racing = (100..140).map(|n| {
            let store = store.clone();
            actix_web::rt::spawn(async move { store.insert(torrent(n), CAP, 20).await })
        });
        let outcomes = futures_util::future::join_all(racing).await;
        let created = outcomes
            .into_iter()
            .filter(|o| matches!(o.as_ref().unwrap(), Ok((Registered::Created, _))))
            .count();
        assert_eq!(created, CAP, "registrations acknowledged past the cap");
        assert_eq!(store.count().await.unwrap(), CAP);
        assert_eq!(store.all().await.unwrap().len(), CAP);
    }

    #[actix_web::test]
    async fn sqlite_and_redis_registries_agree() {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = |name: &str| -> Arc<dyn TorrentStore> {
            let db = Arc::new(StateDb::open(&dir.path().join(name)).unwrap());
            Arc::new(SqliteTorrents::load(db).unwrap())
        };
        let redis_store = |db: u8| -> Arc<dyn TorrentStore> {
            let url = redis.url.replace("/0", &format!("/{db}"));
            Arc::new(RedisTorrents::new(connect(&url).unwrap()))
        };
        for (store, racing) in [
            (sqlite("scenarios"), sqlite("race")),
            (redis_store(1), redis_store(2)),
        ] {
            registry_scenarios(&*store).await;
            registrations_racing_at_the_cap(racing).await;
        }
    }

    #[actix_web::test]
    async fn memory_and_redis_swarm_stores_agree() {
        let redis = RedisServer::start();
        let stores: [Arc<dyn SwarmStore>; 2] = [
            Arc::new(MemorySwarms::new(TTL, limits())),
            Arc::new(RedisSwarms::new(
                connect(&redis.url).unwrap(),
                TTL,
                limits(),
            )),
        ];
        for store in stores {
            bittorrent_scenarios(&*store).await;
            seeder_scenarios(&*store).await;
        }
    }
}
