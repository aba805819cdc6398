//! The catalog of shared files: an immutable snapshot mapping names and info-hashes to files and
//! their torrents. A rescan builds a new snapshot and swaps it in, so readers never lock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::metainfo::Metainfo;
use crate::storage::ObjectMeta;
use crate::types::{InfoHash, InfoHashV1, InfoHashV2};

/// A file this seeder shares, as it was when hashed.
#[derive(Debug)]
pub struct SharedFile {
    /// Its storage key: the path below the data dir with '/' separators, or the file name for
    /// `seed` arguments.
    pub name: String,
    /// The object, at the version that was hashed: reads of any other version are refused.
    pub object: ObjectMeta,
    pub meta: Arc<Metainfo>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    by_name: HashMap<String, Arc<SharedFile>>,
    by_v2: HashMap<InfoHashV2, Arc<SharedFile>>,
    by_v1: HashMap<InfoHashV1, Arc<SharedFile>>,
}

impl Catalog {
    pub fn new(files: impl IntoIterator<Item = Arc<SharedFile>>) -> Self {
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

    pub fn by_name(&self, name: &str) -> Option<&Arc<SharedFile>> {
        self.by_name.get(name)
    }

    pub fn by_hash(&self, hash: &InfoHash) -> Option<&Arc<SharedFile>> {
        match hash {
            InfoHash::V1(h) => self.by_v1.get(h),
            InfoHash::V2(h) => self.by_v2.get(h),
        }
    }

    /// `{file}` in a URL: an info-hash when it parses as one and is shared, else a name.
    pub fn resolve(&self, file: &str) -> Option<(&Arc<SharedFile>, bool)> {
        if let Some(found) = InfoHash::parse(file).ok().and_then(|h| self.by_hash(&h)) {
            return Some((found, true));
        }
        self.by_name(file).map(|f| (f, false))
    }

    /// Shared files, sorted by name.
    pub fn files(&self) -> Vec<Arc<SharedFile>> {
        let mut files: Vec<_> = self.by_name.values().cloned().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        files
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
                    o.meta.info_hash_v2 == f.meta.info_hash_v2 && o.object == f.object
                })
            })
    }
}
