//! How a torrent's files sit in its pieces, and their two encodings (BEP 3 `files` with BEP 47
//! pad files, BEP 52 `file tree`).
//!
//! Invariants, for every torrent this module encodes or accepts:
//! - files are in canonical order: byte-wise by path component (the order of the BEP 52 file
//!   tree, whose keys are sorted), which is also libtorrent's order for v2 and hybrid torrents;
//! - every non-empty file starts on a piece boundary, so a piece never spans two files: after
//!   each non-empty file whose length is not a multiple of the piece length comes a pad file of
//!   zeros up to the boundary (libtorrent 2.0 puts one after the last file too; a single-file
//!   torrent has none);
//! - every path component is one safe file name, paths are at most [`MAX_DEPTH`] deep, at most
//!   [`MAX_FILES`] files, and no two paths are the same when compared case-insensitively (so a
//!   torrent unpacks to the same tree on every file system).

use std::collections::{BTreeMap, HashSet};

use super::merkle::{self, Hash256};
use super::MetainfoError;
use crate::bencode::Value;
use crate::types::PieceLength;

/// Most files in one torrent. The bencode decoder's value limit allows about as many.
pub const MAX_FILES: usize = 100_000;
/// Most path components of one file inside a torrent.
pub const MAX_DEPTH: usize = 32;
/// A path component: at most this many bytes (the common file-system limit).
const MAX_COMPONENT: usize = 255;

/// One file of a torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentFile {
    /// Path components inside the torrent. A single-file torrent's one file is `[name]`.
    pub path: Vec<String>,
    pub length: u64,
    /// BEP 47 attribute `x`: the file was executable where it was created.
    pub executable: bool,
    /// BEP 52 `pieces root`; `None` exactly when the file is empty.
    pub pieces_root: Option<Hash256>,
    /// Index of its first piece among the torrent's pieces (for an empty file: the next file's).
    pub first_piece: u32,
}

impl TorrentFile {
    /// Its pieces: `first_piece..first_piece + piece_count`.
    pub fn piece_count(&self, piece_length: PieceLength) -> u32 {
        // Bounded by the torrent's validated piece count; saturating for a hostile one, which
        // that validation then refuses.
        u32::try_from(merkle::piece_count(self.length, piece_length)).unwrap_or(u32::MAX)
    }

    /// The path inside the torrent, `/`-separated (how web seeds and listings name it).
    pub fn path_string(&self) -> String {
        self.path.join("/")
    }
}

/// A file before its pieces are numbered: what creation and parsing both produce.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: Vec<String>,
    pub length: u64,
    pub executable: bool,
    pub pieces_root: Option<Hash256>,
}

/// Whether a pad file follows a file of `length` bytes in a torrent of `file_count` files.
pub fn padded(length: u64, piece_length: PieceLength, file_count: usize) -> bool {
    file_count > 1 && !length.is_multiple_of(piece_length.get())
}

/// Numbers the pieces of files given in canonical order.
pub fn number(specs: Vec<FileSpec>, piece_length: PieceLength) -> Vec<TorrentFile> {
    let mut next = 0u32;
    specs
        .into_iter()
        .map(|spec| {
            let file = TorrentFile {
                path: spec.path,
                length: spec.length,
                executable: spec.executable,
                pieces_root: spec.pieces_root,
                first_piece: next,
            };
            // Saturating: a hostile torrent's counts are refused after numbering.
            next = next.saturating_add(file.piece_count(piece_length));
            file
        })
        .collect()
}

/// A path component must be exactly one safe file name: it becomes a name on the downloader's
/// disk.
pub fn validate_component(name: &str) -> Result<(), MetainfoError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.len() > MAX_COMPONENT;
    if bad {
        Err(MetainfoError::Name(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Checks the rules of the module doc on a whole file list (canonical order included), and
/// that exactly the non-empty files have a pieces root.
pub fn validate_files(specs: &[FileSpec]) -> Result<(), MetainfoError> {
    validate_paths(specs.iter().map(|s| &s.path[..]))?;
    match specs
        .iter()
        .find(|s| (s.length == 0) != s.pieces_root.is_none())
    {
        Some(spec) => Err(MetainfoError::Path {
            path: spec.path.join("/"),
            reason: "a pieces root must be given exactly for a non-empty file",
        }),
        None => Ok(()),
    }
}

/// Checks the paths of a file list against the rules of the module doc (canonical order
/// included), before anything is hashed.
pub fn validate_paths<'a>(
    paths: impl ExactSizeIterator<Item = &'a [String]>,
) -> Result<(), MetainfoError> {
    if paths.len() == 0 {
        return Err(MetainfoError::Path {
            path: String::new(),
            reason: "the torrent has no files",
        });
    }
    if paths.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(paths.len()));
    }
    let mut seen: HashSet<String> = HashSet::with_capacity(paths.len());
    let mut dirs: HashSet<String> = HashSet::new();
    let mut previous: Option<&[String]> = None;
    for path in paths {
        let shown = path.join("/");
        let refuse = |reason| MetainfoError::Path {
            path: shown.clone(),
            reason,
        };
        if path.is_empty() {
            return Err(refuse("a file with an empty path"));
        }
        if path.len() > MAX_DEPTH {
            return Err(refuse("deeper than 32 directories"));
        }
        for part in path {
            validate_component(part).map_err(|_| refuse("a path component is not one safe file name (empty, '.', '..', '/', '\\', NUL or over 255 bytes)"))?;
        }
        if previous.is_some_and(|p| p >= path) {
            return Err(refuse(
                "files are not in canonical (sorted) order, or a path repeats",
            ));
        }
        previous = Some(path);
        let folded = shown.to_lowercase();
        if dirs.contains(&folded) || !seen.insert(folded.clone()) {
            return Err(refuse(
                "another file has the same path (compared case-insensitively)",
            ));
        }
        let mut prefix = String::new();
        for part in &path[..path.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(&part.to_lowercase());
            if seen.contains(&prefix) {
                return Err(refuse(
                    "a directory on its path is also a file (compared case-insensitively)",
                ));
            }
            dirs.insert(prefix.clone());
        }
    }
    Ok(())
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).expect("lengths fit in i64"))
}

