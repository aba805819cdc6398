//! Native tracker endpoints: seeders announce with JSON, downloaders ask who has a torrent.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::tracker::swarm::{Event, PeerView};
use crate::types::{InfoHash, SeederUrl};

#[derive(Debug, Deserialize, ToSchema)]
pub struct AnnounceRequest {
    /// v2 (64 hex) or v1 (40 hex) info-hash of the torrent being seeded.
    pub info_hash: String,
    /// The seeder's base URL; chunks are fetched from `{url}/chunks/{info_hash}/{index}`.
    #[schema(example = "http://127.0.0.1:8080")]
    pub url: String,
    /// Omitted for a periodic re-announce.
    pub event: Option<Event>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnounceResponse {
    /// Seconds until the next announce; a seeder silent for twice this long is dropped.
    pub interval: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PeersQuery {
    /// v2 (64 hex) or v1 (40 hex) info-hash.
    pub info_hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeersResponse {
    pub info_hash: String,
    /// Seconds between a seeder's announces.
    pub interval: u64,
    pub peers: Vec<PeerView>,
}

fn parse_hash(raw: &str) -> Result<InfoHash, ApiError> {
    InfoHash::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn tracker(state: &AppState) -> Result<&crate::tracker::Tracker, ApiError> {
    state
        .tracker
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("the tracker role is off".into()))
}

/// Registers (or refreshes, or with "stopped" removes) a seeder of a torrent.
#[utoipa::path(
    post,
    path = "/announce",
    tag = "tracker",
    request_body = AnnounceRequest,
    responses(
        (status = 200, body = AnnounceResponse),
        (status = 400, description = "Malformed info-hash, seeder URL or JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn announce(
    body: web::Json<AnnounceRequest>,
    state: web::Data<AppState>,
) -> Result<web::Json<AnnounceResponse>, ApiError> {
    let tracker = tracker(&state)?;
    let hash = parse_hash(&body.info_hash)?;
    let url = SeederUrl::parse(&body.url).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracker.announce(&hash, url, body.event);
    Ok(web::Json(AnnounceResponse {
        interval: tracker.interval().as_secs(),
    }))
}

/// Live seeders of a torrent.
#[utoipa::path(
    get,
    path = "/peers",
    tag = "tracker",
    params(PeersQuery),
    responses(
        (status = 200, body = PeersResponse),
        (status = 400, description = "Missing or malformed info-hash", body = ErrorBody),
    )
)]
pub async fn peers(
    query: web::Query<PeersQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<PeersResponse>, ApiError> {
    let tracker = tracker(&state)?;
    let hash = parse_hash(&query.info_hash)?;
    Ok(web::Json(PeersResponse {
        info_hash: hash.to_string(),
        interval: tracker.interval().as_secs(),
        peers: tracker.peers(&hash),
    }))
}
