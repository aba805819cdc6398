//! Where a download's metainfo and seeders come from: a .torrent path or URL, or an info-hash
//! looked up on a tracker; seeders from the tracker's /peers, the torrent's url-list and the
//! command line.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use url::Url;

use crate::api_client;
use crate::fetch::Endpoint;
use crate::metainfo::Metainfo;
use crate::types::tracker_base;
use crate::types::{join_url, InfoHash};

/// Reads the torrent named by `source`: a path, an http(s) URL, a magnet URI, or an info-hash
/// (with a tracker).
pub async fn metainfo(
    source: &str,
    tracker: Option<&Url>,
    http: &reqwest::Client,
) -> anyhow::Result<Metainfo> {
    if let Ok(hash) = InfoHash::parse(source) {
        let tracker = tracker.with_context(|| {
            format!("SOURCE {source} is an info-hash: say which tracker has it with --tracker URL")
        })?;
        return by_hash(tracker, &hash, http).await;
    }
    if source.starts_with("magnet:") {
        return from_magnet(source, tracker, http).await;
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        let url =
            Url::parse(source).with_context(|| format!("SOURCE {source:?} is not a valid URL"))?;
        return fetch_metainfo(&url, http).await;
    }
    let bytes = std::fs::read(Path::new(source))
        .with_context(|| format!("cannot read the .torrent {source:?}"))?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{source:?} is not a usable torrent"))
}

/// Largest .torrent fetched over HTTP, in bytes (piece layers of a 100 GiB file at 1 MiB
/// pieces take 3.2 MB).
pub const MAX_TORRENT_BYTES: usize = 32 * 1024 * 1024;
/// Largest peer list read from a tracker, in bytes.
pub const MAX_PEER_LIST_BYTES: usize = 4 * 1024 * 1024;
/// Most seeders taken from one peer list; a tracker lists at most a few hundred.
pub const MAX_PEERS: usize = 1000;

/// GET `url` and read at most `limit` bytes of a successful answer; a refusal carries the
/// server's message.
async fn get_ok(
    url: &Url,
    http: &reqwest::Client,
    what: &str,
    limit: usize,
) -> anyhow::Result<Vec<u8>> {
    let response = http
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("{what} from {url}"))?;
    let response = api_client::checked(response)
        .await
        .with_context(|| what.to_owned())?;
    api_client::read_limited(response, limit)
        .await
        .with_context(|| what.to_owned())
}

/// `GET {server}/torrents/{hash}`, checked to be the torrent asked for.
async fn by_hash(
    server: &Url,
    hash: &InfoHash,
    http: &reqwest::Client,
) -> anyhow::Result<Metainfo> {
    let url = join_url(&join_url(server, "torrents"), &hash.to_string());
    let meta = fetch_metainfo(&url, http).await?;
    anyhow::ensure!(
        meta.is_named_by(hash),
        "{url} answered with a different torrent ({}), not {hash}",
        meta.info_hash_v2
    );
    Ok(meta)
}

