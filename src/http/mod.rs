//! The HTTP surface: the route table, CORS, limits and tracing. Handlers live in one file per
//! resource and stay thin: extract, call the service, map the result.

mod accounts;
mod body;
mod conversations;
mod errors;
pub mod openapi;
mod ops;
mod rooms;
pub mod web;

use std::time::Duration;

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, OriginalUri, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, Uri},
    middleware::{self, Next},
    response::Response,
    routing::any,
};
use tower_http::{
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{config::Config, state::AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route table. Each `routes!` entry adds a route and its OpenAPI operation together (the
/// method and path come from the handler's `#[utoipa::path]`), so the description lists exactly
/// the routes served.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(accounts::register))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::me))
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::messages))
        .routes(routes!(rooms::room))
        .routes(routes!(rooms::messages))
        .routes(routes!(rooms::users))
        .routes(routes!(ops::instance))
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::openapi_json))
}

/// The OpenAPI description of every route of [`router`].
pub fn openapi_description() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// Every route of the HTTP API.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let (api, description) = api_routes().split_for_parts();
    let api = api
        .layer(Extension(openapi::Document::new(&description)))
        // Never the web client's page: an unknown API path is a JSON 404.
        .route("/api", any(errors::unknown_route))
        .route("/api/", any(errors::unknown_route))
        .route("/api/{*rest}", any(errors::unknown_route))
        .layer(DefaultBodyLimit::max(config.max_payload as usize))
        .with_state(state);
    let api = with_web_client(api, &config)
        .layer(middleware::from_fn(errors::refuse_overlong_segments))
        .layer(middleware::from_fn(errors::json_error_bodies));
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
