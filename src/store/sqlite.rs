//! Embedded SQLite backend: a file in `DATA_DIR`, used through diesel-async's
//! `SyncConnectionWrapper` (queries run on blocking threads, never on the async runtime).

use std::collections::HashMap;

use diesel::{QueryResult, SqliteConnection, upsert::excluded};
use diesel_async::{AsyncConnection, sync_connection_wrapper::SyncConnectionWrapper};

use crate::store::schema::sqlite::{conversations, messages, room_members, rooms, users};

pub type Conn = SyncConnectionWrapper<SqliteConnection>;

crate::store::queries::backend_queries!();
crate::store::room_queries::room_queries!();

/// Stores a batch in one transaction (group commit). SQLite admits one writer at a time and
/// its rowid order is commit order, so `seq` order is commit order without a lock, and a room's
/// membership read inside the transaction is the membership the message commits under. Returns,
/// per input, what became of it.
pub async fn insert_messages(conn: &mut Conn, batch: &[NewMessage]) -> QueryResult<Vec<Inserted>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        // diesel's SQLite backend cannot combine a multi-row insert with `ON CONFLICT`: one
        // statement per row, in the same transaction.
        for m in batch {
            if let Some(room) = m.room_id()
                && !is_member(conn, DbId(room), DbId(m.sender_id)).await?
            {
                continue;
            }
            let (lo, hi) = m.conversation().key();
            diesel::insert_into(messages::table)
                .values((
                    messages::id.eq(DbId(m.id)),
                    messages::sender_id.eq(DbId(m.sender_id)),
                    messages::receiver_id.eq(m.receiver_id().map(DbId)),
                    messages::room_id.eq(m.room_id().map(DbId)),
                    messages::peer_lo.eq(DbId(lo)),
                    messages::peer_hi.eq(DbId(hi)),
                    messages::content.eq(&m.content),
                    messages::client_msg_id.eq(m.client_msg_id.as_deref()),
                    messages::created_at.eq(m.created_at),
                ))
                .on_conflict((messages::sender_id, messages::client_msg_id))
                .do_nothing()
                .execute(conn)
                .await?;
        }

        let ids: Vec<DbId> = batch.iter().map(|m| DbId(m.id)).collect();
        let inserted: Vec<MessageRow> = messages::table
            .filter(messages::id.eq_any(&ids))
            .select(MESSAGE_COLUMNS)
            .load(conn)
            .await?;

        // Newest message per (owner, peer), both directions, and per room, deduplicated because
        // one statement may not update the same row twice.
        let mut latest: HashMap<(DbId, DbId), i64> = HashMap::new();
        let mut rooms_latest: HashMap<DbId, i64> = HashMap::new();
        for row in &inserted {
            match (row.receiver_id, row.room_id) {
                (Some(receiver), _) => {
                    for key in [(row.sender_id, receiver), (receiver, row.sender_id)] {
                        let seq = latest.entry(key).or_insert(row.seq);
                        *seq = (*seq).max(row.seq);
                    }
                }
                (None, Some(room)) => {
                    let seq = rooms_latest.entry(room).or_insert(row.seq);
                    *seq = (*seq).max(row.seq);
                }
                (None, None) => {}
            }
        }
        for ((owner, peer), seq) in latest {
            diesel::insert_into(conversations::table)
                .values((
                    conversations::owner_id.eq(owner),
                    conversations::peer_id.eq(peer),
                    conversations::last_seq.eq(seq),
                ))
                .on_conflict((conversations::owner_id, conversations::peer_id))
                .do_update()
                .set(conversations::last_seq.eq(excluded(conversations::last_seq)))
                .execute(conn)
                .await?;
        }
        let mut versions: HashMap<DbId, i64> = HashMap::new();
        for (room, seq) in rooms_latest {
            diesel::update(rooms::table.find(room))
                .set(rooms::last_seq.eq(seq))
                .execute(conn)
                .await?;
            let version: i64 = rooms::table
                .find(room)
                .select(rooms::version)
                .first(conn)
                .await?;
            versions.insert(room, version);
        }

        let by_id = inserted
            .into_iter()
            .map(|row| {
                let version = row.room_id.and_then(|room| versions.get(&room).copied());
                (row.id.0, (row, version))
            })
            .collect();
        pair_with_originals(conn, batch, by_id).await
    })
    .await
}

/// Whether `user` is a member of `room`.
async fn is_member(conn: &mut Conn, room: DbId, user: DbId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        room_members::table
            .filter(room_members::room_id.eq(room))
            .filter(room_members::user_id.eq(user)),
    ))
    .get_result(conn)
    .await
}

/// Nothing to lock: SQLite's one writer already runs membership transactions one at a time.
pub async fn lock_users(_conn: &mut Conn, _ids: &[DbId]) -> QueryResult<()> {
    Ok(())
}
