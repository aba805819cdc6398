//! Which piece to fetch from which seeder next: a pure structure, with time passed in.
//!
//! Work is handed out one request at a time to the seeder expected to finish it soonest (its
//! measured rate over the requests it already has in flight), so fast seeders take more work
//! and a slow one never holds a fixed share. When nothing is missing but pieces are still in
//! flight, idle seeders duplicate them (endgame); the first verified copy wins.

use std::time::Duration;

/// Index of a seeder in the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeederId(pub usize);

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Requests in flight over all seeders.
    pub max_in_flight: usize,
    /// Pieces failing verification before a seeder is dropped.
    pub max_bad_pieces: u32,
    /// Consecutive failed requests before a seeder counts as gone.
    pub max_failures: u32,
    /// First retry delay after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Copies of one piece in flight at once during the endgame.
    pub endgame_copies: usize,
    /// The slowest rate a request is given time for, in bytes per second; see
    /// [`Scheduler::deadline`].
    pub min_rate: f64,
    /// Added to every request's deadline for connecting and the first byte.
    pub deadline_slack: Duration,
    /// Consecutive missed deadlines before a seeder is dropped as too slow.
    pub max_deadline_misses: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_in_flight: 8,
            max_bad_pieces: 3,
            max_failures: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            endgame_copies: 2,
            min_rate: 64.0 * 1024.0,
            deadline_slack: Duration::from_secs(2),
            max_deadline_misses: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeederStatus {
    Active,
    /// Too many consecutive failures; revived if the tracker lists it again.
    Gone,
    /// Sent data that failed verification too often, or missed its deadlines: never used again
    /// in this download.
    Banned(String),
}

#[derive(Debug, Clone)]
pub struct SeederStats {
    pub status: SeederStatus,
    pub in_flight: usize,
    /// Bytes per second over recent verified pieces (exponentially weighted).
    pub rate: Option<f64>,
    pub bytes: u64,
    pub pieces: u32,
    pub bad_pieces: u32,
    consecutive_failures: u32,
    /// When the last counted failure happened.
    last_failure: Option<Duration>,
    deadline_misses: u32,
    backoff_until: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PieceState {
    Missing,
    InFlight(Vec<SeederId>),
    Done,
}

#[derive(Debug)]
struct Slot {
    state: PieceState,
    /// Seeders that sent bad data for this piece.
    avoid: Vec<SeederId>,
}

#[derive(Debug)]
pub struct Scheduler {
    pieces: Vec<Slot>,
    /// No `Missing` piece lies before this index.
    cursor: usize,
    remaining: usize,
    in_flight: usize,
    seeders: Vec<SeederStats>,
    policy: Policy,
}

/// A seeder dropped for bad data.
#[derive(Debug, PartialEq, Eq)]
pub struct Ban {
    pub reason: String,
    /// Pieces whose requests to the banned seeder should be cancelled.
    pub released: Vec<usize>,
}

/// What a verified piece means for other copies still in flight.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// The first verified copy; the listed seeders' duplicate requests can be cancelled.
    First { cancel: Vec<SeederId> },
    /// The piece was already done.
    Duplicate,
}

impl Scheduler {
    /// `done[i]` marks pieces already verified on disk.
    pub fn new(done: &[bool], policy: Policy) -> Self {
        let pieces: Vec<Slot> = done
            .iter()
            .map(|&d| Slot {
                state: if d {
                    PieceState::Done
                } else {
                    PieceState::Missing
                },
                avoid: Vec::new(),
            })
            .collect();
        let remaining = done.iter().filter(|d| !**d).count();
        Scheduler {
            pieces,
            cursor: 0,
            remaining,
            in_flight: 0,
            seeders: Vec::new(),
            policy,
        }
    }

