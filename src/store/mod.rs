//! The storage API: accounts and messages, on PostgreSQL or the embedded SQLite file.
//!
//! Callers see domain types and [`StoreError`]; the SQL lives in `queries.rs`, compiled once per
//! backend. Every operation is bounded by `DB_TIMEOUT_MS`, so a database outage turns into a
//! prompt `Unavailable` instead of a hung request.

mod models;
mod pg;
mod queries;
mod room_queries;
mod schema;
mod sqlite;
mod types;
pub mod writer;

use std::{path::Path, time::Duration};

use anyhow::Context;
use diesel::{SqliteConnection, result::DatabaseErrorKind};
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, bb8::Pool},
    sync_connection_wrapper::SyncConnectionWrapper,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;
use uuid::Uuid;

pub use models::{
    Conversation, Credentials, Cursor, CursorMove, DirectSummary, Member, Message, NewMessage,
    Recipient, Role, Room, RoomSummary, User,
};
use models::{Inserted, MessageRow, UserRow};
use types::DbId;

use crate::config::{Config, Database};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A message the group commit has stored (or found stored before).
#[derive(Debug, Clone)]
pub struct Written {
    /// The stored message.
    pub message: Message,
    /// `false` for a retry of a message stored before (same sender and `clientMsgId`).
    pub created: bool,
    /// For a new room message: the room's membership version at the commit.
    pub room_version: Option<i64>,
}

/// What can go wrong in the store, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. username taken).
    #[error("already exists")]
    Conflict,
    /// The database could not be reached in time; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other failure (a bug or a schema problem).
    #[error("database error: {0}")]
    Internal(String),
    /// A rule checked inside the write's transaction refused it; nothing was written.
    #[error("refused: {0:?}")]
    Refused(Refusal),
}

/// Why a write was refused by a rule checked in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such room, or the caller is not a member of it.
    NotFound,
    /// A member tried what only the owner may do.
    Forbidden,
    /// An id names no user.
    UnknownUser,
    /// The user to remove is not a member of the room.
    NotAMember,
    /// The room would have more than `ROOM_MAX_MEMBERS` members.
    RoomFull,
    /// A user would be in more than `MAX_ROOMS_PER_USER` rooms.
    TooManyRooms,
}

