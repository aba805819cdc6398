//! The properties the fuzz targets (tests/fuzz) and the corpus replay test check, in one place
//! so both exercise exactly the same code.

use crate::bencode;
use crate::metainfo::Metainfo;

/// Bencode and metainfo decoding never panic; what decodes re-encodes to the same bytes, and a
/// parsed torrent parses again to the same info-hashes.
pub fn metainfo(data: &[u8]) {
    if let Ok(decoded) = bencode::decode(data) {
        assert_eq!(decoded.value.encode(), data, "bencode round trip");
    }
    if let Ok(meta) = Metainfo::from_bytes(data) {
        let again = Metainfo::from_bytes(&meta.bytes).expect("a parsed torrent parses again");
        assert_eq!(again.info_hash_v2, meta.info_hash_v2);
        assert_eq!(again.info_hash_v1, meta.info_hash_v1);
    }
}

/// The BEP 3 announce and BEP 48 scrape parsers, magnet URIs and Range headers never panic, and
/// a resolved range lies inside the representation.
pub fn tracker_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::tracker::bep3::parse_announce(text);
    let _ = crate::tracker::bep3::parse_scrape(text);
    let _ = crate::magnet::parse(text);
    let _ = crate::types::SeederUrl::parse(text);
    for length in [1, 1000, u64::MAX / 2] {
        if let crate::server::range::RangeOutcome::Partial { start, len } =
            crate::server::range::resolve(Some(text), length)
        {
            assert!(len >= 1 && start.checked_add(len).is_some_and(|end| end <= length));
        }
    }
}
