//! BitTorrent metainfo (.torrent files): hybrid v1 + v2 torrents (BEP 3 + BEP 52) of one file
//! or of a folder (BEP 47 pad files align every file to a piece, as libtorrent 2.0 does).
//!
//! [`Metainfo`] is the one in-memory form, built from hashes ([`Metainfo::new`]) or parsed and
//! validated from bytes ([`Metainfo::from_bytes`]). The info dictionary holds only the keys BEP 3,
//! BEP 47 and BEP 52 require, so content and a piece length always give the same info-hashes.
//!
//! Pieces are numbered across the torrent's files in order; since every file starts on a piece
//! boundary, a piece is a slice of exactly one file ([`Metainfo::piece`]). It is served and
//! verified as that slice: its BEP 52 hash covers the file's bytes only, while its v1 SHA-1
//! covers them followed by the pad file's zeros.

pub mod create;
pub mod layout;
pub mod merkle;

use std::collections::BTreeMap;
use std::sync::Arc;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::bencode::{self, Value};
use crate::types::{InfoHash, InfoHashV1, InfoHashV2, PieceIndex, PieceLength};
pub use layout::{FileSpec, TorrentFile};
use merkle::Hash256;

/// A parsed, validated hybrid torrent.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub name: String,
    /// Whether the info has a `files` list (a folder: files live under `<name>/`) rather than
    /// one `length` (the one file is `<name>`).
    pub is_folder: bool,
    /// The files in torrent order; a single-file torrent has one, whose path is `[name]`.
    pub files: Vec<TorrentFile>,
    /// Bytes of all files together (pad files not counted).
    pub length: u64,
    pub piece_length: PieceLength,
    /// SHA-1 of each piece (v1 `pieces`).
    pub v1_pieces: Vec<[u8; 20]>,
    /// BEP 52 hash of each piece: its file's piece layer entry, or the pieces root of a file of
    /// one piece.
    pub piece_hashes: Vec<Hash256>,
    /// Tracker announce URLs: the first is `announce`; more make a BEP 12 `announce-list`.
    pub trackers: Vec<String>,
    /// BEP 19 web seeds.
    pub url_list: Vec<String>,
    pub info_hash_v1: InfoHashV1,
    pub info_hash_v2: InfoHashV2,
    /// The bencoded .torrent, as served by `GET /torrents/{info_hash}`.
    pub bytes: Arc<[u8]>,
}

/// Where a piece's bytes are: `len` bytes of file number `file` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceSpan {
    pub file: usize,
    pub offset: u64,
    pub len: u64,
}

