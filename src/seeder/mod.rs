//! The seeder role: finds the objects to share in [`Storage`], hashes each once per version
//! (remembered in a [`HashCache`]: the state database, or sidecars in the bucket), and keeps the
//! [`Catalog`] current by rescanning.
//! It knows objects only by key and version, never by where their bytes live.

pub mod announcer;
pub mod catalog;
pub mod hash_cache;
mod upload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use url::Url;

use sha2::Digest;

use crate::metainfo::{create, layout, validate_name, Metainfo};
use crate::storage::{blocking_reader, ByteStream, ObjectMeta, RangeCache, Storage, StorageError};
use crate::types::PieceLength;
pub use catalog::{Catalog, SharedTorrent};
pub use hash_cache::HashCache;
pub use upload::UploadError;

/// Where torrents of shared files point: the tracker's /announce and our /files/ web seed.
#[derive(Debug, Clone)]
pub struct TorrentUrls {
    pub announce: Option<Url>,
    pub public_url: Url,
}

pub struct Seeder {
    storage: Arc<dyn Storage>,
    /// Ranges served recently, for a remote store (`storage.s3.cache_mib`); hashing reads
    /// bypass it.
    ranges: Option<RangeCache>,
    hashes: Arc<dyn HashCache>,
    piece_length: PieceLength,
    /// Follows the public URL (seeding from home: it moves with the external address).
    urls: RwLock<TorrentUrls>,
    catalog: RwLock<Arc<Catalog>>,
    /// Bytes read for hashing since start.
    hashed_bytes: AtomicU64,
    /// Woken when serving finds an object changed, so the catalog catches up at once.
    rescan_requested: tokio::sync::Notify,
    /// What is being hashed now, and how far along.
    hashing: Arc<Mutex<Option<Hashing>>>,
    /// The largest upload, when uploads are on (see `upload`).
    max_upload: Option<u64>,
    /// Torrents given for shared files, by name: such a file is served under its torrent (its
    /// piece length and info-hashes) once its bytes are checked against it.
    given: HashMap<String, Arc<Metainfo>>,
}

/// A torrent being hashed: its name, bytes read and bytes in all.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Hashing {
    pub name: String,
    pub done: u64,
    pub total: u64,
}

impl Seeder {
    pub fn new(
        storage: Arc<dyn Storage>,
        hashes: Arc<dyn HashCache>,
        piece_length: PieceLength,
        urls: TorrentUrls,
    ) -> Self {
        Seeder {
            storage,
            ranges: None,
            hashes,
            piece_length,
            urls: RwLock::new(urls),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            hashed_bytes: AtomicU64::new(0),
            rescan_requested: tokio::sync::Notify::new(),
            hashing: Arc::default(),
            max_upload: None,
            given: HashMap::new(),
        }
    }

    /// Serves repeated ranges from `cache` instead of the store.
    pub fn with_range_cache(mut self, cache: RangeCache) -> Self {
        self.ranges = Some(cache);
        self
    }

    /// Serves the file or folder each torrent names (by its name) under that torrent rather than
    /// one hashed with the configured piece length, once its bytes match it; one that does not
    /// match is not shared.
    pub fn with_torrents(mut self, torrents: Vec<Metainfo>) -> Self {
        self.given = torrents
            .into_iter()
            .map(|meta| (meta.name.clone(), Arc::new(meta)))
            .collect();
        self
    }

    /// The range cache's bytes held, reads from memory and reads from the store, if it has one.
    pub fn range_cache_stats(&self) -> Option<(u64, u64, u64)> {
        self.ranges.as_ref().map(RangeCache::stats)
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The torrent being hashed now, if any, with its progress.
    pub fn hashing(&self) -> Option<Hashing> {
        self.hashing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Bytes of shared objects read to hash them since start.
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes.load(Ordering::Relaxed)
    }

    /// `len` bytes of a shared file's object from `start`, for serving. An object that changed
    /// or vanished since it was hashed is refused and a rescan is asked for, so the catalog
    /// catches up at once rather than at the next interval.
    pub async fn read(
        &self,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> Result<ByteStream, StorageError> {
        let read = match &self.ranges {
            Some(cache) => cache.read(&*self.storage, object, start, len).await,
            None => self.storage.read(object, start, len).await,
        };
        self.rescan_if_gone(read)
    }

    /// Where a client may fetch a shared file's object straight from the store, if the storage
    /// offers that; refused, with a rescan asked for, as [`Seeder::read`].
    pub async fn redirect(&self, object: &ObjectMeta) -> Result<Option<Url>, StorageError> {
        let redirect = self.storage.redirect(object).await;
        self.rescan_if_gone(redirect)
    }

    fn rescan_if_gone<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            self.request_rescan();
        }
        result
    }

