//! BitTorrent metainfo (.torrent files): single-file hybrid v1 + v2 torrents (BEP 3 + BEP 52).
//!
//! [`Metainfo`] is the one in-memory form, built from hashes ([`Metainfo::new`]) or parsed and
//! validated from bytes ([`Metainfo::from_bytes`]). The info dictionary holds only the keys BEP 3
//! and BEP 52 require, so a file and a piece length always give the same pair of info-hashes.

pub mod create;
pub mod merkle;

use std::collections::BTreeMap;
use std::sync::Arc;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::bencode::{self, Value};
use crate::types::{InfoHash, InfoHashV1, InfoHashV2, PieceIndex, PieceLength};
use merkle::Hash256;

/// A parsed, validated single-file hybrid torrent.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub name: String,
    pub length: u64,
    pub piece_length: PieceLength,
    /// SHA-1 of each piece (v1 `pieces`).
    pub v1_pieces: Vec<[u8; 20]>,
    /// BEP 52 hash of each piece: the piece layer, or just the pieces root for a one-piece file.
    pub piece_hashes: Vec<Hash256>,
    pub pieces_root: Hash256,
    /// Tracker announce URLs: the first is `announce`; more make a BEP 12 `announce-list`.
    pub trackers: Vec<String>,
    /// BEP 19 web seeds.
    pub url_list: Vec<String>,
    pub info_hash_v1: InfoHashV1,
    pub info_hash_v2: InfoHashV2,
    /// The bencoded .torrent, as served by `GET /torrents/{info_hash}`.
    pub bytes: Arc<[u8]>,
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
    #[error(transparent)]
    PieceLength(#[from] crate::types::PieceLengthError),
    #[error("not a hybrid v1 + v2 torrent (meta version 2 with v1 pieces): {0}")]
    NotHybrid(&'static str),
    #[error("only single-file torrents are supported; this one has a directory tree")]
    MultiFile,
    #[error("an empty file cannot be shared: BEP 52 gives it no pieces root")]
    EmptyFile,
    #[error("{what}: expected {expected}, found {found}")]
    Count {
        what: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("the piece layer does not hash to the file's pieces root")]
    PieceLayerMismatch,
}

impl Metainfo {
    /// Builds a torrent from the hashes of one file.
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
        let pieces_root = merkle::pieces_root(&piece_hashes, piece_length);
        let info = info_dict(name, length, piece_length, &v1_pieces, Some(&pieces_root));
        let layers = (piece_hashes.len() > 1).then(|| {
            Value::Dict(BTreeMap::from([(
                pieces_root.to_vec(),
                Value::Bytes(piece_hashes.concat()),
            )]))
        });
        let top = torrent_dict(info, layers, &trackers, &url_list);
        Self::from_bytes(&top.encode())
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
        if info.get("files").is_some() {
            return Err(MetainfoError::MultiFile);
        }
        let length = info
            .get("length")
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(MetainfoError::Key("length"))?;
        if length == 0 {
            return Err(MetainfoError::EmptyFile);
        }
        let pieces = merkle::piece_count(length, piece_length);

        let v1 = info
            .get("pieces")
            .and_then(Value::as_bytes)
            .ok_or(MetainfoError::NotHybrid("no v1 'pieces'"))?;
        let v1_pieces = fixed_chunks::<20>(v1, "v1 'pieces' bytes", pieces * 20)?;

        let tree = info
            .get("file tree")
            .and_then(Value::as_dict)
            .ok_or(MetainfoError::Key("file tree"))?;
        if tree.len() != 1 {
            return Err(MetainfoError::MultiFile);
        }
        let leaf = tree
            .get(name.as_bytes())
            .and_then(|entry| entry.as_dict()?.get(&b""[..]))
            .ok_or(MetainfoError::MultiFile)?;
        if leaf.get("length").and_then(Value::as_int) != i64::try_from(length).ok() {
            return Err(MetainfoError::Key("file tree length"));
        }
        let pieces_root: Hash256 = leaf
            .get("pieces root")
            .and_then(Value::as_bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or(MetainfoError::Key("pieces root"))?;

        let piece_hashes = if pieces == 1 {
            vec![pieces_root]
        } else {
            let layer = top
                .get("piece layers")
                .and_then(|layers| layers.as_dict()?.get(&pieces_root[..]))
                .and_then(Value::as_bytes)
                .ok_or(MetainfoError::Key("piece layers"))?;
            let hashes = fixed_chunks::<32>(layer, "piece layer bytes", pieces * 32)?;
            if merkle::pieces_root(&hashes, piece_length) != pieces_root {
                return Err(MetainfoError::PieceLayerMismatch);
            }
            hashes
        };

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
            length,
            piece_length,
            v1_pieces,
            piece_hashes,
            pieces_root,
            trackers,
            url_list,
            info_hash_v1: InfoHashV1(Sha1::digest(raw_info).into()),
            info_hash_v2: InfoHashV2(Sha256::digest(raw_info).into()),
            bytes: bytes.into(),
        })
    }

    pub fn piece_count(&self) -> u32 {
        // Validated at parse time: the count matches `pieces`, whose length fits in memory.
        self.piece_hashes.len() as u32
    }

    /// Byte offset and length of a piece, or `None` past the last piece.
    pub fn piece_span(&self, index: PieceIndex) -> Option<(u64, u64)> {
        if index.0 >= self.piece_count() {
            return None;
        }
        let start = u64::from(index.0) * self.piece_length.get();
        Some((start, self.piece_length.get().min(self.length - start)))
    }

    /// Whether `hash` (either version) names this torrent.
    pub fn is_named_by(&self, hash: &InfoHash) -> bool {
        match hash {
            InfoHash::V1(h) => *h == self.info_hash_v1,
            InfoHash::V2(h) => *h == self.info_hash_v2,
        }
    }
}

