//! The OpenAPI 3.1 description of the REST API, served at `GET /api/openapi.json`. It is generated
//! from the code: each handler's `#[utoipa::path]` attribute (method, path, parameters, responses)
//! and the `wire` types' `ToSchema` derives. The route table registers handlers through
//! `utoipa_axum::routes!`, which adds a route to the router and its operation to this document
//! in one step, so the two cannot drift apart.

use std::sync::Arc;

use axum::{
    Extension,
    http::header,
    response::{IntoResponse, Response},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// The name of the bearer-token security scheme that protected operations require.
pub const BEARER: &str = "bearer";

/// The document's fixed parts; the paths are added by the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nexus Chat REST API",
        description = "Accounts, history and operations of Nexus Chat. Live messaging, rooms, read \
                       state and typing go over Socket.io: see docs/protocol.md. Every failure \
                       answers the NestJS error body `{\"statusCode\", \"message\", \"error\"}`.",
        license(name = "MIT")
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "accounts", description = "Registration, sign-in and the signed-in user"),
        (name = "conversations", description = "Direct conversations and their history"),
        (name = "rooms", description = "Group conversations and the user directory"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` scheme: the JWT of `POST /auth/login` in `Authorization: Bearer <token>`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of `POST /auth/login` (HS256, signed with JWT_SECRET)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The finished document, serialized once at start-up.
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    /// Serializes the description.
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Document {
        // Serializing plain data cannot fail; an empty object would still be valid JSON.
        Document(Arc::from(
            doc.to_pretty_json().unwrap_or_else(|_| "{}".into()),
        ))
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "getOpenApiDescription",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object))
)]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}
