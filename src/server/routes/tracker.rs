//! Native tracker endpoints: seeders announce with JSON, downloaders ask who has a torrent.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::client::ClientIp;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::schema::{ReadRefusals, WriteRefusals};
use crate::server::AppState;
use crate::tracker::swarm::{Event, PeerView};
use crate::tracker::SeederAnnounce;
use crate::types::{InfoHash, SeederUrl};

#[derive(Debug, Deserialize, ToSchema)]
pub struct AnnounceRequest {
    /// v2 (64 hex) or v1 (40 hex) info-hash of the torrent being seeded.
    #[schema(pattern = "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")]
    pub info_hash: String,
    /// The seeder's base URL; chunks are fetched from `{url}/chunks/{info_hash}/{index}`.
    #[schema(
        example = "http://127.0.0.1:8080",
        max_length = 2048,
        pattern = "^https?://([A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(\\.[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)*|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9]))(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$"
    )]
    pub url: String,
    /// Omitted for a periodic re-announce.
    pub event: Option<Event>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnounceResponse {
    /// Seconds until the next announce; a seeder silent for twice this long is dropped.
    pub interval: u64,
    /// The announcing client's address as this tracker sees it (the socket's, or with trusted
    /// proxies the one they saw). A seeder compares it with the URL it announces.
    #[schema(example = "203.0.113.7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PeersQuery {
    /// v2 (64 hex) or v1 (40 hex) info-hash.
    #[param(pattern = "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")]
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

/// Registers (or refreshes, or with "stopped" removes) a seeder of a torrent.
#[utoipa::path(
    post,
    path = "/announce",
    tag = "tracker",
    request_body = AnnounceRequest,
    security((), ("tracker_token" = [])),
    responses(
        (status = 200, body = AnnounceResponse),
        (status = 400, description = "Malformed info-hash, seeder URL or JSON, or a seeder address refused by tracker.private_seeders", body = ErrorBody),
        (status = 403, description = "tracker.allowlist is on and the torrent is not registered", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "tracker.verify_seeders is on and the seeder served a wrong or no chunk", body = ErrorBody),
        WriteRefusals,
    )
)]
pub async fn announce(
    ClientIp(client): ClientIp,
    body: web::Json<AnnounceRequest>,
    state: web::Data<AppState>,
) -> Result<web::Json<AnnounceResponse>, ApiError> {
    let tracker = state.tracker()?;
    let announce = SeederAnnounce {
        hash: parse_hash(&body.info_hash)?,
        url: SeederUrl::parse(&body.url).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        event: body.event,
        client,
    };
    let interval = tracker.announce(announce).await?;
    Ok(web::Json(AnnounceResponse {
        interval: interval.as_secs(),
        external_ip: client.map(|ip| ip.to_canonical().to_string()),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_seeder_url_pattern_is_the_one_the_server_applies() {
        let doc: serde_json::Value = serde_json::from_str(&crate::server::openapi::json()).unwrap();
        let pattern =
            &doc["components"]["schemas"]["AnnounceRequest"]["properties"]["url"]["pattern"];
        assert_eq!(pattern, crate::types::SEEDER_URL_PATTERN);
    }
}

/// Live seeders of a torrent.
#[utoipa::path(
    get,
    path = "/peers",
    tag = "tracker",
    params(PeersQuery),
    security((), ("tracker_token" = [])),
    responses(
        (status = 200, body = PeersResponse),
        (status = 400, description = "Missing or malformed info-hash", body = ErrorBody),
        ReadRefusals,
    )
)]
pub async fn peers(
    query: web::Query<PeersQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<PeersResponse>, ApiError> {
    let tracker = state.tracker()?;
    let hash = parse_hash(&query.info_hash)?;
    Ok(web::Json(PeersResponse {
        info_hash: hash.to_string(),
        interval: tracker.interval().as_secs(),
        peers: tracker.peers(&hash).await?,
    }))
}
