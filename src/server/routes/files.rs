//! Seeder endpoints: `GET /chunks/{file}/{index}` (one piece) and `GET /files/{name}` (a whole
//! file, the BEP 19 web-seed layout: `/files/<name>` for a single file, `/files/<name>/<path>`
//! for a folder's file). Both stream from storage and honour a single `Range`.

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HttpDate};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::seeder::SharedTorrent;
use crate::server::client::{client_ip, client_key};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::range::{self, RangeOutcome};
use crate::server::schema::Binary;
use crate::server::AppState;
use crate::storage::ObjectMeta;
use crate::types::PieceIndex;

/// Content addressed by info-hash never changes, so caches may keep it for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A name can point at new content after a rescan: caches must revalidate.
const REVALIDATE: &str = "no-cache";

/// The raw bytes of one piece (chunk).
#[utoipa::path(
    get,
    path = "/chunks/{file}/{index}",
    tag = "seeder",
    params(
        ("file" = String, Path, description = "A shared torrent's name (a file's or a folder's) or its v1/v2 info-hash in hex"),
        ("index" = u32, Path, description = "Piece index, from 0"),
        ("Range" = Option<String>, Header, description = "A single byte range inside the piece, e.g. bytes=0-1023"),
    ),
    responses(
        (status = 200, description = "The piece's bytes; the ETag is its BEP 52 SHA-256 piece hash. A folder's piece is a slice of one of its files (every file starts on a piece boundary), without the pad file's zeros", content_type = "application/octet-stream", body = Binary),
        (status = 206, description = "The requested range of the piece", content_type = "application/octet-stream", body = Binary),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 400, description = "Malformed piece index", body = ErrorBody),
        (status = 404, description = "Unknown file or piece index past the end", body = ErrorBody),
        (status = 416, description = "Range outside the piece", body = ErrorBody),
        (status = 503, description = "Too many streams at once, in all (seeder.max_streams) or for this client (seeder.max_streams_per_client), or the file changed on disk since it was hashed; Retry-After says when to try again", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn chunk(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (file, index) = path.into_inner();
    let index = PieceIndex::parse(&index).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let catalog = state.seeder()?.catalog();
    let (shared, by_hash) = catalog.resolve(&file).ok_or_else(|| not_shared(&file))?;
    let span = shared.meta.piece(index).ok_or_else(|| {
        ApiError::NotFound(format!(
            "piece index {} is past the end of {:?}, which has {} pieces",
            index.0,
            shared.name,
            shared.meta.piece_count()
        ))
    })?;
    let etag = format!(
        "\"{}\"",
        hex::encode(shared.meta.piece_hashes[index.0 as usize])
    );
    let cache = if by_hash { IMMUTABLE } else { REVALIDATE };
    let object = &shared.objects[span.file];
    let body = Body::Object(object);
    serve(
        &req,
        &state,
        body,
        object.last_modified,
        span.offset,
        span.len,
        &etag,
        cache,
    )
    .await
}

/// A whole shared file: the BEP 19 web-seed URL (`url-list` = `<public url>/files/`).
#[utoipa::path(
    get,
    path = "/files/{name}",
    tag = "seeder",
    params(
        ("name" = String, Path, description = "A shared file's name, or <folder>/<path inside> for a file of a shared folder, e.g. album/disc 1/01.flac; <folder>/.pad/<N> answers N zero bytes (a BEP 47 pad file, for web-seed clients that fetch them)"),
        ("Range" = Option<String>, Header, description = "A single byte range, e.g. bytes=1048576-2097151"),
        ("If-Range" = Option<String>, Header, description = "Honour Range only if this ETag or date still matches"),
    ),
    responses(
        (status = 200, description = "The file; the ETag is its v2 info-hash (a folder's file: its BEP 52 pieces root)", content_type = "application/octet-stream", body = Binary),
        (status = 206, description = "The requested range, with Content-Range", content_type = "application/octet-stream", body = Binary),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 307, description = "Fetch the file from this presigned object-store URL instead (storage.s3.redirect_files)", headers(("Location" = String, description = "A URL valid for 15 minutes"))),
        (status = 404, description = "No shared file of that name", body = ErrorBody),
        (status = 416, description = "Range not satisfiable; Content-Range gives the length", body = ErrorBody),
        (status = 503, description = "Too many streams at once, in all (seeder.max_streams) or for this client (seeder.max_streams_per_client), or the file changed on disk since it was hashed; Retry-After says when to try again", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn file(
    req: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let catalog = state.seeder()?.catalog();
    let (shared, inside) = match catalog.by_name(&name) {
        Some(single) if !single.meta.is_folder => (single, None),
        // libtorrent's web seed asks a torrent of one file for /files/<name> even when it is a
        // folder (it picks the URL form by the file count): serve that file there.
        Some(folder) if folder.meta.files.len() == 1 => (folder, None),
        _ => {
            let (folder, inside) = name.split_once('/').ok_or_else(|| not_shared(&name))?;
            let shared = catalog
                .by_name(folder)
                .filter(|t| t.meta.is_folder)
                .ok_or_else(|| not_shared(&name))?;
            (shared, Some(inside))
        }
    };
    let index = match inside {
        None => 0,
        Some(inside) => match shared.file_at(inside) {
            Some(index) => index,
            None => return pad_file(&req, &state, shared, inside, &name).await,
        },
    };
    let object = &shared.objects[index];
    if req.method() == actix_web::http::Method::GET && object.size > 0 {
        if let Some(url) = state.seeder()?.redirect(object).await? {
            return Ok(HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, url.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish());
        }
    }
    // A single file is its torrent; a folder's file is named by its content (pieces root).
    let etag = match (inside, shared.meta.files[index].pieces_root) {
        (None, _) if !shared.meta.is_folder => format!("\"{}\"", shared.meta.info_hash_v2),
        (_, Some(root)) => format!("\"{}\"", hex::encode(root)),
        (_, None) => "\"empty\"".to_owned(),
    };
    let body = Body::Object(object);
    let modified = object.last_modified;
    serve(
        &req,
        &state,
        body,
        modified,
        0,
        object.size,
        &etag,
        REVALIDATE,
    )
    .await
}

/// `/files/<folder>/.pad/<N>`: N zero bytes. The web-seed form of a BEP 47 pad file, which
/// clients that do not know BEP 47 (aria2c 1.36) fetch like any other file.
async fn pad_file(
    req: &HttpRequest,
    state: &AppState,
    shared: &SharedTorrent,
    inside: &str,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let size = inside
        .strip_prefix(".pad/")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| (1..shared.meta.piece_length.get()).contains(n))
        .ok_or_else(|| not_shared(name))?;
    let etag = format!("\"pad-{size}\"");
    let modified = shared.last_modified();
    serve(req, state, Body::Zeros, modified, 0, size, &etag, IMMUTABLE).await
}

fn not_shared(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no shared file, folder file or info-hash {:?}",
        crate::types::truncate_for_message(name)
    ))
}

