//! Types that exist only for the OpenAPI document: a binary body, and the refusals the guard
//! answers on the routes it protects. Routes name them in their `#[utoipa::path]`s; the
//! document (`openapi`) collects them.

use utoipa::IntoResponses;

use super::error::ErrorBody;

/// What the guard answers on a route that needs `tracker.read_token`.
#[derive(IntoResponses)]
pub enum ReadRefusals {
    /// tracker.read_token is set and the request lacks it
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer")))]
    Unauthorized(ErrorBody),
    /// Over this client's rate limit (tracker.rate_limit_per_second)
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ErrorBody),
}

/// What the guard answers on a route that needs `tracker.write_token`.
#[derive(IntoResponses)]
pub enum WriteRefusals {
    /// tracker.write_token is set and the request lacks it
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer")))]
    Unauthorized(ErrorBody),
    /// Over this client's rate limit (tracker.rate_limit_per_second)
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ErrorBody),
    /// A tracker cap is reached (tracker.max_*); entries expire, so retry later
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Full(ErrorBody),
}

/// Raw bytes in a request or response body (a `Vec<u8>` would be documented as an integer array).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);
