-- Access. An operator disables an account (`nexus-chat user disable <name>` sets `disabled_at`)
-- or deletes its row; either way its tokens must stop working on every instance, although a
-- token is checked without reading the database. So every change of an account's access is
-- logged here by triggers (whoever makes it: the CLI, or SQL typed by hand), and each instance
-- polls the log for rows after the last one it has seen, keeping the revoked ids in memory.
-- `seq` is assigned under a transaction lock, so seq order is commit order and a poller never
-- skips a row that committed late (the same rule as `messages.seq`).
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;

CREATE TABLE access_changes (
    seq        BIGSERIAL PRIMARY KEY,
    user_id    UUID NOT NULL,
    revoked    BOOLEAN NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX access_changes_user_idx ON access_changes (user_id);

CREATE FUNCTION log_access_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock(7415946723);
        INSERT INTO access_changes (user_id, revoked) VALUES (OLD.id, TRUE);
        RETURN OLD;
    END IF;
    -- A new account is logged only when its id was revoked before (an account deleted and
    -- then imported again), so registrations do not fill the log.
    IF TG_OP = 'INSERT'
       AND NOT EXISTS (SELECT 1 FROM access_changes WHERE user_id = NEW.id) THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(7415946723);
    INSERT INTO access_changes (user_id, revoked) VALUES (NEW.id, NEW.disabled_at IS NOT NULL);
    RETURN NEW;
END
$$;

CREATE TRIGGER users_access_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION log_access_change();
CREATE TRIGGER users_access_changed AFTER UPDATE OF disabled_at ON users
    FOR EACH ROW WHEN ((OLD.disabled_at IS NULL) <> (NEW.disabled_at IS NULL))
    EXECUTE FUNCTION log_access_change();
CREATE TRIGGER users_access_inserted AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION log_access_change();
