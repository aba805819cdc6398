//! Protocol newtypes parsed at the edge: info-hashes, piece indices and piece lengths.
//!
//! Handlers turn raw strings into these once; everything behind them works with typed values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A v2 info-hash (SHA-256 of the info dictionary): the canonical id of a torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV2(pub [u8; 32]);

/// A v1 info-hash (SHA-1 of the info dictionary), accepted wherever an info-hash is taken.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV1(pub [u8; 20]);

/// An info-hash as a client may give it: either version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InfoHash {
    V1(InfoHashV1),
    V2(InfoHashV2),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed info-hash {0:?}: expected 40 (v1) or 64 (v2) hexadecimal characters")]
pub struct InfoHashParseError(pub String);

impl InfoHash {
    /// Parses 40 or 64 hex characters (either case).
    pub fn parse(s: &str) -> Result<Self, InfoHashParseError> {
        let err = || InfoHashParseError(truncate_for_message(s));
        match s.len() {
            40 => {
                let mut bytes = [0u8; 20];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| err())?;
                Ok(InfoHash::V1(InfoHashV1(bytes)))
            }
            64 => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| err())?;
                Ok(InfoHash::V2(InfoHashV2(bytes)))
            }
            _ => Err(err()),
        }
    }
}

impl FromStr for InfoHash {
    type Err = InfoHashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `base` with one more path segment (percent-encoded), whether or not `base` ends in '/'.
pub fn join_url(base: &url::Url, segment: &str) -> url::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("http URLs have a path")
        .pop_if_empty()
        .push(segment);
    url
}

/// A tracker's base URL, given its base URL or its /announce URL.
pub fn tracker_base(mut url: url::Url) -> url::Url {
    let path = url.path().trim_end_matches('/');
    let base = path.strip_suffix("/announce").unwrap_or(path).to_owned();
    url.set_path(&base);
    url.set_query(None);
    url
}

/// Keeps error messages bounded when a client sends something huge.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

macro_rules! hex_display {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
hex_display!(InfoHashV1);
hex_display!(InfoHashV2);

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoHash::V1(h) => h.fmt(f),
            InfoHash::V2(h) => h.fmt(f),
        }
    }
}

impl<'de> Deserialize<'de> for InfoHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InfoHash::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The index of a piece (a chunk) within a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PieceIndex(pub u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed piece index {0:?}: expected a non-negative decimal number")]
pub struct PieceIndexParseError(pub String);

impl PieceIndex {
    pub fn parse(s: &str) -> Result<Self, PieceIndexParseError> {
        // u32::from_str accepts a leading '+'; a piece index is digits only.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PieceIndexParseError(truncate_for_message(s)));
        }
        s.parse()
            .map(PieceIndex)
            .map_err(|_| PieceIndexParseError(truncate_for_message(s)))
    }
}

/// A piece length: a power of two of at least 16 KiB (BEP 52).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PieceLength(u64);

/// The BEP 52 merkle block size; also the smallest piece length.
pub const BLOCK_SIZE: u64 = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid piece length {0}: must be a power of two of at least 16384 bytes (16 KiB)")]
pub struct PieceLengthError(pub u64);

impl PieceLength {
    /// The largest piece length accepted (1 GiB), so piece arithmetic never overflows `u32`/`usize`.
    pub const MAX: u64 = 1 << 30;

