//! BitTorrent peers per 20-byte swarm key: a pure structure (time passed in, no I/O), the
//! BEP 3 counterpart of [`super::swarm::Swarms`] for HTTP seeders.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::bep3::{AnnounceEvent, PeerAddr, ScrapeStats};
use super::{Full, Limits, Table};

#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    left: u64,
    last_announce: u64,
    completed: bool,
}

/// One swarm. Its counts are kept as peers come, change and go, so an announce costs the
/// same in a swarm of 10 peers and of 10,000 (counting on each announce cost 17.8 us per
/// announce at 1,000 peers, 0.4 us at 10).
///
/// Invariant: `complete` and `incomplete` count the peers in `peers` by `left == 0`, and every
/// peer's `last_announce` is at least `oldest`. Peers past the TTL may linger until an
/// announce finds `oldest` past it and sweeps the swarm, so answers never count them.
#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<[u8; 20], Peer>,
    /// "completed" events seen (BEP 48 `downloaded`).
    downloaded: u64,
    complete: usize,
    incomplete: usize,
    oldest: u64,
}

impl Swarm {
    /// The counts kept, exact while no peer has passed the TTL (see [`Swarm::sweep`]).
    fn kept_stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.complete,
            incomplete: self.incomplete,
            downloaded: self.downloaded,
        }
    }

    fn count(&mut self, peer: &Peer, delta: isize) {
        let count = if peer.left == 0 {
            &mut self.complete
        } else {
            &mut self.incomplete
        };
        *count = count.wrapping_add_signed(delta);
    }

    /// Drops the peers silent for longer than `ttl`, when there may be any; returns how many.
    fn sweep(&mut self, now: u64, ttl: u64) -> usize {
        if now.saturating_sub(self.oldest) <= ttl {
            return 0;
        }
        let before = self.peers.len();
        self.peers
            .retain(|_, p| now.saturating_sub(p.last_announce) <= ttl);
        (self.complete, self.incomplete) = (0, 0);
        self.oldest = now;
        let peers: Vec<Peer> = self.peers.values().copied().collect();
        for peer in &peers {
            self.count(peer, 1);
            self.oldest = self.oldest.min(peer.last_announce);
        }
        before - self.peers.len()
    }
}

#[derive(Debug)]
pub struct BtSwarms {
    swarms: HashMap<[u8; 20], Swarm>,
    peer_ttl: u64,
    limits: Limits,
    /// Peers over all swarms (live or not yet expired), kept against
    /// `limits.max_bittorrent_peers`.
    peers: usize,
}

/// One announce, already validated and with the peer's address decided.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    pub key: [u8; 20],
    pub peer_id: [u8; 20],
    pub addr: SocketAddr,
    pub left: u64,
    pub event: Option<AnnounceEvent>,
    pub numwant: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct AnnounceOutcome {
    pub stats: ScrapeStats,
    /// Other live peers, at most `numwant`.
    pub peers: Vec<PeerAddr>,
}

impl BtSwarms {
    pub fn new(peer_ttl_secs: u64, limits: Limits) -> Self {
        BtSwarms {
            swarms: HashMap::new(),
            peer_ttl: peer_ttl_secs,
            limits,
            peers: 0,
        }
    }

    /// Refuses a peer this announce would add, if a cap is reached.
    fn room_for(&self, a: &Announce) -> Result<(), Full> {
        let swarm = self.swarms.get(&a.key);
        if swarm.is_some_and(|s| s.peers.contains_key(&a.peer_id)) {
            return Ok(());
        }
        let in_swarm = swarm.map(|s| s.peers.len());
        self.limits.room_for(
            Table::BitTorrentPeers,
            self.peers,
            self.swarms.len(),
            in_swarm,
        )
    }

    fn live(&self, peer: &Peer, now: u64) -> bool {
        now.saturating_sub(peer.last_announce) <= self.peer_ttl
    }

