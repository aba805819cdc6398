//! The HTTP transport: one actix-web server carrying the seeder and tracker APIs, the web page,
//! OpenAPI and Swagger UI. It translates between HTTP and the services it is handed
//! ([`Services`]); it owns only what is HTTP's own: access control and rate limits (`guard`),
//! stream permits (`streams`), metrics, and the listing page's cache. [`bind`] comes first, so
//! callers (and tests on port 0) learn the real port before anything runs.

mod client;
mod error;
mod guard;
mod metrics;
pub mod openapi;
mod pages;
pub mod range;
mod routes;
pub mod schema;
mod streams;
pub mod workers;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App};
use anyhow::Context;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::directory::Directory;
use crate::reach::Reach;
use crate::seeder::Seeder;
use crate::settings::{ServerSettings, Settings};
use crate::tracker::Tracker;
pub use error::{ApiError, ErrorBody};
pub use metrics::Metrics;

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
    /// Where others reach this server: links and QR codes on the web page, and /health.
    pub reach: Arc<Reach>,
    /// What the listing page is served from.
    pub listing: pages::ListingCache,
    /// Torrents this server knows, shared and registered.
    pub directory: Directory,
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

/// What the HTTP layer serves: the roles that are on, and where others reach this server.
pub struct Services {
    pub seeder: Option<Arc<Seeder>>,
    pub tracker: Option<Arc<Tracker>>,
    pub reach: Arc<Reach>,
}

/// Binds `server.bind` with one listener per worker; returns the address bound (the real port
/// when the setting says 0).
pub fn bind(settings: &ServerSettings) -> anyhow::Result<(SocketAddr, Vec<TcpListener>)> {
    workers::bind(settings.bind, settings.workers)
        .with_context(|| format!("cannot bind server.bind = {}", settings.bind))
}

/// Serves `services` on `listeners` until stopped (see [`workers::Server::run`]).
pub fn start(
    listeners: Vec<TcpListener>,
    services: Services,
    settings: &Settings,
) -> anyhow::Result<workers::Server> {
    let guard = Arc::new(guard::Guard::new(
        settings.tracker.write_token.clone(),
        settings.tracker.read_token.clone(),
        settings.tracker.rate_limit_per_second,
        settings.tracker.rate_limit_burst,
        settings.server.trusted_proxy_hops,
    ));
    let forget_every = settings.tracker.announce_interval;
    let state = web::Data::new(AppState {
        directory: Directory::new(services.seeder.clone(), services.tracker.clone()),
        seeder: services.seeder,
        tracker: services.tracker,
        metrics: Arc::new(Metrics::new()),
        max_body_bytes: settings.server.max_body_bytes,
        trusted_proxy_hops: settings.server.trusted_proxy_hops,
        streams: streams::Streams::new(
            settings.seeder.max_streams,
            settings.seeder.max_streams_per_client,
        ),
        guard: guard.clone(),
        reach: services.reach,
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
    actix_web::rt::spawn(forget_idle_clients(guard, forget_every));
    Ok(server)
}

/// The rate limiter forgets clients idle for `every`, so its table holds recent clients only.
async fn forget_idle_clients(guard: guard::SharedGuard, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        guard.forget_idle_clients();
    }
}