/// Why bytes are not a torrent this service can use; every message names the offending part.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("missing or malformed key {0:?}")]
    Key(&'static str),
    #[error(
        "invalid torrent name {0:?}: it must be one file name (no '/', '\\', NUL, '.' or '..')"
    )]
    Name(String),
    #[error("unsafe file path {path:?} in the torrent: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("the torrent lists {0} files; at most 100000 are allowed")]
    TooManyFiles(usize),
    #[error("the v1 file list does not match the v2 file tree at {0:?}")]
    V1Mismatch(String),
    #[error("file {0:?} does not start on a piece boundary (a v1 layout without pad files)")]
    Unaligned(String),
    #[error(transparent)]
    PieceLength(#[from] crate::types::PieceLengthError),
    #[error("not a hybrid v1 + v2 torrent (meta version 2 with v1 pieces): {0}")]
    NotHybrid(&'static str),
    #[error("an empty file cannot be shared on its own: BEP 52 gives it no pieces root")]
    EmptyFile,
    #[error("{what}: expected {expected}, found {found}")]
    Count {
        what: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("the piece layer of {0:?} does not hash to its pieces root")]
    PieceLayerMismatch(String),
}

impl Metainfo {
    /// Builds a single-file torrent from the hashes of one file.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        length: u64,
        piece_length: PieceLength,
        v1_pieces: Vec<[u8; 20]>,
        piece_hashes: Vec<Hash256>,
        trackers: Vec<String>,
        url_list: Vec<String>,
    ) -> Result<Self, MetainfoError> {
        validate_name(name)?;
        if length == 0 {
            return Err(MetainfoError::EmptyFile);
        }
        let file = FileSpec {
            path: vec![name.to_owned()],
            length,
            executable: false,
            pieces_root: Some(merkle::pieces_root(&piece_hashes, piece_length)),
        };
        let content = Content {
            name,
            is_folder: false,
            files: vec![(file, piece_hashes)],
            piece_length,
            v1_pieces,
        };
        content.torrent(&trackers, &url_list)
    }

    /// Parses and validates a bencoded .torrent.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        let decoded = bencode::decode(bytes)?;
        let top = &decoded.value;
        let raw_info = decoded
            .raw_value("info")
            .ok_or(MetainfoError::Key("info"))?;
        let info = top.get("info").ok_or(MetainfoError::Key("info"))?;

        let name = info
            .get("name")
            .and_then(Value::as_str)
            .ok_or(MetainfoError::Key("name"))?;
        validate_name(name)?;
        let piece_length = info
            .get("piece length")
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(MetainfoError::Key("piece length"))?;
        let piece_length = PieceLength::new(piece_length)?;
        if info.get("meta version").and_then(Value::as_int) != Some(2) {
            return Err(MetainfoError::NotHybrid("meta version is not 2"));
        }
        let tree = info
            .get("file tree")
            .and_then(Value::as_dict)
            .ok_or(MetainfoError::Key("file tree"))?;
        let specs = layout::parse_file_tree(tree)?;
        let (is_folder, v1_length) = match info.get("files") {
            Some(list) => {
                let list = list.as_list().ok_or(MetainfoError::Key("files"))?;
                layout::validate_files(&specs)?;
                (true, layout::check_v1_files(list, &specs, piece_length)?)
            }
            None => {
                let length = info
                    .get("length")
                    .and_then(Value::as_int)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or(MetainfoError::Key("length"))?;
                if length == 0 {
                    return Err(MetainfoError::EmptyFile);
                }
                match &specs[..] {
                    [only] if only.path == [name] && only.length == length => {}
                    _ => return Err(MetainfoError::V1Mismatch(name.to_owned())),
                }
                layout::validate_files(&specs)?;
                (false, length)
            }
        };
        let files = layout::number(specs, piece_length);
        let pieces: u64 = files
            .iter()
            .map(|f| u64::from(f.piece_count(piece_length)))
            .sum();
        if v1_length.div_ceil(piece_length.get()) != pieces {
            return Err(MetainfoError::Count {
                what: "pieces of the v1 layout",
                expected: pieces,
                found: v1_length.div_ceil(piece_length.get()),
            });
        }
        if pieces > u64::from(u32::MAX) {
            return Err(MetainfoError::Key("piece length"));
        }

        let v1 = info
            .get("pieces")
            .and_then(Value::as_bytes)
            .ok_or(MetainfoError::NotHybrid("no v1 'pieces'"))?;
        let v1_pieces = fixed_chunks::<20>(v1, "v1 'pieces' bytes", pieces * 20)?;

        let layers = top.get("piece layers").and_then(Value::as_dict);
        let mut piece_hashes = Vec::with_capacity(pieces as usize);
        for file in &files {
            let Some(root) = file.pieces_root else {
                continue;
            };
            if file.piece_count(piece_length) == 1 {
                piece_hashes.push(root);
                continue;
            }
            let layer = layers
                .and_then(|layers| layers.get(&root[..]))
                .and_then(Value::as_bytes)
                .ok_or(MetainfoError::Key("piece layers"))?;
            let hashes = fixed_chunks::<32>(
                layer,
                "piece layer bytes",
                u64::from(file.piece_count(piece_length)) * 32,
            )?;
            if merkle::pieces_root(&hashes, piece_length) != root {
                return Err(MetainfoError::PieceLayerMismatch(file.path_string()));
            }
            piece_hashes.extend(hashes);
        }

        let mut trackers: Vec<String> = top
            .get("announce-list")
            .and_then(Value::as_list)
            .into_iter()
            .flatten()
            .filter_map(Value::as_list)
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        if let Some(announce) = top.get("announce").and_then(Value::as_str) {
            if !trackers.iter().any(|t| t == announce) {
                trackers.insert(0, announce.to_owned());
            }
        }
        let url_list = match top.get("url-list") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect(),
            Some(Value::Bytes(u)) => vec![String::from_utf8_lossy(u).into_owned()],
            _ => Vec::new(),
        };

        Ok(Metainfo {
            name: name.to_owned(),
            is_folder,
            length: files.iter().map(|f| f.length).sum(),
            files,
            piece_length,
            v1_pieces,
            piece_hashes,
            trackers,
            url_list,
            info_hash_v1: InfoHashV1(Sha1::digest(raw_info).into()),
            info_hash_v2: InfoHashV2(Sha256::digest(raw_info).into()),
            bytes: bytes.into(),
        })
    }

    /// The same torrent (the same info dictionary, so the same info-hashes) announcing to
    /// `trackers` with web seeds `url_list`.
    pub fn with_urls(
        &self,
        trackers: &[String],
        url_list: &[String],
    ) -> Result<Metainfo, MetainfoError> {
        let decoded = bencode::decode(&self.bytes)?;
        let info = decoded
            .value
            .get("info")
            .cloned()
            .ok_or(MetainfoError::Key("info"))?;
        let layers = decoded.value.get("piece layers").cloned();
        let meta = Metainfo::from_bytes(&torrent_dict(info, layers, trackers, url_list).encode())?;
        // Re-encoding keeps the info's bytes only if they were canonical bencode.
        if meta.info_hash_v2 != self.info_hash_v2 {
            return Err(MetainfoError::Key("info (not canonical bencode)"));
        }
        Ok(meta)
    }

    pub fn piece_count(&self) -> u32 {
        // Validated at parse time: the count fits in u32 and matches `pieces`.
        self.piece_hashes.len() as u32
    }

    /// Where a piece's bytes are, or `None` past the last piece.
    pub fn piece(&self, index: PieceIndex) -> Option<PieceSpan> {
        if index.0 >= self.piece_count() {
            return None;
        }
        // The last file starting at or before the piece is the non-empty one holding it: an
        // empty file shares its first piece number with the next file, which comes after it.
        let file = self.files.partition_point(|f| f.first_piece <= index.0) - 1;
        let f = &self.files[file];
        let offset = u64::from(index.0 - f.first_piece) * self.piece_length.get();
        Some(PieceSpan {
            file,
            offset,
            len: self.piece_length.get().min(f.length - offset),
        })
    }

    /// Whether `data` is piece `index`, by its BEP 52 hash.
    pub fn verify_piece(&self, index: PieceIndex, data: &[u8]) -> bool {
        let Some(span) = self.piece(index) else {
            return false;
        };
        data.len() as u64 == span.len
            && merkle::piece_hash(data, self.piece_length, self.files[span.file].length)
                == self.piece_hashes[index.0 as usize]
    }

    /// The one file of a single-file torrent.
    pub fn single_file(&self) -> Option<&TorrentFile> {
        match &self.files[..] {
            [only] if !self.is_folder => Some(only),
            _ => None,
        }
    }

    /// Whether `hash` (either version) names this torrent.
    pub fn is_named_by(&self, hash: &InfoHash) -> bool {
        match hash {
            InfoHash::V1(h) => *h == self.info_hash_v1,
            InfoHash::V2(h) => *h == self.info_hash_v2,
        }
    }
}

