-- Hourly rollups summed from the per-minute ones (0012), so that a day-long KPI window reads 24
-- rows per series instead of 1 440. Recomputed for the hours of every minute the refresher
-- recomputes; hours are UTC hours.

CREATE TABLE IF NOT EXISTS console_hour (
    hour                timestamptz      PRIMARY KEY,
    decisions           integer          NOT NULL,
    approved            integer          NOT NULL,
    require_2fa         integer          NOT NULL,
    manual_review       integer          NOT NULL,
    blocked             integer          NOT NULL,
    latency_ms_sum      double precision NOT NULL,
    model_flagged       integer          NOT NULL,
    challenger_scored   integer          NOT NULL,
    challenger_flagged  integer          NOT NULL,
    flags_agree         integer          NOT NULL
);

CREATE TABLE IF NOT EXISTS console_hour_hist (
    hour    timestamptz NOT NULL,
    kind    text        NOT NULL,
    bucket  smallint    NOT NULL,
    n       integer     NOT NULL,
    PRIMARY KEY (kind, hour, bucket)
);

CREATE TABLE IF NOT EXISTS console_hour_revenue (
    hour            timestamptz NOT NULL,
    currency        char(3)     NOT NULL,
    purchases       integer     NOT NULL,
    approved        integer     NOT NULL,
    approved_minor  bigint      NOT NULL,
    PRIMARY KEY (hour, currency)
);

CREATE OR REPLACE FUNCTION console_roll_hours(minutes timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT date_trunc('hour', m, 'UTC')) INTO hours FROM unnest(minutes) m;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM console_hour WHERE hour = ANY (hours);
    DELETE FROM console_hour_hist WHERE hour = ANY (hours);
    DELETE FROM console_hour_revenue WHERE hour = ANY (hours);
    INSERT INTO console_hour
    SELECT h, sum(decisions), sum(approved), sum(require_2fa), sum(manual_review), sum(blocked),
        sum(latency_ms_sum), sum(model_flagged), sum(challenger_scored), sum(challenger_flagged),
        sum(flags_agree)
    FROM unnest(hours) h JOIN console_minute ON minute >= h AND minute < h + interval '1 hour'
    GROUP BY h;
    INSERT INTO console_hour_hist
    SELECT h, kind, bucket, sum(n)
    FROM unnest(hours) h JOIN console_minute_hist ON minute >= h AND minute < h + interval '1 hour'
    GROUP BY h, kind, bucket;
    INSERT INTO console_hour_revenue
    SELECT h, currency, sum(purchases), sum(approved), sum(approved_minor)
    FROM unnest(hours) h JOIN console_minute_revenue
        ON minute >= h AND minute < h + interval '1 hour'
    GROUP BY h, currency;
    RETURN cardinality(hours);
END;
$$;

-- 0012's minute refresher, now also rolling up the hours of the minutes it recomputed, and
-- joining each purchase to its decision in that minute's partition only.
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
    -- The decision's own time range is repeated so that only its day's partition is probed.
    INSERT INTO console_minute_revenue
    SELECT m, x.currency, count(*), count(*) FILTER (WHERE x.decision = 'APPROVED'),
        coalesce(sum(x.amount) FILTER (WHERE x.decision = 'APPROVED'), 0)
    FROM unnest(todo) AS m, LATERAL (
        SELECT p.currency, p.unit_price_minor * p.quantity AS amount, d.decision
        FROM purchases p LEFT JOIN decisions d
            ON d.purchase_id = p.purchase_id AND d.occurred_at = p.occurred_at
           AND d.occurred_at >= m AND d.occurred_at < m + interval '1 minute'
        WHERE p.occurred_at >= m AND p.occurred_at < m + interval '1 minute') x
    GROUP BY 1, 2;
    PERFORM console_roll_hours(todo);
    RETURN cardinality(todo);
END;
$$;

-- Hours of the minutes rolled up before this migration.
SELECT console_roll_hours(array_agg(minute)) FROM console_minute;
