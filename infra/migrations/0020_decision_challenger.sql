-- Shadow evidence: the challenger's score stored with each decision it shadowed, so that
-- `sentinel models compare` can set champion against challenger on labelled purchases.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS challenger_version text;
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS challenger_score double precision;
CREATE INDEX IF NOT EXISTS decisions_challenger_idx
    ON decisions (challenger_version, occurred_at) WHERE challenger_version IS NOT NULL;
