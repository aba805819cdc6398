//! The downloader: fetches a torrent's pieces from every seeder at once, verifies each against
//! its BEP 52 SHA-256 piece hash, writes it into `<name>.part`, records it, and renames the file
//! into place when every piece is verified. A rerun resumes from the record.
//!
//! [`scheduler`] decides what to fetch from whom (pure); [`crate::fetch`] does one request;
//! [`store`] owns the files; `pace` holds requests to `--max-rate`; this module runs the loop
//! that ties them together.

mod pace;
pub mod scheduler;
pub mod source;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

use crate::fetch::{self, Endpoint};
use crate::metainfo::Metainfo;
use crate::types::PieceIndex;
use scheduler::{Completion, Policy, Scheduler, SeederId, SeederStatus};

/// Piece buffers in flight are capped at this many bytes, so memory stays bounded whatever the
/// piece length: with large pieces, fewer requests run at once. A piece is verified whole, so
/// torrents with longer pieces are refused (see [`MAX_PIECE_LENGTH`]).
const PIECE_BUFFER_BUDGET: u64 = 32 * 1024 * 1024;
/// The longest piece this downloader accepts, in bytes: one piece buffer must fit the budget.
pub const MAX_PIECE_LENGTH: u64 = PIECE_BUFFER_BUDGET;
/// With --max-rate, how much unused time a slow spell may save up for a burst.
const MAX_RATE_BURST: Duration = Duration::from_secs(1);
/// Verified pieces are made durable and recorded at least this often.
const RECORD_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Options {
    /// A .torrent path, an http(s) URL of one, or an info-hash (with `tracker`).
    pub source: String,
    pub output_dir: PathBuf,
    /// Tracker base (or /announce) URL; default: the torrent's announce URL.
    pub tracker: Option<Url>,
    /// Extra native seeders (base URLs).
    pub seeders: Vec<Url>,
    /// Requests in flight over all seeders.
    pub connections: usize,
    /// Pieces failing verification before a seeder is dropped.
    pub max_bad_pieces: u32,
    /// How often the tracker is asked for new seeders.
    pub refresh_interval: Duration,
    pub connect_timeout: Duration,
    /// A response silent this long is abandoned.
    pub stall_timeout: Duration,
    /// The slowest rate a request is given time for, in bytes per second: a seeder slower than
    /// this (or than an eighth of its own measured rate) on a request loses it.
    pub min_rate: u64,
    /// The fastest this download may go, in bytes per second over all seeders (requests are
    /// paced to it); `None`: as fast as the seeders go.
    pub max_rate: Option<u64>,
}

impl Options {
    pub fn new(source: impl Into<String>, output_dir: impl Into<PathBuf>) -> Self {
        Options {
            source: source.into(),
            output_dir: output_dir.into(),
            tracker: None,
            seeders: Vec::new(),
            connections: 8,
            max_bad_pieces: 3,
            refresh_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(15),
            min_rate: 64 * 1024,
            max_rate: None,
        }
    }
}

/// Told about progress as it happens; the CLI draws a bar from it.
pub trait Progress: Send + Sync {
    fn started(&self, _name: &str, _total_bytes: u64, _have_bytes: u64) {}
    fn advanced(&self, _bytes: u64, _seeders_in_use: usize) {}
    /// For a folder: files complete (every piece verified; empty ones from the start) of all.
    fn files(&self, _done: usize, _total: usize) {}
    fn finished(&self) {}
}

/// Which of a folder's files are complete, as pieces are verified.
struct FilesDone {
    /// Per file, pieces not yet verified.
    left: Vec<u32>,
    done: usize,
}

impl FilesDone {
    fn new(meta: &Metainfo, verified: &[bool]) -> Self {
        let left: Vec<u32> = meta
            .files
            .iter()
            .map(|f| {
                let pieces = f.first_piece..f.first_piece + f.piece_count(meta.piece_length);
                pieces.filter(|p| !verified[*p as usize]).count() as u32
            })
            .collect();
        let done = left.iter().filter(|n| **n == 0).count();
        FilesDone { left, done }
    }

    /// Counts a newly verified piece; returns whether it completed its file.
    fn verified(&mut self, meta: &Metainfo, piece: u32) -> bool {
        let Some(span) = meta.piece(PieceIndex(piece)) else {
            return false;
        };
        let left = &mut self.left[span.file];
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.done += 1;
        }
        *left == 0
    }
}

