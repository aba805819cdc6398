//! Where the seeder keeps the torrents it hashed, so that an object is read and hashed once per
//! version, not once per start or per instance.
//!
//! - [`StateDbCache`]: the state database (local disk, the default).
//! - [`SidecarCache`]: sidecar objects in the bucket, beside the objects they describe, so every
//!   seeder instance on the bucket, a brand-new one included, serves without hashing. Each
//!   sidecar is named by the object's key, ETag and piece length,
//!   `<prefix>/.gotorrent-http/torrents/<key>/<etag>.<piece length>.torrent`, so a changed
//!   object (a new ETag) is never matched with an old torrent. A seeder that may not write to the
//!   bucket keeps its own results in the state database, with a warning.
//!
//! A cache only stores bytes; the seeder checks what it loads (it must parse, and have the
//! object's length and the configured piece length) and hashes again if it does not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::db::{CachedHash, StateDb};
use crate::storage::{BoxFuture, ObjectMeta};

pub trait HashCache: Send + Sync {
    /// The torrent stored for `object` at its version and `piece_length`, if any.
    fn load(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
    ) -> BoxFuture<anyhow::Result<Option<Bytes>>>;
    /// Remembers the torrent hashed for `object` at its version and `piece_length`.
    fn store(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
        metainfo: Bytes,
    ) -> BoxFuture<anyhow::Result<()>>;
}

/// The state database's `object_hashes` table, one row per key.
#[derive(Clone)]
pub struct StateDbCache(pub Arc<StateDb>);

impl HashCache for StateDbCache {
    fn load(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
    ) -> BoxFuture<anyhow::Result<Option<Bytes>>> {
        let (db, object) = (self.0.clone(), object.clone());
        Box::pin(async move {
            let key = object.key.clone();
            let cached = tokio::task::spawn_blocking(move || db.cached_hash(&key)).await??;
            Ok(cached
                .filter(|c| {
                    c.size == object.size
                        && c.version == object.version
                        && c.piece_length == piece_length
                })
                .map(|c| Bytes::from(c.metainfo)))
        })
    }

    fn store(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
        metainfo: Bytes,
    ) -> BoxFuture<anyhow::Result<()>> {
        let db = self.0.clone();
        let key = object.key.clone();
        let entry = CachedHash {
            size: object.size,
            version: object.version.clone(),
            piece_length,
            metainfo: metainfo.to_vec(),
        };
        Box::pin(async move {
            tokio::task::spawn_blocking(move || db.store_hash(&key, &entry)).await??;
            Ok(())
        })
    }
}

/// Torrents as sidecar objects under `<root>/torrents/`, falling back to the state database
/// when the bucket refuses a write. Clones share the store and the warning.
#[derive(Clone)]
pub struct SidecarCache {
    store: Arc<dyn ObjectStore>,
    /// `<prefix>/.gotorrent-http`.
    root: Path,
    fallback: StateDbCache,
    warned: Arc<AtomicBool>,
}

/// The largest sidecar read: a torrent holds 52 bytes per piece (v1 and v2 hashes), so this is
/// room for 1 TiB in 64 KiB pieces, and keeps a stray huge object from being read into memory.
const MAX_SIDECAR: u64 = 1 << 30;

impl SidecarCache {
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, fallback: StateDbCache) -> Self {
        SidecarCache {
            store,
            root,
            fallback,
            warned: Arc::default(),
        }
    }

    /// `<root>/torrents/<key>/`: the folder of every sidecar of one object.
    fn folder(&self, key: &str) -> anyhow::Result<Path> {
        Ok(Path::parse(format!("{}/torrents/{key}", self.root))?)
    }

    fn path(&self, object: &ObjectMeta, piece_length: u64) -> anyhow::Result<Path> {
        let name = sidecar_name(&object.version, piece_length);
        Ok(self.folder(&object.key)?.join(name.as_str()))
    }

    async fn load_sidecar(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
    ) -> anyhow::Result<Option<Bytes>> {
        let path = self.path(object, piece_length)?;
        let got = match self.store.get(&path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        anyhow::ensure!(
            got.meta.size <= MAX_SIDECAR,
            "sidecar {path} is {} bytes, more than any torrent",
            got.meta.size
        );
        Ok(Some(got.bytes().await?))
    }

    async fn store_sidecar(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
        metainfo: Bytes,
    ) -> anyhow::Result<()> {
        let path = self.path(object, piece_length)?;
        self.store.put(&path, PutPayload::from(metainfo)).await?;
        // Sidecars of earlier versions at this piece length describe bytes that are gone.
        let folder = self.folder(&object.key)?;
        let suffix = format!(".{piece_length}.torrent");
        let siblings = self.store.list_with_delimiter(Some(&folder)).await?;
        let stale = siblings
            .objects
            .into_iter()
            .map(|o| o.location)
            .filter(|p| *p != path && p.filename().is_some_and(|name| name.ends_with(&suffix)));
        let mut deleted = self
            .store
            .delete_stream(Box::pin(futures_util::stream::iter(
                stale.map(Ok).collect::<Vec<_>>(),
            )));
        while let Some(result) = deleted.next().await {
            if let Err(e) = result {
                tracing::debug!(error = %e, "could not delete a stale sidecar");
            }
        }
        Ok(())
    }
}

/// `<etag>.<piece length>.torrent`, the ETag reduced to characters safe in any store's key
/// (an ETag is quoted hex, sometimes with a `-<parts>` suffix); anything else is hashed.
fn sidecar_name(version: &str, piece_length: u64) -> String {
    let bare = version.trim_start_matches("W/").trim_matches('"');
    let safe = !bare.is_empty()
        && bare.len() <= 128
        && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let tag = if safe {
        bare.to_owned()
    } else {
        hex::encode(Sha256::digest(version.as_bytes()))
    };
    format!("{tag}.{piece_length}.torrent")
}

impl HashCache for SidecarCache {
    fn load(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
    ) -> BoxFuture<anyhow::Result<Option<Bytes>>> {
        let (cache, object) = (self.clone(), object.clone());
        Box::pin(async move {
            match cache.load_sidecar(&object, piece_length).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(key = %object.key, error = %e, "cannot read the sidecar torrent")
                }
            }
            // Hashed here earlier while the bucket refused our sidecar.
            cache.fallback.load(&object, piece_length).await
        })
    }

    fn store(
        &self,
        object: &ObjectMeta,
        piece_length: u64,
        metainfo: Bytes,
    ) -> BoxFuture<anyhow::Result<()>> {
        let (cache, object) = (self.clone(), object.clone());
        Box::pin(async move {
            match cache
                .store_sidecar(&object, piece_length, metainfo.clone())
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => {
                    if !cache.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            key = %object.key,
                            error = %e,
                            "cannot write sidecar torrents to the bucket (no write permission?): \
                             each seeder instance will hash objects itself"
                        );
                    } else {
                        tracing::debug!(key = %object.key, error = %e, "cannot write the sidecar torrent");
                    }
                    cache.fallback.store(&object, piece_length, metainfo).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_follow_the_etag_and_the_piece_length() {
        assert_eq!(
            sidecar_name("\"0a1b2c\"", 1 << 20),
            "0a1b2c.1048576.torrent"
        );
        assert_eq!(sidecar_name("\"0a1b-3\"", 16384), "0a1b-3.16384.torrent");
        let odd = sidecar_name("\"a/b c\"", 16384);
        assert!(
            odd.len() == 64 + ".16384.torrent".len() && !odd.contains('/'),
            "{odd}"
        );
        assert_ne!(sidecar_name("\"a\"", 16384), sidecar_name("\"b\"", 16384));
    }
}
