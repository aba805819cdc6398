//! Operations endpoints: liveness, readiness and Prometheus metrics.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::server::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
    pub seeder: bool,
    pub tracker: bool,
    /// What the seeder is hashing now (a new or changed file or folder), if anything.
    pub hashing: Option<crate::seeder::Hashing>,
    /// How others reach this server: the public URL, the port mapping on the home router and
    /// the dynamic DNS name, when there are.
    pub reachability: crate::reach::Reachability,
}

/// Liveness: answers as soon as the server accepts requests.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health(state: web::Data<AppState>) -> web::Json<Health> {
    web::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        seeder: state.seeder.is_some(),
        tracker: state.tracker.is_some(),
        hashing: state.seeder.as_ref().and_then(|s| s.hashing()),
        reachability: state.reach.status(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// "ready", or "unavailable" when a dependency does not answer.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency and its state ("ok", or why not); empty with the embedded stores.
    pub dependencies: std::collections::BTreeMap<&'static str, String>,
}

/// Readiness, for load balancers: 200 when every dependency (the tracker's Redis, when
/// configured) answers, 503 otherwise. The server recovers by itself when it returns.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "A dependency does not answer", body = Readiness),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let dependencies = match &state.tracker {
        Some(tracker) => tracker.dependencies().await,
        None => Default::default(),
    };
    let all_ok = dependencies.values().all(|v| v == "ok");
    let body = Readiness {
        status: if all_ok { "ready" } else { "unavailable" },
        dependencies,
    };
    match all_ok {
        true => HttpResponse::Ok().json(body),
        false => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// Prometheus text exposition: requests by route and status, bytes served, torrents, seeders.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&state).await?))
}