    pub fn announce(&mut self, a: Announce, now: u64) -> Result<AnnounceOutcome, Full> {
        let stopped = a.event == Some(AnnounceEvent::Stopped);
        if stopped && !self.swarms.contains_key(&a.key) {
            return Ok(AnnounceOutcome {
                stats: ScrapeStats::default(),
                peers: Vec::new(),
            });
        }
        let ttl = self.peer_ttl;
        // Expired peers go before the caps are checked, so they never hold a place.
        if let Some(swarm) = self.swarms.get_mut(&a.key) {
            self.peers -= swarm.sweep(now, ttl);
        }
        if !stopped {
            self.room_for(&a)?;
        }
        let swarm = self.swarms.entry(a.key).or_default();
        if stopped {
            if let Some(gone) = swarm.peers.remove(&a.peer_id) {
                swarm.count(&gone, -1);
                self.peers -= 1;
            }
        } else {
            if swarm.peers.is_empty() {
                swarm.oldest = now;
            }
            let before = swarm.peers.get(&a.peer_id).copied();
            let peer = swarm.peers.entry(a.peer_id).or_insert(Peer {
                addr: a.addr,
                left: a.left,
                last_announce: now,
                completed: false,
            });
            // A download counts once per peer, however many "completed" events it sends.
            if a.event == Some(AnnounceEvent::Completed) && !peer.completed {
                peer.completed = true;
                swarm.downloaded += 1;
            }
            peer.addr = a.addr;
            peer.left = a.left;
            peer.last_announce = now;
            let after = *peer;
            match before {
                Some(before) => swarm.count(&before, -1),
                None => self.peers += 1,
            }
            swarm.count(&after, 1);
            swarm.oldest = swarm.oldest.min(now);
        }
        // Every peer left is live: the sweep above dropped those past the TTL. A seeder needs no
        // other seeders; everyone else gets anyone.
        let wants_leechers_only = a.left == 0;
        let peers = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && (!wants_leechers_only || p.left > 0))
            .take(a.numwant)
            .map(|(id, p)| PeerAddr {
                peer_id: *id,
                addr: p.addr,
            })
            .collect();
        let stats = swarm.kept_stats();
        if self
            .swarms
            .get(&a.key)
            .is_some_and(|s| s.peers.is_empty() && s.downloaded == 0)
        {
            self.swarms.remove(&a.key);
        }
        Ok(AnnounceOutcome { stats, peers })
    }

    pub fn stats(&self, key: &[u8; 20], now: u64) -> ScrapeStats {
        let Some(swarm) = self.swarms.get(key) else {
            return ScrapeStats::default();
        };
        if now.saturating_sub(swarm.oldest) <= self.peer_ttl {
            return swarm.kept_stats();
        }
        let (mut complete, mut incomplete) = (0, 0);
        for peer in swarm.peers.values().filter(|p| self.live(p, now)) {
            if peer.left == 0 {
                complete += 1;
            } else {
                incomplete += 1;
            }
        }
        ScrapeStats {
            complete,
            incomplete,
            downloaded: swarm.downloaded,
        }
    }

    /// Keys of every swarm with peers or downloads, at most `max`.
    pub fn keys(&self, max: usize) -> Vec<[u8; 20]> {
        let mut keys: Vec<[u8; 20]> = self.swarms.keys().copied().collect();
        keys.sort_unstable();
        keys.truncate(max);
        keys
    }

    /// Drops expired peers, and swarms left without peers unless `keep` says their counts
    /// matter (registered torrents): otherwise `completed` announces for made-up info-hashes
    /// would keep swarms forever.
    pub fn expire(&mut self, now: u64, keep: impl Fn(&[u8; 20]) -> bool) {
        let ttl = self.peer_ttl;
        let mut peers = 0;
        self.swarms.retain(|key, swarm| {
            swarm.sweep(now, ttl);
            peers += swarm.peers.len();
            !swarm.peers.is_empty() || (swarm.downloaded > 0 && keep(key))
        });
        self.peers = peers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept counts against a recount of the live peers, through joins, changes, stops,
    /// silences past the TTL and sweeps.
    #[test]
    fn kept_counts_match_a_recount_of_live_peers() {
        let mut swarms = BtSwarms::new(10, Limits::default());
        let mut live: HashMap<u8, (u64, u64)> = HashMap::new(); // peer -> (left, last announce)
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut now = 0;
        for step in 0..5_000 {
            now += next(3);
            let peer = next(40) as u8;
            let left = if next(2) == 0 { 0 } else { 100 };
            let event = match next(10) {
                0 => Some(AnnounceEvent::Stopped),
                1 => Some(AnnounceEvent::Completed),
                _ => None,
            };
            let outcome = swarms.announce(announce(peer, left, event), now).unwrap();
            live.retain(|_, (_, at)| now - *at <= 10);
            if event == Some(AnnounceEvent::Stopped) {
                live.remove(&peer);
            } else {
                live.insert(peer, (left, now));
            }
            let complete = live.values().filter(|(l, _)| *l == 0).count();
            let expected = (complete, live.len() - complete);
            let got = (outcome.stats.complete, outcome.stats.incomplete);
            assert_eq!(got, expected, "announce at step {step}");
            let later = now + next(15);
            let scraped = swarms.stats(&[9; 20], later);
            let still: Vec<_> = live.values().filter(|(_, at)| later - at <= 10).collect();
            let complete = still.iter().filter(|(l, _)| *l == 0).count();
            assert_eq!(
                (scraped.complete, scraped.incomplete),
                (complete, still.len() - complete),
                "scrape at step {step}"
            );
            if next(50) == 0 {
                swarms.expire(now, |_| true);
            }
            assert_eq!(
                swarms.peers,
                swarms.swarms.values().map(|s| s.peers.len()).sum::<usize>()
            );
        }
    }

    fn announce(peer: u8, left: u64, event: Option<AnnounceEvent>) -> Announce {
        Announce {
            key: [9; 20],
            peer_id: [peer; 20],
            addr: SocketAddr::from(([127, 0, 0, peer], 6881)),
            left,
            event,
            numwant: 50,
        }
    }

    #[test]
    fn counts_seeders_leechers_and_downloads() {
        let mut s = BtSwarms::new(120, Limits::default());
        s.announce(announce(1, 0, Some(AnnounceEvent::Started)), 100)
            .unwrap();
        let out = s
            .announce(announce(2, 500, Some(AnnounceEvent::Started)), 100)
            .unwrap();
        assert_eq!(out.peers.len(), 1, "the leecher gets the seeder");
        assert_eq!((out.stats.complete, out.stats.incomplete), (1, 1));
        s.announce(announce(2, 0, Some(AnnounceEvent::Completed)), 101)
            .unwrap();
        s.announce(announce(2, 0, Some(AnnounceEvent::Completed)), 102)
            .unwrap();
        let stats = s.stats(&[9; 20], 102);
        assert_eq!(
            (stats.complete, stats.incomplete, stats.downloaded),
            (2, 0, 1)
        );
    }

    #[test]
    fn seeders_are_not_sent_other_seeders() {
        let mut s = BtSwarms::new(120, Limits::default());
        s.announce(announce(1, 0, None), 100).unwrap();
        assert!(s
            .announce(announce(2, 0, None), 100)
            .unwrap()
            .peers
            .is_empty());
        assert_eq!(
            s.announce(announce(3, 10, None), 100).unwrap().peers.len(),
            2
        );
    }

    #[test]
    fn stopped_removes_and_silence_expires() {
        let mut s = BtSwarms::new(120, Limits::default());
        s.announce(announce(1, 10, None), 100).unwrap();
        s.announce(announce(2, 10, None), 100).unwrap();
        s.announce(announce(1, 10, Some(AnnounceEvent::Stopped)), 101)
            .unwrap();
        assert_eq!(s.stats(&[9; 20], 101).incomplete, 1);
        assert_eq!(
            s.stats(&[9; 20], 221).incomplete,
            0,
            "expired after the TTL"
        );
        s.expire(221, |_| true);
        assert!(s.keys(10).is_empty());
    }

    #[test]
    fn numwant_caps_the_peer_list() {
        let mut s = BtSwarms::new(120, Limits::default());
        for peer in 1..=10 {
            s.announce(announce(peer, 10, None), 100).unwrap();
        }
        let mut a = announce(11, 10, None);
        a.numwant = 3;
        assert_eq!(s.announce(a, 100).unwrap().peers.len(), 3);
    }

    #[test]
    fn completed_counts_of_unregistered_swarms_do_not_outlive_their_peers() {
        let mut s = BtSwarms::new(120, Limits::default());
        for key in 0..100u8 {
            let mut a = announce(1, 0, Some(AnnounceEvent::Completed));
            a.key = [key; 20];
            s.announce(a, 100).unwrap();
        }
        s.expire(221, |key| key[0] == 7);
        assert_eq!(
            s.keys(1000),
            [[7; 20]],
            "only the registered swarm keeps its count"
        );
        assert_eq!(s.stats(&[7; 20], 221).downloaded, 1);
        assert_eq!(s.peers, 0);
    }

    #[test]
    fn caps_refuse_new_peers_and_swarms_but_refresh_known_peers() {
        let limits = Limits {
            max_swarms: 2,
            max_peers_per_swarm: 2,
            max_bittorrent_peers: 3,
            ..Limits::default()
        };
        let mut s = BtSwarms::new(120, limits);
        let on = |key: u8, peer: u8| Announce {
            key: [key; 20],
            ..announce(peer, 10, None)
        };
        s.announce(on(1, 1), 100).unwrap();
        s.announce(on(1, 2), 100).unwrap();
        let err = s.announce(on(1, 3), 100).unwrap_err();
        assert!(
            err.to_string().contains("tracker.max_peers_per_swarm"),
            "{err}"
        );
        let mut stop = on(1, 2);
        stop.event = Some(AnnounceEvent::Stopped);
        s.announce(stop, 100).unwrap();
        s.announce(on(2, 1), 100).unwrap();
        let err = s.announce(on(3, 1), 100).unwrap_err();
        assert!(err.to_string().contains("tracker.max_swarms"), "{err}");
        s.announce(on(2, 2), 100).unwrap();
        let err = s.announce(on(2, 3), 100).unwrap_err();
        assert!(
            err.to_string().contains("tracker.max_bittorrent_peers"),
            "{err}"
        );
        s.announce(on(1, 1), 101)
            .expect("a known peer is refreshed");
        let mut stop = on(9, 1);
        stop.event = Some(AnnounceEvent::Stopped);
        s.announce(stop, 101)
            .expect("stopping in an unknown swarm creates nothing");
        assert_eq!(s.keys(10).len(), 2);
    }
}