/// The BEP 52 leaf of one file: `{"": {attr?, length, pieces root?}}`.
fn leaf(spec_length: u64, executable: bool, root: Option<&Hash256>) -> Value {
    let mut fields = BTreeMap::from([(b"length".to_vec(), int(spec_length))]);
    if executable {
        fields.insert(b"attr".to_vec(), Value::bytes("x"));
    }
    if let Some(root) = root {
        fields.insert(b"pieces root".to_vec(), Value::bytes(root.to_vec()));
    }
    Value::Dict(BTreeMap::from([(Vec::new(), Value::Dict(fields))]))
}

/// The BEP 52 `file tree` of files. For a single-file torrent pass `[name]` as the one path.
pub fn file_tree(files: &[TorrentFile]) -> Value {
    let mut tree = BTreeMap::new();
    for file in files {
        let mut node = &mut tree;
        let (last, dirs) = file
            .path
            .split_last()
            .expect("validated: paths are not empty");
        for dir in dirs {
            let child = node
                .entry(dir.as_bytes().to_vec())
                .or_insert_with(|| Value::Dict(BTreeMap::new()));
            node = match child {
                Value::Dict(d) => d,
                _ => unreachable!("validated: no file is also a directory"),
            };
        }
        node.insert(
            last.as_bytes().to_vec(),
            leaf(file.length, file.executable, file.pieces_root.as_ref()),
        );
    }
    Value::Dict(tree)
}

/// The BEP 3 `files` list of a folder, with BEP 47 pad files when `pad` (hybrid torrents).
pub fn v1_files(files: &[TorrentFile], piece_length: PieceLength, pad: bool) -> Value {
    let mut list = Vec::with_capacity(files.len() * 2);
    for file in files {
        let mut entry = BTreeMap::from([
            (b"length".to_vec(), int(file.length)),
            (
                b"path".to_vec(),
                Value::List(file.path.iter().map(|p| Value::bytes(p.as_str())).collect()),
            ),
        ]);
        if file.executable {
            entry.insert(b"attr".to_vec(), Value::bytes("x"));
        }
        list.push(Value::Dict(entry));
        if pad && padded(file.length, piece_length, files.len()) {
            let size = piece_length.get() - file.length % piece_length.get();
            list.push(Value::Dict(BTreeMap::from([
                (b"attr".to_vec(), Value::bytes("p")),
                (b"length".to_vec(), int(size)),
                (
                    b"path".to_vec(),
                    Value::List(vec![Value::bytes(".pad"), Value::bytes(size.to_string())]),
                ),
            ])));
        }
    }
    Value::List(list)
}

/// Reads a BEP 52 `file tree` into files in canonical order (a dictionary's order).
pub fn parse_file_tree(tree: &BTreeMap<Vec<u8>, Value>) -> Result<Vec<FileSpec>, MetainfoError> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk_tree(tree, &mut path, &mut out)?;
    Ok(out)
}

fn walk_tree(
    node: &BTreeMap<Vec<u8>, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<FileSpec>,
) -> Result<(), MetainfoError> {
    for (name, child) in node {
        let shown = || {
            let mut p = path.join("/");
            p.push('/');
            p.push_str(&String::from_utf8_lossy(name));
            p
        };
        let name = std::str::from_utf8(name).map_err(|_| MetainfoError::Path {
            path: shown(),
            reason: "a path component is not UTF-8",
        })?;
        if path.len() >= MAX_DEPTH {
            return Err(MetainfoError::Path {
                path: shown(),
                reason: "deeper than 32 directories",
            });
        }
        if out.len() > MAX_FILES {
            return Err(MetainfoError::TooManyFiles(out.len()));
        }
        let child = child.as_dict().ok_or(MetainfoError::Key("file tree"))?;
        path.push(name.to_owned());
        match child.get(&b""[..]) {
            Some(leaf) if child.len() == 1 => out.push(parse_leaf(leaf, path)?),
            Some(_) => {
                return Err(MetainfoError::Path {
                    path: path.join("/"),
                    reason: "a file tree node is both a file and a directory",
                })
            }
            None if child.is_empty() => {
                return Err(MetainfoError::Path {
                    path: path.join("/"),
                    reason: "an empty directory node in the file tree",
                })
            }
            None => walk_tree(child, path, out)?,
        }
        path.pop();
    }
    Ok(())
}

