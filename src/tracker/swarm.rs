//! Live seeders per torrent: a pure structure. Time comes in as an argument, nothing here does I/O,
//! so expiry and every announce rule are unit-testable without clocks or sockets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Full, Limits, Table};
use crate::types::{InfoHash, SeederUrl};

/// What an announce says about the seeder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Started,
    Completed,
    Stopped,
}

/// A live seeder as reported by `GET /peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PeerView {
    /// Base URL of the seeder; chunks are at `{url}/chunks/{info_hash}/{index}`.
    #[schema(value_type = String, example = "http://127.0.0.1:8080")]
    pub url: SeederUrl,
    /// Unix time (seconds) of its last announce.
    pub last_announce: u64,
    /// Unix time (seconds) of its first announce in this session of the tracker.
    pub first_seen: u64,
}

#[derive(Debug, Clone, Copy)]
struct PeerRecord {
    first_seen: u64,
    last_announce: u64,
}

#[derive(Debug)]
pub struct Swarms {
    swarms: HashMap<InfoHash, HashMap<SeederUrl, PeerRecord>>,
    /// A peer silent for longer than this many seconds is gone.
    peer_ttl: u64,
    limits: Limits,
    /// Entries over all swarms (live or not yet expired), kept against `limits.max_seeders`.
    entries: usize,
}

impl Swarms {
    pub fn new(peer_ttl_secs: u64, limits: Limits) -> Self {
        Swarms {
            swarms: HashMap::new(),
            peer_ttl: peer_ttl_secs,
            limits,
            entries: 0,
        }
    }

    fn is_live(&self, record: &PeerRecord, now: u64) -> bool {
        now.saturating_sub(record.last_announce) <= self.peer_ttl
    }

    /// Records an announce; "stopped" removes the seeder at once. A new seeder is refused
    /// when a cap is reached (a known one is always refreshed).
    pub fn announce(
        &mut self,
        torrent: InfoHash,
        url: SeederUrl,
        event: Option<Event>,
        now: u64,
    ) -> Result<(), Full> {
        if event == Some(Event::Stopped) {
            if let Some(swarm) = self.swarms.get_mut(&torrent) {
                if swarm.remove(&url).is_some() {
                    self.entries -= 1;
                }
                if swarm.is_empty() {
                    self.swarms.remove(&torrent);
                }
            }
            return Ok(());
        }
        if let Some(record) = self.swarms.get_mut(&torrent).and_then(|s| s.get_mut(&url)) {
            record.last_announce = now;
            return Ok(());
        }
        let in_swarm = self.swarms.get(&torrent).map(HashMap::len);
        self.limits
            .room_for(Table::Seeders, self.entries, self.swarms.len(), in_swarm)?;
        let swarm = self.swarms.entry(torrent).or_default();
        swarm.insert(
            url,
            PeerRecord {
                first_seen: now,
                last_announce: now,
            },
        );
        self.entries += 1;
        Ok(())
    }

    /// Up to `max` live seeders of a torrent, most recently announced first.
    pub fn peers(&self, torrent: &InfoHash, now: u64, max: usize) -> Vec<PeerView> {
        let Some(swarm) = self.swarms.get(torrent) else {
            return Vec::new();
        };
        let mut live: Vec<PeerView> = swarm
            .iter()
            .filter(|(_, r)| self.is_live(r, now))
            .map(|(url, r)| PeerView {
                url: url.clone(),
                last_announce: r.last_announce,
                first_seen: r.first_seen,
            })
            .collect();
        live.sort_by(|a, b| {
            b.last_announce
                .cmp(&a.last_announce)
                .then_with(|| a.url.cmp(&b.url))
        });
        live.truncate(max);
        live
    }

    /// Whether `url` is a live seeder of the torrent.
    pub fn is_listed(&self, torrent: &InfoHash, url: &SeederUrl, now: u64) -> bool {
        self.swarms
            .get(torrent)
            .and_then(|swarm| swarm.get(url))
            .is_some_and(|r| self.is_live(r, now))
    }

    pub fn live_count(&self, torrent: &InfoHash, now: u64) -> usize {
        self.swarms.get(torrent).map_or(0, |swarm| {
            swarm.values().filter(|r| self.is_live(r, now)).count()
        })
    }

