//! The tracker role: its policy and its two stores, embedded (SQLite + memory) or Redis; and
//! the client the seeder announces through (this tracker, or another one).

use std::sync::Arc;

use anyhow::Context;

use crate::db::StateDb;
use crate::seeder::announcer::TrackerClient;
use crate::settings::{Settings, TrackerSettings, TrackerStoreConfig};
use crate::tracker::redis_store;
use crate::tracker::store::{MemorySwarms, SqliteTorrents, SwarmStore, TorrentStore};
use crate::tracker::{Policy, Tracker};

/// The tracker, when its role is on (`tracker.enabled`).
pub fn tracker(
    settings: &TrackerSettings,
    db: &Arc<StateDb>,
) -> anyhow::Result<Option<Arc<Tracker>>> {
    if !settings.enabled {
        return Ok(None);
    }
    let policy = Policy {
        interval: settings.announce_interval,
        max_peers: settings.max_peers,
        limits: settings.limits,
        allowlist: settings.allowlist,
        private_seeders: settings.private_seeders,
        verify_seeders: settings.verify_seeders,
        accept_ip_param: settings.accept_ip_param,
        // One decode per core: a burst of big bodies neither starves the workers nor holds
        // many decoded copies.
        decoders: crate::per_thread::cores(),
    };
    // A peer silent for two intervals is gone.
    let ttl = 2 * settings.announce_interval.as_secs();
    let (torrents, swarms): (Arc<dyn TorrentStore>, Arc<dyn SwarmStore>) = match &settings.store {
        TrackerStoreConfig::Embedded => (
            Arc::new(SqliteTorrents::load(db.clone())?),
            Arc::new(MemorySwarms::new(ttl, settings.limits)),
        ),
        TrackerStoreConfig::Redis { url } => {
            let conn = redis_store::connect(url.as_str())
                .with_context(|| format!("tracker.redis_url = {url}"))?;
            (
                Arc::new(redis_store::RedisTorrents::new(conn.clone())),
                Arc::new(redis_store::RedisSwarms::new(conn, ttl, settings.limits)),
            )
        }
    };
    Ok(Some(Arc::new(Tracker::new(torrents, swarms, policy)?)))
}

/// Where the seeder announces: the tracker `seeder.tracker` names, else this server's own.
pub fn tracker_client(
    settings: &Settings,
    own_tracker: Option<&Arc<Tracker>>,
) -> Option<TrackerClient> {
    match (&settings.seeder.tracker, own_tracker) {
        (Some(base), _) => Some(TrackerClient::Remote {
            base: base.clone(),
            http: crate::seeder::announcer::http_client(),
            token: settings.seeder.tracker_token.clone(),
        }),
        (None, Some(tracker)) => Some(TrackerClient::Local(tracker.clone())),
        (None, None) => None,
    }
}
