//! Access policy for the tracker's routes: who may write (announce, register), who may read
//! (peers, torrents, scrape), and how fast one client may ask.
//!
//! The policy is a property of the route, not of the raw request path: [`protect`] wraps the
//! route's handler, so whatever spelling the router resolves to that handler (percent-encoded
//! letters, say) meets the same check. Tokens are compared in constant time. The rate limit is
//! per client (the socket's address, or X-Forwarded-For behind trusted proxies; an IPv6 client
//! by its /64, which one subscriber usually holds whole), so one abusive client cannot starve
//! the rest. Seeder endpoints (/chunks, /files) stay open: web-seed clients cannot send tokens.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;

use super::client::{client_ip, client_key};
use super::error::ApiError;
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
        // Settings refuse tokens under 16 characters, so a token is never empty here.
        Guard {
            write_token,
            read_token,
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

    /// Refuses the request if its client is over the rate limit or lacks the token `access`
    /// needs.
    fn check(&self, req: &ServiceRequest, access: Access) -> Option<ApiError> {
        if let Some(limiter) = &self.limiter {
            if let Some(ip) = client_ip(req.request(), self.trusted_proxy_hops) {
                if let Err(not_until) = limiter.check_key(&client_key(ip)) {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return Some(ApiError::RateLimited {
                        retry_after_secs: wait.as_secs() + 1,
                    });
                }
            }
        }
        let expected = match access {
            Access::Write => self.write_token.as_deref(),
            Access::Read => self.read_token.as_deref(),
        };
        match expected {
            Some(token) if !presents(req, token) => Some(ApiError::Unauthorized(match access {
                Access::Write => "announcing and registering need the tracker's write token",
                Access::Read => "reading tracker data needs the tracker's read token",
            })),
            _ => None,
        }
    }
}

/// What a protected route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Announcing and registering: `tracker.write_token`.
    Write,
    /// Reading tracker data: `tracker.read_token`.
    Read,
}

/// How a route's clients read a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `{error, message}` with the error's status.
    Json,
    /// A bencoded `failure reason` with status 200, which is what BitTorrent clients read.
    Bencode,
}

/// Middleware for one route: the rate limit and the token `access` needs, refused as `refusal`.
pub fn protect<S>(
    access: Access,
    refusal: Refusal,
) -> impl Transform<S, ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error, InitError = ()>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    actix_web::middleware::from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
        enforce(req, next, access, refusal)
    })
}

async fn enforce(
    req: ServiceRequest,
    next: Next<BoxBody>,
    access: Access,
    refusal: Refusal,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let refused = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.guard.check(&req, access));
    let Some(refused) = refused else {
        return next.call(req).await;
    };
    Ok(match refusal {
        Refusal::Json => req.error_response(refused),
        Refusal::Bencode => req.into_response(
            HttpResponse::Ok()
                .content_type("application/x-bittorrent")
                .body(bep3::encode_failure(&refused.to_string())),
        ),
    })
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

/// Refuses requests larger than any real client sends, before routing: this one applies to
/// every path, so it is the only check that looks at the raw request.
pub async fn limit_size(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    match oversized(&req) {
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Some(refusal) => Ok(req.error_response(refusal).map_into_right_body()),
    }
}

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

/// Shared by the app state and the periodic cleanup task.
pub type SharedGuard = Arc<Guard>;
