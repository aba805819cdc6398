//! The OpenAPI document: every endpoint, its parameters, bodies and error bodies.

use utoipa::OpenApi;

use super::error::ErrorBody;
use super::routes::{bittorrent, files, ops, torrents, tracker};
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
        torrents::list,
        torrents::metainfo,
        torrents::manifest,
        torrents::register,
        tracker::announce,
        tracker::peers,
        bittorrent::announce,
        bittorrent::scrape,
        ops::health,
        ops::metrics,
    ),
    components(schemas(
        Binary,
        ErrorBody,
        Event,
        PeerView,
        torrents::TorrentSummary,
        torrents::Manifest,
        tracker::AnnounceRequest,
        tracker::AnnounceResponse,
        tracker::PeersResponse,
        ops::Health,
    )),
    tags(
        (name = "seeder", description = "File and chunk serving"),
        (name = "torrents", description = "Torrent metainfo"),
        (name = "tracker", description = "Who seeds what (native JSON API)"),
        (name = "bittorrent", description = "The BitTorrent tracker protocol (BEP 3, 48, 23, 7): bencoded"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Raw bytes in a request or response body (a `Vec<u8>` would be documented as an integer array).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// The document as pretty JSON, exactly as `gotorrent-http openapi` prints it.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}
