-- Per-minute rollups the console reads instead of scanning raw rows (each answer stays fast
-- with millions of decisions). Inserting decisions, purchases or labels marks their minutes
-- dirty (statement triggers over the inserted rows, so a redelivered batch that inserts
-- nothing marks nothing); console_refresh_rollups() recomputes dirty minutes from the raw
-- rows, so a recompute is idempotent and a minute's numbers are exact once refreshed.
--
-- The mark is an upsert that takes the row lock: a refresher (FOR UPDATE SKIP LOCKED) never
-- consumes a mark whose writing transaction is still open, so it never misses its rows.

CREATE TABLE IF NOT EXISTS console_dirty_minutes (
    minute  timestamptz NOT NULL,
    kind    text        NOT NULL CHECK (kind IN ('decisions', 'labels')),
    marks   bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, minute)
);

CREATE TABLE IF NOT EXISTS console_minute (
    minute              timestamptz PRIMARY KEY,
    decisions           integer          NOT NULL,
    approved            integer          NOT NULL,
    require_2fa         integer          NOT NULL,
    manual_review       integer          NOT NULL,
    blocked             integer          NOT NULL,
    latency_ms_sum      double precision NOT NULL,
    model_flagged       integer          NOT NULL,  -- model_score above the review threshold
    challenger_scored   integer          NOT NULL,
    challenger_flagged  integer          NOT NULL,
    flags_agree         integer          NOT NULL   -- champion and challenger flag alike
);

-- Histograms per minute: kind 'score' (20 buckets of 0.05) and 'latency' (bucket b holds
-- latencies in [0.1 * 1.1^b, 0.1 * 1.1^(b+1)) ms).
CREATE TABLE IF NOT EXISTS console_minute_hist (
    minute  timestamptz NOT NULL,
    kind    text        NOT NULL,
    bucket  smallint    NOT NULL,
    n       integer     NOT NULL,
    PRIMARY KEY (kind, minute, bucket)
);

-- Purchases and approved revenue per minute and currency (minor units).
CREATE TABLE IF NOT EXISTS console_minute_revenue (
    minute          timestamptz NOT NULL,
    currency        char(3)     NOT NULL,
    purchases       integer     NOT NULL,
    approved        integer     NOT NULL,
    approved_minor  bigint      NOT NULL,
    PRIMARY KEY (minute, currency)
);

-- Labels by the minute they arrived, against the decision of their purchase.
CREATE TABLE IF NOT EXISTS console_label_minute (
    minute           timestamptz NOT NULL,
    decision         text        NOT NULL,
    is_fraud         boolean     NOT NULL,
    model_flag       boolean     NOT NULL,
    challenger_flag  smallint    NOT NULL,  -- -1: no challenger score, 0/1 its flag
    n                integer     NOT NULL,
    PRIMARY KEY (minute, decision, is_fraud, model_flag, challenger_flag)
);

-- Feature drift per hour and feature, against the model's training distribution (written by
-- the console's refresher, which samples the hour's decisions).
CREATE TABLE IF NOT EXISTS console_drift_hour (
    hour           timestamptz      NOT NULL,
    model_version  text             NOT NULL,
    feature        text             NOT NULL,
    psi            double precision NOT NULL,
    n              integer          NOT NULL,
    PRIMARY KEY (hour, model_version, feature)
);

CREATE OR REPLACE FUNCTION console_mark_minutes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO console_dirty_minutes (kind, minute)
    SELECT DISTINCT TG_ARGV[0], date_trunc('minute', occurred_at) FROM new_rows
    ORDER BY 2
    ON CONFLICT (kind, minute) DO UPDATE SET marks = console_dirty_minutes.marks + 1;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS decisions_mark_minutes ON decisions;
CREATE TRIGGER decisions_mark_minutes AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console_mark_minutes('decisions');
DROP TRIGGER IF EXISTS purchases_mark_minutes ON purchases;
CREATE TRIGGER purchases_mark_minutes AFTER INSERT ON purchases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console_mark_minutes('decisions');
DROP TRIGGER IF EXISTS labels_mark_minutes ON labels;
CREATE TRIGGER labels_mark_minutes AFTER INSERT ON labels
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION console_mark_minutes('labels');

