//! Error answers for what no handler answers itself: unknown routes, methods a route does not
//! take, URLs the static files cannot name, and the plain-text rejections of axum and tower-http.
//! Every one gets the NestJS body `{"statusCode","message","error"}` (500: without `error`), so a
//! client never has to parse two error formats, and a bad URL is never a 500.

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Longest path segment looked up: a file name cannot be longer on the file systems we serve
/// from (`NAME_MAX`), and asking for one fails with an I/O error tower-http answers 500.
const MAX_SEGMENT_BYTES: usize = 255;

/// Longest piece of the path quoted back in a 404 message.
const MAX_QUOTED_PATH: usize = 200;

/// Largest plain-text error body reused as the JSON body's message.
const MAX_REUSED_MESSAGE: usize = 1024;

/// The NestJS error response for `status` with `message`.
pub fn nest_error(status: StatusCode, message: &str) -> Response {
    let body = if status == StatusCode::INTERNAL_SERVER_ERROR {
        json!({ "statusCode": 500, "message": "Internal server error" })
    } else {
        json!({
            "statusCode": status.as_u16(),
            "message": message,
            "error": status.canonical_reason().unwrap_or("Error"),
        })
    };
    (status, Json(body)).into_response()
}

/// NestJS's 404 for a route it does not have: `Cannot GET /path`.
fn cannot(method: &Method, path: &str) -> Response {
    let quoted = match path.char_indices().nth(MAX_QUOTED_PATH) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    };
    nest_error(StatusCode::NOT_FOUND, &format!("Cannot {method} {quoted}"))
}

/// The handler of every path under `/api` that no route serves (never the web client's page).
pub async fn unknown_route(req: Request) -> Response {
    cannot(req.method(), req.uri().path())
}

/// Refuses, with a 404, a path with a segment longer than any file name, before the static
/// files are searched for it.
pub async fn refuse_overlong_segments(req: Request, next: Next) -> Response {
    if req
        .uri()
        .path()
        .split('/')
        .any(|segment| segment.len() > MAX_SEGMENT_BYTES)
    {
        return cannot(req.method(), req.uri().path());
    }
    next.run(req).await
}

/// Turns an error response that is not JSON (axum's rejections and 405s, tower-http's empty 500)
/// into the NestJS body, keeping its status and, when short, its text as the message.
pub async fn json_error_bodies(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    if status == StatusCode::NOT_FOUND {
        return cannot(&method, &path);
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REUSED_MESSAGE).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut answer = nest_error(status, &message);
    // Keep what the headers say about the error (`Allow` of a 405, `Retry-After`).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

fn is_json(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_long_path_is_quoted_short() {
        let path = format!("/assets/{}", "é".repeat(1000));
        let response = cannot(&Method::GET, &path);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = body(response).await;
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("Cannot GET /assets/éé"), "{message}");
        assert_eq!(
            message.chars().count(),
            "Cannot GET ".len() + MAX_QUOTED_PATH + 1
        );
        assert_eq!(body["error"], "Not Found");
        assert_eq!(body["statusCode"], 404);
    }

    #[tokio::test]
    async fn a_500_has_no_error_field() {
        let body = body(nest_error(StatusCode::INTERNAL_SERVER_ERROR, "boom")).await;
        assert_eq!(
            body,
            json!({ "statusCode": 500, "message": "Internal server error" })
        );
    }
}
