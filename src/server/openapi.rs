//! The OpenAPI document: every endpoint, its parameters, bodies and error bodies. Types that
//! exist only to be documented live in `schema`, which the routes use too.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::routes::{bittorrent, files, ops, torrents, tracker};
use super::schema::Binary;
use crate::tracker::swarm::{Event, PeerView};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gotorrent-http",
        description = "HTTP-native file seeder and tracker. Seeders serve chunks over plain HTTP \
                       (each verified by its BEP 52 SHA-256 piece hash); the tracker tells \
                       downloaders which seeders have a torrent. Every error body is \
                       {error, message}."
    ),
    paths(
        files::chunk,
        files::file,
        files::upload,
        torrents::list,
        torrents::metainfo,
        torrents::manifest,
        torrents::register,
        tracker::announce,
        tracker::peers,
        bittorrent::announce,
        bittorrent::scrape,
        ops::health,
        ops::ready,
        ops::metrics,
    ),
    components(schemas(
        Binary,
        ErrorBody,
        Event,
        PeerView,
        torrents::TorrentSummary,
        torrents::TorrentFileView,
        files::Uploaded,
        torrents::Manifest,
        tracker::AnnounceRequest,
        tracker::AnnounceResponse,
        tracker::PeersResponse,
        ops::Health,
        crate::seeder::Hashing,
        ops::Readiness,
    )),
    modifiers(&BearerToken),
    tags(
        (name = "seeder", description = "File and chunk serving"),
        (name = "torrents", description = "Torrent metainfo"),
        (name = "tracker", description = "Who seeds what (native JSON API)"),
        (name = "bittorrent", description = "The BitTorrent tracker protocol (BEP 3, 48, 23, 7): bencoded"),
        (name = "ops", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The tracker's tokens (`tracker.write_token`, `tracker.read_token`) as a bearer scheme, so
/// Swagger UI offers Authorize.
struct BearerToken;

/// The name operations refer to in `security(...)` (the macro takes it as a literal).
const BEARER: &str = "tracker_token";

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as pretty JSON, exactly as `gotorrent-http openapi` prints it.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_guarded_operation_declares_the_guards_answers_and_the_bearer_scheme() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["tracker_token"]["scheme"],
            "bearer"
        );
        for (path, method) in [
            ("/announce", "post"),
            ("/torrents", "post"),
            ("/torrents", "get"),
            ("/torrents/{info_hash}", "get"),
            ("/torrents/{info_hash}/manifest", "get"),
            ("/peers", "get"),
        ] {
            let op = &doc["paths"][path][method];
            for status in ["401", "429"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
            assert!(
                op["responses"]["429"]["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
            assert!(
                op["security"].to_string().contains("tracker_token"),
                "{method} {path}"
            );
        }
    }
}
