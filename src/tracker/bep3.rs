//! The BitTorrent tracker protocol on the wire: BEP 3 announce and BEP 48 scrape queries parsed
//! into typed values, and bencoded responses (compact peers per BEP 23, IPv6 per BEP 7).
//!
//! Queries carry raw 20-byte values (`info_hash`, `peer_id`) percent-encoded, so they are parsed
//! from the raw query string as bytes, never as UTF-8 text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::bencode::Value;

/// Longest query accepted; a real announce is a few hundred bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most info-hashes in one scrape request.
pub const MAX_SCRAPE_HASHES: usize = 100;
/// Longest scrape query: room for the maximum number of fully escaped hashes.
pub const MAX_SCRAPE_QUERY_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    Started,
    Completed,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Option<AnnounceEvent>,
    pub compact: bool,
    pub no_peer_id: bool,
    pub numwant: Option<usize>,
    /// The client's claimed address (`ip=`): used only if the tracker is configured to.
    pub ip: Option<IpAddr>,
}

/// Why a query is refused; sent back as the bencoded `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("invalid parameter {name}: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("query longer than {max} bytes")]
    TooLong { max: usize },
    #[error("more than {MAX_SCRAPE_HASHES} info_hash parameters")]
    TooManyHashes,
}

/// `key=value` pairs of a raw query string: keys percent-decoded, values still encoded, for
/// the parser of each to decode. Nothing is allocated unless a key is escaped or a value
/// must be copied to be unescaped (an announce is parsed on every request: callgrind counted
/// 9.6k instructions when every value was collected into a `Vec`).
fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Encoded<'_>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (
            percent_encoding::percent_decode_str(k).decode_utf8_lossy(),
            Encoded(v),
        )
    })
}

/// A percent-encoded query value.
#[derive(Clone, Copy)]
struct Encoded<'a>(&'a str);

impl<'a> Encoded<'a> {
    fn decoded(self) -> Cow<'a, [u8]> {
        percent_encoding::percent_decode_str(self.0).into()
    }
}

fn twenty(name: &'static str, value: Encoded<'_>) -> Result<[u8; 20], QueryError> {
    let mut out = [0u8; 20];
    let mut len = 0;
    for byte in percent_encoding::percent_decode_str(value.0) {
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
        }
        len += 1;
    }
    if len != out.len() {
        return Err(QueryError::Invalid {
            name,
            why: format!("expected 20 bytes, got {len}"),
        });
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(name: &'static str, value: Encoded<'_>) -> Result<T, QueryError> {
    let value = value.decoded();
    std::str::from_utf8(&value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| QueryError::Invalid {
            name,
            why: format!("not a number: {:?}", String::from_utf8_lossy(&value)),
        })
}

pub fn parse_announce(query: &str) -> Result<AnnounceQuery, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong {
            max: MAX_QUERY_BYTES,
        });
    }
    let (mut info_hash, mut peer_id, mut port) = (None, None, None);
    let mut q = AnnounceQuery {
        info_hash: [0; 20],
        peer_id: [0; 20],
        port: 0,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: None,
        compact: true,
        no_peer_id: false,
        numwant: None,
        ip: None,
    };
    for (key, value) in pairs(query) {
        match key.as_ref() {
            "info_hash" => info_hash = Some(twenty("info_hash", value)?),
            "peer_id" => peer_id = Some(twenty("peer_id", value)?),
            "port" => port = Some(number::<u16>("port", value)?),
            "uploaded" => q.uploaded = number("uploaded", value)?,
            "downloaded" => q.downloaded = number("downloaded", value)?,
            "left" => q.left = number("left", value)?,
            "numwant" => q.numwant = Some(number("numwant", value)?),
            "compact" => q.compact = *value.decoded() != *b"0",
            "no_peer_id" => q.no_peer_id = *value.decoded() == *b"1",
            "event" => {
                q.event = match &*value.decoded() {
                    b"started" => Some(AnnounceEvent::Started),
                    b"completed" => Some(AnnounceEvent::Completed),
                    b"stopped" => Some(AnnounceEvent::Stopped),
                    // BEP 21 "paused" and the empty event are regular announces.
                    b"" | b"paused" => None,
                    other => {
                        return Err(QueryError::Invalid {
                            name: "event",
                            why: format!("unknown event {:?}", String::from_utf8_lossy(other)),
                        })
                    }
                }
            }
            "ip" => {
                q.ip = std::str::from_utf8(&value.decoded())
                    .ok()
                    .and_then(|s| s.parse().ok())
            }
            _ => {}
        }
    }
    q.info_hash = info_hash.ok_or(QueryError::Missing("info_hash"))?;
    q.peer_id = peer_id.ok_or(QueryError::Missing("peer_id"))?;
    q.port = port.ok_or(QueryError::Missing("port"))?;
    if q.port == 0 {
        return Err(QueryError::Invalid {
            name: "port",
            why: "port 0".into(),
        });
    }
    Ok(q)
}

