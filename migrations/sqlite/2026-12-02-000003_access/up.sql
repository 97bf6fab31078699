-- Access: the same log of account access changes as the PostgreSQL migration (see it for the
-- reasoning). SQLite has one writer, so rowid order is commit order without a lock.
ALTER TABLE users ADD COLUMN disabled_at TEXT;

CREATE TABLE access_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id    TEXT NOT NULL,
    revoked    BOOLEAN NOT NULL,
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX access_changes_user_idx ON access_changes (user_id);

CREATE TRIGGER users_access_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO access_changes (user_id, revoked) VALUES (OLD.id, 1);
END;
CREATE TRIGGER users_access_changed AFTER UPDATE OF disabled_at ON users
    WHEN (OLD.disabled_at IS NULL) <> (NEW.disabled_at IS NULL)
BEGIN
    INSERT INTO access_changes (user_id, revoked) VALUES (NEW.id, NEW.disabled_at IS NOT NULL);
END;
CREATE TRIGGER users_access_inserted AFTER INSERT ON users
    WHEN EXISTS (SELECT 1 FROM access_changes WHERE user_id = NEW.id)
BEGIN
    INSERT INTO access_changes (user_id, revoked) VALUES (NEW.id, NEW.disabled_at IS NOT NULL);
END;
