DROP INDEX users_username_lower_prefix_idx;
DROP INDEX messages_room_seq_idx;
DELETE FROM messages WHERE room_id IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_direct_or_room;
ALTER TABLE messages ALTER COLUMN receiver_id SET NOT NULL;
DROP TABLE room_members;
ALTER TABLE rooms DROP COLUMN last_seq, DROP COLUMN version;