/// The info-hashes of a scrape request (possibly none: scrape everything).
pub fn parse_scrape(query: &str) -> Result<Vec<[u8; 20]>, QueryError> {
    if query.len() > MAX_SCRAPE_QUERY_BYTES {
        return Err(QueryError::TooLong {
            max: MAX_SCRAPE_QUERY_BYTES,
        });
    }
    let hashes: Vec<[u8; 20]> = pairs(query)
        .filter(|(k, _)| k == "info_hash")
        .map(|(_, v)| twenty("info_hash", v))
        .collect::<Result<_, _>>()?;
    if hashes.len() > MAX_SCRAPE_HASHES {
        return Err(QueryError::TooManyHashes);
    }
    Ok(hashes)
}

/// A peer as the tracker hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    pub peer_id: [u8; 20],
    pub addr: SocketAddr,
}

pub struct AnnounceReply<'a> {
    pub interval: u64,
    pub min_interval: u64,
    pub complete: usize,
    pub incomplete: usize,
    pub peers: &'a [PeerAddr],
    /// BEP 24: the client's address as the tracker sees it.
    pub external_ip: IpAddr,
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Int(saturating(n))
}

/// Bencode integers are read as i64 by most clients: larger counts are capped.
fn saturating(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The bencoded announce response, compact (BEP 23 / BEP 7) or as a list of dictionaries.
pub fn encode_announce(reply: &AnnounceReply<'_>, compact: bool, no_peer_id: bool) -> Vec<u8> {
    if compact {
        encode_compact(reply)
    } else {
        announce_dict(reply, false, no_peer_id).encode()
    }
}

/// The compact reply, which nearly every client asks for, written straight into one buffer in
/// bencode's key order. Building it as a [`Value`] tree (a B-tree of owned keys, a buffer per
/// value) took 11.8k of the 72k instructions a one-connection announce cost (callgrind); the
/// tree stays as the reference that tests compare this with.
fn encode_compact(reply: &AnnounceReply<'_>) -> Vec<u8> {
    use std::io::Write as _;
    let v4 = reply.peers.iter().filter(|p| p.addr.is_ipv4()).count();
    let v6 = reply.peers.len() - v4;
    let mut out = Vec::with_capacity(128 + 6 * v4 + 18 * v6);
    let ip = ip_bytes(reply.external_ip);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "d8:completei{}e11:external ip{}:",
        saturating(reply.complete),
        ip.len()
    );
    out.extend_from_slice(&ip);
    let _ = write!(
        out,
        "10:incompletei{}e8:intervali{}e12:min intervali{}e5:peers{}:",
        saturating(reply.incomplete),
        saturating(reply.interval),
        saturating(reply.min_interval),
        6 * v4
    );
    compact_peers(reply.peers, false, &mut out);
    if v6 > 0 {
        let _ = write!(out, "6:peers6{}:", 18 * v6);
        compact_peers(reply.peers, true, &mut out);
    }
    out.push(b'e');
    out
}

/// Appends the peers of one address family in BEP 23 / BEP 7 compact form: address and port
/// in network byte order, 6 bytes each for IPv4, 18 for IPv6.
fn compact_peers(peers: &[PeerAddr], ipv6: bool, out: &mut Vec<u8>) {
    for peer in peers.iter().filter(|p| p.addr.is_ipv6() == ipv6) {
        match peer.addr.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&peer.addr.port().to_be_bytes());
    }
}

