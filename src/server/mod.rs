//! The HTTP transport: one actix-web server carrying the seeder and tracker APIs, OpenAPI and
//! Swagger UI. [`Application::build`] binds first, so callers (and tests on port 0) learn the
//! real port before anything runs.

mod error;
mod guard;
mod metrics;
pub mod openapi;
mod pages;
pub mod range;
mod routes;
mod streams;
pub mod workers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};
use anyhow::Context;
use tokio::sync::{watch, Notify};
use url::Url;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::db::StateDb;
use crate::reach::Reach;
use crate::seeder::announcer::{Announcer, TrackerClient};
use crate::seeder::hash_cache::{HashCache, SidecarCache, StateDbCache};
use crate::seeder::{Seeder, TorrentUrls};
use crate::settings::Validated;
use crate::storage::{LocalStorage, RangeCache, S3Storage, Storage};
use crate::tracker::redis_store;
use crate::tracker::store::{MemorySwarms, SqliteTorrents, SwarmStore, TorrentStore};
use crate::tracker::Tracker;
use crate::types::{join_url as join, SeederUrl};
pub use error::{ApiError, ErrorBody};
pub use metrics::Metrics;
pub use workers::Handle as ServerHandle;

/// Shared by every handler. A role that is switched off is `None`, and its routes are not mounted.
pub struct AppState {
    pub seeder: Option<Arc<Seeder>>,
    pub tracker: Option<Arc<Tracker>>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub trusted_proxy_hops: usize,
    /// Permits for file and chunk bodies streaming at once, in all and per client.
    pub streams: streams::Streams,
    pub guard: guard::SharedGuard,
    /// The shared tracker store, when there is one: readiness depends on it.
    pub redis: Option<redis_store::RedisConn>,
    /// Where others reach this server: links and QR codes on the web page, and /health.
    pub reach: Arc<Reach>,
    /// The largest upload, when uploads are on (`seeder.uploads`).
    pub max_upload: Option<u64>,
    /// What the listing page is served from.
    pub listing: pages::ListingCache,
}

impl AppState {
    /// The seeder, for handlers of its routes (mounted only when it is on).
    pub fn seeder(&self) -> Result<&Arc<Seeder>, ApiError> {
        self.seeder
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("the seeder role is off".into()))
    }

    /// The tracker, for handlers of its routes (mounted only when it is on).
    pub fn tracker(&self) -> Result<&Arc<Tracker>, ApiError> {
        self.tracker
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("the tracker role is off".into()))
    }
}

pub struct Application {
    port: u16,
    reach: Arc<Reach>,
    server: workers::Server,
    shutdown: watch::Sender<bool>,
    announcer: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the port mapping; removes it once `stop_reach` turns true, after the announcer
    /// has said "stopped".
    reach_monitor: tokio::task::JoinHandle<()>,
    stop_reach: watch::Sender<bool>,
}

