//! Route table. Handlers are thin: parse into typed values, call the seeder or tracker, shape the
//! response. A role that is off has no routes, so its paths answer 404.

pub mod bittorrent;
pub mod files;
pub mod ops;
pub mod torrents;
pub mod tracker;

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::{web, HttpRequest};

use super::error::{extractor_error, ApiError};
use super::guard::{self, Access, Refusal};
use super::AppState;
use crate::metainfo::Metainfo;
use crate::types::InfoHashV2;

pub fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(extractor_error),
    )
    .app_data(web::QueryConfig::default().error_handler(extractor_error))
    .app_data(web::PathConfig::default().error_handler(extractor_error))
    .app_data(web::PayloadConfig::default().limit(state.max_body_bytes));
    // Tracker data is guarded where it is served: the policy wraps the handler, so every
    // spelling of a path that the router sends to it meets the same check.
    let read = || guard::protect(Access::Read, Refusal::Json);
    let write = || guard::protect(Access::Write, Refusal::Json);
    // Resources are matched in registration order, and a pattern costs a regex run where a
    // static path costs one comparison: trying the page and .torrent patterns before
    // /announce took 9k of the 72k instructions of a one-connection announce (callgrind). So
    // the static tracker paths come first, then the hot patterns (pieces and files, which
    // answer pages on other origins: a browser fetching from every seeder), then the rest.
    if state.tracker.is_some() {
        cfg.service(
            resource("/announce", "GET, POST")
                .route(web::post().to(tracker::announce).wrap(write()))
                .route(
                    web::get()
                        .to(bittorrent::announce)
                        .wrap(guard::protect(Access::Write, Refusal::Bencode)),
                ),
        )
        .service(
            resource("/scrape", "GET").route(
                web::get()
                    .to(bittorrent::scrape)
                    .wrap(guard::protect(Access::Read, Refusal::Bencode)),
            ),
        )
        .service(
            resource("/peers", "GET")
                .route(web::get().to(tracker::peers).wrap(read()))
                .wrap(read_only_cors()),
        )
        .service(
            resource("/torrents", "GET, POST")
                .route(web::get().to(torrents::list).wrap(read()))
                .route(web::post().to(torrents::register).wrap(write())),
        );
    } else {
        cfg.service(resource("/torrents", "GET").route(web::get().to(torrents::list).wrap(read())));
    }
    if state.seeder.is_some() {
        cfg.service(
            resource("/chunks/{file}/{index}", "GET, HEAD")
                .route(web::get().to(files::chunk))
                .route(web::head().to(files::chunk))
                .wrap(read_only_cors()),
        )
        .service(
            resource("/files/{name:.+}", "GET, HEAD, PUT")
                .route(web::get().to(files::file))
                .route(web::head().to(files::file))
                .route(web::put().to(files::upload).wrap(write()))
                .wrap(read_only_cors()),
        );
    }
    cfg.service(web::redirect("/swagger-ui", "/swagger-ui/").permanent())
        .service(resource("/health", "GET").route(web::get().to(ops::health)))
        .service(resource("/ready", "GET").route(web::get().to(ops::ready)))
        .service(resource("/metrics", "GET").route(web::get().to(ops::metrics)))
        .service(resource("/", "GET").route(web::get().to(super::pages::index).wrap(read())))
        .service(
            resource("/torrents/{info_hash}", "GET")
                .route(web::get().to(torrents::metainfo).wrap(read()))
                .wrap(read_only_cors()),
        )
        .service(
            resource("/t/{info_hash}", "GET")
                .route(web::get().to(super::pages::torrent).wrap(read())),
        )
        .service(
            resource("/assets/{version}/{file}", "GET").route(web::get().to(super::pages::asset)),
        )
        .service(
            resource("/torrents/{info_hash}/manifest", "GET")
                .route(web::get().to(torrents::manifest).wrap(read())),
        );
}

/// CORS for data any page may read: any origin, GET and HEAD (with Range), no credentials; the
/// headers a verifying downloader needs are exposed.
fn read_only_cors() -> actix_cors::Cors {
    use actix_web::http::{header, Method};
    actix_cors::Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods([Method::GET, Method::HEAD])
        .allowed_headers([header::RANGE, header::IF_RANGE, header::IF_NONE_MATCH])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ETAG,
            header::ACCEPT_RANGES,
            header::RETRY_AFTER,
        ])
        .max_age(86400)
}

