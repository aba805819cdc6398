//! File access behind one interface, so an object-storage backend can replace the local disk.
//!
//! [`LocalStorage`] streams byte ranges with positional reads on the blocking pool, a bounded
//! block at a time: memory per response is one block whatever the file or chunk size.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::stream::{self, Stream};

/// A stream of body bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path} is gone: {source}")]
    Missing { path: PathBuf, source: io::Error },
    #[error("{path} changed on disk since it was hashed")]
    Changed { path: PathBuf },
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What the catalog knows of a file; storage refuses to serve it if the file no longer matches.
#[derive(Debug, Clone)]
pub struct FileRef {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// An opened file from which ranges can be streamed.
pub trait OpenFile: Send + Sync {
    fn stream(&self, start: u64, len: u64) -> ByteStream;
}

pub trait Storage: Send + Sync {
    fn open(&self, file: FileRef) -> BoxFuture<Result<Arc<dyn OpenFile>, StorageError>>;
}

/// Files on the local disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalStorage;

/// Bytes per positional read: large enough to amortise the hop to the blocking pool, small
/// enough to keep memory per response bounded.
const READ_BLOCK: u64 = 256 * 1024;

struct LocalFile {
    file: Arc<File>,
    path: PathBuf,
}

impl Storage for LocalStorage {
    fn open(&self, file: FileRef) -> BoxFuture<Result<Arc<dyn OpenFile>, StorageError>> {
        Box::pin(async move {
            let path = file.path.clone();
            let opened = tokio::task::spawn_blocking(move || open_checked(&file))
                .await
                .map_err(|e| StorageError::Io {
                    path,
                    source: io::Error::other(e),
                })??;
            Ok(Arc::new(opened) as Arc<dyn OpenFile>)
        })
    }
}

fn open_checked(file: &FileRef) -> Result<LocalFile, StorageError> {
    let opened = File::open(&file.path).map_err(|source| StorageError::Missing {
        path: file.path.clone(),
        source,
    })?;
    let meta = opened.metadata().map_err(|source| StorageError::Io {
        path: file.path.clone(),
        source,
    })?;
    if meta.len() != file.size || mtime_ns(&meta) != file.mtime_ns {
        return Err(StorageError::Changed {
            path: file.path.clone(),
        });
    }
    Ok(LocalFile {
        file: Arc::new(opened),
        path: file.path.clone(),
    })
}

impl OpenFile for LocalFile {
    fn stream(&self, start: u64, len: u64) -> ByteStream {
        let file = self.file.clone();
        let path = self.path.clone();
        let state = (file, start, start + len);
        Box::pin(stream::try_unfold(state, move |(file, pos, end)| {
            let path = path.clone();
            async move {
                if pos >= end {
                    return Ok(None);
                }
                let want = (end - pos).min(READ_BLOCK) as usize;
                let reader = file.clone();
                let block = tokio::task::spawn_blocking(move || read_exact_at(&reader, pos, want))
                    .await
                    .map_err(io::Error::other)?
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                let next = pos + block.len() as u64;
                Ok(Some((block, (file, next, end))))
            }
        }))
    }
}

fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

/// Modification time in nanoseconds since the epoch: the cache key part that notices rewrites.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}
