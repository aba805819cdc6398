//! The download's files. A single file is fetched into `<name>.part`; a folder into the tree
//! `<name>.part/<path>...`. Beside either, `<name>.part.pieces` records which pieces are verified,
//! appended as they complete. The final `<name>` (file or folder) appears by one atomic rename.
//!
//! Order of durability: piece bytes are synced before the record names them, so after a crash,
//! even a power loss, every recorded piece is really on disk. The final name appears only once
//! every piece is verified, so it never holds an unverified byte.
//!
//! Paths: the torrent's file paths were checked when it was parsed (one safe name per
//! component, no case-insensitive duplicates); here no directory on the way to a file may be a
//! symbolic link, and files are opened without following one, so nothing is written outside
//! `<name>.part`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::metainfo::{Metainfo, PieceSpan};
use crate::types::PieceIndex;

const MAGIC: &[u8; 8] = b"GTHPART1";
/// Files of a folder kept open at once (a folder may have 100,000); past it the longest open
/// is closed.
const OPEN_FILES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} exists and does not match the torrent; move it away to download again")]
    ForeignFile(PathBuf),
    #[error("{0} is a symbolic link; refusing to write through it")]
    Symlink(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How the download starts.
pub enum Opened {
    /// The final file or folder is there and every piece verifies.
    Complete(PathBuf),
    /// Pieces still to fetch; `done[i]` marks those already verified in the .part.
    Partial {
        part: Arc<PartFile>,
        done: Vec<bool>,
        /// Pieces recovered by re-hashing a .part whose record was lost.
        rehashed: usize,
    },
}

pub struct PartFile {
    meta: Arc<Metainfo>,
    files: Files,
    record: Mutex<File>,
    /// Held while writing a single file's piece. Concurrent writes to one ext4 file contend
    /// for its inode lock, which spins (perf: 26% of the downloader's CPU in
    /// rwsem_spin_on_owner with 8 pieces in flight from one seeder); one writer at a time
    /// copies as fast and lets the hashing threads sleep.
    writing: Mutex<()>,
    pub final_path: PathBuf,
    pub part_path: PathBuf,
    record_path: PathBuf,
}

/// The files of a download under one root, opened on demand (at most [`OPEN_FILES`] at once).
struct Files {
    paths: Vec<PathBuf>,
    /// Whether files are opened for writing too (the .part), or only read (a finished copy,
    /// which may be read-only).
    writable: bool,
    open: Mutex<OpenFiles>,
}

/// Open files by index, and the order they were opened in.
#[derive(Default)]
struct OpenFiles {
    by_index: HashMap<usize, Arc<File>>,
    order: VecDeque<usize>,
}

impl Files {
    /// Where each of the torrent's files is under `root` (`root` itself for a single file).
    fn under(root: &Path, meta: &Metainfo, writable: bool) -> Self {
        let paths = if meta.is_folder {
            meta.files
                .iter()
                .map(|f| f.path.iter().fold(root.to_owned(), |p, part| p.join(part)))
                .collect()
        } else {
            vec![root.to_owned()]
        };
        Files {
            paths,
            writable,
            open: Mutex::default(),
        }
    }

    fn get(&self, index: usize) -> Result<Arc<File>, StoreError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = open.by_index.get(&index) {
            return Ok(file.clone());
        }
        let path = &self.paths[index];
        let file = OpenOptions::new()
            .read(true)
            .write(self.writable)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_err(path))?;
        if open.order.len() >= OPEN_FILES {
            if let Some(oldest) = open.order.pop_front() {
                open.by_index.remove(&oldest);
            }
        }
        let file = Arc::new(file);
        open.by_index.insert(index, file.clone());
        open.order.push_back(index);
        Ok(file)
    }

    fn read_at(&self, span: PieceSpan, buf: &mut [u8]) -> Result<(), StoreError> {
        self.get(span.file)?
            .read_exact_at(buf, span.offset)
            .map_err(io_err(&self.paths[span.file]))
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Refuses a symbolic link at `path` or at any directory between `root`'s parent and it.
fn no_symlinks(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let mut at = dir.to_owned();
    for part in path.strip_prefix(dir).unwrap_or(path).components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(StoreError::Symlink(at)),
            _ => {}
        }
    }
    Ok(())
}

