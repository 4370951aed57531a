-- Retention that holds (issue 9): the policy says which column ages a row and covers labels
-- and alerts too. Day partitions are now created, filled from the default partition and
-- dropped by infra/retention.py (one transaction per partition, every failure reported), so
-- the SQL function of 0002, which swallowed the failure to create a day whose rows sat in the
-- default partition, is removed.

ALTER TABLE retention_policy ADD COLUMN IF NOT EXISTS time_column text;
UPDATE retention_policy SET time_column = 'block_time'
    WHERE table_name = 'chain_transfers' AND time_column IS NULL;
UPDATE retention_policy SET time_column = 'occurred_at' WHERE time_column IS NULL;
ALTER TABLE retention_policy ALTER COLUMN time_column SET NOT NULL;

-- Labels train the model on a year of purchases (plus a month for late chargebacks); alerts
-- are kept a year after their last event. Neither table is partitioned: both are small, and
-- maintenance deletes their rows past the policy.
INSERT INTO retention_policy (table_name, keep_days, time_column) VALUES
    ('labels', 400, 'occurred_at'), ('alerts', 365, 'last_seen')
ON CONFLICT (table_name) DO NOTHING;

CREATE INDEX IF NOT EXISTS labels_occurred_at_idx ON labels (occurred_at);
CREATE INDEX IF NOT EXISTS alerts_last_seen_idx ON alerts (last_seen);

DROP FUNCTION IF EXISTS sentinel_maintain_partitions(date, integer);
