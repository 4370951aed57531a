-- Sentinel's system of record. Natural keys make at-least-once delivery give exactly-once rows
-- (sinks write with ON CONFLICT DO NOTHING / DO UPDATE). Tables with a retention policy are
-- partitioned by day on their event time; 0002 manages the partitions.

CREATE TABLE IF NOT EXISTS purchases (
    purchase_id       text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    wallet            text        NOT NULL,
    user_id           text        NOT NULL,
    organizer_id      text        NOT NULL,
    show_id           text        NOT NULL,
    ticket_id         text        NOT NULL,
    quantity          integer     NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    unit_price_minor  bigint      NOT NULL CHECK (unit_price_minor >= 0),
    currency          char(3)     NOT NULL,
    channel           text        NOT NULL,
    payment_method    text        NOT NULL,
    ip                inet,
    country           char(2),
    device_id         text,
    ingested_at       timestamptz,
    PRIMARY KEY (purchase_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE IF NOT EXISTS chain_transfers (
    chain_id      bigint      NOT NULL,
    tx_hash       text        NOT NULL,
    log_index     integer     NOT NULL,
    token_id      numeric(78) NOT NULL,
    block_time    timestamptz NOT NULL,
    block_number  bigint      NOT NULL,
    block_hash    text        NOT NULL,
    contract      text        NOT NULL,
    standard      text        NOT NULL,
    amount        numeric(78) NOT NULL,
    from_address  text        NOT NULL,
    to_address    text        NOT NULL,
    kind          text        NOT NULL,
    price_wei     numeric(78),
    PRIMARY KEY (chain_id, tx_hash, log_index, token_id, block_time)
) PARTITION BY RANGE (block_time);

CREATE TABLE IF NOT EXISTS auth_events (
    event_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    kind         text        NOT NULL,
    user_id      text        NOT NULL,
    wallet       text,
    ip           inet,
    country      char(2),
    device_id    text,
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE IF NOT EXISTS decisions (
    purchase_id    text             NOT NULL,
    occurred_at    timestamptz      NOT NULL,
    decision_id    text             NOT NULL,
    wallet         text             NOT NULL,
    organizer_id   text,
    decision       text             NOT NULL
        CHECK (decision IN ('APPROVED', 'REQUIRE_2FA', 'MANUAL_REVIEW', 'BLOCKED')),
    score          double precision NOT NULL,
    model_score    double precision NOT NULL,
    rule_score     double precision NOT NULL,
    model_version  text             NOT NULL,
    rules_version  text             NOT NULL,
    reasons        jsonb            NOT NULL DEFAULT '[]',
    features       jsonb            NOT NULL DEFAULT '{}',
    decided_at     timestamptz      NOT NULL,
    latency_ms     double precision NOT NULL,
    PRIMARY KEY (purchase_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE IF NOT EXISTS security_events (
    event_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    kind         text        NOT NULL,
    severity     text        NOT NULL,
    source       text        NOT NULL,
    ip           inet,
    wallet       text,
    user_id      text,
    purchase_id  text,
    details      jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id    text        PRIMARY KEY,
    rule        text        NOT NULL,
    group_key   text        NOT NULL,
    severity    text        NOT NULL,
    count       integer     NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    event_ids   jsonb       NOT NULL DEFAULT '[]',
    responses   jsonb       NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS labels (
    purchase_id  text        NOT NULL,
    source       text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    is_fraud     boolean     NOT NULL,
    pattern      text,
    PRIMARY KEY (purchase_id, source)
);

CREATE TABLE IF NOT EXISTS blacklisted_wallets (
    wallet      text        PRIMARY KEY,
    reason      text        NOT NULL,
    source      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);

CREATE INDEX IF NOT EXISTS decisions_wallet_idx ON decisions (wallet, occurred_at);
CREATE INDEX IF NOT EXISTS purchases_wallet_idx ON purchases (wallet, occurred_at);
CREATE INDEX IF NOT EXISTS security_events_kind_idx ON security_events (kind, occurred_at);
