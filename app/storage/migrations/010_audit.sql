-- The audit log: append-only, each entry chained to the one before by an HMAC (app.storage.audit).
-- Rows are never updated or deleted; the trigger refuses it (the chain shows it if it is done
-- anyway, with the trigger switched off).
CREATE TABLE audit_log (
    seq       bigint      NOT NULL PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,  -- who: "secret key 1a2b3c4d", "cli", "guardrail", "process"
    action    text        NOT NULL,  -- what: "layouts.loaded", "key.created", "user.viewed"...
    tenant_id text,                  -- whose data, when it is one tenant's
    subject   text,                  -- a pseudonymous id of the user concerned, when one is
    detail    jsonb       NOT NULL,
    dedupe    text,                  -- entries with one are written once (a version loaded...)
    prev_hash text        NOT NULL,
    hash      text        NOT NULL
);
CREATE UNIQUE INDEX audit_log_dedupe ON audit_log (dedupe) WHERE dedupe IS NOT NULL;
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
