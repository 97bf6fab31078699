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
        // statement per row, in the same transaction. A new message's `createdAt` is the
        // commit's time (one writer commits in turn), so that it never decreases in commit
        // order; an imported one keeps its own.
        let created_at = crate::store::now_ms();
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
                    messages::created_at.eq(m.created_at.unwrap_or(created_at)),
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

        // Per (owner, peer), both directions: the newest message and how many the owner
        // received; per room: the newest message and how many; per (room, sender): how many.
        // Deduplicated, because one statement may not update the same row twice.
        let mut sides: HashMap<(DbId, DbId), (i64, i64)> = HashMap::new();
        let mut rooms_latest: HashMap<DbId, (i64, i64)> = HashMap::new();
        let mut senders: HashMap<(DbId, DbId), i64> = HashMap::new();
        for row in &inserted {
            match (row.receiver_id, row.room_id) {
                (Some(receiver), _) => {
                    for (key, received) in [
                        ((row.sender_id, receiver), 0),
                        ((receiver, row.sender_id), 1),
                    ] {
                        let side = sides.entry(key).or_insert((row.seq, 0));
                        side.0 = side.0.max(row.seq);
                        side.1 += received;
                    }
                }
                (None, Some(room)) => {
                    let latest = rooms_latest.entry(room).or_insert((row.seq, 0));
                    latest.0 = latest.0.max(row.seq);
                    latest.1 += 1;
                    *senders.entry((room, row.sender_id)).or_insert(0) += 1;
                }
                (None, None) => {}
            }
        }
        for ((owner, peer), (seq, received)) in sides {
            diesel::insert_into(conversations::table)
                .values((
                    conversations::owner_id.eq(owner),
                    conversations::peer_id.eq(peer),
                    conversations::last_seq.eq(seq),
                    conversations::received.eq(received),
                ))
                .on_conflict((conversations::owner_id, conversations::peer_id))
                .do_update()
                .set((
                    conversations::last_seq.eq(excluded(conversations::last_seq)),
                    conversations::received.eq(conversations::received + received),
                ))
                .execute(conn)
                .await?;
        }
        let mut versions: HashMap<DbId, i64> = HashMap::new();
        for (room, (seq, n)) in rooms_latest {
            diesel::update(rooms::table.find(room))
                .set((
                    rooms::last_seq.eq(seq),
                    rooms::message_count.eq(rooms::message_count + n),
                ))
                .execute(conn)
                .await?;
            let version: i64 = rooms::table
                .find(room)
                .select(rooms::version)
                .first(conn)
                .await?;
            versions.insert(room, version);
        }
        for ((room, sender), n) in senders {
            diesel::update(room_members::table.find((room, sender)))
                .set(room_members::sent.eq(room_members::sent + n))
                .execute(conn)
                .await?;
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

/// Moves read cursors forward in one transaction; per input, the cursor after the call, or
/// `None` when `up_to` is not a message of that conversation (or the reader is not in the room).
pub async fn move_read_cursors(
    conn: &mut Conn,
    moves: &[CursorMove],
) -> QueryResult<Vec<Option<Cursor>>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let mut out = Vec::with_capacity(moves.len());
        for m in moves {
            out.push(move_one(conn, m).await?);
        }
        Ok(out)
    })
    .await
}

async fn move_one(conn: &mut Conn, m: &CursorMove) -> QueryResult<Option<Cursor>> {
    let reader = DbId(m.reader);
    let other = DbId(m.other());
    let conversation = match m.of {
        Recipient::User(peer) => crate::store::Conversation::direct(m.reader, peer),
        Recipient::Room(room) => crate::store::Conversation::Room(room),
    };
    let (lo, hi) = conversation.key();
    let target: Option<i64> = messages::table
        .filter(messages::id.eq(DbId(m.up_to)))
        .filter(messages::peer_lo.eq(DbId(lo)))
        .filter(messages::peer_hi.eq(DbId(hi)))
        // The key tells the kinds apart: a room's is its id twice, a pair's two distinct users.
        .select(messages::seq)
        .first(conn)
        .await
        .optional()?;
    let Some(target) = target else {
        return Ok(None);
    };
    let current: Option<Option<i64>> = match m.of {
        Recipient::User(_) => conversations::table
            .find((reader, other))
            .select(conversations::read_seq)
            .first(conn)
            .await
            .optional()?,
        Recipient::Room(_) => room_members::table
            .find((other, reader))
            .select(room_members::read_seq)
            .first(conn)
            .await
            .optional()?,
    };
    let Some(current) = current else {
        return Ok(None);
    };
    let from = current.unwrap_or(0);
    let moved = target > from;
    if moved {
        let newly_read = messages::table
            .filter(messages::peer_lo.eq(DbId(lo)))
            .filter(messages::peer_hi.eq(DbId(hi)))
            .filter(messages::seq.gt(from))
            .filter(messages::seq.le(target));
        match m.of {
            Recipient::User(peer) => {
                let received: i64 = newly_read
                    .filter(messages::sender_id.eq(DbId(peer)))
                    .count()
                    .get_result(conn)
                    .await?;
                diesel::update(conversations::table.find((reader, other)))
                    .set((
                        conversations::read_seq.eq(target),
                        conversations::received_read.eq(conversations::received_read + received),
                    ))
                    .execute(conn)
                    .await?;
            }
            Recipient::Room(_) => {
                let seen: i64 = newly_read.count().get_result(conn).await?;
                let own: i64 = newly_read
                    .filter(messages::sender_id.eq(reader))
                    .count()
                    .get_result(conn)
                    .await?;
                diesel::update(room_members::table.find((other, reader)))
                    .set((
                        room_members::read_seq.eq(target),
                        room_members::seen.eq(room_members::seen + seen),
                        room_members::sent_seen.eq(room_members::sent_seen + own),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
    }
    let seq = from.max(target);
    let id: DbId = messages::table
        .filter(messages::seq.eq(seq))
        .select(messages::id)
        .first(conn)
        .await?;
    Ok(Some(Cursor {
        seq,
        id: id.0,
        moved,
    }))
}

/// Nothing to lock: SQLite's one writer already runs membership transactions one at a time.
pub async fn lock_users(_conn: &mut Conn, _ids: &[DbId]) -> QueryResult<()> {
    Ok(())
}
