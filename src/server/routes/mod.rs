//! Route table. Handlers are thin: parse into typed values, call the seeder or tracker, shape the
//! response. A role that is off has no routes, so its paths answer 404.

pub mod bittorrent;
pub mod files;
pub mod ops;
pub mod torrents;
pub mod tracker;

use actix_web::{web, HttpRequest};

use super::error::{extractor_error, ApiError};
use super::guard::{self, Access, Refusal};
use super::AppState;

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
        .service(
            resource("/", "GET")
                // A client asking for JSON alone gets the listing's data, as `GET /torrents`.
                .route(
                    web::get()
                        .guard(actix_web::guard::fn_guard(accepts_only_json))
                        .to(torrents::list)
                        .wrap(read()),
                )
                .route(web::get().to(super::pages::index).wrap(read())),
        )
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

/// Whether the request's Accept names JSON and not HTML.
fn accepts_only_json(ctx: &actix_web::guard::GuardContext) -> bool {
    let accept = ctx
        .head()
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}
