//! Operations endpoints: liveness and Prometheus metrics.

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
}

/// Liveness: answers as soon as the server accepts requests.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health(state: web::Data<AppState>) -> web::Json<Health> {
    web::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        seeder: state.seeder.is_some(),
        tracker: state.tracker.is_some(),
    })
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
