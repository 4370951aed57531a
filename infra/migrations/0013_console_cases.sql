-- The review queue and alert triage. Every MANUAL_REVIEW decision becomes a case as it is
-- stored (a statement trigger over the inserted rows, so a redelivered decision opens no
-- second case and cases survive any restart); alerts get a state with who and when.

CREATE TABLE IF NOT EXISTS review_cases (
    purchase_id   text             PRIMARY KEY,
    occurred_at   timestamptz      NOT NULL,  -- the purchase's event time (decision key)
    wallet        text             NOT NULL,
    score         double precision NOT NULL,
    opened_at     timestamptz      NOT NULL,  -- when the decision was made
    state         text             NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'claimed', 'closed')),
    claimed_by    text,
    claimed_at    timestamptz,
    outcome       text CHECK (outcome IN ('fraud', 'legit')),
    closed_by     text,
    closed_at     timestamptz,
    CHECK ((state = 'open') = (claimed_by IS NULL)),
    CHECK ((state = 'closed') = (outcome IS NOT NULL AND closed_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS review_cases_queue_idx ON review_cases (opened_at)
    WHERE state <> 'closed';
CREATE INDEX IF NOT EXISTS review_cases_closed_idx ON review_cases (closed_at)
    WHERE state = 'closed';

CREATE OR REPLACE FUNCTION review_cases_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_cases (purchase_id, occurred_at, wallet, score, opened_at)
    SELECT purchase_id, occurred_at, wallet, score, decided_at FROM new_rows
    WHERE decision = 'MANUAL_REVIEW'
    ON CONFLICT (purchase_id) DO NOTHING;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS decisions_open_cases ON decisions;
CREATE TRIGGER decisions_open_cases AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION review_cases_open();

-- Alerts without a row here are open.
CREATE TABLE IF NOT EXISTS alert_states (
    alert_id         text        PRIMARY KEY,
    state            text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    resolved_by      text,
    resolved_at      timestamptz,
    note             text
);
