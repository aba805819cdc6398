//! BEP 3 announces in Redis, the bulk of a busy tracker's work, made cheap in two ways:
//!
//! - **Batched.** Announces arriving while one batch is at Redis wait for the next, which
//!   carries them all in one script call (group commit): Redis's cost per script call is paid
//!   once per batch, not per announce, and an idle tracker still sends each announce at once.
//!   Each thread that announces has its own batch queue and driver task, on its own runtime.
//! - **Peer lists read at most once a second.** Each instance remembers, per swarm, the peer
//!   lists it last read ([`PeerList`]) and reuses them for [`PEER_LIST_SECS`], applying its own
//!   writes meanwhile; an announce then is a write plus two counts. Other instances' peers show
//!   within that second. Expired peers are trimmed on those reads, so counts may include peers
//!   expired for up to a second.
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

/// A batch of BEP 3 announces. KEYS: dl, bt_swarms, then ps (seeders), pl (leechers), pi (peer
/// info) per announce. ARGV: ttl, max per swarm, max swarms, then per announce: peer id, now,
/// event, addr ("ip port"), left, want, swarm key. Returns one answer per announce:
/// {status, complete, incomplete, downloaded}, status -1 (swarm full) or -2 (swarm table full)
/// refusing it. With `want` > 0 the answer goes on with the count of leechers read, then
/// id/info pairs of the freshest `want` leechers and then of the freshest `want` seeders, and
/// that swarm is trimmed of expired peers first. The swarm index (`bt_swarms`) is trimmed by
/// the expiry loop alone, which first drops the download counts of the swarms it removes. Seeders and leechers are separate sets, so the
/// counts are two ZCARDs and a read touches only the peers it returns: no cost grows with the
/// swarm.
const ANNOUNCE_BATCH: &str = r"
local ttl, max_peers, max_swarms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dl, swarms = KEYS[1], KEYS[2]

local function announce(ps, pl, pi, id, now, event, addr, left, want, swarm)
  local sets = {ps, pl}
  if want > 0 then
    local cutoff = now - ttl - 1
    for i = 1, 2 do
      local expired = redis.call('ZRANGEBYSCORE', sets[i], '-inf', cutoff)
      -- unpack has a limit (about 8000 values): delete in slices.
      for from = 1, #expired, 1000 do
        redis.call('HDEL', pi, unpack(expired, from, math.min(from + 999, #expired)))
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
  else
    local completed, role = '0', ''
    if info then
      -- 'ip port <0|1><s|l>'; an older 'ip port <0|1>' has no role.
      completed = string.match(info, ' ([01])[sl]?$') or '0'
      role = string.match(info, '[01]([sl])$') or ''
    else
      local members = seeders + leechers
      if members >= max_peers then return {-1} end
      if members == 0 and not redis.call('ZSCORE', swarms, swarm)
         and redis.call('ZCARD', swarms) >= max_swarms then return {-2} end
    end
    if event == 'completed' and completed == '0' then
      completed = '1'
      redis.call('HINCRBY', dl, swarm, 1)
    end
    local into, out, now_role = pl, ps, 'l'
    if left == 0 then into, out, now_role = ps, pl, 's' end
    local moved = 0
    if role ~= now_role and info then moved = redis.call('ZREM', out, id) end
    local before = leechers
    if left == 0 then before = seeders end
    local added = redis.call('ZADD', into, now, id)
    local members = seeders + leechers
    if left == 0 then
      seeders, leechers = seeders + added, leechers - moved
    else
      seeders, leechers = seeders - moved, leechers + added
    end
    local fresh = addr .. ' ' .. completed .. now_role
    if info ~= fresh then redis.call('HSET', pi, id, fresh) end
    -- Key lifetimes and swarm activity are refreshed by reads (at least once a second per
    -- instance and busy swarm, see PeerLists) and whenever a write creates a key. The three
    -- keys always get the same deadline, so none outlives the others without one.
    if want > 0 or before == 0 or members == 0 then
      redis.call('ZADD', swarms, now, swarm)
      for i = 1, 2 do redis.call('EXPIRE', sets[i], 2 * ttl) end
      redis.call('EXPIRE', pi, 2 * ttl)
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
  local a, k = 3 + j * 7, 2 + j * 3
  answers[j + 1] = announce(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 1],
    tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5]),
    tonumber(ARGV[a + 6]), ARGV[a + 7])
end
return answers
";

static ANNOUNCE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ANNOUNCE_BATCH));