/// A resource that answers other methods with 405 and the methods it has.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        })
    }))
}

pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        crate::types::truncate_for_message(req.path())
    )))
}

/// Every torrent this server knows, shared ones first (their copies carry our web seed), then
/// registered ones, each once.
pub async fn known_torrents(state: &AppState) -> Result<Vec<Arc<Metainfo>>, ApiError> {
    let mut seen = HashSet::new();
    let shared = state
        .seeder
        .iter()
        .flat_map(|s| s.catalog().torrents())
        .map(|f| f.meta.clone());
    let registered = match &state.tracker {
        Some(tracker) => tracker.torrents().await?,
        None => Vec::new(),
    };
    Ok(shared
        .chain(registered)
        .filter(|m| seen.insert(m.info_hash_v2))
        .collect())
}

/// One page of the torrents this server knows, in v2 info-hash order: up to `limit` after
/// `after`, shared ones as this seeder has them (their copies carry our web seed) and
/// registered ones, each once, and whether more follow. Costs the page, not the registry.
pub async fn torrents_page(
    state: &AppState,
    after: Option<InfoHashV2>,
    limit: usize,
) -> Result<(Vec<Arc<Metainfo>>, bool), ApiError> {
    // The union's first `limit + 1` lie within the first `limit + 1` of each source.
    let shared: Vec<Arc<Metainfo>> = match &state.seeder {
        Some(seeder) => seeder
            .catalog()
            .page(after, limit + 1)
            .map(|t| t.meta.clone())
            .collect(),
        None => Vec::new(),
    };
    let registered = match &state.tracker {
        Some(tracker) => tracker.torrents_page(after, limit + 1).await?,
        None => Vec::new(),
    };
    let mut page = Vec::with_capacity(limit + 1);
    let (mut a, mut b) = (
        shared.into_iter().peekable(),
        registered.into_iter().peekable(),
    );
    while page.len() <= limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.info_hash_v2 == y.info_hash_v2 => {
                b.next();
                a.next()
            }
            (Some(x), Some(y)) if y.info_hash_v2 < x.info_hash_v2 => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(meta) => page.push(meta),
            None => break,
        }
    }
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// How many distinct torrents this server knows: the registry's count, plus shared ones not in
/// it (one lookup per shared torrent, none per registered one).
pub async fn known_count(state: &AppState) -> Result<usize, ApiError> {
    let Some(tracker) = &state.tracker else {
        return Ok(state
            .seeder
            .as_ref()
            .map_or(0, |s| s.catalog().torrent_count()));
    };
    let mut count = tracker.torrent_count().await?;
    if let Some(seeder) = &state.seeder {
        let catalog = seeder.catalog();
        for shared in catalog.page(None, usize::MAX) {
            let hash = crate::types::InfoHash::V2(shared.meta.info_hash_v2);
            if tracker.lookup(&hash).await?.is_none() {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Live native seeders of a torrent known to this server's tracker (0 with the tracker off).
pub async fn live_seeders(state: &AppState, meta: &Metainfo) -> Result<usize, ApiError> {
    Ok(match &state.tracker {
        Some(t) => {
            t.live_seeders(&crate::types::InfoHash::V2(meta.info_hash_v2))
                .await?
        }
        None => 0,
    })
}

/// Finds a torrent by either info-hash, preferring this seeder's copy.
pub async fn find_torrent(state: &AppState, raw_hash: &str) -> Result<Arc<Metainfo>, ApiError> {
    let hash =
        crate::types::InfoHash::parse(raw_hash).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let shared = state
        .seeder
        .as_ref()
        .and_then(|s| s.catalog().by_hash(&hash).map(|f| f.meta.clone()));
    let found = match (shared, &state.tracker) {
        (Some(meta), _) => Some(meta),
        (None, Some(tracker)) => tracker.lookup(&hash).await?,
        (None, None) => None,
    };
    found.ok_or_else(|| ApiError::NotFound(format!("no torrent with info-hash {hash}")))
}
