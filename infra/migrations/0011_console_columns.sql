-- What the console shows that the system of record did not keep, and the indexes its reads
-- use: a decision's top feature contributions and its challenger's score, the purchase's card
-- fingerprint (linked wallets share an IP, a device or a card), who reviewed a label.

ALTER TABLE decisions ADD COLUMN IF NOT EXISTS contributions jsonb NOT NULL DEFAULT '{}';
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS challenger_version text;
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS challenger_score double precision;
ALTER TABLE purchases ADD COLUMN IF NOT EXISTS card_fingerprint text;
ALTER TABLE labels ADD COLUMN IF NOT EXISTS reviewer text;

CREATE INDEX IF NOT EXISTS decisions_occurred_idx ON decisions (occurred_at);
-- The live feed of high-risk decisions, newest first.
CREATE INDEX IF NOT EXISTS decisions_high_risk_idx ON decisions (occurred_at)
    WHERE decision IN ('MANUAL_REVIEW', 'BLOCKED');
CREATE INDEX IF NOT EXISTS purchases_occurred_idx ON purchases (occurred_at);
CREATE INDEX IF NOT EXISTS purchases_ip_idx ON purchases (ip, occurred_at);
CREATE INDEX IF NOT EXISTS purchases_device_idx ON purchases (device_id, occurred_at);
CREATE INDEX IF NOT EXISTS purchases_card_idx ON purchases (card_fingerprint, occurred_at);
CREATE INDEX IF NOT EXISTS labels_occurred_idx ON labels (occurred_at);
CREATE INDEX IF NOT EXISTS alerts_last_seen_idx ON alerts (last_seen);
