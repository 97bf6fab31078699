DROP TRIGGER users_access_inserted;
DROP TRIGGER users_access_changed;
DROP TRIGGER users_access_deleted;
DROP TABLE access_changes;
ALTER TABLE users DROP COLUMN disabled_at;
