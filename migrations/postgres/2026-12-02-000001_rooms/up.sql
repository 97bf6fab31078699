-- Group rooms. A room message lives in `messages` beside direct messages, in the same `seq`
-- order, so `message:sync` keeps one cursor: it has `room_id` set and no `receiver_id`, and its
-- conversation key (`peer_lo`, `peer_hi`) is the room's id twice, so the conversation index and
-- every history query serve rooms unchanged.
--
-- `version` counts membership changes: each one bumps it in the same transaction, and every room
-- message's insert reads it, so an instance can tell whether the member list it holds in memory
-- is the one the message was committed under.
ALTER TABLE rooms
    ADD COLUMN version  BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN last_seq BIGINT;

CREATE TABLE room_members (
    room_id   UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   UUID NOT NULL REFERENCES users (id),
    role      TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- "The rooms of a user": the conversation list, sync, the per-user room cap.
CREATE INDEX room_members_user_idx ON room_members (user_id, room_id);

ALTER TABLE messages ALTER COLUMN receiver_id DROP NOT NULL;
ALTER TABLE messages ADD CONSTRAINT messages_direct_or_room
    CHECK ((receiver_id IS NULL) <> (room_id IS NULL));
-- Sync reads a user's room messages by room and seq.
CREATE INDEX messages_room_seq_idx ON messages (room_id, seq) WHERE room_id IS NOT NULL;

-- The user directory (GET /api/users?q=) matches a prefix of the lower-cased name.
CREATE INDEX users_username_lower_prefix_idx ON users (lower(username) text_pattern_ops);