    /// Stores a new object (an upload, after `upload`'s checks) and asks for a rescan, which
    /// hashes and shares it.
    async fn put(
        &self,
        key: &str,
        body: crate::storage::ByteStream,
    ) -> Result<ObjectMeta, StorageError> {
        let stored = self.storage.put(key, body).await?;
        self.request_rescan();
        Ok(stored)
    }

    /// Asks the rescan loop to run now rather than at its next interval.
    pub fn request_rescan(&self) {
        self.rescan_requested.notify_one();
    }

    /// Resolves when a rescan is requested.
    pub async fn rescan_requested(&self) {
        self.rescan_requested.notified().await;
    }

    pub fn urls(&self) -> TorrentUrls {
        self.urls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Points the torrents at a new public URL (and tracker): every catalog entry is stamped
    /// again at once, so /torrents/{hash} never hands out a dead web seed after an address
    /// change.
    pub fn set_urls(&self, urls: TorrentUrls) {
        *self.urls.write().unwrap_or_else(|e| e.into_inner()) = urls;
        let restamped = self.stamped(self.catalog().torrents());
        self.swap_in(restamped);
    }

    /// Makes `next` the catalog, returning the one it replaces. Stamping re-encodes torrents, so
    /// it happens before the write lock; under the lock only what a concurrent URL change made
    /// stale is stamped again (a comparison per torrent otherwise), so serving never waits on
    /// encoding and no stale entry survives.
    fn swap_in(&self, next: Catalog) -> Arc<Catalog> {
        let mut current = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let next = self.stamped(next.torrents());
        std::mem::replace(&mut *current, Arc::new(next))
    }

    /// The catalog of `torrents`, each carrying the current URLs.
    fn stamped(&self, torrents: Vec<Arc<SharedTorrent>>) -> Catalog {
        let urls = self.urls();
        let trackers: Vec<String> = urls.announce.iter().map(|u| u.to_string()).collect();
        Catalog::new(torrents.into_iter().map(|torrent| {
            let url_list = [web_seed_url(&urls.public_url, &torrent.meta)];
            if torrent.meta.trackers == trackers && torrent.meta.url_list == url_list {
                return torrent;
            }
            match torrent.meta.with_urls(&trackers, &url_list) {
                Ok(meta) => Arc::new(SharedTorrent {
                    name: torrent.name.clone(),
                    objects: torrent.objects.clone(),
                    meta: Arc::new(meta),
                }),
                Err(e) => {
                    tracing::warn!(name = %torrent.name, error = %e, "cannot stamp the torrent's URLs");
                    torrent
                }
            }
        }))
    }

    /// Lists the storage, hashing what is new or changed, and swaps in the new catalog.
    /// Returns whether the catalog changed.
    pub async fn rescan(&self) -> bool {
        let previous = self.catalog();
        let objects = match self.storage.list().await {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the shared objects; keeping the catalog");
                return false;
            }
        };
        let mut torrents = Vec::new();
        for group in group(objects) {
            let name = group.name.clone();
            match self.load_or_hash(group, &previous).await {
                Ok(torrent) => torrents.push(torrent),
                Err(e) => tracing::warn!(%name, error = %format!("{e:#}"), "cannot share it"),
            }
        }
        let next = self.stamped(torrents);
        let len = next.len();
        let replaced = self.swap_in(next);
        let changed = !replaced.same_as(&self.catalog());
        if changed {
            tracing::info!(torrents = len, "catalog updated");
        }
        changed
    }

