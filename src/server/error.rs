//! The API's errors and their one mapping to HTTP: every 4xx/5xx body is JSON `{error, message}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::directory::DirectoryError;
use crate::metainfo::MetainfoError;
use crate::seeder::UploadError;
use crate::storage::StorageError;
use crate::tracker::store::StoreError;
use crate::tracker::TrackerError;
use crate::types::InfoHashParseError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `not_found`.
    #[schema(example = "not_found")]
    pub error: &'static str,
    /// What went wrong, naming the offending value.
    #[schema(example = "no shared file or torrent named \"a.bin\"")]
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidTorrent(#[from] MetainfoError),
    #[error("requested range not satisfiable: the representation is {length} bytes")]
    RangeNotSatisfiable { length: u64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many downloads at once; retry shortly")]
    Overloaded,
    #[error("this client already has {limit} downloads streaming (seeder.max_streams_per_client); retry when one ends")]
    TooManyStreams { limit: usize },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    SeederUnverified(String),
    #[error("request target longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("request headers larger than {limit} bytes in all")]
    HeadersTooLarge { limit: usize },
    #[error("method {method} not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("too many requests from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    SeederRefused(#[from] crate::tracker::admission::AdmissionError),
    #[error("{0}")]
    Full(#[from] crate::tracker::Full),
    /// A store the service depends on is down; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::SeederRefused(_) => "seeder_refused",
            ApiError::Full(_) => "capacity_reached",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::InvalidTorrent(_) => "invalid_torrent",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Overloaded => "overloaded",
            ApiError::TooManyStreams { .. } => "too_many_streams",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::SeederUnverified(_) => "seeder_unverified",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Storage(StorageError::Missing { .. } | StorageError::Changed { .. }) => {
                "file_unavailable"
            }
            ApiError::Storage(StorageError::Unavailable { .. }) => "unavailable",
            ApiError::Storage(StorageError::Exists { .. }) => "conflict",
            ApiError::Storage(StorageError::Io { .. })
            | ApiError::Db(_)
            | ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::SeederRefused(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidTorrent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded
            | ApiError::TooManyStreams { .. }
            | ApiError::Full(_)
            | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::SeederUnverified(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // The file changed or vanished since it was hashed (a rescan will fix the catalog),
            // or the storage cannot be reached.
            ApiError::Storage(
                StorageError::Missing { .. }
                | StorageError::Changed { .. }
                | StorageError::Unavailable { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(StorageError::Exists { .. }) => StatusCode::CONFLICT,
            ApiError::Storage(StorageError::Io { .. })
            | ApiError::Db(_)
            | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RangeNotSatisfiable { length } => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{length}")));
            }
            ApiError::Storage(
                StorageError::Missing { .. }
                | StorageError::Changed { .. }
                | StorageError::Unavailable { .. },
            ) => {
                response.insert_header((header::RETRY_AFTER, "30"));
            }
            ApiError::Overloaded | ApiError::TooManyStreams { .. } => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            // Entries expire within two announce intervals; a minute is a fair first wait.
            ApiError::Full(_) | ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "60"));
            }
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, *allow));
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // Paths on disk and store addresses are for the log, not for clients; a changed
        // object is named by its shared name, which the client already knows.
        let message = match self {
            ApiError::Storage(StorageError::Changed { .. } | StorageError::Exists { .. }) => {
                self.to_string()
            }
            ApiError::Storage(_) | ApiError::Db(_) | ApiError::Internal(_) => {
                status.canonical_reason().unwrap_or("error").to_owned()
            }
            _ => self.to_string(),
        };
        response.json(ErrorBody {
            error: self.code(),
            message,
        })
    }
}

/// Turns actix-web's extractor errors (bad JSON, query, path, oversized body) into our JSON errors.
pub fn extractor_error(
    err: impl std::fmt::Display + Into<actix_web::Error>,
    _: &HttpRequest,
) -> actix_web::Error {
    let message = err.to_string();
    let error: actix_web::Error = err.into();
    let api = match error.as_response_error().status_code() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
        StatusCode::NOT_FOUND => ApiError::NotFound(message),
        _ => ApiError::BadRequest(message),
    };
    api.into()
}

/// Last line of defence for "every error body is JSON": rewrites error responses that actix-web
/// itself produced (payload limits, unknown methods) into `{error, message}`.
pub fn ensure_json_body<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = res
                .request()
                .app_data::<actix_web::web::Data<super::AppState>>()
                .map_or(0, |s| s.max_body_bytes);
            format!("request body larger than the limit of {limit} bytes (server.max_body_bytes)")
        }
        _ => reason.to_owned(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let new = new.json(ErrorBody {
        error: code,
        message,
    });
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Off => ApiError::Forbidden(e.to_string()),
            UploadError::BadName(_) | UploadError::Empty | UploadError::Cut(_) => {
                ApiError::BadRequest(e.to_string())
            }
            UploadError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            UploadError::Storage(e) => e.into(),
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NotFound(_) => ApiError::NotFound(e.to_string()),
            DirectoryError::Tracker(e) => e.into(),
        }
    }
}

impl From<InfoHashParseError> for ApiError {
    fn from(e: InfoHashParseError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<TrackerError> for ApiError {
    fn from(e: TrackerError) -> Self {
        match e {
            TrackerError::NotRegistered(_) => ApiError::Forbidden(e.to_string()),
            TrackerError::Refused(e) => ApiError::SeederRefused(e),
            TrackerError::Unverified(why) => ApiError::SeederUnverified(why),
            TrackerError::InvalidTorrent(e) => ApiError::InvalidTorrent(e),
            TrackerError::Store(StoreError::Full(e)) => ApiError::Full(e),
            TrackerError::Store(StoreError::Db(e)) => ApiError::Db(e),
            TrackerError::Store(StoreError::Unavailable(why)) => ApiError::Unavailable(why),
            TrackerError::Internal(why) => ApiError::Internal(why),
        }
    }
}
