//! [`S3Storage`]: the objects under a prefix of an S3-compatible bucket (AWS S3, Garage, MinIO,
//! Cloudflare R2, Railway buckets), through the `object_store` crate, so any number of stateless
//! seeders can serve the same bytes.
//!
//! An object is named by its key relative to the prefix; its version is its ETag, and every
//! read carries `If-Match: <ETag>`, so the store itself refuses bytes of a changed object (412,
//! [`StorageError::Changed`]). Ranges stream from the store's response straight into ours: no
//! object, and no chunk, is ever held whole in memory.
//!
//! Keys under `<prefix>/.gotorrent-http/` are this program's own metadata (the sidecar torrents
//! written by the seeder's hash cache) and are never shared.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

use super::{BoxFuture, ByteStream, ObjectMeta, Storage, StorageError};
use crate::per_thread::PerThread;

/// Upload parts (5 MiB each) buffered at once while they are sent.
const UPLOAD_PARTS_IN_FLIGHT: usize = 4;

/// The folder, under the shared prefix, that holds this program's metadata objects.
pub const METADATA_DIR: &str = ".gotorrent-http";

/// Longest wait for a listing, a stat or the start of a read: a store that hangs must not
/// hold the rescan (which runs one at a time) forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence in the middle of a read's body.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a presigned `/files` redirect stays valid. Long enough for a slow download to start
/// (the store checks the signature once, at the request), short enough that a leaked URL dies.
const PRESIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// A validated `storage.s3` section plus the credentials from the environment.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Without leading or trailing '/'; empty shares the whole bucket.
    pub prefix: String,
    /// An S3-compatible server's URL; `None` is AWS.
    pub endpoint: Option<Url>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Answer `GET /files/...` with a redirect to a presigned URL.
    pub redirect_files: bool,
    /// Memory for ranges served recently (`storage.s3.cache_mib`), in bytes; 0: none.
    pub cache_bytes: u64,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("redirect_files", &self.redirect_files)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct S3Storage {
    /// Listings, stats, sidecars and presigned URLs.
    store: Arc<AmazonS3>,
    /// What each thread builds its own reader from (see [`S3Storage::reader`]).
    builder: Arc<AmazonS3Builder>,
    readers: PerThread<Arc<AmazonS3>>,
    /// `bucket/prefix`, for messages.
    location: String,
    /// The shared prefix followed by '/', or empty for the whole bucket.
    prefix: String,
    redirect_files: bool,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The builder holds the secret key: never print it.
        f.debug_struct("S3Storage")
            .field("location", &self.location)
            .field("redirect_files", &self.redirect_files)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Prepares the client; nothing is sent until the first listing.
    pub fn new(config: &S3Config) -> Result<Self, StorageError> {
        let location = format!("s3://{}/{}", config.bucket, config.prefix);
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // A whole-request timeout would cut a long /files stream to a slow client; a dead
            // store is caught by the connect timeout and by the retry budget below.
            .with_timeout_disabled()
            .with_pool_idle_timeout(Duration::from_secs(50));
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_allow_http(endpoint.scheme() == "http");
        }
        let store = builder
            .clone()
            .build()
            .map_err(|e| StorageError::Unavailable {
                location: location.clone(),
                source: io::Error::other(e),
            })?;
        Ok(S3Storage {
            store: Arc::new(store),
            builder: Arc::new(builder),
            readers: PerThread::default(),
            location,
            prefix: match config.prefix.as_str() {
                "" => String::new(),
                p => format!("{p}/"),
            },
            redirect_files: config.redirect_files,
        })
    }

    /// The store, for the seeder's sidecar torrents.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Where this program's metadata lives: `<prefix>/.gotorrent-http`.
    pub fn metadata_root(&self) -> Path {
        Path::from_iter(
            self.prefix
                .split('/')
                .filter(|p| !p.is_empty())
                .chain([METADATA_DIR]),
        )
    }

    /// This thread's client for reads. A pooled connection is driven by a task on the runtime
    /// that opened it, so a connection shared between worker threads would hand every block of
    /// a read from one thread to another (a wake-up and a context switch per block); each
    /// worker's own pool keeps a read on the thread that serves it.
    fn reader(&self) -> Arc<AmazonS3> {
        self.readers.get(
            |_| true,
            || {
                // The same settings built once already in `new`; should it fail now, the shared
                // client still works.
                match (*self.builder).clone().build() {
                    Ok(store) => Arc::new(store),
                    Err(_) => self.store.clone(),
                }
            },
        )
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        Path::parse(format!("{}{key}", self.prefix)).map_err(|e| StorageError::Missing {
            key: key.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })
    }

    /// The shared name of a listed location, or `None` for our own metadata.
    fn key_of(&self, location: &Path) -> Option<String> {
        let key = location.as_ref().strip_prefix(&self.prefix)?;
        let metadata = key == METADATA_DIR
            || key
                .strip_prefix(METADATA_DIR)
                .is_some_and(|rest| rest.starts_with('/'));
        (!metadata && !key.is_empty()).then(|| key.to_owned())
    }

    fn meta(&self, key: String, listed: object_store::ObjectMeta) -> Option<ObjectMeta> {
        let Some(version) = listed.e_tag else {
            tracing::warn!(%key, "skipping: the object store gave no ETag for it");
            return None;
        };
        Some(ObjectMeta {
            key,
            size: listed.size,
            version,
            last_modified: SystemTime::from(listed.last_modified),
        })
    }

    fn timed_out(&self, what: &str) -> StorageError {
        StorageError::Unavailable {
            location: self.location.clone(),
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what}: no answer within {REQUEST_TIMEOUT:?}"),
            ),
        }
    }

    fn error(&self, key: &str, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => StorageError::Missing {
                key: key.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, e),
            },
            object_store::Error::Precondition { .. } => StorageError::Changed {
                key: key.to_owned(),
            },
            e => StorageError::Unavailable {
                location: self.location.clone(),
                source: io::Error::other(e),
            },
        }
    }
}