    pub fn add_seeder(&mut self) -> SeederId {
        self.seeders.push(SeederStats {
            status: SeederStatus::Active,
            in_flight: 0,
            rate: None,
            bytes: 0,
            pieces: 0,
            bad_pieces: 0,
            consecutive_failures: 0,
            last_failure: None,
            deadline_misses: 0,
            backoff_until: Duration::ZERO,
        });
        SeederId(self.seeders.len() - 1)
    }

    /// A seeder the tracker lists again gets another chance, unless it was banned.
    pub fn revive(&mut self, id: SeederId) {
        let s = &mut self.seeders[id.0];
        if s.status == SeederStatus::Gone {
            s.status = SeederStatus::Active;
            s.consecutive_failures = 0;
        }
    }

    pub fn seeder(&self, id: SeederId) -> &SeederStats {
        &self.seeders[id.0]
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    pub fn remaining(&self) -> usize {
        self.remaining
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Seeders neither gone nor banned.
    pub fn usable_seeders(&self) -> usize {
        self.seeders
            .iter()
            .filter(|s| s.status == SeederStatus::Active)
            .count()
    }

    /// Seeders in use: those with a request in flight, and `delivered`, which just completed
    /// one. Between its last request and its next, the seeder that delivers has none in flight;
    /// counting requests alone showed "0 seeders" while one seeder served every piece.
    pub fn seeders_in_use(&self, delivered: SeederId) -> usize {
        self.seeders
            .iter()
            .enumerate()
            .filter(|(i, s)| s.in_flight > 0 || *i == delivered.0)
            .count()
    }

    /// When the next seeder leaves its backoff, if any is waiting.
    pub fn next_wakeup(&self, now: Duration) -> Option<Duration> {
        self.seeders
            .iter()
            .filter(|s| s.status == SeederStatus::Active && s.backoff_until > now)
            .map(|s| s.backoff_until)
            .min()
    }

    /// The next request to start, if the in-flight budget and the seeders allow one.
    pub fn assign(&mut self, now: Duration) -> Option<(usize, SeederId)> {
        if self.in_flight >= self.policy.max_in_flight || self.is_done() {
            return None;
        }
        let fastest = self
            .seeders
            .iter()
            .filter_map(|s| s.rate)
            .fold(1.0_f64, f64::max);
        let mut candidates: Vec<(f64, SeederId)> = self
            .seeders
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == SeederStatus::Active && s.backoff_until <= now)
            .map(|(i, s)| {
                // An unmeasured seeder is assumed as fast as the fastest, so it gets tried.
                let rate = s.rate.unwrap_or(fastest).max(1.0);
                ((s.in_flight + 1) as f64 / rate, SeederId(i))
            })
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, seeder) in candidates {
            if let Some(piece) = self.pick_piece(seeder) {
                self.start(piece, seeder);
                return Some((piece, seeder));
            }
        }
        None
    }