/// Hashed content, before it becomes a torrent: each file with its piece layer (empty for an
/// empty file), in canonical order.
pub struct Content<'a> {
    pub name: &'a str,
    pub is_folder: bool,
    pub files: Vec<(FileSpec, Vec<Hash256>)>,
    pub piece_length: PieceLength,
    /// SHA-1 of each piece over the v1 layout (with pad files when hybrid).
    pub v1_pieces: Vec<[u8; 20]>,
}

impl Content<'_> {
    /// The hybrid torrent of this content.
    pub fn torrent(
        self,
        trackers: &[String],
        url_list: &[String],
    ) -> Result<Metainfo, MetainfoError> {
        let (info, layers) = self.info(true)?;
        let top = torrent_dict(info, Some(layers), trackers, url_list);
        Metainfo::from_bytes(&top.encode())
    }

    /// A v1-only torrent: no BEP 52 keys and, for a folder, no pad files (pieces span files, as
    /// in plain BEP 3), so clients that ignore BEP 47 see no `.pad` files. `v1_pieces` must
    /// have been hashed over that unpadded layout.
    pub fn v1_torrent(
        self,
        trackers: &[String],
        url_list: &[String],
    ) -> Result<V1Torrent, MetainfoError> {
        let name = self.name.to_owned();
        let (info, _) = self.info(false)?;
        let info_hash_v1 = InfoHashV1(Sha1::digest(info.encode()).into());
        Ok(V1Torrent {
            name,
            bytes: torrent_dict(info, None, trackers, url_list).encode(),
            info_hash_v1,
        })
    }

    /// The info dictionary (hybrid when `v2`) and the piece layers.
    fn info(self, v2: bool) -> Result<(Value, Value), MetainfoError> {
        validate_name(self.name)?;
        let int = |n: u64| Value::Int(i64::try_from(n).expect("lengths fit in i64"));
        let mut layers = BTreeMap::new();
        let mut specs = Vec::with_capacity(self.files.len());
        for (spec, layer) in self.files {
            if let (Some(root), true) = (spec.pieces_root, layer.len() > 1) {
                layers.insert(root.to_vec(), Value::Bytes(layer.concat()));
            }
            specs.push(spec);
        }
        let mut info = BTreeMap::from([
            (b"name".to_vec(), Value::bytes(self.name)),
            (b"piece length".to_vec(), int(self.piece_length.get())),
            (b"pieces".to_vec(), Value::Bytes(self.v1_pieces.concat())),
        ]);
        if self.is_folder {
            layout::validate_files(&specs)?;
        } else if specs.len() != 1 || specs[0].length == 0 {
            return Err(MetainfoError::EmptyFile);
        }
        let files = layout::number(specs, self.piece_length);
        if self.is_folder {
            info.insert(
                b"files".to_vec(),
                layout::v1_files(&files, self.piece_length, v2),
            );
        } else {
            info.insert(b"length".to_vec(), int(files[0].length));
            if files[0].executable {
                info.insert(b"attr".to_vec(), Value::bytes("x"));
            }
        }
        if v2 {
            info.insert(b"file tree".to_vec(), layout::file_tree(&files));
            info.insert(b"meta version".to_vec(), Value::Int(2));
        }
        Ok((Value::Dict(info), Value::Dict(layers)))
    }
}

