//! One conformance suite for the storage API, run against both backends: every test gets a fresh
//! PostgreSQL database or SQLite file.

mod common;

use common::TestDb;
use nexus_chat::store::{
    AccessChange, Conversation, CursorMove, ImportedUser, NewMessage, Recipient, Refusal, Role,
    Store, StoreError, Written,
    rooms::{NewRoom, Removal, RoomLimits},
};
use uuid::Uuid;

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(&db.config()).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

async fn two_users(store: &Store) -> (Uuid, Uuid) {
    let a = store.create_user("alice", "hash-a").await.unwrap();
    let b = store.create_user("bob", "hash-b").await.unwrap();
    (a.id, b.id)
}

async fn send(store: &Store, from: Uuid, to: Uuid, text: &str) -> nexus_chat::store::Message {
    let msg = NewMessage::new(from, Recipient::User(to), text.into(), None);
    store
        .insert_messages(&[msg])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .message
}

const LIMITS: RoomLimits = RoomLimits {
    max_members: 4,
    max_rooms_per_user: 2,
};

fn new_room(owner: Uuid, members: &[Uuid]) -> NewRoom {
    NewRoom {
        id: Uuid::now_v7(),
        name: "team".into(),
        created_at: chrono::Utc::now(),
        owner,
        members: members.to_vec(),
    }
}

async fn say_in(store: &Store, from: Uuid, room: Uuid, text: &str) -> Result<Written, StoreError> {
    let msg = NewMessage::new(from, Recipient::Room(room), text.into(), None);
    store.insert_messages(&[msg]).await.unwrap().remove(0)
}

