//! The SQL of the store, written once and compiled for each backend: `backend_queries!()` is
//! expanded inside `pg` and `sqlite`, where `Conn`, the schema and `serialize_writers` resolve to
//! that backend's own. Its argument says how multi-row upserts are written: PostgreSQL takes
//! them as one statement (`batch`); diesel's SQLite backend cannot combine a multi-row insert
//! with `ON CONFLICT`, so there each row is its own statement in the same transaction.

/// Runs an `INSERT ... ON CONFLICT` over `$rows`: one statement, or one per row.
macro_rules! upsert_rows {
    (batch, $conn:ident, $rows:expr, |$r:ident| $stmt:expr) => {{
        let $r = $rows;
        $stmt.execute($conn).await?;
    }};
    (row_by_row, $conn:ident, $rows:expr, |$r:ident| $stmt:expr) => {{
        for $r in $rows {
            $stmt.execute($conn).await?;
        }
    }};
}

macro_rules! backend_queries {
    ($mode:ident) => {
        use std::collections::HashMap;

        use diesel::prelude::*;
        use diesel::upsert::excluded;
        use diesel_async::{AsyncConnection, RunQueryDsl};

        use crate::store::models::{MessageRow, NewMessage, UserRow};
        use crate::store::types::DbId;

        diesel::define_sql_function! {
            /// SQL `lower()`, which both backends index (`users_username_lower_key`).
            fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
        }

        const MESSAGE_COLUMNS: (
            messages::seq,
            messages::id,
            messages::sender_id,
            messages::receiver_id,
            messages::content,
            messages::client_msg_id,
            messages::created_at,
        ) = (
            messages::seq,
            messages::id,
            messages::sender_id,
            messages::receiver_id,
            messages::content,
            messages::client_msg_id,
            messages::created_at,
        );

        const USER_COLUMNS: (
            users::id,
            users::username,
            users::password_hash,
            users::created_at,
        ) = (
            users::id,
            users::username,
            users::password_hash,
            users::created_at,
        );

        pub async fn insert_user(conn: &mut Conn, user: &UserRow) -> QueryResult<()> {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(user.id),
                    users::username.eq(&user.username),
                    users::password_hash.eq(&user.password_hash),
                    users::created_at.eq(user.created_at),
                ))
                .execute(conn)
                .await
                .map(drop)
        }

        pub async fn user_by_name(conn: &mut Conn, name: &str) -> QueryResult<Option<UserRow>> {
            users::table
                .filter(lower(users::username).eq(name.to_lowercase()))
                .select(USER_COLUMNS)
                .first(conn)
                .await
                .optional()
        }

        pub async fn users_by_id(conn: &mut Conn, ids: &[DbId]) -> QueryResult<Vec<UserRow>> {
            users::table
                .filter(users::id.eq_any(ids))
                .select(USER_COLUMNS)
                .load(conn)
                .await
        }

        pub async fn message_by_id(conn: &mut Conn, id: DbId) -> QueryResult<Option<MessageRow>> {
            messages::table
                .filter(messages::id.eq(id))
                .select(MESSAGE_COLUMNS)
                .first(conn)
                .await
                .optional()
        }

        /// Stores a batch in one transaction (group commit). Returns, per input, the stored row and
        /// whether this call created it (`false`: a retry whose `clientMsgId` was already stored).
        pub async fn insert_messages(
            conn: &mut Conn,
            batch: &[NewMessage],
        ) -> QueryResult<Vec<(MessageRow, bool)>> {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                serialize_writers(conn).await?;
                let rows: Vec<_> = batch
                    .iter()
                    .map(|m| {
                        let (lo, hi) = m.peers();
                        (
                            messages::id.eq(DbId(m.id)),
                            messages::sender_id.eq(DbId(m.sender_id)),
                            messages::receiver_id.eq(DbId(m.receiver_id)),
                            messages::peer_lo.eq(DbId(lo)),
                            messages::peer_hi.eq(DbId(hi)),
                            messages::content.eq(&m.content),
                            messages::client_msg_id.eq(m.client_msg_id.as_deref()),
                            messages::created_at.eq(m.created_at),
                        )
                    })
                    .collect();
                crate::store::queries::upsert_rows!($mode, conn, rows, |r| {
                    diesel::insert_into(messages::table)
                        .values(r)
                        .on_conflict((messages::sender_id, messages::client_msg_id))
                        .do_nothing()
                });

                let ids: Vec<DbId> = batch.iter().map(|m| DbId(m.id)).collect();
                let inserted: Vec<MessageRow> = messages::table
                    .filter(messages::id.eq_any(&ids))
                    .select(MESSAGE_COLUMNS)
                    .load(conn)
                    .await?;
                let mut by_id: HashMap<uuid::Uuid, MessageRow> =
                    inserted.into_iter().map(|r| (r.id.0, r)).collect();

                // Newest message per (owner, peer), both directions, deduplicated because one
                // statement may not update the same row twice.
                let mut latest: HashMap<(DbId, DbId), i64> = HashMap::new();
                for row in by_id.values() {
                    for key in [
                        (row.sender_id, row.receiver_id),
                        (row.receiver_id, row.sender_id),
                    ] {
                        let seq = latest.entry(key).or_insert(row.seq);
                        *seq = (*seq).max(row.seq);
                    }
                }
                if !latest.is_empty() {
                    let values: Vec<_> = latest
                        .into_iter()
                        .map(|((owner, peer), seq)| {
                            (
                                conversations::owner_id.eq(owner),
                                conversations::peer_id.eq(peer),
                                conversations::last_seq.eq(seq),
                            )
                        })
                        .collect();
                    crate::store::queries::upsert_rows!($mode, conn, values, |r| {
                        diesel::insert_into(conversations::table)
                            .values(r)
                            .on_conflict((conversations::owner_id, conversations::peer_id))
                            .do_update()
                            .set(conversations::last_seq.eq(excluded(conversations::last_seq)))
                    });
                }

                let mut out = Vec::with_capacity(batch.len());
                for m in batch {
                    if let Some(row) = by_id.remove(&m.id) {
                        out.push((row, true));
                        continue;
                    }
                    // Not inserted: the (sender, clientMsgId) pair exists already, possibly from
                    // an earlier message of this very batch.
                    let Some(client_id) = m.client_msg_id.as_deref() else {
                        return Err(diesel::result::Error::NotFound);
                    };
                    let original: MessageRow = messages::table
                        .filter(messages::sender_id.eq(DbId(m.sender_id)))
                        .filter(messages::client_msg_id.eq(client_id))
                        .select(MESSAGE_COLUMNS)
                        .first(conn)
                        .await?;
                    out.push((original, false));
                }
                Ok(out)
            })
            .await
        }

        /// Up to `limit` messages of the conversation `lo`/`hi` older than `before_seq`, newest first.
        pub async fn conversation_page(
            conn: &mut Conn,
            lo: DbId,
            hi: DbId,
            before_seq: Option<i64>,
            limit: i64,
        ) -> QueryResult<Vec<MessageRow>> {
            let mut query = messages::table
                .filter(messages::peer_lo.eq(lo))
                .filter(messages::peer_hi.eq(hi))
                .into_boxed();
            if let Some(before) = before_seq {
                query = query.filter(messages::seq.lt(before));
            }
            query
                .order(messages::seq.desc())
                .limit(limit)
                .select(MESSAGE_COLUMNS)
                .load(conn)
                .await
        }

        /// Up to `limit` messages to or from `user` committed after `after_seq`, oldest first.
        pub async fn messages_after(
            conn: &mut Conn,
            user: DbId,
            after_seq: i64,
            limit: i64,
        ) -> QueryResult<Vec<MessageRow>> {
            messages::table
                .filter(
                    messages::sender_id
                        .eq(user)
                        .or(messages::receiver_id.eq(user)),
                )
                .filter(messages::seq.gt(after_seq))
                .order(messages::seq.asc())
                .limit(limit)
                .select(MESSAGE_COLUMNS)
                .load(conn)
                .await
        }

        /// The user's conversations, most recent first: the peer and the newest message.
        pub async fn conversations_of(
            conn: &mut Conn,
            owner: DbId,
            limit: i64,
        ) -> QueryResult<Vec<(UserRow, MessageRow)>> {
            conversations::table
                .inner_join(messages::table.on(messages::seq.eq(conversations::last_seq)))
                .inner_join(users::table.on(users::id.eq(conversations::peer_id)))
                .filter(conversations::owner_id.eq(owner))
                .order(conversations::last_seq.desc())
                .limit(limit)
                .select((USER_COLUMNS, MESSAGE_COLUMNS))
                .load(conn)
                .await
        }

        pub async fn ping(conn: &mut Conn) -> QueryResult<()> {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .execute(conn)
                .await
                .map(drop)
        }
    };
}

pub(crate) use backend_queries;
pub(crate) use upsert_rows;