/// The announce response as a bencode value.
fn announce_dict(reply: &AnnounceReply<'_>, compact: bool, no_peer_id: bool) -> Value {
    let mut dict = BTreeMap::from([
        (b"interval".to_vec(), int(reply.interval)),
        (b"min interval".to_vec(), int(reply.min_interval)),
        (b"complete".to_vec(), int(reply.complete)),
        (b"incomplete".to_vec(), int(reply.incomplete)),
        (
            b"external ip".to_vec(),
            Value::bytes(ip_bytes(reply.external_ip)),
        ),
    ]);
    if compact {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        compact_peers(reply.peers, false, &mut v4);
        compact_peers(reply.peers, true, &mut v6);
        dict.insert(b"peers".to_vec(), Value::Bytes(v4));
        if !v6.is_empty() {
            dict.insert(b"peers6".to_vec(), Value::Bytes(v6));
        }
    } else {
        let peers = reply
            .peers
            .iter()
            .map(|p| {
                let mut d = BTreeMap::from([
                    (b"ip".to_vec(), Value::bytes(p.addr.ip().to_string())),
                    (b"port".to_vec(), int(p.addr.port())),
                ]);
                if !no_peer_id {
                    d.insert(b"peer id".to_vec(), Value::bytes(p.peer_id.to_vec()));
                }
                Value::Dict(d)
            })
            .collect();
        dict.insert(b"peers".to_vec(), Value::List(peers));
    }
    Value::Dict(dict)
}

/// An address in network byte order: 4 bytes for IPv4 (an IPv4-mapped IPv6 address included),
/// 16 for IPv6.
fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Per-torrent counts for a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub complete: usize,
    pub incomplete: usize,
    pub downloaded: u64,
}

pub fn encode_scrape(files: &[([u8; 20], ScrapeStats)]) -> Vec<u8> {
    let files = files
        .iter()
        .map(|(hash, s)| {
            let stats = BTreeMap::from([
                (b"complete".to_vec(), int(s.complete)),
                (b"downloaded".to_vec(), int(s.downloaded)),
                (b"incomplete".to_vec(), int(s.incomplete)),
            ]);
            (hash.to_vec(), Value::Dict(stats))
        })
        .collect();
    Value::Dict(BTreeMap::from([(b"files".to_vec(), Value::Dict(files))])).encode()
}