    pub fn total_live(&self, now: u64) -> usize {
        self.swarms
            .values()
            .flat_map(HashMap::values)
            .filter(|r| self.is_live(r, now))
            .count()
    }

    /// Forgets expired seeders, so memory follows the live population.
    pub fn expire(&mut self, now: u64) {
        let ttl = self.peer_ttl;
        let mut entries = 0;
        self.swarms.retain(|_, swarm| {
            swarm.retain(|_, r| now.saturating_sub(r.last_announce) <= ttl);
            entries += swarm.len();
            !swarm.is_empty()
        });
        self.entries = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::InfoHashV2;

    fn torrent() -> InfoHash {
        InfoHash::V2(InfoHashV2([1; 32]))
    }

    fn url(n: u8) -> SeederUrl {
        SeederUrl::parse(&format!("http://10.0.0.{n}:8080")).unwrap()
    }

    fn swarms() -> Swarms {
        Swarms::new(120, Limits::default())
    }

    #[test]
    fn caps_refuse_new_seeders_but_refresh_known_ones() {
        let limits = Limits {
            max_swarms: 2,
            max_peers_per_swarm: 2,
            max_seeders: 4,
            ..Limits::default()
        };
        let mut s = Swarms::new(120, limits);
        let t = |n: u8| InfoHash::V2(InfoHashV2([n; 32]));
        let refused = |s: &mut Swarms, torrent: u8, seeder: u8| {
            s.announce(t(torrent), url(seeder), None, 1000)
                .unwrap_err()
                .key
        };
        s.announce(t(1), url(1), None, 1000).unwrap();
        s.announce(t(1), url(2), None, 1000).unwrap();
        assert_eq!(refused(&mut s, 1, 3), "tracker.max_peers_per_swarm");
        s.announce(t(2), url(1), None, 1000).unwrap();
        assert_eq!(refused(&mut s, 3, 1), "tracker.max_swarms");
        s.announce(t(2), url(2), None, 1000).unwrap();
        assert_eq!(refused(&mut s, 2, 3), "tracker.max_seeders");
        s.announce(t(1), url(1), None, 1001)
            .expect("a known seeder is refreshed");
        s.announce(t(1), url(1), Some(Event::Stopped), 1001)
            .unwrap();
        s.announce(t(1), url(3), None, 1001)
            .expect("room again after a stop");
        s.expire(1200);
        assert_eq!(s.entries, 0);
        assert!(s.swarms.is_empty());
    }

    #[test]
    fn a_silent_seeder_expires_after_the_ttl() {
        let mut swarms = swarms();
        swarms
            .announce(torrent(), url(1), Some(Event::Started), 1000)
            .unwrap();
        assert_eq!(swarms.peers(&torrent(), 1120, 10).len(), 1);
        assert!(swarms.peers(&torrent(), 1121, 10).is_empty());
        swarms.expire(1121);
        assert_eq!(swarms.total_live(1121), 0);
        assert!(swarms.swarms.is_empty());
    }

    #[test]
    fn stopped_removes_at_once_and_reannounce_refreshes() {
        let mut swarms = swarms();
        swarms.announce(torrent(), url(1), None, 1000).unwrap();
        swarms.announce(torrent(), url(2), None, 1000).unwrap();
        swarms.announce(torrent(), url(1), None, 1100).unwrap();
        let peers = swarms.peers(&torrent(), 1200, 10);
        assert_eq!(peers.len(), 1, "url 2 expired, url 1 refreshed");
        assert_eq!(peers[0].first_seen, 1000);
        swarms
            .announce(torrent(), url(1), Some(Event::Stopped), 1201)
            .unwrap();
        assert_eq!(swarms.live_count(&torrent(), 1201), 0);
    }

    #[test]
    fn peers_are_capped_and_freshest_first() {
        let mut swarms = swarms();
        for n in 1..=5 {
            swarms
                .announce(torrent(), url(n), None, 1000 + u64::from(n))
                .unwrap();
        }
        let peers = swarms.peers(&torrent(), 1010, 2);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].url, url(5));
    }
}