    /// The group's torrent: unchanged from the previous catalog, else from the hash cache, else
    /// by hashing it; for a group a torrent was given for, that torrent, once hashing with its
    /// piece length gave the same pieces.
    async fn load_or_hash(
        &self,
        group: Group,
        previous: &Catalog,
    ) -> anyhow::Result<Arc<SharedTorrent>> {
        let objects: Vec<ObjectMeta> = group.members.iter().map(|(_, o)| o.clone()).collect();
        // Most rescans change nothing: keep the entry rather than re-reading and re-validating
        // its torrent from the hash cache.
        if let Some(unchanged) = previous
            .by_name(&group.name)
            .filter(|t| t.objects == objects)
        {
            return Ok(unchanged.clone());
        }
        let given = self.given.get(&group.name);
        let piece_length = given.map_or(self.piece_length, |g| g.piece_length);
        let key = group.cache_key();
        let cached = match self.hashes.load(&key, piece_length.get()).await {
            Ok(cached) => cached.and_then(|bytes| Metainfo::from_bytes(&bytes).ok()),
            Err(e) => {
                tracing::warn!(name = %group.name, error = %format!("{e:#}"), "cannot read the hash cache; hashing");
                None
            }
        };
        // A cache entry must describe these objects: the same files, lengths and piece length,
        // and be the given torrent when there is one.
        let cached = cached.filter(|m| {
            m.piece_length == piece_length
                && group.describes(m)
                && given.is_none_or(|g| g.info_hash_v2 == m.info_hash_v2)
        });
        let hashed = match cached {
            Some(meta) => meta,
            None => {
                let hashed = self.hash(&group, &objects, piece_length).await?;
                let meta = match given {
                    None => hashed,
                    Some(given) if same_content(&hashed, given) => Metainfo::clone(given),
                    Some(given) => anyhow::bail!(
                        "its bytes are not those of the torrent {} it is to be served under",
                        given.info_hash_v2
                    ),
                };
                self.remember(&group.name, &key, &meta).await;
                meta
            }
        };
        // Stamped with the URLs as the catalog is swapped in.
        Ok(Arc::new(SharedTorrent {
            name: group.name,
            objects,
            meta: Arc::new(hashed),
        }))
    }

    /// Reads the group's objects once, in order, hashing with `piece_length` on the blocking pool.
    async fn hash(
        &self,
        group: &Group,
        objects: &[ObjectMeta],
        piece_length: PieceLength,
    ) -> anyhow::Result<Metainfo> {
        let size: u64 = objects.iter().map(|o| o.size).sum();
        let name = group.name.clone();
        tracing::info!(%name, files = group.members.len(), bytes = size, "hashing");
        let started = std::time::Instant::now();
        let entries: Vec<create::Entry> = group
            .members
            .iter()
            .map(|(path, object)| create::Entry {
                path: path.clone(),
                length: object.size,
                // Storage keeps no permissions: the `x` attribute is for `create` alone.
                executable: false,
            })
            .collect();
        let objects = objects.to_vec();
        let (storage, is_folder) = (self.storage.clone(), group.is_folder);
        let hashing = self.hashing.clone();
        *hashing.lock().unwrap_or_else(|e| e.into_inner()) = Some(Hashing {
            name: name.clone(),
            done: 0,
            total: size,
        });
        let meta = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Handle::current();
            let open = |i: usize| -> std::io::Result<Box<dyn std::io::Read + Send>> {
                let object = &objects[i];
                if object.size == 0 {
                    return Ok(Box::new(std::io::empty()));
                }
                let stream = runtime
                    .block_on(storage.read(object, 0, object.size))
                    .map_err(std::io::Error::other)?;
                Ok(Box::new(blocking_reader(stream)))
            };
            let progress = |done: u64| {
                if let Some(h) = hashing.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    h.done = done;
                }
            };
            let content = create::hash_entries(
                &name,
                is_folder,
                &entries,
                open,
                piece_length,
                true,
                &progress,
            )
            .map_err(|(i, e)| anyhow::anyhow!("{}: {e}", objects[i].key))?;
            Ok::<_, anyhow::Error>(content.torrent(&[], &[])?)
        })
        .await;
        *self.hashing.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let meta = meta??;
        self.hashed_bytes.fetch_add(meta.length, Ordering::Relaxed);
        tracing::info!(name = %group.name, seconds = started.elapsed().as_secs_f64(), info_hash = %meta.info_hash_v2, "hashed");
        Ok(meta)
    }

    /// Caches `meta` as the group's torrent under `key`, at its piece length.
    async fn remember(&self, name: &str, key: &ObjectMeta, meta: &Metainfo) {
        let bytes = Bytes::copy_from_slice(&meta.bytes);
        let stored = self.hashes.store(key, meta.piece_length.get(), bytes).await;
        if let Err(e) = stored {
            // Serving does not need the cache: the next start hashes again.
            tracing::warn!(%name, error = %format!("{e:#}"), "cannot remember the hash");
        }
    }
}

