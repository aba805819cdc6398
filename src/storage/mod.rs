//! Where shared bytes live, behind one async interface: list the shared objects, stat one, and
//! stream a byte range of one. The seeder's scan, hash cache and catalog are written against it
//! and know objects by key and version only, so an object store can stand where the local disk
//! stands.
//!
//! An object's `version` changes whenever its bytes may have: a read names the version it
//! expects and is refused ([`StorageError::Changed`]) if the object has moved on, so bytes that
//! may not match a torrent are never served under it.
//!
//! Two implementations: [`LocalStorage`] (a directory on this machine, the zero-configuration
//! default) and [`S3Storage`] (a bucket on an S3-compatible object store, for stateless seeders).

mod blocks;
mod cache;
mod local;
mod s3;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::Stream;
use tokio_util::io::SyncIoBridge;
use url::Url;

pub use cache::RangeCache;
pub use local::{mtime_ns, walk_dir, FoundFile, LocalStorage};
pub use s3::{S3Config, S3Storage, METADATA_DIR};

/// Where shared files are read from (`storage.backend`): one variant per backend, opened by
/// [`open`].
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// A directory on this machine (`storage.data_dir`), the zero-configuration default.
    Local { data_dir: std::path::PathBuf },
    /// A bucket on an S3-compatible object store (`storage.s3.*`).
    ObjectStore(Box<S3Config>),
}

/// A backend opened by [`open`]: the storage, and what comes with it.
pub struct Opened {
    pub storage: Arc<dyn Storage>,
    /// Ranges served recently, kept in memory (object stores with `storage.s3.cache_mib`).
    pub range_cache: Option<RangeCache>,
    /// Where this program may keep metadata beside the shared objects (sidecar torrents), for a
    /// backend shared by stateless instances.
    pub metadata: Option<MetadataStore>,
}

/// An object store and the folder in it that belongs to this program.
pub struct MetadataStore {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub root: object_store::path::Path,
}

/// Opens the configured backend. `seed_files` (files shared from outside the data dir, by
/// `seed`) only make sense on this machine's disk.
pub fn open(config: &StorageConfig, seed_files: &[PathBuf]) -> Result<Opened, OpenError> {
    match config {
        StorageConfig::Local { data_dir } => {
            let storage =
                LocalStorage::new(data_dir, seed_files).map_err(|source| OpenError::Local {
                    data_dir: data_dir.clone(),
                    source,
                })?;
            Ok(Opened {
                storage: Arc::new(storage),
                range_cache: None,
                metadata: None,
            })
        }
        StorageConfig::ObjectStore(s3) => {
            if !seed_files.is_empty() {
                return Err(OpenError::SeedFilesInBucket {
                    location: format!("s3://{}/{}", s3.bucket, s3.prefix),
                });
            }
            let storage = S3Storage::new(s3).map_err(|source| OpenError::ObjectStore {
                config: format!("{s3:?}"),
                source,
            })?;
            let metadata = MetadataStore {
                store: storage.object_store(),
                root: storage.metadata_root(),
            };
            Ok(Opened {
                storage: Arc::new(storage),
                range_cache: (s3.cache_bytes > 0).then(|| RangeCache::new(s3.cache_bytes)),
                metadata: Some(metadata),
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage.data_dir = {} and the files to seed", data_dir.display())]
    Local {
        data_dir: PathBuf,
        source: StorageError,
    },
    #[error(
        "files to seed were given, but storage.backend = \"s3\" shares the objects in \
         {location}: upload the files there instead"
    )]
    SeedFilesInBucket { location: String },
    #[error("storage.s3 = {config}")]
    ObjectStore {
        config: String,
        source: StorageError,
    },
}

/// A stream of body bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{key} is gone: {source}")]
    Missing { key: String, source: io::Error },
    #[error("{key} changed since it was hashed")]
    Changed { key: String },
    #[error("reading {key}: {source}")]
    Io { key: String, source: io::Error },
    #[error("storage {location}: {source}")]
    Unavailable { location: String, source: io::Error },
    #[error("{key:?} exists already; pick another name")]
    Exists { key: String },
}

/// A shared object as storage lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its name: the path below the shared root, `/`-separated.
    pub key: String,
    pub size: u64,
    /// Changes whenever the bytes may have (local: mtime and inode; an object store: its ETag).
    pub version: String,
    pub last_modified: SystemTime,
}

pub trait Storage: Send + Sync {
    /// Every shared object, sorted by key.
    fn list(&self) -> BoxFuture<Result<Vec<ObjectMeta>, StorageError>>;
    /// One object as it is now.
    fn stat(&self, key: &str) -> BoxFuture<Result<ObjectMeta, StorageError>>;
    /// `len` bytes of `object` from `start`, refused if the object is no longer that version.
    fn read(
        &self,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> BoxFuture<Result<ByteStream, StorageError>>;
    /// Where a client may fetch `object` straight from the store instead (a presigned URL), if
    /// this storage offers that.
    fn redirect(&self, _object: &ObjectMeta) -> BoxFuture<Result<Option<Url>, StorageError>> {
        Box::pin(std::future::ready(Ok(None)))
    }
    /// Writes a new object from `body`. It appears under `key` only once complete and synced,
    /// and never replaces an object that exists ([`StorageError::Exists`]); an error in `body`
    /// (the upload was cut or was too large) leaves nothing behind.
    fn put(&self, key: &str, body: ByteStream) -> BoxFuture<Result<ObjectMeta, StorageError>>;
}

/// A blocking [`io::Read`] over a byte stream, for code that hashes with `Read` (on the
/// blocking pool, where waiting for the next block is allowed). A block's error is the read's.
pub type BlockingReader = SyncIoBridge<tokio_util::io::StreamReader<ByteStream, Bytes>>;

/// Reads `stream` blocking. Must be called inside a Tokio runtime, and read outside its async
/// workers.
pub fn blocking_reader(stream: ByteStream) -> BlockingReader {
    SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stream_reads_as_a_blocking_reader() {
        let blocks: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cde")),
        ];
        let reader = blocking_reader(Box::pin(stream::iter(blocks)));
        let text = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut out = String::new();
            io::Read::read_to_string(&mut reader, &mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert_eq!(text, "abcde");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_streams_error_is_the_readers_after_the_bytes_before_it() {
        let blocks: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short")),
        ];
        let reader = blocking_reader(Box::pin(stream::iter(blocks)));
        let (read, err) = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            let err = io::Read::read_to_end(&mut reader, &mut out).unwrap_err();
            (out, err)
        })
        .await
        .unwrap();
        assert_eq!(read, b"ab");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(err.to_string(), "cut short");
    }
}
