//! Torrent endpoints: the list, one .torrent, its manifest, and registration (tracker role).

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::metainfo::Metainfo;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::schema::{Binary, ReadRefusals, WriteRefusals};
use crate::server::AppState;
use crate::tracker::Registered;
use crate::types::{InfoHash, InfoHashV2};

#[derive(Debug, Serialize, ToSchema)]
pub struct TorrentSummary {
    #[schema(example = "ubuntu.iso")]
    pub name: String,
    /// Whether this is a folder (a multi-file torrent) rather than one file.
    pub is_folder: bool,
    /// Size in bytes: of the file, or of all the folder's files together.
    pub length: u64,
    /// Piece (chunk) size in bytes.
    pub piece_length: u64,
    pub piece_count: u32,
    /// SHA-1 info-hash, 40 hex characters.
    #[schema(value_type = String)]
    pub info_hash_v1: crate::types::InfoHashV1,
    /// SHA-256 info-hash, 64 hex characters: the canonical id.
    #[schema(value_type = String)]
    pub info_hash_v2: crate::types::InfoHashV2,
    /// Live seeders known to this server's tracker (0 when the tracker role is off).
    pub seeders: usize,
    /// Magnet URI: both info-hashes, name, trackers and web seeds.
    pub magnet: String,
    /// The files, in torrent order (one, named like the torrent, for a single file).
    pub files: Vec<TorrentFileView>,
}

/// One file of a torrent.
#[derive(Debug, Serialize, ToSchema)]
pub struct TorrentFileView {
    /// Path inside the torrent, `/`-separated; the web-seed URL of a folder's file is
    /// `/files/<torrent name>/<path>`.
    #[schema(example = "disc 1/01 intro.flac")]
    pub path: String,
    /// Size in bytes.
    pub length: u64,
    /// BEP 52 pieces root, hex; absent for an empty file.
    pub pieces_root: Option<String>,
    /// Its pieces are `first_piece .. first_piece + ceil(length / piece_length)`: a piece never
    /// spans two files.
    pub first_piece: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Manifest {
    #[serde(flatten)]
    pub summary: TorrentSummary,
    /// BEP 52 SHA-256 hash of each piece, hex, in order: what a chunk is verified against.
    pub piece_hashes: Vec<String>,
    /// Tracker announce URLs, first = `announce`.
    pub trackers: Vec<String>,
    /// Web seeds (BEP 19).
    pub url_list: Vec<String>,
}

/// A torrent's summary, with its live seeders.
fn summary(meta: &Metainfo, seeders: usize) -> TorrentSummary {
    TorrentSummary {
        name: meta.name.clone(),
        is_folder: meta.is_folder,
        length: meta.length,
        piece_length: meta.piece_length.get(),
        piece_count: meta.piece_count(),
        info_hash_v1: meta.info_hash_v1,
        info_hash_v2: meta.info_hash_v2,
        seeders,
        magnet: crate::magnet::build(meta),
        files: meta
            .files
            .iter()
            .map(|f| TorrentFileView {
                path: f.path_string(),
                length: f.length,
                pieces_root: f.pieces_root.map(hex::encode),
                first_piece: f.first_piece,
            })
            .collect(),
    }
}

/// The summary of one torrent, its live seeders asked of the tracker.
async fn summary_of(state: &AppState, meta: &Arc<Metainfo>) -> Result<TorrentSummary, ApiError> {
    let seeders = state
        .directory
        .live_seeders(std::slice::from_ref(meta))
        .await?;
    Ok(summary(meta, seeders.first().copied().unwrap_or(0)))
}

/// Torrents listed per page unless `limit` says otherwise, and the most a page may hold.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Torrents per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// List the torrents whose v2 info-hash sorts after this one (64 hex): the cursor that
    /// the `Link: <...>; rel="next"` header of the previous page carries.
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    after: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> Result<(Option<InfoHashV2>, usize), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be 1 to {MAX_PAGE}, not {limit}"
            )));
        }
        let after = match &self.after {
            None => None,
            Some(raw) => match InfoHash::parse(raw) {
                Ok(InfoHash::V2(hash)) => Some(hash),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "after must be a v2 info-hash (64 hex), not {:?}",
                        crate::types::truncate_for_message(raw)
                    )))
                }
            },
        };
        Ok((after, limit))
    }
}

