ALTER TABLE conversations RESET (fillfactor);
CREATE INDEX conversations_owner_recent_idx ON conversations (owner_id, last_seq DESC);
