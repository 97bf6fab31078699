//! PostgreSQL backend: pooled native async connections (bb8).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult,
    sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::AsyncPgConnection;

use crate::store::schema::pg::{conversations, messages, users};

pub type Conn = AsyncPgConnection;

crate::store::queries::backend_queries!();

/// The whole group commit as one statement, so a batch costs one round trip: it takes the
/// cluster-wide transaction lock (so that `seq` order equals commit order on every instance;
/// the lock is held until this statement's implicit commit), inserts the batch in order, skips
/// retries whose `(sender, clientMsgId)` is stored already, and moves both sides' conversation
/// rows to the newest message. `lock` is materialized and joined, so it is taken before the first
/// row gets its `seq`.
const INSERT_BATCH: &str = "\
WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(7415946721)),
batch AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                         $7::text[], $8::timestamptz[]) WITH ORDINALITY
        AS b(id, sender_id, receiver_id, peer_lo, peer_hi, content, client_msg_id, created_at, ord)
),
ins AS (
    INSERT INTO messages (id, sender_id, receiver_id, peer_lo, peer_hi, content, client_msg_id, created_at)
    SELECT b.id, b.sender_id, b.receiver_id, b.peer_lo, b.peer_hi, b.content, b.client_msg_id, b.created_at
    FROM lock, batch b ORDER BY b.ord
    ON CONFLICT (sender_id, client_msg_id) DO NOTHING
    RETURNING seq, id, sender_id, receiver_id, content, client_msg_id, created_at
),
conv AS (
    INSERT INTO conversations (owner_id, peer_id, last_seq)
    SELECT owner, peer, max(seq) FROM (
        SELECT sender_id AS owner, receiver_id AS peer, seq FROM ins
        UNION ALL
        SELECT receiver_id, sender_id, seq FROM ins
    ) sides GROUP BY owner, peer
    ON CONFLICT (owner_id, peer_id) DO UPDATE SET last_seq = excluded.last_seq
)
SELECT seq, id, sender_id, receiver_id, content, client_msg_id, created_at FROM ins";

#[derive(diesel::QueryableByName)]
struct InsertedRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = SqlUuid)]
    id: DbId,
    #[diesel(sql_type = SqlUuid)]
    sender_id: DbId,
    #[diesel(sql_type = SqlUuid)]
    receiver_id: DbId,
    #[diesel(sql_type = Text)]
    content: String,
    #[diesel(sql_type = Nullable<Text>)]
    client_msg_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl From<InsertedRow> for MessageRow {
    fn from(r: InsertedRow) -> Self {
        MessageRow {
            seq: r.seq,
            id: r.id,
            sender_id: r.sender_id,
            receiver_id: r.receiver_id,
            content: r.content,
            client_msg_id: r.client_msg_id,
            created_at: r.created_at,
        }
    }
}

/// Stores a batch in one statement (group commit). Returns, per input, the stored row and
/// whether this call created it (`false`: a retry whose `clientMsgId` was already stored).
pub async fn insert_messages(
    conn: &mut Conn,
    batch: &[NewMessage],
) -> QueryResult<Vec<(MessageRow, bool)>> {
    let column = |f: fn(&NewMessage) -> DbId| batch.iter().map(f).collect::<Vec<_>>();
    let inserted: Vec<InsertedRow> = diesel::sql_query(INSERT_BATCH)
        .bind::<Array<SqlUuid>, _>(column(|m| DbId(m.id)))
        .bind::<Array<SqlUuid>, _>(column(|m| DbId(m.sender_id)))
        .bind::<Array<SqlUuid>, _>(column(|m| DbId(m.receiver_id)))
        .bind::<Array<SqlUuid>, _>(column(|m| DbId(m.peers().0)))
        .bind::<Array<SqlUuid>, _>(column(|m| DbId(m.peers().1)))
        .bind::<Array<Text>, _>(batch.iter().map(|m| m.content.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            batch
                .iter()
                .map(|m| m.client_msg_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamptz>, _>(batch.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .load(conn)
        .await?;
    let mut by_id: HashMap<uuid::Uuid, MessageRow> = inserted
        .into_iter()
        .map(|r| (r.id.0, MessageRow::from(r)))
        .collect();
    let mut out = Vec::with_capacity(batch.len());
    for m in batch {
        if let Some(row) = by_id.remove(&m.id) {
            out.push((row, true));
            continue;
        }
        // Not inserted: the (sender, clientMsgId) pair is stored already (committed before, or
        // by an earlier message of this very batch, committed now).
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
}