    fn pick_piece(&mut self, seeder: SeederId) -> Option<usize> {
        while self
            .pieces
            .get(self.cursor)
            .is_some_and(|p| p.state == PieceState::Done)
        {
            self.cursor += 1;
        }
        let missing = self.pieces[self.cursor..]
            .iter()
            .position(|p| p.state == PieceState::Missing && !p.avoid.contains(&seeder))
            .map(|offset| self.cursor + offset);
        if missing.is_some() {
            return missing;
        }
        // Endgame: only an idle seeder duplicates, so duplicates never crowd out first copies.
        if self.seeders[seeder.0].in_flight > 0 {
            return None;
        }
        self.pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.state {
                PieceState::InFlight(holders)
                    if holders.len() < self.policy.endgame_copies
                        && !holders.contains(&seeder)
                        && !p.avoid.contains(&seeder) =>
                {
                    Some((holders.len(), i))
                }
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    fn start(&mut self, piece: usize, seeder: SeederId) {
        let slot = &mut self.pieces[piece];
        match &mut slot.state {
            PieceState::InFlight(holders) => holders.push(seeder),
            state => *state = PieceState::InFlight(vec![seeder]),
        }
        self.seeders[seeder.0].in_flight += 1;
        self.in_flight += 1;
    }

    /// Removes `seeder` from the piece's holders; the piece is missing again if none remain.
    fn release(&mut self, piece: usize, seeder: SeederId) {
        let slot = &mut self.pieces[piece];
        if let PieceState::InFlight(holders) = &mut slot.state {
            if let Some(pos) = holders.iter().position(|h| *h == seeder) {
                holders.swap_remove(pos);
                self.seeders[seeder.0].in_flight -= 1;
                self.in_flight -= 1;
            }
            if holders.is_empty() {
                slot.state = PieceState::Missing;
                self.cursor = self.cursor.min(piece);
            }
        }
    }

    /// A verified piece from `seeder`, `bytes` long, fetched in `elapsed`.
    pub fn completed(
        &mut self,
        piece: usize,
        seeder: SeederId,
        bytes: u64,
        elapsed: Duration,
    ) -> Completion {
        let stats = &mut self.seeders[seeder.0];
        let sample = bytes as f64 / elapsed.as_secs_f64().max(1e-6);
        stats.rate = Some(stats.rate.map_or(sample, |r| 0.7 * r + 0.3 * sample));
        stats.consecutive_failures = 0;
        stats.deadline_misses = 0;
        stats.bytes += bytes;
        stats.pieces += 1;

        let slot = &mut self.pieces[piece];
        let PieceState::InFlight(holders) = std::mem::replace(&mut slot.state, PieceState::Done)
        else {
            // Already done: this copy's request was released when the first copy won.
            return Completion::Duplicate;
        };
        for holder in &holders {
            self.seeders[holder.0].in_flight -= 1;
            self.in_flight -= 1;
        }
        self.remaining -= 1;
        let cancel = holders.into_iter().filter(|h| *h != seeder).collect();
        Completion::First { cancel }
    }

    /// The seeder sent bytes that failed verification. If that bans it, returns the ban, with
    /// the pieces it still had in flight (now released, so their requests can be cancelled).
    pub fn bad_data(&mut self, piece: usize, seeder: SeederId) -> Option<Ban> {
        self.release(piece, seeder);
        self.pieces[piece].avoid.push(seeder);
        let max = self.policy.max_bad_pieces;
        let stats = &mut self.seeders[seeder.0];
        stats.bad_pieces += 1;
        if stats.bad_pieces < max || matches!(stats.status, SeederStatus::Banned(_)) {
            return None;
        }
        let reason = format!("{} pieces failed SHA-256 verification", stats.bad_pieces);
        Some(self.ban(seeder, reason))
    }

    /// Drops a seeder for the rest of the download and releases what it had in flight.
    fn ban(&mut self, seeder: SeederId, reason: String) -> Ban {
        self.seeders[seeder.0].status = SeederStatus::Banned(reason.clone());
        let held: Vec<usize> = (0..self.pieces.len())
            .filter(|&i| matches!(&self.pieces[i].state, PieceState::InFlight(h) if h.contains(&seeder)))
            .collect();
        for &i in &held {
            self.release(i, seeder);
        }
        Ban {
            reason,
            released: held,
        }
    }

    /// How long a request for `len` bytes from `seeder` may take: the slack, plus the time at
    /// an eighth of its measured rate (a request shares the seeder with others in flight), and
    /// never more than the time at [`Policy::min_rate`]. A seeder that only drips misses it.
    pub fn deadline(&self, seeder: SeederId, len: u64) -> Duration {
        let measured = self.seeders[seeder.0].rate.map_or(0.0, |r| r / 8.0);
        let rate = measured.max(self.policy.min_rate).max(1.0);
        self.policy.deadline_slack + Duration::from_secs_f64(len as f64 / rate)
    }

    /// The request missed its deadline with `received` bytes in `elapsed`: the piece goes back
    /// to the others, the seeder's rate drops to what it showed, and after
    /// [`Policy::max_deadline_misses`] in a row it is dropped (returned as a ban).
    pub fn missed_deadline(
        &mut self,
        piece: usize,
        seeder: SeederId,
        now: Duration,
        received: u64,
        elapsed: Duration,
    ) -> Option<Ban> {
        let counted = self.failed(piece, seeder, now.saturating_sub(elapsed), now, None);
        let max = self.policy.max_deadline_misses;
        let stats = &mut self.seeders[seeder.0];
        stats.rate = Some(received as f64 / elapsed.as_secs_f64().max(1e-6));
        // Requests that stalled together are one stall.
        if !counted {
            return None;
        }
        stats.deadline_misses += 1;
        if stats.deadline_misses < max || matches!(stats.status, SeederStatus::Banned(_)) {
            return None;
        }
        let reason = format!(
            "too slow: missed {} request deadlines in a row (the last: {received} bytes in {:.1} s)",
            stats.deadline_misses,
            elapsed.as_secs_f64()
        );
        Some(self.ban(seeder, reason))
    }

    pub fn is_banned(&self, seeder: SeederId) -> bool {
        matches!(self.seeders[seeder.0].status, SeederStatus::Banned(_))
    }

    /// The request, sent at `started`, failed (transport error, 5xx, protocol violation).
    /// `retry_after` is the seeder's own hint (503 + Retry-After), capped at a minute. Returns
    /// whether the failure counted as the seeder's next one in a row.
    pub fn failed(
        &mut self,
        piece: usize,
        seeder: SeederId,
        started: Duration,
        now: Duration,
        retry_after: Option<Duration>,
    ) -> bool {
        self.release(piece, seeder);
        let policy = self.policy;
        let stats = &mut self.seeders[seeder.0];
        let hint = retry_after.map(|h| h.min(Duration::from_secs(60)));
        // Requests already in flight when an earlier one failed went down with it: one outage
        // (one server dying behind a load balancer takes all of its requests), counted once.
        if stats.last_failure.is_some_and(|at| started < at) {
            if let Some(hint) = hint {
                stats.backoff_until = stats.backoff_until.max(now + hint);
            }
            return false;
        }
        stats.last_failure = Some(now);
        stats.consecutive_failures += 1;
        let exponent = stats.consecutive_failures.saturating_sub(1).min(16);
        let backoff = match hint {
            Some(hint) => hint,
            None => (policy.backoff_base * 2u32.pow(exponent)).min(policy.backoff_max),
        };
        stats.backoff_until = now + backoff;
        if stats.consecutive_failures >= policy.max_failures && stats.status == SeederStatus::Active
        {
            stats.status = SeederStatus::Gone;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn sched(pieces: usize, max_in_flight: usize) -> Scheduler {
        Scheduler::new(
            &vec![false; pieces],
            Policy {
                max_in_flight,
                ..Policy::default()
            },
        )
    }

    #[test]
    fn hands_out_each_missing_piece_once_within_the_budget() {
        let mut s = sched(3, 2);
        let a = s.add_seeder();
        assert_eq!(s.assign(T0), Some((0, a)));
        assert_eq!(s.assign(T0), Some((1, a)));
        assert_eq!(s.assign(T0), None, "budget of 2 in flight");
        s.completed(0, a, 100, Duration::from_millis(1));
        assert_eq!(s.assign(T0), Some((2, a)));
        assert_eq!(s.remaining(), 2);
    }

    #[test]
    fn the_seeder_that_just_delivered_counts_as_in_use() {
        let mut s = sched(2, 1);
        let a = s.add_seeder();
        let b = s.add_seeder();
        let (piece, seeder) = s.assign(T0).unwrap();
        assert_eq!(seeder, a);
        s.completed(piece, a, 10, Duration::from_millis(1));
        assert_eq!(
            s.seeders_in_use(a),
            1,
            "a has nothing in flight, yet serves"
        );
        s.assign(T0).unwrap();
        assert_eq!(
            s.seeders_in_use(a),
            1 + usize::from(s.seeder(b).in_flight > 0)
        );
    }

    #[test]
    fn faster_seeders_get_more_requests() {
        let mut s = sched(100, 8);
        let fast = s.add_seeder();
        let slow = s.add_seeder();
        // Unmeasured seeders count as equally fast, so each gets a first request.
        let (p1, first) = s.assign(T0).unwrap();
        let (p2, second) = s.assign(T0).unwrap();
        assert_eq!((first, second), (fast, slow));
        s.completed(p1, fast, 1_000_000, Duration::from_millis(10)); // 100 MB/s
        s.completed(p2, slow, 1_000_000, Duration::from_millis(1000)); // 1 MB/s
        let mut counts = [0, 0];
        while let Some((_, id)) = s.assign(T0) {
            counts[id.0] += 1;
        }
        assert_eq!(
            counts,
            [8, 0],
            "the slow seeder would take 100 times longer"
        );
    }

    #[test]
    fn endgame_duplicates_the_last_piece_on_an_idle_seeder_and_first_copy_wins() {
        let mut s = sched(1, 8);
        let a = s.add_seeder();
        let b = s.add_seeder();
        assert_eq!(s.assign(T0), Some((0, a)));
        assert_eq!(
            s.assign(T0),
            Some((0, b)),
            "idle seeder duplicates the in-flight piece"
        );
        assert_eq!(s.assign(T0), None, "at most two copies");
        assert_eq!(
            s.completed(0, b, 10, Duration::from_millis(1)),
            Completion::First { cancel: vec![a] }
        );
        assert!(s.is_done());
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.seeder(a).in_flight, 0);
    }

    #[test]
    fn bad_data_bans_after_three_and_the_pieces_go_elsewhere() {
        let mut s = sched(4, 1);
        let bad = s.add_seeder();
        for piece in 0..3 {
            assert_eq!(s.assign(T0), Some((piece, bad)));
            let banned = s.bad_data(piece, bad);
            assert_eq!(banned.is_some(), piece == 2);
        }
        assert!(s.is_banned(bad));
        assert_eq!(s.assign(T0), None, "a banned seeder gets nothing");
        let good = s.add_seeder();
        for piece in 0..4 {
            assert_eq!(s.assign(T0), Some((piece, good)));
            s.completed(piece, good, 1, Duration::from_secs(1));
        }
        assert!(s.is_done());
    }

    #[test]
    fn a_piece_is_not_asked_again_of_a_seeder_that_sent_it_bad() {
        let mut s = sched(1, 1);
        let a = s.add_seeder();
        assert_eq!(s.assign(T0), Some((0, a)));
        assert_eq!(s.bad_data(0, a), None);
        assert_eq!(s.assign(T0), None);
    }

    #[test]
    fn a_ban_releases_the_pieces_the_seeder_still_had_in_flight() {
        let mut s = Scheduler::new(
            &[false; 4],
            Policy {
                max_bad_pieces: 1,
                ..Policy::default()
            },
        );
        let bad = s.add_seeder();
        assert_eq!(s.assign(T0), Some((0, bad)));
        assert_eq!(s.assign(T0), Some((1, bad)));
        let ban = s.bad_data(0, bad).unwrap();
        assert_eq!(ban.released, vec![1]);
        assert_eq!(s.in_flight(), 0);
        let good = s.add_seeder();
        assert_eq!(s.assign(T0), Some((0, good)));
    }

    #[test]
    fn requests_in_flight_together_fail_as_one_outage() {
        // Eight requests to one URL (a load balancer) whose server dies: one failure, not eight.
        let mut s = sched(16, 8);
        let a = s.add_seeder();
        let sent: Vec<usize> = (0..8).map(|_| s.assign(T0).unwrap().0).collect();
        let later = Duration::from_millis(10);
        for p in &sent {
            s.failed(*p, a, T0, later, None);
        }
        assert_eq!(s.seeder(a).status, SeederStatus::Active);
        assert_eq!(
            s.next_wakeup(later),
            Some(later + Duration::from_millis(250))
        );
        // A request sent after that failure, failing too, is the next one in a row.
        let after = later + Duration::from_millis(250);
        let (p, _) = s.assign(after).unwrap();
        s.failed(p, a, after, after, None);
        assert_eq!(
            s.next_wakeup(after),
            Some(after + Duration::from_millis(500))
        );
    }

    #[test]
    fn failures_back_off_exponentially_then_the_seeder_is_gone() {
        let mut s = sched(2, 1);
        let a = s.add_seeder();
        let mut now = T0;
        for attempt in 0..5u32 {
            let (p, id) = s.assign(now).expect("assignable after backoff");
            s.failed(p, id, now, now, None);
            let wake = s.next_wakeup(now);
            if attempt < 4 {
                let expected = Duration::from_millis(250) * 2u32.pow(attempt);
                assert_eq!(wake, Some(now + expected));
                assert_eq!(s.assign(now), None, "in backoff");
                now = wake.unwrap();
            }
        }
        assert_eq!(s.seeder(a).status, SeederStatus::Gone);
        assert_eq!(s.usable_seeders(), 0);
        s.revive(a);
        assert_eq!(s.usable_seeders(), 1);
    }

    #[test]
    fn deadlines_follow_the_measured_rate_and_a_dripping_seeder_is_dropped() {
        let mut s = sched(4, 4);
        let (fast, drip) = (s.add_seeder(), s.add_seeder());
        // Unmeasured: the floor rate of 64 KiB/s, plus the slack.
        assert_eq!(s.deadline(fast, 65536), Duration::from_secs(3));
        s.completed(0, fast, 8 << 20, Duration::from_secs(1));
        // 8 MiB/s measured: an eighth of it, 1 MiB/s, for 1 MiB.
        assert_eq!(s.deadline(fast, 1 << 20), Duration::from_secs(3));

        let (p1, _) = s.assign(T0).unwrap();
        let (p2, who) = s.assign(T0).unwrap();
        assert_eq!(who, drip, "the unmeasured seeder gets tried");
        assert!(s
            .missed_deadline(p2, drip, T0, 10, Duration::from_secs(3))
            .is_none());
        assert_eq!(s.seeder(drip).rate, Some(10.0 / 3.0));
        assert_ne!(
            s.assign(T0).map(|(p, _)| p),
            Some(p1),
            "p1 is still in flight"
        );
        let now = Duration::from_secs(10);
        let (p, id) = loop {
            let (p, id) = s.assign(now).unwrap();
            if id == drip {
                break (p, id);
            }
            s.completed(p, id, 1, Duration::from_millis(1));
        };
        let ban = s
            .missed_deadline(p, id, now, 0, Duration::from_secs(3))
            .unwrap();
        assert!(ban.reason.contains("too slow"), "{}", ban.reason);
        assert!(s.is_banned(drip));
        s.revive(drip);
        assert!(s.is_banned(drip), "listing it again does not bring it back");
    }

    #[test]
    fn retry_after_sets_the_backoff() {
        let mut s = sched(1, 1);
        s.add_seeder();
        let (p, id) = s.assign(T0).unwrap();
        s.failed(p, id, T0, T0, Some(Duration::from_secs(3)));
        assert_eq!(s.next_wakeup(T0), Some(Duration::from_secs(3)));
    }

    #[test]
    fn already_verified_pieces_are_never_assigned() {
        let mut s = Scheduler::new(&[true, false, true], Policy::default());
        s.add_seeder();
        assert_eq!(s.remaining(), 1);
        assert_eq!(s.assign(T0).map(|(p, _)| p), Some(1));
        assert_eq!(s.assign(T0), None);
    }
}
