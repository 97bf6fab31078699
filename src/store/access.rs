//! Account access: disabling and enabling an account, and the log of access changes that every
//! instance polls (`access_changes`, written by triggers, see the access migration) so that a
//! disabled or deleted account's tokens stop working everywhere without a database read per
//! token check.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, Result, Store, StoreError, User, models::UserRow, types::DbId};

/// One row of the access log: from `seq` on, `user` may (`revoked: false`) or may not sign in
/// and use its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessChange {
    /// Position in the log; commit order.
    pub seq: i64,
    /// The account.
    pub user: Uuid,
    /// `true` when the account was disabled or deleted, `false` when it was enabled again.
    pub revoked: bool,
}

/// What [`Store::set_disabled`] did.
#[derive(Debug, Clone)]
pub struct AccessUpdate {
    /// The account.
    pub user: User,
    /// `false` when it was already in the asked state.
    pub changed: bool,
}

macro_rules! access_queries {
    () => {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        use crate::store::{models::UserRow, types::DbId};

        diesel::define_sql_function! {
            /// SQL `lower()`.
            fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
        }

        /// The account named `name` (any letter case) and whether it is disabled.
        pub async fn user_access_by_name(
            conn: &mut Conn,
            name: &str,
        ) -> QueryResult<Option<(UserRow, bool)>> {
            let row: Option<(
                DbId,
                String,
                String,
                chrono::DateTime<chrono::Utc>,
                Option<chrono::DateTime<chrono::Utc>>,
            )> = users::table
                .filter(lower(users::username).eq(name.to_lowercase()))
                .select((
                    users::id,
                    users::username,
                    users::password_hash,
                    users::created_at,
                    users::disabled_at,
                ))
                .first(conn)
                .await
                .optional()?;
            Ok(
                row.map(|(id, username, password_hash, created_at, disabled_at)| {
                    (
                        UserRow {
                            id,
                            username,
                            password_hash,
                            created_at,
                        },
                        disabled_at.is_some(),
                    )
                }),
            )
        }

        /// Sets (or clears) `disabled_at` of one account; the triggers log the change.
        pub async fn set_disabled_at(
            conn: &mut Conn,
            id: DbId,
            at: Option<chrono::DateTime<chrono::Utc>>,
        ) -> QueryResult<usize> {
            diesel::update(users::table.filter(users::id.eq(id)))
                .set(users::disabled_at.eq(at))
                .execute(conn)
                .await
        }

        /// Up to `limit` log rows after `after`, in order.
        pub async fn access_changes_after(
            conn: &mut Conn,
            after: i64,
            limit: i64,
        ) -> QueryResult<Vec<(i64, DbId, bool)>> {
            access_changes::table
                .filter(access_changes::seq.gt(after))
                .order(access_changes::seq)
                .limit(limit)
                .select((
                    access_changes::seq,
                    access_changes::user_id,
                    access_changes::revoked,
                ))
                .load(conn)
                .await
        }
    };
}

pub(super) mod pg {
    use crate::store::schema::pg::{access_changes, users};

    pub type Conn = diesel_async::AsyncPgConnection;

    access_queries!();
}

pub(super) mod sqlite {
    use crate::store::schema::sqlite::{access_changes, users};

    pub type Conn =
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

    access_queries!();
}

impl Store {
    /// Looks an account up by username (any letter case), with its hash and whether it is
    /// disabled.
    pub(super) async fn access_by_name(&self, username: &str) -> Result<Option<(UserRow, bool)>> {
        with_conn!(self, |conn, q| q::user_access_by_name(conn, username))
    }

    /// Disables (`disabled: true`) or enables an account by username. `None` when no account
    /// has that name.
    pub async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<Option<AccessUpdate>> {
        let Some((row, was_disabled)) = self.access_by_name(username).await? else {
            return Ok(None);
        };
        let id = row.id;
        let user = User::from(row);
        if was_disabled == disabled {
            return Ok(Some(AccessUpdate {
                user,
                changed: false,
            }));
        }
        let at: Option<DateTime<Utc>> = disabled.then(Utc::now);
        let updated = with_conn!(self, |conn, q| q::set_disabled_at(conn, id, at))?;
        Ok(Some(AccessUpdate {
            user,
            changed: updated > 0,
        }))
    }

    /// Up to `limit` rows of the access log after `after` (0: from the start), in commit order.
    pub async fn access_changes_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AccessChange>> {
        let rows = with_conn!(self, |conn, q| q::access_changes_after(
            conn,
            after,
            limit as i64
        ))?;
        Ok(rows
            .into_iter()
            .map(|(seq, user, revoked): (i64, DbId, bool)| AccessChange {
                seq,
                user: user.0,
                revoked,
            })
            .collect())
    }
}
