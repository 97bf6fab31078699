//! Accounts over real HTTP against a listening server, on both backends.

mod common;

use common::{TestDb, TestServer};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

async fn post(server: &TestServer, path: &str, body: &str) -> (StatusCode, Value) {
    let res = Client::new()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn bad_request(message: &str) -> Value {
    json!({ "statusCode": 400, "message": message, "error": "Bad Request" })
}

macro_rules! auth_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn register_then_login_issues_a_token_that_opens_the_api() {
                let server = TestServer::start($make).await;
                let (status, user) =
                    post(&server, "/auth/register", r#"{"username":"alice","password":"secret1"}"#).await;
                assert_eq!(status, StatusCode::CREATED);
                assert_eq!(user["username"], "alice");
                assert_eq!(user["status"], "offline");
                let keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
                assert_eq!(keys, ["id", "username", "status", "createdAt"]);

                let (status, login) =
                    post(&server, "/auth/login", r#"{"username":"ALICE","password":"secret1"}"#).await;
                assert_eq!(status, StatusCode::CREATED);
                assert_eq!(login["user"], json!({"id": user["id"], "username": "alice"}));
                let token = login["access_token"].as_str().unwrap();

                let me: Value = Client::new()
                    .get(server.url("/api/me"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(me["id"], user["id"]);
            }

            #[tokio::test]
            async fn a_taken_username_is_a_409_in_any_case() {
                let server = TestServer::start($make).await;
                post(&server, "/auth/register", r#"{"username":"bob","password":"secret1"}"#).await;
                let (status, body) =
                    post(&server, "/auth/register", r#"{"username":"BOB","password":"other12"}"#).await;
                assert_eq!(status, StatusCode::CONFLICT);
                assert_eq!(
                    body,
                    json!({"statusCode": 409, "message": "Username already exists", "error": "Conflict"})
                );
            }

            #[tokio::test]
            async fn wrong_password_and_unknown_user_look_the_same() {
                let server = TestServer::start($make).await;
                post(&server, "/auth/register", r#"{"username":"carol","password":"secret1"}"#).await;
                let expected =
                    json!({"statusCode": 401, "message": "Invalid credentials", "error": "Unauthorized"});
                let (s1, b1) =
                    post(&server, "/auth/login", r#"{"username":"carol","password":"wrong12"}"#).await;
                let (s2, b2) =
                    post(&server, "/auth/login", r#"{"username":"nobody","password":"secret1"}"#).await;
                assert_eq!((s1, &b1), (StatusCode::UNAUTHORIZED, &expected));
                assert_eq!((s2, &b2), (StatusCode::UNAUTHORIZED, &expected));
            }

            #[tokio::test]
            async fn bad_input_is_a_400_with_a_clear_message_and_stores_nothing() {
                let server = TestServer::start($make).await;
                let cases = [
                    ("{}", "username is required"),
                    ("{bad json", "Malformed JSON body"),
                    ("[1,2]", "Body must be a JSON object"),
                    (r#"{"username":"dave"}"#, "password is required"),
                    (r#"{"username":5,"password":"secret1"}"#, "username must be a string"),
                    (r#"{"username":"dave","password":""}"#, "password should not be empty"),
                    (r#"{"username":"dave","password":"12345"}"#, "password must be 6 to 72 bytes long"),
                    (
                        &format!(r#"{{"username":"dave","password":"{}"}}"#, "x".repeat(73)),
                        "password must be 6 to 72 bytes long",
                    ),
                    (
                        &format!(r#"{{"username":"{}","password":"secret1"}}"#, "d".repeat(33)),
                        "username must be 3 to 32 characters: letters, digits, _ . or -",
                    ),
                ];
                for (body, message) in cases {
                    let (status, got) = post(&server, "/auth/register", body).await;
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                    assert_eq!(got, bad_request(message), "{body}");
                }
                let (status, _) =
                    post(&server, "/auth/login", r#"{"username":"dave","password":"secret1"}"#).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "nothing was registered");
            }

            #[tokio::test]
            async fn foreign_and_expired_tokens_are_refused() {
                use jsonwebtoken::{EncodingKey, Header, encode};
                let server = TestServer::start($make).await;
                let (_, user) =
                    post(&server, "/auth/register", r#"{"username":"erin","password":"secret1"}"#).await;
                let now = chrono::Utc::now().timestamp();
                let claims = |exp: i64| {
                    json!({"sub": user["id"], "username": "erin", "iat": now - 10, "exp": exp})
                };
                let foreign = encode(
                    &Header::default(),
                    &claims(now + 3600),
                    &EncodingKey::from_secret(b"another-secret"),
                )
                .unwrap();
                let secret = server.config.jwt_secret.clone().unwrap();
                let expired = encode(
                    &Header::default(),
                    &claims(now - 3600),
                    &EncodingKey::from_secret(secret.as_bytes()),
                )
                .unwrap();
                let valid = encode(
                    &Header::default(),
                    &claims(now + 3600),
                    &EncodingKey::from_secret(secret.as_bytes()),
                )
                .unwrap();
                for (token, status) in [
                    (foreign.as_str(), StatusCode::UNAUTHORIZED),
                    (expired.as_str(), StatusCode::UNAUTHORIZED),
                    ("garbage", StatusCode::UNAUTHORIZED),
                    (valid.as_str(), StatusCode::OK),
                ] {
                    let res = Client::new()
                        .get(server.url("/api/me"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), status);
                }
                let res = Client::new().get(server.url("/api/me")).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
                assert_eq!(
                    res.json::<Value>().await.unwrap(),
                    json!({"statusCode": 401, "message": "Unauthorized", "error": "Unauthorized"})
                );
            }
        }
    };
}

auth_suite!(sqlite, TestDb::sqlite());
auth_suite!(postgres, TestDb::postgres().await);
