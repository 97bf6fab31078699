//! Stress: several instances' writers commit at once, each commit held open for a random time
//! after its rows got their `seq`, while every user syncs continuously with small pages and moves
//! its read cursors as it reads. No reader ever skips a message that committed late, every page
//! comes oldest first, and once everyone has read to the end no unread count is left over.
//!
//! This is what the cluster-wide commit lock buys (`store/pg.rs`): without it a batch that got
//! lower `seq`s can commit after a reader has synced past them. PostgreSQL only: the embedded
//! SQLite backend has a single writer.

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use common::TestDb;
use nexus_chat::store::{
    CursorMove, Message, NewMessage, Recipient, Store,
    rooms::{NewRoom, RoomLimits},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

const INSTANCES: usize = 3;
const WRITERS_PER_INSTANCE: usize = 2;
const BATCHES_PER_WRITER: usize = 60;
const USERS: usize = 5;
/// How long a commit is held open after its rows got their `seq`, in seconds: most commits are
/// quick, and one in four is slow enough to be overtaken by several others.
const COMMIT_DELAY: &str =
    "CASE WHEN random() < 0.25 THEN 0.01 + random() * 0.03 ELSE random() * 0.002 END";

/// The conversation of `m` as `reader` names it in a cursor move.
fn as_seen_by(reader: Uuid, m: &Message) -> Recipient {
    match m.to {
        Recipient::Room(room) => Recipient::Room(room),
        Recipient::User(receiver) if receiver == reader => Recipient::User(m.sender_id),
        Recipient::User(receiver) => Recipient::User(receiver),
    }
}

/// Everything `user` may read after `after_seq`, paged to the end.
async fn all_after(store: &Store, user: Uuid, mut after_seq: i64) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let page = store.messages_after(user, after_seq, 100).await.unwrap();
        let Some(last) = page.last() else {
            return all;
        };
        after_seq = last.seq;
        all.extend(page);
    }
}

