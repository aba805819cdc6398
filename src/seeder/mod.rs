//! The seeder role: finds the files to share, hashes each once (cached in the state database by
//! path, size and mtime), and keeps the [`Catalog`] current by rescanning.

pub mod announcer;
pub mod catalog;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use url::Url;
use walkdir::WalkDir;

use crate::db::{CachedHash, StateDb};
use crate::metainfo::{create, Metainfo};
use crate::storage::mtime_ns;
use crate::types::PieceLength;
pub use catalog::{Catalog, SharedFile};

#[derive(Debug, thiserror::Error)]
pub enum SeederError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file to seed {path}: {source}")]
    SeedFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where torrents of shared files point: the tracker's /announce and our /files/ web seed.
#[derive(Debug, Clone)]
pub struct TorrentUrls {
    pub announce: Option<Url>,
    pub public_url: Url,
}

pub struct Seeder {
    data_dir: PathBuf,
    extra_files: Vec<PathBuf>,
    db: Arc<StateDb>,
    piece_length: PieceLength,
    urls: TorrentUrls,
    catalog: RwLock<Arc<Catalog>>,
    /// Woken when serving finds a file changed on disk, so the catalog catches up at once.
    rescan_requested: tokio::sync::Notify,
}

impl Seeder {
    /// Creates the data dir if needed; checks every file given to `seed` exists.
    pub fn new(
        data_dir: &Path,
        extra_files: &[PathBuf],
        db: Arc<StateDb>,
        piece_length: PieceLength,
        urls: TorrentUrls,
    ) -> Result<Self, SeederError> {
        let dir_err = |source| SeederError::DataDir {
            path: data_dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(dir_err)?;
        let data_dir = data_dir.canonicalize().map_err(dir_err)?;
        let extra_files = extra_files
            .iter()
            .map(|p| {
                let canonical = p.canonicalize().map_err(|source| SeederError::SeedFile {
                    path: p.clone(),
                    source,
                })?;
                if canonical.is_file() {
                    Ok(canonical)
                } else {
                    Err(SeederError::SeedFile {
                        path: p.clone(),
                        source: std::io::Error::other("not a regular file"),
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Seeder {
            data_dir,
            extra_files,
            db,
            piece_length,
            urls,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            rescan_requested: tokio::sync::Notify::new(),
        })
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// Walks the data dir and the seed files, hashing what is new or changed, and swaps in the
    /// new catalog. Blocking: run on the blocking pool. Returns whether the catalog changed.
    pub fn rescan(&self) -> bool {
        let previous = self.catalog();
        let mut files = Vec::new();
        let mut names = HashSet::new();
        for (name, path) in self.candidates() {
            if !names.insert(name.clone()) {
                tracing::warn!(%name, path = %path.display(), "another shared file has this name; skipping");
                continue;
            }
            match self.load_or_hash(&name, &path, &previous) {
                Ok(Some(file)) => files.push(file),
                Ok(None) => {}
                Err(e) => tracing::warn!(%name, error = %e, "cannot share file"),
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

    /// (name, canonical path) of every file to share. Entries whose real path leaves the data
    /// dir (symlinks pointing outside) and names that are not UTF-8 are skipped.
    fn candidates(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for entry in WalkDir::new(&self.data_dir)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read part of the data dir");
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if !real.starts_with(&self.data_dir) || !real.is_file() {
                tracing::warn!(path = %entry.path().display(), "skipping: not a regular file inside the data dir");
                continue;
            }
            let relative = entry
                .path()
                .strip_prefix(&self.data_dir)
                .unwrap_or(entry.path());
            let Some(name) = relative_name(relative) else {
                tracing::warn!(path = %entry.path().display(), "skipping: file name is not UTF-8");
                continue;
            };
            out.push((name, real));
        }
        for path in &self.extra_files {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                out.push((name.to_owned(), path.clone()));
            }
        }
        out
    }

    /// The file's entry: unchanged from the previous catalog, else its torrent from the hash
    /// cache, else by hashing it. `None` for an empty file.
    fn load_or_hash(
        &self,
        name: &str,
        path: &Path,
        previous: &Catalog,
    ) -> anyhow::Result<Option<Arc<SharedFile>>> {
        let meta = std::fs::metadata(path)?;
        let (size, mtime) = (meta.len(), mtime_ns(&meta));
        if size == 0 {
            return Ok(None);
        }
        // Most rescans change nothing: keep the entry rather than re-reading and re-validating
        // its torrent from the state database.
        if let Some(unchanged) = previous
            .by_name(name)
            .filter(|f| f.path == path && f.size == size && f.mtime_ns == mtime)
        {
            return Ok(Some(unchanged.clone()));
        }
        let key = path.to_string_lossy();
        let cached = self.db.cached_hash(&key)?.filter(|c| {
            c.size == size && c.mtime_ns == mtime && c.piece_length == self.piece_length.get()
        });
        let hashed = match cached.and_then(|c| Metainfo::from_bytes(&c.metainfo).ok()) {
            Some(meta) => meta,
            None => {
                tracing::info!(%name, bytes = size, "hashing");
                let started = std::time::Instant::now();
                let meta = create::from_path(path, self.piece_length, vec![], vec![], &|_| {})?;
                tracing::info!(%name, seconds = started.elapsed().as_secs_f64(), info_hash = %meta.info_hash_v2, "hashed");
                self.db.store_hash(
                    &key,
                    &CachedHash {
                        size,
                        mtime_ns: mtime,
                        piece_length: self.piece_length.get(),
                        metainfo: meta.bytes.to_vec(),
                    },
                )?;
                meta
            }
        };
        let meta = self.with_urls(name, hashed)?;
        Ok(Some(Arc::new(SharedFile {
            name: name.to_owned(),
            path: path.to_owned(),
            size,
            mtime_ns: mtime,
            meta: Arc::new(meta),
        })))
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

fn relative_name(relative: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
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
