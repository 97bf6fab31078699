-- Read state; see the PostgreSQL migration for the model.
ALTER TABLE conversations ADD COLUMN read_seq BIGINT;
ALTER TABLE conversations ADD COLUMN received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN received_read BIGINT NOT NULL DEFAULT 0;
UPDATE conversations SET received = (
    SELECT count(*) FROM messages m
    WHERE m.room_id IS NULL AND m.sender_id = conversations.peer_id
      AND m.receiver_id = conversations.owner_id);

ALTER TABLE rooms ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
UPDATE rooms SET message_count = (SELECT count(*) FROM messages m WHERE m.room_id = rooms.id);

ALTER TABLE room_members ADD COLUMN read_seq BIGINT;
ALTER TABLE room_members ADD COLUMN sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN seen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN sent_seen BIGINT NOT NULL DEFAULT 0;
UPDATE room_members SET sent = (
    SELECT count(*) FROM messages m
    WHERE m.room_id = room_members.room_id AND m.sender_id = room_members.user_id);

-- What was sent before this upgrade counts as read (see the PostgreSQL migration).
UPDATE conversations SET read_seq = last_seq, received_read = received;
UPDATE room_members SET
    read_seq = (SELECT r.last_seq FROM rooms r WHERE r.id = room_members.room_id),
    seen = (SELECT r.message_count FROM rooms r WHERE r.id = room_members.room_id),
    sent_seen = sent
WHERE (SELECT r.last_seq FROM rooms r WHERE r.id = room_members.room_id) IS NOT NULL;
