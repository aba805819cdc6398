//! BEP 3 announces in Redis, the bulk of a busy tracker's work, made cheap in four ways:
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
//! - **One sorted set per swarm.** A peer is one member (its id and address, see [`member`])
//!   scored by its last announce, seeders in a range of their own ([`SEEDER_SCORE`]): an
//!   announce is one ZADD whatever the peer's role was, and a read returns peers ready to hand
//!   out.
//! - **Plain writes when nothing needs deciding.** A re-announce or a join to a swarm this
//!   instance has just read, far from its cap, is that one ZADD, whose answer (new or not) is
//!   the change to the counts. Everything that decides (reads, completions, stops, joins near
//!   a cap, swarms not read yet) runs in a Lua script with the exact counts.
//!
//! Every announce is still recorded in Redis before it is answered.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use super::{key, unavailable, RedisConn};
use crate::per_thread::PerThread;
use crate::tracker::bep3::{AnnounceEvent, PeerAddr, ScrapeStats};
use crate::tracker::bt_swarm::{Announce, AnnounceOutcome};
use crate::tracker::store::StoreError;
use crate::tracker::Limits;

/// Where seeders' scores start: a swarm is one sorted set (`pz:<swarm>`) of its peers, scored
/// by last announce (Unix s) for leechers and by `SEEDER_SCORE` + last announce for seeders, so
/// one ZADD records an announce whatever the peer's role was, each role is a score range
/// (counted with ZCOUNT, read newest first with ZREVRANGEBYSCORE), and expiry is two ranges.
/// 2^40: far above any Unix time, and every score stays an exact integer in a double.
pub(super) const SEEDER_SCORE: u64 = 1 << 40;

/// The sorted set of a swarm's peers, by the swarm key's hex.
pub(super) fn peers_key(swarm: &str) -> String {
    key(&format!("pz:{swarm}"))
}

/// A peer as a swarm's member: its id (20 bytes), port (2, big-endian) and IP address (4 or
/// 16), so a read returns peers ready to hand out. A peer whose address changes is a second
/// member until the first expires, as in trackers that know peers by address.
pub(super) fn member(peer_id: &[u8; 20], addr: SocketAddr) -> Vec<u8> {
    let mut member = Vec::with_capacity(38);
    member.extend_from_slice(peer_id);
    member.extend_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => member.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => member.extend_from_slice(&ip.octets()),
    }
    member
}

/// The peer a swarm's member names; `None` for anything else.
fn parse_member(member: &[u8]) -> Option<PeerAddr> {
    let peer_id: [u8; 20] = member.get(..20)?.try_into().ok()?;
    let port = u16::from_be_bytes(member.get(20..22)?.try_into().ok()?);
    let ip = match member.get(22..)? {
        ip if ip.len() == 4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        ip if ip.len() == 16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
        _ => return None,
    };
    Some(PeerAddr {
        peer_id,
        addr: SocketAddr::new(ip, port),
    })
}

/// Announces that decide something. KEYS: dl, bt_swarms, then pz (peers) and pd (peers whose
/// download was counted) per announce. ARGV: ttl, max per swarm, max swarms, then per
/// announce: member (see [`member`]), now, event, left, want, swarm key. Returns one answer per
/// announce: {status, complete, incomplete, downloaded}, status -1 (swarm full) or -2 (swarm
/// table full) refusing it. With `want` > 0 the answer goes on with the count of leechers
/// read, then the freshest `want` leechers and then the freshest `want` seeders (members), and
/// that swarm is trimmed of expired peers first. The swarm index (`bt_swarms`) is trimmed by
/// the expiry loop alone, which also deletes the keys of the swarms it removes. Counts are two
/// ZCOUNTs and a read touches only the peers it returns: no cost grows with the swarm.
const ANNOUNCE_BATCH: &str = r"
local ttl, max_peers, max_swarms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dl, swarms = KEYS[1], KEYS[2]
local SEED = 1099511627776