CREATE OR REPLACE FUNCTION console_latency_bucket(ms double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE AS $$
    SELECT least(200, greatest(0, floor(ln(greatest(ms, 0.1) / 0.1) / ln(1.1))))::smallint
$$;

-- Take (lock and delete) up to max_minutes dirty minutes of a kind, newest first; a mark
-- whose writer has not committed is locked by it and skipped until it has.
CREATE OR REPLACE FUNCTION console_take_dirty(which text, max_minutes integer)
RETURNS timestamptz[] LANGUAGE plpgsql AS $$
DECLARE
    todo timestamptz[];
BEGIN
    SELECT array_agg(minute) INTO todo FROM (
        SELECT minute FROM console_dirty_minutes WHERE kind = which
        ORDER BY minute DESC LIMIT max_minutes FOR UPDATE SKIP LOCKED) s;
    DELETE FROM console_dirty_minutes WHERE kind = which AND minute = ANY (todo);
    RETURN todo;
END;
$$;

-- Recompute the decision minutes marked dirty (at most max_minutes, newest first).
CREATE OR REPLACE FUNCTION console_refresh_decision_minutes(
    max_minutes integer, review double precision
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    todo timestamptz[];
BEGIN
    todo := console_take_dirty('decisions', max_minutes);
    IF todo IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM console_minute WHERE minute = ANY (todo);
    DELETE FROM console_minute_hist WHERE minute = ANY (todo);
    DELETE FROM console_minute_revenue WHERE minute = ANY (todo);
    CREATE TEMP TABLE IF NOT EXISTS console_todo_rows (
        minute timestamptz, decision text, score double precision, model_score double precision,
        latency_ms double precision, challenger_score double precision
    ) ON COMMIT DROP;
    TRUNCATE console_todo_rows;
    INSERT INTO console_todo_rows
    SELECT m, d.decision, d.score, d.model_score, d.latency_ms, d.challenger_score
    FROM unnest(todo) AS m, LATERAL (
        SELECT decision, score, model_score, latency_ms, challenger_score FROM decisions
        WHERE occurred_at >= m AND occurred_at < m + interval '1 minute') d;
    INSERT INTO console_minute
    SELECT minute, count(*),
        count(*) FILTER (WHERE decision = 'APPROVED'),
        count(*) FILTER (WHERE decision = 'REQUIRE_2FA'),
        count(*) FILTER (WHERE decision = 'MANUAL_REVIEW'),
        count(*) FILTER (WHERE decision = 'BLOCKED'),
        coalesce(sum(latency_ms), 0),
        count(*) FILTER (WHERE model_score > review),
        count(challenger_score),
        count(*) FILTER (WHERE challenger_score > review),
        count(*) FILTER (WHERE challenger_score IS NOT NULL
                         AND (challenger_score > review) = (model_score > review))
    FROM console_todo_rows GROUP BY minute;
    INSERT INTO console_minute_hist
    SELECT minute, 'score', least(19, greatest(0, floor(score * 20)))::smallint, count(*)
    FROM console_todo_rows GROUP BY 1, 3
    UNION ALL
    SELECT minute, 'latency', console_latency_bucket(latency_ms), count(*)
    FROM console_todo_rows GROUP BY 1, 3;
    INSERT INTO console_minute_revenue
    SELECT m, p.currency, count(*), count(*) FILTER (WHERE d.decision = 'APPROVED'),
        coalesce(sum(p.unit_price_minor * p.quantity) FILTER (WHERE d.decision = 'APPROVED'), 0)
    FROM unnest(todo) AS m, LATERAL (
        SELECT purchase_id, occurred_at, currency, unit_price_minor, quantity FROM purchases
        WHERE occurred_at >= m AND occurred_at < m + interval '1 minute') p
    LEFT JOIN decisions d ON d.purchase_id = p.purchase_id AND d.occurred_at = p.occurred_at
    GROUP BY 1, 2;
    RETURN cardinality(todo);
END;
$$;

-- Recompute the label minutes marked dirty: each label against its purchase's decision.
CREATE OR REPLACE FUNCTION console_refresh_label_minutes(
    max_minutes integer, review double precision
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    todo timestamptz[];
BEGIN
    todo := console_take_dirty('labels', max_minutes);
    IF todo IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM console_label_minute WHERE minute = ANY (todo);
    INSERT INTO console_label_minute
    SELECT m, d.decision, l.is_fraud, d.model_score > review,
        CASE WHEN d.challenger_score IS NULL THEN -1
             WHEN d.challenger_score > review THEN 1 ELSE 0 END,
        count(*)
    FROM unnest(todo) AS m, LATERAL (
        SELECT purchase_id, is_fraud FROM labels
        WHERE occurred_at >= m AND occurred_at < m + interval '1 minute') l,
    LATERAL (
        SELECT decision, model_score, challenger_score FROM decisions
        WHERE purchase_id = l.purchase_id ORDER BY decided_at DESC LIMIT 1) d
    GROUP BY 1, 2, 3, 4, 5;
    RETURN cardinality(todo);
END;
$$;
