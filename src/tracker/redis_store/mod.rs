//! The tracker's stores in Redis, shared by every tracker instance that names the same server
//! (`tracker.redis_url`). Expiry lives in Redis data structures, not in one instance's timer:
//! every swarm is a sorted set of its members scored by their last announce, trimmed when it
//! is read, and its keys expire by themselves when nobody announces any more.
//!
//! Keys (all under `gotorrent:`):
//! - `torrents` hash: v2 hex → bencoded metainfo; `by_v1` and `by_bt` hashes: v1 hex and
//!   truncated-v2 hex → v2 hex; `order` sorted set: v2 hex by registration sequence (`seq`);
//!   `sorted` sorted set: v2 hex, all scored 0, so `ZRANGE BYLEX` pages the registry by hash.
//! - `s:<key>` sorted set: seeder URL → last announce (Unix s); `sf:<key>` hash: URL → first
//!   seen; `swarms` sorted set: swarm key → last activity (for counts and the swarm cap).
//! - `pz:<key>` sorted set: peers (id, port, IP; binary) → last announce, plus 2^40 for
//!   seeders; `pd:<key>` set: peer ids whose download was counted; `dl` hash: swarm key →
//!   downloads; `bt_swarms` sorted set: key → last read or
//!   key creation (the expiry loop removes swarms silent past the TTL, with their keys).
//!
//! A native announce is one round trip (a Lua script checks caps, records and trims). BEP 3
//! announces, the bulk of a busy tracker's work, are batched: see [`bt_peers`].
//! `tracker.max_seeders` and `tracker.max_bittorrent_peers` (totals over all swarms) are not
//! kept in Redis; `max_swarms` times `max_peers_per_swarm` bounds them there.

mod bt_peers;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::bep3::ScrapeStats;
use super::bt_swarm::{Announce, AnnounceOutcome};
use super::store::{Keep, StoreError, StoreResult, SwarmStore, TorrentStore};
use super::swarm::{Event, PeerView};
use super::{Full, Limits, Registered};
use crate::metainfo::Metainfo;
use crate::per_thread::PerThread;
use crate::types::{InfoHash, InfoHashV2, SeederUrl};

const PREFIX: &str = "gotorrent:";

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

/// Connections to one Redis server: one per thread that uses it, each reconnecting by itself
/// and made lazily, so a tracker starts while Redis is down and recovers when it returns
/// (requests meanwhile fail with 503).
///
/// Per thread because each actix worker runs its own single-threaded runtime: a connection
/// shared by all would have its I/O driven on whichever worker used it first, and every other
/// worker's commands would cross threads twice. (On this project's 2-core machine the
/// difference was within the benchmark's noise; it matters more with more workers.)
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    /// Each thread's connection.
    connections: PerThread<ConnectionManager>,
    /// The registry's sequence (`seq`, counting registrations) as last seen, and when.
    registry: Arc<std::sync::Mutex<(u64, std::time::Instant)>>,
}

impl RedisConn {
    /// This thread's connection.
    fn get(&self) -> Result<ConnectionManager, StoreError> {
        self.connections.try_get(
            |_| true,
            || {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1);
                self.client
                    .get_connection_manager_lazy(config)
                    .map_err(unavailable)
            },
        )
    }

    /// Notes the registry's sequence as Redis just gave it. Registrations only raise it, so a
    /// lower one is an answer read before the last one seen (another thread's connection).
    fn saw_registry(&self, seq: u64) {
        let mut seen = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if seq >= seen.0 {
            *seen = (seq, std::time::Instant::now());
        }
    }

    /// Whether no torrent was registered since the registry's sequence was `seq`, as far as
    /// a sequence seen within [`NEGATIVE_TTL`] tells.
    fn registry_unchanged_since(&self, seq: u64) -> bool {
        let (seen, at) = *self.registry.lock().unwrap_or_else(|e| e.into_inner());
        seen == seq && at.elapsed() < NEGATIVE_TTL
    }
}

/// Checks the URL; nothing is sent until the first command.
pub fn connect(url: &str) -> Result<RedisConn, redis::RedisError> {
    use redis::IntoConnectionInfo;
    // A request/response protocol: without TCP_NODELAY, Nagle's algorithm may hold a command
    // written while the previous one is still unacknowledged.
    let info = url
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    Ok(RedisConn {
        client: redis::Client::open(info)?,
        connections: PerThread::default(),
        registry: Arc::new(std::sync::Mutex::new((0, std::time::Instant::now()))),
    })
}

