//! Hashing content into a torrent: one streaming read of every file in order, SHA-1 and SHA-256
//! on their own threads.
//!
//! The reader hands buffers (each inside one file, and inside one piece of it) to both hashers
//! over bounded channels, so memory stays at a few buffers whatever the size, and the two hashes
//! run in parallel with the read. Between files it tells the hashers where a file ends: the
//! SHA-256 side starts a new merkle tree, the SHA-1 side pads the piece with zeros (a BEP 47
//! pad file) or, for a v1-only layout, carries on into the next file.
//!
//! Buffers go round rather than being allocated per read: the last hasher done with one sends
//! it back to the reader. A fresh multi-MiB buffer is a fresh mapping that the kernel zeroes a
//! page at a time; reusing them took `create` of 1 GiB from 264,000 page faults and 1.06 s of
//! system time to a few hundred faults.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;

use sha1::{Digest, Sha1};

use super::merkle::{self, Hash256};
use super::{layout, Content, FileSpec, Metainfo, MetainfoError, V1Torrent};
use crate::storage::walk_dir;
use crate::types::{PieceLength, BLOCK_SIZE};

/// Read buffer size: a whole piece up to 4 MiB. Both are powers of two, so a buffer never
/// straddles two pieces of a file.
const MAX_BUFFER: u64 = 4 * 1024 * 1024;
/// Buffers queued per hasher: bounds memory to about `(QUEUE + 3) * buffer` (both queues
/// hold the same buffers; one more in each hasher and one being filled).
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
    #[error("{0} holds no file to share (hidden files and links leading outside are left out)")]
    EmptyFolder(PathBuf),
    #[error("{path} changed while it was hashed: expected {expected} bytes, read {read}")]
    Changed {
        path: PathBuf,
        expected: u64,
        read: u64,
    },
}

/// Both kinds of piece hashes of content.
#[derive(Debug)]
pub struct Hashes {
    /// Each file's length and BEP 52 piece layer (empty for an empty file), in order.
    pub files: Vec<(u64, Vec<Hash256>)>,
    /// SHA-1 of each piece of the v1 layout.
    pub v1_pieces: Vec<[u8; 20]>,
}

/// Both kinds of piece hashes of one file.
#[derive(Debug)]
pub struct FileHashes {
    pub length: u64,
    pub v1_pieces: Vec<[u8; 20]>,
    pub piece_hashes: Vec<Hash256>,
}

/// A file to hash, in torrent order.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the torrent (`[name]` for a single file).
    pub path: Vec<String>,
    pub length: u64,
    pub executable: bool,
}

/// Why hashing an entry failed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it changed while it was hashed: expected {expected} bytes, read {read}")]
    Length { expected: u64, read: u64 },
}

/// Hashes `entries`, each opened in turn by `open(index)`, into content for a hybrid layout
/// (pad files) or a v1-only one (`pad` false). An error gives the entry's index.
pub fn hash_entries<'a, R: Read + Send>(
    name: &'a str,
    is_folder: bool,
    entries: &[Entry],
    mut open: impl FnMut(usize) -> io::Result<R>,
    piece_length: PieceLength,
    pad: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Content<'a>, (usize, HashError)> {
    let count = entries.len();
    let inputs = entries.iter().enumerate().map(|(i, e)| {
        Ok(Input {
            reader: open(i)?,
            expected: Some(e.length),
            pad: pad && layout::padded(e.length, piece_length, count),
        })
    });
    let hashes = hash_inputs(inputs, piece_length, progress)?;
    let files = entries
        .iter()
        .zip(hashes.files)
        .map(|(e, (_, layer))| {
            let spec = FileSpec {
                path: e.path.clone(),
                length: e.length,
                executable: e.executable,
                pieces_root: (!layer.is_empty()).then(|| merkle::pieces_root(&layer, piece_length)),
            };
            (spec, layer)
        })
        .collect();
    Ok(Content {
        name,
        is_folder,
        files,
        piece_length,
        v1_pieces: hashes.v1_pieces,
    })
}

