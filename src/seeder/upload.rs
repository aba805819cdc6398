//! Uploads: the policy for a new shared file (uploads on, a plain file name not starting with
//! '.', not shared yet, at most `seeder.max_upload_bytes`, not empty) and the stream that
//! carries it into storage.
//!
//! Invariants: the body is never held whole in memory (blocks cross a bounded channel, so a slow
//! store slows the client); a refused, cut, oversized or empty upload leaves nothing behind
//! (the store is told before it would publish).

use std::fmt::Display;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Seeder;
use crate::storage::{ByteStream, ObjectMeta, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("uploads are off on this server (seeder.uploads)")]
    Off,
    #[error("cannot upload as {0:?}: a name must be one file name (no '/', '\\', NUL), not start with '.', and be at most 255 bytes")]
    BadName(String),
    #[error("the upload is {size} bytes or more; this server takes at most {max} (seeder.max_upload_bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error("the upload is empty; an empty file cannot be shared")]
    Empty,
    #[error("the upload was cut: {0}")]
    Cut(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Seeder {
    /// Uploads are on with at most this many bytes per file (`seeder.uploads`,
    /// `seeder.max_upload_bytes`).
    pub fn with_uploads(mut self, max_bytes: Option<u64>) -> Self {
        self.max_upload = max_bytes;
        self
    }

    /// The largest upload, when uploads are on.
    pub fn max_upload(&self) -> Option<u64> {
        self.max_upload
    }

    /// Stores `body` as the new shared file `name` (its length `declared`, if the client said),
    /// then asks for the rescan that hashes and shares it. `body` need not be `Send`: it is read
    /// here, beside the store's writer.
    pub async fn upload<S, E>(
        &self,
        name: &str,
        declared: Option<u64>,
        mut body: S,
    ) -> Result<ObjectMeta, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
    {
        let max = self.max_upload.ok_or(UploadError::Off)?;
        if name.starts_with('.') || crate::metainfo::validate_name(name).is_err() {
            return Err(UploadError::BadName(crate::types::truncate_for_message(
                name,
            )));
        }
        if let Some(size) = declared.filter(|len| *len > max) {
            return Err(UploadError::TooLarge { size, max });
        }
        if self.catalog().by_name(name).is_some() {
            return Err(StorageError::Exists {
                key: name.to_owned(),
            }
            .into());
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let to_store: ByteStream =
            Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let feed = async move {
            let mut received = 0u64;
            while let Some(block) = body.next().await {
                let refused = match block {
                    Ok(bytes) => {
                        received += bytes.len() as u64;
                        if received <= max {
                            if tx.send(Ok(bytes)).await.is_err() {
                                break; // the store gave up; its error says why
                            }
                            continue;
                        }
                        UploadError::TooLarge {
                            size: received,
                            max,
                        }
                    }
                    Err(e) => UploadError::Cut(e.to_string()),
                };
                // Tell the store, so it leaves nothing behind.
                let _ = tx.send(Err(std::io::Error::other("upload refused"))).await;
                return Err(refused);
            }
            if received == 0 {
                // An empty file has no pieces and is never shared: store nothing.
                let _ = tx.send(Err(std::io::Error::other("empty upload"))).await;
                return Err(UploadError::Empty);
            }
            Ok(received)
        };
        let (stored, fed) = futures_util::future::join(self.put(name, to_store), feed).await;
        fed?;
        Ok(stored?)
    }
}
