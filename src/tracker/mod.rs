//! The tracker role: which torrents exist (a registry persisted through a [`TorrentStore`]) and
//! which seeders have them (in-memory [`swarm::Swarms`]; seeders re-announce after a restart).

pub mod admission;
pub mod bep3;
pub mod bt_swarm;
pub mod swarm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::db::{DbError, StateDb};
use crate::metainfo::Metainfo;
use crate::types::{InfoHash, InfoHashV1, InfoHashV2, SeederUrl};
use bep3::ScrapeStats;
use bt_swarm::{AnnounceOutcome, BtSwarms};
use swarm::{Event, PeerView, Swarms};

/// Most torrents in a scrape that names none (the whole registry).
pub const MAX_FULL_SCRAPE: usize = 1000;

/// Caps on what clients can make the tracker remember (config keys `tracker.max_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_torrents: usize,
    /// Swarms per protocol.
    pub max_swarms: usize,
    /// Seeders, or BitTorrent peers, in one swarm.
    pub max_peers_per_swarm: usize,
    /// Native seeder entries over all swarms.
    pub max_seeders: usize,
    /// BitTorrent peers over all swarms.
    pub max_bittorrent_peers: usize,
}

impl Default for Limits {
    /// The compiled-in defaults of config/default.toml.
    fn default() -> Self {
        Limits {
            max_torrents: 100_000,
            max_swarms: 100_000,
            max_peers_per_swarm: 5_000,
            max_seeders: 100_000,
            max_bittorrent_peers: 1_000_000,
        }
    }
}

/// Which table an entry goes into, for [`Limits::room_for`].
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Native seeders (`tracker.max_seeders` over all swarms).
    Seeders,
    /// BitTorrent peers (`tracker.max_bittorrent_peers` over all swarms).
    BitTorrentPeers,
}

impl Limits {
    /// Whether one more entry fits: `total` entries in the table now, `swarms` swarms, and
    /// `in_swarm` entries in its swarm (`None`: the swarm would be new).
    pub fn room_for(
        &self,
        table: Table,
        total: usize,
        swarms: usize,
        in_swarm: Option<usize>,
    ) -> Result<(), Full> {
        let (what, key, limit) = match table {
            Table::Seeders => (
                "the tracker's seeder list",
                "tracker.max_seeders",
                self.max_seeders,
            ),
            Table::BitTorrentPeers => (
                "the tracker's peer list",
                "tracker.max_bittorrent_peers",
                self.max_bittorrent_peers,
            ),
        };
        if total >= limit {
            return Err(Full::new(what, key, limit));
        }
        match in_swarm {
            Some(n) if n >= self.max_peers_per_swarm => Err(Full::new(
                "this torrent's swarm",
                "tracker.max_peers_per_swarm",
                self.max_peers_per_swarm,
            )),
            None if swarms >= self.max_swarms => Err(Full::new(
                "the tracker's swarm table",
                "tracker.max_swarms",
                self.max_swarms,
            )),
            _ => Ok(()),
        }
    }
}

/// A cap was reached: the request is refused until entries expire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is full ({key} = {limit}); retry later")]
pub struct Full {
    pub what: &'static str,
    pub key: &'static str,
    pub limit: usize,
}