impl Application {
    /// Binds, opens the state, and starts the server and its background tasks (rescans,
    /// announces, peer expiry); [`Application::run_until_stopped`] waits for the stop.
    pub async fn build(settings: Validated, seed_files: Vec<PathBuf>) -> anyhow::Result<Self> {
        let raw = &settings.raw;
        let workers = match raw.server.workers {
            0 => cores(),
            n => n,
        };
        let (local, listeners) = workers::bind(settings.bind, workers)
            .with_context(|| format!("cannot bind server.bind = {}", settings.bind))?;
        let reach = Arc::new(Reach::new(
            settings
                .public_url
                .clone()
                .unwrap_or_else(|| derived_public_url(local)),
            settings.public_url.is_some(),
            settings.reach.mapping,
        ));
        let public_url = reach.url();

        let db = Arc::new(StateDb::open(&raw.storage.state_dir)?);
        let mut redis = None;
        let tracker = if raw.tracker.enabled {
            let policy = crate::tracker::Policy {
                interval: settings.announce_interval,
                max_peers: raw.tracker.max_peers,
                limits: crate::tracker::Limits {
                    max_torrents: raw.tracker.max_torrents,
                    max_swarms: raw.tracker.max_swarms,
                    max_peers_per_swarm: raw.tracker.max_peers_per_swarm,
                    max_seeders: raw.tracker.max_seeders,
                    max_bittorrent_peers: raw.tracker.max_bittorrent_peers,
                },
                allowlist: raw.tracker.allowlist,
                private_seeders: raw.tracker.private_seeders,
                verify_seeders: raw.tracker.verify_seeders,
                accept_ip_param: raw.tracker.accept_ip_param,
                // One decode per core: a burst of big bodies neither starves the workers nor
                // holds many decoded copies.
                decoders: cores(),
            };
            let ttl = 2 * settings.announce_interval.as_secs();
            let (torrents, swarms): (Arc<dyn TorrentStore>, Arc<dyn SwarmStore>) =
                match raw.tracker.redis_url.as_deref().filter(|u| !u.is_empty()) {
                    Some(url) => {
                        let conn = redis_store::connect(url)
                            .with_context(|| format!("tracker.redis_url = {url}"))?;
                        redis = Some(conn.clone());
                        (
                            Arc::new(redis_store::RedisTorrents::new(conn.clone())),
                            Arc::new(redis_store::RedisSwarms::new(conn, ttl, policy.limits)),
                        )
                    }
                    None => (
                        Arc::new(SqliteTorrents::load(db.clone())?),
                        Arc::new(MemorySwarms::new(ttl, policy.limits)),
                    ),
                };
            Some(Arc::new(Tracker::new(torrents, swarms, policy)?))
        } else {
            None
        };
        let client = match (&settings.tracker, &tracker) {
            (Some(base), _) => Some(TrackerClient::Remote {
                base: base.clone(),
                http: crate::seeder::announcer::http_client(),
                token: raw.seeder.tracker_token.clone().filter(|t| !t.is_empty()),
            }),
            (None, Some(local_tracker)) => Some(TrackerClient::Local(local_tracker.clone())),
            (None, None) => None,
        };
        // Torrents name this server's own tracker by the public URL, so both move together.
        let (external_tracker, own_tracker) = (settings.tracker.clone(), tracker.is_some());
        let torrent_urls = move |public_url: &Url| TorrentUrls {
            announce: external_tracker
                .clone()
                .or_else(|| own_tracker.then(|| public_url.clone()))
                .map(|base| join(&base, "announce")),
            public_url: public_url.clone(),
        };

        let seeder = if raw.seeder.enabled {
            let (storage, hashes) = open_storage(&settings, &seed_files, db.clone())?;
            let mut seeder = Seeder::new(
                storage,
                hashes,
                settings.piece_length,
                torrent_urls(&public_url),
            );
            if let Some(s3) = settings.s3.as_ref().filter(|s3| s3.cache_bytes > 0) {
                seeder = seeder.with_range_cache(RangeCache::new(s3.cache_bytes));
            }
            let seeder = Arc::new(seeder);
            actix_web::rt::spawn(follow_public_url(
                seeder.clone(),
                reach.subscribe(),
                torrent_urls,
            ));
            Some(seeder)
        } else {
            if !seed_files.is_empty() {
                anyhow::bail!("files to seed were given, but the seeder role is off (--no-seeder)");
            }
            None
        };

        let metrics = Arc::new(Metrics::new());
        let guard = Arc::new(guard::Guard::new(
            raw.tracker.write_token.clone(),
            raw.tracker.read_token.clone(),
            raw.tracker.rate_limit_per_second,
            raw.tracker.rate_limit_burst,
            raw.server.trusted_proxy_hops,
        ));
        let state = web::Data::new(AppState {
            seeder: seeder.clone(),
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            max_body_bytes: raw.server.max_body_bytes,
            trusted_proxy_hops: raw.server.trusted_proxy_hops,
            streams: streams::Streams::new(
                raw.seeder.max_streams,
                raw.seeder.max_streams_per_client,
            ),
            guard: guard.clone(),
            redis,
            reach: reach.clone(),
            max_upload: raw.seeder.uploads.then_some(raw.seeder.max_upload_bytes),
            listing: pages::ListingCache::default(),
        });
        let app = move || {
            let state = state.clone();
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(guard::limit_size))
                .wrap(
                    actix_web::middleware::ErrorHandlers::new()
                        .default_handler(error::ensure_json_body),
                )
                .wrap(actix_web::middleware::from_fn(metrics::observe))
                .configure(|cfg| routes::configure(cfg, &state))
                .service(
                    SwaggerUi::new("/swagger-ui/{_:.*}")
                        .url("/api-docs/openapi.json", openapi::ApiDoc::openapi()),
                )
                .default_service(web::to(routes::not_found))
        };
        let server = workers::Server::start(listeners, app, workers::Config::default())?;

