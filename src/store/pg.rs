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
/// a member, stamps a new message's `createdAt` from the database's clock under the lock (so
/// that it never decreases in commit order, whichever instance accepted the message; an
/// imported one keeps its own), moves both sides' conversation rows (or the room's) to the
/// newest message with the unread counters (see the read-state migration), and returns each
/// room message's membership version. `lock` is materialized and joined, so it is taken before the first
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
    created_at: Vec<Option<DateTime<Utc>>>,
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
        out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(&self.created_at)?;
        out.push_sql(
            ") WITH ORDINALITY AS b(id, sender_id, receiver_id, room_id, peer_lo, peer_hi, \
                                    content, client_msg_id, created_at, ord)), \
             ins AS (\
                 INSERT INTO messages (id, sender_id, receiver_id, room_id, peer_lo, peer_hi, \
                                       content, client_msg_id, created_at) \
                 SELECT b.id, b.sender_id, b.receiver_id, b.room_id, b.peer_lo, b.peer_hi, \
                        b.content, b.client_msg_id, \
                        COALESCE(b.created_at, date_trunc('milliseconds', clock_timestamp())) \
                 FROM lock, batch b \
                 WHERE b.room_id IS NULL OR EXISTS (\
                     SELECT 1 FROM room_members m \
                     WHERE m.room_id = b.room_id AND m.user_id = b.sender_id) \
                 ORDER BY b.ord \
                 ON CONFLICT (sender_id, client_msg_id) DO NOTHING \
                 RETURNING seq, id, sender_id, receiver_id, room_id, content, client_msg_id, \
                           created_at), \
             conv AS (\
                 INSERT INTO conversations (owner_id, peer_id, last_seq, received) \
                 SELECT owner, peer, max(seq), sum(received) FROM (\
                     SELECT sender_id AS owner, receiver_id AS peer, seq, 0 AS received FROM ins \
                     WHERE receiver_id IS NOT NULL \
                     UNION ALL SELECT receiver_id, sender_id, seq, 1 FROM ins \
                     WHERE receiver_id IS NOT NULL) sides \
                 GROUP BY owner, peer \
                 ON CONFLICT (owner_id, peer_id) DO UPDATE SET last_seq = excluded.last_seq, \
                     received = conversations.received + excluded.received), \
             room_last AS (\
                 UPDATE rooms r SET last_seq = x.seq, message_count = r.message_count + x.n \
                 FROM (SELECT room_id, max(seq) AS seq, count(*) AS n FROM ins \
                       WHERE room_id IS NOT NULL GROUP BY room_id) x \
                 WHERE r.id = x.room_id \
                 RETURNING r.id, r.version), \
             room_sent AS (\
                 UPDATE room_members rm SET sent = rm.sent + x.n \
                 FROM (SELECT room_id, sender_id, count(*) AS n FROM ins \
                       WHERE room_id IS NOT NULL GROUP BY room_id, sender_id) x \
                 WHERE rm.room_id = x.room_id AND rm.user_id = x.sender_id) \
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

/// The SQL of one kind of read-cursor move; a type per kind, because a prepared statement is
/// cached by the type of its query.
trait CursorSql {
    const SQL: &'static str;
}

/// Direct conversations: the reader's own `conversations` row (owner = reader).
struct DirectCursors;
impl CursorSql for DirectCursors {
    const SQL: &'static str = "\
        WITH v AS (SELECT * FROM unnest($1, $2, $3) WITH ORDINALITY \
                   AS v(reader, other, up_to, ord)), \
        t AS (SELECT v.ord, v.reader, v.other, m.seq FROM v JOIN messages m ON m.id = v.up_to \
              WHERE m.room_id IS NULL AND m.peer_lo = LEAST(v.reader, v.other) \
                AND m.peer_hi = GREATEST(v.reader, v.other)), \
        best AS (SELECT reader, other, max(seq) AS seq FROM t GROUP BY reader, other), \
        upd AS (UPDATE conversations c SET read_seq = b.seq, received_read = c.received_read + (\
                    SELECT count(*) FROM messages m \
                    WHERE m.peer_lo = LEAST(c.owner_id, c.peer_id) \
                      AND m.peer_hi = GREATEST(c.owner_id, c.peer_id) \
                      AND m.seq > COALESCE(c.read_seq, 0) AND m.seq <= b.seq \
                      AND m.sender_id = c.peer_id) \
                FROM best b \
                WHERE c.owner_id = b.reader AND c.peer_id = b.other \
                  AND (c.read_seq IS NULL OR c.read_seq < b.seq) \
                RETURNING c.owner_id, c.peer_id, c.read_seq), \
        cur AS (SELECT t.ord, t.seq AS wanted, COALESCE(u.read_seq, c.read_seq) AS seq, \
                       u.read_seq IS NOT NULL AS moved \
                FROM t JOIN conversations c ON c.owner_id = t.reader AND c.peer_id = t.other \
                LEFT JOIN upd u ON u.owner_id = t.reader AND u.peer_id = t.other) \
        SELECT cur.ord, cur.wanted, cur.seq, m.id, cur.moved \
        FROM cur LEFT JOIN messages m ON m.seq = cur.seq";
}

/// Rooms: the reader's `room_members` row.
struct RoomCursors;
impl CursorSql for RoomCursors {
    const SQL: &'static str = "\
        WITH v AS (SELECT * FROM unnest($1, $2, $3) WITH ORDINALITY \
                   AS v(reader, other, up_to, ord)), \
        t AS (SELECT v.ord, v.reader, v.other, m.seq FROM v JOIN messages m ON m.id = v.up_to \
              WHERE m.room_id = v.other), \
        best AS (SELECT reader, other, max(seq) AS seq FROM t GROUP BY reader, other), \
        upd AS (UPDATE room_members rm SET read_seq = b.seq, \
                    seen = rm.seen + (SELECT count(*) FROM messages m \
                        WHERE m.room_id = rm.room_id \
                          AND m.seq > COALESCE(rm.read_seq, 0) AND m.seq <= b.seq), \
                    sent_seen = rm.sent_seen + (SELECT count(*) FROM messages m \
                        WHERE m.room_id = rm.room_id AND m.sender_id = rm.user_id \
                          AND m.seq > COALESCE(rm.read_seq, 0) AND m.seq <= b.seq) \
                FROM best b \
                WHERE rm.user_id = b.reader AND rm.room_id = b.other \
                  AND (rm.read_seq IS NULL OR rm.read_seq < b.seq) \
                RETURNING rm.user_id, rm.room_id, rm.read_seq), \
        cur AS (SELECT t.ord, t.seq AS wanted, COALESCE(u.read_seq, rm.read_seq) AS seq, \
                       u.read_seq IS NOT NULL AS moved \
                FROM t JOIN room_members rm ON rm.user_id = t.reader AND rm.room_id = t.other \
                LEFT JOIN upd u ON u.user_id = t.reader AND u.room_id = t.other) \
        SELECT cur.ord, cur.wanted, cur.seq, m.id, cur.moved \
        FROM cur LEFT JOIN messages m ON m.seq = cur.seq";
}

/// One kind of cursor moves as one statement: readers, the other party (peer or room) and the
/// message each has read up to, as arrays.
struct MoveCursors<K> {
    readers: Vec<DbId>,
    others: Vec<DbId>,
    up_to: Vec<DbId>,
    kind: std::marker::PhantomData<K>,
}

impl<K: CursorSql> QueryFragment<Pg> for MoveCursors<K> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // `$1`… in the SQL are placeholders for the binds in this order.
        let mut parts = K::SQL.split("$1");
        out.push_sql(parts.next().unwrap_or_default());
        let rest = parts.next().unwrap_or_default();
        let (between_12, rest) = rest.split_once("$2").unwrap_or((rest, ""));
        let (between_23, after) = rest.split_once("$3").unwrap_or((rest, ""));
        out.push_bind_param::<Array<SqlUuid>, _>(&self.readers)?;
        out.push_sql(between_12);
        out.push_bind_param::<Array<SqlUuid>, _>(&self.others)?;
        out.push_sql(between_23);
        out.push_bind_param::<Array<SqlUuid>, _>(&self.up_to)?;
        out.push_sql(after);
        Ok(())
    }
}

