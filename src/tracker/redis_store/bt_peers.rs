//! BEP 3 announces in Redis, the bulk of a busy tracker's work, made cheap in three ways:
//!
//! - **Batched.** Announces arriving while batches are at Redis (two at most per thread) wait
//!   for the next, which carries them all in one atomic transaction (group commit): Redis's
//!   cost per round trip is paid once per batch, not per announce, and an idle tracker still
//!   sends each announce at once. Each thread that announces has its own batch queue and
//!   driver task, on its own runtime.
//! - **Peer lists and counts read at most once a second.** Each instance remembers, per swarm,
//!   the peer lists and counts it last read ([`PeerList`]) and reuses them for
//!   [`PEER_LIST_SECS`], applying its own writes meanwhile; other instances' announces show
//!   within that second. Expired peers are trimmed on those reads, so counts may include peers
//!   expired for up to a second.
//! - **Plain writes when nothing needs deciding.** A re-announce or a join to a swarm this
//!   instance has just read, far from its cap, is three plain commands (move the peer out of
//!   the other role's set, into its own, record its address) whose answers are the count
//!   changes. Everything that decides (reads, completions, stops, joins near a cap, swarms not
//!   read yet) runs in a Lua script with the exact counts.
//!
//! Every announce is still recorded in Redis before it is answered.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use super::{key, unavailable, RedisConn};
use crate::tracker::bep3::{AnnounceEvent, PeerAddr, ScrapeStats};
use crate::tracker::bt_swarm::{Announce, AnnounceOutcome};
use crate::tracker::store::StoreError;
use crate::tracker::Limits;

/// Announces that decide something. KEYS: dl, bt_swarms, then ps (seeders), pl (leechers), pi
/// (peer address), pd (peers whose download was counted) per announce. ARGV: ttl, max per
/// swarm, max swarms, then per announce: peer id, now, event, addr ("ip port"), left, want,
/// swarm key. Returns one answer per announce: {status, complete, incomplete, downloaded},
/// status -1 (swarm full) or -2 (swarm table full) refusing it. With `want` > 0 the answer goes
/// on with the count of leechers read, then id/address pairs of the freshest `want` leechers
/// and then of the freshest `want` seeders, and that swarm is trimmed of expired peers first.
/// The swarm index (`bt_swarms`) is trimmed by the expiry loop alone, which also deletes the
/// keys of the swarms it removes. Seeders and leechers are separate sets, so the counts are two
/// ZCARDs and a read touches only the peers it returns: no cost grows with the swarm.
///
/// An address written before `pd` existed ("ip port <0|1>[s|l]") still says whether that
/// peer's download was counted, until a plain write replaces it (see CHANGELOG).
const ANNOUNCE_BATCH: &str = r"
local ttl, max_peers, max_swarms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dl, swarms = KEYS[1], KEYS[2]