impl Storage for S3Storage {
    fn list(&self) -> BoxFuture<Result<Vec<ObjectMeta>, StorageError>> {
        let storage = self.clone();
        Box::pin(async move {
            let prefix = Path::parse(&storage.prefix).map_err(|e| StorageError::Unavailable {
                location: storage.location.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, e),
            })?;
            let prefix = (!storage.prefix.is_empty()).then_some(&prefix);
            let mut listing = storage.store.list(prefix);
            let mut out = Vec::new();
            loop {
                let next = tokio::time::timeout(REQUEST_TIMEOUT, listing.next()).await;
                let Some(listed) = next.map_err(|_| storage.timed_out("listing"))? else {
                    break;
                };
                // A key object_store cannot name (an empty or "." segment, a control
                // character) fails the listing; the error names it.
                let listed = listed.map_err(|e| storage.error("", e))?;
                if let Some(key) = storage.key_of(&listed.location) {
                    out.extend(storage.meta(key, listed));
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    fn stat(&self, key: &str) -> BoxFuture<Result<ObjectMeta, StorageError>> {
        let (storage, key) = (self.clone(), key.to_owned());
        Box::pin(async move {
            let path = storage.path(&key)?;
            let head = storage.store.get_opts(
                &path,
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            );
            let listed = tokio::time::timeout(REQUEST_TIMEOUT, head)
                .await
                .map_err(|_| storage.timed_out(&key))?
                .map_err(|e| storage.error(&key, e))?;
            storage
                .meta(key.clone(), listed.meta)
                .ok_or_else(|| StorageError::Missing {
                    key,
                    source: io::Error::other("no ETag"),
                })
        })
    }

    fn put(&self, key: &str, mut body: ByteStream) -> BoxFuture<Result<ObjectMeta, StorageError>> {
        let (storage, key) = (self.clone(), key.to_owned());
        Box::pin(async move {
            // Multipart uploads have no "only if absent": look first. Two uploads racing for
            // one new name both succeed and the last to finish wins.
            match storage.stat(&key).await {
                Ok(_) => return Err(StorageError::Exists { key }),
                Err(StorageError::Missing { .. }) => {}
                Err(e) => return Err(e),
            }
            let path = storage.path(&key)?;
            let upload = storage
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| storage.error(&key, e))?;
            // Parts of 5 MiB, at most UPLOAD_PARTS_IN_FLIGHT of them in memory at once.
            let mut writer = object_store::WriteMultipart::new(upload);
            let written: Result<(), StorageError> = async {
                while let Some(block) = body.next().await {
                    let block = block.map_err(|source| StorageError::Io {
                        key: key.clone(),
                        source,
                    })?;
                    writer
                        .wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT)
                        .await
                        .map_err(|e| storage.error(&key, e))?;
                    writer.write(&block);
                }
                Ok(())
            }
            .await;
            match written {
                // An object store shows an object only once its upload completes.
                Ok(()) => {
                    writer.finish().await.map_err(|e| storage.error(&key, e))?;
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
            storage.stat(&key).await
        })
    }

    fn read(
        &self,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> BoxFuture<Result<ByteStream, StorageError>> {
        let (storage, object) = (self.clone(), object.clone());
        Box::pin(async move {
            let path = storage.path(&object.key)?;
            let options = GetOptions {
                if_match: Some(object.version.clone()),
                // An empty read only checks the version (HEAD).
                head: len == 0,
                range: (len > 0).then_some(GetRange::Bounded(start..start + len)),
                ..GetOptions::default()
            };
            let reader = storage.reader();
            let got = tokio::time::timeout(REQUEST_TIMEOUT, reader.get_opts(&path, options))
                .await
                .map_err(|_| storage.timed_out(&object.key))?
                .map_err(|e| storage.error(&object.key, e))?;
            if len == 0 {
                return Ok(Box::pin(futures_util::stream::empty()) as ByteStream);
            }
            let key = object.key;
            let body = got
                .into_stream()
                .map_err(move |e| io::Error::other(format!("{key}: {e}")));
            Ok(idle_timeout(Box::pin(body), IDLE_TIMEOUT))
        })
    }

    fn redirect(&self, object: &ObjectMeta) -> BoxFuture<Result<Option<Url>, StorageError>> {
        if !self.redirect_files {
            return Box::pin(std::future::ready(Ok(None)));
        }
        let (storage, object) = (self.clone(), object.clone());
        Box::pin(async move {
            // The URL serves whatever the object is when it is used: at least make sure it is
            // still the version that was hashed when it is handed out.
            let key = object.key.clone();
            if storage.stat(&key).await?.version != object.version {
                return Err(StorageError::Changed { key });
            }
            let path = storage.path(&key)?;
            let url = storage
                .store
                .signed_url(reqwest::Method::GET, &path, PRESIGNED_FOR)
                .await
                .map_err(|e| storage.error(&key, e))?;
            Ok(Some(url))
        })
    }
}

/// Ends `body` with a TimedOut error when no block arrives for `idle`.
fn idle_timeout(body: ByteStream, idle: Duration) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(body),
        move |body| async move {
            let mut body = body?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(block)) => Some((block, Some(body))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the object store sent nothing for {idle:?}"),
                    )),
                    None,
                )),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(prefix: &str) -> S3Storage {
        S3Storage::new(&S3Config {
            bucket: "b".into(),
            prefix: prefix.into(),
            endpoint: Some(Url::parse("http://127.0.0.1:1").unwrap()),
            region: "garage".into(),
            access_key_id: "id".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            redirect_files: false,
            cache_bytes: 0,
        })
        .unwrap()
    }

    #[test]
    fn keys_are_relative_to_the_prefix_and_metadata_is_never_shared() {
        let shared = storage("shared/files");
        let key = |location: &str| shared.key_of(&Path::parse(location).unwrap());
        assert_eq!(
            key("shared/files/sub dir/ü <b>.bin").as_deref(),
            Some("sub dir/ü <b>.bin")
        );
        assert_eq!(key("shared/files/.gotorrent-http/torrents/x"), None);
        assert_eq!(
            key("shared/files/.gotorrent-http-not-ours").as_deref(),
            Some(".gotorrent-http-not-ours")
        );
        assert_eq!(key("shared/filesx/a"), None);
        assert_eq!(
            shared.metadata_root().as_ref(),
            "shared/files/.gotorrent-http"
        );

        let whole = storage("");
        assert_eq!(
            whole.key_of(&Path::parse("a.bin").unwrap()).as_deref(),
            Some("a.bin")
        );
        assert_eq!(whole.metadata_root().as_ref(), ".gotorrent-http");
    }

    #[tokio::test]
    async fn a_body_that_falls_silent_ends_with_a_timeout() {
        let silent: ByteStream = Box::pin(futures_util::stream::pending());
        let mut body = idle_timeout(silent, Duration::from_millis(50));
        let ended = body.next().await.unwrap().unwrap_err();
        assert_eq!(ended.kind(), io::ErrorKind::TimedOut);
        assert!(body.next().await.is_none());
    }

    #[test]
    fn the_config_never_prints_its_secrets() {
        let config = S3Config {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: Some("token-value".into()),
            redirect_files: false,
            cache_bytes: 0,
        };
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("AKIDEXAMPLE")
                && !printed.contains("wJalr")
                && !printed.contains("token-value"),
            "{printed}"
        );
    }
}
