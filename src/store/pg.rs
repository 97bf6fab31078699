//! PostgreSQL backend: pooled native async connections (bb8).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid},
};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::store::schema::pg::{conversations, messages, users};

pub type Conn = AsyncPgConnection;

crate::store::queries::backend_queries!();

/// The whole group commit as one statement, so a batch costs one round trip: it takes the
/// cluster-wide transaction lock (so that `seq` order equals commit order on every instance;
/// the lock is held until this statement's implicit commit), inserts the batch in order, skips
/// retries whose `(sender, clientMsgId)` is stored already, and moves both sides' conversation
/// rows to the newest message. `lock` is materialized and joined, so it is taken before the first
/// row gets its `seq`. The batch arrives as one array per column; the SQL is constant, so each
/// connection prepares it once (a plain `sql_query` is prepared again on every call).
struct InsertBatch<'a> {
    ids: Vec<DbId>,
    senders: Vec<DbId>,
    receivers: Vec<DbId>,
    peers_lo: Vec<DbId>,
    peers_hi: Vec<DbId>,
    contents: Vec<&'a str>,
    client_msg_ids: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> InsertBatch<'a> {
    fn new(batch: &'a [NewMessage]) -> InsertBatch<'a> {
        let ids = |f: fn(&NewMessage) -> Uuid| batch.iter().map(|m| DbId(f(m))).collect();
        InsertBatch {
            ids: ids(|m| m.id),
            senders: ids(|m| m.sender_id),
            receivers: ids(|m| m.receiver_id),
            peers_lo: ids(|m| m.peers().0),
            peers_hi: ids(|m| m.peers().1),
            contents: batch.iter().map(|m| m.content.as_str()).collect(),
            client_msg_ids: batch.iter().map(|m| m.client_msg_id.as_deref()).collect(),
            created_at: batch.iter().map(|m| m.created_at).collect(),
        }
    }
}

impl QueryFragment<Pg> for InsertBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(7415946721)), \
             batch AS (SELECT * FROM unnest(",
        );
        for (i, ids) in [
            &self.ids,
            &self.senders,
            &self.receivers,
            &self.peers_lo,
            &self.peers_hi,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Array<SqlUuid>, _>(ids)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.contents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_msg_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.created_at)?;
        out.push_sql(
            ") WITH ORDINALITY AS b(id, sender_id, receiver_id, peer_lo, peer_hi, content, \
                                    client_msg_id, created_at, ord)), \
             ins AS (\
                 INSERT INTO messages (id, sender_id, receiver_id, peer_lo, peer_hi, content, \
                                       client_msg_id, created_at) \
                 SELECT b.id, b.sender_id, b.receiver_id, b.peer_lo, b.peer_hi, b.content, \
                        b.client_msg_id, b.created_at \
                 FROM lock, batch b ORDER BY b.ord \
                 ON CONFLICT (sender_id, client_msg_id) DO NOTHING \
                 RETURNING seq, id, sender_id, receiver_id, content, client_msg_id, created_at), \
             conv AS (\
                 INSERT INTO conversations (owner_id, peer_id, last_seq) \
                 SELECT owner, peer, max(seq) FROM (\
                     SELECT sender_id AS owner, receiver_id AS peer, seq FROM ins \
                     UNION ALL SELECT receiver_id, sender_id, seq FROM ins) sides \
                 GROUP BY owner, peer \
                 ON CONFLICT (owner_id, peer_id) DO UPDATE SET last_seq = excluded.last_seq) \
             SELECT seq, id, sender_id, receiver_id, content, client_msg_id, created_at FROM ins",
        );
        Ok(())
    }
}

impl QueryId for InsertBatch<'_> {
    type QueryId = InsertBatch<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertBatch<'_> {
    type SqlType = Untyped;
}

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
    let inserted: Vec<InsertedRow> = InsertBatch::new(batch).load(conn).await?;
    let by_id: HashMap<uuid::Uuid, MessageRow> = inserted
        .into_iter()
        .map(|r| (r.id.0, MessageRow::from(r)))
        .collect();
    pair_with_originals(conn, batch, by_id).await
}
