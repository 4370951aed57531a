-- Hourly label rollups summed from the per-minute ones (0012), as 0014 did for decisions: Model
-- health's 7-day confusion matrix reads 168 hours (plus the minutes of the window's first,
-- partial hour) instead of 10 080 minutes. Recomputed for the hours of every label minute the
-- refresher recomputes; hours are UTC hours.

CREATE TABLE IF NOT EXISTS console_label_hour (
    hour             timestamptz NOT NULL,
    decision         text        NOT NULL,
    is_fraud         boolean     NOT NULL,
    model_flag       boolean     NOT NULL,
    challenger_flag  smallint    NOT NULL,  -- -1: no challenger score, 0/1 its flag
    n                integer     NOT NULL,
    PRIMARY KEY (hour, decision, is_fraud, model_flag, challenger_flag)
);

CREATE OR REPLACE FUNCTION console_roll_label_hours(minutes timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT date_trunc('hour', m, 'UTC')) INTO hours FROM unnest(minutes) m;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM console_label_hour WHERE hour = ANY (hours);
    INSERT INTO console_label_hour
    SELECT h, decision, is_fraud, model_flag, challenger_flag, sum(n)
    FROM unnest(hours) h JOIN console_label_minute
        ON minute >= h AND minute < h + interval '1 hour'
    GROUP BY h, decision, is_fraud, model_flag, challenger_flag;
    RETURN cardinality(hours);
END;
$$;

-- 0012's label refresher, now also rolling up the hours of the minutes it recomputed.
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
    PERFORM console_roll_label_hours(todo);
    RETURN cardinality(todo);
END;
$$;

-- Hours of the label minutes rolled up before this migration.
SELECT console_roll_label_hours(array_agg(minute)) FROM console_label_minute;