/// Whether `hashed`, made from the bytes, has exactly the content `given` describes: the same
/// files and lengths, piece length and piece hashes (SHA-256 and SHA-1). What else the torrents
/// hold (a file attribute, a key another tool adds) may differ; the given one is served.
fn same_content(hashed: &Metainfo, given: &Metainfo) -> bool {
    hashed.piece_length == given.piece_length
        && hashed.piece_hashes == given.piece_hashes
        && hashed.v1_pieces == given.v1_pieces
        && hashed.files.len() == given.files.len()
        && hashed
            .files
            .iter()
            .zip(&given.files)
            .all(|(a, b)| a.path == b.path && a.length == b.length)
}

/// One torrent's worth of listed objects, before hashing.
struct Group {
    /// The torrent name: a top-level object's key, or a top-level folder's name.
    name: String,
    is_folder: bool,
    /// The objects with their paths inside the torrent, in canonical order (`[name]` for a
    /// single file).
    members: Vec<(Vec<String>, ObjectMeta)>,
}

impl Group {
    /// What the hash cache knows the group by: a single file's own object; for a folder, an
    /// object named after it whose version digests every member's path, size and version, so
    /// any change inside gives a new entry.
    fn cache_key(&self) -> ObjectMeta {
        if !self.is_folder {
            return self.members[0].1.clone();
        }
        let mut digest = sha2::Sha256::new();
        for (path, object) in &self.members {
            for part in path {
                digest.update(part.as_bytes());
                digest.update([0]);
            }
            digest.update(object.size.to_le_bytes());
            digest.update(object.version.as_bytes());
            digest.update([1]);
        }
        ObjectMeta {
            key: self.name.clone(),
            size: self.members.iter().map(|(_, o)| o.size).sum(),
            version: format!("folder-{}", hex::encode(digest.finalize())),
            last_modified: self
                .members
                .iter()
                .map(|(_, o)| o.last_modified)
                .max()
                .unwrap_or(std::time::UNIX_EPOCH),
        }
    }

    /// Whether `meta` is a torrent of exactly these files.
    fn describes(&self, meta: &Metainfo) -> bool {
        meta.is_folder == self.is_folder
            && meta.files.len() == self.members.len()
            && meta
                .files
                .iter()
                .zip(&self.members)
                .all(|(f, (path, o))| f.path == *path && f.length == o.size)
    }
}

/// Groups listed objects into torrents: a key without `/` is a single-file torrent (unless
/// empty); the keys under a first path component form that folder's torrent. Keys with a
/// hidden (`.`) or unsafe component are left out, so every backend follows the data dir's rule
/// ([`crate::storage::walk_dir`]); a name that is both a file and a folder keeps the file.
fn group(objects: Vec<ObjectMeta>) -> Vec<Group> {
    use std::collections::BTreeMap;
    let mut files: BTreeMap<String, ObjectMeta> = BTreeMap::new();
    let mut folders: BTreeMap<String, Vec<(Vec<String>, ObjectMeta)>> = BTreeMap::new();
    for object in objects {
        let parts: Vec<String> = object.key.split('/').map(String::from).collect();
        let safe = parts
            .iter()
            .all(|p| !p.starts_with('.') && validate_name(p).is_ok());
        if !safe {
            if !parts.iter().any(|p| p.starts_with('.')) {
                tracing::warn!(key = %object.key, "skipping: not a safe path (empty, '..', '\\' or NUL component)");
            }
            continue;
        }
        match &parts[..] {
            [_] if object.size == 0 => {}
            [name] => {
                if files.insert(name.clone(), object).is_some() {
                    tracing::warn!(%name, "another shared file has this name; skipping");
                }
            }
            [folder, inside @ ..] => folders
                .entry(folder.clone())
                .or_default()
                .push((inside.to_vec(), object)),
            [] => {}
        }
    }
    let mut groups: Vec<Group> = Vec::with_capacity(files.len() + folders.len());
    for (name, mut members) in folders {
        if files.contains_key(&name) {
            tracing::warn!(%name, "a shared file has this folder's name; skipping the folder");
            continue;
        }
        if members.iter().all(|(_, o)| o.size == 0) {
            continue;
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        // Checked before anything is read: a folder its own torrent would refuse (paths equal
        // case-insensitively, too deep, too many files) is not hashed at every rescan.
        if let Err(e) = layout::validate_paths(members.iter().map(|(path, _)| &path[..])) {
            tracing::warn!(%name, error = %e, "not sharing this folder");
            continue;
        }
        groups.push(Group {
            name,
            is_folder: true,
            members,
        });
    }
    groups.extend(files.into_iter().map(|(name, object)| Group {
        members: vec![(vec![name.clone()], object)],
        name,
        is_folder: false,
    }));
    groups
}

/// Path-segment encoding: everything but RFC 3986 unreserved characters. The `url` crate's own
/// segment encoder drops tabs and newlines rather than encoding them, which would advertise a
/// URL for another name.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `dir`, a URL ending in '/', with `segments` below it, each percent-encoded.
fn below<'a>(dir: &str, segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut url = dir.to_owned();
    for (i, segment) in segments.into_iter().enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
    }
    url
}