impl Clone for StoreError {
    fn clone(&self) -> Self {
        match self {
            StoreError::Refused(why) => StoreError::Refused(*why),
            StoreError::Conflict => StoreError::Conflict,
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            StoreError::Internal(why) => StoreError::Internal(why.clone()),
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        StoreError::from_query(err)
    }
}

impl StoreError {
    fn from_query(err: diesel::result::Error) -> Self {
        use diesel::result::Error as E;
        match err {
            E::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict,
            E::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            E::BrokenTransactionManager => StoreError::Unavailable("connection lost".into()),
            // A server shutting down, a dropped connection or a locked SQLite file arrive as
            // "unknown" database errors; they mean "not stored, try again", not a bug.
            E::DatabaseError(_, info) if is_outage(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            other if is_outage(&other.to_string()) => StoreError::Unavailable(other.to_string()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// Whether a database error message describes the database being unreachable or going away.
fn is_outage(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "connection",
        "terminating",
        "shutting down",
        "starting up",
        "the database system is",
        "timed out",
        "timeout",
        "broken pipe",
        "locked",
        "busy",
        "i/o error",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod classification {
    use super::is_outage;

    #[test]
    fn outages_are_told_apart_from_bugs() {
        assert!(is_outage(
            "terminating connection due to administrator command"
        ));
        assert!(is_outage("FATAL: the database system is shutting down"));
        assert!(is_outage("connection closed"));
        assert!(is_outage("database is locked"));
        assert!(!is_outage(
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        ));
        assert!(!is_outage("column \"x\" does not exist"));
    }
}

type Result<T> = std::result::Result<T, StoreError>;
type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// A pooled connection kept across calls (see [`Store::insert_messages_held`]).
pub struct HeldConnection(Held);

// One per writer task, kept for long: boxing the larger variant would buy nothing.
#[expect(clippy::large_enum_variant)]
enum Held {
    Pg(bb8::PooledConnection<'static, AsyncDieselConnectionManager<AsyncPgConnection>>),
    Sqlite(bb8::PooledConnection<'static, AsyncDieselConnectionManager<SqliteConn>>),
}

/// A query that did not finish within the store's timeout.
pub(crate) fn no_answer(timeout: Duration) -> StoreError {
    StoreError::Unavailable(format!("no answer within {} ms", timeout.as_millis()))
}

/// What the insert statement's rows mean for each message of the batch.
fn written(rows: Vec<Inserted>) -> Vec<Result<Written>> {
    rows.into_iter()
        .map(|outcome| match outcome {
            Inserted::New(row, room_version) => Ok(Written {
                message: row.into(),
                created: true,
                room_version,
            }),
            Inserted::Existing(row) => Ok(Written {
                message: row.into(),
                created: false,
                room_version: None,
            }),
            Inserted::Refused => Err(StoreError::Refused(Refusal::NotFound)),
        })
        .collect()
}

#[derive(Clone)]
enum Backend {
    Pg {
        /// Every query but the writers' batches.
        queries: Pool<AsyncPgConnection>,
        /// The writers' own connections, planning once (see [`Store::connect`]).
        writers: Pool<AsyncPgConnection>,
    },
    Sqlite(Pool<SqliteConn>),
}

/// Connections of a PostgreSQL instance kept for the two writer tasks (messages and read
/// cursors), out of `DB_POOL_SIZE`.
const WRITER_CONNECTIONS: u32 = 2;

/// The fewest connections left for queries beside the writers'.
const MIN_QUERY_CONNECTIONS: u32 = 2;

/// Now, in milliseconds, as on the wire.
pub(crate) fn now_ms() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    timeout: Duration,
}

/// Runs `$body` with `$conn` bound to a pooled connection and `$q` to the backend's query module,
/// under the store's timeout.
macro_rules! with_conn {
    ($self:expr, |$conn:ident, $q:ident| $body:expr) => {{
        let timeout = $self.timeout;
        let work = async {
            match &$self.backend {
                Backend::Pg { queries: pool, .. } => {
                    let mut guard = pool
                        .get()
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    let $conn = &mut *guard;
                    use pg as $q;
                    $body.await.map_err(StoreError::from)
                }
                Backend::Sqlite(pool) => {
                    let mut guard = pool
                        .get()
                        .await
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    let $conn = &mut *guard;
                    use sqlite as $q;
                    $body.await.map_err(StoreError::from)
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err($crate::store::no_answer(timeout)),
        }
    }};
}

/// Runs `$body` like [`with_conn!`], on the connection the caller keeps in `$held` (an
/// `&mut Option<HeldConnection>`), checked out of the pool, and so verified, only when `$held` is
/// empty. A call that fails or times out gives the connection back, so the next one is checked
/// out and verified afresh.
macro_rules! with_held {
    ($self:expr, $held:expr, |$conn:ident, $q:ident| $body:expr) => {{
        let held: &mut Option<HeldConnection> = $held;
        let work = async {
            let kept = match held {
                Some(kept) => kept,
                None => held.insert($self.hold().await?),
            };
            match &mut kept.0 {
                Held::Pg($conn) => {
                    use pg as $q;
                    $body.await
                }
                Held::Sqlite($conn) => {
                    use sqlite as $q;
                    $body.await
                }
            }
            .map_err(StoreError::from)
        };
        let outcome = tokio::time::timeout($self.timeout, work).await;
        let result = outcome.unwrap_or_else(|_| Err($crate::store::no_answer($self.timeout)));
        if result.is_err() {
            *held = None;
        }
        result
    }};
}

/// Waits for up to `max` jobs like `recv_many`; a connection kept in `held` goes back to the pool
/// once `HOLD_IDLE` passes without any. 0 when the channel has closed.
pub(crate) async fn recv_holding<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    jobs: &mut Vec<T>,
    max: usize,
    held: &mut Option<HeldConnection>,
) -> usize {
    if held.is_some() {
        match tokio::time::timeout(HOLD_IDLE, rx.recv_many(jobs, max)).await {
            Ok(n) => return n,
            Err(_) => *held = None,
        }
    }
    rx.recv_many(jobs, max).await
}

/// How long a writer keeps its connection without work before giving it back to the pool.
const HOLD_IDLE: Duration = Duration::from_secs(1);

// After `with_conn!`, which it uses.
mod access;
pub mod cursors;
mod import;
pub mod rooms;
pub use access::{AccessChange, AccessUpdate};
pub use import::ImportedUser;

/// A pool manager whose connections run `setup` (SQL) once, when they are opened.
fn with_setup<C>(url: &str, setup: String) -> AsyncDieselConnectionManager<C>
where
    C: AsyncConnection + SimpleAsyncConnection + 'static,
{
    let mut manager_config = ManagerConfig::<C>::default();
    manager_config.custom_setup = Box::new(move |url| {
        let (url, setup) = (url.to_owned(), setup.clone());
        async move {
            let mut conn = C::establish(&url).await?;
            conn.batch_execute(&setup)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    AsyncDieselConnectionManager::new_with_config(url, manager_config)
}

impl Store {
    /// Connects (creating the SQLite file and its folder if needed); `migrate` applies the schema.
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        let store = match &config.database {
            Database::Postgres(url) => {
                let queries = config
                    .db_pool_size
                    .saturating_sub(WRITER_CONNECTIONS)
                    .max(MIN_QUERY_CONNECTIONS);
                let pool = |size, manager| {
                    Pool::builder()
                        .max_size(size)
                        .connection_timeout(config.db_timeout)
                        .build(manager)
                };
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.clone());
                let queries = pool(queries, manager)
                    .await
                    .context("could not set up the PostgreSQL pool")?;
                // Each writer runs one statement over arrays. At PostgreSQL's default
                // (`plan_cache_mode = auto`) it was, in some runs, planned again on every call:
                // 0.55 ms per commit, most of PostgreSQL's CPU per message (docs/DECISIONS.md).
                // Only these connections force the generic plan; the queries' plans still see
                // their parameters.
                let writers = with_setup(url, "SET plan_cache_mode = force_generic_plan".into());
                let writers = pool(WRITER_CONNECTIONS, writers)
                    .await
                    .context("could not set up the PostgreSQL writers' pool")?;
                Store {
                    backend: Backend::Pg { queries, writers },
                    timeout: config.db_timeout,
                }
            }
            Database::Sqlite(path) => Self::open_sqlite(path, config).await?,
        };
        Ok(store)
    }

    async fn open_sqlite(path: &Path, config: &Config) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create the data folder {}", dir.display()))?;
        }
        let url = path.to_string_lossy().into_owned();
        let busy_ms = config.db_timeout.as_millis();
        // WAL lets readers run beside the writer; FULL sync makes an ack survive power loss.
        let manager = with_setup(
            &url,
            format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms};"
            ),
        );
        let pool = Pool::builder()
            .max_size(config.db_pool_size.min(8))
            .connection_timeout(config.db_timeout)
            .build(manager)
            .await
            .context("could not open the SQLite database")?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
            timeout: config.db_timeout,
        })
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        match &self.backend {
            Backend::Pg { queries: pool, .. } => {
                let mut conn = pool
                    .dedicated_connection()
                    .await
                    .context("could not connect")?;
                // Instances starting together must not run the same migration twice; the session
                // lock is released when this connection is dropped after the migrations.
                diesel_async::RunQueryDsl::execute(
                    diesel::sql_query("SELECT pg_advisory_lock(7415946722)"),
                    &mut conn,
                )
                .await
                .context("could not take the migration lock")?;
                let applied = tokio::task::spawn_blocking(move || {
                    let mut harness = AsyncMigrationHarness::new(conn);
                    harness
                        .run_pending_migrations(PG_MIGRATIONS)
                        .map(|v| v.len())
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .await??;
                Ok(applied)
            }
            Backend::Sqlite(pool) => {
                let mut conn = pool.get().await.context("could not open the database")?;
                let applied = conn
                    .spawn_blocking(|conn: &mut SqliteConnection| {
                        conn.run_pending_migrations(SQLITE_MIGRATIONS)
                            .map(|v| v.len())
                            .map_err(diesel::result::Error::QueryBuilderError)
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(applied)
            }
        }
    }

    /// Which backend this is ("postgres" or "sqlite").
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Pg { .. } => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<()> {
        with_conn!(self, |conn, q| q::ping(conn))
    }

    /// Creates an account; `Conflict` when the username is taken in any letter case.
    pub async fn create_user(&self, username: &str, password_hash: &str) -> Result<User> {
        let row = UserRow {
            id: DbId(Uuid::now_v7()),
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            created_at: now_ms(),
        };
        with_conn!(self, |conn, q| q::insert_user(conn, &row))?;
        Ok(row.into())
    }

    /// Looks an account up by username, case-insensitively, with its hash.
    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let row = self.access_by_name(username).await?;
        Ok(row.map(|(row, disabled)| Credentials {
            password_hash: row.password_hash.clone(),
            user: row.into(),
            disabled,
        }))
    }

    /// Looks an account up by id.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(self.users(&[id]).await?.into_iter().next())
    }

    /// Looks several accounts up by id (unknown ids are left out).
    pub async fn users(&self, ids: &[Uuid]) -> Result<Vec<User>> {
        let ids: Vec<DbId> = ids.iter().copied().map(DbId).collect();
        let rows = with_conn!(self, |conn, q| q::users_by_id(conn, &ids))?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// A message by id.
    pub async fn message(&self, id: Uuid) -> Result<Option<Message>> {
        let row = with_conn!(self, |conn, q| q::message_by_id(conn, DbId(id)))?;
        Ok(row.map(Message::from))
    }

    /// Stores a batch in one transaction; per input, what became of it (a room message whose
    /// sender is not a member is refused alone).
    pub async fn insert_messages(&self, batch: &[NewMessage]) -> Result<Vec<Result<Written>>> {
        let rows = with_conn!(self, |conn, q| q::insert_messages(conn, batch))?;
        Ok(written(rows))
    }

    /// Stores `batch` as [`Store::insert_messages`] does, on the connection `held` (see
    /// [`with_held!`]).
    pub async fn insert_messages_held(
        &self,
        held: &mut Option<HeldConnection>,
        batch: &[NewMessage],
    ) -> Result<Vec<Result<Written>>> {
        with_held!(self, held, |conn, q| q::insert_messages(conn, batch)).map(written)
    }

    /// Checks a connection out of the writers' pool (PostgreSQL) or the pool (SQLite), verified
    /// by a round trip, to keep.
    async fn hold(&self) -> Result<HeldConnection> {
        let unavailable = |e: bb8::RunError<_>| StoreError::Unavailable(e.to_string());
        Ok(HeldConnection(match &self.backend {
            Backend::Pg { writers, .. } => {
                Held::Pg(writers.get_owned().await.map_err(unavailable)?)
            }
            Backend::Sqlite(pool) => Held::Sqlite(pool.get_owned().await.map_err(unavailable)?),
        }))
    }

    /// Up to `limit` messages of `conversation` older than `before_seq` (or the latest), oldest
    /// first.
    pub async fn conversation_page(
        &self,
        conversation: Conversation,
        before_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let (lo, hi) = conversation.key();
        let rows = with_conn!(self, |conn, q| q::conversation_page(
            conn,
            DbId(lo),
            DbId(hi),
            before_seq,
            limit as i64
        ))?;
        Ok(rows.into_iter().rev().map(Message::from).collect())
    }

    /// Up to `limit` messages committed after `after_seq` that `user` may read (direct messages
    /// to or from them, and the messages of their rooms), oldest first.
    pub async fn messages_after(
        &self,
        user: Uuid,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let rows = with_conn!(self, |conn, q| q::messages_after(
            conn,
            DbId(user),
            after_seq,
            limit as i64
        ))?;
        Ok(rows.into_iter().map(Message::from).collect())
    }

    /// The user's conversations, most recent first.
    pub async fn conversations(&self, owner: Uuid, limit: usize) -> Result<Vec<DirectSummary>> {
        let rows = with_conn!(self, |conn, q| q::conversations_of(
            conn,
            DbId(owner),
            limit as i64
        ))?;
        let peers: Vec<DbId> = rows.iter().map(|(u, _, _)| u.id).collect();
        let cursors: std::collections::HashMap<DbId, Uuid> = if peers.is_empty() {
            Default::default()
        } else {
            with_conn!(self, |conn, q| q::peer_cursors(conn, DbId(owner), &peers))?
                .into_iter()
                .map(|(peer, id)| (peer, id.0))
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|(u, m, unread): (UserRow, MessageRow, i64)| DirectSummary {
                peer_read_up_to: cursors.get(&u.id).copied(),
                peer: u.into(),
                last: m.into(),
                unread: unread.max(0),
            })
            .collect())
    }
}
