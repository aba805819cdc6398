//! The tracker role: which torrents exist (a registry persisted through a [`TorrentStore`]) and
//! which seeders have them (in-memory [`swarm::Swarms`]; seeders re-announce after a restart).

pub mod swarm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::db::{DbError, StateDb};
use crate::metainfo::Metainfo;
use crate::types::{InfoHash, InfoHashV1, InfoHashV2, SeederUrl};
use swarm::{Event, PeerView, Swarms};

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
    order: Vec<InfoHashV2>,
}

impl Registry {
    fn insert(&mut self, meta: Arc<Metainfo>) -> bool {
        if self.by_v2.contains_key(&meta.info_hash_v2) {
            return false;
        }
        self.v1_to_v2.insert(meta.info_hash_v1, meta.info_hash_v2);
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
    interval: Duration,
    max_peers: usize,
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
            swarms: Mutex::new(Swarms::new(2 * interval.as_secs())),
            interval,
            max_peers,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Persists then publishes a torrent. Blocking (disk write): call from the blocking pool.
    pub fn register(&self, meta: Metainfo) -> Result<(Registered, Arc<Metainfo>), DbError> {
        if let Some(existing) = self.lookup(&InfoHash::V2(meta.info_hash_v2)) {
            return Ok((Registered::Existing, existing));
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

    pub fn announce(&self, hash: &InfoHash, url: SeederUrl, event: Option<Event>) {
        let key = self.swarm_key(hash);
        let now = unix_now();
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.announce(key, url, event, now);
    }

    pub fn peers(&self, hash: &InfoHash) -> Vec<PeerView> {
        let key = self.swarm_key(hash);
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.peers(&key, unix_now(), self.max_peers)
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

    /// Drops expired seeders; run periodically.
    pub fn expire(&self) {
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms.expire(unix_now());
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