/// The whole .torrent around an info dictionary: trackers (BEP 12 announce-list when several),
/// BEP 52 piece layers (when any), BEP 19 web seeds.
fn torrent_dict(
    info: Value,
    piece_layers: Option<Value>,
    trackers: &[String],
    url_list: &[String],
) -> Value {
    let mut top = BTreeMap::from([(b"info".to_vec(), info)]);
    if let Some(first) = trackers.first() {
        top.insert(b"announce".to_vec(), Value::bytes(first.as_str()));
    }
    if trackers.len() > 1 {
        let tiers = trackers
            .iter()
            .map(|t| Value::List(vec![Value::bytes(t.as_str())]))
            .collect();
        top.insert(b"announce-list".to_vec(), Value::List(tiers));
    }
    if let Some(layers) = piece_layers.filter(|l| l.as_dict().is_some_and(|d| !d.is_empty())) {
        top.insert(b"piece layers".to_vec(), layers);
    }
    if !url_list.is_empty() {
        let urls = url_list.iter().map(|u| Value::bytes(u.as_str())).collect();
        top.insert(b"url-list".to_vec(), Value::List(urls));
    }
    Value::Dict(top)
}

/// A v1-only torrent (BEP 3 info only), for clients that cannot open hybrid torrents. It has no
/// SHA-256 piece hashes, so this service's own downloader and registry do not take it.
pub struct V1Torrent {
    pub name: String,
    pub bytes: Vec<u8>,
    pub info_hash_v1: InfoHashV1,
}

