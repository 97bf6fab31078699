//! What `nexus-chat import-nest` needs from the store beyond the server's own queries: accounts
//! written with the old app's ids, hashes and creation times, and the keys of messages imported
//! before, so that a second run can tell what it already copied.
//!
//! Imported messages go through [`Store::insert_messages`], the server's own group commit, with a
//! `client_msg_id` that names the old message: its unique index makes a re-run (or two runs at
//! once) store each old message once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Result, Store, StoreError, types::DbId};

/// An account as the old app stored it.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    /// The old app's id, kept so that old tokens and history keep naming the same person.
    pub id: Uuid,
    /// The name it will sign in with (possibly renamed by the importer).
    pub username: String,
    /// The old bcrypt hash, unchanged.
    pub password_hash: String,
    /// When the old app created the account.
    pub created_at: DateTime<Utc>,
}

/// Rows written per transaction: few enough to keep a transaction short on a live database,
/// many enough that SQLite's synchronous commit is not paid per account.
const USERS_PER_TRANSACTION: usize = 500;

macro_rules! import_queries {
    () => {
        use diesel::prelude::*;
        use diesel_async::{AsyncConnection, RunQueryDsl};

        use crate::store::{import::ImportedUser, types::DbId};

        pub async fn all_users(conn: &mut Conn) -> QueryResult<Vec<(DbId, String)>> {
            users::table
                .select((users::id, users::username))
                .load(conn)
                .await
        }

        /// Inserts the accounts whose id is not stored yet, in one transaction; returns how many.
        pub async fn insert_users(conn: &mut Conn, batch: &[ImportedUser]) -> QueryResult<usize> {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let mut inserted = 0;
                for user in batch {
                    inserted += diesel::insert_into(users::table)
                        .values((
                            users::id.eq(DbId(user.id)),
                            users::username.eq(&user.username),
                            users::password_hash.eq(&user.password_hash),
                            users::created_at.eq(user.created_at),
                        ))
                        .on_conflict(users::id)
                        .do_nothing()
                        .execute(conn)
                        .await?;
                }
                Ok(inserted)
            })
            .await
        }

        pub async fn client_msg_ids_like(
            conn: &mut Conn,
            pattern: &str,
        ) -> QueryResult<Vec<(DbId, Option<String>)>> {
            messages::table
                .filter(messages::client_msg_id.like(pattern))
                .select((messages::sender_id, messages::client_msg_id))
                .load(conn)
                .await
        }
    };
}

mod pg {
    use crate::store::schema::pg::{messages, users};

    pub type Conn = diesel_async::AsyncPgConnection;

    import_queries!();

    #[derive(diesel::QueryableByName)]
    struct Present {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        present: bool,
    }

    pub async fn has_schema(conn: &mut Conn) -> QueryResult<bool> {
        let row: Present = diesel::sql_query("SELECT to_regclass('users') IS NOT NULL AS present")
            .get_result(conn)
            .await?;
        Ok(row.present)
    }
}

mod sqlite {
    use crate::store::schema::sqlite::{messages, users};

    pub type Conn =
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

    import_queries!();

    #[derive(diesel::QueryableByName)]
    struct Present {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        present: bool,
    }

    pub async fn has_schema(conn: &mut Conn) -> QueryResult<bool> {
        let row: Present = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'users') \
             AS present",
        )
        .get_result(conn)
        .await?;
        Ok(row.present)
    }
}

impl Store {
    /// Whether the tables exist (a database never migrated has none; a dry run must not create them).
    pub async fn has_schema(&self) -> Result<bool> {
        with_conn!(self, |conn, q| q::has_schema(conn))
    }

    /// Every account's id and username.
    pub async fn all_usernames(&self) -> Result<Vec<(Uuid, String)>> {
        let rows = with_conn!(self, |conn, q| q::all_users(conn))?;
        Ok(rows.into_iter().map(|(id, name)| (id.0, name)).collect())
    }

    /// Stores accounts with their own ids; ids already stored are left as they are. Returns how
    /// many were new. `Conflict` when a username was taken (in any letter case) by another id.
    pub async fn import_users(&self, users: &[ImportedUser]) -> Result<usize> {
        let mut inserted = 0;
        for batch in users.chunks(USERS_PER_TRANSACTION) {
            inserted += with_conn!(self, |conn, q| q::insert_users(conn, batch))?;
        }
        Ok(inserted)
    }

    /// `(sender, client_msg_id)` of every message whose `client_msg_id` starts with `prefix`.
    pub async fn client_msg_ids_with_prefix(&self, prefix: &str) -> Result<Vec<(Uuid, String)>> {
        if prefix.contains(['%', '_', '\\']) {
            return Err(StoreError::Internal(format!(
                "the prefix {prefix:?} has a LIKE wildcard"
            )));
        }
        let pattern = format!("{prefix}%");
        let rows = with_conn!(self, |conn, q| q::client_msg_ids_like(conn, &pattern))?;
        Ok(rows
            .into_iter()
            .filter_map(|(sender, key): (DbId, Option<String>)| Some((sender.0, key?)))
            .collect())
    }
}