/// Progress that is not shown.
pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, Clone)]
pub struct SeederReport {
    pub url: String,
    pub bytes: u64,
    pub pieces: u32,
    pub bad_pieces: u32,
    /// Why the seeder was dropped, if it was.
    pub dropped: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub path: PathBuf,
    pub length: u64,
    /// Bytes fetched over the network and verified in this run.
    pub fetched_bytes: u64,
    pub fetched_pieces: u32,
    /// Pieces found verified on disk at start (resume).
    pub resumed_pieces: usize,
    /// The final file was already there and verified: nothing fetched.
    pub already_complete: bool,
    pub elapsed: Duration,
    pub seeders: Vec<SeederReport>,
    /// The tracker used, if any (for `--seed`).
    pub tracker: Option<Url>,
    /// The torrent downloaded (`--seed` serves the file under it).
    pub meta: Arc<Metainfo>,
}

enum Outcome {
    Verified,
    BadData,
    Failed(fetch::FetchError),
    /// Writing to the output failed (disk full, permissions): fatal, not the seeder's fault.
    Disk(String),
}

struct Run {
    http: reqwest::Client,
    meta: Arc<Metainfo>,
    tracker: Option<Url>,
    sched: Scheduler,
    endpoints: Vec<Endpoint>,
    /// Each endpoint's id, so a long peer list is merged in linear time.
    known: HashMap<Endpoint, SeederId>,
    started: Instant,
    last_refresh: Option<Instant>,
}

impl Run {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds endpoints not seen before; revives known ones that are listed again.
    fn add_endpoints(&mut self, endpoints: Vec<Endpoint>) -> usize {
        let mut added = 0;
        for endpoint in endpoints {
            match self.known.get(&endpoint) {
                Some(id) => self.sched.revive(*id),
                None => {
                    tracing::info!(seeder = %endpoint, "using seeder");
                    let id = self.sched.add_seeder();
                    self.known.insert(endpoint.clone(), id);
                    self.endpoints.push(endpoint);
                    added += 1;
                }
            }
        }
        added
    }

    /// Seeders the tracker lists now (none if there is no tracker or it fails).
    async fn tracker_endpoints(&mut self) -> Vec<Endpoint> {
        self.last_refresh = Some(Instant::now());
        let Some(tracker) = self.tracker.clone() else {
            return Vec::new();
        };
        source::tracker_peers(&tracker, &self.meta, &self.http)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "tracker did not answer");
                Vec::new()
            })
    }

    async fn refresh_from_tracker(&mut self) {
        let peers = self.tracker_endpoints().await;
        self.add_endpoints(source::dedup(peers, &self.meta.name));
    }
}

/// Downloads (or resumes) the torrent named by `options.source`.
pub async fn download(options: &Options, progress: &dyn Progress) -> anyhow::Result<Report> {
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.stall_timeout)
        .pool_max_idle_per_host(options.connections.max(1))
        .build()
        .context("building the HTTP client")?;
    let meta = Arc::new(source::metainfo(&options.source, options.tracker.as_ref(), &http).await?);
    anyhow::ensure!(
        meta.piece_length.get() <= MAX_PIECE_LENGTH,
        "{} ({}) has pieces of {} MiB, above this downloader's limit of {} MiB (each piece is held in memory until verified)",
        meta.name,
        meta.info_hash_v2,
        meta.piece_length.get() >> 20,
        MAX_PIECE_LENGTH >> 20
    );
    let tracker = source::tracker(options.tracker.as_ref(), &meta);

    let opened = {
        let (dir, meta) = (options.output_dir.clone(), meta.clone());
        tokio::task::spawn_blocking(move || store::open(&dir, &meta)).await??
    };
    let (part, done, rehashed) = match opened {
        store::Opened::Complete(path) => {
            progress.finished();
            return Ok(Report {
                name: meta.name.clone(),
                path,
                length: meta.length,
                fetched_bytes: 0,
                fetched_pieces: 0,
                resumed_pieces: meta.piece_count() as usize,
                already_complete: true,
                elapsed: started.elapsed(),
                seeders: Vec::new(),
                tracker,
                meta,
            });
        }
        store::Opened::Partial {
            part,
            done,
            rehashed,
        } => (part, done, rehashed),
    };
    if rehashed > 0 {
        tracing::info!(
            pieces = rehashed,
            "recovered verified pieces from an unrecorded .part"
        );
    }
    let resumed = done.iter().filter(|d| **d).count();
    let have_bytes: u64 = (0..meta.piece_count())
        .filter(|i| done[*i as usize])
        .filter_map(|i| meta.piece(PieceIndex(i)).map(|span| span.len))
        .sum();
    progress.started(&meta.name, meta.length, have_bytes);
    let mut files_done = FilesDone::new(&meta, &done);
    if meta.is_folder {
        progress.files(files_done.done, meta.files.len());
    }

    let max_in_flight = options
        .connections
        .max(1)
        .min((PIECE_BUFFER_BUDGET / meta.piece_length.get()).max(1) as usize);
    let policy = Policy {
        max_in_flight,
        max_bad_pieces: options.max_bad_pieces.max(1),
        min_rate: options.min_rate.max(1) as f64,
        ..Policy::default()
    };
    let mut run = Run {
        http,
        meta: meta.clone(),
        tracker,
        sched: Scheduler::new(&done, policy),
        endpoints: Vec::new(),
        known: HashMap::new(),
        started,
        last_refresh: None,
    };
    // All sources first, then one dedup, so a seeder's own web-seed URL is not used twice.
    let mut initial: Vec<Endpoint> = options
        .seeders
        .iter()
        .cloned()
        .map(Endpoint::Native)
        .collect();
    initial.extend(run.tracker_endpoints().await);
    initial.extend(source::web_seeds(&meta));
    run.add_endpoints(source::dedup(initial, &meta.name));

    let result = fetch_all(&mut run, &part, options, progress, &mut files_done).await;
    let seeders = seeder_reports(&run);
    let fetched_pieces: u32 = seeders.iter().map(|s| s.pieces).sum();
    let fetched_bytes: u64 = seeders.iter().map(|s| s.bytes).sum();
    result?;

    let path = tokio::task::spawn_blocking(move || part.finish()).await??;
    progress.finished();
    Ok(Report {
        name: meta.name.clone(),
        path,
        length: meta.length,
        fetched_bytes,
        fetched_pieces,
        resumed_pieces: resumed,
        already_complete: false,
        elapsed: started.elapsed(),
        seeders,
        tracker: run.tracker.clone(),
        meta,
    })
}

