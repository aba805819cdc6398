//! The tracker's two stores, as async interfaces so that a shared store (Redis) can stand where
//! the embedded one stands today: [`TorrentStore`], the registry of torrents, and
//! [`SwarmStore`], who is in which swarm (native seeders and BitTorrent peers) with expiry.
//!
//! Stores keep state; they do not decide policy. Caps are the one rule they apply themselves,
//! because only the store can check a count and add an entry in one step. Time comes in as an
//! argument (Unix seconds), so every implementation expires by the same clock the caller reads.
//!
//! The embedded implementations: [`SqliteTorrents`] (an in-memory index over the SQLite state
//! database, which makes registrations durable) and [`MemorySwarms`] (the pure structures of
//! [`super::swarm`] and [`super::bt_swarm`] behind mutexes).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::future::BoxFuture;

use super::bep3::ScrapeStats;
use super::bt_swarm::{Announce, AnnounceOutcome, BtSwarms};
use super::swarm::{Event, PeerView, Swarms};
use super::{Full, Limits, Registered};
use crate::db::{DbError, StateDb};
use crate::metainfo::Metainfo;
use crate::types::{InfoHash, InfoHashV1, InfoHashV2, SeederUrl};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Full(#[from] Full),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The store cannot be reached (a shared store that is down); retrying later may work.
    #[error("the tracker's store is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Which BitTorrent swarms to keep when their last peer expires (registered torrents).
pub type Keep = Arc<dyn Fn(&[u8; 20]) -> bool + Send + Sync>;

/// Registered torrents, durable once `insert` returns.
pub trait TorrentStore: Send + Sync {
    /// Adds a torrent unless one with its v2 hash is there; refuses past `limit` torrents.
    fn insert(
        &self,
        meta: Metainfo,
        limit: usize,
        now: u64,
    ) -> StoreResult<'_, (Registered, Arc<Metainfo>)>;
    /// A torrent by either info-hash.
    fn get(&self, hash: InfoHash) -> StoreResult<'_, Option<Arc<Metainfo>>>;
    /// The registered torrent a 20-byte BitTorrent info-hash names: its v1 hash, or its v2 hash
    /// truncated (as v2 clients announce it).
    fn get_bt(&self, hash: [u8; 20]) -> StoreResult<'_, Option<Arc<Metainfo>>>;
    /// Every registered torrent, in registration order.
    fn all(&self) -> StoreResult<'_, Vec<Arc<Metainfo>>>;
    /// Up to `limit` torrents whose v2 hash sorts after `after`, in v2 hash order: a page of
    /// the listing, costing the page and not the registry.
    fn page(&self, after: Option<InfoHashV2>, limit: usize) -> StoreResult<'_, Vec<Arc<Metainfo>>>;
    /// How many torrents are registered.
    fn count(&self) -> StoreResult<'_, usize>;
    /// Whether each v2 hash is registered, in order: one call (one round trip) for many.
    fn contains(&self, hashes: Vec<InfoHashV2>) -> StoreResult<'_, Vec<bool>>;
}

/// Swarms with expiry: an entry silent for longer than the store's TTL is gone.
pub trait SwarmStore: Send + Sync {
    /// A native seeder's announce; "stopped" removes it. New entries are checked against caps.
    fn announce(
        &self,
        key: InfoHash,
        url: SeederUrl,
        event: Option<Event>,
        now: u64,
    ) -> StoreResult<'_, ()>;
    /// Up to `max` live seeders, most recently announced first.
    fn seeders(&self, key: InfoHash, now: u64, max: usize) -> StoreResult<'_, Vec<PeerView>>;
    fn is_listed(&self, key: InfoHash, url: SeederUrl, now: u64) -> StoreResult<'_, bool>;
    /// Live seeders of each swarm, in the order of `keys`: one call (one round trip) for a page.
    fn live_seeders(&self, keys: Vec<InfoHash>, now: u64) -> StoreResult<'_, Vec<usize>>;
    fn total_live_seeders(&self, now: u64) -> StoreResult<'_, usize>;
    /// A BEP 3 announce (the key already mapped to its swarm).
    fn bt_announce(&self, announce: Announce, now: u64) -> StoreResult<'_, AnnounceOutcome>;
    /// BEP 48 counts of each key.
    fn bt_stats(&self, keys: Vec<[u8; 20]>, now: u64) -> StoreResult<'_, Vec<ScrapeStats>>;
    /// Keys of BitTorrent swarms, at most `max`, sorted.
    fn bt_keys(&self, max: usize) -> StoreResult<'_, Vec<[u8; 20]>>;
    /// Drops expired entries, and BitTorrent swarms left without peers unless their key is in
    /// `keep` (registered torrents, whose download counts matter).
    fn expire(&self, now: u64, keep: Keep) -> StoreResult<'_, ()>;
    /// The service this store keeps its state in, by name, and whether it answers now (for
    /// readiness); `None` for a store in this process.
    fn dependency(&self) -> Option<(&'static str, StoreResult<'_, ()>)> {
        None
    }
}

/// The registry's index: every torrent by v2 hash, v1 hash and truncated v2 hash.
#[derive(Default)]
struct Registry {
    by_v2: HashMap<InfoHashV2, Arc<Metainfo>>,
    v1_to_v2: HashMap<InfoHashV1, InfoHashV2>,
    truncated_v2: HashMap<[u8; 20], InfoHashV2>,
    order: Vec<InfoHashV2>,
    /// The v2 hashes sorted, for paging.
    sorted: BTreeSet<InfoHashV2>,
}

impl Registry {
    /// Adds `meta` unless its v2 hash is there already.
    fn insert(&mut self, meta: Arc<Metainfo>) {
        if self.by_v2.contains_key(&meta.info_hash_v2) {
            return;
        }
        self.v1_to_v2.insert(meta.info_hash_v1, meta.info_hash_v2);
        let truncated: [u8; 20] = meta.info_hash_v2.0[..20].try_into().expect("32 > 20");
        self.truncated_v2.insert(truncated, meta.info_hash_v2);
        self.order.push(meta.info_hash_v2);
        self.sorted.insert(meta.info_hash_v2);
        self.by_v2.insert(meta.info_hash_v2, meta);
    }

    fn get(&self, hash: &InfoHash) -> Option<&Arc<Metainfo>> {
        let v2 = match hash {
            InfoHash::V2(h) => h,
            InfoHash::V1(h) => self.v1_to_v2.get(h)?,
        };
        self.by_v2.get(v2)
    }

    fn get_bt(&self, hash: &[u8; 20]) -> Option<&Arc<Metainfo>> {
        let v2 = self
            .v1_to_v2
            .get(&InfoHashV1(*hash))
            .or_else(|| self.truncated_v2.get(hash))?;
        self.by_v2.get(v2)
    }
}

/// The embedded registry: SQLite for durability, an index in memory for lookups.
pub struct SqliteTorrents {
    db: Arc<StateDb>,
    registry: Arc<RwLock<Registry>>,
    /// Held from the cap check to the index insert, across the disk write between them, so the
    /// count and the insert are one step (checked under the read lock alone, parallel
    /// registrations each saw room and the registry outgrew `tracker.max_torrents`). All three
    /// run in one blocking task, which finishes even when the request that started it is
    /// dropped: a row is never on disk without its index entry.
    registering: Arc<Mutex<()>>,
}

impl SqliteTorrents {
    /// Loads every registered torrent. Rows that no longer parse are skipped with a warning
    /// rather than keeping the tracker down.
    pub fn load(db: Arc<StateDb>) -> Result<Self, DbError> {
        let mut registry = Registry::default();
        for bytes in db.registered_torrents()? {
            match Metainfo::from_bytes(&bytes) {
                Ok(meta) => registry.insert(Arc::new(meta)),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable registered torrent"),
            }
        }
        tracing::info!(torrents = registry.order.len(), "torrent registry loaded");
        Ok(SqliteTorrents {
            db,
            registry: Arc::new(RwLock::new(registry)),
            registering: Arc::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl TorrentStore for SqliteTorrents {
    fn insert(
        &self,
        meta: Metainfo,
        limit: usize,
        now: u64,
    ) -> StoreResult<'_, (Registered, Arc<Metainfo>)> {
        let hash = InfoHash::V2(meta.info_hash_v2);
        if let Some(existing) = self.read().get(&hash) {
            return ready(Ok((Registered::Existing, existing.clone())));
        }
        let (db, registry, registering) = (
            self.db.clone(),
            self.registry.clone(),
            self.registering.clone(),
        );
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let _one_at_a_time = registering.lock().unwrap_or_else(|e| e.into_inner());
                let read = || registry.read().unwrap_or_else(|e| e.into_inner());
                if let Some(existing) = read().get(&hash) {
                    return Ok((Registered::Existing, existing.clone()));
                }
                if read().by_v2.len() >= limit {
                    return Err(
                        Full::new("the torrent registry", "tracker.max_torrents", limit).into(),
                    );
                }
                // Durable first: a registration is acknowledged only once it is on disk.
                let meta = Arc::new(meta);
                db.register_torrent(&meta, now as i64)?;
                let mut index = registry.write().unwrap_or_else(|e| e.into_inner());
                index.insert(meta.clone());
                Ok((Registered::Created, meta))
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
        })
    }

    fn get(&self, hash: InfoHash) -> StoreResult<'_, Option<Arc<Metainfo>>> {
        let found = self.read().get(&hash).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn get_bt(&self, hash: [u8; 20]) -> StoreResult<'_, Option<Arc<Metainfo>>> {
        let found = self.read().get_bt(&hash).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn all(&self) -> StoreResult<'_, Vec<Arc<Metainfo>>> {
        let registry = self.read();
        let all = registry
            .order
            .iter()
            .filter_map(|h| registry.by_v2.get(h).cloned())
            .collect();
        Box::pin(std::future::ready(Ok(all)))
    }

    fn page(&self, after: Option<InfoHashV2>, limit: usize) -> StoreResult<'_, Vec<Arc<Metainfo>>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let registry = self.read();
        let from = after.map_or(Unbounded, Excluded);
        let page = registry
            .sorted
            .range((from, Unbounded))
            .take(limit)
            .filter_map(|h| registry.by_v2.get(h).cloned())
            .collect();
        Box::pin(std::future::ready(Ok(page)))
    }

    fn count(&self) -> StoreResult<'_, usize> {
        Box::pin(std::future::ready(Ok(self.read().by_v2.len())))
    }

    fn contains(&self, hashes: Vec<InfoHashV2>) -> StoreResult<'_, Vec<bool>> {
        let registry = self.read();
        let found = hashes
            .iter()
            .map(|h| registry.by_v2.contains_key(h))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// The embedded swarm store: this process's memory (seeders re-announce after a restart).
