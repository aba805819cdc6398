//! The background jobs of a running server, one function each: they keep the seeder's catalog,
//! the tracker's swarms, the announces and the port mapping current. Each returns at once; the
//! job runs as a local task of the server's runtime (actix's, whose local set runs it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use url::Url;

use super::TorrentUrlsFor;
use crate::reach::{Reach, ReachConfig};
use crate::seeder::announcer::{Announcer, TrackerClient};
use crate::seeder::{file_url, Seeder};
use crate::tracker::Tracker;
use crate::types::join_url;

/// Keeps the port mapping and the DNS name current until `stop` turns true, then removes the
/// mapping.
pub fn reach_monitor(
    reach: &Arc<Reach>,
    config: &ReachConfig,
    local: SocketAddr,
    configured: Option<Url>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (reach, config) = (reach.clone(), config.clone());
    tokio::task::spawn_local(async move { reach.run(config, local, configured, stop).await })
}

/// Stamps the seeder's torrents with each new public URL.
pub fn follow_public_url(seeder: &Arc<Seeder>, reach: &Reach, urls: TorrentUrlsFor) {
    let (seeder, mut public_urls) = (seeder.clone(), reach.subscribe());
    tokio::task::spawn_local(async move {
        while public_urls.changed().await.is_ok() {
            let url = public_urls.borrow_and_update().clone();
            seeder.set_urls(urls.at(&url));
        }
    });
}

/// Lists the shared files every `every` (or when asked), notifying `changed` when the catalog
/// moved; the first scan logs what is shared.
pub fn rescans(seeder: &Arc<Seeder>, every: Duration, changed: Arc<Notify>) {
    let seeder = seeder.clone();
    tokio::task::spawn_local(async move {
        let mut first = true;
        loop {
            if seeder.rescan().await {
                changed.notify_one();
            }
            if first {
                first = false;
                log_shared(&seeder);
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = seeder.rescan_requested() => {}
            }
        }
    });
}

fn log_shared(seeder: &Seeder) {
    let public_url = seeder.urls().public_url;
    for file in seeder.catalog().torrents() {
        let hash = file.meta.info_hash_v2.to_string();
        tracing::info!(
            name = %file.name,
            info_hash = %hash,
            url = %file_url(&public_url, &file.name),
            torrent = %join_url(&join_url(&public_url, "torrents"), &hash),
            "sharing"
        );
    }
}

/// Drops the tracker's expired peers and seeders every `every`.
pub fn expiry(tracker: &Arc<Tracker>, every: Duration) {
    let tracker = tracker.clone();
    tokio::task::spawn_local(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = tracker.expire().await {
                tracing::warn!(error = %e, "expiring tracker entries failed; will retry");
            }
        }
    });
}

/// Announces the seeder's torrents through `client` until `shutdown`, then says "stopped".
pub fn announcer(
    seeder: &Arc<Seeder>,
    client: TrackerClient,
    reach: &Arc<Reach>,
    interval: Duration,
    catalog_changed: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let announcer = Announcer {
        seeder: seeder.clone(),
        client,
        reach: reach.clone(),
        default_interval: interval,
        catalog_changed,
        shutdown,
    };
    tokio::task::spawn_local(announcer.run())
}
