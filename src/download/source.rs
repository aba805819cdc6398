//! Where a download's metainfo and seeders come from: a .torrent path or URL, or an info-hash
//! looked up on a tracker; seeders from the tracker's /peers, the torrent's url-list and the
//! command line.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use url::Url;

use crate::metainfo::Metainfo;
use crate::settings::tracker_base;
use crate::types::{join_url, InfoHash};

/// One place pieces can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A gotorrent-http seeder: `GET {base}/chunks/{info_hash}/{index}`.
    Native(Url),
    /// A BEP 19 web seed: Range requests on the file's URL.
    WebSeed(Url),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Native(url) | Endpoint::WebSeed(url) => f.write_str(url.as_str()),
        }
    }
}

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

/// GET `url`, failing on transport errors and non-2xx statuses.
async fn get_ok(
    url: &Url,
    http: &reqwest::Client,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    http.get(url.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("{what} from {url}"))
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
    let bytes = get_ok(url, http, "cannot fetch the torrent")
        .await?
        .bytes()
        .await
        .with_context(|| format!("reading the torrent from {url}"))?;
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

/// Live seeders the tracker knows for this torrent.
pub async fn tracker_peers(
    tracker: &Url,
    meta: &Metainfo,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Endpoint>> {
    let mut url = join_url(tracker, "peers");
    url.query_pairs_mut()
        .append_pair("info_hash", &meta.info_hash_v2.to_string());
    let reply: PeersReply = get_ok(&url, http, "cannot get seeders")
        .await?
        .json()
        .await
        .with_context(|| format!("{url} answered something other than a peer list"))?;
    Ok(reply
        .peers
        .iter()
        .filter_map(|p| Url::parse(&p.url).ok())
        .map(Endpoint::Native)
        .collect())
}

/// The torrent's web seeds. A url-list entry ending in '/' names a directory: the torrent name
/// is appended (BEP 19).
pub fn web_seeds(meta: &Metainfo) -> Vec<Endpoint> {
    meta.url_list
        .iter()
        .filter_map(|u| Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| {
            if u.path().ends_with('/') {
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
    let natives: Vec<Url> = endpoints
        .iter()
        .filter_map(|e| match e {
            Endpoint::Native(base) => Some(join_url(&join_url(base, "files"), name)),
            Endpoint::WebSeed(_) => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
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
    fn a_native_seeders_own_web_seed_is_not_used_twice() {
        let m = meta(vec!["http://h:1/files/".into()]);
        let mut all = vec![Endpoint::Native(Url::parse("http://h:1").unwrap())];
        all.extend(web_seeds(&m));
        all.push(Endpoint::Native(Url::parse("http://h:1").unwrap()));
        assert_eq!(dedup(all, &m.name).len(), 1);
    }
}
