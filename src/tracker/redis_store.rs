//! The tracker's stores in Redis, shared by every tracker instance that names the same server
//! (`tracker.redis_url`). Expiry lives in Redis data structures, not in one instance's timer:
//! every swarm is a sorted set of its members scored by their last announce, trimmed by each
//! announce, and its keys expire by themselves when nobody announces any more.
//!
//! Keys (all under `gotorrent:`):
//! - `torrents` hash: v2 hex → bencoded metainfo; `by_v1` and `by_bt` hashes: v1 hex and
//!   truncated-v2 hex → v2 hex; `order` sorted set: v2 hex by registration sequence (`seq`).
//! - `s:<key>` sorted set: seeder URL → last announce (Unix s); `sf:<key>` hash: URL → first
//!   seen; `swarms` sorted set: swarm key → last activity (for counts and the swarm cap).
//! - `ps:<key>` and `pl:<key>` sorted sets: seeder and leecher peer ids → last announce;
//!   `pi:<key>` hash: peer id → "ip port completed"; `dl` hash: swarm key → downloads;
//!   `bt_swarms` sorted set: key → last activity.
//!
//! Each announce is one round trip: a Lua script trims, checks caps, records and answers.
//! `tracker.max_seeders` and `tracker.max_bittorrent_peers` (totals over all swarms) are not
//! kept in Redis; `max_swarms` times `max_peers_per_swarm` bounds them there.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::bep3::{AnnounceEvent, PeerAddr, ScrapeStats};
use super::bt_swarm::{Announce, AnnounceOutcome};
use super::store::{Keep, StoreError, StoreResult, SwarmStore, TorrentStore};
use super::swarm::{Event, PeerView};
use super::{Full, Limits, Registered};
use crate::metainfo::Metainfo;
use crate::types::{InfoHash, SeederUrl};

const PREFIX: &str = "gotorrent:";

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

/// A connection that reconnects by itself; made lazily, so a tracker starts while Redis is down
/// and recovers when it returns (requests meanwhile fail with 503).
pub fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    redis::Client::open(url)?.get_connection_manager_lazy(config)
}

/// Members of a sorted set: by rank (`min`, `max` as 0, -1 for all) or, `by_score`, by score.
async fn zrange<T: redis::FromRedisValue>(
    conn: &ConnectionManager,
    set: &str,
    min: impl redis::ToRedisArgs,
    max: impl redis::ToRedisArgs,
    by_score: bool,
) -> Result<T, StoreError> {
    let mut conn = conn.clone();
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(key(set)).arg(min).arg(max);
    if by_score {
        cmd.arg("BYSCORE");
    }
    cmd.query_async(&mut conn).await.map_err(unavailable)
}

/// Whether Redis answers, for the readiness view.
pub async fn ping(conn: &ConnectionManager) -> Result<(), StoreError> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// The registry in Redis, with parsed torrents cached in this process: a torrent is named by
/// its hash, so a cached copy never goes stale.
pub struct RedisTorrents {
    conn: ConnectionManager,
    parsed: RwLock<HashMap<String, Arc<Metainfo>>>,
    /// BitTorrent hashes found registered (v1, truncated v2) → v2 hex: never stale.
    bt_found: RwLock<HashMap<[u8; 20], String>>,
    /// BitTorrent hashes found unregistered, and when: trusted for [`NEGATIVE_TTL`], so an
    /// announce of an unregistered torrent is one round trip, and a torrent registered through
    /// another instance is merged with its other hash within that time.
    bt_missing: std::sync::Mutex<HashMap<[u8; 20], std::time::Instant>>,
}

/// How long "not registered" is believed without asking Redis again.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// Most remembered misses; past it the memory is cleared (clients choose these hashes).
const MAX_MISSES: usize = 100_000;

/// Registers atomically: the torrent and its indexes, or nothing if it is there or the
/// registry is full. Returns 1 created, 0 existing, -1 full.
const INSERT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), ARGV[1])
return 1
";

