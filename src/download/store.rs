//! The download's files: `<name>.part` (pieces written at their offsets), `<name>.part.pieces`
//! (which pieces are verified, appended as they complete) and the final `<name>`.
//!
//! Order of durability: piece bytes are synced before the record names them, so after a crash,
//! even a power loss, every recorded piece is really on disk. The final name appears only by an
//! atomic rename once every piece is verified, so it never holds an unverified byte.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::metainfo::Metainfo;
use crate::types::PieceIndex;

const MAGIC: &[u8; 8] = b"GTHPART1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} exists and does not match the torrent; move it away to download again")]
    ForeignFile(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How the download starts.
pub enum Opened {
    /// The final file is there and every piece verifies.
    Complete(PathBuf),
    /// Pieces still to fetch; `done[i]` marks those already verified in the .part file.
    Partial {
        part: PartFile,
        done: Vec<bool>,
        /// Pieces recovered by re-hashing a .part whose record was lost.
        rehashed: usize,
    },
}

pub struct PartFile {
    file: File,
    record: Mutex<File>,
    pub final_path: PathBuf,
    pub part_path: PathBuf,
    record_path: PathBuf,
}

/// Opens or creates the download's files in `dir`.
pub fn open(dir: &Path, meta: &Metainfo) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let final_path = dir.join(&meta.name);
    let part_path = dir.join(format!("{}.part", meta.name));
    let record_path = dir.join(format!("{}.part.pieces", meta.name));

    if final_path.exists() {
        let file = File::open(&final_path).map_err(io_err(&final_path))?;
        let verified = verify_all(&file, meta).map_err(io_err(&final_path))?;
        return if verified.iter().all(|v| *v) {
            Ok(Opened::Complete(final_path))
        } else {
            Err(StoreError::ForeignFile(final_path))
        };
    }

    let existed = part_path.exists();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part_path)
        .map_err(io_err(&part_path))?;
    let size_ok = file.metadata().map_err(io_err(&part_path))?.len() == meta.length;
    file.set_len(meta.length).map_err(io_err(&part_path))?;

    let recorded = if existed && size_ok {
        read_record(&record_path, meta)
    } else {
        None
    };
    let (done, rehashed) = match recorded {
        Some(done) => (done, 0),
        None if existed && size_ok => {
            // The record is lost or stale: keep whatever in the .part still verifies.
            let done = verify_all(&file, meta).map_err(io_err(&part_path))?;
            let n = done.iter().filter(|d| **d).count();
            (done, n)
        }
        None => (vec![false; meta.piece_count() as usize], 0),
    };

    let mut record = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
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
        part: PartFile {
            file,
            record: Mutex::new(record),
            final_path,
            part_path,
            record_path,
        },
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

/// Hashes every piece of `file` against the torrent.
fn verify_all(file: &File, meta: &Metainfo) -> io::Result<Vec<bool>> {
    if file.metadata()?.len() != meta.length {
        return Ok(vec![false; meta.piece_count() as usize]);
    }
    let mut buf = vec![0u8; meta.piece_length.get() as usize];
    (0..meta.piece_count())
        .map(|i| {
            let span = meta.piece(PieceIndex(i)).expect("index in range");
            let piece = &mut buf[..span.len as usize];
            file.read_exact_at(piece, span.offset)?;
            Ok(meta.verify_piece(PieceIndex(i), piece))
        })
        .collect()
}

impl PartFile {
    pub fn write_piece(&self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all_at(data, offset)
            .map_err(io_err(&self.part_path))
    }

    /// Makes written pieces durable, then records them as verified.
    pub fn record(&self, pieces: &[u32]) -> Result<(), StoreError> {
        if pieces.is_empty() {
            return Ok(());
        }
        self.file.sync_data().map_err(io_err(&self.part_path))?;
        let entries: Vec<u8> = pieces.iter().flat_map(|p| p.to_le_bytes()).collect();
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        record
            .write_all(&entries)
            .map_err(io_err(&self.record_path))?;
        record.sync_data().map_err(io_err(&self.record_path))
    }

    /// Every piece is verified: the .part becomes the final file and the record goes. Takes
    /// `&self` because a cancelled duplicate may still be finishing its write, of identical
    /// verified bytes.
    pub fn finish(&self) -> Result<PathBuf, StoreError> {
        self.file.sync_all().map_err(io_err(&self.part_path))?;
        std::fs::rename(&self.part_path, &self.final_path).map_err(io_err(&self.final_path))?;
        let _ = std::fs::remove_file(&self.record_path);
        Ok(self.final_path.clone())
    }
}
