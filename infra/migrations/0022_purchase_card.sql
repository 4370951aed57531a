-- The card fingerprint (a hash, never the PAN) kept with each purchase, so that a label that
-- arrives weeks later can mark the card the purchase used (sinks/marks.py).
ALTER TABLE purchases ADD COLUMN IF NOT EXISTS card_fingerprint text;
CREATE INDEX IF NOT EXISTS purchases_id_idx ON purchases (purchase_id);