/// Members of a sorted set: by rank (`min`, `max` as 0, -1 for all) or, `by_score`, by score.
async fn zrange<T: redis::FromRedisValue>(
    conn: &RedisConn,
    set: &str,
    min: impl redis::ToRedisArgs,
    max: impl redis::ToRedisArgs,
    by_score: bool,
) -> Result<T, StoreError> {
    let mut conn = conn.get()?;
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(key(set)).arg(min).arg(max);
    if by_score {
        cmd.arg("BYSCORE");
    }
    cmd.query_async(&mut conn).await.map_err(unavailable)
}

/// Whether Redis answers, for the readiness view.
pub async fn ping(conn: &RedisConn) -> Result<(), StoreError> {
    let mut conn = conn.get()?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// The registry in Redis, with parsed torrents cached in this process: a torrent is named by
/// its hash, so a cached copy never goes stale.
pub struct RedisTorrents {
    conn: RedisConn,
    parsed: RwLock<HashMap<String, Arc<Metainfo>>>,
    /// BitTorrent hashes found registered (v1, truncated v2) → v2 hex: never stale.
    bt_found: RwLock<HashMap<[u8; 20], String>>,
    /// BitTorrent hashes found unregistered, with the registry's sequence then: trusted while
    /// the sequence is unchanged, as every batch of announces reads it (and for at most
    /// [`NEGATIVE_TTL`] after the last reading), so an announce of an unregistered torrent
    /// needs no round trip of its own, and a torrent registered through another instance is
    /// merged with its other hash from the next batch on.
    bt_missing: std::sync::Mutex<HashMap<[u8; 20], u64>>,
    /// Whether this process saw the `sorted` set hold every registered torrent.
    sorted_complete: std::sync::atomic::AtomicBool,
}

/// Removes BitTorrent swarms silent since ARGV[1] from the index KEYS[1] (`bt_swarms`), at
/// most ARGV[2] of them, and deletes their keys (`<ARGV[3]>pz:<id>` and so on) in the same
/// step, so an announce cannot revive a swarm between the two. Returns the removed ids. The
/// peer keys are named here, not declared: a batch of announces spans swarms anyway, so the
/// tracker needs one Redis (or a primary with replicas), not Redis Cluster.
const REMOVE_SILENT: &str = r"
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(gone) do
  -- ps, pl and pi: the layout before pz.
  redis.call('DEL', ARGV[3] .. 'pz:' .. id, ARGV[3] .. 'pd:' .. id, ARGV[3] .. 'ps:' .. id,
    ARGV[3] .. 'pl:' .. id, ARGV[3] .. 'pi:' .. id)
  redis.call('ZREM', KEYS[1], id)
end
return gone
";

static REMOVE_SILENT_SWARMS: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(REMOVE_SILENT));

/// Drops the download counts (KEYS[2], `dl`) of the swarms named in ARGV, unless an announce
/// brought a swarm back into the index (KEYS[1], `bt_swarms`) since it was removed.
const FORGET: &str = r"
for _, id in ipairs(ARGV) do
  if not redis.call('ZSCORE', KEYS[1], id) then redis.call('HDEL', KEYS[2], id) end
end
";

static FORGET_DOWNLOADS: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(FORGET));

/// Swarms removed per script call: each call holds Redis while it deletes their keys.
const REMOVE_AT_ONCE: usize = 1000;

/// How long the registry's sequence, once read, vouches for "not registered".
const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// Most remembered misses; past it the memory is cleared (clients choose these hashes).
const MAX_MISSES: usize = 100_000;

/// Registers atomically: the torrent and its indexes, or nothing if it is there or the
/// registry is full. Returns 1 created, 0 existing, -1 full.
const INSERT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
  return 0
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), ARGV[1])
redis.call('ZADD', KEYS[6], 0, ARGV[1])
return 1
";

/// Fills the `sorted` set from `order` when it lacks members (a registry written before the set
/// existed), a batch of ARGV[1] per call; returns how many are still missing.
const BACKFILL_SORTED: &str = r"
local missing = redis.call('ZCARD', KEYS[1]) - redis.call('ZCARD', KEYS[2])
if missing <= 0 then return 0 end
local start = tonumber(redis.call('GET', KEYS[3]) or '0')
local batch = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[1]) - 1)
for _, v2 in ipairs(batch) do redis.call('ZADD', KEYS[2], 0, v2) end
if #batch == 0 then
  redis.call('DEL', KEYS[3])
  return 0
