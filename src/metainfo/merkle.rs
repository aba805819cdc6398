//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, padded with zero hashes to a power of two.
//!
//! Pure functions shared by torrent creation, metainfo validation and chunk verification.

use sha2::{Digest, Sha256};

use crate::types::{PieceLength, BLOCK_SIZE};

pub type Hash256 = [u8; 32];

fn hash_pair(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` leaves that all lie past the end of the file.
pub fn pad_hash(height: u32) -> Hash256 {
    (0..height).fold([0u8; 32], |pad, _| hash_pair(&pad, &pad))
}

/// The root over `layer`, extended to `width` nodes (a power of two) with `pad` (the root of an
/// all-padding subtree at this layer's height).
pub fn root(layer: &[Hash256], width: usize, mut pad: Hash256) -> Hash256 {
    debug_assert!(width.is_power_of_two() && width >= layer.len());
    let mut nodes = layer.to_vec();
    let mut width = width;
    while width > 1 {
        nodes = nodes
            .chunks(2)
            .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pad)))
            .collect();
        pad = hash_pair(&pad, &pad);
        width /= 2;
    }
    nodes.first().copied().unwrap_or(pad)
}

/// SHA-256 of each 16 KiB block of `data` (the last one may be short).
pub fn block_hashes(data: &[u8]) -> Vec<Hash256> {
    data.chunks(BLOCK_SIZE as usize)
        .map(|block| Sha256::digest(block).into())
        .collect()
}

/// The number of pieces of a file of `length` bytes.
pub fn piece_count(length: u64, piece_length: PieceLength) -> u64 {
    length.div_ceil(piece_length.get())
}

/// The number of leaves a piece's subtree is padded to. A file of one piece is its own tree, sized
/// by its blocks alone; in a longer file every piece spans a full `blocks_per_piece` subtree.
fn piece_width(leaves: usize, piece_length: PieceLength, file_length: u64) -> usize {
    if piece_count(file_length, piece_length) <= 1 {
        leaves.next_power_of_two()
    } else {
        piece_length.blocks_per_piece() as usize
    }
}

/// The BEP 52 hash of one piece from its block hashes; for a one-piece file this is the pieces root.
pub fn piece_hash_from_blocks(
    leaves: &[Hash256],
    piece_length: PieceLength,
    file_length: u64,
) -> Hash256 {
    root(
        leaves,
        piece_width(leaves.len(), piece_length, file_length),
        [0; 32],
    )
}

/// The BEP 52 hash of one piece's bytes: what a downloader checks a chunk against.
pub fn piece_hash(data: &[u8], piece_length: PieceLength, file_length: u64) -> Hash256 {
    piece_hash_from_blocks(&block_hashes(data), piece_length, file_length)
}

/// The file's `pieces root` from its piece layer.
pub fn pieces_root(piece_layer: &[Hash256], piece_length: PieceLength) -> Hash256 {
    match piece_layer {
        [only] => *only,
        _ => root(
            piece_layer,
            piece_layer.len().next_power_of_two(),
            pad_hash(piece_length.blocks_per_piece().trailing_zeros()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pl(n: u64) -> PieceLength {
        PieceLength::new(n).unwrap()
    }

    #[test]
    fn one_block_file_root_is_the_block_hash() {
        let data = b"hello";
        let expected: Hash256 = Sha256::digest(data).into();
        assert_eq!(piece_hash(data, pl(16384), 5), expected);
    }

    #[test]
    fn piece_layer_root_equals_the_root_over_all_blocks() {
        // 5 blocks with 2 blocks per piece: 3 pieces, the last one short.
        let data: Vec<u8> = (0..5 * 16384 - 100).map(|i| (i % 251) as u8).collect();
        let piece_len = pl(32768);
        let layer: Vec<Hash256> = data
            .chunks(32768)
            .map(|p| piece_hash(p, piece_len, data.len() as u64))
            .collect();
        let all_blocks = block_hashes(&data);
        let direct = root(&all_blocks, 8, [0; 32]);
        assert_eq!(pieces_root(&layer, piece_len), direct);
    }

    #[test]
    fn pad_hash_grows_by_hashing_pairs() {
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(1), hash_pair(&[0; 32], &[0; 32]));
    }
}
