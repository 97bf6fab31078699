-- Read state. Each participant's read cursor (`read_seq`: the latest message it has read) sits on
-- its own row: `conversations` for a direct pair (one row per side), `room_members` for a room.
--
-- Unread counts are kept as counters instead of being counted at read time, so that the
-- conversation list costs the same with 10 or 100,000 messages per conversation:
--   direct: unread = received - received_read
--     received:      messages the owner received from the peer (raised by the group commit)
--     received_read: of those, how many are at or before read_seq (raised as the cursor moves,
--                    by the messages between the old and the new cursor)
--   room:   unread = (rooms.message_count - seen) - (sent - sent_seen)
--     rooms.message_count: messages in the room;  sent: the member's own messages
--     seen / sent_seen:    of those, how many are at or before read_seq
ALTER TABLE conversations
    ADD COLUMN read_seq      BIGINT,
    ADD COLUMN received      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN received_read BIGINT NOT NULL DEFAULT 0;
UPDATE conversations c SET received = (
    SELECT count(*) FROM messages m
    WHERE m.room_id IS NULL AND m.sender_id = c.peer_id AND m.receiver_id = c.owner_id);

ALTER TABLE rooms ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
UPDATE rooms r SET message_count = (SELECT count(*) FROM messages m WHERE m.room_id = r.id);

ALTER TABLE room_members
    ADD COLUMN read_seq  BIGINT,
    ADD COLUMN sent      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN seen      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sent_seen BIGINT NOT NULL DEFAULT 0;
UPDATE room_members rm SET sent = (
    SELECT count(*) FROM messages m WHERE m.room_id = rm.room_id AND m.sender_id = rm.user_id);
-- Every room message updates its sender's row (`sent`): leave room for in-place (HOT) updates,
-- as for `conversations`.
ALTER TABLE room_members SET (fillfactor = 50);

-- What was sent before this upgrade counts as read: nobody comes back to a thousand unread.
UPDATE conversations SET read_seq = last_seq, received_read = received;
UPDATE room_members rm SET read_seq = r.last_seq, seen = r.message_count, sent_seen = rm.sent
FROM rooms r WHERE r.id = rm.room_id AND r.last_seq IS NOT NULL;
