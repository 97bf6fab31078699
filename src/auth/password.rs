//! bcrypt hashing, always on a blocking thread: a hash at cost 10 takes tens of milliseconds of
//! CPU, which would stall every socket sharing an async worker.

use anyhow::Context;

/// Hashes a password at `cost`.
pub async fn hash(password: String, cost: u32) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .context("hashing task failed")?
        .context("bcrypt hash failed")
}

/// Checks a password against a hash (`$2a$`, `$2b$` and `$2y$` hashes, as the NestJS app wrote).
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_written_by_the_nestjs_app_verifies() {
        // A `$2b$10$` hash of "secret123", the format node's bcrypt wrote for the NestJS app.
        let nest = "$2b$10$r6Cg.PZyNSnQA34JzfB9oeCELHGjVh2z4TThc4MEO9Qb8BE8YkcHi".to_owned();
        assert!(verify("secret123".into(), nest.clone()).await);
        assert!(!verify("secret124".into(), nest).await);
        let fresh = hash("secret123".into(), 4).await.unwrap();
        assert!(verify("secret123".into(), fresh.clone()).await);
        assert!(!verify("wrong".into(), fresh).await);
        // A malformed or foreign hash never verifies and never panics.
        assert!(!verify("secret123".into(), "not-a-hash".into()).await);
    }
}