impl<K: 'static> QueryId for MoveCursors<K> {
    type QueryId = MoveCursors<K>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K> Query for MoveCursors<K> {
    type SqlType = Untyped;
}

#[derive(diesel::QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    /// The `seq` of the message the move names.
    #[diesel(sql_type = BigInt)]
    wanted: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    seq: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    id: Option<DbId>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    moved: bool,
}

/// Moves one kind of cursors. A move that another transaction beat to the row (it waited for
/// the row lock, then found a later cursor there) read the row as it was before, so it is asked
/// again: the next statement's snapshot has the cursor that beat it.
async fn move_kind<K: CursorSql + Send + Sync + 'static>(
    conn: &mut Conn,
    moves: &[(usize, &CursorMove)],
    out: &mut [Option<Cursor>],
) -> QueryResult<()> {
    let mut pending: Vec<(usize, &CursorMove)> = moves.to_vec();
    for _ in 0..4 {
        if pending.is_empty() {
            return Ok(());
        }
        let query = MoveCursors::<K> {
            readers: pending.iter().map(|(_, m)| DbId(m.reader)).collect(),
            others: pending.iter().map(|(_, m)| DbId(m.other())).collect(),
            up_to: pending.iter().map(|(_, m)| DbId(m.up_to)).collect(),
            kind: std::marker::PhantomData,
        };
        let rows: Vec<CursorRow> = query.load(conn).await?;
        let mut beaten = Vec::new();
        for row in rows {
            // `ord` counts from 1 over this statement's moves.
            let Some(&(index, change)) = usize::try_from(row.ord - 1)
                .ok()
                .and_then(|i| pending.get(i))
            else {
                continue;
            };
            match (row.seq, row.id) {
                (Some(seq), Some(id)) if row.moved || seq >= row.wanted => {
                    out[index] = Some(Cursor {
                        seq,
                        id: id.0,
                        moved: row.moved,
                    });
                }
                _ => beaten.push((index, change)),
            }
        }
        pending = beaten;
    }
    Ok(())
}

/// Moves read cursors forward, at most two statements (direct, rooms) for the whole batch; per
/// input, the cursor after the call, or `None` when `up_to` is not a message of that
/// conversation (or the reader is not in the room).
pub async fn move_read_cursors(
    conn: &mut Conn,
    moves: &[CursorMove],
) -> QueryResult<Vec<Option<Cursor>>> {
    let mut out = vec![None; moves.len()];
    let (direct, rooms): (Vec<_>, Vec<_>) = moves
        .iter()
        .enumerate()
        .partition(|(_, m)| matches!(m.of, Recipient::User(_)));
    move_kind::<DirectCursors>(conn, &direct, &mut out).await?;
    move_kind::<RoomCursors>(conn, &rooms, &mut out).await?;
    Ok(out)
}
