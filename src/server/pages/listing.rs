//! The snapshot the listing page (`GET /`) is served from: one row per known torrent with its
//! counts, and the row order for each sort. A request costs its page ([`PAGE_ROWS`] rows), plus
//! a scan of the names when it filters, instead of a summary and a store lookup per torrent;
//! building a snapshot costs a lookup per torrent, so it happens at most every [`FRESH`], or
//! every [`MIN_AGE`] while torrents are being shared or registered.
//!
//! Invariant: a torrent shared here shows at the next request (the catalog's identity is part
//! of the check), one registered within [`MIN_AGE`]; live counts may be up to [`FRESH`] old.
//! Requests arriving during a build wait for it rather than building their own.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::seeder::Catalog;
use crate::server::error::ApiError;
use crate::server::AppState;
use crate::types::InfoHash;

/// How old the counts on the page may be.
pub const FRESH: Duration = Duration::from_secs(5);
/// The least time between two builds when the registry keeps changing.
pub const MIN_AGE: Duration = Duration::from_secs(1);
/// Rows on one page.
pub const PAGE_ROWS: usize = 100;

/// The sorts, by query value, with their labels; the order of [`Snapshot::orders`].
pub const SORT_OPTIONS: [(&str, &str); 5] = [
    ("name", "Name"),
    ("newest", "Newest first"),
    ("size", "Size, largest first"),
    ("seeders", "Live seeders, most first"),
    ("pieces", "Pieces, most first"),
];

pub struct Row {
    pub name: String,
    pub name_folded: String,
    pub v2: String,
    pub size: String,
    pub length: u64,
    pub files: usize,
    pub pieces: u32,
    pub seeders: usize,
    /// BitTorrent peers in its swarm (seeds and leechers), and downloads completed there.
    pub peers: usize,
    pub completed: u64,
    /// When its newest file changed, for a torrent shared here (seconds since the epoch).
    pub modified: Option<u64>,
    pub age: String,
}

pub struct Snapshot {
    built: Instant,
    /// The catalog it was built from; weak, so a replaced catalog is not kept alive.
    catalog: Option<Weak<Catalog>>,
    registered: usize,
    rows: Vec<Row>,
    /// Row indices in each sort's order.
    orders: Vec<Vec<u32>>,
}

/// One page of a snapshot.
pub struct Selection<'a> {
    pub rows: Vec<&'a Row>,
    /// Rows matching the filter, on every page.
    pub matching: usize,
    /// Every row.
    pub total: usize,
}

#[derive(Default)]
pub struct ListingCache {
    current: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
}

impl ListingCache {
    /// The current snapshot, rebuilt first if it is stale. One request rebuilds; others
    /// arriving meanwhile wait for it rather than building their own.
    pub async fn get(&self, state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
        let catalog = state.seeder.as_ref().map(|s| s.catalog());
        let registered = match &state.tracker {
            Some(tracker) => tracker.torrent_count().await?,
            None => 0,
        };
        let mut current = self.current.lock().await;
        if let Some(snapshot) = current.as_ref() {
            let same_catalog = match (&snapshot.catalog, &catalog) {
                (Some(a), Some(b)) => std::ptr::eq(a.as_ptr(), Arc::as_ptr(b)),
                (a, b) => a.is_none() && b.is_none(),
            };
            let age = snapshot.built.elapsed();
            let registry_moved = snapshot.registered != registered && age >= MIN_AGE;
            if same_catalog && !registry_moved && age < FRESH {
                return Ok(snapshot.clone());
            }
        }
        let snapshot = Arc::new(build(state, catalog, registered).await?);
        *current = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl Snapshot {
    /// Page `page` (from 1) of the rows whose folded name contains `needle`, in the order of
    /// sort `sort` (an index into [`SORT_OPTIONS`]).
    pub fn select(&self, sort: usize, needle: &str, page: usize) -> Selection<'_> {
        let skip = (page.max(1) - 1).saturating_mul(PAGE_ROWS);
        let order = &self.orders[sort];
        let rows_in_order = order.iter().map(|&i| &self.rows[i as usize]);
        let (rows, matching) = if needle.is_empty() {
            let rows = rows_in_order.skip(skip).take(PAGE_ROWS).collect();
            (rows, self.rows.len())
        } else {
            let mut matching = 0;
            let mut rows = Vec::new();
            for row in rows_in_order.filter(|r| r.name_folded.contains(needle)) {
                if matching >= skip && rows.len() < PAGE_ROWS {
                    rows.push(row);
                }
                matching += 1;
            }
            (rows, matching)
        };
        Selection {
            rows,
            matching,
            total: self.rows.len(),
        }
    }
}

async fn build(
    state: &AppState,
    catalog: Option<Arc<Catalog>>,
    registered: usize,
) -> Result<Snapshot, ApiError> {
    let all = state.directory.all().await?;
    let seeders = state.directory.live_seeders(&all).await?;
    // One scrape for the swarms of every torrent (a round trip with Redis).
    let swarms = match &state.tracker {
        Some(tracker) => {
            let hashes: Vec<[u8; 20]> = all.iter().map(|m| m.info_hash_v1.0).collect();
            tracker.bt_scrape(&hashes).await?
        }
        None => Vec::new(),
    };
    let now = crate::tracker::unix_now();
    let mut rows = Vec::with_capacity(all.len());
    for (i, meta) in all.iter().enumerate() {
        let stats = swarms.get(i).map(|(_, s)| *s).unwrap_or_default();
        let modified = catalog
            .as_ref()
            .and_then(|c| c.by_hash(&InfoHash::V2(meta.info_hash_v2)))
            .and_then(|t| t.last_modified().duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        rows.push(Row {
            peers: stats.complete + stats.incomplete,
            completed: stats.downloaded,
            age: modified.map_or_else(
                || "—".to_owned(),
                |m| super::human_age(now.saturating_sub(m)),
            ),
            modified,
            name_folded: meta.name.to_lowercase(),
            v2: meta.info_hash_v2.to_string(),
            size: super::human_bytes(meta.length),
            length: meta.length,
            files: meta.files.len(),
            pieces: meta.piece_count(),
            seeders: seeders.get(i).copied().unwrap_or(0),
            name: meta.name.clone(),
        });
    }
    let sorted = |key: &dyn Fn(&Row, &Row) -> std::cmp::Ordering| {
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_by(|&a, &b| key(&rows[a as usize], &rows[b as usize]));
        order
    };
    let orders = SORT_OPTIONS
        .iter()
        .map(|(key, _)| match *key {
            "newest" => sorted(&|a, b| b.modified.cmp(&a.modified)),
            "size" => sorted(&|a, b| b.length.cmp(&a.length)),
            "seeders" => sorted(&|a, b| b.seeders.cmp(&a.seeders)),
            "pieces" => sorted(&|a, b| b.pieces.cmp(&a.pieces)),
            _ => sorted(&|a, b| a.name_folded.cmp(&b.name_folded)),
        })
        .collect();
    Ok(Snapshot {
        built: Instant::now(),
        catalog: catalog.as_ref().map(Arc::downgrade),
        registered,
        rows,
        orders,
    })
}
