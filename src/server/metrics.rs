//! Prometheus metrics and the per-request log line, recorded by one middleware.
//!
//! Counters are live. The gauges of state (torrents, shared files, live seeders) are refreshed
//! at most every [`GAUGE_REFRESH`]: counting live seeders walks every swarm, and a scraper (or
//! a client) asking many times a second must not make the server do that each time.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use super::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    pub bytes_served: IntCounter,
    hashed_bytes: IntCounter,
    range_cache_reads: IntCounterVec,
    range_cache_bytes: IntGauge,
    torrents: IntGauge,
    shared_files: IntGauge,
    live_seeders: IntGauge,
    /// When the gauges were last refreshed; held during a refresh, so concurrent scrapes wait
    /// for it instead of each refreshing (or reading gauges not yet set).
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

/// How old the state gauges may be.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("gotorrent".into()), None).expect("a valid metric prefix");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let bytes_served = IntCounter::new(
            "bytes_served_total",
            "File and chunk body bytes sent to clients",
        )
        .expect("valid metric");
        let hashed_bytes = IntCounter::new(
            "hashed_bytes_total",
            "Bytes of shared objects this instance read to hash them: none when every torrent came from the hash cache",
        )
        .expect("valid metric");
        let range_cache_reads = IntCounterVec::new(
            Opts::new(
                "range_cache_reads_total",
                "Reads of an S3-backed seeder's ranges (storage.s3.cache_mib), by where the bytes came from: memory or store",
            ),
            &["from"],
        )
        .expect("valid metric");
        let range_cache_bytes = IntGauge::new(
            "range_cache_bytes",
            "Bytes of recently served ranges held in memory",
        )
        .expect("valid metric");
        let torrents = IntGauge::new("torrents", "Torrents known: registered or shared")
            .expect("valid metric");
        let shared_files =
            IntGauge::new("shared_files", "Files this seeder shares").expect("valid metric");
        let live_seeders = IntGauge::new("live_seeders", "Seeders announced and not expired")
            .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes_served.clone()),
            Box::new(hashed_bytes.clone()),
            Box::new(range_cache_reads.clone()),
            Box::new(range_cache_bytes.clone()),
            Box::new(torrents.clone()),
            Box::new(shared_files.clone()),
            Box::new(live_seeders.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            bytes_served,
            hashed_bytes,
            range_cache_reads,
            range_cache_bytes,
            torrents,
            shared_files,
            live_seeders,
            refreshed: tokio::sync::Mutex::new(None),
        }
    }

    /// Renders the text exposition format, refreshing the state gauges first when they are
    /// older than [`GAUGE_REFRESH`].
    pub async fn render(&self, state: &AppState) -> Result<String, super::ApiError> {
        let hashed = state.seeder.as_ref().map_or(0, |s| s.hashed_bytes());
        self.hashed_bytes
            .inc_by(hashed.saturating_sub(self.hashed_bytes.get()));
        if let Some((bytes, hits, misses)) =
            state.seeder.as_ref().and_then(|s| s.range_cache_stats())
        {
            self.range_cache_bytes.set(bytes as i64);
            for (from, total) in [("memory", hits), ("store", misses)] {
                let counter = self.range_cache_reads.with_label_values(&[from]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        {
            let mut refreshed = self.refreshed.lock().await;
            if refreshed.is_none_or(|at| at.elapsed() >= GAUGE_REFRESH) {
                self.refresh_gauges(state).await?;
                *refreshed = Some(Instant::now());
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory cannot fail");
        Ok(String::from_utf8(out).expect("the text format is UTF-8"))
    }
}

impl Metrics {
    async fn refresh_gauges(&self, state: &AppState) -> Result<(), super::ApiError> {
        let shared = state.seeder.as_ref().map_or(0, |s| s.catalog().len());
        self.shared_files.set(shared as i64);
        let torrents = state.directory.count().await?;
        self.torrents.set(torrents as i64);
        let live = match &state.tracker {
            Some(tracker) => tracker.total_live_seeders().await?,
            None => 0,
        };
        self.live_seeders.set(live as i64);
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The method as a label: the standard ones by name, anything a client invents as "other", so
/// the number of series stays bounded.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Counts the request by route pattern (not raw path, so label cardinality stays bounded) and
/// logs one line with method, path, status and duration.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let status = res.status();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    if let Some(state) = state {
        state
            .metrics
            .requests
            .with_label_values(&[route.as_str(), method_label(&method), status.as_str()])
            .inc();
    }
    tracing::info!(
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}
