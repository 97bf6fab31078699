ALTER TABLE room_members RESET (fillfactor);
ALTER TABLE room_members DROP COLUMN sent_seen, DROP COLUMN seen, DROP COLUMN sent, DROP COLUMN read_seq;
ALTER TABLE rooms DROP COLUMN message_count;
ALTER TABLE conversations DROP COLUMN received_read, DROP COLUMN received, DROP COLUMN read_seq;
