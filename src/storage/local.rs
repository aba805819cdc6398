//! [`LocalStorage`]: the regular files under a directory (named by their relative path,
//! `/`-separated) plus any extra files or folders (named by their file name; a folder's files as
//! `<name>/<relative path>`). Ranges stream a bounded block at a time ([`super::blocks`]):
//! memory per response is one block whatever the file or chunk size. An object's version is its mtime and inode, so a rewrite in place or a
//! replacement by rename both show.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use walkdir::WalkDir;

use super::blocks::stream_range;
use super::{BoxFuture, ByteStream, ObjectMeta, Storage, StorageError};

/// Files on the local disk. Open descriptors are kept (up to [`OPEN_FILES`]) so a request needs
/// only an `fstat`, not an `open` on the blocking pool. A file replaced by rename keeps its old
/// descriptor's content, which still matches the old torrent, until the catalog moves on; one
/// modified in place fails the `fstat` check and is reopened and checked again.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    /// The shared directory, canonical.
    root: PathBuf,
    /// Files shared besides the directory's (`seed FILE`), by name, canonical.
    extra: Arc<HashMap<String, PathBuf>>,
    open: Arc<Mutex<HashMap<PathBuf, Arc<File>>>>,
}

/// Numbers uploads' temporary names within this process.
static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Most descriptors kept open.
const OPEN_FILES: usize = 256;

impl LocalStorage {
    /// Shares `root` (created if missing) and `extra` files or folders, each of which must be a
    /// regular file or a directory.
    pub fn new(root: &Path, extra: &[PathBuf]) -> Result<Self, StorageError> {
        let unavailable = |location: &Path, source| StorageError::Unavailable {
            location: location.display().to_string(),
            source,
        };
        std::fs::create_dir_all(root).map_err(|e| unavailable(root, e))?;
        let root = root.canonicalize().map_err(|e| unavailable(root, e))?;
        let mut files = HashMap::new();
        for path in extra {
            let canonical = path.canonicalize().map_err(|e| unavailable(path, e))?;
            if !canonical.is_file() && !canonical.is_dir() {
                return Err(unavailable(
                    path,
                    io::Error::other("not a regular file or a directory"),
                ));
            }
            let Some(name) = canonical.file_name().and_then(|n| n.to_str()) else {
                return Err(unavailable(
                    path,
                    io::Error::other("file name is not UTF-8"),
                ));
            };
            files.insert(name.to_owned(), canonical);
        }
        Ok(LocalStorage {
            root,
            extra: Arc::new(files),
            open: Arc::default(),
        })
    }

    /// Where an object listed by this storage lives.
    fn path_of(&self, key: &str) -> PathBuf {
        let (first, rest) = key.split_once('/').unwrap_or((key, ""));
        match self.extra.get(first) {
            Some(path) if rest.is_empty() => path.clone(),
            Some(dir) => dir.join(rest),
            None => self.root.join(key),
        }
    }

    /// The shared files of the directory (see [`walk_dir`]), then the extra files. Blocking.
    fn walk(&self) -> Vec<ObjectMeta> {
        let mut out: Vec<ObjectMeta> = walk_dir(&self.root, &mut |path, reason| {
            tracing::warn!(path = %path.display(), reason, "skipping a file in the data dir");
        })
        .into_iter()
        .map(|found| object_meta(found.relative.join("/"), &found.meta))
        .collect();
        for (name, path) in self.extra.iter() {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    let found = walk_dir(path, &mut |path, reason| {
                        tracing::warn!(path = %path.display(), reason, "skipping a file in a shared folder");
                    });
                    out.extend(found.into_iter().map(|found| {
                        object_meta(format!("{name}/{}", found.relative.join("/")), &found.meta)
                    }));
                }
                Ok(meta) => out.push(object_meta(name.clone(), &meta)),
                Err(_) => {}
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The kept descriptor for `object`, if it is still that version.
    fn cached(&self, path: &Path, object: &ObjectMeta) -> Option<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let fd = open.get(path)?.clone();
        // fstat on an open descriptor does not touch the disk: cheap enough inline.
        if fd.metadata().is_ok_and(|m| is_version(&m, object)) {
            Some(fd)
        } else {
            open.remove(path);
            None
        }
    }

    fn remember(&self, path: &Path, fd: &Arc<File>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= OPEN_FILES {
            open.clear();
        }
        open.insert(path.to_owned(), fd.clone());
    }
}

