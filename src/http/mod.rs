//! The HTTP surface: the route table, CORS, limits and tracing. Handlers live in one file per
//! resource and stay thin: extract, call the service, map the result.

mod accounts;
mod body;
mod conversations;
mod ops;
mod rooms;
pub mod web;

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, OriginalUri, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::Response,
    routing::{get, post},
};
use tower_http::{
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{config::Config, state::AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of the HTTP API.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let api = Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/api/me", get(accounts::me))
        .route("/api/conversations", get(conversations::list))
        .route(
            "/api/conversations/{peer_id}/messages",
            get(conversations::messages),
        )
        .route("/api/rooms/{room_id}", get(rooms::room))
        .route("/api/rooms/{room_id}/messages", get(rooms::messages))
        .route("/api/users", get(rooms::users))
        .route("/api/instance", get(ops::instance))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .layer(DefaultBodyLimit::max(config.max_payload as usize))
        .with_state(state);
    let api = with_web_client(api, &config);
    api.layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: a query string may carry a token.
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }),
    )
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The web client at `/` for every path no route took (see [`web`]).
fn with_web_client(router: Router, config: &Config) -> Router {
    let client = web::WebClient::from_config(config);
    tracing::info!(web_client = %client.describe(), "web client");
    router.fallback_service(web::router(client))
}

/// CORS as the NestJS app had it: any origin by default, preflights answered 204.
pub fn cors(config: &Config) -> CorsLayer {
    let origin = if config.cors_origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600))
}

/// Answers CORS preflights with 204 No Content (tower-http answers 200), as express's `cors` did.
pub async fn preflight_no_content(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key("access-control-request-method");
    let mut response = next.run(req).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Gives a Socket.io handshake request a head of its own. hyper parses the URI and header values
/// as views into the connection's 8–16 KiB read buffer, and socketioxide keeps the handshake's
/// request parts (headers, URI and extensions, among them axum's `OriginalUri`) for the socket's
/// whole life: each idle socket pinned that whole buffer. Copying the few bytes out frees it.
/// Only a request that opens a session (no `sid` yet) is kept, so polls and upgrades pass as-is.
pub async fn own_socket_request_head(mut req: Request, next: Next) -> Response {
    let opens_session = req.uri().path().starts_with("/socket.io")
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("sid=")));
    if opens_session {
        let owned_uri = |uri: &Uri| Uri::try_from(uri.to_string()).ok();
        if let Some(uri) = owned_uri(req.uri()) {
            *req.uri_mut() = uri;
        }
        if let Some(OriginalUri(original)) = req.extensions_mut().get_mut::<OriginalUri>()
            && let Some(uri) = owned_uri(original)
        {
            *original = uri;
        }
        let shared = std::mem::take(req.headers_mut());
        let owned = req.headers_mut();
        owned.reserve(shared.len());
        // Names are copies already; `from_bytes` copies the value (and cannot fail on bytes that
        // were a valid value).
        for (name, value) in &shared {
            let mut copy =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            copy.set_sensitive(value.is_sensitive());
            owned.append(name.clone(), copy);
        }
    }
    next.run(req).await
}
