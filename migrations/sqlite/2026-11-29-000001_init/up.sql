-- Same model as the PostgreSQL migration (see it for the reasoning); UUIDs are stored as their
-- hyphenated text, timestamps as RFC 3339 text. SQLite has one writer, so rowid order is commit order.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

CREATE TABLE rooms (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    id            TEXT NOT NULL UNIQUE,
    sender_id     TEXT NOT NULL REFERENCES users (id),
    receiver_id   TEXT NOT NULL REFERENCES users (id),
    room_id       TEXT REFERENCES rooms (id),
    peer_lo       TEXT NOT NULL,
    peer_hi       TEXT NOT NULL,
    content       TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (peer_lo, peer_hi, seq);
CREATE INDEX messages_sender_seq_idx ON messages (sender_id, seq);
CREATE INDEX messages_receiver_seq_idx ON messages (receiver_id, seq);
CREATE UNIQUE INDEX messages_sender_client_msg_key ON messages (sender_id, client_msg_id);

CREATE TABLE conversations (
    owner_id TEXT NOT NULL REFERENCES users (id),
    peer_id  TEXT NOT NULL REFERENCES users (id),
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (owner_id, peer_id)
);
CREATE INDEX conversations_owner_recent_idx ON conversations (owner_id, last_seq DESC);