/// The version of a local file: its mtime and inode, so a rewrite or a replacement shows.
fn version(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("m{}i{}", mtime_ns(meta), meta.ino())
}

fn object_meta(key: String, meta: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: meta.len(),
        version: version(meta),
        last_modified: UNIX_EPOCH + Duration::from_nanos(mtime_ns(meta).max(0) as u64),
    }
}

/// Whether a file is still `object`'s version: parsed rather than formatted, as this runs on
/// every request.
fn is_version(meta: &std::fs::Metadata, object: &ObjectMeta) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parsed = object
        .version
        .strip_prefix('m')
        .and_then(|v| v.split_once('i'))
        .and_then(|(mtime, ino)| Some((mtime.parse::<i64>().ok()?, ino.parse::<u64>().ok()?)));
    meta.len() == object.size && parsed == Some((mtime_ns(meta), meta.ino()))
}

/// A file found under a directory by [`walk_dir`].
#[derive(Debug)]
pub struct FoundFile {
    /// Path components below the directory.
    pub relative: Vec<String>,
    /// Where its bytes are: the file itself, or a symbolic link's target.
    pub real: PathBuf,
    /// Of `real`.
    pub meta: std::fs::Metadata,
    /// The owner's execute bit of the entry itself (not following a link, so a symbolic link
    /// counts as executable): libtorrent's rule for the BEP 47 `x` attribute.
    pub executable: bool,
}

/// Which files under `root` (canonical) are shared: the one rule for the data dir, a shared
/// folder and `create DIR`.
/// - Regular files, and symbolic links to regular files whose real path stays inside `root`.
///   Links to directories are not followed (no loops, no file listed twice); links leading
///   outside are never followed.
/// - Hidden names (starting with `.`) are left out with everything under them: `.git`, `.env`
///   and editor files are rarely meant to be published.
/// - Every path component must be UTF-8 and a safe file name (at most 255 bytes).
///
/// Files come in canonical order (byte-wise by path component, the order of a BEP 52 file
/// tree). `skipped` hears of each file left out, with why, except hidden ones. Blocking.
pub fn walk_dir(root: &Path, skipped: &mut dyn FnMut(&Path, &str)) -> Vec<FoundFile> {
    let mut out = Vec::new();
    let walker = WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_owned();
                skipped(&path, &format!("cannot read it: {e}"));
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let Ok(real) = entry.path().canonicalize() else {
            skipped(entry.path(), "a broken symbolic link");
            continue;
        };
        if !real.starts_with(root) {
            skipped(entry.path(), "a symbolic link leading outside");
            continue;
        }
        let meta = match std::fs::metadata(&real) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                skipped(
                    entry.path(),
                    "not a regular file (or a link to a directory)",
                );
                continue;
            }
            Err(e) => {
                skipped(entry.path(), &format!("cannot read it: {e}"));
                continue;
            }
        };
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let parts: Option<Vec<String>> = relative
            .components()
            .map(|c| c.as_os_str().to_str().map(String::from))
            .collect();
        match parts {
            Some(parts) if parts.iter().all(|p| p.len() <= 255) => {
                use std::os::unix::fs::PermissionsExt;
                let executable = entry
                    .metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o100 != 0);
                out.push(FoundFile {
                    relative: parts,
                    real,
                    meta,
                    executable,
                })
            }
            _ => skipped(
                entry.path(),
                "its name is not UTF-8 or longer than 255 bytes",
            ),
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    out
}

/// Opens `path` and checks it is still `object`'s version. Blocking.
fn open_checked(path: &Path, object: &ObjectMeta) -> Result<File, StorageError> {
    let opened = File::open(path).map_err(|source| StorageError::Missing {
        key: object.key.clone(),
        source,
    })?;
    let meta = opened.metadata().map_err(|source| StorageError::Io {
        key: object.key.clone(),
        source,
    })?;
    if !is_version(&meta, object) {
        return Err(StorageError::Changed {
            key: object.key.clone(),
        });
    }
    Ok(opened)
}

