//! The tracker role as a service: it owns the policy (the allowlist, which seeder URLs are
//! admitted, seeder verification, the BitTorrent announce rules) and keeps its state in two
//! async stores, [`store::TorrentStore`] (the registry) and [`store::SwarmStore`] (who is in
//! which swarm, with expiry). HTTP handlers only translate requests into calls here.
//!
//! The protocol lives apart ([`bep3`]: queries and bencoded answers), and so does the pure state
//! ([`swarm`], [`bt_swarm`]: no I/O, time passed in), which the embedded stores wrap.

pub mod admission;
pub mod bep3;
pub mod bt_swarm;
pub mod redis_store;
pub mod store;
pub mod swarm;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::fetch::{self, Endpoint};
use crate::metainfo::{Metainfo, MetainfoError};
use crate::types::{InfoHash, InfoHashV2, PieceIndex, SeederUrl};
use admission::AdmissionError;
pub use admission::PrivateSeeders;
use bep3::{AnnounceQuery, PeerAddr, ScrapeStats};
use store::{StoreError, SwarmStore, TorrentStore};
use swarm::{Event, PeerView};

/// Most torrents in a scrape that names none (the whole registry).
pub const MAX_FULL_SCRAPE: usize = 1000;

/// Caps on what clients can make the tracker remember (config keys `tracker.max_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_torrents: usize,
    /// Swarms per protocol.
    pub max_swarms: usize,
    /// Seeders, or BitTorrent peers, in one swarm.
    pub max_peers_per_swarm: usize,
    /// Native seeder entries over all swarms.
    pub max_seeders: usize,
    /// BitTorrent peers over all swarms.
    pub max_bittorrent_peers: usize,
}

impl Default for Limits {
    /// The compiled-in defaults of config/default.toml.
    fn default() -> Self {
        Limits {
            max_torrents: 100_000,
            max_swarms: 100_000,
            max_peers_per_swarm: 5_000,
            max_seeders: 100_000,
            max_bittorrent_peers: 1_000_000,
        }
    }
}

/// Which table an entry goes into, for [`Limits::room_for`].
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Native seeders (`tracker.max_seeders` over all swarms).
    Seeders,
    /// BitTorrent peers (`tracker.max_bittorrent_peers` over all swarms).
    BitTorrentPeers,
}

impl Limits {
    /// Whether one more entry fits: `total` entries in the table now, `swarms` swarms, and
    /// `in_swarm` entries in its swarm (`None`: the swarm would be new).
    pub fn room_for(
        &self,
        table: Table,
        total: usize,
        swarms: usize,
        in_swarm: Option<usize>,
    ) -> Result<(), Full> {
        let (what, key, limit) = match table {
            Table::Seeders => (
                "the tracker's seeder list",
                "tracker.max_seeders",
                self.max_seeders,
            ),
            Table::BitTorrentPeers => (
                "the tracker's peer list",
                "tracker.max_bittorrent_peers",
                self.max_bittorrent_peers,
            ),
        };
        if total >= limit {
            return Err(Full::new(what, key, limit));
        }
        match in_swarm {
            Some(n) if n >= self.max_peers_per_swarm => Err(Full::new(
                "this torrent's swarm",
                "tracker.max_peers_per_swarm",
                self.max_peers_per_swarm,
            )),
            None if swarms >= self.max_swarms => Err(Full::new(
                "the tracker's swarm table",
                "tracker.max_swarms",
                self.max_swarms,
            )),
            _ => Ok(()),
        }
    }
}

/// A cap was reached: the request is refused until entries expire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is full ({key} = {limit}); retry later")]
pub struct Full {
    pub what: &'static str,
    pub key: &'static str,
    pub limit: usize,
}

impl Full {
    pub fn new(what: &'static str, key: &'static str, limit: usize) -> Self {
        Full { what, key, limit }
    }
}

/// What the tracker decides by, from the settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Told to seeders and peers; an entry silent for twice this is gone.
    pub interval: Duration,
    /// Most peers in one answer (`tracker.max_peers`).
    pub max_peers: usize,
    pub limits: Limits,
    /// Only registered torrents may be announced.
    pub allowlist: bool,
    pub private_seeders: PrivateSeeders,
    /// Fetch one chunk from a joining seeder and check it first.
    pub verify_seeders: bool,
    /// Honour the BEP 3 `ip=` parameter.
    pub accept_ip_param: bool,
    /// Torrents decoded at once (CPU work on the blocking pool).
    pub decoders: usize,
}