local function announce(ps, pl, pi, pd, id, now, event, addr, left, want, swarm)
  local sets = {ps, pl}
  if want > 0 then
    local cutoff = now - ttl - 1
    for i = 1, 2 do
      local expired = redis.call('ZRANGEBYSCORE', sets[i], '-inf', cutoff)
      -- unpack has a limit (about 8000 values): delete in slices.
      for from = 1, #expired, 1000 do
        local slice = {unpack(expired, from, math.min(from + 999, #expired))}
        redis.call('HDEL', pi, unpack(slice))
        redis.call('SREM', pd, unpack(slice))
      end
      if #expired > 0 then redis.call('ZREMRANGEBYSCORE', sets[i], '-inf', cutoff) end
    end
  end
  local info = redis.call('HGET', pi, id)
  local seeders, leechers = redis.call('ZCARD', ps), redis.call('ZCARD', pl)
  if event == 'stopped' then
    seeders = seeders - redis.call('ZREM', ps, id)
    leechers = leechers - redis.call('ZREM', pl, id)
    redis.call('HDEL', pi, id)
    redis.call('SREM', pd, id)
  else
    -- A download counted by an older version is a flag in the address: keep it in pd before
    -- the address is rewritten.
    if info and string.match(info, '^%S+ %S+ 1') then redis.call('SADD', pd, id) end
    if not info then
      local members = seeders + leechers
      if members >= max_peers then return {-1} end
      if members == 0 and not redis.call('ZSCORE', swarms, swarm)
         and redis.call('ZCARD', swarms) >= max_swarms then return {-2} end
    end
    if event == 'completed' and redis.call('SADD', pd, id) == 1 then
      redis.call('HINCRBY', dl, swarm, 1)
    end
    local into, out = pl, ps
    if left == 0 then into, out = ps, pl end
    local before = leechers
    if left == 0 then before = seeders end
    local moved = redis.call('ZREM', out, id)
    local added = redis.call('ZADD', into, now, id)
    local members = seeders + leechers
    if left == 0 then
      seeders, leechers = seeders + added, leechers - moved
    else
      seeders, leechers = seeders - moved, leechers + added
    end
    if info ~= addr then redis.call('HSET', pi, id, addr) end
    -- Key lifetimes and swarm activity are refreshed by reads (at least once a second per
    -- instance and busy swarm, see PeerLists) and whenever this script creates a key. A key
    -- created by a plain write lives until the next read, or until the expiry loop deletes
    -- the swarm's keys.
    if want > 0 or before == 0 or members == 0 then
      redis.call('ZADD', swarms, now, swarm)
      for i = 1, 2 do redis.call('EXPIRE', sets[i], 2 * ttl) end
      redis.call('EXPIRE', pi, 2 * ttl)
      redis.call('EXPIRE', pd, 2 * ttl)
    end
  end
  local answer = {1, seeders, leechers, tonumber(redis.call('HGET', dl, swarm) or '0')}
  if want > 0 then
    for i = 2, 1, -1 do
      local ids = redis.call('ZREVRANGE', sets[i], 0, want - 1)
      if i == 2 then table.insert(answer, #ids) end
      if #ids > 0 then
        local infos = redis.call('HMGET', pi, unpack(ids))
        for j, peer in ipairs(ids) do
          table.insert(answer, peer)
          table.insert(answer, infos[j] or '')
        end
      end
    end
  end
  return answer
end

local answers = {}
for j = 0, (#ARGV - 3) / 7 - 1 do
  local a, k = 3 + j * 7, 2 + j * 4
  answers[j + 1] = announce(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[a + 1],
    tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5]),
    tonumber(ARGV[a + 6]), ARGV[a + 7])
end
return answers
";

/// How long, in seconds of the tracker's clock, an instance reuses the peer lists it read for
/// a swarm. Handing out a second-old list costs BitTorrent nothing (clients re-announce every
/// few minutes) and turns every other announce of a busy swarm into a write.
pub(super) const PEER_LIST_SECS: u64 = 1;
/// Most swarms with remembered lists; past it they are all forgotten (clients choose swarms).
const MAX_PEER_LISTS: usize = 4096;
/// Most announces in one batch: a batch holds Redis, which runs one transaction at a time,
/// for about 10 us per scripted announce.
const MAX_BATCH: usize = 64;
/// Batches at Redis at once, per thread.
const IN_FLIGHT: usize = 2;
/// Announces waiting for a batch, per thread; past it announces are refused with 503.
const MAX_WAITING: usize = 4096;

/// Why an announce was not recorded.
pub enum Refused {
    /// A cap: -1 the swarm, -2 the swarm table (see the script).
    Full(i64),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

pub struct BtPeers {
    conn: RedisConn,
    ttl: u64,
    limits: Limits,
    lists: PeerLists,
    /// Which store this is, among the batch queues a thread holds.
    id: usize,
}

/// How an announce is recorded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Write {
    /// Through the script, reading `want` peers of each kind (0: none).
    Script { want: usize },
    /// Three plain commands; the swarm's counts come from its remembered list.
    Plain,
}

/// What Redis answered for one announce.
enum Answer {
    Script(redis::Value),
    /// Whether the peer left the other role's set, and whether it was new to its own.
    Plain {
        moved: bool,
        added: bool,
    },
}

/// One announce waiting for its batch.
struct Job {
    announce: Announce,
    now: u64,
    write: Write,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

thread_local! {
    static QUEUES: RefCell<HashMap<usize, mpsc::Sender<Job>>> = RefCell::default();
}

impl BtPeers {
    pub fn new(conn: RedisConn, ttl: u64, limits: Limits) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        BtPeers {
            conn,
            ttl,
            limits,
            lists: PeerLists::default(),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// How `a` is to be recorded, given what this instance remembers of its swarm, and the
    /// counts remembered for a plain write.
    fn write_for(&self, a: &Announce, now: u64) -> (Write, ScrapeStats) {
        let lists = self.lists.lock();
        let Some(list) = lists.get(&a.key).filter(|l| l.serves(a.numwant, now)) else {
            // One more than wanted of each kind, in case the asker is among them. An announce
            // that wants no peers still reads one of each when the list is stale: reads are
            // what keep the swarm's keys alive (see the script).
            let want = a.numwant + 1;
            return (Write::Script { want }, ScrapeStats::default());
        };
        let members = list.stats.complete + list.stats.incomplete;
        // Far from the cap, counts a second old cannot be the difference; near it (or in a
        // swarm that may have emptied, whose keys a write could create), the script decides.
        let roomy = members > 0 && members < self.limits.max_peers_per_swarm / 2;
        let deciding = matches!(
            a.event,
            Some(AnnounceEvent::Completed | AnnounceEvent::Stopped)
        );
        if roomy && !deciding {
            (Write::Plain, list.stats)
        } else {
            (Write::Script { want: 0 }, list.stats)
        }
    }

    pub async fn announce(&self, a: Announce, now: u64) -> Result<AnnounceOutcome, Refused> {
        let (write, remembered) = self.write_for(&a, now);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            announce: a,
            now,
            write,
            reply,
        };
        if self.queue().try_send(job).is_err() {
            return Err(StoreError::Unavailable(
                "too many announces waiting for Redis; try again".into(),
            )
            .into());
        }
        let answer = answer.await.map_err(|_| {
            StoreError::Unavailable("the Redis batch was dropped; try again".into())
        })??;
        let mut lists = self.lists.lock();
        let stats = match answer {
            Answer::Plain { moved, added } => match lists.get_mut(&a.key) {
                Some(list) => {
                    list.count(&a, moved, added);
                    list.record(&a);
                    list.stats
                }
                // Forgotten meanwhile (the table was full): the counts as they were, with this
                // announce's change; they are re-read next time.
                None => {
                    let mut list = PeerList {
                        read_at: now,
                        asked: 0,
                        stats: remembered,
                        leechers: VecDeque::new(),
                        seeders: VecDeque::new(),
                    };
                    list.count(&a, moved, added);
                    list.stats
                }
            },
            Answer::Script(answer) => {
                let (stats, read) = parse_script_answer(answer)?;
                match (write, read) {
                    (Write::Script { want }, Some((leechers, seeders))) if want > 0 => {
                        if lists.len() >= MAX_PEER_LISTS {
                            lists.retain(|_, list| now < list.read_at + PEER_LIST_SECS);
                            if lists.len() >= MAX_PEER_LISTS {
                                lists.clear();
                            }
                        }
                        lists.insert(
                            a.key,
                            PeerList {
                                read_at: now,
                                asked: want,
                                stats,
                                leechers,
                                seeders,
                            },
                        );
                    }
                    _ => {
                        if let Some(list) = lists.get_mut(&a.key) {
                            list.stats = stats;
                            list.record(&a);
                        }
                    }
                }
                stats
            }
        };
        let peers = match lists.get(&a.key) {
            Some(list) if a.numwant > 0 => list.pick(&a),
            _ => Vec::new(),
        };
        Ok(AnnounceOutcome { stats, peers })
    }

    /// This thread's batch queue, with its driver started on this thread's runtime (again, if
    /// that runtime is gone).
    fn queue(&self) -> mpsc::Sender<Job> {
        QUEUES.with(|queues| {
            let mut queues = queues.borrow_mut();
            if let Some(queue) = queues.get(&self.id).filter(|q| !q.is_closed()) {
                return queue.clone();
            }
            let (queue, waiting) = mpsc::channel(MAX_WAITING);
            tokio::spawn(drive(self.conn.clone(), self.ttl, self.limits, waiting));
            queues.insert(self.id, queue.clone());
            queue
        })
    }
}

/// A script answer: the counts, and for a read the leechers and seeders it returned.
#[allow(clippy::type_complexity)]
fn parse_script_answer(
    answer: redis::Value,
) -> Result<
    (
        ScrapeStats,
        Option<(VecDeque<PeerAddr>, VecDeque<PeerAddr>)>,
    ),
    Refused,
> {
    let answer: Vec<redis::Value> = redis::from_redis_value(answer)
        .map_err(|e| StoreError::Unavailable(format!("Redis answered oddly: {e}")))?;
    let int = |v: &redis::Value| match v {
        redis::Value::Int(n) => *n,
        _ => 0,
    };
    let status = answer.first().map_or(-2, int);
    if status < 0 {
        return Err(Refused::Full(status));
    }
    let stats = ScrapeStats {
        complete: answer.get(1).map_or(0, int).max(0) as usize,
        incomplete: answer.get(2).map_or(0, int).max(0) as usize,
        downloaded: answer.get(3).map_or(0, int).max(0) as u64,
    };
    let Some(leechers) = answer.get(4).map(int) else {
        return Ok((stats, None));
    };
    let pairs: Vec<Option<PeerAddr>> = answer[5..]
        .chunks_exact(2)
        .map(|pair| parse_peer(&pair[0], &pair[1]))
        .collect();
    let split = (leechers.max(0) as usize).min(pairs.len());
    let kind = |pairs: &[Option<PeerAddr>]| pairs.iter().flatten().cloned().collect();
    Ok((stats, Some((kind(&pairs[..split]), kind(&pairs[split..])))))
}

/// Sends what is waiting as one batch and answers each announce when Redis has; with up to
/// [`IN_FLIGHT`] batches out at once, the next one is on its way while Redis works on the
/// last, so neither side waits for the other's round trip.
async fn drive(conn: RedisConn, ttl: u64, limits: Limits, mut waiting: mpsc::Receiver<Job>) {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut out = FuturesUnordered::new();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        tokio::select! {
            got = waiting.recv_many(&mut batch, MAX_BATCH), if out.len() < IN_FLIGHT => {
                if got == 0 {
                    break;
                }
                keep_each_peers_order(&mut batch);
                out.push(send(conn.clone(), batch, ttl, limits));
            }
            Some(()) = out.next() => {}
        }
    }
    while out.next().await.is_some() {}
}

/// The transaction runs the scripted announces before the plain ones: a peer's plain write
/// followed in the same batch by a scripted announce of its own (a "stopped" right after a
/// re-announce) is scripted too, so Redis sees that peer's announces in the order they came.
fn keep_each_peers_order(batch: &mut [Job]) {
    let mut scripted_later = std::collections::HashSet::new();
    for job in batch.iter_mut().rev() {
        let peer = (job.announce.key, job.announce.peer_id);
        if job.write == Write::Plain && scripted_later.contains(&peer) {
            job.write = Write::Script { want: 0 };
        }
        if job.write != Write::Plain {
            scripted_later.insert(peer);
        }
    }
}

/// One batch to Redis and its answers back to the announces waiting for them.
async fn send(conn: RedisConn, batch: Vec<Job>, ttl: u64, limits: Limits) {
    let answers = match conn.get() {
        Ok(mut redis) => batch_pipeline(&batch, ttl, limits)
            .query_async::<Vec<redis::Value>>(&mut redis)
            .await
            .map_err(unavailable)
            .and_then(|replies| split_replies(&batch, replies))
            .map(|(answers, registry)| {
                conn.saw_registry(registry);
                answers
            }),
        Err(e) => Err(e),
    };
    match answers {
        Ok(answers) => {
            // Scripted answers first: the script ran first in the transaction, and a read it
            // made replaces a swarm's remembered counts, which the plain writes after it change.
            let (scripted, plain): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .zip(answers)
                .partition(|(_, answer)| matches!(answer, Answer::Script(_)));
            for (job, answer) in scripted.into_iter().chain(plain) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(StoreError::Unavailable(message.clone())));
            }
        }
    }
}

/// One transaction: the scripted announces in one EVAL, then three commands per plain one.
fn batch_pipeline(batch: &[Job], ttl: u64, limits: Limits) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    let scripted: Vec<&Job> = batch
        .iter()
        .filter(|j| matches!(j.write, Write::Script { .. }))
        .collect();
    if !scripted.is_empty() {
        let eval = pipe
            .cmd("EVAL")
            .arg(ANNOUNCE_BATCH)
            .arg(2 + 4 * scripted.len())
            .arg(key("dl"))
            .arg(key("bt_swarms"));
        for job in &scripted {
            let swarm = hex::encode(job.announce.key);
            for kind in ["ps", "pl", "pi", "pd"] {
                eval.arg(key(&format!("{kind}:{swarm}")));
            }
        }
        eval.arg(ttl)
            .arg(limits.max_peers_per_swarm)
            .arg(limits.max_swarms);
        for job in &scripted {
            let a = &job.announce;
            let event = match a.event {
                Some(AnnounceEvent::Started) => "started",
                Some(AnnounceEvent::Completed) => "completed",
                Some(AnnounceEvent::Stopped) => "stopped",
                None => "",
            };
            let want = match job.write {
                Write::Script { want } => want,
                Write::Plain => 0,
            };
            eval.arg(&a.peer_id[..])
                .arg(job.now)
                .arg(event)
                .arg(address(a))
                .arg(a.left)
                .arg(want)
                .arg(hex::encode(a.key));
        }
    }
    // What vouches for this instance's "not registered" answers (see RedisTorrents::get_bt).
    pipe.cmd("GET").arg(key("seq"));
    for job in batch.iter().filter(|j| j.write == Write::Plain) {
        let a = &job.announce;
        let swarm = hex::encode(a.key);
        let (into, out) = match a.left {
            0 => ("ps", "pl"),
            _ => ("pl", "ps"),
        };
        pipe.cmd("ZREM")
            .arg(key(&format!("{out}:{swarm}")))
            .arg(&a.peer_id[..])
            .cmd("ZADD")
            .arg(key(&format!("{into}:{swarm}")))
            .arg(job.now)
            .arg(&a.peer_id[..])
            .cmd("HSET")
            .arg(key(&format!("pi:{swarm}")))
            .arg(&a.peer_id[..])
            .arg(address(a))
            .ignore();
    }
    pipe
}