impl Storage for LocalStorage {
    fn list(&self) -> BoxFuture<Result<Vec<ObjectMeta>, StorageError>> {
        let storage = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || storage.walk())
                .await
                .map_err(|e| StorageError::Unavailable {
                    location: "the data dir".into(),
                    source: io::Error::other(e),
                })
        })
    }

    fn stat(&self, key: &str) -> BoxFuture<Result<ObjectMeta, StorageError>> {
        let (path, key) = (self.path_of(key), key.to_owned());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => Ok(object_meta(key, &meta)),
                Ok(_) => Err(StorageError::Missing {
                    key,
                    source: io::Error::other("not a regular file"),
                }),
                Err(source) => Err(StorageError::Missing { key, source }),
            })
            .await
            .map_err(|e| StorageError::Unavailable {
                location: "the data dir".into(),
                source: io::Error::other(e),
            })?
        })
    }

    fn put(&self, key: &str, mut body: ByteStream) -> BoxFuture<Result<ObjectMeta, StorageError>> {
        // A hidden name in the same directory: rescans skip it, and the final link is atomic.
        let path = self.path_of(key);
        let temp = path.with_file_name(format!(
            ".upload-{}-{}",
            std::process::id(),
            UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let key = key.to_owned();
        Box::pin(async move {
            let io_err = |source| StorageError::Io {
                key: key.clone(),
                source,
            };
            let written = async {
                let mut file = tokio::fs::File::create(&temp).await?;
                while let Some(block) = body.next().await {
                    let block: Bytes = block?;
                    tokio::io::AsyncWriteExt::write_all(&mut file, &block).await?;
                }
                file.sync_all().await?;
                // A hard link fails if the name exists: no upload replaces a shared file.
                tokio::fs::hard_link(&temp, &path).await
            }
            .await;
            let _ = tokio::fs::remove_file(&temp).await;
            match written {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(StorageError::Exists { key })
                }
                Err(e) => return Err(io_err(e)),
            }
            if let Some(dir) = path.parent() {
                let dir = dir.to_owned();
                let _ = tokio::task::spawn_blocking(move || File::open(dir)?.sync_all()).await;
            }
            let meta = tokio::fs::metadata(&path).await.map_err(io_err)?;
            Ok(object_meta(key, &meta))
        })
    }

    fn read(
        &self,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> BoxFuture<Result<ByteStream, StorageError>> {
        let path = self.path_of(&object.key);
        let key = object.key.clone();
        if let Some(fd) = self.cached(&path, object) {
            return Box::pin(std::future::ready(Ok(stream_range(fd, key, start, len))));
        }
        let (storage, object) = (self.clone(), object.clone());
        Box::pin(async move {
            let opening = path.clone();
            let opened = tokio::task::spawn_blocking(move || open_checked(&opening, &object))
                .await
                .map_err(|e| StorageError::Io {
                    key: key.clone(),
                    source: io::Error::other(e),
                })??;
            let fd = Arc::new(opened);
            storage.remember(&path, &fd);
            Ok(stream_range(fd, key, start, len))
        })
    }
}

/// Modification time in nanoseconds since the epoch.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test(flavor = "multi_thread")]
    async fn lists_stats_and_reads_versions_and_refuses_a_changed_object() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub dir")).unwrap();
        std::fs::write(dir.path().join("sub dir/ü.bin"), b"0123456789").unwrap();
        let extra = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(extra.path(), b"extra").unwrap();
        let storage = LocalStorage::new(dir.path(), &[extra.path().to_owned()]).unwrap();

        let listed = storage.list().await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        let extra_name = extra.path().file_name().unwrap().to_str().unwrap();
        assert!(
            keys.contains(&"sub dir/ü.bin") && keys.contains(&extra_name),
            "{keys:?}"
        );
        let object = storage.stat("sub dir/ü.bin").await.unwrap();
        assert_eq!(
            (object.size, &object.version),
            (
                10,
                &listed
                    .iter()
                    .find(|o| o.key == "sub dir/ü.bin")
                    .unwrap()
                    .version
            )
        );

        let mut bytes = Vec::new();
        let mut stream = storage.read(&object, 2, 5).await.unwrap();
        while let Some(block) = stream.next().await {
            bytes.extend_from_slice(&block.unwrap());
        }
        assert_eq!(bytes, b"23456");

        // Rewritten in place (another size): the old version is refused.
        std::fs::write(dir.path().join("sub dir/ü.bin"), b"changed!!!!").unwrap();
        assert!(matches!(
            storage.read(&object, 0, 1).await,
            Err(StorageError::Changed { .. })
        ));
        assert!(matches!(
            storage.stat("nothing here").await,
            Err(StorageError::Missing { .. })
        ));
    }
}