    pub fn new(bytes: u64) -> Result<Self, PieceLengthError> {
        if (BLOCK_SIZE..=Self::MAX).contains(&bytes) && bytes.is_power_of_two() {
            Ok(PieceLength(bytes))
        } else {
            Err(PieceLengthError(bytes))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// How many 16 KiB merkle blocks make one piece.
    pub fn blocks_per_piece(self) -> u64 {
        self.0 / BLOCK_SIZE
    }
}

/// A seeder's base URL as announced to the tracker: http(s), with a host, no credentials, query
/// or fragment, kept without a trailing '/'.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeederUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid seeder URL {0:?}: expected http(s)://HOST[:PORT][/PATH] with a host name or IPv4 address, no credentials, query or fragment")]
pub struct SeederUrlError(pub String);

/// The grammar of a seeder URL, exactly what the OpenAPI pattern for it says (see
/// `SEEDER_URL_PATTERN`): http(s), a host name whose labels start with a letter or a dotted IPv4
/// address, an optional port 1-65535, and a path of unreserved characters.
fn is_plain_http_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = authority
        .split_once(':')
        .map_or((authority, None), |(h, p)| (h, Some(p)));
    let label_ok = |l: &str| {
        let mut parts = l.split('-');
        let first = parts.next().unwrap_or("");
        first.starts_with(|c: char| c.is_ascii_alphabetic())
            && first.bytes().all(|b| b.is_ascii_alphanumeric())
            && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    let number_ok = |n: &str, max: u32| {
        !n.is_empty()
            && n.len() <= 5
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'))
            && n.parse::<u32>().is_ok_and(|v| v <= max)
    };
    let octets: Vec<&str> = host.split('.').collect();
    let host_ok = host.split('.').all(label_ok)
        || (octets.len() == 4 && octets.iter().all(|o| number_ok(o, 255)));
    let port_ok = port.is_none_or(|p| number_ok(p, 65535) && p != "0");
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@/-".contains(&b));
    host_ok && port_ok && path_ok
}

/// [`is_plain_http_url`] as a regular expression, for the OpenAPI document.
pub const SEEDER_URL_PATTERN: &str = concat!(
    "^https?://([A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(\\.[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)*",
    "|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9]))",
    "(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    "(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$"
);

impl SeederUrl {
    pub fn parse(s: &str) -> Result<Self, SeederUrlError> {
        let err = || SeederUrlError(truncate_for_message(s));
        if s.len() > 2048 || !is_plain_http_url(s) {
            return Err(err());
        }
        let url = url::Url::parse(s).map_err(|_| err())?;
        let acceptable = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && s.len() <= 2048;
        if !acceptable {
            return Err(err());
        }
        Ok(SeederUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, for resolution: a domain name, or an IP address literal.
    pub fn host(&self) -> url::Host<String> {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
            .expect("a parsed seeder URL has a host")
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .expect("http(s) URLs have a default port")
    }
}

/// Where an address sits, as far as who may be pointed at it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressClass {
    /// Reachable on the internet.
    Public,
    /// Private, link-local, carrier-grade NAT, unique-local, documentation or reserved: some
    /// network's internal hosts.
    Private,
    /// This machine (loopback, or the unspecified address, which connects to it).
    Loopback,
}

impl AddressClass {
    pub fn of(ip: std::net::IpAddr) -> Self {
        use std::net::IpAddr;
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_loopback() || v4.is_unspecified() || a == 0 {
                    AddressClass::Loopback
                } else if v4.is_private()
                    || v4.is_link_local()
                    || v4.is_broadcast()
                    || v4.is_documentation()
                    || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                    || a >= 240
                {
                    AddressClass::Private
                } else {
                    AddressClass::Public
                }
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None if v6.is_loopback() || v6.is_unspecified() => AddressClass::Loopback,
                None => {
                    let first = v6.segments()[0];
                    if (first & 0xfe00) == 0xfc00 // unique local
                        || (first & 0xffc0) == 0xfe80 // link-local
                        || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                    // documentation
                    {
                        AddressClass::Private
                    } else {
                        AddressClass::Public
                    }
                }
            },
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Private => "private",
            AddressClass::Loopback => "loopback",
        }
    }
}

impl fmt::Display for SeederUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_announce_url_becomes_its_base() {
        let url = url::Url::parse("http://t.example:8080/x/announce?a=1").unwrap();
        assert_eq!(tracker_base(url).as_str(), "http://t.example:8080/x");
    }
    use proptest::prelude::*;

    #[test]
    fn parses_both_info_hash_versions_in_any_case() {
        let v1 = InfoHash::parse(&"aB".repeat(20)).unwrap();
        assert_eq!(v1, InfoHash::V1(InfoHashV1([0xab; 20])));
        let v2 = InfoHash::parse(&"0F".repeat(32)).unwrap();
        assert_eq!(v2.to_string(), "0f".repeat(32));
    }

    #[test]
    fn rejects_malformed_info_hashes_with_the_value_in_the_message() {
        for bad in ["", "abc", &"g".repeat(40), &"a".repeat(41), &"é".repeat(20)] {
            let err = InfoHash::parse(bad).unwrap_err();
            assert!(err.to_string().contains("malformed info-hash"));
        }
    }

    #[test]
    fn piece_index_is_digits_only() {
        assert_eq!(PieceIndex::parse("0").unwrap(), PieceIndex(0));
        assert_eq!(
            PieceIndex::parse("4294967295").unwrap(),
            PieceIndex(u32::MAX)
        );
        for bad in ["", "+1", "-1", "1.0", "4294967296", " 1", "x"] {
            assert!(PieceIndex::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn piece_length_must_be_a_power_of_two_from_16_kib() {
        assert!(PieceLength::new(16 * 1024).is_ok());
        assert!(PieceLength::new(1 << 20).is_ok());
        for bad in [0, 1, 8 * 1024, 16 * 1024 + 1, 3 << 20, 1 << 31] {
            assert!(PieceLength::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_classed_as_public_private_or_loopback() {
        use std::net::IpAddr;
        let class = |s: &str| AddressClass::of(s.parse::<IpAddr>().unwrap());
        for loopback in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(class(loopback), AddressClass::Loopback, "{loopback}");
        }
        for private in [
            "10.1.2.3",
            "192.168.0.5",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(class(private), AddressClass::Private, "{private}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
    }

    #[test]
    fn seeder_urls_are_normalised_and_checked() {
        let url = SeederUrl::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080");
        for bad in [
            "",
            "ftp://x",
            "http://u:p@x",
            "http://x/?q",
            "not a url",
            "http:///",
        ] {
            assert!(SeederUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn info_hash_parse_never_panics(s in ".{0,80}") {
            let _ = InfoHash::parse(&s);
        }

        #[test]
        fn info_hash_display_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let h = InfoHash::V2(InfoHashV2(bytes));
            prop_assert_eq!(InfoHash::parse(&h.to_string()).unwrap(), h);
        }

        #[test]
        fn piece_index_round_trips(n in any::<u32>()) {
            prop_assert_eq!(PieceIndex::parse(&n.to_string()).unwrap(), PieceIndex(n));
        }
    }
}