fn fixed_chunks<const N: usize>(
    bytes: &[u8],
    what: &'static str,
    expected: u64,
) -> Result<Vec<[u8; N]>, MetainfoError> {
    if bytes.len() as u64 != expected {
        return Err(MetainfoError::Count {
            what,
            expected,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact gives N bytes"))
        .collect())
}

/// A torrent name becomes a file or directory name on the downloader's disk, so it must be
/// exactly one safe path component.
pub fn validate_name(name: &str) -> Result<(), MetainfoError> {
    layout::validate_component(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(len: usize, piece_length: u64) -> (Vec<u8>, Metainfo) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let pl = PieceLength::new(piece_length).unwrap();
        let meta = create::from_bytes("a file.bin", &data, pl, vec![], vec![]).unwrap();
        (data, meta)
    }

    #[test]
    fn round_trips_through_bytes() {
        let (_, meta) = sample(100_000, 16384);
        let again = Metainfo::from_bytes(&meta.bytes).unwrap();
        assert_eq!(again.info_hash_v2, meta.info_hash_v2);
        assert_eq!(again.piece_count(), 7);
        let last = PieceSpan {
            file: 0,
            offset: 98304,
            len: 1696,
        };
        assert_eq!(again.piece(PieceIndex(6)), Some(last));
        assert_eq!(again.piece(PieceIndex(7)), None);
    }

    #[test]
    fn rejects_a_tampered_piece_layer() {
        let (_, meta) = sample(100_000, 16384);
        let mut bytes = meta.bytes.to_vec();
        let layer_at = bytes
            .windows(12)
            .position(|w| w == b"piece layers")
            .unwrap();
        bytes[layer_at + 60] ^= 1;
        assert!(Metainfo::from_bytes(&bytes).is_err());
    }

    #[test]
    fn trackers_and_web_seeds_round_trip_without_changing_the_info_hash() {
        let (data, plain) = sample(40_000, 16384);
        let pl = plain.piece_length;
        let trackers = vec![
            "http://a/announce".to_owned(),
            "http://b/announce".to_owned(),
        ];
        let seeds = vec!["http://a/files/".to_owned()];
        let meta =
            create::from_bytes("a file.bin", &data, pl, trackers.clone(), seeds.clone()).unwrap();
        let again = Metainfo::from_bytes(&meta.bytes).unwrap();
        assert_eq!(again.trackers, trackers);
        assert_eq!(again.url_list, seeds);
        assert_eq!(again.info_hash_v2, plain.info_hash_v2);
    }

    #[test]
    fn rejects_unsafe_names() {
        for bad in ["", ".", "..", "a/b", "a\\b", "nul\0"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("ünïcode name.txt").is_ok());
    }

    #[test]
    fn a_folder_round_trips_and_maps_pieces_to_files() {
        let pl = PieceLength::new(16384).unwrap();
        let a: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let b = b"tail".to_vec();
        let layer = |data: &[u8]| -> Vec<Hash256> {
            data.chunks(16384)
                .map(|p| merkle::piece_hash(p, pl, data.len() as u64))
                .collect()
        };
        let spec = |path: &str, data: &[u8]| FileSpec {
            path: path.split('/').map(String::from).collect(),
            length: data.len() as u64,
            executable: false,
            pieces_root: (!data.is_empty()).then(|| merkle::pieces_root(&layer(data), pl)),
        };
        let content = Content {
            name: "folder <x>",
            is_folder: true,
            files: vec![
                (spec("a/big.bin", &a), layer(&a)),
                (spec("a/empty", b""), vec![]),
                (spec("b.txt", &b), layer(&b)),
            ],
            piece_length: pl,
            v1_pieces: vec![[0; 20]; 4],
        };
        let meta = content.torrent(&[], &[]).unwrap();
        let again = Metainfo::from_bytes(&meta.bytes).unwrap();
        assert!(again.is_folder);
        assert_eq!(again.length, 40_004);
        assert_eq!(again.piece_count(), 4);
        let span = |file, offset, len| Some(PieceSpan { file, offset, len });
        assert_eq!(again.piece(PieceIndex(2)), span(0, 32768, 40_000 - 32768));
        assert_eq!(again.piece(PieceIndex(3)), span(2, 0, 4));
        assert!(again.verify_piece(PieceIndex(3), b"tail"));
        assert!(!again.verify_piece(PieceIndex(3), b"tall"));
        assert!(again.verify_piece(PieceIndex(1), &a[16384..32768]));
    }

    #[test]
    fn a_v1_layout_without_pad_files_is_refused() {
        // Pieces running across files cannot be served or verified as slices of one file.
        let pl = PieceLength::new(16384).unwrap();
        let spec = |path: &str| FileSpec {
            path: vec![path.to_owned()],
            length: 100,
            executable: false,
            pieces_root: Some(merkle::piece_hash(&[0; 100], pl, 100)),
        };
        let files = layout::number(vec![spec("a"), spec("b")], pl);
        let info = Value::Dict(BTreeMap::from([
            (b"file tree".to_vec(), layout::file_tree(&files)),
            (b"files".to_vec(), layout::v1_files(&files, pl, false)),
            (b"meta version".to_vec(), Value::Int(2)),
            (b"name".to_vec(), Value::bytes("unpadded")),
            (b"piece length".to_vec(), Value::Int(16384)),
            (b"pieces".to_vec(), Value::Bytes(vec![0; 40])),
        ]));
        let bytes = torrent_dict(info, None, &[], &[]).encode();
        let err = Metainfo::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, MetainfoError::Unaligned(path) if path == "b"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Metainfo::from_bytes(&bytes);
        }
    }
}
