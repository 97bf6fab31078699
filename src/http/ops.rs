//! `GET /health`, `GET /ready`, `GET /metrics`, `GET /api/instance`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    state::AppState,
    wire::{ErrorBody, HealthView, InstanceView, NotReadyView, ReadyChecks, ReadyView},
};

/// The process is alive.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = HealthView))
)]
pub async fn health() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// 200 when the database (and Redis, in cluster mode) answer; else 503 naming what failed.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "operations",
    responses(
        (status = 200, description = "The database (and Redis, in cluster mode) answer", body = ReadyView),
        (status = 503, description = "A dependency is down; `message` and `checks` name it", body = NotReadyView),
    )
)]
pub async fn ready(State(app): State<AppState>) -> Response {
    let database = app.store.ping().await.is_ok();
    let redis = app.mode.redis_ready();
    let mut failing = Vec::new();
    if !database {
        failing.push("database");
    }
    if redis == Some(false) {
        failing.push("redis");
    }
    let checks = ReadyChecks {
        database: if database { "up" } else { "down" },
        redis: match redis {
            None => "not configured",
            Some(true) => "up",
            Some(false) => "down",
        },
    };
    if failing.is_empty() {
        Json(ReadyView {
            status: "ok",
            checks,
        })
        .into_response()
    } else {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let body = NotReadyView {
            error: ErrorBody {
                status_code: status.as_u16(),
                message: format!("Not ready: {} unavailable", failing.join(" and ")),
                error: status.canonical_reason(),
            },
            checks,
        };
        (status, Json(body)).into_response()
    }
}

/// Prometheus metrics of this instance.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let online = app.presence.online_count().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(online),
    )
}

/// Which instance answered, for the web client's indicator.
#[utoipa::path(
    get,
    path = "/api/instance",
    operation_id = "getInstance",
    tag = "operations",
    responses((status = 200, description = "The answering instance", body = InstanceView))
)]
pub async fn instance(State(app): State<AppState>) -> Json<InstanceView> {
    Json(InstanceView {
        instance_id: app.config.instance_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