        let (shutdown, stopping) = watch::channel(false);
        let (stop_reach, reach_stopping) = watch::channel(false);
        let reach_monitor = {
            let (reach, config, configured) = (
                reach.clone(),
                settings.reach.clone(),
                settings.public_url.clone(),
            );
            actix_web::rt::spawn(async move {
                reach.run(config, local, configured, reach_stopping).await;
            })
        };
        let catalog_changed = Arc::new(Notify::new());
        if let Some(seeder) = &seeder {
            actix_web::rt::spawn(rescan_loop(
                seeder.clone(),
                settings.rescan_interval,
                catalog_changed.clone(),
            ));
        }
        if let Some(tracker) = &tracker {
            actix_web::rt::spawn(expiry_loop(
                tracker.clone(),
                guard.clone(),
                settings.announce_interval,
            ));
        }
        let announcer = match (&seeder, client) {
            (Some(seeder), Some(client)) => {
                SeederUrl::parse(public_url.as_str())
                    .context("server.public_url is not usable as a seeder URL")?;
                let announcer = Announcer {
                    seeder: seeder.clone(),
                    client,
                    reach: reach.clone(),
                    default_interval: settings.announce_interval,
                    catalog_changed,
                    shutdown: stopping,
                };
                Some(actix_web::rt::spawn(announcer.run()))
            }
            (Some(_), None) => {
                tracing::warn!("no tracker: the tracker role is off and seeder.tracker is unset, so nothing is announced");
                None
            }
            _ => None,
        };

        Ok(Application {
            port: local.port(),
            reach,
            server,
            shutdown,
            announcer,
            reach_monitor,
            stop_reach,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public URL now (it may move once the gateway maps the port).
    pub fn public_url(&self) -> Url {
        self.reach.url()
    }

    /// Stops the server as SIGTERM would (tests use it to restart on the same state).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the server handle stops it), then finishes in-flight
    /// responses and tells the tracker this seeder has stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.run().await;
        self.shutdown.send_replace(true);
        if let Some(announcer) = self.announcer {
            if tokio::time::timeout(Duration::from_secs(10), announcer)
                .await
                .is_err()
            {
                tracing::warn!("gave up sending 'stopped' announces after 10 s");
            }
        }
        // After the announces: the mapping keeps the URL valid until the tracker has heard
        // "stopped". A UPnP request may take 10 s.
        self.stop_reach.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(15), self.reach_monitor)
            .await
            .is_err()
        {
            tracing::warn!("gave up removing the port mapping after 15 s");
        }
        served
    }
}

/// The seeder's storage and hash cache: the data dir and the state database, or a bucket and its
/// sidecar torrents.
fn open_storage(
    settings: &Validated,
    seed_files: &[PathBuf],
    db: Arc<StateDb>,
) -> anyhow::Result<(Arc<dyn Storage>, Arc<dyn HashCache>)> {
    let in_db = StateDbCache(db);
    let Some(s3) = &settings.s3 else {
        let data_dir = &settings.raw.storage.data_dir;
        let storage = LocalStorage::new(data_dir, seed_files).with_context(|| {
            format!(
                "storage.data_dir = {} and the files to seed",
                data_dir.display()
            )
        })?;
        return Ok((Arc::new(storage), Arc::new(in_db)));
    };
    if !seed_files.is_empty() {
        anyhow::bail!(
            "files to seed were given, but storage.backend = \"s3\" shares the objects in \
             s3://{}/{}: upload the files there instead",
            s3.bucket,
            s3.prefix
        );
    }
    let storage = S3Storage::new(s3).with_context(|| format!("storage.s3 = {s3:?}"))?;
    let sidecars = SidecarCache::new(storage.object_store(), storage.metadata_root(), in_db);
    Ok((Arc::new(storage), Arc::new(sidecars)))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// With no public URL configured, the server's own address; an unspecified bind address
/// (0.0.0.0) is not dialable, so loopback stands in for it.
fn derived_public_url(local: SocketAddr) -> Url {
    let ip = match local.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    Url::parse(&format!("http://{}", SocketAddr::new(ip, local.port())))
        .expect("a socket address makes a valid URL")
}

/// Stamps the seeder's torrents with each new public URL.
async fn follow_public_url(
    seeder: Arc<Seeder>,
    mut urls: watch::Receiver<Url>,
    torrent_urls: impl Fn(&Url) -> TorrentUrls,
) {
    while urls.changed().await.is_ok() {
        let url = urls.borrow_and_update().clone();
        seeder.set_urls(torrent_urls(&url));
    }
}

async fn rescan_loop(seeder: Arc<Seeder>, every: Duration, changed: Arc<Notify>) {
    let mut first = true;
    loop {
        if seeder.rescan().await {
            changed.notify_one();
        }
        if first {
            first = false;
            for file in seeder.catalog().torrents() {
                tracing::info!(
                    name = %file.name,
                    info_hash = %file.meta.info_hash_v2,
                    url = %crate::seeder::file_url(&seeder.urls().public_url, &file.name),
                    torrent = %join(&join(&seeder.urls().public_url, "torrents"), &file.meta.info_hash_v2.to_string()),
                    "sharing"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = seeder.rescan_requested() => {}
        }
    }
}

async fn expiry_loop(tracker: Arc<Tracker>, guard: guard::SharedGuard, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = tracker.expire().await {
            tracing::warn!(error = %e, "expiring tracker entries failed; will retry");
        }
        guard.forget_idle_clients();
    }
}
