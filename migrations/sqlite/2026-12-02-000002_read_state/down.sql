ALTER TABLE room_members DROP COLUMN sent_seen;
ALTER TABLE room_members DROP COLUMN seen;
ALTER TABLE room_members DROP COLUMN sent;
ALTER TABLE room_members DROP COLUMN read_seq;
ALTER TABLE rooms DROP COLUMN message_count;
ALTER TABLE conversations DROP COLUMN received_read;
ALTER TABLE conversations DROP COLUMN received;
ALTER TABLE conversations DROP COLUMN read_seq;
