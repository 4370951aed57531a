-- The console's people and machines: users with hashed passwords and roles, sessions with an
-- expiry, API keys (only a SHA-256 of the secret is kept), and the append-only audit log of
-- every case, alert, blocklist and user action.

CREATE TABLE IF NOT EXISTS console_users (
    name           text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    role           text        NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);

CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash  bytea       PRIMARY KEY,
    user_name   text        NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_expiry_idx ON console_sessions (expires_at);

CREATE TABLE IF NOT EXISTS console_api_keys (
    key_id      text        PRIMARY KEY,
    secret_hash bytea       NOT NULL,
    user_name   text        NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS audit_log (
    audit_id     bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,
    action       text        NOT NULL,
    target_kind  text        NOT NULL,
    target_id    text        NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (target_kind, target_id, at);

CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
