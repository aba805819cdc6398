//! Access policy for the tracker endpoints, in one place: who may write (announce, register),
//! who may read (peers, torrents, scrape), and how fast one client may ask.
//!
//! Tokens are compared in constant time. The rate limit is per client address (from the
//! socket, or X-Forwarded-For behind trusted proxies), so one abusive client cannot starve the
//! rest. Seeder endpoints (/chunks, /files) stay open: web-seed clients cannot send tokens.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::routes::bittorrent::client_ip;
use super::AppState;
use crate::tracker::bep3;

pub struct Guard {
    pub write_token: Option<String>,
    pub read_token: Option<String>,
    pub limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    pub trusted_proxy_hops: usize,
}

impl Guard {
    pub fn new(
        write_token: Option<String>,
        read_token: Option<String>,
        per_second: u32,
        burst: u32,
        trusted_proxy_hops: usize,
    ) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let set = |t: Option<String>| t.filter(|t| !t.is_empty());
        Guard {
            write_token: set(write_token),
            read_token: set(read_token),
            limiter,
            trusted_proxy_hops,
        }
    }

    /// Forgets idle clients so the limiter's memory follows the active population.
    pub fn forget_idle_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Write,
    Read,
    Open,
}

fn classify(method: &Method, path: &str) -> Access {
    match (method.as_str(), path) {
        ("POST", "/announce" | "/torrents") | ("GET", "/announce") => Access::Write,
        ("GET", "/peers" | "/torrents" | "/scrape") => Access::Read,
        ("GET", p) if p.starts_with("/torrents/") => Access::Read,
        _ => Access::Open,
    }
}

/// Whether the request carries `expected`, as a bearer token or (for BitTorrent clients,
/// which cannot set headers) a `token` query parameter.
fn presents(req: &ServiceRequest, expected: &str) -> bool {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    let query = req.query_string().split('&').find_map(|pair| {
        pair.strip_prefix("token=")
            .map(|t| percent_encoding::percent_decode_str(t).collect::<Vec<u8>>())
    });
    let given = bearer.map(<[u8]>::to_vec).or(query);
    given.is_some_and(|g| bool::from(g.ct_eq(expected.as_bytes())))
}

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most header bytes (names and values) accepted in one request.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses requests larger than any real client sends, before any handler runs.
fn oversized(req: &ServiceRequest) -> Option<ApiError> {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong {
            limit: MAX_URI_BYTES,
        });
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers > MAX_HEADER_BYTES).then_some(ApiError::HeadersTooLarge {
        limit: MAX_HEADER_BYTES,
    })
}

pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let guard = &state.guard;
    let access = classify(req.method(), req.path());
    let refusal = oversized(&req).or_else(|| match access {
        Access::Open => None,
        _ => check(&req, guard, access),
    });
    match refusal {
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        // BitTorrent clients read errors from a bencoded body with status 200.
        Some(refusal) if req.method() == Method::GET && req.path() == "/announce" => {
            let body = bep3::encode_failure(&refusal.to_string());
            let response = HttpResponse::Ok()
                .content_type("application/x-bittorrent")
                .body(body);
            Ok(req.into_response(response).map_into_right_body())
        }
        Some(refusal) => Ok(req.error_response(refusal).map_into_right_body()),
    }
}

fn check(req: &ServiceRequest, guard: &Guard, access: Access) -> Option<ApiError> {
    if let Some(limiter) = &guard.limiter {
        if let Some(ip) = client_ip(req.request(), guard.trusted_proxy_hops) {
            if let Err(not_until) = limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Some(ApiError::RateLimited {
                    retry_after_secs: wait.as_secs() + 1,
                });
            }
        }
    }
    let expected = match access {
        Access::Write => guard.write_token.as_deref(),
        Access::Read => guard.read_token.as_deref(),
        Access::Open => None,
    };
    match expected {
        Some(token) if !presents(req, token) => Some(ApiError::Unauthorized(match access {
            Access::Write => "announcing and registering need the tracker's write token",
            _ => "reading tracker data needs the tracker's read token",
        })),
        _ => None,
    }
}

/// Shared by the app state and the periodic cleanup task.
pub type SharedGuard = Arc<Guard>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tracker_writes_and_reads() {
        assert_eq!(classify(&Method::POST, "/announce"), Access::Write);
        assert_eq!(classify(&Method::GET, "/announce"), Access::Write);
        assert_eq!(classify(&Method::POST, "/torrents"), Access::Write);
        assert_eq!(
            classify(&Method::GET, "/torrents/abc/manifest"),
            Access::Read
        );
        assert_eq!(classify(&Method::GET, "/scrape"), Access::Read);
        assert_eq!(classify(&Method::GET, "/chunks/a/0"), Access::Open);
        assert_eq!(classify(&Method::GET, "/health"), Access::Open);
    }
}