fn seeder_reports(run: &Run) -> Vec<SeederReport> {
    run.endpoints
        .iter()
        .enumerate()
        .map(|(i, endpoint)| {
            let stats = run.sched.seeder(SeederId(i));
            SeederReport {
                url: endpoint.to_string(),
                bytes: stats.bytes,
                pieces: stats.pieces,
                bad_pieces: stats.bad_pieces,
                dropped: match &stats.status {
                    SeederStatus::Banned(reason) => Some(reason.clone()),
                    SeederStatus::Gone => Some("stopped answering".into()),
                    SeederStatus::Active => None,
                },
            }
        })
        .collect()
}

/// The dispatch loop: keeps the in-flight budget full, handles results, records progress.
async fn fetch_all(
    run: &mut Run,
    part: &Arc<store::PartFile>,
    options: &Options,
    progress: &dyn Progress,
    files_done: &mut FilesDone,
) -> anyhow::Result<()> {
    let mut tasks: JoinSet<(usize, SeederId, Outcome, Duration)> = JoinSet::new();
    let mut handles: HashMap<(usize, SeederId), AbortHandle> = HashMap::new();
    // Which request a task was, to name it if it panics.
    let mut requests: HashMap<tokio::task::Id, (usize, SeederId)> = HashMap::new();
    let mut unrecorded: Vec<u32> = Vec::new();
    let mut last_record = Instant::now();
    // The record's fsync can take a while with hundreds of MB dirty: it runs beside the loop,
    // one at a time, so fetching never waits for it.
    let mut flushing: Option<tokio::task::JoinHandle<Result<(), store::StoreError>>> = None;

    // --max-rate: a request may start once the bytes of those before it are paid for at the
    // rate, with at most MAX_RATE_BURST of unused time saved up.
    let mut pace = options
        .max_rate
        .map(|rate| pace::Pace::new(rate, MAX_RATE_BURST));

    let outcome = loop {
        // Set when the rate, not the seeders, holds the next request back.
        let mut paced = false;
        loop {
            if pace.as_ref().is_some_and(pace::Pace::owes) && run.sched.remaining() > 0 {
                paced = true;
                break;
            }
            let Some((piece, seeder)) = run.sched.assign(run.now()) else {
                break;
            };
            let len = run
                .meta
                .piece(PieceIndex(piece as u32))
                .expect("assigned pieces exist")
                .len;
            if let Some(pace) = pace.as_mut() {
                pace.spend(len);
            }
            let handle = tasks.spawn(fetch_and_store(
                run.http.clone(),
                run.endpoints[seeder.0].clone(),
                run.meta.clone(),
                part.clone(),
                piece,
                seeder,
                run.sched.deadline(seeder, len),
            ));
            requests.insert(handle.id(), (piece, seeder));
            handles.insert((piece, seeder), handle);
        }
        if run.sched.is_done() && tasks.is_empty() {
            break Ok(());
        }
        if tasks.is_empty() && !paced && run.sched.next_wakeup(run.now()).is_none() {
            // Nothing in flight and nobody to ask: look for new seeders once, then give up.
            let recently = run
                .last_refresh
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if run.tracker.is_some() && !recently {
                run.refresh_from_tracker().await;
                continue;
            }
            break Err(anyhow::anyhow!(
                "no usable seeders left for {} ({}): {} of {} pieces missing; the partial download is kept in {} for a later resume",
                run.meta.name,
                run.meta.info_hash_v2,
                run.sched.remaining(),
                run.meta.piece_count(),
                part.part_path.display()
            ));
        }

        let wakeup = run
            .sched
            .next_wakeup(run.now())
            .map_or(Duration::from_secs(3600), |at| at.saturating_sub(run.now()));
        let refresh_in = run.last_refresh.map_or(Duration::ZERO, |t| {
            options.refresh_interval.saturating_sub(t.elapsed())
        });
        // With nothing to record there is no record deadline (it would wake the loop at once).
        let record_in = match unrecorded.is_empty() {
            true => Duration::from_secs(3600),
            false => RECORD_EVERY.saturating_sub(last_record.elapsed()),
        };
        tokio::select! {
            Some(joined) = tasks.join_next_with_id() => {
                let (piece, seeder, outcome, elapsed) = match joined_task(joined, &mut requests) {
                    Joined::Done(result) => result,
                    // A duplicate cancelled by the endgame, or a dropped seeder's request.
                    Joined::Cancelled => continue,
                    Joined::Panicked { piece, seeder, message } => {
                        break Err(anyhow::anyhow!(
                            "internal error: fetching piece {piece} from {} panicked: {message}; verified pieces so far are kept for a later resume",
                            run.endpoints[seeder.0],
                        ));
                    }
                };
                handles.remove(&(piece, seeder));
                if run.sched.is_banned(seeder) {
                    continue; // a late answer from a dropped seeder: its pieces were released
                }
                let endpoint = &run.endpoints[seeder.0];
                match outcome {
                    Outcome::Verified => {
                        let len = run.meta.piece(PieceIndex(piece as u32)).expect("assigned pieces exist").len;
                        if let Completion::First { cancel } = run.sched.completed(piece, seeder, len, elapsed) {
                            for other in cancel {
                                if let Some(h) = handles.remove(&(piece, other)) {
                                    h.abort();
                                }
                            }
                            unrecorded.push(piece as u32);
                            progress.advanced(len, run.sched.seeders_in_use(seeder));
                            if run.meta.is_folder && files_done.verified(&run.meta, piece as u32) {
                                progress.files(files_done.done, run.meta.files.len());
                            }
                        }
                    }
                    Outcome::BadData => {
                        tracing::warn!(seeder = %endpoint, piece, "piece failed SHA-256 verification; fetching it elsewhere");
                        if let Some(ban) = run.sched.bad_data(piece, seeder) {
                            tracing::warn!(seeder = %endpoint, reason = %ban.reason, "dropping seeder for the rest of this download");
                            for released in ban.released {
                                if let Some(h) = handles.remove(&(released, seeder)) {
                                    h.abort();
                                }
                            }
                        }
                    }
                    Outcome::Disk(e) => {
                        break Err(anyhow::anyhow!(
                            "cannot write the download: {e}; verified pieces so far are kept for a later resume"
                        ));
                    }
                    Outcome::Failed(fetch::FetchError::TooSlow { received, elapsed, .. }) => {
                        tracing::debug!(seeder = %endpoint, piece, received, "request missed its deadline; fetching it elsewhere");
                        if let Some(ban) = run.sched.missed_deadline(piece, seeder, run.now(), received, elapsed) {
                            tracing::warn!(seeder = %endpoint, reason = %ban.reason, "dropping seeder for the rest of this download");
                            for released in ban.released {
                                if let Some(h) = handles.remove(&(released, seeder)) {
                                    h.abort();
                                }
                            }
                        }
                    }
                    Outcome::Failed(e) => {
                        tracing::debug!(seeder = %endpoint, piece, error = %e, "request failed; will retry");
                        let retry_after = e.retry_after();
                        let now = run.now();
                        run.sched.failed(piece, seeder, now.saturating_sub(elapsed), now, retry_after);
                        if run.sched.seeder(seeder).status == SeederStatus::Gone {
                            tracing::warn!(seeder = %endpoint, error = %e, "seeder stopped answering");
                        }
                    }
                }
            }
            // Paying for the requests already started, so the next may; if another branch
            // wins first, what was paid stays paid.
            _ = async { pace.as_mut().expect("paced only with --max-rate").pay().await }, if paced => {}
            _ = tokio::time::sleep(wakeup.min(refresh_in).min(record_in)) => {
                if run.last_refresh.is_none_or(|t| t.elapsed() >= options.refresh_interval) {
                    run.refresh_from_tracker().await;
                }
            }
        }
        let due = last_record.elapsed() >= RECORD_EVERY || unrecorded.len() >= 64;
        let idle = flushing.as_ref().is_none_or(|f| f.is_finished());
        if due && idle && !unrecorded.is_empty() {
            if let Some(done) = flushing.take() {
                done.await??;
            }
            let (batch, part) = (std::mem::take(&mut unrecorded), part.clone());
            flushing = Some(tokio::task::spawn_blocking(move || part.record(&batch)));
            last_record = Instant::now();
        }
    };
    tasks.shutdown().await;
    if let Some(running) = flushing.take() {
        running.await??;
    }
    let part = part.clone();
    tokio::task::spawn_blocking(move || part.record(&unrecorded)).await??;
    outcome
}

