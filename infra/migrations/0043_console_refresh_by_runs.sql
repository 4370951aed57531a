-- The decision-minute refresher (0014) reads each contiguous run of dirty minutes as one time
-- range. It joined the array of minutes against decisions and purchases (a LATERAL lookup
-- per minute); the planner cannot see that each minute falls in one daily partition, and once
-- plpgsql cached the plan (from the sixth call of a session: the console's refresher, the
-- bench) it costed the minutes at ten rows and chose to scan every partition of decisions
-- once and test each row against each minute: a round of 5 000 minutes took minutes, a round
-- of two read the whole table. A range whose bounds are parameters is an index scan of the
-- partitions it covers (pruned when it runs) whatever the estimate; a live console's round is
-- one run (this minute and the last), a backlog a few. Minutes are cut with date_bin (the
-- same in every session time zone). Still without JIT (0042: a CREATE OR REPLACE resets it).
CREATE OR REPLACE FUNCTION console_refresh_decision_minutes(
    max_minutes integer, review double precision
) RETURNS integer LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    todo timestamptz[];
    run record;
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
    CREATE TEMP TABLE IF NOT EXISTS console_todo_sales (
        minute timestamptz, currency char(3), amount bigint, decision text
    ) ON COMMIT DROP;
    TRUNCATE console_todo_sales;
    FOR run IN
        SELECT min(m) AS lo, max(m) + interval '1 minute' AS hi
        FROM (SELECT m, m - row_number() OVER (ORDER BY m) * interval '1 minute' AS grp
              FROM unnest(todo) AS m) s
        GROUP BY grp
    LOOP
        INSERT INTO console_todo_rows
        SELECT date_bin('1 minute', occurred_at, timestamptz 'epoch'), decision, score,
            model_score, latency_ms, challenger_score
        FROM decisions WHERE occurred_at >= run.lo AND occurred_at < run.hi;
        -- The decision's own time range is repeated so that only its run's partitions are read.
        INSERT INTO console_todo_sales
        SELECT date_bin('1 minute', p.occurred_at, timestamptz 'epoch'), p.currency,
            p.unit_price_minor * p.quantity, d.decision
        FROM purchases p LEFT JOIN decisions d
            ON d.purchase_id = p.purchase_id AND d.occurred_at = p.occurred_at
           AND d.occurred_at >= run.lo AND d.occurred_at < run.hi
        WHERE p.occurred_at >= run.lo AND p.occurred_at < run.hi;
    END LOOP;
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
    SELECT minute, currency, count(*), count(*) FILTER (WHERE decision = 'APPROVED'),
        coalesce(sum(amount) FILTER (WHERE decision = 'APPROVED'), 0)
    FROM console_todo_sales GROUP BY 1, 2;
    PERFORM console_roll_hours(todo);
    RETURN cardinality(todo);
END;
$$;