/// Each job's answer from the transaction's replies, in the order [`batch_pipeline`] sent
/// them, and the registry's sequence.
fn split_replies(
    batch: &[Job],
    replies: Vec<redis::Value>,
) -> Result<(Vec<Answer>, u64), StoreError> {
    let scripted = batch
        .iter()
        .filter(|j| matches!(j.write, Write::Script { .. }))
        .count();
    let plain = batch.len() - scripted;
    let expected = usize::from(scripted > 0) + 1 + 2 * plain;
    if replies.len() != expected {
        return Err(StoreError::Unavailable(format!(
            "Redis answered {} replies for a batch of {} announces",
            replies.len(),
            batch.len()
        )));
    }
    let mut replies = replies.into_iter();
    let mut script_answers = match scripted {
        0 => Vec::new(),
        _ => redis::from_redis_value::<Vec<redis::Value>>(replies.next().expect("counted"))
            .map_err(|e| StoreError::Unavailable(format!("Redis answered oddly: {e}")))?,
    }
    .into_iter();
    if script_answers.len() != scripted {
        return Err(StoreError::Unavailable(format!(
            "Redis answered {} announces of {scripted}",
            script_answers.len()
        )));
    }
    let registry = match replies.next() {
        Some(redis::Value::BulkString(seq)) => std::str::from_utf8(&seq)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let flag = |v: Option<redis::Value>| matches!(v, Some(redis::Value::Int(1)));
    let answers = batch
        .iter()
        .map(|job| match job.write {
            Write::Script { .. } => Answer::Script(script_answers.next().expect("counted")),
            Write::Plain => Answer::Plain {
                moved: flag(replies.next()),
                added: flag(replies.next()),
            },
        })
        .collect();
    Ok((answers, registry))
}

/// A peer's address as stored in a swarm's `pi` hash: "ip port".
fn address(a: &Announce) -> String {
    format!("{} {}", a.addr.ip(), a.addr.port())
}

/// One swarm's peers and counts as last read, peers freshest first, with this instance's own
/// writes since applied, so an instance always sees what it was told.
struct PeerList {
    read_at: u64,
    /// How many of each kind the read asked for: a shorter list is the whole kind.
    asked: usize,
    stats: ScrapeStats,
    leechers: VecDeque<PeerAddr>,
    seeders: VecDeque<PeerAddr>,
}

impl PeerList {
    /// Whether this list can answer an announce wanting `numwant` others at `now`.
    fn serves(&self, numwant: usize, now: u64) -> bool {
        now < self.read_at + PEER_LIST_SECS && numwant < self.asked
    }

    /// Applies a plain write's answer to the counts: whether the peer left the other role's
    /// set, and whether it was new to its own.
    fn count(&mut self, a: &Announce, moved: bool, added: bool) {
        let stats = &mut self.stats;
        let (into, out) = match a.left {
            0 => (&mut stats.complete, &mut stats.incomplete),
            _ => (&mut stats.incomplete, &mut stats.complete),
        };
        *into += usize::from(added);
        *out = out.saturating_sub(usize::from(moved));
    }

    /// Applies an announce this instance recorded to the peer lists.
    fn record(&mut self, a: &Announce) {
        for list in [&mut self.leechers, &mut self.seeders] {
            if let Some(at) = list.iter().position(|p| p.peer_id == a.peer_id) {
                list.remove(at);
            }
        }
        if a.event != Some(AnnounceEvent::Stopped) {
            let list = match a.left {
                0 => &mut self.seeders,
                _ => &mut self.leechers,
            };
            list.push_front(PeerAddr {
                peer_id: a.peer_id,
                addr: a.addr,
            });
            list.truncate(self.asked);
        }
    }

    /// A seeder needs no other seeders; everyone else gets leechers, then seeders. Never the
    /// asker itself.
    fn pick(&self, a: &Announce) -> Vec<PeerAddr> {
        let seeders = self.seeders.iter().filter(|_| a.left > 0);
        self.leechers
            .iter()
            .chain(seeders)
            .filter(|p| p.peer_id != a.peer_id)
            .take(a.numwant)
            .cloned()
            .collect()
    }
}

/// The peer lists this instance remembers, by swarm.
#[derive(Default)]
struct PeerLists(Mutex<HashMap<[u8; 20], PeerList>>);

impl PeerLists {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 20], PeerList>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A peer id and its info "ip port ..." as stored in a swarm's `pi` hash.
fn parse_peer(peer_id: &redis::Value, info: &redis::Value) -> Option<PeerAddr> {
    let peer_id: Vec<u8> = redis::from_redis_value(peer_id.clone()).ok()?;
    let info: String = redis::from_redis_value(info.clone()).ok()?;
    let mut parts = info.split(' ');
    let ip = parts.next()?.parse::<IpAddr>().ok()?;
    let port = parts.next()?.parse().ok()?;
    Some(PeerAddr {
        peer_id: peer_id.try_into().ok()?,
        addr: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u8, left: u64, event: Option<AnnounceEvent>) -> Announce {
        Announce {
            key: [1; 20],
            peer_id: [id; 20],
            addr: SocketAddr::from(([10, 0, 0, id], 6881)),
            left,
            event,
            numwant: 2,
        }
    }

    #[test]
    fn a_plain_write_before_the_same_peers_scripted_announce_is_scripted_too() {
        let job = |id: u8, event: Option<AnnounceEvent>, write: Write| Job {
            announce: peer(id, 10, event),
            now: 100,
            write,
            reply: oneshot::channel().0,
        };
        let mut batch = [
            job(1, None, Write::Plain),
            job(2, None, Write::Plain),
            job(1, Some(AnnounceEvent::Stopped), Write::Script { want: 0 }),
            job(2, None, Write::Plain),
        ];
        keep_each_peers_order(&mut batch);
        let writes: Vec<Write> = batch.iter().map(|j| j.write).collect();
        assert_eq!(
            writes,
            [
                Write::Script { want: 0 },
                Write::Plain,
                Write::Script { want: 0 },
                Write::Plain
            ]
        );
    }

    #[test]
    fn a_remembered_list_follows_this_instances_writes() {
        let mut list = PeerList {
            read_at: 100,
            asked: 3,
            stats: ScrapeStats::default(),
            leechers: VecDeque::new(),
            seeders: VecDeque::new(),
        };
        list.record(&peer(1, 0, None));
        list.record(&peer(2, 10, None));
        list.record(&peer(3, 10, None));
        // A leecher gets leechers first, never itself, at most numwant.
        let got: Vec<u8> = list
            .pick(&peer(3, 10, None))
            .iter()
            .map(|p| p.peer_id[0])
            .collect();
        assert_eq!(got, [2, 1]);
        // A seeder gets no seeders.
        let got: Vec<u8> = list
            .pick(&peer(1, 0, None))
            .iter()
            .map(|p| p.peer_id[0])
            .collect();
        assert_eq!(got, [3, 2]);
        // Completing moves a peer; stopping removes it.
        list.record(&peer(2, 0, Some(AnnounceEvent::Completed)));
        list.record(&peer(3, 10, Some(AnnounceEvent::Stopped)));
        assert_eq!(list.leechers.len(), 0);
        assert_eq!(list.seeders.len(), 2);
        // Only within its second, and only for as many as it read.
        assert!(list.serves(2, 100) && !list.serves(2, 101) && !list.serves(3, 100));
    }
}
