-- Every stored message moves two conversation rows to its seq. With an index on last_seq each of
-- those updates wrote a new tuple plus two index entries; without it, and with room left on each
-- page, PostgreSQL updates the row in place (a HOT update: no index write at all). The
-- conversation list reads a user's rows through the primary key (owner_id, peer_id) and sorts
-- them, which is cheap for any realistic number of conversations per user.
DROP INDEX conversations_owner_recent_idx;
ALTER TABLE conversations SET (fillfactor = 50);
