//! Test accounts: created over the REST API (register, then login for a token), in parallel,
//! and kept in a JSON file so every scenario of a run reuses the same pool.

use std::{path::Path, time::Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::sio::Endpoint;

/// One account and its access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchUser {
    /// User id (UUID string).
    pub id: String,
    /// Username.
    pub username: String,
    /// JWT from `/auth/login`.
    pub token: String,
}

#[derive(Deserialize)]
struct LoginReply {
    access_token: String,
    user: LoginUser,
}

#[derive(Deserialize)]
struct LoginUser {
    id: String,
}

/// Registers and logs in `count` users named `{prefix}{i}`, spreading requests round-robin
/// over `endpoints`, `concurrency` at a time.
pub async fn create(
    endpoints: &[Endpoint],
    count: usize,
    prefix: &str,
    password: &str,
    concurrency: usize,
) -> anyhow::Result<Vec<BenchUser>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let mut results: Vec<(usize, anyhow::Result<BenchUser>)> = stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            let base = endpoints[i % endpoints.len()].base.clone();
            let username = format!("{prefix}{i}");
            let password = password.to_owned();
            async move {
                let mut last = None;
                for attempt in 0..4 {
                    if attempt > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                    }
                    match one(&client, &base, &username, &password).await {
                        Ok(u) => return (i, Ok(u)),
                        Err(e) => last = Some(e),
                    }
                }
                (i, Err(last.expect("at least one attempt")))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let mut users = Vec::with_capacity(count);
    for (i, r) in results {
        users.push(r.with_context(|| format!("creating user {i}"))?);
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "users: {count} created and logged in in {secs:.1} s ({:.0}/s)",
        count as f64 / secs.max(1e-9)
    );
    Ok(users)
}

async fn one(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<BenchUser> {
    let body = serde_json::json!({ "username": username, "password": password });
    let reg = client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await?;
    let status = reg.status().as_u16();
    if status != 201 && status != 409 {
        bail!(
            "register {username}: HTTP {status}: {}",
            reg.text().await.unwrap_or_default()
        );
    }
    let login = client
        .post(format!("{base}/auth/login"))
        .json(&body)
        .send()
        .await?;
    let status = login.status().as_u16();
    if status != 201 && status != 200 {
        bail!(
            "login {username}: HTTP {status}: {}",
            login.text().await.unwrap_or_default()
        );
    }
    let reply: LoginReply = login.json().await?;
    Ok(BenchUser {
        id: reply.user.id,
        username: username.to_owned(),
        token: reply.access_token,
    })
}

/// Reads a pool written by [`save`].
pub fn load(path: &Path) -> anyhow::Result<Vec<BenchUser>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let users: Vec<BenchUser> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if users.is_empty() {
        bail!("{}: no users", path.display());
    }
    Ok(users)
}

/// Writes the pool as a JSON array.
pub fn save(path: &Path, users: &[BenchUser]) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec(users)?)
        .with_context(|| format!("writing {}", path.display()))
}