impl Full {
    pub fn new(what: &'static str, key: &'static str, limit: usize) -> Self {
        Full { what, key, limit }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Full(#[from] Full),
}

/// Durable storage of registered torrents. SQLite today; a store shared by several tracker
/// instances can implement the same interface.
pub trait TorrentStore: Send + Sync {
    fn save(&self, meta: &Metainfo, now_unix: i64) -> Result<(), DbError>;
    fn load_all(&self) -> Result<Vec<Vec<u8>>, DbError>;
}

impl TorrentStore for StateDb {
    fn save(&self, meta: &Metainfo, now_unix: i64) -> Result<(), DbError> {
        self.register_torrent(meta, now_unix)
    }

    fn load_all(&self) -> Result<Vec<Vec<u8>>, DbError> {
        self.registered_torrents()
    }
}

#[derive(Default)]
struct Registry {
    by_v2: HashMap<InfoHashV2, Arc<Metainfo>>,
    v1_to_v2: HashMap<InfoHashV1, InfoHashV2>,
    /// BitTorrent v2 clients announce the v2 hash truncated to 20 bytes.
    truncated_v2: HashMap<[u8; 20], InfoHashV2>,
    order: Vec<InfoHashV2>,
}

impl Registry {
    fn insert(&mut self, meta: Arc<Metainfo>) -> bool {
        if self.by_v2.contains_key(&meta.info_hash_v2) {
            return false;
        }
        self.v1_to_v2.insert(meta.info_hash_v1, meta.info_hash_v2);
        let truncated: [u8; 20] = meta.info_hash_v2.0[..20].try_into().expect("32 > 20");
        self.truncated_v2.insert(truncated, meta.info_hash_v2);
        self.order.push(meta.info_hash_v2);
        self.by_v2.insert(meta.info_hash_v2, meta);
        true
    }

    fn get(&self, hash: &InfoHash) -> Option<&Arc<Metainfo>> {
        let v2 = match hash {
            InfoHash::V2(h) => h,
            InfoHash::V1(h) => self.v1_to_v2.get(h)?,
        };
        self.by_v2.get(v2)
    }
}

pub struct Tracker {
    store: Arc<dyn TorrentStore>,
    registry: RwLock<Registry>,
    swarms: Mutex<Swarms>,
    bt_swarms: Mutex<BtSwarms>,
    interval: Duration,
    max_peers: usize,
    limits: Limits,
}

/// Whether a registration added a torrent or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    Existing,
}

impl Tracker {
    /// Loads the registry from `store`. Rows that no longer parse are skipped with a warning
    /// rather than keeping the tracker down.
    pub fn load(
        store: Arc<dyn TorrentStore>,
        interval: Duration,
        max_peers: usize,
        limits: Limits,
    ) -> Result<Self, DbError> {
        let mut registry = Registry::default();
        for bytes in store.load_all()? {
            match Metainfo::from_bytes(&bytes) {
                Ok(meta) => {
                    registry.insert(Arc::new(meta));
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable registered torrent"),
            }
        }
        tracing::info!(torrents = registry.order.len(), "torrent registry loaded");
        Ok(Tracker {
            store,
            registry: RwLock::new(registry),
            swarms: Mutex::new(Swarms::new(2 * interval.as_secs(), limits)),
            bt_swarms: Mutex::new(BtSwarms::new(2 * interval.as_secs(), limits)),
            interval,
            max_peers,
            limits,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Persists then publishes a torrent. Blocking (disk write): call from the blocking pool.
    pub fn register(&self, meta: Metainfo) -> Result<(Registered, Arc<Metainfo>), TrackerError> {
        if let Some(existing) = self.lookup(&InfoHash::V2(meta.info_hash_v2)) {
            return Ok((Registered::Existing, existing));
        }
        let limit = self.limits.max_torrents;
        if self
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_v2
            .len()
            >= limit
        {
            return Err(Full::new("the torrent registry", "tracker.max_torrents", limit).into());
        }
        self.store.save(&meta, unix_now() as i64)?;
        let meta = Arc::new(meta);
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        let created = registry.insert(meta.clone());
        let outcome = if created {
            Registered::Created
        } else {
            Registered::Existing
        };
        Ok((outcome, meta))
    }

    pub fn lookup(&self, hash: &InfoHash) -> Option<Arc<Metainfo>> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        registry.get(hash).cloned()
    }

    /// Every registered torrent, in registration order.
    pub fn torrents(&self) -> Vec<Arc<Metainfo>> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        registry
            .order
            .iter()
            .filter_map(|h| registry.by_v2.get(h).cloned())
            .collect()
    }

    /// The swarm key: a registered torrent's v1 hash maps to its v2 hash, so both name one swarm.
    fn swarm_key(&self, hash: &InfoHash) -> InfoHash {
        self.lookup(hash)
            .map_or(*hash, |meta| InfoHash::V2(meta.info_hash_v2))
    }

    pub fn announce(
        &self,
        hash: &InfoHash,
        url: SeederUrl,
        event: Option<Event>,
    ) -> Result<(), Full> {
        let key = self.swarm_key(hash);
        let now = unix_now();
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.announce(key, url, event, now)
    }

    pub fn peers(&self, hash: &InfoHash) -> Vec<PeerView> {
        let key = self.swarm_key(hash);
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.peers(&key, unix_now(), self.max_peers)
    }

    pub fn is_listed(&self, hash: &InfoHash, url: &SeederUrl) -> bool {
        let key = self.swarm_key(hash);
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.is_listed(&key, url, unix_now())
    }

    /// Whether a 20-byte BitTorrent info-hash (v1, or truncated v2) names a registered torrent.
    pub fn is_registered_bt(&self, hash: &[u8; 20]) -> bool {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        registry.v1_to_v2.contains_key(&InfoHashV1(*hash))
            || registry.truncated_v2.contains_key(hash)
    }

    pub fn live_seeders(&self, hash: &InfoHash) -> usize {
        let key = self.swarm_key(hash);
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.live_count(&key, unix_now())
    }

    pub fn total_live_seeders(&self) -> usize {
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.total_live(unix_now())
    }

    /// Drops expired seeders and peers, and the BitTorrent swarms of unregistered torrents
    /// left without peers; run periodically.
    pub fn expire(&self) {
        let now = unix_now();
        self.swarms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now);
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let registered = |key: &[u8; 20]| registry.v1_to_v2.contains_key(&InfoHashV1(*key));
        self.bt_swarms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now, registered);
    }

    /// The BitTorrent swarm key: a registered hybrid torrent's v1 hash and truncated v2 hash
    /// both name one swarm, keyed by the v1 hash.
    fn bt_key(&self, hash: &[u8; 20]) -> [u8; 20] {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        registry
            .truncated_v2
            .get(hash)
            .and_then(|v2| registry.by_v2.get(v2))
            .map_or(*hash, |meta| meta.info_hash_v1.0)
    }

    /// A BEP 3 announce; `a.key` is the info-hash as the client sent it.
    pub fn bt_announce(&self, mut a: bt_swarm::Announce) -> Result<AnnounceOutcome, Full> {
        a.key = self.bt_key(&a.key);
        let mut swarms = self.bt_swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.announce(a, unix_now())
    }

    /// BEP 48 scrape of the given hashes, or of every known torrent (bounded) when none.
    pub fn bt_scrape(&self, hashes: &[[u8; 20]]) -> Vec<([u8; 20], ScrapeStats)> {
        let now = unix_now();
        let requested: Vec<[u8; 20]> = if hashes.is_empty() {
            let mut all: Vec<[u8; 20]> = self.torrents().iter().map(|m| m.info_hash_v1.0).collect();
            let swarms = self.bt_swarms.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(swarms.keys(MAX_FULL_SCRAPE));
            all.sort_unstable();
            all.dedup();
            all.truncate(MAX_FULL_SCRAPE);
            all
        } else {
            hashes.to_vec()
        };
        let keys: Vec<[u8; 20]> = requested.iter().map(|h| self.bt_key(h)).collect();
        let swarms = self.bt_swarms.lock().unwrap_or_else(|e| e.into_inner());
        requested
            .into_iter()
            .zip(keys)
            .map(|(hash, key)| (hash, swarms.stats(&key, now)))
            .collect()
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
