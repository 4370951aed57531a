-- Daily partitions, a default partition so that no row is ever refused, and the retention
-- policy of the source design: transactions 90 days hot, sessions 30 days, predictions 180 days.

CREATE TABLE IF NOT EXISTS retention_policy (
    table_name  text    PRIMARY KEY,
    keep_days   integer NOT NULL CHECK (keep_days > 0)
);
INSERT INTO retention_policy (table_name, keep_days) VALUES
    ('purchases', 90), ('chain_transfers', 90), ('auth_events', 30),
    ('decisions', 180), ('security_events', 90)
ON CONFLICT (table_name) DO NOTHING;

CREATE TABLE IF NOT EXISTS purchases_default PARTITION OF purchases DEFAULT;
CREATE TABLE IF NOT EXISTS chain_transfers_default PARTITION OF chain_transfers DEFAULT;
CREATE TABLE IF NOT EXISTS auth_events_default PARTITION OF auth_events DEFAULT;
CREATE TABLE IF NOT EXISTS decisions_default PARTITION OF decisions DEFAULT;
CREATE TABLE IF NOT EXISTS security_events_default PARTITION OF security_events DEFAULT;

-- Creates the daily partitions of every retained table for [today - keep_days, today + ahead]
-- and drops those wholly older than keep_days. Idempotent; run by `sentinel db migrate` and
-- `sentinel db maintain`.
CREATE OR REPLACE FUNCTION sentinel_maintain_partitions(today date, ahead integer DEFAULT 7)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p record;
    d date;
    part text;
    created integer := 0;
BEGIN
    FOR p IN SELECT table_name, keep_days FROM retention_policy LOOP
        FOR part IN
            SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class t ON t.oid = i.inhparent
            WHERE t.relname = p.table_name
              AND c.relname ~ ('^' || p.table_name || '_p\d{8}$')
              AND to_date(right(c.relname, 8), 'YYYYMMDD') < today - p.keep_days
        LOOP
            EXECUTE format('DROP TABLE IF EXISTS %I', part);
        END LOOP;
        d := today - p.keep_days;
        WHILE d <= today + ahead LOOP
            part := p.table_name || '_p' || to_char(d, 'YYYYMMDD');
            IF to_regclass(part) IS NULL THEN
                -- Rows already in the default partition for that day would block the attach.
                IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = part) THEN
                    BEGIN
                        EXECUTE format(
                            'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                            part, p.table_name, d::timestamptz, (d + 1)::timestamptz);
                        created := created + 1;
                    EXCEPTION WHEN check_violation THEN
                        NULL;  -- the default partition holds that day's rows; keep them there
                    END;
                END IF;
            END IF;
            d := d + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;