pub struct MemorySwarms {
    seeders: Mutex<Swarms>,
    peers: Mutex<BtSwarms>,
}

impl MemorySwarms {
    pub fn new(ttl_secs: u64, limits: Limits) -> Self {
        MemorySwarms {
            seeders: Mutex::new(Swarms::new(ttl_secs, limits)),
            peers: Mutex::new(BtSwarms::new(ttl_secs, limits)),
        }
    }

    fn seeders(&self) -> std::sync::MutexGuard<'_, Swarms> {
        self.seeders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, BtSwarms> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An answer computed at once, as a store future.
fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreResult<'a, T> {
    Box::pin(std::future::ready(value))
}

impl SwarmStore for MemorySwarms {
    fn announce(
        &self,
        key: InfoHash,
        url: SeederUrl,
        event: Option<Event>,
        now: u64,
    ) -> StoreResult<'_, ()> {
        ready(
            self.seeders()
                .announce(key, url, event, now)
                .map_err(Into::into),
        )
    }

    fn seeders(&self, key: InfoHash, now: u64, max: usize) -> StoreResult<'_, Vec<PeerView>> {
        ready(Ok(MemorySwarms::seeders(self).peers(&key, now, max)))
    }

    fn is_listed(&self, key: InfoHash, url: SeederUrl, now: u64) -> StoreResult<'_, bool> {
        ready(Ok(MemorySwarms::seeders(self).is_listed(&key, &url, now)))
    }

    fn live_seeders(&self, keys: Vec<InfoHash>, now: u64) -> StoreResult<'_, Vec<usize>> {
        let swarms = MemorySwarms::seeders(self);
        ready(Ok(keys.iter().map(|k| swarms.live_count(k, now)).collect()))
    }

    fn total_live_seeders(&self, now: u64) -> StoreResult<'_, usize> {
        ready(Ok(MemorySwarms::seeders(self).total_live(now)))
    }

    fn bt_announce(&self, announce: Announce, now: u64) -> StoreResult<'_, AnnounceOutcome> {
        ready(self.peers().announce(announce, now).map_err(Into::into))
    }

    fn bt_stats(&self, keys: Vec<[u8; 20]>, now: u64) -> StoreResult<'_, Vec<ScrapeStats>> {
        let peers = self.peers();
        ready(Ok(keys.iter().map(|k| peers.stats(k, now)).collect()))
    }

    fn bt_keys(&self, max: usize) -> StoreResult<'_, Vec<[u8; 20]>> {
        ready(Ok(self.peers().keys(max)))
    }

    fn expire(&self, now: u64, keep: Keep) -> StoreResult<'_, ()> {
        MemorySwarms::seeders(self).expire(now);
        self.peers().expire(now, |key| keep(key));
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::create;
    use crate::types::PieceLength;

    fn torrent(name: &str) -> Metainfo {
        create::from_bytes(
            name,
            name.as_bytes(),
            PieceLength::new(16384).unwrap(),
            vec![],
            vec![],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_sqlite_registry_finds_torrents_by_every_hash_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(StateDb::open(dir.path()).unwrap());
        let store = SqliteTorrents::load(db.clone()).unwrap();
        let meta = torrent("a.bin");
        let (v1, v2) = (meta.info_hash_v1, meta.info_hash_v2);

        let (outcome, _) = store.insert(meta.clone(), 10, 1).await.unwrap();
        assert_eq!(outcome, Registered::Created);
        assert_eq!(
            store.insert(meta, 10, 2).await.unwrap().0,
            Registered::Existing
        );
        let full = store.insert(torrent("b.bin"), 1, 3).await.unwrap_err();
        assert!(matches!(full, StoreError::Full(f) if f.key == "tracker.max_torrents"));

        let reloaded = SqliteTorrents::load(db).unwrap();
        for store in [&store, &reloaded] {
            assert!(store.get(InfoHash::V1(v1)).await.unwrap().is_some());
            assert!(store.get(InfoHash::V2(v2)).await.unwrap().is_some());
            assert!(store.get_bt(v1.0).await.unwrap().is_some());
            let truncated: [u8; 20] = v2.0[..20].try_into().unwrap();
            assert!(store.get_bt(truncated).await.unwrap().is_some());
            assert_eq!(store.all().await.unwrap().len(), 1);
        }
    }
}
