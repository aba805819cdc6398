//! Micro-benchmarks of the hot pure code: piece hashing and verification, bencode, and announce
//! handling. `cargo bench --bench micro`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gotorrent_http::bencode;
use gotorrent_http::metainfo::{create, merkle, Metainfo};
use gotorrent_http::tracker::bep3::{self, AnnounceEvent};
use gotorrent_http::tracker::bt_swarm::{Announce, BtSwarms};
use gotorrent_http::tracker::Limits;
use gotorrent_http::types::PieceLength;

fn hashing(c: &mut Criterion) {
    let piece = vec![7u8; 1 << 20];
    let pl = PieceLength::new(1 << 20).unwrap();
    let mut group = c.benchmark_group("pieces");
    group.throughput(Throughput::Bytes(piece.len() as u64));
    group.bench_function("BEP 52 piece hash, 1 MiB (download verification)", |b| {
        b.iter(|| merkle::piece_hash(black_box(&piece), pl, 16 << 20))
    });
    group.bench_function("create: SHA-1 + SHA-256 of 1 MiB", |b| {
        b.iter(|| create::hash_reader(black_box(&piece[..]), pl, &|_| {}).unwrap())
    });
    group.finish();
}

fn torrents(c: &mut Criterion) {
    // A 4 GiB file's torrent at 1 MiB pieces: 4096 pieces, about 213 KB of metainfo.
    let pieces = 4096usize;
    let meta = Metainfo::new(
        "big.iso",
        pieces as u64 * (1 << 20),
        PieceLength::new(1 << 20).unwrap(),
        vec![[1; 20]; pieces],
        (0..pieces).map(|i| [i as u8; 32]).collect(),
        vec!["http://t.example/announce".into()],
        vec!["http://s.example/files/".into()],
    )
    .unwrap();
    let bytes = meta.bytes.to_vec();
    let mut group = c.benchmark_group("metainfo");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("bencode decode, 4096-piece torrent", |b| {
        b.iter(|| bencode::decode(black_box(&bytes)).unwrap())
    });
    group.bench_function("metainfo parse + validate, 4096-piece torrent", |b| {
        b.iter(|| Metainfo::from_bytes(black_box(&bytes)).unwrap())
    });
    let value = bencode::decode(&bytes).unwrap().value;
    group.bench_function("bencode encode, 4096-piece torrent", |b| {
        b.iter(|| black_box(&value).encode())
    });
    group.finish();
}

fn announces(c: &mut Criterion) {
    let query = format!(
        "info_hash={}&peer_id=-qB4650-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1000&event=started&compact=1&numwant=50",
        "%AB".repeat(20)
    );
    let mut group = c.benchmark_group("tracker");
    group.bench_function("BEP 3 query parse", |b| {
        b.iter(|| bep3::parse_announce(black_box(&query)).unwrap())
    });
    let peers: Vec<_> = (0..50u16)
        .map(|i| bep3::PeerAddr {
            peer_id: [i as u8; 20],
            addr: SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881 + i)),
        })
        .collect();
    let reply = bep3::AnnounceReply {
        interval: 1800,
        min_interval: 900,
        complete: 25,
        incomplete: 25,
        peers: &peers,
        external_ip: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    group.bench_function("BEP 3 compact reply encode, 50 peers", |b| {
        b.iter(|| bep3::encode_announce(black_box(&reply), true, false))
    });
    group.bench_function(
        "announce into 1000 torrents x 50 peers, compact reply",
        |b| {
            b.iter_batched_ref(
                || {
                    let mut swarms = BtSwarms::new(120, Limits::default());
                    for t in 0..1000u32 {
                        for p in 0..50u32 {
                            swarms.announce(announce(t, p, None), 0).unwrap();
                        }
                    }
                    (swarms, 0u32)
                },
                |(swarms, n)| {
                    *n += 1;
                    let outcome = swarms
                        .announce(
                            announce(*n % 1000, 50 + *n, Some(AnnounceEvent::Started)),
                            1,
                        )
                        .unwrap();
                    let reply = bep3::AnnounceReply {
                        interval: 60,
                        min_interval: 30,
                        complete: outcome.stats.complete,
                        incomplete: outcome.stats.incomplete,
                        peers: &outcome.peers,
                        external_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                    };
                    black_box(bep3::encode_announce(&reply, true, false))
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

/// How an announce's cost grows with the tracker's state: swarms of 10 peers in 1k, 100k and
/// 1M torrents, and 1k torrents of 1,000 peers. Each measured announce is a known peer's
/// re-announce (the bulk of real traffic), so the state stays the size it was built at.
fn announce_scaling(c: &mut Criterion) {
    let unlimited = Limits {
        max_torrents: usize::MAX,
        max_swarms: usize::MAX,
        max_peers_per_swarm: usize::MAX,
        max_seeders: usize::MAX,
        max_bittorrent_peers: usize::MAX,
    };
    let mut group = c.benchmark_group("tracker scaling");
    for (torrents, peers) in [
        (1_000u32, 10u32),
        (100_000, 10),
        (1_000_000, 10),
        (1_000, 1_000),
    ] {
        let mut swarms = BtSwarms::new(120, unlimited);
        for t in 0..torrents {
            for p in 0..peers {
                swarms.announce(announce(t, p, None), 0).unwrap();
            }
        }
        let mut n = 0u64;
        group.bench_function(
            format!("re-announce, {torrents} torrents x {peers} peers, compact reply"),
            |b| {
                b.iter(|| {
                    // A different torrent and peer each time, spread over the whole state.
                    n = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let t = (n >> 32) as u32 % torrents;
                    let p = (n as u32) % peers;
                    let outcome = swarms.announce(announce(t, p, None), 1).unwrap();
                    black_box(outcome.peers.len())
                })
            },
        );
    }
    group.finish();
}

fn announce(torrent: u32, peer: u32, event: Option<AnnounceEvent>) -> Announce {
    let mut key = [0u8; 20];
    key[..4].copy_from_slice(&torrent.to_be_bytes());
    let mut peer_id = [0u8; 20];
    peer_id[..4].copy_from_slice(&peer.to_be_bytes());
    Announce {
        key,
        peer_id,
        addr: SocketAddr::from(([10, 0, (peer >> 8) as u8, peer as u8], 6881)),
        left: u64::from(peer % 2),
        event,
        numwant: 50,
    }
}

criterion_group!(benches, hashing, torrents, announces, announce_scaling);
criterion_main!(benches);