impl RedisTorrents {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisTorrents {
            conn,
            parsed: RwLock::default(),
            bt_found: RwLock::default(),
            bt_missing: std::sync::Mutex::default(),
        }
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
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(key("torrents"))
            .arg(v2)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(bytes) = bytes else { return Ok(None) };
        let meta = Arc::new(Metainfo::from_bytes(&bytes).map_err(|e| {
            StoreError::Unavailable(format!("a stored torrent is unreadable: {e}"))
        })?);
        self.parsed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(v2.to_owned(), meta.clone());
        Ok(Some(meta))
    }

    async fn index(&self, index: &str, field: String) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
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
            let mut conn = self.conn.clone();
            let outcome: i64 = INSERT_SCRIPT
                .key(key("torrents"))
                .key(key("by_v1"))
                .key(key("by_bt"))
                .key(key("order"))
                .key(key("seq"))
                .arg(&v2)
                .arg(&meta.bytes[..])
                .arg(meta.info_hash_v1.to_string())
                .arg(truncated)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match outcome {
                1 => Ok((Registered::Created, Arc::new(meta))),
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
                    .is_some_and(|at| at.elapsed() < NEGATIVE_TTL)
                {
                    return Ok(None);
                }
            }
            let hex = hex::encode(hash);
            let v2 = match self.index("by_v1", hex.clone()).await? {
                Some(v2) => Some(v2),
                None => self.index("by_bt", hex).await?,
            };
            let Some(v2) = v2 else {
                let mut missing = self.bt_missing.lock().unwrap_or_else(|e| e.into_inner());
                if missing.len() >= MAX_MISSES {
                    missing.clear();
                }
                missing.insert(hash, std::time::Instant::now());
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
            let mut all = Vec::with_capacity(order.len());
            for v2 in order {
                if let Some(meta) = self.by_v2(&v2).await? {
                    all.push(meta);
                }
            }
            Ok(all)
        })
    }
}

/// Swarms in Redis.
pub struct RedisSwarms {
    conn: ConnectionManager,
    ttl: u64,
    limits: Limits,
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

/// A BEP 3 announce. KEYS: ps (seeders), pl (leechers), pi, dl, bt_swarms. ARGV: peer id, now,
/// ttl, event, addr ("ip port"), left, numwant, max per swarm, max swarms, swarm key.
/// Returns {status, complete, incomplete, downloaded, peer id, addr, ...}; status -1/-2 when
/// full. Seeders and leechers are separate sets, so the counts are two ZCARDs and the answer
/// reads only the peers it hands out: the cost does not grow with the swarm.
const PEER_ANNOUNCE: &str = r"
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local left, numwant = tonumber(ARGV[6]), tonumber(ARGV[7])
local cutoff = now - ttl - 1
for i = 1, 2 do
  local expired = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  if #expired > 0 then
    redis.call('HDEL', KEYS[3], unpack(expired))
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', cutoff)
local info = redis.call('HGET', KEYS[3], ARGV[1])
if ARGV[4] == 'stopped' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  local completed = '0'
  if info then
    completed = string.match(info, '(%d)$')
  else
    local members = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    if members >= tonumber(ARGV[8]) then return {-1} end
    if members == 0 and not redis.call('ZSCORE', KEYS[5], ARGV[10])
       and redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[9]) then return {-2} end
  end
  if ARGV[4] == 'completed' and completed == '0' then
    completed = '1'
    redis.call('HINCRBY', KEYS[4], ARGV[10], 1)
  end
  local into, out = KEYS[2], KEYS[1]
  if left == 0 then into, out = KEYS[1], KEYS[2] end
  redis.call('ZREM', out, ARGV[1])
  redis.call('ZADD', into, now, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5] .. ' ' .. completed)
  redis.call('ZADD', KEYS[5], now, ARGV[10])
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], 2 * ttl) end
end
local answer = {1, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
  tonumber(redis.call('HGET', KEYS[4], ARGV[10]) or '0')}
-- A seeder needs no other seeders; everyone else gets leechers, then seeders. The freshest
-- first; one more than wanted, in case the asker itself is among them.
local ids = redis.call('ZREVRANGE', KEYS[2], 0, numwant)
if left > 0 and #ids <= numwant then
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, numwant - #ids)) do table.insert(ids, id) end
end
local picked = {}
for _, id in ipairs(ids) do
  if id ~= ARGV[1] and #picked < numwant then table.insert(picked, id) end
end
if #picked > 0 then
  local addrs = redis.call('HMGET', KEYS[3], unpack(picked))
  for i, id in ipairs(picked) do
    if addrs[i] then
      table.insert(answer, id)
      table.insert(answer, string.match(addrs[i], '^(%S+ %d+)'))
    end
  end
end
return answer
";

/// The scripts, hashed once (invoking sends EVALSHA, and the script itself only when Redis
/// does not know it yet).
static INSERT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(INSERT));
static SEEDER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SEEDER_ANNOUNCE));
static PEER_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(PEER_ANNOUNCE));

