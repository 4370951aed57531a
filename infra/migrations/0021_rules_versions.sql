-- Deployed rules files: every version with its text and backtest summary, and every
-- deployment (deploy, rollback) in order. `sentinel rules deploy|history|rollback`.
CREATE TABLE IF NOT EXISTS rules_versions (
    version     text        PRIMARY KEY,
    sha256      text        NOT NULL,
    body        text        NOT NULL,
    backtest    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rules_deployments (
    id           bigserial   PRIMARY KEY,
    version      text        NOT NULL REFERENCES rules_versions (version),
    action       text        NOT NULL CHECK (action IN ('deploy', 'rollback')),
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    deployed_by  text
);
