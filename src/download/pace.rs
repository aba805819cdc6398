//! `--max-rate`: requests paced to a byte rate over all seeders, with governor's GCRA limiter
//! as the token bucket.
//!
//! A request starts at once; the next one waits until the bytes of those before it are paid
//! for at the rate. Time left unused (a slow spell) is saved up to a burst's worth, and the
//! bucket starts empty: a download is paced from its first request.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Governor counts time in whole nanoseconds; a cell is made big enough to take a microsecond
/// at least, so rounding stays under 0.1% at any rate.
const MAX_CELLS_PER_SECOND: u64 = 1_000_000;

pub struct Pace {
    limiter: DefaultDirectRateLimiter,
    /// Bytes per governor cell: 1 up to 1 MB/s, then enough for a cell to take ~1 µs.
    unit: u64,
    /// The most cells one wait may ask for: governor refuses more than its burst at once.
    burst: NonZeroU32,
    /// Bytes started and not yet paid for (less than a cell of it is carried over).
    owed: u64,
}

impl Pace {
    /// `rate` bytes per second, saving up at most `burst` of unused time.
    pub fn new(rate: u64, burst: Duration) -> Self {
        let rate = rate.max(1);
        let unit = rate.div_ceil(MAX_CELLS_PER_SECOND);
        let cells_per_second = rate as f64 / unit as f64;
        let period = Duration::from_secs_f64(1.0 / cells_per_second);
        let burst_cells = (burst.as_secs_f64() * cells_per_second).clamp(1.0, f64::from(u32::MAX));
        let burst = NonZeroU32::new(burst_cells as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .expect("at most 10^6 cells a second: a period of a microsecond at least")
            .allow_burst(burst);
        let limiter = RateLimiter::direct(quota);
        // A new limiter holds a full burst; nothing has been saved up yet.
        let _ = limiter.check_n(burst);
        Pace {
            limiter,
            unit,
            burst,
            owed: 0,
        }
    }

    /// Counts the bytes of a request that just started.
    pub fn spend(&mut self, bytes: u64) {
        self.owed = self.owed.saturating_add(bytes);
    }

    /// Whether the next request must wait for those before it to be paid for.
    pub fn owes(&self) -> bool {
        self.owed >= self.unit
    }

    /// Waits until what is owed is paid, a burst at a time. Cancel-safe: what was paid before
    /// the future is dropped stays paid.
    pub async fn pay(&mut self) {
        while self.owes() {
            let cells = (self.owed / self.unit).min(u64::from(self.burst.get()));
            let n = NonZeroU32::new(cells as u32).expect("owing means a cell at least");
            self.limiter
                .until_n_ready(n)
                .await
                .expect("never more than the burst at once");
            self.owed -= cells * self.unit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// How long paying for `bytes` takes right now.
    async fn pay_for(pace: &mut Pace, bytes: u64) -> Duration {
        let started = Instant::now();
        pace.spend(bytes);
        pace.pay().await;
        assert!(!pace.owes());
        started.elapsed()
    }

    #[tokio::test]
    async fn it_starts_empty_and_paces_to_the_rate() {
        let mut pace = Pace::new(1_000_000, Duration::from_millis(50));
        let took = pay_for(&mut pace, 100_000).await;
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[tokio::test]
    async fn more_than_a_burst_is_paid_in_burst_sized_waits() {
        // 150 kB at 1 MB/s with a burst of 50 kB: three waits, none refused.
        let mut pace = Pace::new(1_000_000, Duration::from_millis(50));
        let took = pay_for(&mut pace, 150_000).await;
        assert!(took >= Duration::from_millis(145), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
    }

    #[tokio::test]
    async fn unused_time_is_saved_up_to_the_burst_only() {
        use futures_util::FutureExt;
        let mut pace = Pace::new(1_000_000, Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // 200 ms idle saved 50 ms: 50 kB are paid at once, on the first poll.
        pace.spend(50_000);
        assert_eq!(pace.pay().now_or_never(), Some(()));
        // The next 50 kB take their time; an abandoned wait leaves them owed.
        pace.spend(50_000);
        assert_eq!(pace.pay().now_or_never(), None);
        assert!(pace.owes());
        let started = Instant::now();
        pace.pay().await;
        assert!(started.elapsed() >= Duration::from_millis(45));
    }

    #[tokio::test]
    async fn fast_rates_count_in_bigger_cells_and_carry_the_remainder() {
        // 3 GB/s: 3000-byte cells. 1 byte less than a cell is owed, not paid, so it never
        // holds a request back, and it is counted with the next request's bytes.
        let mut pace = Pace::new(3_000_000_000, Duration::from_secs(1));
        assert_eq!(pace.unit, 3000);
        pace.spend(2999);
        assert!(!pace.owes());
        pace.spend(1);
        assert!(pace.owes());
        // 30 MB at 3 GB/s: 10 ms.
        let took = pay_for(&mut pace, 30_000_000 - 3000).await;
        assert!(took >= Duration::from_millis(9), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
}