/// Trackers answer errors with status 200 and this body, which is what clients look for.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    Value::Dict(BTreeMap::from([(
        b"failure reason".to_vec(),
        Value::bytes(reason),
    )]))
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(bytes: &[u8]) -> String {
        percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn parses_a_real_client_announce() {
        let hash = [0xab; 20];
        let query = format!(
            "info_hash={}&peer_id=-qB4650-%01%02abcdefghij&port=6881&uploaded=0&downloaded=10&left=1000&corrupt=0&key=AB12&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1",
            escaped(&hash)
        );
        let q = parse_announce(&query).unwrap();
        assert_eq!(q.info_hash, hash);
        assert_eq!(&q.peer_id[..8], b"-qB4650-");
        assert_eq!((q.port, q.downloaded, q.left), (6881, 10, 1000));
        assert_eq!(q.event, Some(AnnounceEvent::Started));
        assert!(q.compact && q.no_peer_id);
        assert_eq!(q.numwant, Some(200));
    }

    #[test]
    fn refuses_bad_announces_with_a_reason() {
        let ok_hash = escaped(&[1; 20]);
        for (query, needle) in [
            (
                "peer_id=aaaaaaaaaaaaaaaaaaaa&port=1".to_owned(),
                "info_hash",
            ),
            (format!("info_hash={ok_hash}&port=1"), "peer_id"),
            (
                format!("info_hash={ok_hash}&peer_id=aaaaaaaaaaaaaaaaaaaa"),
                "port",
            ),
            (
                "info_hash=short&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1".to_owned(),
                "20 bytes",
            ),
            (
                format!("info_hash={ok_hash}&peer_id=aaaaaaaaaaaaaaaaaaaa&port=70000"),
                "port",
            ),
            (
                format!("info_hash={ok_hash}&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&left=-1"),
                "left",
            ),
            (
                format!("info_hash={ok_hash}&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&event=boom"),
                "boom",
            ),
            ("x".repeat(5000), "longer"),
        ] {
            let err = parse_announce(&query).unwrap_err().to_string();
            assert!(err.contains(needle), "{query}: {err}");
        }
    }

    #[test]
    fn compact_peers_split_by_address_family() {
        let peers = [
            PeerAddr {
                peer_id: [1; 20],
                addr: "10.0.0.1:6881".parse().unwrap(),
            },
            PeerAddr {
                peer_id: [2; 20],
                addr: "[::1]:51413".parse().unwrap(),
            },
        ];
        let reply = AnnounceReply {
            interval: 60,
            min_interval: 30,
            complete: 1,
            incomplete: 1,
            peers: &peers,
            external_ip: "::ffff:203.0.113.7".parse().unwrap(),
        };
        let decoded = crate::bencode::decode(&encode_announce(&reply, true, false))
            .unwrap()
            .value;
        // BEP 24, with a v4-mapped socket address given as the 4 bytes of IPv4.
        assert_eq!(
            decoded.get("external ip").unwrap().as_bytes().unwrap(),
            &[203, 0, 113, 7]
        );
        assert_eq!(
            decoded.get("peers").unwrap().as_bytes().unwrap(),
            &[10, 0, 0, 1, 0x1a, 0xe1]
        );
        let v6 = decoded.get("peers6").unwrap().as_bytes().unwrap();
        assert_eq!(v6.len(), 18);
        assert_eq!(&v6[16..], &51413u16.to_be_bytes());

        let full = crate::bencode::decode(&encode_announce(&reply, false, false))
            .unwrap()
            .value;
        let list = full.get("peers").unwrap().as_list().unwrap();
        assert_eq!(list[1].get("ip").unwrap().as_str(), Some("::1"));
        assert_eq!(
            list[0].get("peer id").unwrap().as_bytes(),
            Some(&[1u8; 20][..])
        );
    }

    #[test]
    fn scrape_takes_repeated_hashes() {
        let q = format!(
            "info_hash={}&info_hash={}",
            escaped(&[1; 20]),
            escaped(&[2; 20])
        );
        assert_eq!(parse_scrape(&q).unwrap(), vec![[1; 20], [2; 20]]);
        assert_eq!(parse_scrape("").unwrap(), Vec::<[u8; 20]>::new());
        let many = vec![format!("info_hash={}", escaped(&[3; 20])); 101].join("&");
        assert_eq!(parse_scrape(&many), Err(QueryError::TooManyHashes));
    }

    proptest! {
        #[test]
        fn the_compact_reply_is_the_bencoding_of_its_dictionary(
            peers in proptest::collection::vec((any::<[u8; 20]>(), any::<SocketAddr>()), 0..60),
            external_ip in any::<IpAddr>(),
            counts in any::<(u64, u64, usize, usize)>(),
        ) {
            let peers: Vec<PeerAddr> = peers
                .into_iter()
                .map(|(peer_id, addr)| PeerAddr { peer_id, addr })
                .collect();
            let reply = AnnounceReply {
                interval: counts.0,
                min_interval: counts.1,
                complete: counts.2,
                incomplete: counts.3,
                peers: &peers,
                external_ip,
            };
            prop_assert_eq!(
                encode_compact(&reply),
                announce_dict(&reply, true, false).encode()
            );
        }

        #[test]
        fn arbitrary_queries_never_panic(query in "\\PC{0,300}") {
            let _ = parse_announce(&query);
            let _ = parse_scrape(&query);
        }

        #[test]
        fn any_raw_hash_round_trips(hash in proptest::array::uniform20(any::<u8>()), peer in proptest::array::uniform20(any::<u8>()), port in 1u16..) {
            let query = format!("info_hash={}&peer_id={}&port={port}", escaped(&hash), escaped(&peer));
            let q = parse_announce(&query).unwrap();
            prop_assert_eq!((q.info_hash, q.peer_id, q.port), (hash, peer, port));
        }
    }
}