/// Syncs as a client does (the last message of each page is the next `after`), until the writers
/// are done and a page comes back empty, and, if `marks_read`, moves the read cursor of each
/// conversation it reads in; returns the ids it received.
async fn reader(
    store: Store,
    user: Uuid,
    anchor_seq: i64,
    writers_done: Arc<AtomicBool>,
    seed: u64,
    marks_read: bool,
) -> HashSet<Uuid> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut after = anchor_seq;
    loop {
        // Read before the query: a page asked for after the last commit that is empty means
        // there is nothing left to sync.
        let done = writers_done.load(Ordering::SeqCst);
        let limit = rng.random_range(1..=4);
        let page = store.messages_after(user, after, limit).await.unwrap();
        assert!(page.len() <= limit);
        let mut last_seq = after;
        let mut moves: HashMap<Uuid, CursorMove> = HashMap::new();
        for m in &page {
            assert!(
                m.seq > last_seq,
                "a sync page is oldest first, after its cursor"
            );
            last_seq = m.seq;
            seen.insert(m.id);
            let change = CursorMove {
                reader: user,
                of: as_seen_by(user, m),
                up_to: m.id,
            };
            moves.insert(change.other(), change);
        }
        if marks_read && !moves.is_empty() {
            let moves: Vec<CursorMove> = moves.into_values().collect();
            let moved = store.move_read_cursors(&moves).await.unwrap();
            assert!(
                moved.iter().all(Option::is_some),
                "every cursor move is valid"
            );
        }
        match page.last() {
            Some(last) => after = last.seq,
            None if done => return seen,
            None => tokio::task::yield_now().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_late_commits_never_make_a_syncing_reader_skip_or_miscount() {
    let db = TestDb::postgres().await;
    let mut config = db.config();
    config.db_pool_size = 8;
    let first = Store::connect(&config).await.expect("connect");
    first.migrate().await.expect("migrate");
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(
            first
                .create_user(&format!("user{i}"), "h")
                .await
                .unwrap()
                .id,
        );
    }
    let room = first
        .create_room(
            NewRoom {
                id: Uuid::now_v7(),
                name: "stress".into(),
                created_at: chrono::Utc::now(),
                owner: users[0],
                members: users[1..].to_vec(),
            },
            RoomLimits {
                max_members: 10,
                max_rooms_per_user: 10,
            },
        )
        .await
        .unwrap()
        .id;
    // Every user is in the room, so one room message is a starting point for all of them.
    let anchor = first
        .insert_messages(&[NewMessage::new(
            users[0],
            Recipient::Room(room),
            "anchor".into(),
            None,
        )])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .message;

    // From here on every batch waits a random time between getting its `seq`s (the rows are
    // inserted) and its commit, so that, were commits not ordered, a later `seq` could commit
    // first.
    db.execute(&format!(
        "CREATE FUNCTION stress_delay() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep({COMMIT_DELAY}); RETURN NULL; END $$; \
         CREATE TRIGGER stress_delay AFTER INSERT ON messages \
         FOR EACH STATEMENT EXECUTE FUNCTION stress_delay();"
    ))
    .await;

    let mut instances = vec![first.clone()];
    for _ in 1..INSTANCES {
        instances.push(Store::connect(&config).await.expect("connect"));
    }

    let writers_done = Arc::new(AtomicBool::new(false));
    // Two devices per user, on different instances: one marks what it reads as read, the other
    // only syncs (and so keeps closer to the newest commit).
    let readers: Vec<_> = (0..2 * USERS)
        .map(|i| {
            (
                i % USERS,
                tokio::spawn(reader(
                    instances[i % INSTANCES].clone(),
                    users[i % USERS],
                    anchor.seq,
                    writers_done.clone(),
                    1_000 + i as u64,
                    i < USERS,
                )),
            )
        })
        .collect();

    let mut writers = Vec::new();
    for (i, store) in instances.iter().enumerate() {
        for w in 0..WRITERS_PER_INSTANCE {
            let store = store.clone();
            let users = users.clone();
            let seed = (i * WRITERS_PER_INSTANCE + w) as u64;
            writers.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut written = 0;
                for b in 0..BATCHES_PER_WRITER {
                    let batch: Vec<NewMessage> = (0..rng.random_range(1..=3))
                        .map(|k| {
                            let from = users[rng.random_range(0..users.len())];
                            let to = if rng.random_bool(0.4) {
                                Recipient::Room(room)
                            } else {
                                let mut peer = users[rng.random_range(0..users.len())];
                                while peer == from {
                                    peer = users[rng.random_range(0..users.len())];
                                }
                                Recipient::User(peer)
                            };
                            NewMessage::new(from, to, format!("i{i} w{w} b{b} m{k}"), None)
                        })
                        .collect();
                    for outcome in store.insert_messages(&batch).await.unwrap() {
                        outcome.expect("stored");
                        written += 1;
                    }
                }
                written
            }));
        }
    }
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    writers_done.store(true, Ordering::SeqCst);

    let mut synced = Vec::new();
    for (u, r) in readers {
        synced.push((users[u], r.await.unwrap()));
    }
    let mut total = HashSet::new();
    let mut skipped = Vec::new();
    for (user, seen) in &synced {
        let expected: HashSet<Uuid> = all_after(&first, *user, anchor.seq)
            .await
            .iter()
            .map(|m| m.id)
            .collect();
        skipped.push(expected.difference(seen).count());
        assert!(
            seen.is_subset(&expected),
            "a reader got someone else's message"
        );
        total.extend(expected);
    }
    assert_eq!(
        total.len(),
        written,
        "every committed message is someone's to read"
    );

    // Everyone reads to the newest message of each conversation: no unread count is left.
    let mut unread = Vec::new();
    for &user in &users {
        let directs = first.conversations(user, 100).await.unwrap();
        let rooms = first.rooms_of(user, 100).await.unwrap();
        let mut moves: Vec<CursorMove> = directs
            .iter()
            .map(|d| CursorMove {
                reader: user,
                of: Recipient::User(d.peer.id),
                up_to: d.last.id,
            })
            .collect();
        moves.extend(rooms.iter().filter_map(|r| {
            r.last_message.as_ref().map(|m| CursorMove {
                reader: user,
                of: Recipient::Room(r.id),
                up_to: m.id,
            })
        }));
        first.move_read_cursors(&moves).await.unwrap();
        let left: i64 = first
            .conversations(user, 100)
            .await
            .unwrap()
            .iter()
            .map(|d| d.unread)
            .chain(
                first
                    .rooms_of(user, 100)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.unread),
            )
            .sum();
        unread.push(left);
    }
    assert!(
        skipped.iter().all(|&n| n == 0) && unread.iter().all(|&n| n == 0),
        "of {written} messages, the readers syncing continuously skipped {skipped:?}, and after \
         reading to the end each user still has {unread:?} unread"
    );
}
