-- Accounts. Usernames are unique without regard to case; the original spelling is kept for display.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- Group rooms are not built yet; the table exists so messages can reference one later
-- without a disruptive migration.
CREATE TABLE rooms (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages. `seq` is assigned inside a transaction that holds a cluster-wide advisory lock, so
-- seq order is commit order: `message:sync` (seq > cursor) can never skip a message that committed
-- late. `id` is the public, time-ordered UUID v7. `peer_lo`/`peer_hi` are the two participants of a
-- direct conversation in canonical order, so one index serves "the latest N between two users" and
-- "the N before message X" as a single range scan.
CREATE TABLE messages (
    seq           BIGSERIAL PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    sender_id     UUID NOT NULL REFERENCES users (id),
    receiver_id   UUID NOT NULL REFERENCES users (id),
    room_id       UUID REFERENCES rooms (id),
    peer_lo       UUID NOT NULL,
    peer_hi       UUID NOT NULL,
    content       TEXT NOT NULL,
    client_msg_id TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (peer_lo, peer_hi, seq);
CREATE INDEX messages_sender_seq_idx ON messages (sender_id, seq);
CREATE INDEX messages_receiver_seq_idx ON messages (receiver_id, seq);
-- A retried send (same sender, same clientMsgId) must find the original instead of storing twice.
CREATE UNIQUE INDEX messages_sender_client_msg_key ON messages (sender_id, client_msg_id);

-- One row per (owner, peer): the newest message between them. Kept up to date in the same
-- transaction as the insert, so the conversation list is an index scan, not an aggregate.
CREATE TABLE conversations (
    owner_id UUID NOT NULL REFERENCES users (id),
    peer_id  UUID NOT NULL REFERENCES users (id),
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (owner_id, peer_id)
);
CREATE INDEX conversations_owner_recent_idx ON conversations (owner_id, last_seq DESC);