/// Where a response's bytes come from.
enum Body<'a> {
    /// A shared object, at the version that was hashed.
    Object(&'a ObjectMeta),
    /// Zeros (a pad file).
    Zeros,
}

/// Streams `len` bytes of `body` from `offset`, applying conditional and range headers to that
/// window as the representation.
#[allow(clippy::too_many_arguments)]
async fn serve(
    req: &HttpRequest,
    state: &AppState,
    body: Body<'_>,
    modified: std::time::SystemTime,
    offset: u64,
    len: u64,
    etag: &str,
    cache_control: &str,
) -> Result<HttpResponse, ApiError> {
    let last_modified = HttpDate::from(modified);
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());

    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, last_modified))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::ACCEPT_RANGES, "bytes"));

    if header_str(header::IF_NONE_MATCH).is_some_and(|v| etag_matches(v, etag)) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }

    // If-Range: the Range applies only to the representation the client already has part of.
    let range_applies = header_str(header::IF_RANGE)
        .is_none_or(|v| v == etag || v.parse::<HttpDate>().is_ok_and(|d| d == last_modified));
    let range_header = header_str(header::RANGE).filter(|_| range_applies);
    let (start, count) = match range::resolve(range_header, len) {
        RangeOutcome::Full => (0, len),
        RangeOutcome::Partial { start, len: part } => {
            response.status(StatusCode::PARTIAL_CONTENT).insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", start, start + part - 1, len),
            ));
            (start, part)
        }
        RangeOutcome::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { length: len }),
    };

    // Past a stream limit, say "busy, come back" rather than queueing without bound.
    let client = client_ip(req, state.trusted_proxy_hops).map(client_key);
    let permit = state.streams.try_acquire(client)?;
    // HEAD reads nothing, but still checks the object is the version that was hashed.
    let head = req.method() == actix_web::http::Method::HEAD;
    // Bytes that may not match the torrent are never served: a changed object is refused.
    let body = match body {
        Body::Object(object) if object.size == 0 => zeros(0),
        Body::Object(object) => {
            state
                .seeder()?
                .read(object, offset + start, if head { 0 } else { count })
                .await?
        }
        Body::Zeros => zeros(if head { 0 } else { count }),
    };
    if head {
        // actix-http writes the sized body's length and never polls it for HEAD.
        response.content_type("application/octet-stream");
        let nothing = futures_util::stream::empty::<std::io::Result<web::Bytes>>();
        return Ok(response.body(SizedStream::new(count, nothing)));
    }
    response.content_type("application/octet-stream");
    let counter = state.metrics.bytes_served.clone();
    let body = body.inspect(move |block| {
        let _held_until_the_body_ends = &permit;
        if let Ok(bytes) = block {
            counter.inc_by(bytes.len() as u64);
        }
    });
    Ok(response.body(SizedStream::new(count, body)))
}

