//! PostgreSQL backend: pooled native async connections (bb8).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::store::schema::pg::{conversations, messages, room_members, rooms, users};

pub type Conn = AsyncPgConnection;

crate::store::queries::backend_queries!();
crate::store::room_queries::room_queries!();

/// The whole group commit as one statement, so a batch costs one round trip: it takes the
/// cluster-wide transaction lock (so that `seq` order equals commit order on every instance;
/// the lock is held until this statement's implicit commit), inserts the batch in order, skips
/// retries whose `(sender, clientMsgId)` is stored already and room messages whose sender is not
/// a member, moves both sides' conversation rows (or the room's) to the newest message, and
/// returns each room message's membership version. `lock` is materialized and joined, so it is taken before the first
/// row gets its `seq`. The batch arrives as one array per column; the SQL is constant, so each
/// connection prepares it once (a plain `sql_query` is prepared again on every call).
struct InsertBatch<'a> {
    ids: Vec<DbId>,
    senders: Vec<DbId>,
    receivers: Vec<Option<DbId>>,
    rooms: Vec<Option<DbId>>,
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
            receivers: batch.iter().map(|m| m.receiver_id().map(DbId)).collect(),
            rooms: batch.iter().map(|m| m.room_id().map(DbId)).collect(),
            peers_lo: ids(|m| m.conversation().key().0),
            peers_hi: ids(|m| m.conversation().key().1),
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
        out.push_bind_param::<Array<SqlUuid>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.senders)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.receivers)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<SqlUuid>>, _>(&self.rooms)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.peers_lo)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<SqlUuid>, _>(&self.peers_hi)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.contents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_msg_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.created_at)?;
        out.push_sql(
            ") WITH ORDINALITY AS b(id, sender_id, receiver_id, room_id, peer_lo, peer_hi, \
                                    content, client_msg_id, created_at, ord)), \
             ins AS (\
                 INSERT INTO messages (id, sender_id, receiver_id, room_id, peer_lo, peer_hi, \
                                       content, client_msg_id, created_at) \
                 SELECT b.id, b.sender_id, b.receiver_id, b.room_id, b.peer_lo, b.peer_hi, \
                        b.content, b.client_msg_id, b.created_at \
                 FROM lock, batch b \
                 WHERE b.room_id IS NULL OR EXISTS (\
                     SELECT 1 FROM room_members m \
                     WHERE m.room_id = b.room_id AND m.user_id = b.sender_id) \
                 ORDER BY b.ord \
                 ON CONFLICT (sender_id, client_msg_id) DO NOTHING \
                 RETURNING seq, id, sender_id, receiver_id, room_id, content, client_msg_id, \
                           created_at), \
             conv AS (\
                 INSERT INTO conversations (owner_id, peer_id, last_seq) \
                 SELECT owner, peer, max(seq) FROM (\
                     SELECT sender_id AS owner, receiver_id AS peer, seq FROM ins \
                     WHERE receiver_id IS NOT NULL \
                     UNION ALL SELECT receiver_id, sender_id, seq FROM ins \
                     WHERE receiver_id IS NOT NULL) sides \
                 GROUP BY owner, peer \
                 ON CONFLICT (owner_id, peer_id) DO UPDATE SET last_seq = excluded.last_seq), \
             room_last AS (\
                 UPDATE rooms r SET last_seq = x.seq \
                 FROM (SELECT room_id, max(seq) AS seq FROM ins \
                       WHERE room_id IS NOT NULL GROUP BY room_id) x \
                 WHERE r.id = x.room_id \
                 RETURNING r.id, r.version) \
             SELECT ins.seq, ins.id, ins.sender_id, ins.receiver_id, ins.room_id, ins.content, \
                    ins.client_msg_id, ins.created_at, room_last.version AS room_version \
             FROM ins LEFT JOIN room_last ON room_last.id = ins.room_id",
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
    #[diesel(sql_type = Nullable<SqlUuid>)]
    receiver_id: Option<DbId>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    room_id: Option<DbId>,
    #[diesel(sql_type = Text)]
    content: String,
    #[diesel(sql_type = Nullable<Text>)]
    client_msg_id: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    room_version: Option<i64>,
}

impl From<InsertedRow> for MessageRow {
    fn from(r: InsertedRow) -> Self {
        MessageRow {
            seq: r.seq,
            id: r.id,
            sender_id: r.sender_id,
            receiver_id: r.receiver_id,
            room_id: r.room_id,
            content: r.content,
            client_msg_id: r.client_msg_id,
            created_at: r.created_at,
        }
    }
}

/// Stores a batch in one statement (group commit); per input, what became of it.
pub async fn insert_messages(conn: &mut Conn, batch: &[NewMessage]) -> QueryResult<Vec<Inserted>> {
    let inserted: Vec<InsertedRow> = InsertBatch::new(batch).load(conn).await?;
    let by_id: HashMap<uuid::Uuid, (MessageRow, Option<i64>)> = inserted
        .into_iter()
        .map(|r| {
            let version = r.room_version;
            (r.id.0, (MessageRow::from(r), version))
        })
        .collect();
    pair_with_originals(conn, batch, by_id).await
}

/// Locks the rows of `ids` until the transaction ends, so that two transactions adding the same
/// user to different rooms count that user's rooms one after the other.
pub async fn lock_users(conn: &mut Conn, ids: &[DbId]) -> QueryResult<()> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(users::id)
        .order(users::id)
        .for_update()
        .load::<DbId>(conn)
        .await
        .map(drop)
}
