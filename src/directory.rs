//! What this server knows about torrents, for everyone who lists or finds them (the web page,
//! `GET /torrents`, `/metrics`): the seeder's catalog merged with the tracker's registry.
//!
//! Invariants: each torrent appears once, by its v2 info-hash; where both know it, the seeder's
//! copy wins (it carries this server's web seed). A page costs its own rows, never the whole
//! registry, and the live seeders of a page's rows take one store call. Not HTTP: handlers
//! translate.

use std::collections::HashSet;
use std::sync::Arc;

use crate::metainfo::Metainfo;
use crate::seeder::Seeder;
use crate::tracker::{Tracker, TrackerError};
use crate::types::{InfoHash, InfoHashV2};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("no torrent with info-hash {0}")]
    NotFound(InfoHash),
    #[error(transparent)]
    Tracker(#[from] TrackerError),
}

/// The roles that are on, seen together.
#[derive(Clone)]
pub struct Directory {
    seeder: Option<Arc<Seeder>>,
    tracker: Option<Arc<Tracker>>,
}

impl Directory {
    pub fn new(seeder: Option<Arc<Seeder>>, tracker: Option<Arc<Tracker>>) -> Self {
        Directory { seeder, tracker }
    }

    /// Every torrent this server knows, shared ones first, then registered ones.
    pub async fn all(&self) -> Result<Vec<Arc<Metainfo>>, TrackerError> {
        let mut seen = HashSet::new();
        let shared = self
            .seeder
            .iter()
            .flat_map(|s| s.catalog().torrents())
            .map(|f| f.meta.clone());
        let registered = match &self.tracker {
            Some(tracker) => tracker.torrents().await?,
            None => Vec::new(),
        };
        Ok(shared
            .chain(registered)
            .filter(|m| seen.insert(m.info_hash_v2))
            .collect())
    }

    /// Up to `limit` torrents whose v2 hash sorts after `after`, in v2 hash order, and whether
    /// more follow.
    pub async fn page(
        &self,
        after: Option<InfoHashV2>,
        limit: usize,
    ) -> Result<(Vec<Arc<Metainfo>>, bool), TrackerError> {
        // The union's first `limit + 1` lie within the first `limit + 1` of each source.
        let shared: Vec<Arc<Metainfo>> = match &self.seeder {
            Some(seeder) => seeder
                .catalog()
                .page(after, limit + 1)
                .map(|t| t.meta.clone())
                .collect(),
            None => Vec::new(),
        };
        let registered = match &self.tracker {
            Some(tracker) => tracker.torrents_page(after, limit + 1).await?,
            None => Vec::new(),
        };
        let mut page = Vec::with_capacity(limit + 1);
        let (mut a, mut b) = (
            shared.into_iter().peekable(),
            registered.into_iter().peekable(),
        );
        while page.len() <= limit {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.info_hash_v2 == y.info_hash_v2 => {
                    b.next();
                    a.next()
                }
                (Some(x), Some(y)) if y.info_hash_v2 < x.info_hash_v2 => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some(meta) => page.push(meta),
                None => break,
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// How many distinct torrents this server knows: the registry's count, plus shared ones not
    /// in it (one store call for all the shared ones).
    pub async fn count(&self) -> Result<usize, TrackerError> {
        let Some(tracker) = &self.tracker else {
            return Ok(self
                .seeder
                .as_ref()
                .map_or(0, |s| s.catalog().torrent_count()));
        };
        let mut count = tracker.torrent_count().await?;
        if let Some(seeder) = &self.seeder {
            let shared: Vec<InfoHashV2> = seeder
                .catalog()
                .page(None, usize::MAX)
                .map(|t| t.meta.info_hash_v2)
                .collect();
            let registered = tracker.registered(shared).await?;
            count += registered.iter().filter(|known| !**known).count();
        }
        Ok(count)
    }

    /// A torrent by either info-hash, this seeder's copy first.
    pub async fn find(&self, hash: &InfoHash) -> Result<Arc<Metainfo>, DirectoryError> {
        let shared = self
            .seeder
            .as_ref()
            .and_then(|s| s.catalog().by_hash(hash).map(|f| f.meta.clone()));
        let found = match (shared, &self.tracker) {
            (Some(meta), _) => Some(meta),
            (None, Some(tracker)) => tracker.lookup(hash).await?,
            (None, None) => None,
        };
        found.ok_or(DirectoryError::NotFound(*hash))
    }

    /// Live native seeders of each torrent, in order, from this server's tracker (0 with the
    /// tracker off): one store call for all of them.
    pub async fn live_seeders(
        &self,
        torrents: &[Arc<Metainfo>],
    ) -> Result<Vec<usize>, TrackerError> {
        match &self.tracker {
            Some(tracker) => {
                let hashes: Vec<InfoHashV2> = torrents.iter().map(|m| m.info_hash_v2).collect();
                tracker.live_seeders(&hashes).await
            }
            None => Ok(vec![0; torrents.len()]),
        }
    }
}