/// The info dictionary: BEP 3 keys, plus the BEP 52 ones when `pieces_root` is given (hybrid).
fn info_dict(
    name: &str,
    length: u64,
    piece_length: PieceLength,
    v1_pieces: &[[u8; 20]],
    pieces_root: Option<&Hash256>,
) -> Value {
    let int = |n: u64| Value::Int(i64::try_from(n).expect("lengths fit in i64"));
    let mut info = BTreeMap::from([
        (b"length".to_vec(), int(length)),
        (b"name".to_vec(), Value::bytes(name)),
        (b"piece length".to_vec(), int(piece_length.get())),
        (b"pieces".to_vec(), Value::Bytes(v1_pieces.concat())),
    ]);
    if let Some(root) = pieces_root {
        let file_leaf = Value::Dict(BTreeMap::from([
            (b"length".to_vec(), int(length)),
            (b"pieces root".to_vec(), Value::bytes(root.to_vec())),
        ]));
        let file_tree = Value::Dict(BTreeMap::from([(
            name.as_bytes().to_vec(),
            Value::Dict(BTreeMap::from([(Vec::new(), file_leaf)])),
        )]));
        info.insert(b"file tree".to_vec(), file_tree);
        info.insert(b"meta version".to_vec(), Value::Int(2));
    }
    Value::Dict(info)
}

/// The whole .torrent around an info dictionary: trackers (BEP 12 announce-list when several),
/// BEP 52 piece layers, BEP 19 web seeds.
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
    if let Some(layers) = piece_layers {
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

impl V1Torrent {
    pub fn new(
        name: &str,
        length: u64,
        piece_length: PieceLength,
        v1_pieces: &[[u8; 20]],
        trackers: &[String],
        url_list: &[String],
    ) -> Result<Self, MetainfoError> {
        validate_name(name)?;
        if length == 0 {
            return Err(MetainfoError::EmptyFile);
        }
        let info = info_dict(name, length, piece_length, v1_pieces, None);
        let info_hash_v1 = InfoHashV1(Sha1::digest(info.encode()).into());
        Ok(V1Torrent {
            name: name.to_owned(),
            bytes: torrent_dict(info, None, trackers, url_list).encode(),
            info_hash_v1,
        })
    }
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

/// A torrent name becomes a file name on the downloader's disk, so it must be exactly one safe
/// path component.
pub fn validate_name(name: &str) -> Result<(), MetainfoError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.len() > 255;
    if bad {
        Err(MetainfoError::Name(name.to_owned()))
    } else {
        Ok(())
    }
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
        assert_eq!(again.piece_span(PieceIndex(6)), Some((98304, 1696)));
        assert_eq!(again.piece_span(PieceIndex(7)), None);
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Metainfo::from_bytes(&bytes);
        }
    }
}
