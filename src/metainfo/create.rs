//! Hashing a file into a torrent: one streaming read, SHA-1 and SHA-256 on their own threads.
//!
//! The reader hands fixed-size buffers (each inside one piece) to both hashers over bounded
//! channels, so memory stays at a few buffers whatever the file size, and the two hashes run in
//! parallel with the read.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;

use sha1::{Digest, Sha1};

use super::merkle::{self, Hash256};
use super::{Metainfo, MetainfoError, V1Torrent};
use crate::types::{PieceLength, BLOCK_SIZE};

/// Read buffer size: a whole piece up to 4 MiB. Both are powers of two, so a buffer never
/// straddles two pieces.
const MAX_BUFFER: u64 = 4 * 1024 * 1024;
/// Buffers queued per hasher: bounds memory to about `(2 * QUEUE + 1) * buffer`.
const QUEUE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Metainfo {
        path: PathBuf,
        source: MetainfoError,
    },
    #[error("{0} has no file name to use as the torrent name")]
    NoName(PathBuf),
}

/// Both kinds of piece hashes of one file.
#[derive(Debug)]
pub struct FileHashes {
    pub length: u64,
    pub v1_pieces: Vec<[u8; 20]>,
    pub piece_hashes: Vec<Hash256>,
}

/// Hashes `path` and builds its torrent, reporting bytes read to `progress`.
pub fn from_path(
    path: &Path,
    piece_length: PieceLength,
    trackers: Vec<String>,
    url_list: Vec<String>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metainfo, CreateError> {
    let (name, hashes) = hash_path(path, piece_length, progress)?;
    build(name, hashes, piece_length, trackers, url_list).map_err(|source| CreateError::Metainfo {
        path: path.to_owned(),
        source,
    })
}

/// Hashes `path` into a v1-only torrent (see [`V1Torrent`]).
pub fn v1_only_from_path(
    path: &Path,
    piece_length: PieceLength,
    trackers: &[String],
    url_list: &[String],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<V1Torrent, CreateError> {
    let (name, hashes) = hash_path(path, piece_length, progress)?;
    V1Torrent::new(
        name,
        hashes.length,
        piece_length,
        &hashes.v1_pieces,
        trackers,
        url_list,
    )
    .map_err(|source| CreateError::Metainfo {
        path: path.to_owned(),
        source,
    })
}

/// The file's name (the torrent name) and hashes.
fn hash_path<'p>(
    path: &'p Path,
    piece_length: PieceLength,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(&'p str, FileHashes), CreateError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CreateError::NoName(path.to_owned()))?;
    let io_err = |source| CreateError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let hashes = hash_reader(file, piece_length, progress).map_err(io_err)?;
    Ok((name, hashes))
}

/// Builds a torrent from bytes in memory (tests and small inputs).
pub fn from_bytes(
    name: &str,
    data: &[u8],
    piece_length: PieceLength,
    trackers: Vec<String>,
    url_list: Vec<String>,
) -> Result<Metainfo, MetainfoError> {
    let hashes = hash_reader(data, piece_length, &|_| {}).expect("reading a slice cannot fail");
    build(name, hashes, piece_length, trackers, url_list)
}

/// The torrent of hashed content.
pub fn build(
    name: &str,
    hashes: FileHashes,
    piece_length: PieceLength,
    trackers: Vec<String>,
    url_list: Vec<String>,
) -> Result<Metainfo, MetainfoError> {
    Metainfo::new(
        name,
        hashes.length,
        piece_length,
        hashes.v1_pieces,
        hashes.piece_hashes,
        trackers,
        url_list,
    )
}

/// Streams `reader` once, computing SHA-1 per piece and the BEP 52 hash per piece in parallel.
pub fn hash_reader<R: Read + Send>(
    mut reader: R,
    piece_length: PieceLength,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<FileHashes> {
    let buffer_size = piece_length.get().min(MAX_BUFFER) as usize;
    let (to_sha1, sha1_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE);
    let (to_sha256, sha256_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE);

    thread::scope(|scope| {
        let sha1 = scope.spawn(move || v1_hasher(sha1_rx, piece_length));
        let sha256 = scope.spawn(move || v2_hasher(sha256_rx, piece_length));
        let mut length = 0u64;
        let read_result = loop {
            let mut buffer = vec![0u8; buffer_size];
            let filled = match read_full(&mut reader, &mut buffer) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if filled == 0 {
                break Ok(());
            }
            buffer.truncate(filled);
            length += filled as u64;
            progress(length);
            let buffer = Arc::new(buffer);
            // A send fails only if a hasher thread died; its join below reports the panic.
            if to_sha1.send(buffer.clone()).is_err() || to_sha256.send(buffer).is_err() {
                break Ok(());
            }
            if filled < buffer_size {
                break Ok(());
            }
        };
        drop((to_sha1, to_sha256));
        let v1_pieces = sha1.join().expect("SHA-1 hasher panicked");
        let leaves_per_piece = sha256.join().expect("SHA-256 hasher panicked");
        read_result?;
        let piece_hashes = leaves_per_piece
            .iter()
            .map(|leaves| merkle::piece_hash_from_blocks(leaves, piece_length, length))
            .collect();
        Ok(FileHashes {
            length,
            v1_pieces,
            piece_hashes,
        })
    })
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn v1_hasher(buffers: Receiver<Arc<Vec<u8>>>, piece_length: PieceLength) -> Vec<[u8; 20]> {
    let mut pieces = Vec::new();
    let mut hasher = Sha1::new();
    let mut in_piece = 0u64;
    for buffer in buffers {
        hasher.update(&buffer[..]);
        in_piece += buffer.len() as u64;
        if in_piece == piece_length.get() {
            pieces.push(hasher.finalize_reset().into());
            in_piece = 0;
        }
    }
    if in_piece > 0 {
        pieces.push(hasher.finalize().into());
    }
    pieces
}

/// Collects the 16 KiB block hashes of each piece. Piece hashes are computed once the length is
/// known, because a one-piece file pads its tree differently from a longer file.
fn v2_hasher(buffers: Receiver<Arc<Vec<u8>>>, piece_length: PieceLength) -> Vec<Vec<Hash256>> {
    let blocks_per_piece = piece_length.blocks_per_piece() as usize;
    let mut pieces: Vec<Vec<Hash256>> = Vec::new();
    for buffer in buffers {
        for block in buffer.chunks(BLOCK_SIZE as usize) {
            let hash: Hash256 = sha2::Sha256::digest(block).into();
            match pieces.last_mut() {
                Some(leaves) if leaves.len() < blocks_per_piece => leaves.push(hash),
                _ => pieces.push(vec![hash]),
            }
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_a_direct_computation() {
        let pl = PieceLength::new(32768).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let hashes = hash_reader(&data[..], pl, &|_| {}).unwrap();
        assert_eq!(hashes.length, 100_000);
        assert_eq!(hashes.v1_pieces.len(), 4);
        for (i, piece) in data.chunks(32768).enumerate() {
            let sha1: [u8; 20] = Sha1::digest(piece).into();
            assert_eq!(hashes.v1_pieces[i], sha1);
            assert_eq!(
                hashes.piece_hashes[i],
                merkle::piece_hash(piece, pl, 100_000)
            );
        }
    }

    #[test]
    fn an_empty_input_is_a_clear_error() {
        let pl = PieceLength::new(16384).unwrap();
        let err = from_bytes("empty", b"", pl, vec![], vec![]).unwrap_err();
        assert!(matches!(err, MetainfoError::EmptyFile));
    }

    #[test]
    fn large_pieces_are_read_in_several_buffers() {
        let pl = PieceLength::new(8 * 1024 * 1024).unwrap();
        let data = vec![7u8; 9 * 1024 * 1024];
        let hashes = hash_reader(&data[..], pl, &|_| {}).unwrap();
        assert_eq!(hashes.v1_pieces.len(), 2);
        let first: [u8; 20] = Sha1::digest(&data[..8 * 1024 * 1024]).into();
        assert_eq!(hashes.v1_pieces[0], first);
        let last = merkle::piece_hash(&data[8 * 1024 * 1024..], pl, data.len() as u64);
        assert_eq!(hashes.piece_hashes[1], last);
    }
}