/// Peers per BEP 3 answer when the client gives no `numwant`.
const DEFAULT_NUMWANT: usize = 50;
/// How long a seeder under verification may take to serve its one chunk.
const VERIFY_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("torrent {0} is not registered, and this tracker only tracks registered torrents (tracker.allowlist)")]
    NotRegistered(String),
    #[error(transparent)]
    Refused(#[from] AdmissionError),
    #[error("{0}")]
    Unverified(String),
    #[error(transparent)]
    InvalidTorrent(#[from] MetainfoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Full> for TrackerError {
    fn from(full: Full) -> Self {
        TrackerError::Store(full.into())
    }
}

/// Whether a registration added a torrent or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    Existing,
}

/// A native seeder's announce, parsed at the edge.
#[derive(Debug, Clone)]
pub struct SeederAnnounce {
    pub hash: InfoHash,
    pub url: SeederUrl,
    pub event: Option<Event>,
    /// The address the announce came from (socket, or trusted proxy header).
    pub client: Option<IpAddr>,
}

/// The answer to a BEP 3 announce.
#[derive(Debug)]
pub struct BtAnswer {
    pub interval: u64,
    pub min_interval: u64,
    pub stats: ScrapeStats,
    pub peers: Vec<PeerAddr>,
}

pub struct Tracker {
    torrents: Arc<dyn TorrentStore>,
    swarms: Arc<dyn SwarmStore>,
    policy: Policy,
    /// For seeder verification: follows no redirects, so a seeder cannot send the tracker
    /// elsewhere.
    verify_http: reqwest::Client,
    /// Permits for decoding torrents, `policy.decoders` of them.
    decoding: tokio::sync::Semaphore,
}

impl Tracker {
    pub fn new(
        torrents: Arc<dyn TorrentStore>,
        swarms: Arc<dyn SwarmStore>,
        policy: Policy,
    ) -> Result<Self, reqwest::Error> {
        let verify_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(VERIFY_DEADLINE)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let decoding = tokio::sync::Semaphore::new(policy.decoders.max(1));
        Ok(Tracker {
            torrents,
            swarms,
            policy,
            verify_http,
            decoding,
        })
    }

    pub fn interval(&self) -> Duration {
        self.policy.interval
    }

    /// Decodes a .torrent (off the async workers, a few at a time, so a burst of big bodies
    /// neither stalls them nor holds many decoded copies) and registers it.
    pub async fn register_bytes(
        &self,
        bytes: bytes::Bytes,
    ) -> Result<(Registered, Arc<Metainfo>), TrackerError> {
        let meta = {
            let _permit = self
                .decoding
                .acquire()
                .await
                .map_err(|e| TrackerError::Internal(e.to_string()))?;
            tokio::task::spawn_blocking(move || Metainfo::from_bytes(&bytes))
                .await
                .map_err(|e| TrackerError::Internal(e.to_string()))??
        };
        self.register(meta).await
    }

    /// Registers a torrent; durable when this returns.
    pub async fn register(
        &self,
        meta: Metainfo,
    ) -> Result<(Registered, Arc<Metainfo>), TrackerError> {
        let limit = self.policy.limits.max_torrents;
        Ok(self.torrents.insert(meta, limit, unix_now()).await?)
    }

    pub async fn lookup(&self, hash: &InfoHash) -> Result<Option<Arc<Metainfo>>, TrackerError> {
        Ok(self.torrents.get(*hash).await?)
    }

    /// Every registered torrent, in registration order.
    pub async fn torrents(&self) -> Result<Vec<Arc<Metainfo>>, TrackerError> {
        Ok(self.torrents.all().await?)
    }

    /// Up to `limit` registered torrents whose v2 hash sorts after `after`, in hash order.
    pub async fn torrents_page(
        &self,
        after: Option<crate::types::InfoHashV2>,
        limit: usize,
    ) -> Result<Vec<Arc<Metainfo>>, TrackerError> {
        Ok(self.torrents.page(after, limit).await?)
    }