local function announce(pz, pd, member, now, event, left, want, swarm)
  local id = string.sub(member, 1, 20)
  if want > 0 then
    local cutoff = now - ttl - 1
    for _, range in ipairs({{'-inf', cutoff}, {SEED, SEED + cutoff}}) do
      local expired = redis.call('ZRANGEBYSCORE', pz, range[1], range[2])
      -- unpack has a limit (about 8000 values): forget their downloads in slices.
      for from = 1, #expired, 1000 do
        local ids = {}
        for i = from, math.min(from + 999, #expired) do
          ids[#ids + 1] = string.sub(expired[i], 1, 20)
        end
        redis.call('SREM', pd, unpack(ids))
      end
      if #expired > 0 then redis.call('ZREMRANGEBYSCORE', pz, range[1], range[2]) end
    end
  end
  local old = redis.call('ZSCORE', pz, member)
  local seeders = redis.call('ZCOUNT', pz, SEED, '+inf')
  local leechers = redis.call('ZCOUNT', pz, '-inf', '(' .. SEED)
  local members = seeders + leechers
  if old then
    if tonumber(old) >= SEED then seeders = seeders - 1 else leechers = leechers - 1 end
  end
  if event == 'stopped' then
    if old then redis.call('ZREM', pz, member) end
    redis.call('SREM', pd, id)
  else
    if not old then
      if members >= max_peers then return {-1} end
      if members == 0 and not redis.call('ZSCORE', swarms, swarm)
         and redis.call('ZCARD', swarms) >= max_swarms then return {-2} end
    end
    if event == 'completed' and redis.call('SADD', pd, id) == 1 then
      redis.call('HINCRBY', dl, swarm, 1)
    end
    if left == 0 then
      redis.call('ZADD', pz, SEED + now, member)
      seeders = seeders + 1
    else
      redis.call('ZADD', pz, now, member)
      leechers = leechers + 1
    end
    -- Key lifetimes and swarm activity are refreshed by reads (at least once a second per
    -- instance and busy swarm, see PeerLists) and whenever this script creates the swarm. A
    -- key a plain write creates lives until the next read, or until the expiry loop deletes
    -- the swarm's keys.
    if want > 0 or members == 0 then
      redis.call('ZADD', swarms, now, swarm)
      redis.call('EXPIRE', pz, 2 * ttl)
      redis.call('EXPIRE', pd, 2 * ttl)
    end
  end
  local answer = {1, seeders, leechers, tonumber(redis.call('HGET', dl, swarm) or '0')}
  if want > 0 then
    local l = redis.call('ZREVRANGEBYSCORE', pz, '(' .. SEED, '-inf', 'LIMIT', 0, want)
    local s = redis.call('ZREVRANGEBYSCORE', pz, '+inf', SEED, 'LIMIT', 0, want)
    table.insert(answer, #l)
    for _, peer in ipairs(l) do table.insert(answer, peer) end
    for _, peer in ipairs(s) do table.insert(answer, peer) end
  end
  return answer
end

local answers = {}
for j = 0, (#ARGV - 3) / 6 - 1 do
  local a, k = 3 + j * 6, 2 + j * 2
  answers[j + 1] = announce(KEYS[k + 1], KEYS[k + 2], ARGV[a + 1], tonumber(ARGV[a + 2]),
    ARGV[a + 3], tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6])
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
    /// Each thread's batch queue, whose driver runs on that thread's runtime.
    queues: PerThread<mpsc::Sender<Job>>,
}

/// How an announce is recorded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Write {
    /// Through the script, reading `want` peers of each kind (0: none).
    Script { want: usize },
    /// One ZADD; the swarm's counts come from its remembered list.
    Plain,
}

/// What Redis answered for one announce.
enum Answer {
    Script(redis::Value),
    /// Whether the peer (at this address) was new to the swarm.
    Plain {
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

impl BtPeers {
    pub fn new(conn: RedisConn, ttl: u64, limits: Limits) -> Self {
        BtPeers {
            conn,
            ttl,
            limits,
            lists: PeerLists::default(),
            queues: PerThread::default(),
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
        let (stats, read) = match answer {
            // The counts remembered now (or, if forgotten meanwhile, when the write was
            // decided), with this announce's change.
            Answer::Plain { added } => {
                let counts = lists.get(&a.key).map_or(remembered, |list| list.stats);
                (counted(counts, &a, added), None)
            }
            Answer::Script(answer) => parse_script_answer(answer)?,
        };
        match (write, read) {
            (Write::Script { want }, Some((leechers, seeders))) if want > 0 => {
                if lists.len() >= MAX_PEER_LISTS {
                    lists.retain(|_, list| now < list.read_at + PEER_LIST_SECS);
                    if lists.len() >= MAX_PEER_LISTS {
                        lists.clear();
                    }
                }
                let list = PeerList {
                    read_at: now,
                    asked: want,
                    stats,
                    leechers,
                    seeders,
                };
                lists.insert(a.key, list);
            }
            _ => {
                if let Some(list) = lists.get_mut(&a.key) {
                    list.stats = stats;
                    list.record(&a);
                }
            }
        }
        let peers = match lists.get(&a.key) {
            Some(list) if a.numwant > 0 => list.pick(&a),
            _ => Vec::new(),
        };
        Ok(AnnounceOutcome { stats, peers })
    }

    /// This thread's batch queue, with its driver started on this thread's runtime (again, if
    /// that runtime is gone).
    fn queue(&self) -> mpsc::Sender<Job> {
        self.queues.get(
            |queue| !queue.is_closed(),
            || {
                let (queue, waiting) = mpsc::channel(MAX_WAITING);
                tokio::spawn(drive(self.conn.clone(), self.ttl, self.limits, waiting));
                queue
            },
        )
    }
}

/// `counts` after a plain write of `a`, given whether the peer was new to the swarm. A known
/// peer that changed role without saying "completed" moves between the counts at the next
/// read (within the second the counts may be old anyway).
fn counted(mut counts: ScrapeStats, a: &Announce, added: bool) -> ScrapeStats {
    let role = match a.left {
        0 => &mut counts.complete,
        _ => &mut counts.incomplete,
    };
    *role += usize::from(added);
    counts
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
    let peers: Vec<Option<PeerAddr>> = answer[5..]
        .iter()
        .map(|m| match m {
            redis::Value::BulkString(m) => parse_member(m),
            _ => None,
        })
        .collect();
    let split = (leechers.max(0) as usize).min(peers.len());
    let kind = |peers: &[Option<PeerAddr>]| peers.iter().flatten().cloned().collect();
    Ok((stats, Some((kind(&peers[..split]), kind(&peers[split..])))))
}

/// Sends what is waiting as one batch and answers each announce when Redis has; with up to
/// [`IN_FLIGHT`] batches out at once, the next one is on its way while Redis works on the
/// last, so neither side waits for the other's round trip.
async fn drive(conn: RedisConn, ttl: u64, limits: Limits, mut waiting: mpsc::Receiver<Job>) {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut out = FuturesUnordered::new();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            got = waiting.recv_many(&mut batch, MAX_BATCH), if out.len() < IN_FLIGHT => {
                if got == 0 {
                    break;
                }
                keep_each_peers_order(&mut batch);
                out.push(send(conn.clone(), std::mem::take(&mut batch), ttl, limits));
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

/// One transaction: the scripted announces in one EVAL, the registry's sequence, then one
/// ZADD per plain announce.
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
            .arg(2 + 2 * scripted.len())
            .arg(key("dl"))
            .arg(key("bt_swarms"));
        let swarms: Vec<String> = scripted
            .iter()
            .map(|j| hex::encode(j.announce.key))
            .collect();
        for swarm in &swarms {
            eval.arg(peers_key(swarm)).arg(key(&format!("pd:{swarm}")));
        }
        eval.arg(ttl)
            .arg(limits.max_peers_per_swarm)
            .arg(limits.max_swarms);
        for (job, swarm) in scripted.iter().zip(&swarms) {
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
            eval.arg(member(&a.peer_id, a.addr))
                .arg(job.now)
                .arg(event)
                .arg(a.left)
                .arg(want)
                .arg(swarm);
        }
    }
    // What vouches for this instance's "not registered" answers (see RedisTorrents::get_bt).
    pipe.cmd("GET").arg(key("seq"));
    for job in batch.iter().filter(|j| j.write == Write::Plain) {
        let a = &job.announce;
        let score = match a.left {
            0 => SEEDER_SCORE + job.now,
            _ => job.now,
        };
        pipe.cmd("ZADD")
            .arg(peers_key(&hex::encode(a.key)))
            .arg(score)
            .arg(member(&a.peer_id, a.addr));
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
    let expected = usize::from(scripted > 0) + 1 + plain;
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
    let registry = replies
        .next()
        .and_then(|seq| redis::from_redis_value::<Option<u64>>(seq).ok().flatten())
        .unwrap_or(0);
    let flag = |v: Option<redis::Value>| matches!(v, Some(redis::Value::Int(1)));
    let answers = batch
        .iter()
        .map(|job| match job.write {
            Write::Script { .. } => Answer::Script(script_answers.next().expect("counted")),
            Write::Plain => Answer::Plain {
                added: flag(replies.next()),
            },
        })
        .collect();
    Ok((answers, registry))
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
    fn a_member_names_its_peer_and_nothing_else_parses() {
        for addr in ["10.0.0.7:6881", "[2001:db8::1]:51413"] {
            let peer = PeerAddr {
                peer_id: *b"-XX0001-abcdefghijkl",
                addr: addr.parse().unwrap(),
            };
            let m = member(&peer.peer_id, peer.addr);
            assert_eq!(parse_member(&m), Some(peer));
        }
        // An address of the layout before (an "ip port" hash value) or a cut member.
        assert_eq!(parse_member(b"10.0.0.7 6881"), None);
        let m = member(&[7; 20], "10.0.0.7:6881".parse().unwrap());
        assert_eq!(parse_member(&m[..25]), None);
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