end
redis.call('SET', KEYS[3], start + #batch)
return redis.call('ZCARD', KEYS[1]) - redis.call('ZCARD', KEYS[2])
";

/// Torrents fetched per round trip when listing.
const FETCH_BATCH: usize = 500;

impl RedisTorrents {
    pub fn new(conn: RedisConn) -> Self {
        RedisTorrents {
            conn,
            parsed: RwLock::default(),
            bt_found: RwLock::default(),
            bt_missing: std::sync::Mutex::default(),
            sorted_complete: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Once per process: makes sure every registered torrent is in the `sorted` set that pages
    /// the listing, in batches so Redis never blocks for long.
    async fn backfill_sorted(&self) -> Result<(), StoreError> {
        if self
            .sorted_complete
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        loop {
            let mut conn = self.conn.get()?;
            let missing: i64 = BACKFILL_SCRIPT
                .key(key("order"))
                .key(key("sorted"))
                .key(key("sorted_backfill"))
                .arg(FETCH_BATCH * 20)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if missing <= 0 {
                break;
            }
        }
        self.sorted_complete
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The torrents stored under these v2 hex hashes, in order: those not parsed yet are
    /// fetched in one round trip per [`FETCH_BATCH`].
    async fn many(&self, hashes: Vec<String>) -> Result<Vec<Arc<Metainfo>>, StoreError> {
        let cached: Vec<Option<Arc<Metainfo>>> = {
            let parsed = self.parsed.read().unwrap_or_else(|e| e.into_inner());
            hashes.iter().map(|h| parsed.get(h).cloned()).collect()
        };
        let missing: Vec<&String> = hashes
            .iter()
            .zip(&cached)
            .filter_map(|(h, c)| c.is_none().then_some(h))
            .collect();
        let mut fetched = HashMap::new();
        for batch in missing.chunks(FETCH_BATCH) {
            let mut conn = self.conn.get()?;
            let bytes: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                .arg(key("torrents"))
                .arg(batch)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let mut parsed = self.parsed.write().unwrap_or_else(|e| e.into_inner());
            for (v2, bytes) in batch.iter().zip(bytes) {
                let Some(bytes) = bytes else { continue };
                let meta = Arc::new(Metainfo::from_bytes(&bytes).map_err(|e| {
                    StoreError::Unavailable(format!("a stored torrent is unreadable: {e}"))
                })?);
                parsed.insert((*v2).clone(), meta.clone());
                fetched.insert(*v2, meta);
            }
        }
        Ok(hashes
            .iter()
            .zip(cached)
            .filter_map(|(h, c)| c.or_else(|| fetched.get(h).cloned()))
            .collect())
    }

    /// The torrent stored under a v2 hex hash, parsed once per process.
    async fn by_v2(&self, v2: &str) -> Result<Option<Arc<Metainfo>>, StoreError> {
        if let Some(meta) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(v2)
        {
            return Ok(Some(meta.clone()));
        }
        Ok(self.many(vec![v2.to_owned()]).await?.pop())
    }

    async fn index(&self, index: &str, field: String) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.get()?;
        redis::cmd("HGET")
            .arg(key(index))
            .arg(field)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

impl TorrentStore for RedisTorrents {
    fn insert(
        &self,
        meta: Metainfo,
        limit: usize,
        _now: u64,
    ) -> StoreResult<'_, (Registered, Arc<Metainfo>)> {
        Box::pin(async move {
            let v2 = meta.info_hash_v2.to_string();
            let truncated = hex::encode(&meta.info_hash_v2.0[..20]);
            let mut conn = self.conn.get()?;
            let outcome: i64 = INSERT_SCRIPT
                .key(key("torrents"))
                .key(key("by_v1"))
                .key(key("by_bt"))
                .key(key("order"))
                .key(key("seq"))
                .key(key("sorted"))
                .arg(&v2)
                .arg(&meta.bytes[..])
                .arg(meta.info_hash_v1.to_string())
                .arg(truncated)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match outcome {
                1 => {
                    // This instance's own misses are stale at once; others' at their next batch.
                    self.bt_missing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clear();
                    Ok((Registered::Created, Arc::new(meta)))
                }
                0 => {
                    let existing = self.by_v2(&v2).await?.unwrap_or_else(|| Arc::new(meta));
                    Ok((Registered::Existing, existing))
                }
                _ => Err(Full::new("the torrent registry", "tracker.max_torrents", limit).into()),
            }
        })
    }

    fn get(&self, hash: InfoHash) -> StoreResult<'_, Option<Arc<Metainfo>>> {
        Box::pin(async move {
            let v2 = match hash {
                InfoHash::V2(h) => Some(h.to_string()),
                InfoHash::V1(h) => self.index("by_v1", h.to_string()).await?,
            };
            match v2 {
                Some(v2) => self.by_v2(&v2).await,
                None => Ok(None),
            }
        })
    }

    fn get_bt(&self, hash: [u8; 20]) -> StoreResult<'_, Option<Arc<Metainfo>>> {
        Box::pin(async move {
            let known = self
                .bt_found
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&hash)
                .cloned();
            if let Some(v2) = known {
                return self.by_v2(&v2).await;
            }
            {
                let missing = self.bt_missing.lock().unwrap_or_else(|e| e.into_inner());
                if missing
                    .get(&hash)
                    .is_some_and(|&seq| self.conn.registry_unchanged_since(seq))
                {
                    return Ok(None);
                }
            }
            // Either index may hold it (a v1 hash, or a v2 hash truncated for BitTorrent): both
            // asked in one round trip.
            let hex = hex::encode(hash);
            let mut conn = self.conn.get()?;
            let (by_v1, by_bt, seq): (Option<String>, Option<String>, Option<u64>) = redis::pipe()
                .atomic()
                .cmd("HGET")
                .arg(key("by_v1"))
                .arg(&hex)
                .cmd("HGET")
                .arg(key("by_bt"))
                .arg(&hex)
                .cmd("GET")
                .arg(key("seq"))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let seq = seq.unwrap_or(0);
            self.conn.saw_registry(seq);
            let v2 = by_v1.or(by_bt);
            let Some(v2) = v2 else {
                let mut missing = self.bt_missing.lock().unwrap_or_else(|e| e.into_inner());
                if missing.len() >= MAX_MISSES {
                    missing.clear();
                }
                missing.insert(hash, seq);
                return Ok(None);
            };
            self.bt_found
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hash, v2.clone());
            self.by_v2(&v2).await
        })
    }

    fn all(&self) -> StoreResult<'_, Vec<Arc<Metainfo>>> {
        Box::pin(async move {
            let order: Vec<String> = zrange(&self.conn, "order", 0, -1, false).await?;
            self.many(order).await
        })
    }

    fn page(&self, after: Option<InfoHashV2>, limit: usize) -> StoreResult<'_, Vec<Arc<Metainfo>>> {
        Box::pin(async move {
            self.backfill_sorted().await?;
            let mut conn = self.conn.get()?;
            let from = after.map_or_else(|| "-".to_owned(), |h| format!("({h}"));
            let hashes: Vec<String> = redis::cmd("ZRANGE")
                .arg(key("sorted"))
                .arg(from)
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            self.many(hashes).await
        })
    }

    fn count(&self) -> StoreResult<'_, usize> {
        Box::pin(async move {
            let mut conn = self.conn.get()?;
            redis::cmd("HLEN")
                .arg(key("torrents"))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn contains(&self, hashes: Vec<InfoHashV2>) -> StoreResult<'_, Vec<bool>> {
        Box::pin(async move {
            if hashes.is_empty() {
                // An empty pipeline is an error ("empty command"), not zero answers.
                return Ok(Vec::new());
            }
            let mut conn = self.conn.get()?;
            let mut pipe = redis::pipe();
            for hash in &hashes {
                pipe.cmd("HEXISTS")
                    .arg(key("torrents"))
                    .arg(hash.to_string());
            }
            pipe.query_async(&mut conn).await.map_err(unavailable)
        })
    }
}