/// How a fetch task ended.
enum Joined<T> {
    Done(T),
    Cancelled,
    /// A bug: reported, never mistaken for a cancelled duplicate.
    Panicked {
        piece: usize,
        seeder: SeederId,
        message: String,
    },
}

/// Sorts a joined task's result, forgetting its request.
fn joined_task<T>(
    joined: Result<(tokio::task::Id, T), tokio::task::JoinError>,
    requests: &mut HashMap<tokio::task::Id, (usize, SeederId)>,
) -> Joined<T> {
    match joined {
        Ok((id, result)) => {
            requests.remove(&id);
            Joined::Done(result)
        }
        Err(e) => {
            let (piece, seeder) = requests
                .remove(&e.id())
                .expect("every task is a recorded request");
            if e.is_cancelled() {
                return Joined::Cancelled;
            }
            Joined::Panicked {
                piece,
                seeder,
                message: panic_message(e.into_panic()),
            }
        }
    }
}

/// The text a task panicked with.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

async fn fetch_and_store(
    http: reqwest::Client,
    endpoint: Endpoint,
    meta: Arc<Metainfo>,
    part: Arc<store::PartFile>,
    piece: usize,
    seeder: SeederId,
    deadline: Duration,
) -> (usize, SeederId, Outcome, Duration) {
    let started = Instant::now();
    let span = meta
        .piece(PieceIndex(piece as u32))
        .expect("assigned pieces exist");
    let fetched = fetch::piece(&http, &endpoint, &meta, piece as u32, span, deadline);
    let outcome = match fetched.await {
        Err(e) => Outcome::Failed(e),
        Ok(data) => {
            let checked = tokio::task::spawn_blocking(move || {
                if !meta.verify_piece(PieceIndex(piece as u32), &data) {
                    return Ok(false);
                }
                part.write_piece(span, &data).map(|()| true)
            })
            .await;
            match checked {
                Ok(Ok(true)) => Outcome::Verified,
                Ok(Ok(false)) => Outcome::BadData,
                Ok(Err(e)) => Outcome::Disk(e.to_string()),
                Err(e) => Outcome::Disk(e.to_string()),
            }
        }
    };
    (piece, seeder, outcome, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_fetch_task_is_reported_and_a_cancelled_one_is_not() {
        let mut tasks: JoinSet<u32> = JoinSet::new();
        let mut requests = HashMap::new();
        let panicking = tasks.spawn(async { panic!("bug in piece handling") });
        requests.insert(panicking.id(), (7, SeederId(1)));
        let cancelled = tasks.spawn(std::future::pending());
        requests.insert(cancelled.id(), (8, SeederId(0)));
        cancelled.abort();
        let fine = tasks.spawn(async { 42 });
        requests.insert(fine.id(), (9, SeederId(0)));

        let (mut panics, mut cancels, mut done) = (Vec::new(), 0, Vec::new());
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined_task(joined, &mut requests) {
                Joined::Done(v) => done.push(v),
                Joined::Cancelled => cancels += 1,
                Joined::Panicked {
                    piece,
                    seeder,
                    message,
                } => panics.push((piece, seeder, message)),
            }
        }

        assert_eq!(done, [42]);
        assert_eq!(cancels, 1);
        assert_eq!(
            panics,
            [(7, SeederId(1), "bug in piece handling".to_owned())]
        );
        assert!(requests.is_empty());
    }
}
