//! One conformance suite for the storage API, run against both backends: every test gets a fresh
//! PostgreSQL database or SQLite file.

mod common;

use common::TestDb;
use nexus_chat::store::{NewMessage, Store, StoreError};
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
    let msg = NewMessage::new(from, to, text.into(), None);
    store.insert_messages(&[msg]).await.unwrap().remove(0).0
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
                    .map(|i| NewMessage::new(a, b, format!("m{i}"), Some(format!("c{i}"))))
                    .collect();
                let stored = store.insert_messages(&batch).await.unwrap();
                assert_eq!(stored.len(), 50);
                assert!(stored.iter().all(|(_, created)| *created));
                for pair in stored.windows(2) {
                    assert!(pair[0].0.seq < pair[1].0.seq);
                }
                for (input, (out, _)) in batch.iter().zip(&stored) {
                    assert_eq!(input.id, out.id);
                    assert_eq!(input.content, out.content);
                    assert_eq!(input.created_at, out.created_at);
                }
            }

            #[tokio::test]
            async fn a_retried_client_message_id_returns_the_original() {
                let db = $make;
                let store = open(&db).await;
                let (a, b) = two_users(&store).await;
                let first = NewMessage::new(a, b, "hello".into(), Some("retry-1".into()));
                let (original, created) = store.insert_messages(&[first]).await.unwrap().remove(0);
                assert!(created);
                // The retry (new id, same clientMsgId) and a twin in one batch both map to it.
                let retry = NewMessage::new(a, b, "hello".into(), Some("retry-1".into()));
                let twin = NewMessage::new(a, b, "hello".into(), Some("retry-1".into()));
                let out = store.insert_messages(&[retry, twin]).await.unwrap();
                assert!(
                    out.iter()
                        .all(|(m, created)| m.id == original.id && !created)
                );
                // The same clientMsgId from another sender is a different message.
                let other = NewMessage::new(b, a, "hi".into(), Some("retry-1".into()));
                assert!(store.insert_messages(&[other]).await.unwrap()[0].1);
                let page = store.conversation_page(a, b, None, 100).await.unwrap();
                assert_eq!(page.len(), 2);
                // Two new messages with one new clientMsgId in one batch: the first is stored,
                // the second maps to it.
                let x = NewMessage::new(a, b, "x".into(), Some("twin-1".into()));
                let y = NewMessage::new(a, b, "y".into(), Some("twin-1".into()));
                let x_id = x.id;
                let out = store.insert_messages(&[x, y]).await.unwrap();
                assert!(out[0].1 && !out[1].1, "first stored, second a retry");
                assert!(out.iter().all(|(m, _)| m.id == x_id && m.content == "x"));
                let page = store.conversation_page(a, b, None, 100).await.unwrap();
                assert_eq!(page.len(), 3);
                let list = store.conversations(b, 10).await.unwrap();
                assert_eq!(
                    list[0].1.id, x_id,
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
                let latest = store.conversation_page(b, a, None, 10).await.unwrap();
                let texts: Vec<_> = latest.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts, (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
                let mut all = latest.clone();
                let mut cursor = latest[0].seq;
                loop {
                    let page = store
                        .conversation_page(a, b, Some(cursor), 10)
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
                let ab = store.conversation_page(a, b, None, 100).await.unwrap();
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
                    .map(|(u, m)| (u.username.as_str(), m.content.as_str()))
                    .collect();
                assert_eq!(summary, [("bob", "newest"), ("carol", "newer")]);
                let for_carol = store.conversations(c, 10).await.unwrap();
                assert_eq!(for_carol.len(), 1);
                assert_eq!(for_carol[0].0.username, "alice");
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
        }
    };
}

conformance!(sqlite, TestDb::sqlite());
conformance!(postgres, TestDb::postgres().await);