/// Opens or creates the download's files in `dir`.
pub fn open(dir: &Path, meta: &Arc<Metainfo>) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let final_path = dir.join(&meta.name);
    let part_path = dir.join(format!("{}.part", meta.name));
    let record_path = dir.join(format!("{}.part.pieces", meta.name));

    if std::fs::symlink_metadata(&final_path).is_ok() {
        let files = Files::under(&final_path, meta, false);
        for path in &files.paths {
            no_symlinks(dir, path)?;
        }
        // A missing or short file is a different download in the way; an I/O error is an
        // error, not a verdict.
        let matches = files.paths.iter().zip(&meta.files).all(|(path, f)| {
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == f.length)
        });
        let verified = if matches {
            verify_all(&files, meta)?
        } else {
            Vec::new()
        };
        return if matches && verified.iter().all(|v| *v) {
            Ok(Opened::Complete(final_path))
        } else {
            Err(StoreError::ForeignFile(final_path))
        };
    }

    let existed = std::fs::symlink_metadata(&part_path).is_ok();
    let files = Files::under(&part_path, meta, true);
    let mut sizes_ok = existed;
    for (path, file) in files.paths.iter().zip(&meta.files) {
        no_symlinks(dir, path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            // create_dir_all follows links: check again what it walked through.
            no_symlinks(dir, path)?;
        }
        let handle = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_err(path))?;
        sizes_ok &= handle.metadata().map_err(io_err(path))?.len() == file.length;
        handle.set_len(file.length).map_err(io_err(path))?;
    }

    let recorded = if sizes_ok {
        read_record(&record_path, meta)
    } else {
        None
    };
    let (done, rehashed) = match recorded {
        Some(done) => (done, 0),
        None if sizes_ok => {
            // The record is lost or stale: keep whatever in the .part still verifies, made
            // durable before the new record names it.
            let done = verify_all(&files, meta)?;
            let n = done.iter().filter(|d| **d).count();
            if n > 0 {
                for (i, path) in files.paths.iter().enumerate() {
                    files.get(i)?.sync_data().map_err(io_err(path))?;
                }
            }
            (done, n)
        }
        None => (vec![false; meta.piece_count() as usize], 0),
    };

    let mut record = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&record_path)
        .map_err(io_err(&record_path))?;
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&meta.info_hash_v2.0);
    for (i, _) in done.iter().enumerate().filter(|(_, d)| **d) {
        header.extend_from_slice(&(i as u32).to_le_bytes());
    }
    record.write_all(&header).map_err(io_err(&record_path))?;
    record.sync_data().map_err(io_err(&record_path))?;

    Ok(Opened::Partial {
        part: Arc::new(PartFile {
            meta: meta.clone(),
            files,
            record: Mutex::new(record),
            writing: Mutex::new(()),
            final_path,
            part_path,
            record_path,
        }),
        done,
        rehashed,
    })
}

/// Verified pieces named by a record written for this torrent; `None` if absent or foreign.
fn read_record(path: &Path, meta: &Metainfo) -> Option<Vec<bool>> {
    let mut bytes = Vec::new();
    File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
    let body = bytes
        .strip_prefix(&MAGIC[..])?
        .strip_prefix(&meta.info_hash_v2.0[..])?;
    let mut done = vec![false; meta.piece_count() as usize];
    // A torn last entry (crash mid-append) is ignored.
    for entry in body.chunks_exact(4) {
        let index = u32::from_le_bytes(entry.try_into().expect("4 bytes")) as usize;
        *done.get_mut(index)? = true;
    }
    Some(done)
}

