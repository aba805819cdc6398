//! The catalog of shared torrents: an immutable snapshot mapping names and info-hashes to
//! torrents (a file, or a folder of files) and the objects behind them. A rescan builds a new
//! snapshot and swaps it in, so readers never lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::metainfo::Metainfo;
use crate::storage::ObjectMeta;
use crate::types::{InfoHash, InfoHashV1, InfoHashV2};

/// A torrent this seeder shares, as it was when hashed: a top-level file, or a top-level folder
/// whose files are the objects under `<name>/`.
#[derive(Debug)]
pub struct SharedTorrent {
    /// The torrent name, and its first segment in URLs: one path component.
    pub name: String,
    /// The objects of the torrent's files, in torrent order (`meta.files`), at the versions
    /// that were hashed: reads of any other version are refused.
    pub objects: Vec<ObjectMeta>,
    pub meta: Arc<Metainfo>,
}

impl SharedTorrent {
    /// The index of the file at `path` (`/`-separated, inside a folder).
    pub fn file_at(&self, path: &str) -> Option<usize> {
        let parts: Vec<&str> = path.split('/').collect();
        self.meta
            .files
            .binary_search_by(|f| f.path.iter().map(String::as_str).cmp(parts.iter().copied()))
            .ok()
    }

    /// The newest of its objects' modification times.
    pub fn last_modified(&self) -> std::time::SystemTime {
        self.objects
            .iter()
            .map(|o| o.last_modified)
            .max()
            .unwrap_or(std::time::UNIX_EPOCH)
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    by_name: HashMap<String, Arc<SharedTorrent>>,
    /// Sorted, so the listing pages through it by hash.
    by_v2: BTreeMap<InfoHashV2, Arc<SharedTorrent>>,
    by_v1: HashMap<InfoHashV1, Arc<SharedTorrent>>,
}

impl Catalog {
    pub fn new(files: impl IntoIterator<Item = Arc<SharedTorrent>>) -> Self {
        let mut catalog = Catalog::default();
        for file in files {
            // Identical content under two names is one torrent: the first name serves it.
            catalog
                .by_v2
                .entry(file.meta.info_hash_v2)
                .or_insert_with(|| file.clone());
            catalog
                .by_v1
                .entry(file.meta.info_hash_v1)
                .or_insert_with(|| file.clone());
            catalog.by_name.insert(file.name.clone(), file);
        }
        catalog
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<SharedTorrent>> {
        self.by_name.get(name)
    }

    pub fn by_hash(&self, hash: &InfoHash) -> Option<&Arc<SharedTorrent>> {
        match hash {
            InfoHash::V1(h) => self.by_v1.get(h),
            InfoHash::V2(h) => self.by_v2.get(h),
        }
    }

    /// `{file}` in a URL: an info-hash when it parses as one and is shared, else a name.
    pub fn resolve(&self, file: &str) -> Option<(&Arc<SharedTorrent>, bool)> {
        if let Some(found) = InfoHash::parse(file).ok().and_then(|h| self.by_hash(&h)) {
            return Some((found, true));
        }
        self.by_name(file).map(|f| (f, false))
    }

    /// Shared torrents, sorted by name.
    pub fn torrents(&self) -> Vec<Arc<SharedTorrent>> {
        let mut files: Vec<_> = self.by_name.values().cloned().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        files
    }

    /// Up to `limit` torrents whose v2 hash sorts after `after`, in hash order.
    pub fn page(
        &self,
        after: Option<InfoHashV2>,
        limit: usize,
    ) -> impl Iterator<Item = &Arc<SharedTorrent>> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.by_v2
            .range((after.map_or(Unbounded, Excluded), Unbounded))
            .map(|(_, t)| t)
            .take(limit)
    }

    /// Distinct torrents (identical content under two names counts once).
    pub fn torrent_count(&self) -> usize {
        self.by_v2.len()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether two snapshots share the same set of torrents under the same names.
    pub fn same_as(&self, other: &Catalog) -> bool {
        self.by_name.len() == other.by_name.len()
            && self.by_name.iter().all(|(name, f)| {
                other.by_name.get(name).is_some_and(|o| {
                    o.meta.info_hash_v2 == f.meta.info_hash_v2 && o.objects == f.objects
                })
            })
    }
}
