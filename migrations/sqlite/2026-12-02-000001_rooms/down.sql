DROP INDEX messages_room_seq_idx;
DELETE FROM messages WHERE room_id IS NOT NULL;
DROP TABLE room_members;
ALTER TABLE rooms DROP COLUMN last_seq;
ALTER TABLE rooms DROP COLUMN version;