/// `len` zero bytes, a block at a time.
fn zeros(len: u64) -> crate::storage::ByteStream {
    static BLOCK: [u8; 16 * 1024] = [0; 16 * 1024];
    let blocks = (0..len.div_ceil(BLOCK.len() as u64)).map(move |i| {
        let n = (len - i * BLOCK.len() as u64).min(BLOCK.len() as u64) as usize;
        Ok(web::Bytes::from_static(&BLOCK[..n]))
    });
    Box::pin(futures_util::stream::iter(blocks))
}

/// `If-None-Match` holds `*` or a list of entity tags.
fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// What an upload stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// The shared name: `GET /files/{name}` serves it.
    pub name: String,
    /// Bytes stored.
    pub length: u64,
    /// The torrent is made by the next rescan, which starts now: the file is listed by
    /// `GET /torrents` once hashed.
    pub status: &'static str,
}

/// Streams a new file into the shared storage (when `seeder.uploads` is on): never whole in
/// memory, at most `seeder.max_upload_bytes`, under a name that is one plain file name and is
/// not shared yet. It is hashed and shared by the rescan that starts when it is stored.
#[utoipa::path(
    put,
    path = "/files/{name}",
    tag = "seeder",
    params(("name" = String, Path, description = "The new file's name: one file name (no '/', '\\', NUL), not starting with '.', at most 255 bytes")),
    request_body(content = Binary, content_type = "application/octet-stream", description = "The file's bytes"),
    security((), ("tracker_token" = [])),
    responses(
        (status = 201, description = "Stored; being hashed", body = Uploaded, headers(("Location" = String, description = "Where the file is served"))),
        (status = 400, description = "Not a usable file name, or the upload was cut", body = ErrorBody),
        (status = 401, description = "A write token is required (tracker.write_token)", body = ErrorBody),
        (status = 403, description = "Uploads are off (seeder.uploads)", body = ErrorBody),
        (status = 409, description = "A file of that name exists", body = ErrorBody),
        (status = 413, description = "Larger than seeder.max_upload_bytes", body = ErrorBody),
        (status = 429, description = "Over this client's rate limit (tracker.rate_limit_per_second)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The storage cannot be reached; retry later", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn upload(
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stored = state.seeder()?.upload(&name, declared, payload).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            crate::seeder::file_url(&state.reach.url(), &stored.key).as_str(),
        ))
        .json(Uploaded {
            name: stored.key,
            length: stored.size,
            status: "hashing",
        }))
}
