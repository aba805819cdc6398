//! The seeder role: its storage backend, its hash cache, and the URLs its torrents carry.

use std::sync::Arc;

use url::Url;

use crate::app::Seeds;
use crate::db::StateDb;
use crate::seeder::hash_cache::{HashCache, SidecarCache, StateDbCache};
use crate::seeder::{Seeder, TorrentUrls};
use crate::settings::Settings;
use crate::storage;
use crate::types::join_url;

/// The seeder, when its role is on (`seeder.enabled`), over the configured storage and `seeds`,
/// stamped with the URLs of `public_url`.
pub fn seeder(
    settings: &Settings,
    seeds: Seeds,
    db: &Arc<StateDb>,
    urls: &TorrentUrlsFor,
    public_url: &Url,
) -> anyhow::Result<Option<Arc<Seeder>>> {
    if !settings.seeder.enabled {
        anyhow::ensure!(
            seeds.files.is_empty() && seeds.torrents.is_empty(),
            "files to seed were given, but the seeder role is off (--no-seeder)"
        );
        return Ok(None);
    }
    let opened = storage::open(&settings.storage.backend, &seeds.files)?;
    let in_db = StateDbCache(db.clone());
    // A backend shared by stateless instances keeps hashes beside the objects, for all of them.
    let hashes: Arc<dyn HashCache> = match opened.metadata {
        Some(metadata) => Arc::new(SidecarCache::new(metadata.store, metadata.root, in_db)),
        None => Arc::new(in_db),
    };
    let mut seeder = Seeder::new(
        opened.storage,
        hashes,
        settings.seeder.piece_length,
        urls.at(public_url),
    )
    .with_uploads(settings.seeder.max_upload_bytes)
    .with_torrents(seeds.torrents);
    if let Some(cache) = opened.range_cache {
        seeder = seeder.with_range_cache(cache);
    }
    Ok(Some(Arc::new(seeder)))
}

/// The URLs a torrent names for a given public URL: torrents name this server's own tracker by
/// the public URL, so both move together when the gateway maps a new address.
#[derive(Clone)]
pub struct TorrentUrlsFor {
    /// `seeder.tracker`, when announcing elsewhere.
    external_tracker: Option<Url>,
    own_tracker: bool,
}

impl TorrentUrlsFor {
    pub fn new(settings: &Settings) -> Self {
        TorrentUrlsFor {
            external_tracker: settings.seeder.tracker.clone(),
            own_tracker: settings.tracker.enabled,
        }
    }

    pub fn at(&self, public_url: &Url) -> TorrentUrls {
        TorrentUrls {
            announce: self
                .external_tracker
                .clone()
                .or_else(|| self.own_tracker.then(|| public_url.clone()))
                .map(|base| join_url(&base, "announce")),
            public_url: public_url.clone(),
        }
    }
}