/// Swarms in Redis.
pub struct RedisSwarms {
    conn: RedisConn,
    ttl: u64,
    limits: Limits,
    bt_peers: bt_peers::BtPeers,
}

/// A native announce. KEYS: s, sf, swarms. ARGV: url, now, ttl, stopped, max per swarm,
/// max swarms, swarm key. Returns 1 recorded, -1 swarm full, -2 swarm table full.
const SEEDER_ANNOUNCE: &str = r"
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl - 1)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl - 1)
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[7]) end
  return 1
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local members = redis.call('ZCARD', KEYS[1])
  if members >= tonumber(ARGV[5]) then return -1 end
  if members == 0 and not redis.call('ZSCORE', KEYS[3], ARGV[7])
     and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return -2 end
  redis.call('HSET', KEYS[2], ARGV[1], now)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('EXPIRE', KEYS[1], 2 * ttl)
redis.call('EXPIRE', KEYS[2], 2 * ttl)
return 1
";

/// The scripts, hashed once (invoking sends EVALSHA, and the script itself only when Redis
/// does not know it yet).
static INSERT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(INSERT));
static BACKFILL_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(BACKFILL_SORTED));
static SEEDER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SEEDER_ANNOUNCE));

impl RedisSwarms {
    pub fn new(conn: RedisConn, ttl: u64, limits: Limits) -> Self {
        RedisSwarms {
            bt_peers: bt_peers::BtPeers::new(conn.clone(), ttl, limits),
            conn,
            ttl,
            limits,
        }
    }

