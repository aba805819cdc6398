//! Magnet URIs (BEP 9, BEP 53 for v2): built for every torrent we list, parsed by `download`.

use data_encoding::BASE32_NOPAD;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::metainfo::Metainfo;
use crate::types::{InfoHash, InfoHashV1};

/// Characters escaped in magnet parameter values: everything but unreserved ones.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `magnet:?xt=urn:btih:<v1>&xt=urn:btmh:1220<v2>&dn=<name>&tr=<tracker>...&ws=<web seed>...`
pub fn build(meta: &Metainfo) -> String {
    let mut uri = format!(
        "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn={}",
        meta.info_hash_v1,
        meta.info_hash_v2,
        utf8_percent_encode(&meta.name, VALUE)
    );
    for tracker in &meta.trackers {
        uri.push_str(&format!("&tr={}", utf8_percent_encode(tracker, VALUE)));
    }
    for seed in &meta.url_list {
        uri.push_str(&format!("&ws={}", utf8_percent_encode(seed, VALUE)));
    }
    uri
}

/// What a magnet URI names and where it says to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v2 hash when present (the canonical id), else the v1 hash.
    pub info_hash: InfoHash,
    pub name: Option<String>,
    pub trackers: Vec<String>,
    pub web_seeds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet URI (expected magnet:?...)")]
    NotMagnet,
    #[error("magnet URI has no usable xt=urn:btih or xt=urn:btmh info-hash")]
    NoHash,
}

pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
    let query = uri.strip_prefix("magnet:?").ok_or(MagnetError::NotMagnet)?;
    let (mut v1, mut v2, mut name) = (None, None, None);
    let (mut trackers, mut web_seeds) = (Vec::new(), Vec::new());
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "xt" => {
                if let Some(hash) = value.strip_prefix("urn:btih:") {
                    v1 = v1.or_else(|| parse_btih(hash));
                } else if let Some(hash) = value.strip_prefix("urn:btmh:1220") {
                    v2 = v2.or_else(|| match InfoHash::parse(hash) {
                        Ok(InfoHash::V2(h)) => Some(h),
                        _ => None,
                    });
                }
            }
            "dn" => name = Some(value),
            "tr" => trackers.push(value),
            "ws" => web_seeds.push(value),
            _ => {}
        }
    }
    let info_hash = v2
        .map(InfoHash::V2)
        .or(v1.map(InfoHash::V1))
        .ok_or(MagnetError::NoHash)?;
    Ok(Magnet {
        info_hash,
        name,
        trackers,
        web_seeds,
    })
}

/// A btih is 40 hex characters or 32 base32 characters (RFC 4648, as older clients write it).
fn parse_btih(s: &str) -> Option<InfoHashV1> {
    match InfoHash::parse(s) {
        Ok(InfoHash::V1(h)) => return Some(h),
        Ok(InfoHash::V2(_)) => return None,
        Err(_) => {}
    }
    if s.len() != 32 {
        return None;
    }
    // Clients write it in either case; RFC 4648's alphabet is upper case.
    let bytes = BASE32_NOPAD
        .decode(s.to_ascii_uppercase().as_bytes())
        .ok()?;
    bytes.try_into().ok().map(InfoHashV1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::create;
    use crate::types::PieceLength;
    use proptest::prelude::*;

    #[test]
    fn built_magnets_parse_back() {
        let meta = create::from_bytes(
            "a b&c.bin",
            b"data",
            PieceLength::new(16384).unwrap(),
            vec!["http://t.example/announce?x=1".into()],
            vec!["http://s.example/files/".into()],
        )
        .unwrap();
        let uri = build(&meta);
        assert!(uri.starts_with(&format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}",
            meta.info_hash_v1, meta.info_hash_v2
        )));
        let parsed = parse(&uri).unwrap();
        assert_eq!(parsed.info_hash, InfoHash::V2(meta.info_hash_v2));
        assert_eq!(parsed.name.as_deref(), Some("a b&c.bin"));
        assert_eq!(parsed.trackers, meta.trackers);
        assert_eq!(parsed.web_seeds, meta.url_list);
    }

    #[test]
    fn v1_only_magnets_in_hex_or_base32() {
        let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
        let m = parse(&format!("magnet:?xt=urn:btih:{hex}&dn=x")).unwrap();
        assert_eq!(m.info_hash.to_string(), hex);
        let b32 = parse("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").unwrap();
        assert_eq!(b32.info_hash.to_string(), hex);
        assert_eq!(parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(parse("magnet:?dn=x"), Err(MagnetError::NoHash));
    }

    #[test]
    fn base32_btih_is_read_in_any_case_and_nothing_else() {
        let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
        for b32 in [
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK",
            "yex6dqdlxisuvhoj6um3gnnkpqjwpkek",
            "yEx6DqDlXiSuVhOj6Um3GnNkPqJwPkEk",
        ] {
            assert_eq!(parse_btih(b32).map(|h| h.to_string()).as_deref(), Some(hex));
        }
        for bad in [
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE",   // 31 characters
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEKA", // 33
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE=",  // padding
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE1",  // not in the alphabet
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE8",
            "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPK\u{e9}", // 32 bytes, one of them not ASCII
            "YEX6DQDLXISUVHOJ6UM3GNNK QJWPKEK",
        ] {
            assert_eq!(parse_btih(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_v1_hash_in_base32_of_any_case_parses_back(
            hash in any::<[u8; 20]>(),
            lower in proptest::collection::vec(any::<bool>(), 32),
        ) {
            let b32: String = BASE32_NOPAD
                .encode(&hash)
                .chars()
                .zip(lower)
                .map(|(c, lower)| if lower { c.to_ascii_lowercase() } else { c })
                .collect();
            prop_assert_eq!(parse_btih(&b32), Some(InfoHashV1(hash)));
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
            let _ = parse(&format!("magnet:?{s}"));
        }
    }
}