impl RedisSwarms {
    pub fn new(conn: ConnectionManager, ttl: u64, limits: Limits) -> Self {
        RedisSwarms { conn, ttl, limits }
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
    fn announce(
        &self,
        swarm: InfoHash,
        url: SeederUrl,
        event: Option<Event>,
        now: u64,
    ) -> StoreResult<'_, ()> {
        Box::pin(async move {
            let id = swarm_id(&swarm);
            let mut conn = self.conn.clone();
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
            let mut conn = self.conn.clone();
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
            let mut conn = self.conn.clone();
            let score: Option<u64> = redis::cmd("ZSCORE")
                .arg(key(&format!("s:{}", swarm_id(&swarm))))
                .arg(url.as_str())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(score.is_some_and(|last| last >= self.live_from(now)))
        })
    }

    fn live_seeders(&self, swarm: InfoHash, now: u64) -> StoreResult<'_, usize> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("ZCOUNT")
                .arg(key(&format!("s:{}", swarm_id(&swarm))))
                .arg(self.live_from(now))
                .arg("+inf")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn total_live_seeders(&self, now: u64) -> StoreResult<'_, usize> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let swarms: Vec<String> =
                zrange(&self.conn, "swarms", self.live_from(now), "+inf", true).await?;
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
            let id = hex::encode(a.key);
            let event = match a.event {
                Some(AnnounceEvent::Started) => "started",
                Some(AnnounceEvent::Completed) => "completed",
                Some(AnnounceEvent::Stopped) => "stopped",
                None => "",
            };
            let mut conn = self.conn.clone();
            let answer: Vec<redis::Value> = PEER_SCRIPT
                .key(key(&format!("ps:{id}")))
                .key(key(&format!("pl:{id}")))
                .key(key(&format!("pi:{id}")))
                .key(key("dl"))
                .key(key("bt_swarms"))
                .arg(&a.peer_id[..])
                .arg(now)
                .arg(self.ttl)
                .arg(event)
                .arg(format!("{} {}", a.addr.ip(), a.addr.port()))
                .arg(a.left)
                .arg(a.numwant)
                .arg(self.limits.max_peers_per_swarm)
                .arg(self.limits.max_swarms)
                .arg(&id)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let int = |v: &redis::Value| redis::from_redis_value::<i64>(v.clone()).unwrap_or(0);
            let status = answer.first().map_or(-2, int);
            if status < 0 {
                return Err(self.full(status));
            }
            let stats = ScrapeStats {
                complete: answer.get(1).map_or(0, int) as usize,
                incomplete: answer.get(2).map_or(0, int) as usize,
                downloaded: answer.get(3).map_or(0, int) as u64,
            };
            let peers = answer[4.min(answer.len())..]
                .chunks_exact(2)
                .filter_map(|pair| {
                    let peer_id: Vec<u8> = redis::from_redis_value(pair[0].clone()).ok()?;
                    let addr: String = redis::from_redis_value(pair[1].clone()).ok()?;
                    let (ip, port) = addr.split_once(' ')?;
                    Some(PeerAddr {
                        peer_id: peer_id.try_into().ok()?,
                        addr: SocketAddr::new(ip.parse::<IpAddr>().ok()?, port.parse().ok()?),
                    })
                })
                .collect();
            Ok(AnnounceOutcome { stats, peers })
        })
    }

    fn bt_stats(&self, keys: Vec<[u8; 20]>, now: u64) -> StoreResult<'_, Vec<ScrapeStats>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let live = self.live_from(now);
            let mut pipe = redis::pipe();
            for swarm in &keys {
                let id = hex::encode(swarm);
                pipe.cmd("ZCOUNT")
                    .arg(key(&format!("ps:{id}")))
                    .arg(live)
                    .arg("+inf");
                pipe.cmd("ZCOUNT")
                    .arg(key(&format!("pl:{id}")))
                    .arg(live)
                    .arg("+inf");
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

    /// Trims the swarm indexes; the members themselves expire with their keys. Download counts
    /// of swarms left without peers are dropped unless `keep` says otherwise.
    fn expire(&self, now: u64, keep: Keep) -> StoreResult<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let cutoff = now.saturating_sub(self.ttl + 1);
            let gone: Vec<String> = zrange(&self.conn, "bt_swarms", "-inf", cutoff, true).await?;
            let mut pipe = redis::pipe();
            for id in &gone {
                let kept = hex::decode(id)
                    .ok()
                    .and_then(|b| <[u8; 20]>::try_from(b).ok())
                    .is_some_and(|k| keep(&k));
                if !kept {
                    pipe.cmd("HDEL").arg(key("dl")).arg(id).ignore();
                }
            }
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(key("bt_swarms"))
                .arg("-inf")
                .arg(cutoff)
                .ignore();
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(key("swarms"))
                .arg("-inf")
                .arg(cutoff)
                .ignore();
            pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
        })
    }
}
