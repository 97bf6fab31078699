DROP TRIGGER users_access_inserted ON users;
DROP TRIGGER users_access_changed ON users;
DROP TRIGGER users_access_deleted ON users;
DROP FUNCTION log_access_change();
DROP TABLE access_changes;
ALTER TABLE users DROP COLUMN disabled_at;