    fn full(&self, code: i64) -> StoreError {
        let l = self.limits;
        match code {
            -1 => Full::new(
                "this torrent's swarm",
                "tracker.max_peers_per_swarm",
                l.max_peers_per_swarm,
            ),
            _ => Full::new(
                "the tracker's swarm table",
                "tracker.max_swarms",
                l.max_swarms,
            ),
        }
        .into()
    }

    fn live_from(&self, now: u64) -> u64 {
        now.saturating_sub(self.ttl)
    }
}

fn swarm_id(key: &InfoHash) -> String {
    key.to_string()
}

impl SwarmStore for RedisSwarms {
    fn dependency(&self) -> Option<(&'static str, StoreResult<'_, ()>)> {
        Some(("redis", Box::pin(ping(&self.conn))))
    }

    fn announce(
        &self,
        swarm: InfoHash,
        url: SeederUrl,
        event: Option<Event>,
        now: u64,
    ) -> StoreResult<'_, ()> {
        Box::pin(async move {
            let id = swarm_id(&swarm);
            let mut conn = self.conn.get()?;
            let outcome: i64 = SEEDER_SCRIPT
                .key(key(&format!("s:{id}")))
                .key(key(&format!("sf:{id}")))
                .key(key("swarms"))
                .arg(url.as_str())
                .arg(now)
                .arg(self.ttl)
                .arg(if event == Some(Event::Stopped) {
                    "1"
                } else {
                    "0"
                })
                .arg(self.limits.max_peers_per_swarm)
                .arg(self.limits.max_swarms)
                .arg(&id)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if outcome < 0 {
                return Err(self.full(outcome));
            }
            Ok(())
        })
    }

    fn seeders(&self, swarm: InfoHash, now: u64, max: usize) -> StoreResult<'_, Vec<PeerView>> {
        Box::pin(async move {
            let id = swarm_id(&swarm);
            let mut conn = self.conn.get()?;
            let live: Vec<(String, u64)> = redis::cmd("ZRANGE")
                .arg(key(&format!("s:{id}")))
                .arg("+inf")
                .arg(self.live_from(now))
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(max)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if live.is_empty() {
                return Ok(Vec::new());
            }
            let urls: Vec<&str> = live.iter().map(|(u, _)| u.as_str()).collect();
            let first: Vec<Option<u64>> = redis::cmd("HMGET")
                .arg(key(&format!("sf:{id}")))
                .arg(&urls)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(live
                .into_iter()
                .zip(first)
                .filter_map(|((url, last), first)| {
                    Some(PeerView {
                        url: SeederUrl::parse(&url).ok()?,
                        last_announce: last,
                        first_seen: first.unwrap_or(last),
                    })
                })
                .collect())
        })
    }

    fn is_listed(&self, swarm: InfoHash, url: SeederUrl, now: u64) -> StoreResult<'_, bool> {
        Box::pin(async move {
            let mut conn = self.conn.get()?;
            let score: Option<u64> = redis::cmd("ZSCORE")
                .arg(key(&format!("s:{}", swarm_id(&swarm))))
                .arg(url.as_str())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(score.is_some_and(|last| last >= self.live_from(now)))
        })
    }

    fn live_seeders(&self, swarms: Vec<InfoHash>, now: u64) -> StoreResult<'_, Vec<usize>> {
        Box::pin(async move {
            if swarms.is_empty() {
                // An empty pipeline is an error ("empty command"), not zero answers.
                return Ok(Vec::new());
            }
            let mut conn = self.conn.get()?;
            let mut pipe = redis::pipe();
            for swarm in &swarms {
                pipe.cmd("ZCOUNT")
                    .arg(key(&format!("s:{}", swarm_id(swarm))))
                    .arg(self.live_from(now))
                    .arg("+inf");
            }
            pipe.query_async(&mut conn).await.map_err(unavailable)
        })
    }

    fn total_live_seeders(&self, now: u64) -> StoreResult<'_, usize> {
        Box::pin(async move {
            let mut conn = self.conn.get()?;
            let swarms: Vec<String> =
                zrange(&self.conn, "swarms", self.live_from(now), "+inf", true).await?;
            if swarms.is_empty() {
                // An empty pipeline is an error ("empty command"), not zero answers.
                return Ok(0);
            }
            let mut pipe = redis::pipe();
            for id in &swarms {
                pipe.cmd("ZCOUNT")
                    .arg(key(&format!("s:{id}")))
                    .arg(self.live_from(now))
                    .arg("+inf");
            }
            let counts: Vec<usize> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
            Ok(counts.into_iter().sum())
        })
    }

    fn bt_announce(&self, a: Announce, now: u64) -> StoreResult<'_, AnnounceOutcome> {
        Box::pin(async move {
            self.bt_peers.announce(a, now).await.map_err(|e| match e {
                bt_peers::Refused::Full(code) => self.full(code),
                bt_peers::Refused::Store(e) => e,
            })
        })
    }

    fn bt_stats(&self, keys: Vec<[u8; 20]>, now: u64) -> StoreResult<'_, Vec<ScrapeStats>> {
        Box::pin(async move {
            let mut conn = self.conn.get()?;
            let live = self.live_from(now);
            let mut pipe = redis::pipe();
            let seeder = bt_peers::SEEDER_SCORE;
            for swarm in &keys {
                let id = hex::encode(swarm);
                let peers = bt_peers::peers_key(&id);
                pipe.cmd("ZCOUNT")
                    .arg(&peers)
                    .arg(seeder + live)
                    .arg("+inf");
                pipe.cmd("ZCOUNT")
                    .arg(&peers)
                    .arg(live)
                    .arg(format!("({seeder}"));
                pipe.cmd("HGET").arg(key("dl")).arg(&id);
            }
            let answers: Vec<Option<u64>> =
                pipe.query_async(&mut conn).await.map_err(unavailable)?;
            Ok(answers
                .chunks_exact(3)
                .map(|one| ScrapeStats {
                    complete: one[0].unwrap_or(0) as usize,
                    incomplete: one[1].unwrap_or(0) as usize,
                    downloaded: one[2].unwrap_or(0),
                })
                .collect())
        })
    }

    fn bt_keys(&self, max: usize) -> StoreResult<'_, Vec<[u8; 20]>> {
        Box::pin(async move {
            let ids: Vec<String> = zrange(&self.conn, "bt_swarms", 0, -1, false).await?;
            let mut keys: Vec<[u8; 20]> = ids
                .iter()
                .filter_map(|id| hex::decode(id).ok()?.try_into().ok())
                .collect();
            keys.sort_unstable();
            keys.truncate(max);
            Ok(keys)
        })
    }

    /// Trims the swarm indexes; the members themselves expire with their keys. A BitTorrent
    /// swarm silent for longer than the TTL is removed with its keys (every announce follows a
    /// read of its swarm at most [`bt_peers::PEER_LIST_SECS`] earlier, which marks the swarm
    /// active, so its members have all expired; a key a plain write created has no lifetime
    /// of its own). Download counts of removed swarms are dropped unless `keep` says otherwise.
    fn expire(&self, now: u64, keep: Keep) -> StoreResult<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.get()?;
            let cutoff = now.saturating_sub(self.ttl + 1);
            let bt_cutoff = cutoff.saturating_sub(bt_peers::PEER_LIST_SECS);
            loop {
                let gone: Vec<String> = REMOVE_SILENT_SWARMS
                    .key(key("bt_swarms"))
                    .arg(bt_cutoff)
                    .arg(REMOVE_AT_ONCE)
                    .arg(PREFIX)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let dropped: Vec<&String> = gone
                    .iter()
                    .filter(|id| {
                        !hex::decode(id)
                            .ok()
                            .and_then(|b| <[u8; 20]>::try_from(b).ok())
                            .is_some_and(|k| keep(&k))
                    })
                    .collect();
                if !dropped.is_empty() {
                    let mut forget = FORGET_DOWNLOADS.prepare_invoke();
                    forget.key(key("bt_swarms")).key(key("dl")).arg(dropped);
                    forget
                        .invoke_async::<()>(&mut conn)
                        .await
                        .map_err(unavailable)?;
                }
                if gone.len() < REMOVE_AT_ONCE {
                    break;
                }
            }
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(key("swarms"))
                .arg("-inf")
                .arg(cutoff)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        })
    }
}
