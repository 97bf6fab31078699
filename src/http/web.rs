//! The web client at `/`: the files of `web/dist`, embedded in the binary at build time (or read
//! from `WEB_DIR` when that is set, for `npm run dev` work), served as a static site should be.
//!
//! - Vite's hashed files under `assets/` are cached for a year (`immutable`); everything else,
//!   `index.html` first, is `no-cache` and revalidated with its `ETag`.
//! - The web build writes Brotli and gzip copies (`x.js.br`, `x.js.gz`, see
//!   `web/scripts/compress.mjs`); the one the request's `Accept-Encoding` allows is sent as is.
//! - Every answer carries the Content-Security-Policy the client is built for, `nosniff` and a
//!   referrer policy.
//! - An unknown path is the single-page app's (`index.html`), except under `/api` (a JSON 404)
//!   and `/assets` (a missing hashed file is a 404, never HTML in place of a script).

use std::{borrow::Cow, path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::{config::Config, error::AppError};

/// The policy `web/` is built and checked against (`web/scripts/check-csp.mjs`): no inline script
/// or style, nothing from another origin, WebSocket to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";
/// Sent with every file: a chat links nowhere that needs to know where the reader came from.
pub const REFERRER_POLICY: &str = "no-referrer";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// `web/dist` as it was when the binary was built. Release builds carry the bytes; debug builds
/// read the folder at run time (so a rebuilt client shows without recompiling). A build without
/// `web/dist` (no Node.js) embeds nothing, and `/` explains how to get the client.
#[derive(RustEmbed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Embedded;

/// Where the web client's files come from.
#[derive(Clone, Debug)]
pub enum WebClient {
    /// The files embedded in the binary.
    Embedded,
    /// A folder given with `WEB_DIR`.
    Dir(Arc<PathBuf>),
    /// No client at all: `/` says how to build it.
    Missing,
}

/// One file to send.
struct File {
    data: Cow<'static, [u8]>,
    sha256: [u8; 32],
}

impl WebClient {
    /// `WEB_DIR` when set (an empty or missing folder gives the explanatory page), else the
    /// embedded files, else nothing.
    pub fn from_config(config: &Config) -> WebClient {
        match &config.web_dir {
            Some(dir) if dir.join("index.html").is_file() => WebClient::Dir(Arc::new(dir.clone())),
            Some(dir) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "WEB_DIR has no index.html: serving a page that explains how to build the client"
                );
                WebClient::Missing
            }
            None if Embedded::get("index.html").is_some() => WebClient::Embedded,
            None => WebClient::Missing,
        }
    }

    /// Where the files come from, for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            WebClient::Embedded => format!(
                "embedded ({} files)",
                Embedded::iter()
                    .filter(|f| !f.ends_with(".br") && !f.ends_with(".gz"))
                    .count()
            ),
            WebClient::Dir(dir) => format!("from WEB_DIR {}", dir.display()),
            WebClient::Missing => "not built (/ explains how to build it)".into(),
        }
    }

    /// The file at `path` (relative, `/`-separated), if there is one.
    async fn file(&self, path: &str) -> Option<File> {
        if !is_safe(path) {
            return None;
        }
        match self {
            WebClient::Embedded => Embedded::get(path).map(|f| File {
                sha256: f.metadata.sha256_hash(),
                data: f.data,
            }),
            WebClient::Dir(dir) => {
                let data = tokio::fs::read(dir.join(path)).await.ok()?;
                Some(File {
                    sha256: Sha256::digest(&data).into(),
                    data: Cow::Owned(data),
                })
            }
            WebClient::Missing => None,
        }
    }
}

/// A relative path with nothing that could leave the folder or confuse the file system.
fn is_safe(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.len() <= 255
                && !segment.contains(['\\', '\0', ':'])
        })
}

/// The router that answers every path no API route took.
pub fn router(client: WebClient) -> Router {
    Router::new().fallback(serve).with_state(client)
}

async fn serve(
    State(client): State<WebClient>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let not_found = || AppError::NotFound(format!("Cannot {method} {path}")).into_response();
    if path == "/api" || path.starts_with("/api/") {
        return not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let (name, file) = match client.file(relative).await {
        Some(file) => (relative, file),
        // A missing hashed asset stays missing: HTML in its place would only be refused.
        None if relative.starts_with("assets/") => return not_found(),
        None => match client.file("index.html").await {
            Some(file) => ("index.html", file),
            None => return not_built(),
        },
    };
    respond(&client, name, file, &headers).await
}

/// Sends `file` (or its best precompressed copy) with the static-site headers.
async fn respond(client: &WebClient, name: &str, file: File, request: &HeaderMap) -> Response {
    let accepted = accepted_encodings(request);
    let mut chosen = (file, None);
    for (encoding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
        if accepted.contains(&encoding)
            && let Some(copy) = client.file(&format!("{name}{suffix}")).await
        {
            chosen = (copy, Some(encoding));
            break;
        }
    }
    let (file, encoding) = chosen;
    let etag = etag(&file.sha256);
    let mut response = if if_none_match(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(name));
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let cache = if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    security_headers(headers);
    response
}

/// The page served at `/` by a build without the web client.
fn not_built() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Nexus Chat</title><p>Nexus Chat is running. The web client is \
         not built: run <code>npm --prefix web ci && npm --prefix web run build</code> and rebuild \
         (<code>cargo build --release</code> does it when Node.js is installed), or point \
         <code>WEB_DIR</code> at a built client.</p>",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    security_headers(response.headers_mut());
    response
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(REFERRER_POLICY),
    );
}

/// The content codings the client takes (`br`, `gzip`), leaving out those it gives `q=0`.
fn accepted_encodings(headers: &HeaderMap) -> Vec<&'static str> {
    let mut accepted = Vec::new();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            for known in ["br", "gzip"] {
                if coding.eq_ignore_ascii_case(known) && !accepted.contains(&known) {
                    accepted.push(known);
                }
            }
        }
    }
    accepted
}

fn etag(sha256: &[u8; 32]) -> String {
    let hex: String = sha256[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn content_type(name: &str) -> HeaderValue {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
        || mime.suffix() == Some(mime_guess::mime::XML);
    let value = if textual && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn encodings_follow_accept_encoding() {
        assert_eq!(
            accepted_encodings(&headers("gzip, deflate, br, zstd")),
            ["gzip", "br"]
        );
        assert_eq!(accepted_encodings(&headers("br;q=0, gzip;q=0.5")), ["gzip"]);
        assert_eq!(accepted_encodings(&headers("identity")), Vec::<&str>::new());
        assert_eq!(accepted_encodings(&HeaderMap::new()), Vec::<&str>::new());
    }

    #[test]
    fn paths_cannot_leave_the_folder() {
        assert!(is_safe("assets/index-abc.js"));
        assert!(!is_safe("../secret"));
        assert!(!is_safe("assets/../../x"));
        assert!(!is_safe("a//b"));
        assert!(!is_safe("C:\\x"));
        assert!(!is_safe(&"a".repeat(300)));
    }

    #[test]
    fn text_types_name_their_charset() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/x.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("favicon.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("x.png"), "image/png");
    }

    #[test]
    fn etags_match_with_or_without_weakness() {
        let tag = etag(&[7; 32]);
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{tag}")).unwrap(),
        );
        assert!(if_none_match(&h, &tag));
        assert!(!if_none_match(&HeaderMap::new(), &tag));
    }
}
