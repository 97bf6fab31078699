//! Embedded SQLite backend: a file in `DATA_DIR`, used through diesel-async's
//! `SyncConnectionWrapper` (queries run on blocking threads, never on the async runtime).

use std::collections::HashMap;

use diesel::{QueryResult, SqliteConnection, upsert::excluded};
use diesel_async::{AsyncConnection, sync_connection_wrapper::SyncConnectionWrapper};

use crate::store::schema::sqlite::{conversations, messages, users};

pub type Conn = SyncConnectionWrapper<SqliteConnection>;

crate::store::queries::backend_queries!();

/// Stores a batch in one transaction (group commit). SQLite admits one writer at a time and
/// its rowid order is commit order, so `seq` order is commit order without a lock. Returns, per input, the stored row and
/// whether this call created it (`false`: a retry whose `clientMsgId` was already stored).
pub async fn insert_messages(
    conn: &mut Conn,
    batch: &[NewMessage],
) -> QueryResult<Vec<(MessageRow, bool)>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
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
        // diesel's SQLite backend cannot combine a multi-row insert with `ON CONFLICT`: one
        // statement per row, in the same transaction.
        for r in rows {
            diesel::insert_into(messages::table)
                .values(r)
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
        let by_id: HashMap<uuid::Uuid, MessageRow> =
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
            for r in values {
                diesel::insert_into(conversations::table)
                    .values(r)
                    .on_conflict((conversations::owner_id, conversations::peer_id))
                    .do_update()
                    .set(conversations::last_seq.eq(excluded(conversations::last_seq)))
                    .execute(conn)
                    .await?;
            }
        }

        pair_with_originals(conn, batch, by_id).await
    })
    .await
}