/// A magnet's metainfo from `--tracker`, its trackers, or the server behind a web seed of ours
/// (`<base>/files/...` serves `<base>/torrents/{hash}`), first that has it.
async fn from_magnet(
    uri: &str,
    tracker: Option<&Url>,
    http: &reqwest::Client,
) -> anyhow::Result<Metainfo> {
    let magnet = crate::magnet::parse(uri).with_context(|| format!("SOURCE {uri:?}"))?;
    let trackers = magnet
        .trackers
        .iter()
        .filter_map(|t| Url::parse(t).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(tracker_base);
    let seed_servers = magnet.web_seeds.iter().filter_map(|ws| {
        let (base, _) = ws.split_once("/files/")?;
        Url::parse(base).ok()
    });
    let candidates: Vec<Url> = tracker
        .cloned()
        .into_iter()
        .chain(trackers)
        .chain(seed_servers)
        .collect();
    anyhow::ensure!(
        !candidates.is_empty(),
        "the magnet for {} names no tracker or web seed to fetch its metainfo from; add --tracker",
        magnet.info_hash
    );
    let mut last_error = None;
    for server in &candidates {
        match by_hash(server, &magnet.info_hash, http).await {
            Ok(meta) => return Ok(meta),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("at least one candidate was tried")).with_context(|| {
        format!(
            "no tracker or web seed of the magnet supplied the metainfo of {}",
            magnet.info_hash
        )
    })
}

async fn fetch_metainfo(url: &Url, http: &reqwest::Client) -> anyhow::Result<Metainfo> {
    let bytes = get_ok(url, http, "cannot fetch the torrent", MAX_TORRENT_BYTES).await?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{url} did not return a usable torrent"))
}

/// The tracker to ask for seeders: `--tracker`, else the torrent's first http(s) tracker.
pub fn tracker(explicit: Option<&Url>, meta: &Metainfo) -> Option<Url> {
    explicit.cloned().or_else(|| {
        meta.trackers
            .iter()
            .filter_map(|t| Url::parse(t).ok())
            .find(|u| matches!(u.scheme(), "http" | "https"))
            .map(tracker_base)
    })
}

#[derive(Deserialize)]
struct PeersReply {
    peers: Vec<PeerEntry>,
}

#[derive(Deserialize)]
struct PeerEntry {
    url: String,
}

/// Live seeders the tracker knows for this torrent: http(s) URLs only, each once, at most
/// [`MAX_PEERS`]. Anything else a tracker lists is skipped with one warning.
pub async fn tracker_peers(
    tracker: &Url,
    meta: &Metainfo,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Endpoint>> {
    let mut url = join_url(tracker, "peers");
    url.query_pairs_mut()
        .append_pair("info_hash", &meta.info_hash_v2.to_string());
    let body = get_ok(&url, http, "cannot get seeders", MAX_PEER_LIST_BYTES).await?;
    let reply: PeersReply = serde_json::from_slice(&body)
        .with_context(|| format!("{url} answered something other than a peer list"))?;
    let (peers, skipped) = seeder_endpoints(reply.peers.iter().map(|p| p.url.as_str()));
    if let Some((count, example)) = skipped {
        tracing::warn!(tracker = %tracker, skipped = count, example = %crate::types::truncate_for_message(&example), "skipped peer URLs that are not http(s) seeder URLs");
    }
    Ok(peers)
}

/// The usable seeders among `urls`, in order, each once, at most [`MAX_PEERS`]; and how many
/// were skipped as unusable, with the first of them.
fn seeder_endpoints<'a>(
    urls: impl Iterator<Item = &'a str>,
) -> (Vec<Endpoint>, Option<(usize, String)>) {
    let mut seen = HashSet::new();
    let mut peers = Vec::new();
    let mut skipped: Option<(usize, String)> = None;
    for raw in urls {
        if peers.len() == MAX_PEERS {
            break;
        }
        match Url::parse(raw) {
            Ok(url) if is_http_with_host(&url) => {
                if seen.insert(url.clone()) {
                    peers.push(Endpoint::Native(url));
                }
            }
            _ => {
                let entry = skipped.get_or_insert_with(|| (0, raw.to_owned()));
                entry.0 += 1;
            }
        }
    }
    (peers, skipped)
}

/// Only these can be fetched from (and joined with paths).
fn is_http_with_host(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.has_host() && !url.cannot_be_a_base()
}

/// The torrent's web seeds (BEP 19). A single file's entry ending in '/' names a directory: the
/// torrent name is appended. A folder's entry is always the directory holding it: the endpoint
/// is `<entry>/<name>`, to which each file's path is appended when fetching.
pub fn web_seeds(meta: &Metainfo) -> Vec<Endpoint> {
    meta.url_list
        .iter()
        .filter_map(|u| Url::parse(u).ok())
        .filter(is_http_with_host)
        .map(|u| {
            if u.path().ends_with('/') || meta.is_folder {
                Endpoint::WebSeed(join_url(&u, &meta.name))
            } else {
                Endpoint::WebSeed(u)
            }
        })
        .collect()
}

/// Drops web seeds that are the `/files/` URL of a native seeder already listed: the same
/// server, better used through its chunk endpoint.
pub fn dedup(endpoints: Vec<Endpoint>, name: &str) -> Vec<Endpoint> {
    let natives: HashSet<Url> = endpoints
        .iter()
        .filter_map(|e| match e {
            Endpoint::Native(base) => Some(join_url(&join_url(base, "files"), name)),
            Endpoint::WebSeed(_) => None,
        })
        .collect();
    let mut seen = HashSet::new();
    endpoints
        .into_iter()
        .filter(|e| match e {
            Endpoint::WebSeed(url) => !natives.contains(url),
            Endpoint::Native(_) => true,
        })
        .filter(|e| seen.insert(e.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::create;
    use crate::types::PieceLength;

    fn meta(url_list: Vec<String>) -> Metainfo {
        let pl = PieceLength::new(16384).unwrap();
        create::from_bytes("a b.bin", b"hello", pl, vec![], url_list).unwrap()
    }

    #[test]
    fn directory_web_seeds_get_the_name_appended() {
        let m = meta(vec![
            "http://h/files/".into(),
            "http://h/exact.bin".into(),
            "ftp://x/".into(),
        ]);
        let seeds: Vec<String> = web_seeds(&m).iter().map(ToString::to_string).collect();
        assert_eq!(seeds, ["http://h/files/a%20b.bin", "http://h/exact.bin"]);
    }

    #[test]
    fn hostile_peer_lists_are_filtered_deduplicated_and_capped_in_linear_time() {
        let (peers, skipped) = seeder_endpoints(
            [
                "mailto:x@y",
                "http://a:1",
                "http://a:1/",
                "data:,x",
                "not a url",
                "https://b",
            ]
            .into_iter(),
        );
        let urls: Vec<String> = peers.iter().map(ToString::to_string).collect();
        assert_eq!(urls, ["http://a:1/", "https://b/"]);
        assert_eq!(skipped, Some((3, "mailto:x@y".to_owned())));

        let many: Vec<String> = (0..100_000)
            .map(|i| format!("http://10.{}.{}.{}:8080", i / 65536, i / 256 % 256, i % 256))
            .collect();
        let started = std::time::Instant::now();
        let (peers, _) = seeder_endpoints(many.iter().map(String::as_str));
        assert_eq!(peers.len(), MAX_PEERS);
        let repeated = vec!["http://a:1"; 100_000];
        let (peers, _) = seeder_endpoints(repeated.into_iter());
        assert_eq!(peers.len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_native_seeders_own_web_seed_is_not_used_twice() {
        let m = meta(vec!["http://h:1/files/".into()]);
        let mut all = vec![Endpoint::Native(Url::parse("http://h:1").unwrap())];
        all.extend(web_seeds(&m));
        all.push(Endpoint::Native(Url::parse("http://h:1").unwrap()));
        assert_eq!(dedup(all, &m.name).len(), 1);
    }
}