/// How long, in seconds of the tracker's clock, an instance reuses the peer lists it read for
/// a swarm. Handing out a second-old list costs BitTorrent nothing (clients re-announce every
/// few minutes) and turns every other announce of a busy swarm into a write.
const PEER_LIST_SECS: u64 = 1;
/// Most swarms with remembered lists; past it they are all forgotten (clients choose swarms).
const MAX_PEER_LISTS: usize = 4096;
/// Most announces in one script call: a batch holds Redis, which serves one script at a time,
/// for about 10 us per announce.
const MAX_BATCH: usize = 64;
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

/// One announce waiting for its batch.
struct Job {
    announce: Announce,
    now: u64,
    want: usize,
    reply: oneshot::Sender<Result<redis::Value, StoreError>>,
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

    pub async fn announce(&self, a: Announce, now: u64) -> Result<AnnounceOutcome, Refused> {
        let cached = self
            .lists
            .lock()
            .get(&a.key)
            .is_some_and(|list| list.serves(a.numwant, now));
        // One more than wanted of each kind, in case the asker is among them. An announce that
        // wants no peers still reads one of each when the list is stale: reads are what keep
        // the swarm's keys alive (see the script).
        let want = if cached { 0 } else { a.numwant + 1 };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            announce: a,
            now,
            want,
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
        let answer: Vec<redis::Value> = redis::from_redis_value(answer)
            .map_err(|e| StoreError::Unavailable(format!("Redis answered oddly: {e}")))?;
        let int = |v: &redis::Value| redis::from_redis_value::<i64>(v.clone()).unwrap_or(0);
        let status = answer.first().map_or(-2, int);
        if status < 0 {
            return Err(Refused::Full(status));
        }
        let stats = ScrapeStats {
            complete: answer.get(1).map_or(0, int) as usize,
            incomplete: answer.get(2).map_or(0, int) as usize,
            downloaded: answer.get(3).map_or(0, int) as u64,
        };
        let mut lists = self.lists.lock();
        if want > 0 {
            let leechers = answer.get(4).map_or(0, int).max(0) as usize;
            let pairs: Vec<Option<PeerAddr>> = answer[5.min(answer.len())..]
                .chunks_exact(2)
                .map(|pair| parse_peer(&pair[0], &pair[1]))
                .collect();
            let split = leechers.min(pairs.len());
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
                    leechers: pairs[..split].iter().flatten().cloned().collect(),
                    seeders: pairs[split..].iter().flatten().cloned().collect(),
                },
            );
        } else if let Some(list) = lists.get_mut(&a.key) {
            list.record(&a);
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

/// Sends what is waiting as one batch, waits for Redis, answers each announce, repeats.
async fn drive(conn: RedisConn, ttl: u64, limits: Limits, mut waiting: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut invocation = ANNOUNCE_SCRIPT.prepare_invoke();
        invocation
            .key(key("dl"))
            .key(key("bt_swarms"))
            .arg(ttl)
            .arg(limits.max_peers_per_swarm)
            .arg(limits.max_swarms);
        for job in &batch {
            let a = &job.announce;
            let swarm = hex::encode(a.key);
            let event = match a.event {
                Some(AnnounceEvent::Started) => "started",
                Some(AnnounceEvent::Completed) => "completed",
                Some(AnnounceEvent::Stopped) => "stopped",
                None => "",
            };
            invocation
                .key(key(&format!("ps:{swarm}")))
                .key(key(&format!("pl:{swarm}")))
                .key(key(&format!("pi:{swarm}")))
                .arg(&a.peer_id[..])
                .arg(job.now)
                .arg(event)
                .arg(format!("{} {}", a.addr.ip(), a.addr.port()))
                .arg(a.left)
                .arg(job.want)
                .arg(swarm);
        }
        let answers: Result<Vec<redis::Value>, StoreError> = match conn.get() {
            Ok(mut redis) => invocation
                .invoke_async(&mut redis)
                .await
                .map_err(unavailable),
            Err(e) => Err(e),
        };
        match answers {
            Ok(answers) if answers.len() == batch.len() => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Ok(answers) => {
                let message = format!(
                    "Redis answered {} announces of {}",
                    answers.len(),
                    batch.len()
                );
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// One swarm's peers as last read, freshest first, with this instance's own writes since
/// applied, so an instance always sees what it was told.
struct PeerList {
    read_at: u64,
    /// How many of each kind the read asked for: a shorter list is the whole kind.
    asked: usize,
    leechers: VecDeque<PeerAddr>,
    seeders: VecDeque<PeerAddr>,
}

impl PeerList {
    /// Whether this list can answer an announce wanting `numwant` others at `now`.
    fn serves(&self, numwant: usize, now: u64) -> bool {
        now < self.read_at + PEER_LIST_SECS && numwant < self.asked
    }

    /// Applies an announce this instance recorded.
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
    fn a_remembered_list_follows_this_instances_writes() {
        let mut list = PeerList {
            read_at: 100,
            asked: 3,
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
