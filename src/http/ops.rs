//! `GET /health`, `GET /ready`, `GET /metrics`, `GET /api/instance`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::{Value, json};

use crate::state::AppState;

/// The process is alive.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the database (and Redis, in cluster mode) answer; else 503 naming what failed.
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = app.store.ping().await.is_ok();
    let redis = app.mode.redis_ready();
    let mut failing = Vec::new();
    if !database {
        failing.push("database");
    }
    if redis == Some(false) {
        failing.push("redis");
    }
    let checks = json!({
        "database": if database { "up" } else { "down" },
        "redis": match redis { None => "not configured", Some(true) => "up", Some(false) => "down" },
    });
    if failing.is_empty() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "checks": checks })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "statusCode": 503,
                "message": format!("Not ready: {} unavailable", failing.join(" and ")),
                "error": "Service Unavailable",
                "checks": checks,
            })),
        )
    }
}

/// Prometheus metrics of this instance.
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
pub async fn instance(State(app): State<AppState>) -> Json<Value> {
    Json(json!({
        "instanceId": app.config.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
