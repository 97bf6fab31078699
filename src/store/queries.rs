//! The SQL of the store, written once and compiled for each backend: `backend_queries!()` is
//! expanded inside `pg` and `sqlite`, where `Conn` and the schema resolve to that backend's own.
//! The one statement that differs, the group-commit insert, lives in each backend's module.

macro_rules! backend_queries {
    () => {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        use crate::store::models::{
            Cursor, CursorMove, Inserted, MessageRow, NewMessage, Recipient, UserRow,
        };
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
            messages::room_id,
            messages::content,
            messages::client_msg_id,
            messages::created_at,
        ) = (
            messages::seq,
            messages::id,
            messages::sender_id,
            messages::receiver_id,
            messages::room_id,
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

        /// The outcome of a group commit per input, in input order: the row it inserted (with
        /// its room's membership version), or, for a send whose `(sender, clientMsgId)` was
        /// stored already (before, or by an earlier message of the same batch), the original; a
        /// room message neither inserted nor stored before was refused (its sender is not a
        /// member).
        pub async fn pair_with_originals(
            conn: &mut Conn,
            batch: &[NewMessage],
            mut inserted: std::collections::HashMap<uuid::Uuid, (MessageRow, Option<i64>)>,
        ) -> QueryResult<Vec<Inserted>> {
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                if let Some((row, room_version)) = inserted.remove(&m.id) {
                    out.push(Inserted::New(row, room_version));
                    continue;
                }
                let original = match m.client_msg_id.as_deref() {
                    Some(client_id) => messages::table
                        .filter(messages::sender_id.eq(DbId(m.sender_id)))
                        .filter(messages::client_msg_id.eq(client_id))
                        .select(MESSAGE_COLUMNS)
                        .first(conn)
                        .await
                        .optional()?,
                    None => None,
                };
                out.push(match original {
                    Some(row) => Inserted::Existing(row),
                    None if m.room_id().is_some() => Inserted::Refused,
                    // A direct message is only ever skipped as a duplicate.
                    None => return Err(diesel::result::Error::NotFound),
                });
            }
            Ok(out)
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

        /// Up to `limit` messages committed after `after_seq` that `user` may read, oldest
        /// first: direct messages to or from them, and the messages of the rooms they are in.
        pub async fn messages_after(
            conn: &mut Conn,
            user: DbId,
            after_seq: i64,
            limit: i64,
        ) -> QueryResult<Vec<MessageRow>> {
            let my_rooms = room_members::table
                .filter(room_members::user_id.eq(user))
                .select(room_members::room_id.nullable());
            messages::table
                .filter(
                    messages::room_id
                        .is_null()
                        .and(
                            messages::sender_id
                                .eq(user)
                                .or(messages::receiver_id.eq(user)),
                        )
                        .or(messages::room_id.eq_any(my_rooms)),
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
        ) -> QueryResult<Vec<(UserRow, MessageRow, i64)>> {
            conversations::table
                .inner_join(messages::table.on(messages::seq.eq(conversations::last_seq)))
                .inner_join(users::table.on(users::id.eq(conversations::peer_id)))
                .filter(conversations::owner_id.eq(owner))
                .order(conversations::last_seq.desc())
                .limit(limit)
                .select((
                    USER_COLUMNS,
                    MESSAGE_COLUMNS,
                    conversations::received - conversations::received_read,
                ))
                .load(conn)
                .await
        }

        /// The read cursors of `peers` in their conversations with `me`: (peer, message id).
        pub async fn peer_cursors(
            conn: &mut Conn,
            me: DbId,
            peers: &[DbId],
        ) -> QueryResult<Vec<(DbId, DbId)>> {
            conversations::table
                .inner_join(
                    messages::table.on(messages::seq.nullable().eq(conversations::read_seq)),
                )
                .filter(conversations::peer_id.eq(me))
                .filter(conversations::owner_id.eq_any(peers))
                .select((conversations::owner_id, messages::id))
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
