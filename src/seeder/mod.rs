//! The seeder role: finds the objects to share in [`Storage`], hashes each once per version
//! (remembered in a [`HashCache`]: the state database, or sidecars in the bucket), and keeps the
//! [`Catalog`] current by rescanning.
//! It knows objects only by key and version, never by where their bytes live.

pub mod announcer;
pub mod catalog;
pub mod hash_cache;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use url::Url;

use crate::metainfo::{create, Metainfo};
use crate::storage::{ByteStream, ObjectMeta, Storage, StorageError, StreamReader};
use crate::types::PieceLength;
pub use catalog::{Catalog, SharedFile};
pub use hash_cache::HashCache;

/// Where torrents of shared files point: the tracker's /announce and our /files/ web seed.
#[derive(Debug, Clone)]
pub struct TorrentUrls {
    pub announce: Option<Url>,
    pub public_url: Url,
}

pub struct Seeder {
    storage: Arc<dyn Storage>,
    hashes: Arc<dyn HashCache>,
    piece_length: PieceLength,
    urls: TorrentUrls,
    catalog: RwLock<Arc<Catalog>>,
    /// Bytes read for hashing since start.
    hashed_bytes: AtomicU64,
    /// Woken when serving finds an object changed, so the catalog catches up at once.
    rescan_requested: tokio::sync::Notify,
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
            hashes,
            piece_length,
            urls,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            hashed_bytes: AtomicU64::new(0),
            rescan_requested: tokio::sync::Notify::new(),
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
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
        let read = self.storage.read(object, start, len).await;
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

    /// Asks the rescan loop to run now rather than at its next interval.
    pub fn request_rescan(&self) {
        self.rescan_requested.notify_one();
    }

    /// Resolves when a rescan is requested.
    pub async fn rescan_requested(&self) {
        self.rescan_requested.notified().await;
    }

    pub fn urls(&self) -> &TorrentUrls {
        &self.urls
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
        let mut files = Vec::new();
        let mut names = HashSet::new();
        for object in objects {
            if !names.insert(object.key.clone()) {
                tracing::warn!(name = %object.key, "another shared file has this name; skipping");
                continue;
            }
            let name = object.key.clone();
            match self.load_or_hash(object, &previous).await {
                Ok(Some(file)) => files.push(file),
                Ok(None) => {}
                Err(e) => tracing::warn!(%name, error = %format!("{e:#}"), "cannot share file"),
            }
        }
        let next = Catalog::new(files);
        let mut current = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let changed = !current.same_as(&next);
        if changed {
            tracing::info!(files = next.len(), "catalog updated");
        }
        *current = Arc::new(next);
        changed
    }

    /// The object's entry: unchanged from the previous catalog, else its torrent from the hash
    /// cache, else by hashing it. `None` for an empty object.
    async fn load_or_hash(
        &self,
        object: ObjectMeta,
        previous: &Catalog,
    ) -> anyhow::Result<Option<Arc<SharedFile>>> {
        if object.size == 0 {
            return Ok(None);
        }
        // Most rescans change nothing: keep the entry rather than re-reading and re-validating
        // its torrent from the state database.
        if let Some(unchanged) = previous.by_name(&object.key).filter(|f| f.object == object) {
            return Ok(Some(unchanged.clone()));
        }
        let piece_length = self.piece_length.get();
        let cached = match self.hashes.load(&object, piece_length).await {
            Ok(cached) => cached.and_then(|bytes| Metainfo::from_bytes(&bytes).ok()),
            Err(e) => {
                tracing::warn!(name = %object.key, error = %format!("{e:#}"), "cannot read the hash cache; hashing");
                None
            }
        };
        // A cache entry must describe these bytes: the right length and piece length.
        let cached =
            cached.filter(|m| m.length == object.size && m.piece_length.get() == piece_length);
        let hashed = match cached {
            Some(meta) => meta,
            None => self.hash(&object).await?,
        };
        let meta = self.with_urls(&object.key, hashed)?;
        Ok(Some(Arc::new(SharedFile {
            name: object.key.clone(),
            object,
            meta: Arc::new(meta),
        })))
    }

    /// Reads the object once, hashing on the blocking pool, and caches the torrent.
    async fn hash(&self, object: &ObjectMeta) -> anyhow::Result<Metainfo> {
        let name = object.key.clone();
        tracing::info!(%name, bytes = object.size, "hashing");
        let started = std::time::Instant::now();
        let reader = StreamReader::new(self.storage.read(object, 0, object.size).await?);
        let piece_length = self.piece_length;
        let torrent_name = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let meta = tokio::task::spawn_blocking(move || {
            let hashes = create::hash_reader(reader, piece_length, &|_| {})?;
            Ok::<_, anyhow::Error>(create::build(
                &torrent_name,
                hashes,
                piece_length,
                vec![],
                vec![],
            )?)
        })
        .await??;
        anyhow::ensure!(
            meta.length == object.size,
            "{name} is {} bytes now, not the {} listed: it changed while it was hashed",
            meta.length,
            object.size
        );
        self.hashed_bytes.fetch_add(meta.length, Ordering::Relaxed);
        tracing::info!(%name, seconds = started.elapsed().as_secs_f64(), info_hash = %meta.info_hash_v2, "hashed");
        if let Err(e) = self
            .hashes
            .store(
                object,
                self.piece_length.get(),
                Bytes::copy_from_slice(&meta.bytes),
            )
            .await
        {
            // Serving does not need the cache: the next start hashes again.
            tracing::warn!(%name, error = %format!("{e:#}"), "cannot remember the hash");
        }
        Ok(meta)
    }

    /// Adds this server's announce URL and web seed to a hashed torrent; the info dict, and so
    /// the info-hashes, stay the same.
    fn with_urls(&self, name: &str, meta: Metainfo) -> anyhow::Result<Metainfo> {
        let trackers = self.urls.announce.iter().map(|u| u.to_string()).collect();
        let web_seed = web_seed_url(&self.urls.public_url, name);
        Ok(Metainfo::new(
            &meta.name,
            meta.length,
            meta.piece_length,
            meta.v1_pieces,
            meta.piece_hashes,
            trackers,
            vec![web_seed],
        )?)
    }
}

/// Path-segment encoding: everything but RFC 3986 unreserved characters. The `url` crate's own
/// segment encoder drops tabs and newlines rather than encoding them, which would advertise a
/// URL for another name.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `<public url>/files/<segments...>`, each segment percent-encoded.
fn files_url<'a>(public_url: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    let mut url = public_url.as_str().trim_end_matches('/').to_owned();
    url.push_str("/files");
    for segment in segments {
        url.push('/');
        url.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
    }
    Url::parse(&url).expect("a valid base URL with encoded segments is valid")
}

/// The BEP 19 url-list entry for a shared file: the directory URL under /files/, ending in '/',
/// to which clients append the torrent name.
pub fn web_seed_url(public_url: &Url, name: &str) -> String {
    let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
    let segments = dir.split('/').filter(|p| !p.is_empty()).chain([""]);
    files_url(public_url, segments).into()
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
    fn web_seed_url_points_at_the_files_directory() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(web_seed_url(&base, "a.bin"), "http://127.0.0.1:8080/files/");
        assert_eq!(
            web_seed_url(&base, "dir/sub dir/a.bin"),
            "http://127.0.0.1:8080/files/dir/sub%20dir/"
        );
        let prefixed = Url::parse("https://x.example/app/").unwrap();
        assert_eq!(web_seed_url(&prefixed, "a"), "https://x.example/app/files/");
    }
}