fn parse_leaf(leaf: &Value, path: &[String]) -> Result<FileSpec, MetainfoError> {
    let length = leaf
        .get("length")
        .and_then(Value::as_int)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(MetainfoError::Key("file tree length"))?;
    let attr = leaf.get("attr").and_then(Value::as_bytes).unwrap_or(b"");
    check_attr(attr, path)?;
    let pieces_root = match leaf.get("pieces root") {
        None => None,
        Some(root) => Some(
            root.as_bytes()
                .and_then(|b| b.try_into().ok())
                .ok_or(MetainfoError::Key("pieces root"))?,
        ),
    };
    Ok(FileSpec {
        path: path.to_vec(),
        length,
        executable: attr.contains(&b'x'),
        pieces_root,
    })
}

/// Symbolic links (`l`) would point outside what was verified; pad files do not belong in a
/// file tree. Hidden (`h`) and executable (`x`) are fine.
fn check_attr(attr: &[u8], path: &[String]) -> Result<(), MetainfoError> {
    if attr.contains(&b'l') || attr.contains(&b'p') {
        return Err(MetainfoError::Path {
            path: path.join("/"),
            reason: "symbolic links and pad files are not allowed in a file tree",
        });
    }
    Ok(())
}

/// Checks a BEP 3 `files` list against the files read from the file tree: the same files in
/// the same order, each non-empty one starting on a piece boundary (pad files may differ from
/// ours, but must keep that). Returns the v1 content length (pads included).
pub fn check_v1_files(
    list: &[Value],
    files: &[FileSpec],
    piece_length: PieceLength,
) -> Result<u64, MetainfoError> {
    let mut offset = 0u64;
    let mut expected = files.iter();
    for entry in list {
        let length = entry
            .get("length")
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(MetainfoError::Key("files length"))?;
        let attr = entry.get("attr").and_then(Value::as_bytes).unwrap_or(b"");
        if attr.contains(&b'p') {
            offset = offset
                .checked_add(length)
                .ok_or(MetainfoError::Key("files length"))?;
            continue;
        }
        let path: Option<Vec<&str>> = entry
            .get("path")
            .and_then(Value::as_list)
            .map(|parts| parts.iter().map(Value::as_str).collect())
            .unwrap_or(None);
        let path = path.ok_or(MetainfoError::Key("files path"))?;
        let Some(file) = expected.next() else {
            return Err(MetainfoError::V1Mismatch(path.join("/")));
        };
        if file.path != path || file.length != length {
            return Err(MetainfoError::V1Mismatch(path.join("/")));
        }
        if length > 0 && !offset.is_multiple_of(piece_length.get()) {
            return Err(MetainfoError::Unaligned(path.join("/")));
        }
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::Key("files length"))?;
    }
    if let Some(missing) = expected.next() {
        return Err(MetainfoError::V1Mismatch(missing.path.join("/")));
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, length: u64) -> FileSpec {
        FileSpec {
            path: path.split('/').map(String::from).collect(),
            length,
            executable: false,
            pieces_root: (length > 0).then_some([1; 32]),
        }
    }

    #[test]
    fn canonical_order_is_by_component() {
        let good = [
            spec("Z/q", 1),
            spec("a b/x", 1),
            spec("sub/deep/y", 1),
            spec("sub/x", 1),
            spec("sub.txt", 1),
        ];
        assert!(validate_files(&good).is_ok());
        let unsorted = [spec("sub.txt", 1), spec("sub/x", 1)];
        assert!(validate_files(&unsorted).is_err());
    }

    #[test]
    fn refuses_escapes_duplicates_and_depth() {
        for bad in [
            vec![spec("../x", 1)],
            vec![spec("a/./x", 1)],
            vec![spec("README", 1), spec("readme", 1)],
            vec![spec("Dir", 1), spec("dir/x", 1)],
            vec![spec("a/x", 1), spec("a/x", 1)],
            vec![spec(&["d"; 33].join("/"), 1)],
            vec![spec("a\\b", 1)],
        ] {
            assert!(validate_files(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pieces_are_numbered_across_files_skipping_empty_ones() {
        let pl = PieceLength::new(16384).unwrap();
        let files = number(vec![spec("a", 16385), spec("b", 0), spec("c", 1)], pl);
        let firsts: Vec<u32> = files.iter().map(|f| f.first_piece).collect();
        assert_eq!(firsts, [0, 2, 2]);
    }
}