    /// How many torrents are registered.
    pub async fn torrent_count(&self) -> Result<usize, TrackerError> {
        Ok(self.torrents.count().await?)
    }

    /// Whether each torrent is registered, by v2 hash, in order, in one store call.
    pub async fn registered(&self, hashes: Vec<InfoHashV2>) -> Result<Vec<bool>, TrackerError> {
        Ok(self.torrents.contains(hashes).await?)
    }

    /// The swarm key: a registered torrent's v1 hash maps to its v2 hash, so both name one swarm.
    fn swarm_key(hash: &InfoHash, registered: Option<&Arc<Metainfo>>) -> InfoHash {
        registered.map_or(*hash, |meta| InfoHash::V2(meta.info_hash_v2))
    }

    /// A native seeder's announce: the allowlist, the private-address rule and verification
    /// for a seeder joining the swarm, then the store. Returns the interval to announce at.
    pub async fn announce(&self, a: SeederAnnounce) -> Result<Duration, TrackerError> {
        let registered = self.torrents.get(a.hash).await?;
        if self.policy.allowlist && registered.is_none() {
            return Err(TrackerError::NotRegistered(a.hash.to_string()));
        }
        let key = Self::swarm_key(&a.hash, registered.as_ref());
        let now = unix_now();
        // Only a seeder joining the swarm is judged (re-announces of a listed one skip it).
        let joining = a.event != Some(Event::Stopped)
            && !self.swarms.is_listed(key, a.url.clone(), now).await?;
        if joining && self.policy.private_seeders != PrivateSeeders::Always {
            let addresses = admission::resolve(&a.url).await?;
            admission::admit(self.policy.private_seeders, &a.url, &addresses, a.client)?;
        }
        if let (true, true, Some(meta)) = (self.policy.verify_seeders, joining, &registered) {
            self.verify_seeder(&a.url, meta).await?;
        }
        self.swarms.announce(key, a.url, a.event, now).await?;
        Ok(self.policy.interval)
    }