/// Hashes every piece of the files against the torrent.
fn verify_all(files: &Files, meta: &Metainfo) -> Result<Vec<bool>, StoreError> {
    let mut buf = vec![0u8; meta.piece_length.get() as usize];
    (0..meta.piece_count())
        .map(|i| {
            let span = meta.piece(PieceIndex(i)).expect("index in range");
            let piece = &mut buf[..span.len as usize];
            files.read_at(span, piece)?;
            Ok(meta.verify_piece(PieceIndex(i), piece))
        })
        .collect()
}

/// The most one `pwrite` hands the page cache. Linux sizes page-cache folios after the write
/// (ext4 with large folios): a 1 MiB write asks for 1 MiB of contiguous memory, which on a VM
/// that returns free memory to its host (free page reporting, in blocks of 8 MiB here) is the
/// memory the host must fault in again, page by page. `dd` of 1 GiB into a fresh file, four
/// times each: bs=1M 0.24-2.97 s (three of four slow), bs=64K 0.28-0.35 s, bs=16K 0.43-0.47 s.
const WRITE_SLICE: usize = 64 << 10;

fn write_in_slices(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut at = offset;
    for slice in data.chunks(WRITE_SLICE) {
        file.write_all_at(slice, at)?;
        at += slice.len() as u64;
    }
    Ok(())
}

impl PartFile {
    /// Writes a verified piece. A folder's piece is synced here, by the writer that has its
    /// file open: with many small files, syncing them later in a batch would mean reopening
    /// each and syncing them one after another; here the syncs run in parallel.
    pub fn write_piece(&self, span: PieceSpan, data: &[u8]) -> Result<(), StoreError> {
        let file = self.files.get(span.file)?;
        let path = &self.files.paths[span.file];
        if self.meta.is_folder {
            write_in_slices(&file, data, span.offset).map_err(io_err(path))?;
            return file.sync_data().map_err(io_err(path));
        }
        let _one_writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        write_in_slices(&file, data, span.offset).map_err(io_err(path))
    }

    /// Makes the written pieces durable (a single file's: one sync for the batch; a folder's
    /// were synced as they were written), then records them as verified.
    pub fn record(&self, pieces: &[u32]) -> Result<(), StoreError> {
        if pieces.is_empty() {
            return Ok(());
        }
        if !self.meta.is_folder {
            self.files
                .get(0)?
                .sync_data()
                .map_err(io_err(&self.part_path))?;
        }
        let entries: Vec<u8> = pieces.iter().flat_map(|p| p.to_le_bytes()).collect();
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        record
            .write_all(&entries)
            .map_err(io_err(&self.record_path))?;
        record.sync_data().map_err(io_err(&self.record_path))
    }

    /// Every piece is verified: the .part becomes the final file or folder and the record
    /// goes. Takes `&self` because a cancelled duplicate may still be finishing its write, of
    /// identical verified bytes.
    pub fn finish(&self) -> Result<PathBuf, StoreError> {
        // Every piece's bytes were synced before the record named them; what is left is each
        // file's metadata and, for a folder, the directories' entries for its files. One
        // fsync per directory rather than per file: a folder may hold 100,000 small files.
        if self.meta.is_folder {
            // Every directory between the files and the .part root: each holds an entry made
            // for this download.
            let mut dirs: BTreeSet<&Path> = BTreeSet::from([self.part_path.as_path()]);
            for path in &self.files.paths {
                dirs.extend(
                    path.ancestors()
                        .skip(1)
                        .take_while(|d| d.starts_with(&self.part_path)),
                );
            }
            for dir in dirs {
                sync_dir(dir)?;
            }
        } else {
            self.files
                .get(0)?
                .sync_all()
                .map_err(io_err(&self.part_path))?;
        }
        std::fs::rename(&self.part_path, &self.final_path).map_err(io_err(&self.final_path))?;
        // The rename is durable once the directory holding both names is.
        if let Some(dir) = self.final_path.parent() {
            sync_dir(dir)?;
        }
        let _ = std::fs::remove_file(&self.record_path);
        Ok(self.final_path.clone())
    }
}
