-- Group rooms; see the PostgreSQL migration for the model. SQLite cannot drop a NOT NULL
-- constraint, so `messages` is rebuilt with a nullable `receiver_id` (rows and seq kept).
ALTER TABLE rooms ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rooms ADD COLUMN last_seq BIGINT;

CREATE TABLE room_members (
    room_id   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id),
    role      TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user_idx ON room_members (user_id, room_id);

CREATE TABLE messages_rebuilt (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    id            TEXT NOT NULL UNIQUE,
    sender_id     TEXT NOT NULL REFERENCES users (id),
    receiver_id   TEXT REFERENCES users (id),
    room_id       TEXT REFERENCES rooms (id),
    peer_lo       TEXT NOT NULL,
    peer_hi       TEXT NOT NULL,
    content       TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT NOT NULL,
    CHECK ((receiver_id IS NULL) <> (room_id IS NULL))
);
INSERT INTO messages_rebuilt (seq, id, sender_id, receiver_id, room_id, peer_lo, peer_hi, content,
                              client_msg_id, created_at)
    SELECT seq, id, sender_id, receiver_id, room_id, peer_lo, peer_hi, content, client_msg_id,
           created_at
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX messages_conversation_idx ON messages (peer_lo, peer_hi, seq);
CREATE INDEX messages_sender_seq_idx ON messages (sender_id, seq);
CREATE INDEX messages_receiver_seq_idx ON messages (receiver_id, seq);
CREATE UNIQUE INDEX messages_sender_client_msg_key ON messages (sender_id, client_msg_id);
CREATE INDEX messages_room_seq_idx ON messages (room_id, seq) WHERE room_id IS NOT NULL;
