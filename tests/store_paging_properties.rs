//! Property: paging back through a conversation with `before` cursors, or forward with
//! `messages_after`, returns every message exactly once, in order, whatever the page size and
//! however the messages are split between the two directions and interleaved with another
//! conversation. Runs on the embedded SQLite backend (the conformance suite covers both).

mod common;

use common::TestDb;
use nexus_chat::store::{Conversation, NewMessage, Recipient, Store};
use proptest::prelude::*;

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn cursors_visit_every_message_once_in_order(
        directions in prop::collection::vec(0u8..3, 0..60),
        page in 1usize..12,
        batch in 1usize..8,
    ) {
        run(async move {
            let db = TestDb::sqlite();
            let store = Store::connect(&db.config()).await.unwrap();
            store.migrate().await.unwrap();
            let a = store.create_user("alice", "h").await.unwrap().id;
            let b = store.create_user("bob", "h").await.unwrap().id;
            let c = store.create_user("carol", "h").await.unwrap().id;
            // 0: a→b, 1: b→a, 2: a→c (another conversation, must never show up).
            let all: Vec<NewMessage> = directions
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    0 => NewMessage::new(a, Recipient::User(b), format!("m{i}"), None),
                    1 => NewMessage::new(b, Recipient::User(a), format!("m{i}"), None),
                    _ => NewMessage::new(a, Recipient::User(c), format!("m{i}"), None),
                })
                .collect();
            for chunk in all.chunks(batch) {
                store.insert_messages(chunk).await.unwrap();
            }
            let expected: Vec<String> = all
                .iter()
                .filter(|m| m.receiver_id() != Some(c))
                .map(|m| m.content.clone())
                .collect();

            // Backwards with `before`.
            let mut back = Vec::new();
            let mut cursor = None;
            loop {
                let got = store.conversation_page(Conversation::direct(a, b), cursor, page).await.unwrap();
                if got.is_empty() {
                    break;
                }
                cursor = Some(got[0].seq);
                back.splice(0..0, got.into_iter().map(|m| m.content));
            }
            assert_eq!(back, expected);

            // Forwards with `messages_after`, as bob (sees only a↔b).
            let mut forward = Vec::new();
            let mut after = 0;
            loop {
                let got = store.messages_after(b, after, page).await.unwrap();
                if got.is_empty() {
                    break;
                }
                after = got.last().unwrap().seq;
                forward.extend(got.into_iter().map(|m| m.content));
            }
            assert_eq!(forward, expected);
        });
    }
}