/// `<public url>/files/`, the directory the shared files are served in.
fn files_dir(public_url: &Url) -> String {
    format!("{}/files/", public_url.as_str().trim_end_matches('/'))
}

/// `<public url>/files/<segments...>`, each segment percent-encoded.
fn files_url<'a>(public_url: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    Url::parse(&below(&files_dir(public_url), segments))
        .expect("a valid base URL with encoded segments is valid")
}

/// The BEP 19 url-list entry of a shared torrent: a single file's own URL (BEP 19 allows it, and
/// some clients use a directory-style entry as it stands), or for a folder the /files/
/// directory, to which clients append `<name>/<path>`.
pub fn web_seed_url(public_url: &Url, meta: &Metainfo) -> String {
    web_seed_entry(&files_dir(public_url), &meta.name, meta.is_folder)
}

/// The url-list entry for web seed `url` of a torrent named `name`, as [`web_seed_url`] makes
/// them for the server's own torrents: a directory URL (ending in '/') becomes a single file's
/// own URL, `<url><name>` percent-encoded; a folder keeps the directory, and a URL that already
/// names the file is kept as given.
pub fn web_seed_entry(url: &str, name: &str, is_folder: bool) -> String {
    if is_folder || !url.ends_with('/') {
        url.to_owned()
    } else {
        below(url, name.split('/'))
    }
}

/// Where `GET /files/{name}` serves a shared file.
pub fn file_url(public_url: &Url, name: &str) -> Url {
    files_url(public_url, name.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the name (spaces, unicode, control characters, '%', '?', '#'), the URL we
        /// advertise decodes back to exactly that shared name under /files/. (Names never have
        /// "." or ".." segments: they come from real path components.)
        #[test]
        fn file_urls_round_trip_any_name(parts in proptest::collection::vec("[^/]{1,12}", 1..4)) {
            prop_assume!(parts.iter().all(|p| p != "." && p != ".."));
            let name = parts.join("/");
            let url = file_url(&Url::parse("http://h:1/base/").unwrap(), &name);
            let decoded: Vec<String> = url
                .path_segments()
                .unwrap()
                .map(|seg| percent_encoding::percent_decode_str(seg).decode_utf8().unwrap().into_owned())
                .collect();
            prop_assert_eq!(&decoded[..2], &["base".to_owned(), "files".to_owned()]);
            prop_assert_eq!(decoded[2..].join("/"), name);
        }
    }

    #[test]
    fn web_seed_urls_name_a_single_file_and_the_files_directory_for_a_folder() {
        let pl = crate::types::PieceLength::new(16384).unwrap();
        let single = create::from_bytes("a b.bin", b"x", pl, vec![], vec![]).unwrap();
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            web_seed_url(&base, &single),
            "http://127.0.0.1:8080/files/a%20b.bin"
        );
        let prefixed = Url::parse("https://x.example/app/").unwrap();
        let mut folder = single.clone();
        folder.is_folder = true;
        assert_eq!(
            web_seed_url(&prefixed, &folder),
            "https://x.example/app/files/"
        );
    }

    #[test]
    fn web_seed_entries_name_a_single_file_below_a_directory_url_only() {
        let dir = "http://127.0.0.1:9/files/";
        assert_eq!(
            web_seed_entry(dir, "my file ü #1.bin", false),
            "http://127.0.0.1:9/files/my%20file%20%C3%BC%20%231.bin"
        );
        assert_eq!(web_seed_entry(dir, "album ü", true), dir);
        let exact = "http://h/elsewhere/renamed.bin";
        assert_eq!(web_seed_entry(exact, "a.bin", false), exact);
        assert_eq!(web_seed_entry(exact, "album", true), exact);
    }
}