/// Torrents this server knows (files it shares, torrents registered with its tracker), a page
/// at a time in v2 info-hash order, so the cost is the page's and not the registry's.
#[utoipa::path(
    get,
    path = "/torrents",
    tag = "torrents",
    params(ListQuery),
    security((), ("tracker_token" = [])),
    responses(
        (status = 200, body = Vec<TorrentSummary>, headers(("Link" = String, description = "`</torrents?limit=N&after=HASH>; rel=\"next\"` when more torrents follow"))),
        (status = 400, description = "limit outside 1..=1000, or after not a v2 info-hash", body = ErrorBody),
        ReadRefusals
    )
)]
pub async fn list(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = query.parse()?;
    let (page, more) = state.directory.page(after, limit).await?;
    let seeders = state.directory.live_seeders(&page).await?;
    let summaries: Vec<TorrentSummary> = page
        .iter()
        .zip(seeders)
        .map(|(meta, seeders)| summary(meta, seeders))
        .collect();
    let mut response = HttpResponse::Ok();
    if let (true, Some(last)) = (more, page.last()) {
        // Other pairs stay (a read token given as `?token=`), so the link works as it is.
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
            if name != "limit" && name != "after" {
                next.append_pair(&name, &value);
            }
        }
        next.append_pair("limit", &limit.to_string());
        next.append_pair("after", &last.info_hash_v2.to_string());
        let link = format!("</torrents?{}>; rel=\"next\"", next.finish());
        response.insert_header((header::LINK, link));
    }
    Ok(response.json(summaries))
}

/// The .torrent file (bencoded hybrid v1 + v2 metainfo).
#[utoipa::path(
    get,
    path = "/torrents/{info_hash}",
    tag = "torrents",
    params(("info_hash" = String, Path, pattern = "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", description = "v2 (64 hex) or v1 (40 hex) info-hash")),
    security((), ("tracker_token" = [])),
    responses(
        (status = 200, content_type = "application/x-bittorrent", body = Binary),
        (status = 400, description = "Malformed info-hash", body = ErrorBody),
        (status = 404, description = "Unknown torrent", body = ErrorBody),
        ReadRefusals,
    )
)]
pub async fn metainfo(
    info_hash: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.directory.find(&InfoHash::parse(&info_hash)?).await?;
    let filename = format!("{}.torrent", meta.name);
    Ok(HttpResponse::Ok()
        .content_type("application/x-bittorrent")
        .insert_header(header::ContentDisposition::attachment(filename))
        .body(meta.bytes.to_vec()))
}

/// A JSON view of a torrent, with every piece hash.
#[utoipa::path(
    get,
    path = "/torrents/{info_hash}/manifest",
    tag = "torrents",
    params(("info_hash" = String, Path, pattern = "^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", description = "v2 (64 hex) or v1 (40 hex) info-hash")),
    security((), ("tracker_token" = [])),
    responses(
        (status = 200, body = Manifest),
        (status = 400, description = "Malformed info-hash", body = ErrorBody),
        (status = 404, description = "Unknown torrent", body = ErrorBody),
        ReadRefusals,
    )
)]
pub async fn manifest(
    info_hash: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Manifest>, ApiError> {
    let meta = state.directory.find(&InfoHash::parse(&info_hash)?).await?;
    Ok(web::Json(Manifest {
        summary: summary_of(&state, &meta).await?,
        piece_hashes: meta.piece_hashes.iter().map(hex::encode).collect(),
        trackers: meta.trackers.clone(),
        url_list: meta.url_list.clone(),
    }))
}

/// Registers a .torrent with the tracker so downloaders can fetch it by info-hash.
#[utoipa::path(
    post,
    path = "/torrents",
    tag = "tracker",
    request_body(
        description = "A bencoded single-file hybrid v1 + v2 .torrent (any content type is accepted)",
        content((Binary = "application/x-bittorrent"), (Binary = "application/octet-stream"))
    ),
    security((), ("tracker_token" = [])),
    responses(
        (status = 201, description = "Registered", body = TorrentSummary),
        (status = 200, description = "Already registered", body = TorrentSummary),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 422, description = "Not a usable torrent", body = ErrorBody),
        WriteRefusals,
    )
)]
pub async fn register(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (outcome, meta) = state.tracker()?.register_bytes(body).await?;
    let status = match outcome {
        Registered::Created => StatusCode::CREATED,
        Registered::Existing => StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(summary_of(&state, &meta).await?))
}