/// What `create` found at a path: one file, or a folder's files in canonical order.
pub struct Source {
    pub name: String,
    pub is_folder: bool,
    pub entries: Vec<Entry>,
    /// Where to read each entry.
    reals: Vec<PathBuf>,
    /// Files of a folder left out, with why (hidden ones are not listed).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Source {
    /// Reads what `path` is: a regular file, or a directory walked by the data dir's rule
    /// ([`walk_dir`]).
    pub fn open(path: &Path) -> Result<Self, CreateError> {
        let io_err = |source| CreateError::Io {
            path: path.to_owned(),
            source,
        };
        let name = path
            .canonicalize()
            .map_err(io_err)?
            .file_name()
            .and_then(|n| n.to_str())
            .map(String::from)
            .ok_or_else(|| CreateError::NoName(path.to_owned()))?;
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if !meta.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            // As for a folder's files: the entry's own bit, a symbolic link counting as
            // executable (libtorrent's rule).
            let executable =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.permissions().mode() & 0o100 != 0);
            return Ok(Source {
                entries: vec![Entry {
                    path: vec![name.clone()],
                    length: meta.len(),
                    executable,
                }],
                reals: vec![path.to_owned()],
                name,
                is_folder: false,
                skipped: Vec::new(),
            });
        }
        let root = path.canonicalize().map_err(io_err)?;
        let mut skipped = Vec::new();
        let found = walk_dir(&root, &mut |p, why| {
            skipped.push((p.to_owned(), why.to_owned()));
        });
        if found.is_empty() {
            return Err(CreateError::EmptyFolder(path.to_owned()));
        }
        let (entries, reals) = found
            .into_iter()
            .map(|f| {
                let entry = Entry {
                    path: f.relative,
                    length: f.meta.len(),
                    executable: f.executable,
                };
                (entry, f.real)
            })
            .unzip();
        Ok(Source {
            name,
            is_folder: true,
            entries,
            reals,
            skipped,
        })
    }

    pub fn total_length(&self) -> u64 {
        self.entries.iter().map(|f| f.length).sum()
    }

    fn hash(
        &self,
        piece_length: PieceLength,
        pad: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Content<'_>, CreateError> {
        let open = |i: usize| File::open(&self.reals[i]);
        hash_entries(
            &self.name,
            self.is_folder,
            &self.entries,
            open,
            piece_length,
            pad,
            progress,
        )
        .map_err(|(i, e)| match e {
            HashError::Io(source) => CreateError::Io {
                path: self.reals[i].clone(),
                source,
            },
            HashError::Length { expected, read } => CreateError::Changed {
                path: self.reals[i].clone(),
                expected,
                read,
            },
        })
    }

    /// The hybrid torrent of this file or folder.
    pub fn torrent(
        &self,
        piece_length: PieceLength,
        trackers: &[String],
        url_list: &[String],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Metainfo, CreateError> {
        self.make(piece_length, true, progress, |c| {
            c.torrent(trackers, url_list)
        })
    }

    /// The v1-only torrent of this file or folder (see [`Content::v1_torrent`]).
    pub fn v1_torrent(
        &self,
        piece_length: PieceLength,
        trackers: &[String],
        url_list: &[String],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<V1Torrent, CreateError> {
        self.make(piece_length, false, progress, |c| {
            c.v1_torrent(trackers, url_list)
        })
    }

    /// Hashes (with pad files when `pad`) and builds the torrent with `build`.
    fn make<T>(
        &self,
        piece_length: PieceLength,
        pad: bool,
        progress: &(dyn Fn(u64) + Sync),
        build: impl FnOnce(Content<'_>) -> Result<T, MetainfoError>,
    ) -> Result<T, CreateError> {
        let content = self.hash(piece_length, pad, progress)?;
        build(content).map_err(|source| CreateError::Metainfo {
            path: PathBuf::from(&self.name),
            source,
        })
    }
}

/// Builds a single-file torrent from bytes in memory (tests and small inputs).
pub fn from_bytes(
    name: &str,
    data: &[u8],
    piece_length: PieceLength,
    trackers: Vec<String>,
    url_list: Vec<String>,
) -> Result<Metainfo, MetainfoError> {
    let hashes = hash_reader(data, piece_length, &|_| {}).expect("reading a slice cannot fail");
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

/// Streams one file's bytes from `reader`, computing SHA-1 per piece and the BEP 52 hash per
/// piece in parallel.
pub fn hash_reader<R: Read + Send>(
    reader: R,
    piece_length: PieceLength,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<FileHashes> {
    let input = Input {
        reader,
        expected: None,
        pad: false,
    };
    let mut hashes = hash_inputs(std::iter::once(Ok(input)), piece_length, progress).map_err(
        |(_, e)| match e {
            HashError::Io(e) => e,
            HashError::Length { .. } => unreachable!("no length was expected"),
        },
    )?;
    let (length, piece_hashes) = hashes.files.pop().expect("one input gives one file");
    Ok(FileHashes {
        length,
        v1_pieces: hashes.v1_pieces,
        piece_hashes,
    })
}

/// One file to hash.
struct Input<R> {
    reader: R,
    /// Its length when known: reading more or less is an error, and buffers are sized to it.
    expected: Option<u64>,
    /// Whether a pad file follows it (the SHA-1 of its last piece covers zeros to the end).
    pad: bool,
}

/// What the reader tells the hashers.
enum Message {
    Data(Arc<Block>),
    /// The current file ended; `pad` as in [`Input`].
    EndOfFile {
        pad: bool,
    },
}

/// A read buffer and how much of it the read filled.
struct Block {
    bytes: Vec<u8>,
    filled: usize,
}

impl std::ops::Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }
}

/// Where hashers return buffers: whichever drops the last reference sends it back. Sized so a
/// send never blocks (there are never more buffers than that in circulation).
#[derive(Clone)]
struct Recycle(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Recycle {
    fn done_with(&self, block: Arc<Block>) {
        if let Some(block) = Arc::into_inner(block) {
            // The reader may have stopped; a buffer nobody takes is simply freed.
            let _ = self.0.try_send(block.bytes);
        }
    }
}

/// Hashes inputs in order; an error names the input (by position) it came from.
fn hash_inputs<R: Read + Send>(
    inputs: impl Iterator<Item = io::Result<Input<R>>>,
    piece_length: PieceLength,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Hashes, (usize, HashError)> {
    let buffer_size = piece_length.get().min(MAX_BUFFER);
    let (to_sha1, sha1_rx) = sync_channel::<Message>(QUEUE);
    let (to_sha256, sha256_rx) = sync_channel::<Message>(QUEUE);
    let (recycle, recycled) = sync_channel::<Vec<u8>>(QUEUE + 4);
    let recycle = Recycle(recycle);

    thread::scope(|scope| {
        let back = recycle.clone();
        let sha1 = scope.spawn(move || v1_hasher(sha1_rx, piece_length, back));
        let sha256 = scope.spawn(move || v2_hasher(sha256_rx, piece_length, recycle));
        let send = |m: Message| {
            let copy = match &m {
                Message::Data(b) => Message::Data(b.clone()),
                Message::EndOfFile { pad } => Message::EndOfFile { pad: *pad },
            };
            // A send fails only if a hasher thread died; its join below reports the panic.
            to_sha1.send(copy).is_ok() && to_sha256.send(m).is_ok()
        };
        let mut done = 0u64;
        let mut result = Ok(());
        'files: for (i, input) in inputs.enumerate() {
            let mut input = match input {
                Ok(input) => input,
                Err(e) => {
                    result = Err((i, HashError::Io(e)));
                    break;
                }
            };
            let mut read = 0u64;
            loop {
                let size = match input.expected {
                    Some(expected) => buffer_size.min(expected.saturating_sub(read)).max(1),
                    None => buffer_size,
                };
                let mut bytes = recycled
                    .try_recv()
                    .unwrap_or_else(|_| vec![0u8; buffer_size as usize]);
                let filled = match read_full(&mut input.reader, &mut bytes[..size as usize]) {
                    Ok(n) => n,
                    Err(e) => {
                        result = Err((i, HashError::Io(e)));
                        break 'files;
                    }
                };
                if filled == 0 {
                    break;
                }
                read += filled as u64;
                done += filled as u64;
                progress(done);
                if !send(Message::Data(Arc::new(Block { bytes, filled }))) {
                    break 'files;
                }
                if (filled as u64) < size {
                    break;
                }
            }
            if let Some(expected) = input.expected.filter(|&e| e != read) {
                result = Err((i, HashError::Length { expected, read }));
                break;
            }
            if !send(Message::EndOfFile { pad: input.pad }) {
                break;
            }
        }
        drop((to_sha1, to_sha256));
        let v1_pieces = sha1.join().expect("SHA-1 hasher panicked");
        let files = sha256.join().expect("SHA-256 hasher panicked");
        result?;
        let files = files
            .into_iter()
            .map(|(length, pieces)| {
                let layer = pieces
                    .iter()
                    .map(|leaves| merkle::piece_hash_from_blocks(leaves, piece_length, length))
                    .collect();
                (length, layer)
            })
            .collect();
        Ok(Hashes { files, v1_pieces })
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

/// SHA-1 over the v1 layout: the files' bytes in order, with zeros after a file that has a pad
/// file; otherwise a piece carries on into the next file.
fn v1_hasher(
    messages: Receiver<Message>,
    piece_length: PieceLength,
    recycle: Recycle,
) -> Vec<[u8; 20]> {
    const ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];
    let piece_length = piece_length.get();
    let mut pieces = Vec::new();
    let mut hasher = Sha1::new();
    let mut in_piece = 0u64;
    let mut feed = |mut data: &[u8], hasher: &mut Sha1, in_piece: &mut u64| {
        while !data.is_empty() {
            let take = (piece_length - *in_piece).min(data.len() as u64) as usize;
            hasher.update(&data[..take]);
            *in_piece += take as u64;
            data = &data[take..];
            if *in_piece == piece_length {
                pieces.push(hasher.finalize_reset().into());
                *in_piece = 0;
            }
        }
    };
    for message in messages {
        match message {
            Message::Data(block) => {
                feed(&block, &mut hasher, &mut in_piece);
                recycle.done_with(block);
            }
            Message::EndOfFile { pad: true } => {
                while in_piece > 0 {
                    let take = (piece_length - in_piece).min(BLOCK_SIZE) as usize;
                    feed(&ZEROS[..take], &mut hasher, &mut in_piece);
                }
            }
            Message::EndOfFile { pad: false } => {}
        }
    }
    if in_piece > 0 {
        pieces.push(hasher.finalize().into());
    }
    pieces
}

/// Collects the 16 KiB block hashes of each piece of each file, with the file's length. Piece
/// hashes are computed once the length is known, because a one-piece file pads its tree
/// differently from a longer file.
fn v2_hasher(
    messages: Receiver<Message>,
    piece_length: PieceLength,
    recycle: Recycle,
) -> Vec<(u64, Vec<Vec<Hash256>>)> {
    let blocks_per_piece = piece_length.blocks_per_piece() as usize;
    let mut files = Vec::new();
    let mut length = 0u64;
    let mut pieces: Vec<Vec<Hash256>> = Vec::new();
    for message in messages {
        match message {
            Message::Data(buffer) => {
                length += buffer.len() as u64;
                for block in buffer.chunks(BLOCK_SIZE as usize) {
                    let hash: Hash256 = sha2::Sha256::digest(block).into();
                    match pieces.last_mut() {
                        Some(leaves) if leaves.len() < blocks_per_piece => leaves.push(hash),
                        _ => pieces.push(vec![hash]),
                    }
                }
                recycle.done_with(buffer);
            }
            Message::EndOfFile { .. } => {
                files.push((length, std::mem::take(&mut pieces)));
                length = 0;
            }
        }
    }
    files
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

    fn inputs<'a>(files: &'a [&'a [u8]], pad: bool) -> Vec<io::Result<Input<&'a [u8]>>> {
        files
            .iter()
            .map(|f| {
                Ok(Input {
                    reader: *f,
                    expected: Some(f.len() as u64),
                    pad,
                })
            })
            .collect()
    }

    #[test]
    fn v1_pieces_pad_each_file_or_run_across_files() {
        let pl = PieceLength::new(16384).unwrap();
        let (a, b) = (vec![1u8; 20000], vec![2u8; 5000]);
        let files: [&[u8]; 2] = [&a, &b];

        let padded = hash_inputs(inputs(&files, true).into_iter(), pl, &|_| {})
            .ok()
            .unwrap();
        let mut a_tail = a[16384..].to_vec();
        a_tail.resize(16384, 0);
        assert_eq!(padded.v1_pieces[1], <[u8; 20]>::from(Sha1::digest(&a_tail)));
        assert_eq!(padded.v1_pieces.len(), 3);
        assert_eq!(padded.files[1].0, 5000);

        let run_on = hash_inputs(inputs(&files, false).into_iter(), pl, &|_| {})
            .ok()
            .unwrap();
        let joined = [&a[..], &b[..]].concat();
        assert_eq!(
            run_on.v1_pieces[1],
            <[u8; 20]>::from(Sha1::digest(&joined[16384..]))
        );
        assert_eq!(run_on.v1_pieces.len(), 2);
    }

    #[test]
    fn a_file_that_changes_length_is_named() {
        let pl = PieceLength::new(16384).unwrap();
        let mut listed = inputs(&[b"abc"], true);
        if let Ok(input) = &mut listed[0] {
            input.expected = Some(4);
        }
        let err = hash_inputs(listed.into_iter(), pl, &|_| {}).err().unwrap();
        assert!(matches!(
            err,
            (
                0,
                HashError::Length {
                    expected: 4,
                    read: 3
                }
            )
        ));
    }
}