    /// Fetches one chunk from a new seeder and checks it against the torrent before listing it.
    async fn verify_seeder(&self, url: &SeederUrl, meta: &Metainfo) -> Result<(), TrackerError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let index = nanos % meta.piece_count();
        let span = meta
            .piece(PieceIndex(index))
            .expect("index below the piece count");
        let endpoint =
            Endpoint::Native(url::Url::parse(url.as_str()).expect("seeder URLs are URLs"));
        let refuse = |why: String| {
            TrackerError::Unverified(format!("seeder {url} failed verification: {why}"))
        };
        // The fetch error stays in our log: echoing it would let an announcer probe what the
        // tracker's network answers.
        let fetched = fetch::piece(
            &self.verify_http,
            &endpoint,
            meta,
            index,
            span,
            VERIFY_DEADLINE,
        );
        let data = fetched.await.map_err(|e| {
            tracing::info!(seeder = %url, piece = index, error = %e, "seeder verification: fetch failed");
            refuse(format!("could not fetch piece {index} from it"))
        })?;
        if !meta.verify_piece(PieceIndex(index), &data) {
            return Err(refuse(format!(
                "piece {index} does not match the torrent's SHA-256 hash"
            )));
        }
        Ok(())
    }

    /// The swarm key of a hash when nothing else about the torrent is needed: a v2 hash is its
    /// own key, so only a v1 hash costs a registry lookup (a round trip with Redis, and the
    /// torrent list asks this once per torrent).
    async fn key_of(&self, hash: &InfoHash) -> Result<InfoHash, TrackerError> {
        Ok(match hash {
            InfoHash::V2(_) => *hash,
            InfoHash::V1(_) => Self::swarm_key(hash, self.torrents.get(*hash).await?.as_ref()),
        })
    }

    pub async fn peers(&self, hash: &InfoHash) -> Result<Vec<PeerView>, TrackerError> {
        let key = self.key_of(hash).await?;
        Ok(self
            .swarms
            .seeders(key, unix_now(), self.policy.max_peers)
            .await?)
    }

    /// Live native seeders of each torrent, by v2 hash (a swarm's key), in order, in one store
    /// call.
    pub async fn live_seeders(&self, hashes: &[InfoHashV2]) -> Result<Vec<usize>, TrackerError> {
        let keys = hashes.iter().map(|h| InfoHash::V2(*h)).collect();
        Ok(self.swarms.live_seeders(keys, unix_now()).await?)
    }

    /// Each service the tracker's state lives in (Redis, when configured) and whether it
    /// answers: "ok", or why not. Empty with the embedded stores.
    pub async fn dependencies(&self) -> std::collections::BTreeMap<&'static str, String> {
        let mut answers = std::collections::BTreeMap::new();
        if let Some((name, answer)) = self.swarms.dependency() {
            let answer = answer
                .await
                .map_or_else(|e| e.to_string(), |()| "ok".into());
            answers.insert(name, answer);
        }
        answers
    }

    pub async fn total_live_seeders(&self) -> Result<usize, TrackerError> {
        Ok(self.swarms.total_live_seeders(unix_now()).await?)
    }

    /// The BitTorrent swarm key of a 20-byte info-hash: a registered hybrid torrent's v1 hash
    /// and truncated v2 hash both name one swarm, keyed by the v1 hash.
    async fn bt_key(&self, hash: [u8; 20]) -> Result<([u8; 20], bool), TrackerError> {
        Ok(match self.torrents.get_bt(hash).await? {
            Some(meta) => (meta.info_hash_v1.0, true),
            None => (hash, false),
        })
    }

    /// A BEP 3 announce from `client` (socket or trusted proxy address).
    pub async fn bt_announce(
        &self,
        query: AnnounceQuery,
        client: IpAddr,
    ) -> Result<BtAnswer, TrackerError> {
        let (key, registered) = self.bt_key(query.info_hash).await?;
        if self.policy.allowlist && !registered {
            return Err(TrackerError::NotRegistered(hex::encode(query.info_hash)));
        }
        let ip = query
            .ip
            .filter(|_| self.policy.accept_ip_param)
            .unwrap_or(client);
        let numwant = query
            .numwant
            .unwrap_or(DEFAULT_NUMWANT)
            .min(self.policy.max_peers);
        let announce = bt_swarm::Announce {
            key,
            peer_id: query.peer_id,
            addr: SocketAddr::new(ip, query.port),
            left: query.left,
            event: query.event,
            numwant,
        };
        let outcome = self.swarms.bt_announce(announce, unix_now()).await?;
        let interval = self.policy.interval.as_secs();
        Ok(BtAnswer {
            interval,
            min_interval: (interval / 2).max(1),
            stats: outcome.stats,
            peers: outcome.peers,
        })
    }

    /// BEP 48 scrape of the given hashes, or of every known torrent (bounded) when none.
    pub async fn bt_scrape(
        &self,
        hashes: &[[u8; 20]],
    ) -> Result<Vec<([u8; 20], ScrapeStats)>, TrackerError> {
        let requested: Vec<[u8; 20]> = if hashes.is_empty() {
            let mut all: Vec<[u8; 20]> = self
                .torrents()
                .await?
                .iter()
                .map(|m| m.info_hash_v1.0)
                .collect();
            all.extend(self.swarms.bt_keys(MAX_FULL_SCRAPE).await?);
            all.sort_unstable();
            all.dedup();
            all.truncate(MAX_FULL_SCRAPE);
            all
        } else {
            hashes.to_vec()
        };
        let mut keys = Vec::with_capacity(requested.len());
        for hash in &requested {
            keys.push(self.bt_key(*hash).await?.0);
        }
        let stats = self.swarms.bt_stats(keys, unix_now()).await?;
        Ok(requested.into_iter().zip(stats).collect())
    }

    /// Drops expired seeders and peers, and the BitTorrent swarms of unregistered torrents
    /// left without peers; run periodically.
    pub async fn expire(&self) -> Result<(), TrackerError> {
        let registered: std::collections::HashSet<[u8; 20]> = self
            .torrents()
            .await?
            .iter()
            .map(|m| m.info_hash_v1.0)
            .collect();
        let keep = Arc::new(move |key: &[u8; 20]| registered.contains(key));
        Ok(self.swarms.expire(unix_now(), keep).await?)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