fn refused(result: Result<impl std::fmt::Debug, StoreError>) -> Refusal {
    match result {
        Err(StoreError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The outcomes of a group commit, every one of which must have been stored.
fn written(outcomes: Vec<Result<Written, StoreError>>) -> Vec<Written> {
    outcomes.into_iter().map(|w| w.expect("stored")).collect()
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn migrations_apply_once() {
                let db = $make;
                let store = open(&db).await;
                assert_eq!(store.migrate().await.unwrap(), 0);
            }

            #[tokio::test]
            async fn usernames_are_unique_whatever_their_case() {
                let db = $make;
                let store = open(&db).await;
                store.create_user("Alice", "h").await.unwrap();
                let again = store.create_user("aLICE", "h").await;
                assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
                let found = store.credentials("ALICE").await.unwrap().unwrap();
                assert_eq!(found.user.username, "Alice");
                assert_eq!(found.password_hash, "h");
                assert!(store.credentials("nobody").await.unwrap().is_none());
            }

            #[tokio::test]
            async fn users_are_found_by_id_and_unknown_ids_are_left_out() {
                let db = $make;
                let store = open(&db).await;
                let (a, _) = two_users(&store).await;
                assert_eq!(store.user(a).await.unwrap().unwrap().username, "alice");
                assert!(store.user(Uuid::now_v7()).await.unwrap().is_none());
            }

            #[tokio::test]
            async fn a_batch_is_stored_whole_with_distinct_increasing_seqs() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let batch: Vec<_> = (0..50)
                    .map(|i| {
                        NewMessage::new(
                            a,
                            Recipient::User(b),
                            format!("m{i}"),
                            Some(format!("c{i}")),
                        )
                    })
                    .collect();
                let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
                let before = ms(chrono::Utc::now());
                let stored = written(store.insert_messages(&batch).await.unwrap());
                let after = ms(chrono::Utc::now());
                assert_eq!(stored.len(), 50);
                assert!(stored.iter().all(|w| w.created));
                for pair in stored.windows(2) {
                    assert!(pair[0].message.seq < pair[1].message.seq);
                    assert!(pair[0].message.created_at <= pair[1].message.created_at);
                }
                for (input, Written { message: out, .. }) in batch.iter().zip(&stored) {
                    assert_eq!(input.id, out.id);
                    assert_eq!(input.content, out.content);
                    // Stamped at the commit, in milliseconds as on the wire.
                    assert!((before..=after).contains(&ms(out.created_at)));
                    assert_eq!(out.created_at.timestamp_subsec_micros() % 1000, 0);
                }
                // A message that already has a time (an import) keeps it.
                let old = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
                let imported = NewMessage {
                    created_at: Some(old),
                    ..NewMessage::new(b, Recipient::User(a), "from the old app".into(), None)
                };
                let kept = written(store.insert_messages(&[imported]).await.unwrap());
                assert_eq!(kept[0].message.created_at, old);
            }

            #[tokio::test]
            async fn a_retried_client_message_id_returns_the_original() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let first = NewMessage::new(
                    a,
                    Recipient::User(b),
                    "hello".into(),
                    Some("retry-1".into()),
                );
                let Written {
                    message: original,
                    created,
                    ..
                } = written(store.insert_messages(&[first]).await.unwrap()).remove(0);
                assert!(created);
                // The retry (new id, same clientMsgId) and a twin in one batch both map to it.
                let retry = NewMessage::new(
                    a,
                    Recipient::User(b),
                    "hello".into(),
                    Some("retry-1".into()),
                );
                let twin = NewMessage::new(
                    a,
                    Recipient::User(b),
                    "hello".into(),
                    Some("retry-1".into()),
                );
                let out = written(store.insert_messages(&[retry, twin]).await.unwrap());
                assert!(
                    out.iter()
                        .all(|w| w.message.id == original.id && !w.created)
                );
                // The same clientMsgId from another sender is a different message.
                let other =
                    NewMessage::new(b, Recipient::User(a), "hi".into(), Some("retry-1".into()));
                assert!(written(store.insert_messages(&[other]).await.unwrap())[0].created);
                let page = store
                    .conversation_page(Conversation::direct(a, b), None, 100)
                    .await
                    .unwrap();
                assert_eq!(page.len(), 2);
                // Two new messages with one new clientMsgId in one batch: the first is stored,
                // the second maps to it.
                let x = NewMessage::new(a, Recipient::User(b), "x".into(), Some("twin-1".into()));
                let y = NewMessage::new(a, Recipient::User(b), "y".into(), Some("twin-1".into()));
                let x_id = x.id;
                let out = written(store.insert_messages(&[x, y]).await.unwrap());
                assert!(
                    out[0].created && !out[1].created,
                    "first stored, second a retry"
                );
                assert!(
                    out.iter()
                        .all(|w| w.message.id == x_id && w.message.content == "x")
                );
                let page = store
                    .conversation_page(Conversation::direct(a, b), None, 100)
                    .await
                    .unwrap();
                assert_eq!(page.len(), 3);
                let list = store.conversations(b, 10).await.unwrap();
                assert_eq!(
                    list[0].last.id, x_id,
                    "the conversation row moved to the newest message"
                );
            }

            #[tokio::test]
            async fn history_pages_back_oldest_first_without_gaps() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                for i in 0..25 {
                    let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
                    send(&store, from, to, &format!("m{i}")).await;
                }
                let latest = store
                    .conversation_page(Conversation::direct(b, a), None, 10)
                    .await
                    .unwrap();
                let texts: Vec<_> = latest.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
                let mut all = latest.clone();
                let mut cursor = latest[0].seq;
                loop {
                    let page = store
                        .conversation_page(Conversation::direct(a, b), Some(cursor), 10)
                        .await
                        .unwrap();
                    if page.is_empty() {
                        break;
                    }
                    cursor = page[0].seq;
                    all.splice(0..0, page);
                }
                let texts: Vec<_> = all.iter().map(|m| m.content.clone()).collect();
                assert_eq!(texts, (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
            }

            #[tokio::test]
            async fn conversations_do_not_mix() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                send(&store, a, b, "to bob").await;
                send(&store, a, c, "to carol").await;
                let ab = store
                    .conversation_page(Conversation::direct(a, b), None, 100)
                    .await
                    .unwrap();
                assert_eq!(ab.len(), 1);
                assert_eq!(ab[0].content, "to bob");
            }

            #[tokio::test]
            async fn sync_returns_everything_after_a_message_in_commit_order() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                let first = send(&store, a, b, "first").await;
                send(&store, b, a, "second").await;
                send(&store, b, c, "not for alice").await;
                send(&store, c, a, "third").await;
                let after = store.messages_after(a, first.seq, 10).await.unwrap();
                let texts: Vec<_> = after.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, ["second", "third"]);
                assert_eq!(
                    store.messages_after(a, first.seq, 1).await.unwrap().len(),
                    1
                );
            }

            #[tokio::test]
            async fn the_conversation_list_is_most_recent_first_with_the_last_message() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                send(&store, a, b, "old").await;
                send(&store, c, a, "newer").await;
                send(&store, b, a, "newest").await;
                let list = store.conversations(a, 10).await.unwrap();
                let summary: Vec<_> = list
                    .iter()
                    .map(|d| (d.peer.username.as_str(), d.last.content.as_str()))
                    .collect();
                assert_eq!(summary, [("bob", "newest"), ("carol", "newer")]);
                let for_carol = store.conversations(c, 10).await.unwrap();
                assert_eq!(for_carol.len(), 1);
                assert_eq!(for_carol[0].peer.username, "alice");
            }

            #[tokio::test]
            async fn a_room_is_created_with_its_owner_and_members_or_not_at_all() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let room = store.create_room(new_room(a, &[b]), LIMITS).await.unwrap();
                assert_eq!(room.owner_id(), Some(a));
                assert_eq!(room.members.len(), 2);
                assert_eq!(room.members[0].user.username, "alice");
                assert_eq!(room.members[0].role, Role::Owner);
                assert_eq!(room.members[1].role, Role::Member);
                // An unknown member refuses the whole room.
                let ghost = Uuid::now_v7();
                let bad = new_room(a, &[b, ghost]);
                let bad_id = bad.id;
                assert_eq!(
                    refused(store.create_room(bad, LIMITS).await),
                    Refusal::UnknownUser
                );
                assert!(store.room(bad_id).await.unwrap().is_none());
                // Past the member cap.
                let c = store.create_user("carol", "h").await.unwrap().id;
                let d = store.create_user("dave", "h").await.unwrap().id;
                let e = store.create_user("erin", "h").await.unwrap().id;
                assert_eq!(
                    refused(store.create_room(new_room(c, &[d, e, a, b]), LIMITS).await),
                    Refusal::RoomFull
                );
                // Past the per-user room cap: alice and bob are in one room; a second is fine,
                // a third is not.
                store.create_room(new_room(b, &[a]), LIMITS).await.unwrap();
                assert_eq!(
                    refused(store.create_room(new_room(c, &[a]), LIMITS).await),
                    Refusal::TooManyRooms
                );
                assert_eq!(store.rooms_of(c, 10).await.unwrap().len(), 0);
            }

            #[tokio::test]
            async fn only_the_owner_renames_adds_and_removes_others() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                let room = store.create_room(new_room(a, &[b]), LIMITS).await.unwrap();
                assert_eq!(
                    refused(store.rename_room(room.id, b, "x").await),
                    Refusal::Forbidden
                );
                assert_eq!(
                    refused(store.rename_room(room.id, c, "x").await),
                    Refusal::NotFound
                );
                assert_eq!(
                    store.rename_room(room.id, a, "renamed").await.unwrap().name,
                    "renamed"
                );
                assert_eq!(
                    refused(store.add_members(room.id, b, &[c], LIMITS).await),
                    Refusal::Forbidden
                );
                assert_eq!(
                    refused(store.remove_member(room.id, b, a).await),
                    Refusal::Forbidden
                );
                assert_eq!(
                    refused(store.remove_member(room.id, a, c).await),
                    Refusal::NotAMember
                );
                let (after, added) = store
                    .add_members(room.id, a, &[b, c], LIMITS)
                    .await
                    .unwrap();
                assert_eq!(added, [c], "members already in the room are skipped");
                assert!(
                    after.version > room.version,
                    "a membership change bumps the version"
                );
                let (same, none) = store.add_members(room.id, a, &[c], LIMITS).await.unwrap();
                assert!(none.is_empty());
                assert_eq!(same.version, after.version, "no change, no new version");
            }

            #[tokio::test]
            async fn an_owner_who_leaves_hands_over_and_the_last_member_deletes_the_room() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                let room = store.create_room(new_room(a, &[b]), LIMITS).await.unwrap();
                store.add_members(room.id, a, &[c], LIMITS).await.unwrap();
                let hello = say_in(&store, b, room.id, "hello").await.unwrap();
                match store.remove_member(room.id, a, a).await.unwrap() {
                    Removal::Remains(r) => {
                        assert_eq!(r.owner_id(), Some(b), "earliest member inherits")
                    }
                    Removal::Deleted => panic!("two members remain"),
                }
                match store.remove_member(room.id, b, c).await.unwrap() {
                    Removal::Remains(r) => assert_eq!(r.member_ids(), [b]),
                    Removal::Deleted => panic!("bob remains"),
                }
                assert!(matches!(
                    store.remove_member(room.id, b, b).await.unwrap(),
                    Removal::Deleted
                ));
                assert!(store.room(room.id).await.unwrap().is_none());
                assert!(store.message(hello.message.id).await.unwrap().is_none());
                assert_eq!(
                    refused(store.remove_member(room.id, b, b).await),
                    Refusal::NotFound
                );
            }

            #[tokio::test]
            async fn room_messages_share_seq_order_and_only_members_may_send() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let c = store.create_user("carol", "h").await.unwrap().id;
                let room = store.create_room(new_room(a, &[b]), LIMITS).await.unwrap();
                let first = send(&store, a, b, "direct").await;
                let in_room = say_in(&store, b, room.id, "to the room").await.unwrap();
                assert!(in_room.created);
                assert_eq!(in_room.room_version, Some(room.version));
                assert!(in_room.message.seq > first.seq);
                assert_eq!(in_room.message.to, Recipient::Room(room.id));
                // A non-member is refused, and nothing is stored.
                assert_eq!(
                    refused(say_in(&store, c, room.id, "let me in").await),
                    Refusal::NotFound
                );
                let page = store
                    .conversation_page(Conversation::Room(room.id), None, 100)
                    .await
                    .unwrap();
                let texts: Vec<_> = page.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, ["to the room"]);
                // Sync: members get the room's messages in commit order; others do not.
                let for_alice = store.messages_after(a, 0, 10).await.unwrap();
                let texts: Vec<_> = for_alice.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, ["direct", "to the room"]);
                assert!(store.messages_after(c, 0, 10).await.unwrap().is_empty());
                // After leaving, the room's messages (even their own) are no longer theirs.
                store.remove_member(room.id, b, b).await.unwrap();
                let for_bob = store.messages_after(b, 0, 10).await.unwrap();
                let texts: Vec<_> = for_bob.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, ["direct"]);
                // The list shows the room with its member count and newest message.
                let rooms = store.rooms_of(a, 10).await.unwrap();
                assert_eq!(rooms.len(), 1);
                assert_eq!(rooms[0].member_count, 1);
                assert_eq!(
                    rooms[0].last_message.as_ref().map(|m| m.id),
                    Some(in_room.message.id)
                );
            }

            #[tokio::test]
            async fn the_directory_matches_a_prefix_in_any_case_and_leaves_out_the_caller() {
                let db = $make;
                let store = open(&db).await;
                let (a, _) = two_users(&store).await;
                store.create_user("Alina", "h").await.unwrap();
                store.create_user("al_x", "h").await.unwrap();
                store.create_user("alpha", "h").await.unwrap();
                let names = |users: Vec<nexus_chat::store::User>| {
                    users.into_iter().map(|u| u.username).collect::<Vec<_>>()
                };
                assert_eq!(
                    names(store.users_with_prefix("AL", a, 10).await.unwrap()),
                    ["al_x", "Alina", "alpha"]
                );
                // `_` is a letter of names here, not a wildcard.
                assert_eq!(
                    names(store.users_with_prefix("al_", a, 10).await.unwrap()),
                    ["al_x"]
                );
                assert_eq!(store.users_with_prefix("al", a, 2).await.unwrap().len(), 2);
                assert!(
                    store
                        .users_with_prefix("zz", a, 10)
                        .await
                        .unwrap()
                        .is_empty()
                );
            }

            #[tokio::test]
            async fn a_direct_cursor_only_moves_forward_and_counts_what_is_unread() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let mut sent = Vec::new();
                for i in 0..5 {
                    sent.push(send(&store, a, b, &format!("m{i}")).await);
                }
                let mine = send(&store, b, a, "reply").await;
                let unread = |list: Vec<nexus_chat::store::DirectSummary>| list[0].unread;
                assert_eq!(unread(store.conversations(b, 10).await.unwrap()), 5);
                assert_eq!(unread(store.conversations(a, 10).await.unwrap()), 1);
                let to = |up_to: Uuid| CursorMove {
                    reader: b,
                    of: Recipient::User(a),
                    up_to,
                };
                let moved = store.move_read_cursors(&[to(sent[2].id)]).await.unwrap();
                let cursor = moved[0].expect("a message of the conversation");
                assert!(cursor.moved);
                assert_eq!(cursor.id, sent[2].id);
                assert_eq!(unread(store.conversations(b, 10).await.unwrap()), 2);
                // An older cursor leaves it where it is, and says where that is.
                let back = store.move_read_cursors(&[to(sent[0].id)]).await.unwrap();
                assert_eq!(back[0].map(|c| (c.id, c.moved)), Some((sent[2].id, false)));
                // Reading up to one's own newer message reads everything before it.
                let all = store.move_read_cursors(&[to(mine.id)]).await.unwrap();
                assert_eq!(all[0].map(|c| c.id), Some(mine.id));
                let list = store.conversations(b, 10).await.unwrap();
                assert_eq!(list[0].unread, 0);
                assert_eq!(list[0].peer_read_up_to, None, "alice has read nothing");
                let for_alice = store.conversations(a, 10).await.unwrap();
                assert_eq!(for_alice[0].peer_read_up_to, Some(mine.id));
                // A message of another conversation, or none at all, moves nothing.
                let c = store.create_user("carol", "h").await.unwrap().id;
                let other = send(&store, c, b, "elsewhere").await;
                let foreign = store
                    .move_read_cursors(&[to(other.id), to(Uuid::now_v7())])
                    .await
                    .unwrap();
                assert_eq!(foreign, [None, None]);
            }

            #[tokio::test]
            async fn a_batch_moves_each_cursor_to_its_newest_message_once() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let m1 = send(&store, a, b, "1").await;
                let m2 = send(&store, a, b, "2").await;
                let moves = [m2.id, m1.id, m2.id].map(|up_to| CursorMove {
                    reader: b,
                    of: Recipient::User(a),
                    up_to,
                });
                let out = store.move_read_cursors(&moves).await.unwrap();
                assert!(out.iter().all(|c| c.map(|c| c.id) == Some(m2.id)));
                assert_eq!(store.conversations(b, 10).await.unwrap()[0].unread, 0);
                send(&store, a, b, "3").await;
                assert_eq!(store.conversations(b, 10).await.unwrap()[0].unread, 1);
            }

            #[tokio::test]
            async fn room_cursors_count_the_others_messages_and_show_in_the_room() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let room = store.create_room(new_room(a, &[b]), LIMITS).await.unwrap();
                let mut from_a = Vec::new();
                for i in 0..4 {
                    from_a.push(say_in(&store, a, room.id, &format!("a{i}")).await.unwrap());
                }
                let from_b = say_in(&store, b, room.id, "b").await.unwrap();
                let unread = |rooms: Vec<nexus_chat::store::RoomSummary>| rooms[0].unread;
                assert_eq!(unread(store.rooms_of(b, 10).await.unwrap()), 4);
                assert_eq!(unread(store.rooms_of(a, 10).await.unwrap()), 1);
                let read = |reader: Uuid, up_to: Uuid| CursorMove {
                    reader,
                    of: Recipient::Room(room.id),
                    up_to,
                };
                let out = store
                    .move_read_cursors(&[read(b, from_a[1].message.id)])
                    .await
                    .unwrap();
                assert!(out[0].is_some_and(|c| c.moved));
                assert_eq!(unread(store.rooms_of(b, 10).await.unwrap()), 2);
                store
                    .move_read_cursors(&[read(b, from_b.message.id)])
                    .await
                    .unwrap();
                assert_eq!(unread(store.rooms_of(b, 10).await.unwrap()), 0);
                let members = store.room(room.id).await.unwrap().unwrap().members;
                let cursor_of = |user: Uuid| {
                    members
                        .iter()
                        .find(|m| m.user.id == user)
                        .and_then(|m| m.read_up_to)
                };
                assert_eq!(cursor_of(b), Some(from_b.message.id));
                assert_eq!(cursor_of(a), None);
                // Someone outside the room has no cursor to move.
                let c = store.create_user("carol", "h").await.unwrap().id;
                let out = store
                    .move_read_cursors(&[read(c, from_b.message.id)])
                    .await
                    .unwrap();
                assert_eq!(out, [None]);
            }

            #[tokio::test]
            async fn a_message_is_found_by_id() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let m = send(&store, a, b, "x").await;
                assert_eq!(store.message(m.id).await.unwrap().unwrap(), m);
                assert!(store.message(Uuid::now_v7()).await.unwrap().is_none());
            }

            #[tokio::test]
            async fn disabling_enabling_and_deleting_are_logged_in_order() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                assert!(
                    store.access_changes_after(0, 100).await.unwrap().is_empty(),
                    "registrations are not logged"
                );
                let first = store.set_disabled("ALICE", true).await.unwrap().unwrap();
                assert!(first.changed);
                assert_eq!(first.user.id, a);
                assert!(
                    !store
                        .set_disabled("alice", true)
                        .await
                        .unwrap()
                        .unwrap()
                        .changed
                );
                assert!(store.credentials("alice").await.unwrap().unwrap().disabled);
                assert!(!store.credentials("bob").await.unwrap().unwrap().disabled);
                assert!(
                    store
                        .set_disabled("alice", false)
                        .await
                        .unwrap()
                        .unwrap()
                        .changed
                );
                assert!(!store.credentials("alice").await.unwrap().unwrap().disabled);
                assert!(store.set_disabled("nobody", true).await.unwrap().is_none());
                // A row deleted by hand is logged too (by the trigger).
                db.execute(&format!("DELETE FROM users WHERE id = '{b}'"))
                    .await;
                let log = store.access_changes_after(0, 100).await.unwrap();
                let seen: Vec<(Uuid, bool)> = log.iter().map(|c| (c.user, c.revoked)).collect();
                assert_eq!(seen, vec![(a, true), (a, false), (b, true)]);
                assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
                let after_first = store.access_changes_after(log[0].seq, 1).await.unwrap();
                assert_eq!(after_first, vec![log[1]]);
                // The same account imported again gets its access back.
                store
                    .import_users(&[ImportedUser {
                        id: b,
                        username: "bob".into(),
                        password_hash: "hash-b".into(),
                        created_at: chrono::Utc::now(),
                    }])
                    .await
                    .unwrap();
                let last: Vec<AccessChange> =
                    store.access_changes_after(log[2].seq, 10).await.unwrap();
                assert_eq!(last.len(), 1);
                assert_eq!((last[0].user, last[0].revoked), (b, false));
            }
        }
    };
}

conformance!(sqlite, TestDb::sqlite());
conformance!(postgres, TestDb::postgres().await);
